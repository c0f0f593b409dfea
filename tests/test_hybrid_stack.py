"""Hybrid mode as the stack synthesizes it (modules/compute/hybrid.py,
aigw/hybrid_task.py): the three shipped examples (the guide's production
example translated, Gateway + MCP, and PrivateLink both ways) and variants
built here, checked as Terraform JSON. The enterprise image is licensed and
cannot run on this machine: what is proven here is what the stack hands it
(variables, secrets, roles, ports, routes), against Portkey's ECS guide and
its module, not against the image's build. Terraform validate runs on the
examples (tests/test_terraform_validate.py) against provider 5.100, which has
every resource and attribute used here; the security gate gates them
(tests/test_security_gate.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aigw.environments import Environment, load_environments
from modules.stack import synthesize
from security.stackdoc import Res, StackDoc
from tests.option_stacks import option_environment
from tests.test_hybrid_settings import HYBRID, REGISTRY, SECRET, with_hybrid

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("hybrid-guide-prod", "hybrid-mcp", "hybrid-privatelink")
ELASTICACHE_GROUP = "sg-0123456789abcdef0"
ROLE_B = "arn:aws:iam::210987654321:role/PortkeyBedrock"
VARIANTS: dict[str, dict[str, Any]] = {
    # The smallest: the enterprise gateway and the built-in Redis.
    "hyb-min": HYBRID,
    "hyb-mcp-only": with_hybrid(gateway={"server_mode": "mcp"},
                                hybrid={"mcp_gateway_base_url": "https://mcp.example.com"}),
    "hyb-elasticache": with_hybrid(hybrid={
        "cache": {"backend": "elasticache", "endpoint": "master.x.use1.cache.amazonaws.com:6380",
                  "security_group_id": ELASTICACHE_GROUP, "auth_secret_arn": SECRET},
        "data_service": {"enabled": True}, "log_store": {"bucket": "portkey-logs"},
    }),
    "hyb-ip-allow": with_hybrid(hybrid={"control_plane": {"inbound": "ip_allow_list"}}),
}  # fmt: skip


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StackDoc]:
    environments: list[Environment] = [option_environment(name, changes) for name, changes in VARIANTS.items()]
    for example in EXAMPLES:
        environments += load_environments(ROOT / "examples" / example)
    outdir = tmp_path_factory.mktemp("hybrid.out")
    synthesize(environments, outdir)
    return {env.name: StackDoc.load(outdir / "stacks" / env.stack_name / "cdk.tf.json") for env in environments}


def containers(stack: StackDoc, family_suffix: str = "gateway") -> list[dict[str, Any]]:
    definition = stack.resource("aws_ecs_task_definition", {"family": f"aigw-{stack.environment}-{family_suffix}"})
    return list(json.loads(definition["container_definitions"]))


def variables(container: dict[str, Any]) -> dict[str, str]:
    return {pair["name"]: pair["value"] for pair in container["environment"]}


def role_statements(stack: StackDoc, role_name: str) -> list[dict[str, Any]]:
    role = stack.resource("aws_iam_role", {"name": role_name})
    policies = [p for p in stack.resources("aws_iam_role_policy") if p["role"] == role.ref("id")]
    return [s for p in policies for s in (p.policy("policy") or {})["Statement"]]


def statement(statements: list[dict[str, Any]], sid: str) -> dict[str, Any]:
    (found,) = [s for s in statements if s.get("Sid") == sid]
    return found


def ingress_from(stack: StackDoc, target: Res, source: Res, port: int) -> bool:
    return any(
        rule["security_group_id"] == target.ref("id")
        and rule["referenced_security_group_id"] == source.ref("id")
        and rule["from_port"] == port == rule["to_port"]
        for rule in stack.resources("aws_vpc_security_group_ingress_rule")
    )


# -- the task: one container, the enterprise image, its variables and secrets ---------------------------------


def test_the_task_runs_the_enterprise_gateway_alone_with_the_registry_credentials(stacks: dict[str, StackDoc]) -> None:
    (gateway,) = containers(stacks["hybrid-prod"])  # no data plane, no collector
    assert gateway["name"] == "gateway"
    assert gateway["image"] == "portkeyai/gateway_enterprise:2.16.0"
    registry = (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:aigw-hybrid-prod/hybrid/registry-credentials-AbCdEf"
    )
    assert gateway["repositoryCredentials"] == {"credentialsParameter": registry}
    assert gateway["portMappings"] == [{"containerPort": 8787, "protocol": "tcp", "name": "gateway",
                                        "appProtocol": "http"}]  # fmt: skip
    assert gateway["healthCheck"]["command"] == ["CMD-SHELL", "wget -qO- http://localhost:8787/v1/health || exit 1"]


def test_the_gateway_service_waits_for_the_enterprise_gateway_as_the_guide_does(stacks: dict[str, StackDoc]) -> None:
    service = stacks["hyb-min"].resource("aws_ecs_service", {"name": "aigw-hyb-min-gateway"})
    assert service["health_check_grace_period_seconds"] == 150


def test_no_data_plane_is_built_in_hybrid_mode(stacks: dict[str, StackDoc]) -> None:
    stack = stacks["hyb-min"]
    assert stack.count("aws_s3_object") == 0  # the data plane's bundle
    assert not [b for b in stack.resources("aws_s3_bucket") if "data-plane" in str(b.get("bucket"))]
    assert stack.count("aws_secretsmanager_secret") == 0  # no provider keys: they live in the control plane


@pytest.mark.parametrize("name", [*VARIANTS, "hybrid-prod", "hybrid-mcp", "hybrid-private"])
def test_nothing_only_the_oss_gateway_or_its_data_plane_uses_is_created(stacks: dict[str, StackDoc], name: str) -> None:
    # Hybrid mode refuses JWT auth, pulls Portkey's image, keeps provider keys in the control plane and
    # writes no access log: no pool whose clients nothing checks, no repositories, keys or empty log groups.
    stack = stacks[name]
    prefix = f"aigw-{stack.environment}"
    for kind in ("aws_cognito_user_pool", "aws_cognito_user_pool_client", "aws_cognito_user_pool_domain",
                 "aws_ecr_repository", "aws_cloudwatch_query_definition"):  # fmt: skip
        assert stack.count(kind) == 0, kind
    aliases = {alias["name"] for alias in stack.resources("aws_kms_alias")}
    assert f"alias/{prefix}-logs" in aliases and not aliases & {f"alias/{prefix}-ecr", f"alias/{prefix}-secrets"}
    groups = {group["name"] for group in stack.resources("aws_cloudwatch_log_group")}
    assert f"/{prefix}/gateway" in groups
    assert not groups & {f"/{prefix}/{stream}" for stream in ("access", "collector", "otlp-logs", "metrics")}
    (dashboard,) = stack.resources("aws_cloudwatch_dashboard")
    widgets = json.loads(dashboard["dashboard_body"])["widgets"]
    assert widgets and all(widget["type"] == "metric" for widget in widgets)  # no panels over an access log
    values = {name: output["value"] for name, output in stack.outputs.items()}
    assert values["cognito_user_pool_id"] == values["cognito_token_endpoint"] == values["ecr_repository_url"] == ""
    assert values["data_plane_ecr_repository_url"] == "" and values["cognito_scopes"] == []
    assert values["cognito_client_ids"] == values["cognito_client_secrets"] == values["provider_secret_arns"] == {}


def test_the_guides_variables_are_set_from_the_settings_and_the_operators_pass_through(
    stacks: dict[str, StackDoc],
) -> None:
    (gateway,) = containers(stacks["hybrid-prod"])
    assert variables(gateway) == {
        # the operator's, from [hybrid.gateway.environment]
        "SERVICE_NAME": "gateway", "ANALYTICS_STORE": "control_plane", "LOG_STORE": "s3_assume",
        # the stack's, as the guide's module sets them
        "PORT": "8787",
        "CACHE_STORE": "aws-elastic-cache",
        "REDIS_URL": "prod-redis.abc123.clustercfg.use1.cache.amazonaws.com:6379",
        "REDIS_TLS_ENABLED": "true",
        "REDIS_MODE": "cluster",
        "LOG_STORE_REGION": "us-east-1",
        "LOG_STORE_GENERATIONS_BUCKET": "portkey-prod-logs",
        "DATASERVICE_BASEPATH": "http://data-service:8081",
    }  # fmt: skip


def test_secrets_are_injected_from_the_json_key_of_their_own_name(stacks: dict[str, StackDoc]) -> None:
    (gateway,) = containers(stacks["hyb-elasticache"])
    assert gateway["secrets"] == [
        {"name": "REDIS_PASSWORD", "valueFrom": f"{SECRET}:REDIS_PASSWORD::"},
    ]
    (data_service,) = containers(stacks["hyb-elasticache"], "data-service")
    assert {"name": "REDIS_PASSWORD", "valueFrom": f"{SECRET}:REDIS_PASSWORD::"} in data_service["secrets"]


def test_the_execution_role_reads_exactly_the_tasks_secrets_and_decrypts_only_through_secrets_manager(
    stacks: dict[str, StackDoc],
) -> None:
    stack = stacks["hybrid-prod"]
    statements = role_statements(stack, "aigw-hybrid-prod-gateway-execution")
    read = statement(statements, "ReadHybridSecrets")
    assert read["Action"] == "secretsmanager:GetSecretValue"
    assert read["Resource"] == sorted({
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:aigw-hybrid-prod/hybrid/registry-credentials-AbCdEf",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:aigw-hybrid-prod/hybrid/client-org-XyZ123",
    })  # fmt: skip
    decrypt = statement(statements, "DecryptHybridSecretsThroughSecretsManager")
    assert decrypt["Resource"] == "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}


def test_without_a_customer_key_no_kms_permission_is_granted(stacks: dict[str, StackDoc]) -> None:
    statements = role_statements(stacks["hyb-min"], "aigw-hyb-min-gateway-execution")
    assert not [s for s in statements if "kms" in json.dumps(s.get("Action"))]
    assert statement(statements, "ReadHybridSecrets")["Resource"] == [REGISTRY]


# -- server modes: the MCP gateway ----------------------------------------------------------------------------


def test_all_serves_each_gateway_by_host_through_its_own_target_group(stacks: dict[str, StackDoc]) -> None:
    stack = stacks["hybrid-mcp"]
    (gateway,) = containers(stack)
    assert [m["containerPort"] for m in gateway["portMappings"]] == [8787, 8788]
    assert {k: v for k, v in variables(gateway).items() if k in ("SERVER_MODE", "MCP_PORT", "MCP_GATEWAY_BASE_URL")} \
        == {"SERVER_MODE": "all", "MCP_PORT": "8788", "MCP_GATEWAY_BASE_URL": "https://mcp.example.com"}  # fmt: skip
    groups = {g["port"]: g for g in stack.resources("aws_lb_target_group")}
    assert sorted(groups) == [8787, 8788]
    assert all(g["health_check"]["path"] == "/v1/health" for g in groups.values())
    rules = {r["condition"][0]["host_header"]["values"][0]: r for r in stack.resources("aws_lb_listener_rule")}
    assert sorted(rules) == ["gateway.example.com", "mcp.example.com"]
    assert rules["mcp.example.com"]["action"][0]["target_group_arn"] == groups[8788].ref("arn")
    assert rules["gateway.example.com"]["action"][0]["target_group_arn"] == groups[8787].ref("arn")
    service = stack.resource("aws_ecs_service", {"name": "aigw-hybrid-mcp-gateway"})
    assert [(b["container_name"], b["container_port"], b["target_group_arn"]) for b in service["load_balancer"]] == [
        ("gateway", 8787, groups[8787].ref("arn")), ("gateway", 8788, groups[8788].ref("arn")),
    ]  # fmt: skip


def test_the_load_balancer_reaches_the_tasks_on_the_served_ports_only(stacks: dict[str, StackDoc]) -> None:
    stack = stacks["hybrid-mcp"]
    tasks = stack.resource("aws_security_group", {"name": "aigw-hybrid-mcp-tasks"})
    lb = stack.resource("aws_security_group", {"name": "aigw-hybrid-mcp-alb"})
    ports = sorted(r["from_port"] for r in stack.resources("aws_vpc_security_group_ingress_rule")
                   if r["security_group_id"] == tasks.ref("id"))  # fmt: skip
    assert ports == [8787, 8788]
    assert ingress_from(stack, tasks, lb, 8787) and ingress_from(stack, tasks, lb, 8788)


def test_mcp_alone_serves_port_8788_as_the_primary(stacks: dict[str, StackDoc]) -> None:
    stack = stacks["hyb-mcp-only"]
    (gateway,) = containers(stack)
    assert [m["containerPort"] for m in gateway["portMappings"]] == [8788]
    assert gateway["healthCheck"]["command"][1] == "wget -qO- http://localhost:8788/v1/health || exit 1"
    (group,) = stack.resources("aws_lb_target_group")
    assert group["port"] == 8788


# -- the cache ------------------------------------------------------------------------------------------------


def test_the_built_in_redis_is_a_service_reached_only_through_service_connect(stacks: dict[str, StackDoc]) -> None:
    stack = stacks["hyb-min"]
    (redis,) = containers(stack, "redis")
    assert redis["image"] == "redis:7.2-alpine"
    assert "repositoryCredentials" not in redis
    service = stack.resource("aws_ecs_service", {"name": "aigw-hyb-min-redis"})
    assert "load_balancer" not in service.body
    assert service["network_configuration"]["assign_public_ip"] is False
    (connect,) = service["service_connect_configuration"]["service"]
    assert connect["client_alias"] == {"port": 6379, "dns_name": "redis"}
    group = stack.resource("aws_security_group", {"name": "aigw-hyb-min-redis"})
    tasks = stack.resource("aws_security_group", {"name": "aigw-hyb-min-tasks"})
    admitted = [r for r in stack.resources("aws_vpc_security_group_ingress_rule")
                if r["security_group_id"] == group.ref("id")]  # fmt: skip
    assert [(r["referenced_security_group_id"], r["from_port"]) for r in admitted] == [(tasks.ref("id"), 6379)]
    (gateway,) = containers(stack)
    assert variables(gateway)["REDIS_URL"] == "redis://redis:6379"
    gateway_service = stack.resource("aws_ecs_service", {"name": "aigw-hyb-min-gateway"})
    assert gateway_service["service_connect_configuration"]["enabled"] is True


def test_an_existing_elasticache_admits_both_services_on_its_port(stacks: dict[str, StackDoc]) -> None:
    stack = stacks["hyb-elasticache"]
    rules = [r for r in stack.resources("aws_vpc_security_group_ingress_rule")
             if r["security_group_id"] == ELASTICACHE_GROUP]  # fmt: skip
    sources = {stack.follow(r["referenced_security_group_id"])["name"] for r in rules}
    assert sources == {"aigw-hyb-elasticache-tasks", "aigw-hyb-elasticache-data-service"}
    assert {r["from_port"] for r in rules} == {6380}


def test_the_serverless_cache_is_the_stacks_own_store_over_tls(stacks: dict[str, StackDoc]) -> None:
    stack = stacks["hybrid-private"]
    cache = stack.resource("aws_elasticache_serverless_cache")
    (gateway,) = containers(stack)
    found = variables(gateway)
    assert found["REDIS_TLS_ENABLED"] == "true"
    assert (
        found["REDIS_URL"]
        == f"${{{cache.type}.{cache.name}.endpoint[0].address}}:${{{cache.type}.{cache.name}.endpoint[0].port}}"
    )
    store_group = stack.follow(cache["security_group_ids"][0])
    tasks = stack.resource("aws_security_group", {"name": "aigw-hybrid-private-tasks"})
    data_service = stack.resource("aws_security_group", {"name": "aigw-hybrid-private-data-service"})
    assert ingress_from(stack, store_group, tasks, 6379) and ingress_from(stack, store_group, data_service, 6379)


# -- the data service -----------------------------------------------------------------------------------------


def test_the_data_service_is_its_own_autoscaled_service_in_the_namespace(stacks: dict[str, StackDoc]) -> None:
    stack = stacks["hybrid-private"]
    service = stack.resource("aws_ecs_service", {"name": "aigw-hybrid-private-data-service"})
    namespace = stack.resource("aws_service_discovery_http_namespace")
    assert service["service_connect_configuration"]["namespace"] == namespace.ref("arn")
    assert service["deployment_circuit_breaker"] == {"enable": True, "rollback": True}
    target = stack.resource("aws_appautoscaling_target", {"min_capacity": 1, "max_capacity": 4})
    assert target["resource_id"] == f"service/aigw-hybrid-private-cluster/{service.ref('name')}"
    (container,) = containers(stack, "data-service")
    found = variables(container)
    assert found["GATEWAY_BASE_URL"] == "http://gateway:8787"
    assert (found["LOG_EXPORTS_BUCKET"], found["FINETUNES_BUCKET"], found["AWS_S3_FINETUNE_BUCKET"]) == (
        "portkey-private-exports", "portkey-private-finetune", "portkey-private-finetune")  # fmt: skip
    gateway = stack.resource("aws_security_group", {"name": "aigw-hybrid-private-tasks"})
    group = stack.resource("aws_security_group", {"name": "aigw-hybrid-private-data-service"})
    assert ingress_from(stack, group, gateway, 8081) and ingress_from(stack, gateway, group, 8787)


# -- the log store and Bedrock --------------------------------------------------------------------------------


def test_each_service_gets_exactly_the_guides_object_permissions_on_the_log_store(
    stacks: dict[str, StackDoc],
) -> None:
    stack = stacks["hybrid-private"]
    objects = [f"arn:${{data.aws_partition.partition.partition}}:s3:::{b}/*"
               for b in ("portkey-private-logs", "portkey-private-exports", "portkey-private-finetune")]  # fmt: skip
    gateway = statement(role_statements(stack, "aigw-hybrid-private-gateway-task"), "LogStoreObjects")
    assert (gateway["Action"], gateway["Resource"]) == (["s3:GetObject", "s3:PutObject"], objects)
    data = statement(role_statements(stack, "aigw-hybrid-private-data-service-task"), "LogStoreObjects")
    assert data["Action"] == ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    assert data["Resource"] == objects


def test_a_customer_key_on_the_log_store_is_usable_through_s3_only(stacks: dict[str, StackDoc]) -> None:
    statements = role_statements(stacks["hybrid-mcp"], "aigw-hybrid-mcp-gateway-task")
    key = statement(statements, "LogStoreKeyThroughS3")
    assert key["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"]
    assert key["Resource"] == "arn:aws:kms:us-east-1:123456789012:key/66666666-7777-8888-9999-000000000000"
    assert key["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}


def test_same_account_bedrock_attaches_the_operators_policy_and_grants_nothing_else(
    stacks: dict[str, StackDoc],
) -> None:
    stack = stacks["hybrid-mcp"]
    (attachment,) = stack.resources("aws_iam_role_policy_attachment")
    assert attachment["policy_arn"] == "arn:aws:iam::123456789012:policy/portkey-bedrock-invoke"
    role = stack.resource("aws_iam_role", {"name": "aigw-hybrid-mcp-gateway-task"})
    assert attachment["role"] == role.ref("name")
    statements = role_statements(stack, "aigw-hybrid-mcp-gateway-task")
    assert not [s for s in statements if "bedrock:" in json.dumps(s["Action"]) or "sts:" in json.dumps(s["Action"])]


def test_cross_account_bedrock_may_assume_exactly_the_role_there(stacks: dict[str, StackDoc]) -> None:
    statements = role_statements(stacks["hybrid-private"], "aigw-hybrid-private-gateway-task")
    assume = statement(statements, "AssumeBedrockAccountRole")
    assert (assume["Action"], assume["Resource"]) == (
        "sts:AssumeRole", "arn:aws:iam::210987654321:role/PortkeyGatewayBedrockCrossAccount")  # fmt: skip
    assert "gateway_task_role_arn" in stacks["hybrid-private"].outputs


# -- the control plane ----------------------------------------------------------------------------------------


def test_outbound_privatelink_is_a_private_dns_endpoint_open_to_the_tasks_on_443(stacks: dict[str, StackDoc]) -> None:
    stack = stacks["hybrid-mcp"]
    endpoint = stack.resource("aws_vpc_endpoint",
                              {"service_name": "com.amazonaws.vpce.us-east-1.vpce-svc-0c2c1c323d9f56d95"})  # fmt: skip
    assert (endpoint["vpc_endpoint_type"], endpoint["private_dns_enabled"]) == ("Interface", True)
    (group_ref,) = endpoint["security_group_ids"]
    group = stack.follow(group_ref)
    admitted = [r for r in stack.resources("aws_vpc_security_group_ingress_rule")
                if r["security_group_id"] == group.ref("id")]  # fmt: skip
    tasks = stack.resource("aws_security_group", {"name": "aigw-hybrid-mcp-tasks"})
    assert [(r["referenced_security_group_id"], r["from_port"]) for r in admitted] == [(tasks.ref("id"), 443)]
    (gateway,) = containers(stack)
    assert {k: v for k, v in variables(gateway).items() if k.endswith(("BASEPATH", "READER_PATH"))} == {
        "ALBUS_BASEPATH": "https://aws-cp.portkey.ai/albus",
        "CONTROL_PLANE_BASEPATH": "https://aws-cp.portkey.ai/api/v1",
        "SOURCE_SYNC_API_BASEPATH": "https://aws-cp.portkey.ai/api/v1/sync",
        "CONFIG_READER_PATH": "https://aws-cp.portkey.ai/api/model-configs",
    }


def test_over_the_internet_no_base_path_is_switched(stacks: dict[str, StackDoc]) -> None:
    (gateway,) = containers(stacks["hybrid-prod"])
    switched = ("ALBUS_BASEPATH", "CONTROL_PLANE_BASEPATH", "SOURCE_SYNC_API_BASEPATH", "CONFIG_READER_PATH")
    assert not [name for name in variables(gateway) if name in switched]


def test_inbound_privatelink_is_an_endpoint_service_on_the_nlb_with_acceptance_required(
    stacks: dict[str, StackDoc],
) -> None:
    stack = stacks["hybrid-private"]
    service = stack.resource("aws_vpc_endpoint_service")
    nlb = stack.resource("aws_lb", {"load_balancer_type": "network"})
    assert service["network_load_balancer_arns"] == [nlb.ref("arn")]
    assert service["acceptance_required"] is True
    assert service["allowed_principals"] == ["arn:aws:iam::299329113195:root"]
    # The consumers' endpoint addresses are unknown here: the NLB's group does not filter PrivateLink traffic.
    assert nlb["enforce_security_group_inbound_rules_on_private_link_traffic"] == "off"
    assert stack.outputs["control_plane_endpoint_service_name"]["value"] == service.ref("service_name")


def test_without_inbound_privatelink_the_nlb_keeps_filtering(stacks: dict[str, StackDoc]) -> None:
    assert stacks["hyb-min"].count("aws_vpc_endpoint_service") == 0
    lb = stacks["hyb-min"].resource("aws_lb")
    assert "enforce_security_group_inbound_rules_on_private_link_traffic" not in lb.body
    assert stacks["hyb-min"].outputs["control_plane_endpoint_service_name"]["value"] == ""


def test_ip_allow_listing_admits_the_control_planes_addresses_on_the_listener(stacks: dict[str, StackDoc]) -> None:
    stack = stacks["hyb-ip-allow"]
    lb = stack.resource("aws_security_group", {"name": "aigw-hyb-ip-allow-alb"})
    cidrs = {r["cidr_ipv4"] for r in stack.resources("aws_vpc_security_group_ingress_rule")
             if r["security_group_id"] == lb.ref("id")}  # fmt: skip
    assert cidrs == {"203.0.113.0/24", "54.81.226.149/32", "34.200.113.35/32", "44.221.117.129/32"}
