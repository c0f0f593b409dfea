"""Hybrid mode against an independent review: what a mutation run showed the
other hybrid tests let through (security-group edges, key regions, the data
service's wiring, the project's own rules on every hybrid stack), and the
review's findings, each a test that failed before its fix (Redis without a
way out, services started before what they call, partial secret ARNs,
credentials under other names or in values, template text in values, keys
and secrets in another region, MCP alone with the data service)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aigw.environments import Environment
from modules.stack import synthesize
from security.rules import Verdict, evaluate
from security.stackdoc import StackDoc
from tests.option_stacks import option_environment, option_problems
from tests.test_hybrid_settings import CERTIFICATE, KEY, REGISTRY, SECRET, SERVICE, with_hybrid

DS_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:aigw-options/hybrid/data-service-QwErTy"
AUTH = "arn:aws:secretsmanager:us-east-1:123456789012:secret:aigw-options/hybrid/redis-auth-AsDfGh"
LOG_KEY = "arn:aws:kms:eu-west-1:123456789012:key/66666666-7777-8888-9999-000000000000"
LOG_STORE = {"bucket": "portkey-logs", "region": "eu-west-1", "kms_key_arn": LOG_KEY}
VARIANTS: dict[str, dict[str, Any]] = {
    # Built-in Redis + data service + outbound PrivateLink; distinct secrets per service.
    "rv-redis-ds": with_hybrid(hybrid={
        "gateway": {"environment": {"SERVICE_NAME": "gateway", "LOG_STORE": "s3_assume"},
                    "secrets": {"PORTKEY_CLIENT_AUTH": SECRET}},
        "data_service": {"enabled": True, "secrets": {"PORTKEY_CLIENT_AUTH": DS_SECRET}},
        "log_store": LOG_STORE,
        "control_plane": {"outbound": "privatelink", "privatelink_service_name": SERVICE},
    }),
    # External ElastiCache with AUTH + data service with its own secret.
    "rv-ec-ds": with_hybrid(hybrid={
        "cache": {"backend": "elasticache", "endpoint": "master.x.use1.cache.amazonaws.com:6379",
                  "security_group_id": "sg-0123456789abcdef0", "auth_secret_arn": AUTH},
        "gateway": {"secrets": {"PORTKEY_CLIENT_AUTH": SECRET}},
        "data_service": {"enabled": True, "secrets": {"PORTKEY_CLIENT_AUTH": DS_SECRET}},
        "log_store": {"bucket": "portkey-logs"},
    }),
}  # fmt: skip


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StackDoc]:
    environments: list[Environment] = [option_environment(name, changes) for name, changes in VARIANTS.items()]
    outdir = tmp_path_factory.mktemp("hybrid-review.out")
    synthesize(environments, outdir)
    return {env.name: StackDoc.load(outdir / "stacks" / env.stack_name / "cdk.tf.json") for env in environments}


def containers(stack: StackDoc, family_suffix: str) -> list[dict[str, Any]]:
    definition = stack.resource("aws_ecs_task_definition", {"family": f"aigw-{stack.environment}-{family_suffix}"})
    return list(json.loads(definition["container_definitions"]))


def sources_admitted(stack: StackDoc, group_name: str, port: int) -> set[str]:
    group = stack.resource("aws_security_group", {"name": group_name})
    return {
        stack.follow(rule["referenced_security_group_id"])["name"]
        for rule in stack.resources("aws_vpc_security_group_ingress_rule")
        if rule["security_group_id"] == group.ref("id") and rule["from_port"] == port
    }


def problems(tmp_path: Path, changes: dict[str, Any]) -> list[str]:
    return option_problems(tmp_path, changes)


# -- what the mutation run let through --------------------------------------------------------------------------


def test_built_in_redis_admits_both_services_and_nothing_else(stacks: dict[str, StackDoc]) -> None:
    assert sources_admitted(stacks["rv-redis-ds"], "aigw-rv-redis-ds-redis", 6379) == {
        "aigw-rv-redis-ds-tasks", "aigw-rv-redis-ds-data-service"}  # fmt: skip


def test_control_plane_endpoint_admits_both_services(stacks: dict[str, StackDoc]) -> None:
    assert sources_admitted(stacks["rv-redis-ds"], "aigw-rv-redis-ds-control-plane-endpoint", 443) == {
        "aigw-rv-redis-ds-tasks", "aigw-rv-redis-ds-data-service"}  # fmt: skip


def test_log_store_key_is_usable_through_s3_in_the_buckets_region(stacks: dict[str, StackDoc]) -> None:
    stack = stacks["rv-redis-ds"]
    for role in ("gateway-task", "data-service-task"):
        iam_role = stack.resource("aws_iam_role", {"name": f"aigw-rv-redis-ds-{role}"})
        policies = [p for p in stack.resources("aws_iam_role_policy") if p["role"] == iam_role.ref("id")]
        (key,) = [
            s for p in policies for s in p.policy("policy")["Statement"] if s.get("Sid") == "LogStoreKeyThroughS3"
        ]
        assert key["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}


def test_data_service_health_check_and_albus_over_privatelink(stacks: dict[str, StackDoc]) -> None:
    (service,) = containers(stacks["rv-redis-ds"], "data-service")
    assert service["healthCheck"]["command"] == ["CMD-SHELL", "wget -qO- http://localhost:8081/health || exit 1"]
    variables = {pair["name"]: pair["value"] for pair in service["environment"]}
    assert variables["ALBUS_ENDPOINT"] == "https://aws-cp.portkey.ai/albus"


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_projects_own_rules_pass_on_every_hybrid_stack(stacks: dict[str, StackDoc], name: str) -> None:
    """AIGW-IAM3 per task definition: each execution role reads exactly its task's secrets (kills a
    gateway role that also reads the data service's, or a data-service role missing the Redis AUTH)."""
    failing = [(rule.rule_id, res.name) for rule, res, verdict in evaluate(stacks[name])
               if verdict is Verdict.NON_COMPLIANT]  # fmt: skip
    assert failing == []


@pytest.mark.parametrize("name", list(VARIANTS))
def test_cidr_egress_is_https_only(stacks: dict[str, StackDoc], name: str) -> None:
    rules = [r for r in stacks[name].resources("aws_vpc_security_group_egress_rule") if r.body.get("cidr_ipv4")]
    assert rules and all((r["ip_protocol"], r["from_port"], r["to_port"]) == ("tcp", 443, 443) for r in rules)


def test_mcp_host_equal_to_gateway_host_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(
        gateway={"server_mode": "all"}, edge={"gateway_host": "gw.example.com", "certificate_arn": CERTIFICATE},
        hybrid={"mcp_gateway_base_url": "https://gw.example.com", "mcp_host": "gw.example.com"}))  # fmt: skip
    assert any("hybrid.mcp_host: must differ from edge.gateway_host" in line for line in lines), lines


def test_allowed_cidrs_wider_than_a_16_are_refused(tmp_path: Path) -> None:
    lines = problems(
        tmp_path, with_hybrid(hybrid={"control_plane": {"inbound": "ip_allow_list", "allowed_cidrs": ["10.0.0.0/8"]}})
    )
    assert any("hybrid.control_plane.allowed_cidrs" in line and "more than a /16" in line for line in lines), lines


def test_a_credential_in_the_data_services_plain_environment_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={
        "data_service": {"enabled": True, "environment": {"PORTKEY_CLIENT_AUTH": "v"}},
        "log_store": {"bucket": "portkey-logs"}}))  # fmt: skip
    assert any("hybrid.data_service.environment.PORTKEY_CLIENT_AUTH: holds a credential" in line for line in lines)


def test_redis_password_in_a_services_secrets_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"gateway": {"secrets": {"REDIS_PASSWORD": SECRET}}}))
    assert any("hybrid.gateway.secrets.REDIS_PASSWORD: REDIS_PASSWORD is set by the stack" in line for line in lines)


@pytest.mark.parametrize("value", [f"{SECRET}:PORTKEY_CLIENT_AUTH::", f"{SECRET} pk-live-abc"])
def test_a_secret_arn_with_a_json_key_or_trailing_text_is_refused(tmp_path: Path, value: str) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"gateway": {"secrets": {"PORTKEY_CLIENT_AUTH": value}}}))
    assert any("hybrid.gateway.secrets.PORTKEY_CLIENT_AUTH: " in line for line in lines), lines
    assert not any("pk-live-abc" in line for line in lines), lines


# -- the review's findings (each failed before its fix) -------------------------------------------------------


def test_built_in_redis_tasks_can_pull_their_image_and_write_logs(stacks: dict[str, StackDoc]) -> None:
    """Fargate pulls the image, writes awslogs and runs the Service Connect agent through the task ENI:
    the Redis group needs HTTPS out (Terraform removes AWS's default allow-all egress)."""
    stack = stacks["rv-redis-ds"]
    group = stack.resource("aws_security_group", {"name": "aigw-rv-redis-ds-redis"})
    egress = [r for r in stack.resources("aws_vpc_security_group_egress_rule")
              if r["security_group_id"] == group.ref("id")]  # fmt: skip
    assert any(r["from_port"] == 443 == r["to_port"] for r in egress), egress


def test_gateway_service_starts_after_the_services_it_calls(stacks: dict[str, StackDoc]) -> None:
    """Service Connect endpoints are given to a task when it starts; the guide's module makes the gateway
    depend on Redis (and the data service on Redis) so the first tasks can resolve `redis`."""
    stack = stacks["rv-redis-ds"]
    gateway = stack.resource("aws_ecs_service", {"name": "aigw-rv-redis-ds-gateway"})
    redis = stack.resource("aws_ecs_service", {"name": "aigw-rv-redis-ds-redis"})
    assert f"{redis.type}.{redis.name}" in gateway.body.get("depends_on", [])


def test_a_partial_secret_arn_is_refused(tmp_path: Path) -> None:
    """IAM matches the secret's full ARN (name + '-' + 6 characters); a partial ARN (as in the guide's
    examples) passes validation and the execution role is then denied at task start."""
    partial = "arn:aws:secretsmanager:us-east-1:123456789012:secret:portkey-gateway/prod/client-org"
    lines = problems(tmp_path, with_hybrid(hybrid={"gateway": {"secrets": {"PORTKEY_CLIENT_AUTH": partial}}}))
    assert any("hybrid.gateway.secrets.PORTKEY_CLIENT_AUTH" in line for line in lines), lines


@pytest.mark.parametrize("name, value", [
    ("MONGO_DB_CONNECTION_URL", "mongodb://admin:hunter2@db.internal:27017"),
    ("AZURE_STORAGE_CONNECTION_STRING", "DefaultEndpointsProtocol=https;AccountKey=abc=="),
    ("OPENAI_KEY", "sk-abc"), ("REDIS_AUTH", "x"), ("SMTP_PASS", "x"), ("SERVICE_CREDENTIALS", "x"),
])  # fmt: skip
def test_credentials_under_other_names_or_in_urls_are_refused(tmp_path: Path, name: str, value: str) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid={"gateway": {"environment": {name: value}}}))
    assert any(f"hybrid.gateway.environment.{name}" in line for line in lines), lines
    assert not any(value in line for line in lines), lines


@pytest.mark.parametrize("value", ["${TfToken[TOKEN.5]}", "${aws_iam_role.x.arn}", "%{ if true }x%{ endif }"])
def test_template_text_in_a_value_is_refused(tmp_path: Path, value: str) -> None:
    """terraform_literal leaves `${TfToken[` alone (cdktf would resolve it into another resource's attribute);
    a value never needs a template, so none is accepted."""
    lines = problems(tmp_path, with_hybrid(hybrid={"gateway": {"environment": {"SERVICE_NAME": value}}}))
    assert any("hybrid.gateway.environment.SERVICE_NAME: " in line and "never as a template" in line
               for line in lines), lines  # fmt: skip


@pytest.mark.parametrize(
    "key, value",
    [("max_request_body_mib", 5), ("collector_image", "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0")],
)
def test_data_plane_only_gateway_keys_are_refused_in_hybrid_mode(tmp_path: Path, key: str, value: Any) -> None:
    lines = problems(tmp_path, with_hybrid(gateway={key: value}))
    assert any(f"gateway.{key}: not with hybrid mode" in line for line in lines), lines


def test_mcp_alone_with_the_data_service_is_refused(tmp_path: Path) -> None:
    """In `mcp` mode the gateway registers no `gateway` Service Connect name, yet the data service
    calls GATEWAY_BASE_URL=http://gateway:8787."""
    lines = problems(tmp_path, with_hybrid(gateway={"server_mode": "mcp"}, hybrid={
        "mcp_gateway_base_url": "https://mcp.example.com", "data_service": {"enabled": True},
        "log_store": {"bucket": "portkey-logs"}}))  # fmt: skip
    assert any("data_service" in line or "server_mode" in line for line in lines), lines


@pytest.mark.parametrize("changes, field", [
    ({"secrets_kms_key_arn": KEY.replace("us-east-1", "eu-west-1")}, "hybrid.secrets_kms_key_arn"),
    ({"log_store": {"bucket": "portkey-logs", "kms_key_arn": LOG_KEY}}, "hybrid.log_store.kms_key_arn"),
    ({"registry_credentials_secret_arn": REGISTRY.replace("us-east-1", "eu-west-1"), "secrets_kms_key_arn": KEY},
     "hybrid.registry_credentials_secret_arn"),
])  # fmt: skip
def test_keys_and_secrets_in_another_region_are_refused(tmp_path: Path, changes: dict, field: str) -> None:
    lines = problems(tmp_path, with_hybrid(hybrid=changes))
    assert any(f"{field}:" in line for line in lines), lines


def test_an_elasticache_port_outside_1_65535_is_refused(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        with_hybrid(
            hybrid={
                "cache": {
                    "backend": "elasticache",
                    "endpoint": "x.cache.amazonaws.com:99999",
                    "security_group_id": "sg-0123456789abcdef0",
                }
            }
        ),
    )
    assert any("hybrid.cache.endpoint" in line for line in lines), lines


def test_the_private_control_plane_url_must_be_https(tmp_path: Path) -> None:
    """PORTKEY_CLIENT_AUTH goes to these base paths."""
    lines = problems(
        tmp_path,
        with_hybrid(
            hybrid={
                "control_plane": {
                    "outbound": "privatelink",
                    "privatelink_service_name": SERVICE,
                    "privatelink_base_url": "http://cp.example.com",
                }
            }
        ),
    )
    assert any("hybrid.control_plane.privatelink_base_url" in line for line in lines), lines


def test_a_refused_url_is_not_echoed_with_its_credentials(tmp_path: Path) -> None:
    lines = problems(
        tmp_path,
        with_hybrid(
            gateway={"server_mode": "mcp"}, hybrid={"mcp_gateway_base_url": "https://user:hunter2@mcp.example.com"}
        ),
    )
    assert lines and not any("hunter2" in line for line in lines), lines
