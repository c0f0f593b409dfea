"""Compute: ECR, the provider-key secrets, the ECS cluster, the task (key
data plane, gateway, collector) and its two roles, the service and its scaling.
Stacks come from tests/scenarios.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from aigw.data_plane.contract import IN_FLIGHT_DIMENSION, REQUESTS_IN_FLIGHT_METRIC, STREAMS_IN_FLIGHT_METRIC
from aigw.data_plane.render import METRIC_NAMES, ROUTE_METRIC_NAME, START_COMMAND_FILE
from security.stackdoc import Res, StackDoc
from tests.gateway_fixtures import stack_file
from tests.gateway_harness import TaskDefinition
from tests.scenarios import DATA_PLANE_DIGEST, DIGEST

CONTAINERS = ("data-plane", "gateway", "adot-collector")
# What Terraform sends for "$${": the literal text "${" (the stack escapes every literal template).
_ESCAPED = "$${"
_ENV_PLACEHOLDER = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")
# A Terraform reference to a resource or data source attribute: type.name.attribute.
_REFERENCE = re.compile(r"^(data\.)?[a-z0-9_]+\.[A-Za-z0-9_-]+\.[a-z0-9_]+$")


def task(stack: StackDoc) -> Res:
    return stack.resource("aws_ecs_task_definition")


def containers(stack: StackDoc) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in task(stack).json("container_definitions")}


def environment(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("environment", [])}


def log_group_of(stack: StackDoc, container: str) -> Res:
    return stack.follow(containers(stack)[container]["logConfiguration"]["options"]["awslogs-group"])


def execution_role(stack: StackDoc) -> Res:
    return stack.follow(task(stack)["execution_role_arn"])


def task_role(stack: StackDoc) -> Res:
    return stack.follow(task(stack)["task_role_arn"])


def statements(stack: StackDoc, role: Res) -> list[dict[str, Any]]:
    """Every statement of the inline policies of ``role``."""
    return [
        statement
        for policy in stack.resources("aws_iam_role_policy")
        if policy["role"] in (role.ref("id"), role.ref("name"))
        for statement in policy.json("policy")["Statement"]
    ]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted(stack: StackDoc, role: Res, action: str) -> list[dict[str, Any]]:
    """The Allow statements of ``role`` that list ``action``."""
    return [s for s in statements(stack, role) if s["Effect"] == "Allow" and action in as_list(s["Action"])]


def resources_granted(stack: StackDoc, role: Res, action: str) -> set[str]:
    return {resource for s in granted(stack, role, action) for resource in as_list(s["Resource"])}


def key_of(stack: StackDoc, key_arn: str) -> Res:
    key = stack.follow(key_arn)
    assert key.type == "aws_kms_key"
    return key


def collector_config(stack: StackDoc) -> dict[str, Any]:
    """The collector configuration as the container receives it (after Terraform's unescaping)."""
    text = environment(containers(stack)["adot-collector"])["AOT_CONFIG_CONTENT"]
    return dict(yaml.safe_load(text.replace(_ESCAPED, "${")))


def exporter_values(config: dict[str, Any], key: str) -> dict[str, str]:
    """``key`` of every exporter that sets it, by exporter."""
    return {name: exporter[key] for name, exporter in config["exporters"].items() if key in (exporter or {})}


def placeholder_variable(value: str) -> str:
    match = _ENV_PLACEHOLDER.match(value)
    assert match, f"{value!r} is not a ${{env:VARIABLE}} placeholder"
    return match[1]


# -- ECR ------------------------------------------------------------------------
# The task's own images, each with a repository: the gateway's and the data plane's.
IMAGE_REPOSITORIES = ("gateway", "data-plane")


def repository(stack: StackDoc, image: str) -> Res:
    name = f"aigw-{stack.name.removeprefix('ai-gateway-')}/{image}"
    (found,) = [r for r in stack.resources("aws_ecr_repository") if r["name"] == name]
    return found


def test_ecr_has_a_repository_for_each_image_the_task_builds_on(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    assert sorted(r["name"] for r in stack.resources("aws_ecr_repository")) == [
        "aigw-base/data-plane",
        "aigw-base/gateway",
    ]


@pytest.mark.parametrize("image", IMAGE_REPOSITORIES)
def test_ecr_repository_is_encrypted_with_a_rotating_customer_key(scenarios: dict[str, StackDoc], image: str) -> None:
    stack = scenarios["base"]
    (encryption,) = repository(stack, image)["encryption_configuration"]
    assert encryption["encryption_type"] == "KMS"
    assert key_of(stack, encryption["kms_key"])["enable_key_rotation"] is True


@pytest.mark.parametrize("image", IMAGE_REPOSITORIES)
def test_ecr_tags_are_immutable(scenarios: dict[str, StackDoc], image: str) -> None:
    assert repository(scenarios["base"], image)["image_tag_mutability"] == "IMMUTABLE"


@pytest.mark.parametrize("image", IMAGE_REPOSITORIES)
def test_ecr_scans_images_on_push(scenarios: dict[str, StackDoc], image: str) -> None:
    assert repository(scenarios["base"], image)["image_scanning_configuration"] == {"scan_on_push": True}


@pytest.mark.parametrize("image", IMAGE_REPOSITORIES)
def test_ecr_expires_all_but_the_last_ten_images(scenarios: dict[str, StackDoc], image: str) -> None:
    stack = scenarios["base"]
    lifecycle = stack.resource("aws_ecr_lifecycle_policy", {"repository": repository(stack, image).ref("name")})
    (rule,) = lifecycle.json("policy")["rules"]
    assert (rule["selection"]["countType"], rule["selection"]["countNumber"], rule["action"]["type"]) == (
        "imageCountMoreThan",
        10,
        "expire",
    )


# -- secrets --------------------------------------------------------------------
def test_one_secret_per_provider_key(scenarios: dict[str, StackDoc]) -> None:
    names = [s["name"] for s in scenarios["secure"].resources("aws_secretsmanager_secret")]
    assert sorted(names) == ["aigw-secure/providers/anthropic", "aigw-secure/providers/azure",
                             "aigw-secure/providers/openai"]  # fmt: skip


def test_secrets_are_encrypted_with_a_rotating_customer_key(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["secure"]
    for secret in stack.resources("aws_secretsmanager_secret"):
        assert key_of(stack, secret["kms_key_id"])["enable_key_rotation"] is True, secret["name"]


def test_no_secret_value_is_written_by_the_stack(scenarios: dict[str, StackDoc]) -> None:
    assert scenarios["secure"].count("aws_secretsmanager_secret_version") == 0


# -- cluster and capacity -------------------------------------------------------
def test_cluster_has_container_insights(scenarios: dict[str, StackDoc]) -> None:
    scenarios["base"].resource("aws_ecs_cluster", {"setting": [{"name": "containerInsights", "value": "enabled"}]})


def test_cluster_offers_fargate_and_fargate_spot(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    stack.resource(
        "aws_ecs_cluster_capacity_providers",
        {
            "cluster_name": stack.resource("aws_ecs_cluster").ref("name"),
            "capacity_providers": ["FARGATE", "FARGATE_SPOT"],
        },
    )


def test_service_runs_on_fargate_only_by_default(scenarios: dict[str, StackDoc]) -> None:
    strategy = scenarios["base"].resource("aws_ecs_service")["capacity_provider_strategy"]
    assert [s["capacity_provider"] for s in strategy] == ["FARGATE"]


def test_spot_weight_puts_tasks_beyond_a_fargate_base_on_fargate_spot(scenarios: dict[str, StackDoc]) -> None:
    strategy = scenarios["spot"].resource("aws_ecs_service")["capacity_provider_strategy"]
    shares = {s["capacity_provider"]: (s.get("base", 0), s["weight"]) for s in strategy}
    assert shares == {"FARGATE": (1, 1), "FARGATE_SPOT": (0, 3)}


# -- the task -------------------------------------------------------------------
@pytest.mark.parametrize(("name", "size"), [("base", ("512", "1024")), ("tuned", ("2048", "4096"))])
def test_task_size_follows_the_settings(scenarios: dict[str, StackDoc], name: str, size: tuple[str, str]) -> None:
    definition = task(scenarios[name])
    assert (definition["cpu"], definition["memory"]) == size


def test_task_runs_on_fargate_in_awsvpc_mode(scenarios: dict[str, StackDoc]) -> None:
    scenarios["base"].resource(
        "aws_ecs_task_definition", {"requires_compatibilities": ["FARGATE"], "network_mode": "awsvpc"}
    )


def test_task_runs_the_data_plane_the_gateway_and_the_collector(scenarios: dict[str, StackDoc]) -> None:
    assert sorted(containers(scenarios["base"])) == sorted(CONTAINERS)


@pytest.mark.parametrize(("container", "suffix"), [("data-plane", "/access"), ("gateway", "/gateway"),
                                                   ("adot-collector", "/collector")])  # fmt: skip
def test_each_container_logs_to_its_own_log_group(scenarios: dict[str, StackDoc], container: str, suffix: str) -> None:
    assert log_group_of(scenarios["base"], container)["name"] == f"/aigw-base{suffix}"


def test_containers_log_in_the_stacks_region(scenarios: dict[str, StackDoc]) -> None:
    regions = {c["logConfiguration"]["options"]["awslogs-region"] for c in containers(scenarios["seoul"]).values()}
    assert regions == {"ap-northeast-2"}


def test_data_plane_is_the_only_port_the_load_balancer_reaches(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    (balancer,) = stack.resource("aws_ecs_service")["load_balancer"]
    assert (balancer["container_name"], balancer["container_port"]) == ("data-plane", 8080)
    assert containers(stack)["data-plane"]["portMappings"] == [
        {"containerPort": 8080, "protocol": "tcp", "name": "http"}
    ]


def test_data_plane_starts_once_the_gateway_is_healthy(scenarios: dict[str, StackDoc]) -> None:
    data_plane = containers(scenarios["base"])["data-plane"]
    assert data_plane["dependsOn"] == [{"containerName": "gateway", "condition": "HEALTHY"}]


def test_data_plane_health_check_goes_through_to_the_gateway(scenarios: dict[str, StackDoc]) -> None:
    data_plane = containers(scenarios["base"])["data-plane"]
    assert "http://127.0.0.1:8080/health" in data_plane["healthCheck"]["command"][1]


def test_data_plane_runs_the_repository_start_script_verbatim(scenarios: dict[str, StackDoc]) -> None:
    # GIVEN the synthesized command WHEN Terraform unescapes "$${" THEN the container runs the file as written
    data_plane = containers(scenarios["base"])["data-plane"]
    assert data_plane["entryPoint"] == []
    shell, flag, script = data_plane["command"]
    assert (shell, flag) == ("/bin/sh", "-c")
    assert script.replace(_ESCAPED, "${") == START_COMMAND_FILE.read_text()


def test_terraform_interpolates_only_references_in_the_container_definitions(scenarios: dict[str, StackDoc]) -> None:
    # Every other "${…}" (the collector's ${env:…}, the data plane's start command) is escaped as "$${…}";
    # unescaped, Terraform would try to interpolate it itself and fail.
    text = task(scenarios["secure"])["container_definitions"]
    interpolated = re.findall(r"(?<!\$)\$\{([^}]*)\}", text)
    assert interpolated, "no reference at all: the log groups should be references"
    assert [name for name in interpolated if not _REFERENCE.match(name)] == []


def test_without_jwt_auth_the_data_plane_receives_no_org_key(scenarios: dict[str, StackDoc]) -> None:
    assert containers(scenarios["base"])["data-plane"]["secrets"] == []


def test_with_jwt_auth_the_data_plane_receives_each_org_key_from_its_secret(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["secure"]
    by_provider = {s["name"].rsplit("/", 1)[1]: s.ref("arn") for s in stack.resources("aws_secretsmanager_secret")}
    received = {s["name"]: s["valueFrom"] for s in containers(stack)["data-plane"]["secrets"]}
    assert received == {f"{provider.upper()}_API_KEY": arn for provider, arn in by_provider.items()}


@pytest.mark.parametrize("container", ["gateway", "adot-collector"])
def test_only_the_data_plane_receives_secrets(scenarios: dict[str, StackDoc], container: str) -> None:
    assert not containers(scenarios["secure"])[container].get("secrets")


def test_gateway_environment_carries_no_provider_key(scenarios: dict[str, StackDoc]) -> None:
    # Portkey 1.15.2 takes keys per request; tests/test_key_exfiltration.py proves what it does with variables.
    names = environment(containers(scenarios["secure"])["gateway"])
    assert not [name for name in names if "KEY" in name or "SECRET" in name or "TOKEN" in name]


def test_gateway_listens_on_its_own_port_with_a_health_check(scenarios: dict[str, StackDoc]) -> None:
    gateway = containers(scenarios["base"])["gateway"]
    assert gateway["portMappings"] == [{"containerPort": 8787, "protocol": "tcp", "name": "gateway"}]
    assert "http://127.0.0.1:8787/" in gateway["healthCheck"]["command"][1]


def test_the_collector_is_not_essential(scenarios: dict[str, StackDoc]) -> None:
    # Telemetry must not take the gateway down with it.
    essential = {name: c["essential"] for name, c in containers(scenarios["base"]).items()}
    assert essential == {"data-plane": True, "gateway": True, "adot-collector": False}


# -- the collector's configuration ----------------------------------------------
@pytest.mark.parametrize("key", ["log_group_name", "namespace"])
def test_collector_config_takes_log_groups_and_namespace_from_its_environment(
    scenarios: dict[str, StackDoc], key: str
) -> None:
    # A hard-coded group would be another environment's (or nobody's): each must be ${env:…}.
    values = exporter_values(collector_config(scenarios["base"]), key)
    assert values, f"no exporter sets {key}"
    for exporter, value in values.items():
        assert _ENV_PLACEHOLDER.match(value), f"exporters.{exporter}.{key} = {value!r} is not ${{env:…}}"


def test_collector_environment_points_each_log_group_variable_at_a_log_group_of_the_stack(
    scenarios: dict[str, StackDoc],
) -> None:
    stack = scenarios["base"]
    variables = environment(containers(stack)["adot-collector"])
    for exporter, value in exporter_values(collector_config(stack), "log_group_name").items():
        variable = placeholder_variable(value)
        assert variable in variables, f"exporters.{exporter}: {variable} is not set in the container"
        assert stack.follow(variables[variable]).type == "aws_cloudwatch_log_group", exporter


def test_collector_writes_metrics_into_the_namespace_the_task_role_may_use(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    variables = environment(containers(stack)["adot-collector"])
    (value,) = exporter_values(collector_config(stack), "namespace").values()
    (statement,) = granted(stack, task_role(stack), "cloudwatch:PutMetricData")
    assert variables[placeholder_variable(value)] == statement["Condition"]["StringEquals"]["cloudwatch:namespace"]


def test_the_collector_declares_the_metric_dimensions_the_data_plane_bounds(scenarios: dict[str, StackDoc]) -> None:
    # Undeclared, every attribute (resource attributes like the task's ARN included) would become a dimension,
    # each set of values a billed custom metric.
    emf = collector_config(scenarios["base"])["exporters"]["awsemf"]
    assert emf["dimension_rollup_option"] == "NoDimensionRollup"
    declaration, routed, in_flight = emf["metric_declarations"]
    assert declaration["dimensions"] == [["provider", "model", "team", "status"]]
    names = [re.compile(selector) for selector in declaration["metric_name_selectors"]]
    for metric in METRIC_NAMES.values():
        assert [n for n in names if n.search(metric)], metric
    assert not [n for n in names if n.search(f"x{next(iter(METRIC_NAMES.values()))}")]
    assert not [(n, m) for n in names for m in METRIC_NAMES.values() if n.search(f"{m}Total")]
    # Requests on a named route: per route (a configured name), serving provider and status.
    assert routed["dimensions"] == [["route", "provider", "status"]]
    assert routed["metric_name_selectors"] == [f"^{ROUTE_METRIC_NAME}$"]
    # Each task's gauges of what it has in flight: the environment only (autoscaling averages them over the tasks).
    assert in_flight["dimensions"] == [[IN_FLIGHT_DIMENSION]]
    assert in_flight["metric_name_selectors"] == [f"^{STREAMS_IN_FLIGHT_METRIC}$", f"^{REQUESTS_IN_FLIGHT_METRIC}$"]


def test_only_the_data_plane_feeds_the_collector_metrics(scenarios: dict[str, StackDoc]) -> None:
    config = collector_config(scenarios["base"])
    assert config["service"]["pipelines"]["metrics"]["receivers"] == ["otlp"]


def test_task_role_may_write_the_streams_of_each_collector_log_group(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    variables = environment(containers(stack)["adot-collector"])
    for value in exporter_values(collector_config(stack), "log_group_name").values():
        group = stack.follow(variables[placeholder_variable(value)])
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            assert f"{group.ref('arn')}:log-stream:*" in resources_granted(stack, task_role(stack), action), (
                group["name"],
                action,
            )


# -- the gateway image ----------------------------------------------------------
def test_gateway_image_comes_from_upstream_by_default(scenarios: dict[str, StackDoc]) -> None:
    assert containers(scenarios["base"])["gateway"]["image"] == "portkeyai/gateway:1.15.2"


def test_data_plane_image_comes_from_upstream_by_default(scenarios: dict[str, StackDoc]) -> None:
    assert containers(scenarios["base"])["data-plane"]["image"] == "openresty/openresty:1.27.1.2-alpine"


def test_images_from_ecr_keep_their_tags(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["ecr-tag"]
    images = {name: containers(stack)[name]["image"] for name in ("gateway", "data-plane")}
    assert images == {
        "gateway": f"{repository(stack, 'gateway').ref('repository_url')}:1.15.2",
        "data-plane": f"{repository(stack, 'data-plane').ref('repository_url')}:1.27.1.2-alpine",
    }


def test_images_from_ecr_keep_their_digests(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["ecr-digest"]
    images = {name: containers(stack)[name]["image"] for name in ("gateway", "data-plane")}
    assert images == {
        "gateway": f"{repository(stack, 'gateway').ref('repository_url')}@{DIGEST}",
        "data-plane": f"{repository(stack, 'data-plane').ref('repository_url')}@{DATA_PLANE_DIGEST}",
    }


def test_the_collector_image_stays_upstream_with_images_from_ecr(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["ecr-tag"]
    assert containers(stack)["adot-collector"]["image"] == containers(scenarios["base"])["adot-collector"]["image"]


# -- the execution role -----------------------------------------------------------
def test_execution_role_reads_exactly_the_secrets_the_data_plane_receives(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["secure"]
    received = {s["valueFrom"] for s in containers(stack)["data-plane"]["secrets"]}
    assert resources_granted(stack, execution_role(stack), "secretsmanager:GetSecretValue") == received


def decrypts(stack: StackDoc) -> dict[str, dict[str, Any]]:
    """The execution role's kms:Decrypt grants, by key."""
    grants = granted(stack, execution_role(stack), "kms:Decrypt")
    by_key = {grant["Resource"]: grant.get("Condition") for grant in grants}
    assert len(by_key) == len(grants), "two grants on one key"
    return by_key


def data_plane_key(stack: StackDoc) -> str:
    (bucket,) = [b for b in stack.resources("aws_s3_bucket") if "-data-plane-" in b["bucket"]]
    (encryption,) = [e for e in stack.resources("aws_s3_bucket_server_side_encryption_configuration")
                     if e["bucket"] == bucket.ref("id")]  # fmt: skip
    return str(encryption["rule"][0]["apply_server_side_encryption_by_default"]["kms_master_key_id"])


def test_execution_role_decrypts_secrets_only_through_secrets_manager(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["secure"]
    (secret, *_) = stack.resources("aws_secretsmanager_secret")
    assert decrypts(stack)[secret["kms_key_id"]] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}
    }


def test_execution_role_reads_no_secret_when_none_is_injected(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    assert granted(stack, execution_role(stack), "secretsmanager:GetSecretValue") == []
    (secret, *_) = stack.resources("aws_secretsmanager_secret")
    assert secret["kms_key_id"] not in decrypts(stack)


@pytest.mark.parametrize("scenario", ["base", "secure", "ecr-tag"])
def test_every_decrypt_of_the_execution_role_goes_through_one_service(
    scenarios: dict[str, StackDoc], scenario: str
) -> None:
    for condition in decrypts(scenarios[scenario]).values():
        assert condition is not None and list(condition) == ["StringEquals"]
        assert list(condition["StringEquals"]) == ["kms:ViaService"]


def test_execution_role_reads_the_data_plane_bundles_and_nothing_else_of_their_bucket(
    scenarios: dict[str, StackDoc],
) -> None:
    stack = scenarios["base"]
    (bucket,) = [b for b in stack.resources("aws_s3_bucket") if "-data-plane-" in b["bucket"]]
    assert resources_granted(stack, execution_role(stack), "s3:GetObject") == {f"{bucket.ref('arn')}/data-plane/*"}
    assert resources_granted(stack, execution_role(stack), "s3:GetBucketLocation") == {bucket.ref("arn")}
    assert decrypts(stack)[data_plane_key(stack)] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    actions = {action for s in statements(stack, execution_role(stack)) for action in as_list(s["Action"])}
    assert {action for action in actions if action.startswith("s3:")} == {"s3:GetObject", "s3:GetBucketLocation"}


def test_the_task_role_reads_nothing_of_the_data_plane_bundles(scenarios: dict[str, StackDoc]) -> None:
    # Its credentials reach the gateway with every Bedrock request: they must not open the bundles.
    stack = scenarios["base"]
    role = task_role(stack)
    actions = {action for s in statements(stack, role) for action in as_list(s["Action"])}
    assert not [action for action in actions if action.startswith(("s3:", "kms:"))], actions
    key = key_of(stack, data_plane_key(stack))
    assert role.ref("arn") not in json.dumps(key.body.get("policy", "")), "the key's policy names the task role"


@pytest.mark.parametrize("container", CONTAINERS)
def test_execution_role_may_write_the_log_streams_of_each_container(
    scenarios: dict[str, StackDoc], container: str
) -> None:
    # The awslogs driver creates streams and puts events in <group arn>:log-stream:<name>.
    stack = scenarios["base"]
    stream_arns = f"{log_group_of(stack, container).ref('arn')}:log-stream:*"
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        assert stream_arns in resources_granted(stack, execution_role(stack), action), action


def test_execution_role_writes_no_other_log_group(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    groups = [log_group_of(stack, container).ref("arn") for container in CONTAINERS]
    allowed = {*groups, *(f"{arn}:log-stream:*" for arn in groups)}
    assert resources_granted(stack, execution_role(stack), "logs:PutLogEvents") <= allowed


def test_execution_role_pulls_only_from_the_stacks_repositories(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["ecr-tag"]
    pulled = resources_granted(stack, execution_role(stack), "ecr:BatchGetImage")
    assert pulled == {repository(stack, image).ref("arn") for image in IMAGE_REPOSITORIES}


def test_execution_role_decrypts_image_layers_only_through_ecr(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["ecr-tag"]
    (key,) = {repository(stack, image)["encryption_configuration"][0]["kms_key"] for image in IMAGE_REPOSITORIES}
    assert decrypts(stack)[key] == {"StringEquals": {"kms:ViaService": "ecr.us-east-1.amazonaws.com"}}


def test_execution_role_has_no_ecr_access_for_an_upstream_image(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    actions = {action for s in statements(stack, execution_role(stack)) for action in as_list(s["Action"])}
    assert not [action for action in actions if action.startswith("ecr:")]


# -- the task role ------------------------------------------------------------------
def test_task_role_may_invoke_only_the_regions_foundation_models(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["seoul"]
    (resource,) = resources_granted(stack, task_role(stack), "bedrock:InvokeModel")
    assert resource.endswith(":bedrock:ap-northeast-2::foundation-model/*")


def test_task_role_may_put_metrics_only_in_the_gateway_namespace(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    (statement,) = granted(stack, task_role(stack), "cloudwatch:PutMetricData")
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "AIGateway"}}


@pytest.mark.parametrize("role", [execution_role, task_role])
def test_roles_trust_ecs_tasks_of_this_account_only(scenarios: dict[str, StackDoc], role: Any) -> None:
    stack = scenarios["base"]
    (trust,) = role(stack).json("assume_role_policy")["Statement"]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"].startswith("${data.aws_caller_identity.")
    assert ":ecs:us-east-1:" in trust["Condition"]["ArnLike"]["aws:SourceArn"]


# -- the service ----------------------------------------------------------------------
def test_service_runs_the_task_in_the_private_subnets(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["nat-per-zone"]
    private = sorted(s.ref("id") for s in stack.resources("aws_subnet", {"tags": {"Tier": "private"}}))
    assert sorted(stack.resource("aws_ecs_service")["network_configuration"]["subnets"]) == private


def test_service_tasks_get_no_public_ip(scenarios: dict[str, StackDoc]) -> None:
    scenarios["base"].resource("aws_ecs_service", {"network_configuration": {"assign_public_ip": False}})


def test_service_registers_its_tasks_with_the_target_group(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    (balancer,) = stack.resource("aws_ecs_service")["load_balancer"]
    assert balancer["target_group_arn"] == stack.resource("aws_lb_target_group").ref("arn")


def test_service_rolls_back_a_failed_deployment(scenarios: dict[str, StackDoc]) -> None:
    scenarios["base"].resource("aws_ecs_service", {"deployment_circuit_breaker": {"enable": True, "rollback": True}})


def test_service_keeps_full_capacity_while_deploying(scenarios: dict[str, StackDoc]) -> None:
    scenarios["base"].resource(
        "aws_ecs_service", {"deployment_minimum_healthy_percent": 100, "deployment_maximum_percent": 200}
    )


def test_autoscaling_owns_the_task_count_after_the_first_deploy(scenarios: dict[str, StackDoc]) -> None:
    scenarios["base"].resource("aws_ecs_service", {"lifecycle": {"ignore_changes": ["desired_count"]}})


@pytest.mark.parametrize("name", ["base", "secure"])
def test_service_waits_for_every_listener(scenarios: dict[str, StackDoc], name: str) -> None:
    # The target group must be attached to the load balancer before the service registers tasks.
    stack = scenarios[name]
    listeners = {listener.address for listener in stack.resources("aws_lb_listener")}
    assert listeners <= set(stack.resource("aws_ecs_service")["depends_on"])


def test_tasks_admit_the_data_plane_port_only_from_the_load_balancer(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    (task_group,) = stack.resource("aws_ecs_service")["network_configuration"]["security_groups"]
    (load_balancer_group,) = stack.resource("aws_lb")["security_groups"]
    ingress = stack.resources("aws_vpc_security_group_ingress_rule", {"security_group_id": task_group})
    assert [(r.get("referenced_security_group_id"), r.get("cidr_ipv4"), r["from_port"], r["to_port"])
            for r in ingress] == [(load_balancer_group, None, 8080, 8080)]  # fmt: skip


def test_tasks_reach_out_only_over_https(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    (task_group,) = stack.resource("aws_ecs_service")["network_configuration"]["security_groups"]
    egress = stack.resources("aws_vpc_security_group_egress_rule", {"security_group_id": task_group})
    assert {(r["ip_protocol"], r["from_port"], r["to_port"]) for r in egress} == {("tcp", 443, 443)}


# -- autoscaling ----------------------------------------------------------------------
@pytest.mark.parametrize(("name", "bounds"), [("base", (1, 3)), ("tuned", (2, 10))])
def test_autoscaling_bounds_follow_the_settings(
    scenarios: dict[str, StackDoc], name: str, bounds: tuple[int, int]
) -> None:
    target = scenarios[name].resource("aws_appautoscaling_target", {"scalable_dimension": "ecs:service:DesiredCount"})
    assert (target["min_capacity"], target["max_capacity"]) == bounds


def tracking(stack: StackDoc, metric: str) -> dict[str, Any]:
    policy = stack.resource(
        "aws_appautoscaling_policy",
        {"target_tracking_scaling_policy_configuration": {"predefined_metric_specification": {
            "predefined_metric_type": metric}}},
    )  # fmt: skip
    return dict(policy["target_tracking_scaling_policy_configuration"])


@pytest.mark.parametrize(("name", "percent"), [("base", 70), ("tuned", 60)])
def test_autoscaling_tracks_the_cpu_target(scenarios: dict[str, StackDoc], name: str, percent: int) -> None:
    assert tracking(scenarios[name], "ECSServiceAverageCPUUtilization")["target_value"] == percent


@pytest.mark.parametrize(("name", "requests"), [("base", 1000), ("tuned", 500)])
def test_autoscaling_tracks_the_requests_per_task(scenarios: dict[str, StackDoc], name: str, requests: int) -> None:
    assert tracking(scenarios[name], "ALBRequestCountPerTarget")["target_value"] == requests


def test_request_tracking_counts_the_load_balancers_requests_to_the_target_group(
    scenarios: dict[str, StackDoc],
) -> None:
    stack = scenarios["base"]
    label = tracking(stack, "ALBRequestCountPerTarget")["predefined_metric_specification"]["resource_label"]
    assert (
        label
        == f"{stack.resource('aws_lb').ref('arn_suffix')}/{stack.resource('aws_lb_target_group').ref('arn_suffix')}"
    )


@pytest.mark.parametrize(("scenario", "bound"), [("base", 500), ("tuned", 2000), ("saturating", 10)])
def test_a_tasks_bound_on_requests_in_flight_follows_its_cpu_unless_set(
    scenarios_outdir: Path, scenario: str, bound: int
) -> None:
    """About 1,000 per vCPU (base: 512 CPU units, tuned: 2048), or gateway.max_requests_in_flight."""
    settings = json.loads(TaskDefinition.from_stack(stack_file(scenarios_outdir, scenario)).bundle()["settings.json"])
    assert settings["max_in_flight"] == bound
