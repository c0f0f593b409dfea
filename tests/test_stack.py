"""Every stack: state backend, provider, tags, outputs, resource names, the
emulator. Stacks come from tests/scenarios.py (the output tests also run on
the shipped dev and prod)."""

from __future__ import annotations

import json

import pytest

from security.stackdoc import StackDoc

# Where each output's value must come from: (resource type, attribute, and the
# end of its name where the type has several). The outputs users script
# against (`cdktf output`) must keep pointing at these.
OUTPUT_SOURCES: dict[str, tuple[str, str, str | None]] = {
    "alb_dns_name": ("aws_lb", "dns_name", None),
    "vpc_id": ("aws_vpc", "id", None),
    "cognito_user_pool_id": ("aws_cognito_user_pool", "id", None),
    "ecr_repository_url": ("aws_ecr_repository", "repository_url", "/gateway"),
    "data_plane_ecr_repository_url": ("aws_ecr_repository", "repository_url", "/data-plane"),
    "ecs_cluster_name": ("aws_ecs_cluster", "name", None),
    "ecs_service_name": ("aws_ecs_service", "name", None),
    "dashboard_name": ("aws_cloudwatch_dashboard", "dashboard_name", None),
}


@pytest.mark.parametrize("name", sorted(OUTPUT_SOURCES))
def test_each_output_points_at_the_resource_it_names(env_stack: StackDoc, name: str) -> None:
    resource_type, attribute, name_end = OUTPUT_SOURCES[name]
    (source,) = [r for r in env_stack.resources(resource_type) if name_end is None or r["name"].endswith(name_end)]
    assert env_stack.outputs[name]["value"] == source.ref(attribute)


def test_every_output_has_a_description(env_stack: StackDoc) -> None:
    assert all(output.get("description") for output in env_stack.outputs.values())


def test_provider_secret_arns_output_maps_each_provider_to_its_secret(prod: StackDoc) -> None:
    secrets = {s["name"].rsplit("/", 1)[1]: s.ref("arn") for s in prod.resources("aws_secretsmanager_secret")}
    assert prod.outputs["provider_secret_arns"]["value"] == secrets


def test_gateway_url_scheme_follows_the_certificate(dev: StackDoc, prod: StackDoc) -> None:
    assert dev.outputs["gateway_url"]["value"].startswith("http://")
    assert prod.outputs["gateway_url"]["value"].startswith("https://")


def test_client_outputs_map_the_default_team_to_the_one_client(env_stack: StackDoc) -> None:
    (client,) = env_stack.resources("aws_cognito_user_pool_client")
    assert env_stack.outputs["cognito_client_ids"]["value"] == {"default": client.ref("id")}
    assert env_stack.outputs["cognito_client_secrets"]["value"] == {"default": client.ref("client_secret")}


def test_client_outputs_map_each_team_to_its_own_client(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["teams"]
    clients = {
        client["name"].removeprefix("aigw-teams-"): client for client in stack.resources("aws_cognito_user_pool_client")
    }
    assert sorted(clients) == ["m2m", "team-batch", "team-search"]
    clients["default"] = clients.pop("m2m")
    ids = {team.removeprefix("team-"): client.ref("id") for team, client in clients.items()}
    secrets = {team.removeprefix("team-"): client.ref("client_secret") for team, client in clients.items()}
    assert stack.outputs["cognito_client_ids"]["value"] == ids
    assert stack.outputs["cognito_client_secrets"]["value"] == secrets
    assert stack.outputs["cognito_client_secrets"]["sensitive"] is True


def test_only_the_client_secrets_output_is_sensitive(env_stack: StackDoc) -> None:
    sensitive = {name for name, output in env_stack.outputs.items() if output.get("sensitive")}
    assert sensitive == {"cognito_client_secrets"}


def test_state_lives_in_the_configured_s3_bucket_encrypted_and_locked(scenarios: dict[str, StackDoc]) -> None:
    assert scenarios["base"].terraform["backend"] == {
        "s3": {
            "bucket": "tfstate-bucket",
            "key": "ai-gateway/base.tfstate",
            "dynamodb_table": "tfstate-lock",
            "region": "us-east-1",
            "encrypt": True,
        }
    }


def test_required_provider_version_comes_from_the_setting(scenarios: dict[str, StackDoc]) -> None:
    assert scenarios["tuned"].terraform["required_providers"]["aws"]["version"] == ">= 6.22, < 7.0"


def test_provider_region_comes_from_the_setting(scenarios: dict[str, StackDoc]) -> None:
    assert scenarios["seoul"].provider["region"] == "ap-northeast-2"


def test_every_resource_is_tagged_with_project_environment_and_manager(scenarios: dict[str, StackDoc]) -> None:
    assert scenarios["base"].provider["default_tags"] == [
        {"tags": {"Project": "ai-gateway", "Environment": "base", "ManagedBy": "cdktf"}}
    ]


def test_extra_tags_join_the_default_tags(scenarios: dict[str, StackDoc]) -> None:
    (tags,) = scenarios["tuned"].provider["default_tags"]
    assert tags["tags"] == {"CostCenter": "platform", "Project": "ai-gateway", "Environment": "tuned",
                            "ManagedBy": "cdktf"}  # fmt: skip


@pytest.mark.parametrize("name", ["base", "secure", "teams"])
def test_only_the_sensitive_output_refers_to_the_client_secrets(scenarios: dict[str, StackDoc], name: str) -> None:
    stack = scenarios[name]
    for client in stack.resources("aws_cognito_user_pool_client"):
        secret = client.ref("client_secret")
        assert json.dumps(stack.document).count(secret) == 1
        holders = [o.get("sensitive") for o in stack.outputs.values() if secret in json.dumps(o["value"])]
        assert holders == [True]


# Attributes that name a resource in its account and region (or account-wide, for IAM);
# `domain` names only a Cognito domain (an EIP's `domain` is "vpc").
NAME_ATTRIBUTES = ("name", "alarm_name", "dashboard_name", "family")


def resource_names(stack: StackDoc) -> set[tuple[str, str]]:
    """(resource type, name) of every named resource of the stack."""
    names = {
        (r.type, r[attribute])
        for r in stack.resources()
        for attribute in NAME_ATTRIBUTES
        if isinstance(r.get(attribute), str)
    }
    return names | {(r.type, r["domain"]) for r in stack.resources("aws_cognito_user_pool_domain")}


def test_resource_names_start_with_the_environments_prefix(scenarios: dict[str, StackDoc]) -> None:
    # Names are prefixed per environment, so two environments can share an account.
    named = [name for _, name in resource_names(scenarios["secure"]) if name.startswith("aigw")]
    assert named
    assert [name for name in named if not name.startswith("aigw-secure")] == []


def test_two_environments_in_one_account_and_region_create_no_resource_with_the_same_name(
    scenarios: dict[str, StackDoc],
) -> None:
    # GIVEN two environments in one account and region, one named as the other plus a
    # suffix ("base" and "base-task"), the only way two `aigw-<env>-<role>` names could meet
    base, base_task = resource_names(scenarios["base"]), resource_names(scenarios["base-task"])
    # THEN no resource type has a name in both
    assert len(base) > 30
    assert base & base_task == set()


def test_without_an_emulator_the_provider_and_the_state_talk_to_aws(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    assert "endpoints" not in stack.provider and "endpoints" not in stack.terraform["backend"]["s3"]


def test_with_an_emulator_every_provider_call_goes_to_it(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["emulator"]
    (endpoints,) = stack.provider["endpoints"]
    assert {"ec2", "ecs", "elbv2", "iam", "kms", "logs", "sts", "wafv2", "cognitoidp"} <= set(endpoints)
    assert set(endpoints.values()) == {"http://127.0.0.1:4566"}


def test_with_an_emulator_the_provider_does_not_ask_for_instance_metadata(scenarios: dict[str, StackDoc]) -> None:
    assert scenarios["emulator"].provider["skip_metadata_api_check"] == "true"


def test_with_an_emulator_the_state_lives_in_the_emulators_s3_path_style(scenarios: dict[str, StackDoc]) -> None:
    backend = scenarios["emulator"].terraform["backend"]["s3"]
    assert backend["endpoints"] == {e: "http://127.0.0.1:4566" for e in ("s3", "dynamodb", "iam", "sts")}
    assert (backend["use_path_style"], backend["encrypt"]) == (True, True)


def test_emulator_credentials_stay_out_of_the_stack(scenarios: dict[str, StackDoc]) -> None:
    # make deploy and the tests pass them in the environment.
    stack = scenarios["emulator"]
    assert "access_key" not in stack.provider and "secret_key" not in stack.terraform["backend"]["s3"]
