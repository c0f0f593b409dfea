"""The shipped environment files (environments/) and examples (examples/):
they load, name only keys the settings know, and build what each file's
header promises. The only tests that read these files; every other test
builds the settings it needs (tests/scenarios.py)."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from aigw.emulator_endpoint import checkout_endpoint
from aigw.environments import load_environments, shipped_dirs
from aigw.settings import EnvironmentSettings
from security.stackdoc import StackDoc

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_FILES = sorted([*ROOT.glob("environments/*.toml"), *ROOT.glob("examples/**/*.toml")])
# Terraform's own `replace_triggered_by` (the guardrail's version) is a meta-argument, not a placeholder.
SECRET_LOOKING = re.compile(
    r"(REPLACE(?!_triggered_by\b)|CHANGE_?ME|PLACEHOLDER|sk-[A-Za-z0-9]{10,}|AKIA[0-9A-Z]{16}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY)",
    re.I,
)


def unknown_keys(table: dict[str, Any], model: type[BaseModel], where: str = "") -> Iterator[str]:
    """Dotted names of the keys in ``table`` (and in its tables, recursively) that ``model`` does not define."""
    for key, value in table.items():
        field = model.model_fields.get(key)
        if field is None:
            yield f"{where}{key}"
            continue
        # A keyed map of small tables (``dict[str, X]``): every value is one.
        if get_origin(field.annotation) is dict:
            (_, item) = get_args(field.annotation)
            if isinstance(item, type) and issubclass(item, BaseModel) and isinstance(value, dict):
                for name, entry in value.items():
                    if isinstance(entry, dict):
                        yield from unknown_keys(entry, item, f"{where}{key}.{name}.")
            continue
        # A table may be optional (``X | None``): look through the union.
        candidates = [field.annotation, *get_args(field.annotation)]
        nested = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nested is not None and isinstance(value, dict):
            yield from unknown_keys(value, nested, f"{where}{key}.")


def jwt_validates(stack: StackDoc) -> bool:
    listener = stack.resource("aws_lb_listener", {"port": 443})
    return any(action["type"] == "jwt-validation" for action in listener["default_action"])


# -- every file -------------------------------------------------------------------
@pytest.mark.parametrize("directory", shipped_dirs(), ids=lambda d: d.name)
def test_shipped_environments_and_examples_load(directory: Path) -> None:
    assert load_environments(directory)


@pytest.mark.parametrize("path", SHIPPED_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_file_sets_only_known_keys_at_every_level(path: Path) -> None:
    # Guards the files against keys the model would drop if extra="forbid" were ever relaxed.
    assert list(unknown_keys(tomllib.loads(path.read_text()), EnvironmentSettings)) == []


def test_unknown_keys_are_found_in_nested_tables() -> None:
    table = {"region": "x", "gateway": {"cpu": 1, "desired_cout": 2, "azure": {"api_versoin": "x"}}, "tags": {"a": "b"}}
    assert list(unknown_keys(table, EnvironmentSettings)) == ["gateway.desired_cout", "gateway.azure.api_versoin"]


def test_no_secret_value_or_placeholder_in_any_shipped_stack(stacks: dict[str, StackDoc]) -> None:
    found = {name: SECRET_LOOKING.findall(json.dumps(stack.document)) for name, stack in stacks.items()}
    assert {name: matches for name, matches in found.items() if matches} == {}


# -- environments/prod.toml: HTTPS + JWT, WAF, a NAT per zone, deletion protection, org keys
def test_prod_validates_jwts_on_https(stacks: dict[str, StackDoc]) -> None:
    assert jwt_validates(stacks["prod"])


def test_prod_has_a_web_acl(stacks: dict[str, StackDoc]) -> None:
    assert stacks["prod"].count("aws_wafv2_web_acl_association") == 1


def test_prod_has_a_nat_gateway_in_each_of_its_zones(stacks: dict[str, StackDoc]) -> None:
    prod = stacks["prod"]
    assert prod.count("aws_nat_gateway") == prod.count("aws_subnet", {"tags": {"Tier": "private"}}) == 3


def test_prod_is_protected_from_deletion(stacks: dict[str, StackDoc]) -> None:
    prod = stacks["prod"]
    prod.resource("aws_lb", {"enable_deletion_protection": True})
    prod.resource("aws_cognito_user_pool", {"deletion_protection": "ACTIVE"})


def test_prod_injects_the_four_org_keys_of_the_design(stacks: dict[str, StackDoc]) -> None:
    # OpenAI, Anthropic, Google and Azure, each from its own secret, into the data plane only.
    prod = stacks["prod"]
    (task,) = prod.resources("aws_ecs_task_definition")
    (data_plane,) = [c for c in task.json("container_definitions") if c["name"] == "data-plane"]
    secrets = {s["name"].rsplit("/", 1)[1]: s.ref("arn") for s in prod.resources("aws_secretsmanager_secret")}
    assert {s["name"]: s["valueFrom"] for s in data_plane["secrets"]} == {
        f"{provider.upper()}_API_KEY": secrets[provider] for provider in ("openai", "anthropic", "google", "azure")
    }


# -- environments/dev.toml: small, HTTP only, can be torn down
def test_dev_serves_http_only(stacks: dict[str, StackDoc]) -> None:
    assert [listener["port"] for listener in stacks["dev"].resources("aws_lb_listener")] == [80]


def test_dev_can_be_torn_down(stacks: dict[str, StackDoc]) -> None:
    dev = stacks["dev"]
    dev.resource("aws_lb", {"enable_deletion_protection": False})
    dev.resource("aws_cognito_user_pool", {"deletion_protection": "INACTIVE"})


# -- environments/local.toml: the emulator, without saved queries
def test_local_deploys_to_the_emulator(stacks: dict[str, StackDoc]) -> None:
    (endpoints,) = stacks["local"].provider["endpoints"]
    assert set(endpoints.values()) == {checkout_endpoint()}  # this checkout's own emulator


def test_local_leaves_out_the_saved_queries_the_emulator_lacks(stacks: dict[str, StackDoc]) -> None:
    assert stacks["local"].count("aws_cloudwatch_query_definition") == 0


# -- examples/minimal: the documented defaults
def test_minimal_example_sets_only_region_backend_and_allowed_cidrs() -> None:
    (minimal,) = load_environments(ROOT / "examples" / "minimal")
    assert minimal.settings.model_fields_set == {"region", "backend", "edge"}
    assert minimal.settings.edge.model_fields_set == {"allowed_cidrs"}


# -- examples/https-waf-spot: HTTPS and WAF without JWT, spot, image by digest, alarms mailed
def test_staging_serves_https_without_jwt_validation(stacks: dict[str, StackDoc]) -> None:
    assert not jwt_validates(stacks["staging"])


def test_staging_has_a_web_acl(stacks: dict[str, StackDoc]) -> None:
    assert stacks["staging"].count("aws_wafv2_web_acl_association") == 1


def test_staging_runs_tasks_on_fargate_spot(stacks: dict[str, StackDoc]) -> None:
    strategy = stacks["staging"].resource("aws_ecs_service")["capacity_provider_strategy"]
    assert "FARGATE_SPOT" in {share["capacity_provider"] for share in strategy}


def test_staging_pulls_the_gateway_image_from_ecr_by_digest(stacks: dict[str, StackDoc]) -> None:
    staging = stacks["staging"]
    (task,) = staging.resources("aws_ecs_task_definition")
    (gateway,) = [c for c in task.json("container_definitions") if c["name"] == "gateway"]
    repository = staging.resource("aws_ecr_repository", {"name": "aigw-staging/gateway"})
    assert gateway["image"].startswith(f"{repository.ref('repository_url')}@sha256:")


def test_staging_mails_its_alarms(stacks: dict[str, StackDoc]) -> None:
    assert stacks["staging"].count("aws_sns_topic_subscription", {"protocol": "email"}) == 1
