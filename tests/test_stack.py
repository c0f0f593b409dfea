"""Every stack: backend, provider, tags, outputs, and the dev/prod differences."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aigw.environments import load_environments
from modules.stack import synthesize
from tests.template import Template

SAME_ACCOUNT_AND_REGION = """
region = "us-east-1"
[backend]
bucket = "tfstate-bucket"
key = "ai-gateway/{name}.tfstate"
dynamodb_table = "tfstate-lock"
region = "us-east-1"
[edge]
allowed_cidrs = ["203.0.113.0/24"]
[gateway]
image_from_ecr = true
"""

# Where each output's value must come from: (resource type, attribute). The
# outputs users script against (`cdktf output`) must keep pointing at these.
OUTPUT_SOURCES = {
    "alb_dns_name": ("aws_lb", "dns_name"),
    "vpc_id": ("aws_vpc", "id"),
    "cognito_user_pool_id": ("aws_cognito_user_pool", "id"),
    "cognito_client_id": ("aws_cognito_user_pool_client", "id"),
    "cognito_client_secret": ("aws_cognito_user_pool_client", "client_secret"),
    "ecr_repository_url": ("aws_ecr_repository", "repository_url"),
    "ecs_cluster_name": ("aws_ecs_cluster", "name"),
    "ecs_service_name": ("aws_ecs_service", "name"),
    "dashboard_name": ("aws_cloudwatch_dashboard", "dashboard_name"),
}


def test_s3_backend_per_environment_with_encryption_and_lock_table(dev: Template, prod: Template) -> None:
    for stack, env in ((dev, "dev"), (prod, "prod")):
        assert stack.terraform["backend"] == {
            "s3": {
                "bucket": f"ai-gateway-tfstate-{env}",
                "key": f"ai-gateway/{env}.tfstate",
                "dynamodb_table": f"ai-gateway-tfstate-lock-{env}",
                "region": "us-east-1",
                "encrypt": True,
            }
        }


def test_required_provider_version_comes_from_the_setting(stacks: dict[str, Template]) -> None:
    assert stacks["dev"].terraform["required_providers"]["aws"]["version"] == "~> 6.22"
    assert stacks["staging"].terraform["required_providers"]["aws"]["version"] == ">= 6.22, < 7.0"


def test_provider_region_and_default_tags(dev: Template, staging: Template) -> None:
    assert dev.provider["region"] == "us-east-1"
    assert dev.provider["default_tags"] == [
        {"tags": {"Project": "ai-gateway", "Environment": "dev", "ManagedBy": "cdktf"}}
    ]
    (tags,) = staging.provider["default_tags"]
    assert tags["tags"] == {
        "CostCenter": "platform",
        "Owner": "gateway-team",
        "Project": "ai-gateway",
        "Environment": "staging",
        "ManagedBy": "cdktf",
    }


@pytest.mark.parametrize("name", sorted(OUTPUT_SOURCES))
def test_each_output_points_at_the_resource_it_names(env_stack: Template, name: str) -> None:
    resource_type, attribute = OUTPUT_SOURCES[name]
    assert env_stack.outputs[name]["value"] == env_stack.resource(resource_type).ref(attribute)


def test_every_output_has_a_description(env_stack: Template) -> None:
    assert all(output.get("description") for output in env_stack.outputs.values())


def test_provider_secret_arns_output_maps_each_provider_to_its_secret(prod: Template) -> None:
    secrets = {s["name"].rsplit("/", 1)[1]: s.ref("arn") for s in prod.resources("aws_secretsmanager_secret")}
    assert prod.outputs["provider_secret_arns"]["value"] == secrets


def test_gateway_url_scheme_follows_the_certificate(dev: Template, prod: Template) -> None:
    assert dev.outputs["gateway_url"]["value"].startswith("http://")
    assert prod.outputs["gateway_url"]["value"].startswith("https://")


def test_only_the_client_secret_output_is_sensitive(env_stack: Template) -> None:
    sensitive = {name for name, output in env_stack.outputs.items() if output.get("sensitive")}
    assert sensitive == {"cognito_client_secret"}


def test_dev_and_prod_differ_as_designed(dev: Template, prod: Template) -> None:
    def facts(stack: Template) -> dict[str, object]:
        task = stack.resource("aws_ecs_task_definition")
        target = stack.resource("aws_appautoscaling_target")
        return {
            "task": (task["cpu"], task["memory"]),
            "scaling": (target["min_capacity"], target["max_capacity"]),
            "waf": stack.count("aws_wafv2_web_acl"),
            "https": stack.count("aws_lb_listener", {"port": 443}),
            "jwt": any(
                a["type"] == "jwt-validation"
                for listener in stack.resources("aws_lb_listener")
                for a in listener["default_action"]
            ),
            "nat": stack.count("aws_nat_gateway"),
            "alb_protection": stack.resource("aws_lb")["enable_deletion_protection"],
        }

    assert facts(dev) == {
        "task": ("512", "1024"),
        "scaling": (1, 2),
        "waf": 0,
        "https": 0,
        "jwt": False,
        "nat": 1,
        "alb_protection": False,
    }
    assert facts(prod) == {
        "task": ("1024", "2048"),
        "scaling": (2, 6),
        "waf": 1,
        "https": 1,
        "jwt": True,
        "nat": 3,
        "alb_protection": True,
    }


def test_minimal_environment_takes_the_safe_defaults(minimal: Template) -> None:
    assert minimal.resource("aws_lb")["enable_deletion_protection"] is True
    assert minimal.resource("aws_cognito_user_pool")["deletion_protection"] == "ACTIVE"
    assert minimal.count("aws_nat_gateway") == 1
    assert minimal.resource("aws_ecs_service")["desired_count"] == 2
    assert minimal.provider["region"] == "eu-west-1"


SECRET_LOOKING = re.compile(
    r"(REPLACE|CHANGE_?ME|PLACEHOLDER|sk-[A-Za-z0-9]{10,}|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY)", re.I
)


def test_no_secret_value_or_placeholder_appears_in_any_stack(stacks: dict[str, Template]) -> None:
    for name, stack in stacks.items():
        text = json.dumps(stack.document)
        assert not SECRET_LOOKING.search(text), name
        assert stack.count("aws_secretsmanager_secret_version") == 0, name
        client = stack.resource("aws_cognito_user_pool_client")
        # The only place the client secret may be referenced is the sensitive output.
        assert text.count(client.ref("client_secret")) == 1, name


def test_every_stack_has_distinct_resource_names(stacks: dict[str, Template]) -> None:
    # Names are prefixed per environment, so two environments can share an account.
    for stack in stacks.values():
        env_names = {
            r["name"] for r in stack.all_resources() if isinstance(r.get("name"), str) and r["name"].startswith("aigw")
        }
        assert env_names and all(n.startswith(f"aigw-{stack.name.removeprefix('ai-gateway-')}") for n in env_names)


# Attributes that name a resource in its account and region (or account-wide, for IAM);
# `domain` names only a Cognito domain (an EIP's `domain` is "vpc").
NAME_ATTRIBUTES = ("name", "alarm_name", "dashboard_name", "family")


def resource_names(stack: Template) -> set[tuple[str, str]]:
    """(resource type, name) of every named resource of the stack."""
    names = {
        (r.type, r[attribute])
        for r in stack.all_resources()
        for attribute in NAME_ATTRIBUTES
        if isinstance(r.get(attribute), str)
    }
    return names | {(r.type, r["domain"]) for r in stack.resources("aws_cognito_user_pool_domain")}


def test_two_environments_in_one_account_and_region_create_no_resource_with_the_same_name(tmp_path: Path) -> None:
    # GIVEN two environments in one account and region, one named as the other plus a
    # suffix ("dev" and "dev-task"), the only way two `aigw-<env>-<role>` names could meet
    env_dir = tmp_path / "envs"
    env_dir.mkdir()
    for name in ("dev", "dev-task"):
        (env_dir / f"{name}.toml").write_text(SAME_ACCOUNT_AND_REGION.format(name=name))
    # WHEN both are synthesized
    synthesize(load_environments(env_dir), tmp_path / "out")
    dev, dev_task = (
        resource_names(Template.load(tmp_path / "out" / "stacks" / f"ai-gateway-{name}" / "cdk.tf.json"))
        for name in ("dev", "dev-task")
    )
    # THEN no resource type has a name in both
    assert len(dev) > 30
    assert dev & dev_task == set()


def test_real_environments_talk_to_aws_and_the_local_one_to_the_emulator(
    dev: Template, stacks: dict[str, Template]
) -> None:
    assert "endpoints" not in dev.provider and "endpoints" not in dev.terraform["backend"]["s3"]
    local = stacks["local"]
    (endpoints,) = local.provider["endpoints"]
    assert set(endpoints.values()) == {"http://127.0.0.1:4566"}
    assert {"ec2", "ecs", "elbv2", "iam", "kms", "logs", "sts", "wafv2", "cognitoidp"} <= set(endpoints)
    assert local.provider["skip_metadata_api_check"] == "true"
    backend = local.terraform["backend"]["s3"]
    assert backend["endpoints"] == {e: "http://127.0.0.1:4566" for e in ("s3", "dynamodb", "iam", "sts")}
    assert backend["use_path_style"] is True and backend["encrypt"] is True
    # Credentials never go into the JSON; make deploy and the tests pass them in the environment.
    assert "access_key" not in local.provider and "secret_key" not in backend
