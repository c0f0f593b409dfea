"""Compute module: ECR, secrets, ECS cluster/task/service, IAM, autoscaling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.template import Resource, Template

ROOT = Path(__file__).resolve().parent.parent


def statements(role_policy: Resource) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in role_policy.json("policy")["Statement"]}


def role_policy(stack: Template, role_name_suffix: str) -> Resource:
    role = next(r for r in stack.resources("aws_iam_role") if r["name"].endswith(role_name_suffix))
    return stack.resource("aws_iam_role_policy", {"role": role.ref("id")})


def containers(stack: Template) -> dict[str, dict[str, Any]]:
    task = stack.resource("aws_ecs_task_definition")
    return {c["name"]: c for c in json.loads(task["container_definitions"])}


def key_by_description(stack: Template, text: str) -> Resource:
    (key,) = [k for k in stack.resources("aws_kms_key") if text in k["description"]]
    return key


def test_ecr_repository_is_kms_encrypted_immutable_and_scanned(env_stack: Template) -> None:
    repository = env_stack.resource("aws_ecr_repository")
    key = key_by_description(env_stack, "ECR")
    assert repository["encryption_configuration"] == [{"encryption_type": "KMS", "kms_key": key.ref("arn")}]
    assert repository["image_tag_mutability"] == "IMMUTABLE"
    assert repository["image_scanning_configuration"] == {"scan_on_push": True}


def test_ecr_lifecycle_keeps_the_last_ten_images(env_stack: Template) -> None:
    policy = env_stack.resource("aws_ecr_lifecycle_policy").json("policy")
    (rule,) = policy["rules"]
    assert rule["selection"]["countType"] == "imageCountMoreThan" and rule["selection"]["countNumber"] == 10
    assert rule["action"] == {"type": "expire"}


def test_kms_keys_for_ecr_and_secrets_rotate(env_stack: Template) -> None:
    for text in ("ECR", "secrets"):
        assert key_by_description(env_stack, text)["enable_key_rotation"] is True


def test_one_secret_per_provider_key_on_the_secrets_key_without_values(dev: Template, prod: Template) -> None:
    for stack, names in ((dev, ["anthropic", "openai"]), (prod, ["anthropic", "azure", "openai"])):
        key = key_by_description(stack, "secrets")
        secrets = stack.resources("aws_secretsmanager_secret")
        assert sorted(s["name"].rsplit("/", 1)[1] for s in secrets) == names
        assert all(s["kms_key_id"] == key.ref("arn") for s in secrets)
        assert stack.count("aws_secretsmanager_secret_version") == 0


def test_cluster_has_container_insights_and_fargate_capacity_providers(env_stack: Template) -> None:
    cluster = env_stack.resource("aws_ecs_cluster")
    assert cluster["setting"] == [{"name": "containerInsights", "value": "enabled"}]
    providers = env_stack.resource("aws_ecs_cluster_capacity_providers")
    assert providers["capacity_providers"] == ["FARGATE", "FARGATE_SPOT"]
    assert providers["cluster_name"] == cluster.ref("name")


def test_spot_weight_adds_fargate_spot_to_the_strategies(dev: Template, staging: Template) -> None:
    assert [s["capacity_provider"] for s in dev.resource("aws_ecs_service")["capacity_provider_strategy"]] == [
        "FARGATE"
    ]
    strategy = {s["capacity_provider"]: s for s in staging.resource("aws_ecs_service")["capacity_provider_strategy"]}
    assert strategy["FARGATE"]["base"] == 1 and strategy["FARGATE_SPOT"]["weight"] == 3


def test_task_definition_sizes_dev_small_prod_1024_2048(dev: Template, prod: Template) -> None:
    for stack, cpu, memory in ((dev, "512", "1024"), (prod, "1024", "2048")):
        task = stack.resource("aws_ecs_task_definition")
        assert (task["cpu"], task["memory"]) == (cpu, memory)
        assert task["requires_compatibilities"] == ["FARGATE"] and task["network_mode"] == "awsvpc"


def log_group(stack: Template, suffix: str) -> Resource:
    (group,) = [g for g in stack.resources("aws_cloudwatch_log_group") if g["name"].endswith(f"/{suffix}")]
    return group


def test_task_runs_the_key_proxy_the_gateway_and_the_collector(env_stack: Template) -> None:
    assert list(containers(env_stack)) == ["key-proxy", "gateway", "adot-collector"]


def test_key_proxy_is_the_entry_point_on_8080_and_starts_after_a_healthy_gateway(env_stack: Template) -> None:
    proxy = containers(env_stack)["key-proxy"]
    assert proxy["essential"] is True
    assert proxy["portMappings"] == [{"containerPort": 8080, "protocol": "tcp", "name": "http"}]
    assert proxy["dependsOn"] == [{"containerName": "gateway", "condition": "HEALTHY"}]
    assert "http://127.0.0.1:8080/health" in proxy["healthCheck"]["command"][1]
    assert proxy["logConfiguration"]["options"]["awslogs-group"] == log_group(env_stack, "access").ref("name")


def test_key_proxy_runs_the_repository_start_script_not_the_image_entrypoint(env_stack: Template) -> None:
    proxy = containers(env_stack)["key-proxy"]
    assert proxy["entryPoint"] == []
    shell, flag, script = proxy["command"]
    # Terraform turns "$${" back into "${", so the container gets the file verbatim.
    assert (shell, flag) == ("/bin/sh", "-c")
    assert script.replace("$${", "${") == (ROOT / "config" / "data-plane" / "entrypoint.sh").read_text()


def test_shell_placeholders_survive_terraform_as_literal_text(prod: Template) -> None:
    (_, _, script) = containers(prod)["key-proxy"]["command"]
    # Unescaped, Terraform would try to interpolate ${AIGW_HOME:-...} itself and fail.
    assert "$${AIGW_HOME" in script and "${AIGW_HOME" not in script.replace("$${", "")


def test_gateway_container_port_health_check_and_logs(env_stack: Template) -> None:
    gateway = containers(env_stack)["gateway"]
    assert gateway["essential"] is True
    assert gateway["portMappings"] == [{"containerPort": 8787, "protocol": "tcp", "name": "gateway"}]
    assert gateway["healthCheck"]["command"][0] == "CMD-SHELL"
    assert "http://127.0.0.1:8787/" in gateway["healthCheck"]["command"][1]
    log_options = gateway["logConfiguration"]["options"]
    assert gateway["logConfiguration"]["logDriver"] == "awslogs"
    assert log_options["awslogs-group"] == log_group(env_stack, "gateway").ref("name")
    assert log_options["awslogs-region"] == "us-east-1"


def test_gateway_gets_only_what_it_reads_and_no_keys(env_stack: Template) -> None:
    # Portkey 1.15.2 reads no OPENAI_API_KEY-style variables (keys travel per
    # request) and listens on --port, not $PORT; it does read NODE_ENV.
    # TRUSTED_CUSTOM_HOSTS names a host that cannot exist, so the gateway trusts
    # no custom host (unset, it trusts loopback); tests/test_key_exfiltration.py
    # proves what the gateway does with both.
    gateway = containers(env_stack)["gateway"]
    assert gateway["environment"] == [
        {"name": "NODE_ENV", "value": "production"},
        {"name": "TRUSTED_CUSTOM_HOSTS", "value": "no-trusted-custom-hosts.invalid"},
    ]
    assert "secrets" not in gateway


def test_org_keys_go_to_the_proxy_only_and_only_with_jwt_auth(dev: Template, prod: Template) -> None:
    assert containers(dev)["key-proxy"]["secrets"] == []
    secrets = {s["name"]: s["valueFrom"] for s in containers(prod)["key-proxy"]["secrets"]}
    arns = {s["name"].rsplit("/", 1)[1]: s.ref("arn") for s in prod.resources("aws_secretsmanager_secret")}
    assert secrets == {f"{name.upper()}_API_KEY": arn for name, arn in arns.items()}


def test_collector_sidecar_gets_the_repo_config_and_its_log_groups(env_stack: Template) -> None:
    from modules.compute.task import COLLECTOR_CONFIG

    collector = containers(env_stack)["adot-collector"]
    environment = {e["name"]: e["value"] for e in collector["environment"]}
    # Terraform turns "$${" back into "${", so the container gets the file verbatim.
    assert "${env:" not in environment["AOT_CONFIG_CONTENT"].replace("$${env:", "")
    assert environment["AOT_CONFIG_CONTENT"].replace("$${", "${") == COLLECTOR_CONFIG.read_text()
    assert environment["METRICS_NAMESPACE"] == "AIGateway"
    assert environment["EMF_LOG_GROUP"] == log_group(env_stack, "metrics").ref("name")
    assert environment["OTLP_LOG_GROUP"] == log_group(env_stack, "otlp-logs").ref("name")
    assert collector["logConfiguration"]["options"]["awslogs-group"] == log_group(env_stack, "collector").ref("name")
    assert collector["essential"] is False


def test_gateway_image_upstream_in_dev_and_from_ecr_in_prod(dev: Template, prod: Template, staging: Template) -> None:
    assert containers(dev)["gateway"]["image"] == "portkeyai/gateway:1.15.2"
    repository = prod.resource("aws_ecr_repository")
    assert containers(prod)["gateway"]["image"] == f"{repository.ref('repository_url')}:1.15.2"
    digest = "sha256:" + "0" * 64
    assert containers(staging)["gateway"]["image"] == (
        f"{staging.resource('aws_ecr_repository').ref('repository_url')}@{digest}"
    )


def test_execution_role_reads_exactly_the_injected_secrets_and_decrypts_via_secrets_manager(
    prod: Template,
) -> None:
    granted = statements(role_policy(prod, "-task-execution"))
    injected = sorted(s["valueFrom"] for s in containers(prod)["key-proxy"]["secrets"])
    assert granted["ReadProviderSecrets"]["Action"] == "secretsmanager:GetSecretValue"
    assert sorted(granted["ReadProviderSecrets"]["Resource"]) == injected
    decrypt = granted["DecryptSecretsThroughSecretsManager"]
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Resource"] == key_by_description(prod, "secrets").ref("arn")
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}


def test_execution_role_reads_no_secret_when_none_is_injected(dev: Template) -> None:
    granted = statements(role_policy(dev, "-task-execution"))
    assert "ReadProviderSecrets" not in granted and "DecryptSecretsThroughSecretsManager" not in granted


def test_execution_role_writes_only_the_container_log_groups(env_stack: Template) -> None:
    logs = statements(role_policy(env_stack, "-task-execution"))["ContainerLogs"]
    allowed = {log_group(env_stack, name).ref("arn") for name in ("access", "gateway", "collector")}
    assert {r.removesuffix(":log-stream:*") for r in logs["Resource"]} == allowed


def test_execution_role_pulls_from_ecr_only_when_the_image_comes_from_ecr(dev: Template, prod: Template) -> None:
    assert "PullGatewayImage" not in statements(role_policy(dev, "-task-execution"))
    granted = statements(role_policy(prod, "-task-execution"))
    assert granted["PullGatewayImage"]["Resource"] == prod.resource("aws_ecr_repository").ref("arn")
    assert granted["EcrLogin"] == {
        "Sid": "EcrLogin",
        "Effect": "Allow",
        "Action": "ecr:GetAuthorizationToken",
        "Resource": "*",
    }


def test_task_role_is_limited_to_bedrock_xray_metrics_namespace_and_own_logs(env_stack: Template) -> None:
    granted = statements(role_policy(env_stack, "-task"))
    assert set(granted) == {
        "InvokeBedrockFoundationModels",
        "XRayTraces",
        "MetricsInOwnNamespace",
        "CollectorLogGroups",
    }
    bedrock = granted["InvokeBedrockFoundationModels"]
    assert bedrock["Resource"].endswith(":bedrock:us-east-1::foundation-model/*")
    assert granted["MetricsInOwnNamespace"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "AIGateway"}}
    assert all(action.startswith("xray:") for action in granted["XRayTraces"]["Action"])


def test_roles_trust_ecs_tasks_of_this_account_only(env_stack: Template) -> None:
    task = env_stack.resource("aws_ecs_task_definition")
    for role in (env_stack.follow(task["execution_role_arn"]), env_stack.follow(task["task_role_arn"])):
        (trust,) = role.json("assume_role_policy")["Statement"]
        assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert trust["Condition"]["StringEquals"]["aws:SourceAccount"].startswith("${data.aws_caller_identity.")
        assert ":ecs:us-east-1:" in trust["Condition"]["ArnLike"]["aws:SourceArn"]


def test_task_definition_uses_both_roles(env_stack: Template) -> None:
    task = env_stack.resource("aws_ecs_task_definition")
    assert env_stack.follow(task["execution_role_arn"])["name"].endswith("-task-execution")
    assert env_stack.follow(task["task_role_arn"])["name"].endswith("-task")


def test_service_runs_in_private_subnets_without_public_ips_behind_the_target_group(env_stack: Template) -> None:
    service = env_stack.resource("aws_ecs_service")
    network = service["network_configuration"]
    assert network["assign_public_ip"] is False
    private = sorted(s.ref("id") for s in env_stack.resources("aws_subnet", {"tags": {"Tier": "private"}}))
    assert sorted(network["subnets"]) == private
    (balancer,) = service["load_balancer"]
    assert balancer["container_name"] == "key-proxy" and balancer["container_port"] == 8080
    assert env_stack.follow(balancer["target_group_arn"]).type == "aws_lb_target_group"


def test_service_rolls_back_failed_deployments_with_100_200_bounds(env_stack: Template) -> None:
    service = env_stack.resource("aws_ecs_service")
    assert service["deployment_circuit_breaker"] == {"enable": True, "rollback": True}
    assert (service["deployment_minimum_healthy_percent"], service["deployment_maximum_percent"]) == (100, 200)
    assert service["lifecycle"]["ignore_changes"] == ["desired_count"]


def test_service_waits_for_the_listeners(dev: Template, prod: Template) -> None:
    assert len(dev.resource("aws_ecs_service")["depends_on"]) == 1
    assert sorted(d.split(".")[0] for d in prod.resource("aws_ecs_service")["depends_on"]) == ["aws_lb_listener"] * 2


def test_task_security_group_admits_the_proxy_port_only_from_the_alb(env_stack: Template) -> None:
    service = env_stack.resource("aws_ecs_service")
    (task_group,) = service["network_configuration"]["security_groups"]
    (ingress,) = env_stack.resources("aws_vpc_security_group_ingress_rule", {"security_group_id": task_group})
    (alb_group,) = env_stack.resource("aws_lb")["security_groups"]
    assert ingress["referenced_security_group_id"] == alb_group
    assert (ingress["from_port"], ingress["to_port"], ingress["ip_protocol"]) == (8080, 8080, "tcp")
    assert "cidr_ipv4" not in ingress.props


@pytest.mark.parametrize(("name", "bounds"), [("dev", (1, 2)), ("prod", (2, 6)), ("staging", (2, 10))])
def test_autoscaling_target_uses_configured_min_and_max(stacks: dict[str, Template], name: str, bounds: tuple) -> None:
    target = stacks[name].resource("aws_appautoscaling_target")
    assert (target["min_capacity"], target["max_capacity"]) == bounds
    assert target["scalable_dimension"] == "ecs:service:DesiredCount"


def test_autoscaling_tracks_cpu_70_and_alb_requests_per_target(env_stack: Template) -> None:
    policies = {
        p["target_tracking_scaling_policy_configuration"]["predefined_metric_specification"][
            "predefined_metric_type"
        ]: p["target_tracking_scaling_policy_configuration"]
        for p in env_stack.resources("aws_appautoscaling_policy")
    }
    assert policies["ECSServiceAverageCPUUtilization"]["target_value"] == 70
    requests = policies["ALBRequestCountPerTarget"]
    assert requests["target_value"] == 1000
    alb = env_stack.resource("aws_lb")
    target_group = env_stack.resource("aws_lb_target_group")
    assert requests["predefined_metric_specification"]["resource_label"] == (
        f"{alb.ref('arn_suffix')}/{target_group.ref('arn_suffix')}"
    )
