"""`[hybrid]` as an environment file states it (aigw/settings/hybrid.py and
rules.py's hybrid_problems): every invalid input is refused against the field
to change, every problem of a file in one run, and a bad file writes nothing."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import processes
from tests.option_stacks import option_problems, option_settings

ROOT = Path(__file__).resolve().parent.parent
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:aigw-options/hybrid/client-org-AbCdEf"
REGISTRY = "arn:aws:secretsmanager:us-east-1:123456789012:secret:aigw-options/hybrid/registry-credentials-XyZ123"
KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
SERVICE = "com.amazonaws.vpce.us-east-1.vpce-svc-0c2c1c323d9f56d95"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
# The smallest valid hybrid environment: the enterprise gateway, the built-in Redis, nothing else.
HYBRID: dict[str, Any] = {"hybrid": {"enabled": True, "registry_credentials_secret_arn": REGISTRY}}


def with_hybrid(**tables: Any) -> dict[str, Any]:
    """HYBRID with ``hybrid`` keys merged in and other top-level tables added."""
    hybrid = {**HYBRID["hybrid"], **tables.pop("hybrid", {})}
    return {"hybrid": hybrid, **tables}


def problems(tmp_path: Path, changes: dict[str, Any]) -> list[str]:
    return option_problems(tmp_path, changes)


def test_the_smallest_hybrid_environment_is_valid() -> None:
    settings = option_settings(HYBRID)
    assert settings.hybrid.enabled
    assert settings.hybrid.cache.backend == "builtin"


def test_a_raw_secret_value_where_an_arn_is_expected_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"gateway": {"secrets": {"PORTKEY_CLIENT_AUTH": "pk-live-abc"}}}))
    assert any("hybrid.gateway.secrets.PORTKEY_CLIENT_AUTH: " in line and "never the secret's value" in line
               for line in lines), lines  # fmt: skip
    # ... and the value is not echoed back into the report
    assert not any("pk-live-abc" in line for line in lines), lines


def test_a_raw_registry_credential_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"registry_credentials_secret_arn": "user:hunter2"}))
    assert any("hybrid.registry_credentials_secret_arn: " in line for line in lines), lines
    assert not any("hunter2" in line for line in lines), lines


def test_a_missing_registry_credentials_arn_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, {"hybrid": {"enabled": True}})
    assert any(line.endswith("hybrid.registry_credentials_secret_arn: required: the enterprise image is pulled with "
                             "Portkey's registry credentials (make hybrid-secrets creates the secret)")
               for line in lines), lines  # fmt: skip


@pytest.mark.parametrize("name", ["PORTKEY_CLIENT_AUTH", "ORGANISATIONS_TO_SYNC", "OPENAI_API_KEY", "DB_PASSWORD"])
def test_a_credential_in_the_plain_environment_is_refused(tmp_path: Path, name: str) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"gateway": {"environment": {name: "value"}}}))
    assert any(f"hybrid.gateway.environment.{name}: holds a credential: move it to `secrets`" in line
               for line in lines), lines  # fmt: skip


@pytest.mark.parametrize("name", ["PORT", "SERVER_MODE", "REDIS_URL", "LOG_STORE_GENERATIONS_BUCKET", "ALBUS_BASEPATH"])
def test_a_variable_the_stack_sets_is_refused(tmp_path: Path, name: str) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"data_service": {"enabled": True, "environment": {name: "x"}},
                                                   "log_store": {"bucket": "portkey-logs"}}))  # fmt: skip
    assert any(f"hybrid.data_service.environment.{name}: " in line and "is set by the stack" in line
               for line in lines), lines  # fmt: skip


def test_a_data_service_without_a_log_store_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"data_service": {"enabled": True}}))
    assert any("hybrid.data_service.enabled: the data service writes exports" in line for line in lines), lines


def test_inbound_privatelink_without_a_network_load_balancer_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"control_plane": {"inbound": "privatelink"}}))
    assert any("hybrid.control_plane.inbound: a VPC endpoint service needs a Network Load Balancer" in line
               for line in lines), lines  # fmt: skip


def test_inbound_privatelink_with_a_network_load_balancer_is_valid() -> None:
    settings = option_settings(with_hybrid(hybrid={"control_plane": {"inbound": "privatelink"}},
                                           edge={"load_balancer_type": "network", "internal": True}))  # fmt: skip
    assert settings.hybrid.control_plane.allowed_principals == ["arn:aws:iam::299329113195:root"]


def test_all_without_host_routing_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"mcp_gateway_base_url": "https://mcp.example.com"},
                                           gateway={"server_mode": "all"}))  # fmt: skip
    assert any(line.endswith("edge.gateway_host: required with gateway.server_mode = 'all' (host routing)")
               for line in lines), lines  # fmt: skip
    assert any(line.endswith("hybrid.mcp_host: required with gateway.server_mode = 'all' (host routing)")
               for line in lines), lines  # fmt: skip


def test_all_behind_a_network_load_balancer_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"mcp_gateway_base_url": "https://mcp.example.com"},
                                           gateway={"server_mode": "all"},
                                           edge={"load_balancer_type": "network", "internal": True}))  # fmt: skip
    assert any("gateway.server_mode: 'all' serves the AI gateway and the MCP gateway by host name" in line
               for line in lines), lines  # fmt: skip


@pytest.mark.parametrize("mode", ["mcp", "all"])
def test_mcp_modes_need_the_mcp_gateway_base_url(tmp_path: Path, mode: str) -> None:
    lines = problems(tmp_path, with_hybrid(gateway={"server_mode": mode}))
    assert any(line.endswith(f"hybrid.mcp_gateway_base_url: required with gateway.server_mode = {mode!r}")
               for line in lines), lines  # fmt: skip


def test_mcp_modes_without_hybrid_mode_are_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, {"gateway": {"server_mode": "mcp"}})
    assert any("gateway.server_mode: 'mcp' exists only in Portkey's enterprise gateway" in line for line in lines)


def test_hybrid_keys_while_hybrid_mode_is_off_are_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, {"hybrid": {"registry_credentials_secret_arn": REGISTRY}})
    assert any("hybrid.registry_credentials_secret_arn: hybrid mode is off" in line for line in lines), lines


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"edge": {"enable_jwt_auth": True}}, "edge.enable_jwt_auth"),
        ({"response_cache": {"enabled": True}}, "response_cache"),
        ({"guardrails": {"enabled": True}}, "guardrails"),
        ({"cost_attribution": {"enabled": True}}, "cost_attribution"),
        ({"gateway": {"provider_keys": ["openai"]}}, "gateway.provider_keys"),
        ({"gateway": {"image": "portkeyai/gateway:1.15.2"}}, "gateway.image"),
        ({"gateway": {"streams_per_task": 100}}, "gateway.streams_per_task"),
        ({"gateway": {"max_requests_in_flight": 100}}, "gateway.max_requests_in_flight"),
        # Set either way: the queries read the access log hybrid mode does not write, and none are created.
        ({"observability": {"enable_saved_queries": True}}, "observability.enable_saved_queries"),
        ({"observability": {"enable_saved_queries": False}}, "observability.enable_saved_queries"),
    ],
)
def test_the_data_planes_features_are_refused_in_hybrid_mode(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    lines = problems(tmp_path, with_hybrid(**changes))
    assert any(f": {field}: not with hybrid mode" in line for line in lines), lines


def test_hybrid_mode_is_refused_on_the_emulator(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(emulator={"endpoint": "http://127.0.0.1:4566"}))
    assert any("hybrid.enabled: the emulator's local task runs the OSS gateway" in line for line in lines), lines


def test_an_endpoint_service_in_another_region_is_refused(tmp_path: Path) -> None:
    elsewhere = SERVICE.replace("us-east-1", "eu-west-1")
    control = {"outbound": "privatelink", "privatelink_service_name": elsewhere}
    lines = problems(tmp_path, with_hybrid(hybrid={"control_plane": control}))
    assert any("hybrid.control_plane.privatelink_service_name: the endpoint service is in eu-west-1" in line
               for line in lines), lines  # fmt: skip


def test_outbound_privatelink_needs_its_service_name(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"control_plane": {"outbound": "privatelink"}}))
    assert any(line.endswith("hybrid.control_plane.privatelink_service_name: required with outbound = "
                             "'privatelink'") for line in lines), lines  # fmt: skip


def test_ip_allow_listing_needs_an_internet_facing_load_balancer(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"control_plane": {"inbound": "ip_allow_list"}},
                                           edge={"internal": True}))  # fmt: skip
    assert any("hybrid.control_plane.inbound: the control plane calls in over the internet" in line
               for line in lines), lines  # fmt: skip


def test_ip_allow_listing_adds_the_control_planes_addresses_to_what_the_load_balancer_admits() -> None:
    settings = option_settings(with_hybrid(hybrid={"control_plane": {"inbound": "ip_allow_list"}}))
    assert settings.load_balancer_cidrs == [
        "203.0.113.0/24", "54.81.226.149/32", "34.200.113.35/32", "44.221.117.129/32",
    ]  # fmt: skip


def test_an_external_elasticache_needs_its_endpoint_and_security_group(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"cache": {"backend": "elasticache"}}))
    assert any(line.endswith("hybrid.cache.endpoint: required with backend = 'elasticache'") for line in lines)
    assert any(line.endswith("hybrid.cache.security_group_id: required with backend = 'elasticache'")
               for line in lines), lines  # fmt: skip


def test_a_setting_of_another_cache_backend_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"cache": {"endpoint": "redis.example.com:6379"}}))
    assert any("hybrid.cache.endpoint: not a setting of backend 'builtin'" in line for line in lines), lines


def test_an_auth_token_over_plaintext_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"cache": {
        "backend": "elasticache", "endpoint": "redis.example.com:6379", "security_group_id": "sg-0123456789abcdef0",
        "tls": False, "auth_secret_arn": SECRET}}))  # fmt: skip
    assert any("hybrid.cache.auth_secret_arn: an AUTH token over plaintext" in line for line in lines), lines


def test_a_kms_alias_where_a_key_arn_is_expected_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"secrets_kms_key_arn": "alias/aws/secretsmanager"}))
    assert any("hybrid.secrets_kms_key_arn: " in line and "not an alias" in line for line in lines), lines


def test_every_problem_of_a_hybrid_file_is_reported_in_one_run(tmp_path: Path) -> None:
    lines = problems(tmp_path, {
        "hybrid": {"enabled": True, "data_service": {"enabled": True}},
        "gateway": {"server_mode": "all"},
        "edge": {"enable_jwt_auth": True},
    })  # fmt: skip
    fields = {line.split(": ")[1] for line in lines}
    assert {
        "hybrid.registry_credentials_secret_arn", "hybrid.data_service.enabled", "hybrid.mcp_gateway_base_url",
        "hybrid.mcp_host", "edge.gateway_host", "edge.enable_jwt_auth",
    } <= fields, lines  # fmt: skip


def test_main_refuses_a_bad_hybrid_file_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    env_dir = tmp_path / "envs"
    option_problems(env_dir, with_hybrid(hybrid={"data_service": {"enabled": True}},
                                         edge={"enable_jwt_auth": True}), name="hybrid")  # fmt: skip
    outdir = tmp_path / "cdktf.out"
    outdir.mkdir()
    result = processes.run(
        [sys.executable, ROOT / "main.py"],
        cwd=tmp_path, env={**os.environ, "AIGW_ENV_DIR": str(env_dir), "CDKTF_OUTDIR": str(outdir)}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "hybrid.toml: hybrid.data_service.enabled: " in result.stderr
    assert "hybrid.toml: edge.enable_jwt_auth: not with hybrid mode" in result.stderr
    assert list(outdir.iterdir()) == []
