"""Settings the data plane acts on: the Azure target (which a client must
never choose) and the request body limit, validated before anything is
built; plus the data plane's own guards against values it cannot embed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aigw.data_plane.config import AzureTarget, DataPlaneConfig
from aigw.data_plane.policy import STORED_OBJECT_URLS
from aigw.data_plane.render import nginx_string
from aigw.environments import ConfigError, load_environments

BASE = """
region = "us-east-1"
[backend]
bucket = "tfstate-bucket"
key = "ai-gateway/test.tfstate"
dynamodb_table = "tfstate-lock"
region = "us-east-1"
"""
# Without JWT auth the load balancer must not be open to the world.
PRIVATE_EDGE = """
[edge]
allowed_cidrs = ["10.0.0.0/8"]
"""
JWT_EDGE = """
aws_provider_version = "~> 6.22"
[edge]
certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
enable_jwt_auth = true
"""
AZURE = """
[gateway.azure]
resource_name = "{resource}"
deployment_id = "{deployment}"
api_version = "{version}"
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "test.toml").write_text(text, encoding="utf-8")
    try:
        load_environments(tmp_path)
    except ConfigError as error:
        return error.lines
    return []


def azure(resource: str = "contoso-openai", deployment: str = "gpt-4o", version: str = "2024-10-21") -> str:
    return AZURE.format(resource=resource, deployment=deployment, version=version)


def jwt_file(provider_keys: str, *tables: str) -> str:
    # Top-level keys must precede the first table in TOML.
    top, edge = JWT_EDGE.split("[edge]")
    return f"{top}{BASE}\n[edge]{edge}\n[gateway]\nprovider_keys = {provider_keys}\n{''.join(tables)}"


@pytest.mark.parametrize(
    "resource",
    ["evil.example:8443#", "evil.example", "res/../x", "res?x=1", "a", "-leading-dash", "x" * 65],
)
def test_azure_resource_names_that_could_steer_the_host_are_refused(tmp_path: Path, resource: str) -> None:
    lines = problems(tmp_path, jwt_file('["openai", "azure"]', azure(resource=resource)))
    assert len(lines) == 1
    assert lines[0].endswith(f"test.toml: gateway.azure.resource_name: {resource!r} is not an Azure resource name "
                             "(2-64 letters, digits and '-')")  # fmt: skip


@pytest.mark.parametrize("deployment", ["d/../../x", "d#", "d?api-version=1", "", "d x"])
def test_azure_deployment_ids_outside_the_azure_alphabet_are_refused(tmp_path: Path, deployment: str) -> None:
    lines = problems(tmp_path, jwt_file('["openai", "azure"]', azure(deployment=deployment)))
    assert [line.split(": ", 2)[1] for line in lines] == ["gateway.azure.deployment_id"]


@pytest.mark.parametrize("version", ["latest", "2024-10-21&x=1", "2024-1-1"])
def test_azure_api_version_must_be_a_dated_version(tmp_path: Path, version: str) -> None:
    lines = problems(tmp_path, jwt_file('["openai", "azure"]', azure(version=version)))
    assert [line.split(": ", 2)[1] for line in lines] == ["gateway.azure.api_version"]


def test_azure_preview_api_versions_load(tmp_path: Path) -> None:
    assert problems(tmp_path, jwt_file('["openai", "azure"]', azure(version="2025-04-01-preview"))) == []


def test_an_azure_org_key_without_its_target_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, jwt_file('["openai", "azure"]'))
    assert len(lines) == 1
    assert "gateway.azure: required when gateway.provider_keys lists azure" in lines[0]


def test_an_azure_target_without_an_azure_org_key_is_refused_with_jwt(tmp_path: Path) -> None:
    lines = problems(tmp_path, jwt_file('["openai"]', azure()))
    assert len(lines) == 1
    assert "gateway.azure: with JWT auth the data plane offers only providers with an organisation key" in lines[0]


def test_an_azure_target_alone_loads_without_jwt(tmp_path: Path) -> None:
    (tmp_path / "test.toml").write_text(f"{BASE}{PRIVATE_EDGE}\n[gateway]\n{azure()}", encoding="utf-8")
    (env,) = load_environments(tmp_path)
    assert env.settings.gateway.azure is not None
    assert env.settings.gateway.azure.resource_name == "contoso-openai"


def test_unknown_keys_in_the_azure_table_get_a_suggestion(tmp_path: Path) -> None:
    lines = problems(tmp_path, jwt_file('["openai", "azure"]', azure(), 'resource = "x"\n'))
    assert lines == [
        f"{tmp_path / 'test.toml'}: gateway.azure.resource: unknown key; did you mean 'resource_name'? "
        "allowed: resource_name, deployment_id, api_version"
    ]


@pytest.mark.parametrize("size", [0, 513])
def test_request_body_limit_outside_1_to_512_mib_is_refused(tmp_path: Path, size: int) -> None:
    lines = problems(tmp_path, f"{BASE}{PRIVATE_EDGE}\n[gateway]\nmax_request_body_mib = {size}\n")
    assert [line.split(": ", 2)[1] for line in lines] == ["gateway.max_request_body_mib"]


@pytest.mark.parametrize("value", ['a"b', "a$b", "a;b", "a\nb", "a{b", "a'b", "a\\b"])
def test_values_that_could_break_out_of_an_nginx_string_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="cannot be embedded in the data plane configuration"):
        nginx_string(value)


def test_google_org_keys_load_with_jwt_auth(tmp_path: Path) -> None:
    # The data plane checks Google's model (which the gateway puts into the URL beside the key).
    assert problems(tmp_path, jwt_file('["openai", "google"]')) == []


def test_an_azure_org_key_needs_a_target_in_the_data_plane_too() -> None:
    with pytest.raises(ValueError, match="an Azure org key needs an AzureTarget"):
        DataPlaneConfig(org_keys=("azure",))


def test_org_keys_of_unknown_providers_are_refused_by_the_data_plane() -> None:
    with pytest.raises(ValueError, match=r"no provider slug for org keys \['mistral'\]"):
        DataPlaneConfig(org_keys=("mistral",))


def test_with_org_keys_only_keyed_providers_are_offered() -> None:
    config = DataPlaneConfig(org_keys=("openai", "azure"), azure=AzureTarget("res", "dep", "2024-10-21"))
    assert config.offered_providers == ("openai", "azure-openai")


def test_without_org_keys_azure_is_offered_only_with_a_target() -> None:
    assert "azure-openai" not in DataPlaneConfig().offered_providers
    assert "azure-openai" in DataPlaneConfig(azure=AzureTarget("res", "dep", "2024-10-21")).offered_providers


def test_stored_object_url_patterns_are_literal_text() -> None:
    # Lua patterns run over every string of a body (up to 50 MiB): a wildcard such as `.*` backtracks, and
    # one string repeating the text before it cost seconds of a worker's CPU.
    for provider, patterns in STORED_OBJECT_URLS.items():
        for pattern in patterns:
            literal = pattern.removeprefix("^%s*")
            assert re.fullmatch(r"(?:[a-z0-9:/_-]|%\.)+", literal), (provider, pattern)
