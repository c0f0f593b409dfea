"""The service options as synthesized: autoscaling (on or off; CPU, memory
and requests targets; cooldowns), an existing VPC and ECS Exec. Each environment is the
small valid base plus the option under test (tests/option_stacks.py),
synthesized once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from security import suppressions
from security.rules import RULES, Verdict
from security.stackdoc import StackDoc
from tests.option_stacks import EXISTING_VPC, PRIVATE_SUBNET_IDS, PUBLIC_SUBNET_IDS, VPC_ID, option_environment
from tests.template import Resource, Template

OPTIONS: dict[str, dict[str, Any]] = {
    "base": {},
    "memory": {"gateway": {"memory_target_percent": 80}},
    "cooldowns": {
        "gateway": {"scale_in_cooldown_seconds": 300, "scale_out_cooldown_seconds": 30, "requests_per_target": 250}
    },
    "fixed": {"gateway": {"enable_autoscaling": False, "desired_count": 4}},
    "shared": {"network": EXISTING_VPC},
    "shared-nat": {"network": {**EXISTING_VPC, "create_nat_gateway": True, "create_vpc_endpoints": True}},
    "shared-endpoints": {"network": {**EXISTING_VPC, "create_vpc_endpoints": True}},
    "exec": {"gateway": {"enable_execute_command": True}},
    "exec-shared": {"gateway": {"enable_execute_command": True}, "network": EXISTING_VPC},
}
# What a created VPC brings that an existing one's owner keeps.
CREATED_NETWORK_TYPES = ("aws_vpc", "aws_subnet", "aws_internet_gateway", "aws_flow_log", "aws_default_security_group")


@pytest.fixture(scope="module")
def options(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    from modules.stack import synthesize

    environments = [option_environment(name, changes) for name, changes in OPTIONS.items()]
    outdir: Path = tmp_path_factory.mktemp("options.out")
    synthesize(environments, outdir)
    return {e.name: Template.load(outdir / "stacks" / e.stack_name / "cdk.tf.json") for e in environments}


def policies(stack: Template) -> dict[str, dict[str, Any]]:
    """Target-tracking configurations by predefined metric."""
    found = {}
    for policy in stack.resources("aws_appautoscaling_policy"):
        configuration = policy["target_tracking_scaling_policy_configuration"]
        found[configuration["predefined_metric_specification"]["predefined_metric_type"]] = configuration
    return found


def service(stack: Template) -> Resource:
    return stack.resource("aws_ecs_service")


# -- autoscaling ------------------------------------------------------------------
def test_default_scaling_tracks_cpu_70_and_1000_requests_with_cooldowns_120_and_60(
    options: dict[str, Template],
) -> None:
    found = policies(options["base"])
    assert sorted(found) == ["ALBRequestCountPerTarget", "ECSServiceAverageCPUUtilization"]
    assert found["ECSServiceAverageCPUUtilization"]["target_value"] == 70
    assert found["ALBRequestCountPerTarget"]["target_value"] == 1000
    assert {(c["scale_in_cooldown"], c["scale_out_cooldown"]) for c in found.values()} == {(120, 60)}


def test_memory_target_adds_a_memory_policy(options: dict[str, Template]) -> None:
    memory = policies(options["memory"])["ECSServiceAverageMemoryUtilization"]
    assert memory["target_value"] == 80
    assert "resource_label" not in memory["predefined_metric_specification"]
    policy = options["memory"].resource("aws_appautoscaling_policy", {"name": "aigw-memory-memory"})
    target = options["memory"].resource("aws_appautoscaling_target")
    assert policy["resource_id"] == target.ref("resource_id")


def test_request_policy_counts_requests_of_the_target_group_on_the_load_balancer(
    options: dict[str, Template],
) -> None:
    stack = options["cooldowns"]
    requests = policies(stack)["ALBRequestCountPerTarget"]
    assert requests["target_value"] == 250
    balancer, group = stack.resource("aws_lb"), stack.resource("aws_lb_target_group")
    assert requests["predefined_metric_specification"]["resource_label"] == (
        f"{balancer.ref('arn_suffix')}/{group.ref('arn_suffix')}"
    )


def test_cooldowns_apply_to_every_policy(options: dict[str, Template]) -> None:
    found = policies(options["cooldowns"])
    assert {(c["scale_in_cooldown"], c["scale_out_cooldown"]) for c in found.values()} == {(300, 30)}


def test_autoscaling_on_leaves_the_task_count_to_the_scaler(options: dict[str, Template]) -> None:
    assert service(options["base"])["lifecycle"] == {"ignore_changes": ["desired_count"]}
    target = options["base"].resource("aws_appautoscaling_target")
    assert (target["min_capacity"], target["max_capacity"]) == (1, 3)


def test_autoscaling_off_runs_desired_count_tasks_without_a_scaler(options: dict[str, Template]) -> None:
    stack = options["fixed"]
    assert stack.count("aws_appautoscaling_target") == 0 and stack.count("aws_appautoscaling_policy") == 0
    assert service(stack)["desired_count"] == 4
    # Terraform owns the count now: a change to desired_count must be applied, not ignored.
    assert "lifecycle" not in service(stack).props


def test_running_tasks_alarm_uses_the_fixed_count_when_autoscaling_is_off(options: dict[str, Template]) -> None:
    for name, minimum in (("base", 1), ("fixed", 4)):
        alarm = options[name].resource(
            "aws_cloudwatch_metric_alarm", {"alarm_name": f"aigw-{name}-running-tasks-below-minimum"}
        )
        assert alarm["threshold"] == minimum


# -- existing VPC -----------------------------------------------------------------
def data_source(stack: Template, data_type: str, reference: str) -> Resource:
    """The data source a ``${data.<type>.<name>.<attribute>}`` reference reads."""
    (found,) = [d for d in stack.data(data_type) if reference.startswith(f"${{data.{data_type}.{d.name}.")]
    return found


def test_existing_vpc_creates_no_vpc_subnets_gateways_flow_logs_or_endpoints(options: dict[str, Template]) -> None:
    stack = options["shared"]
    for resource_type in (*CREATED_NETWORK_TYPES, "aws_nat_gateway", "aws_eip", "aws_route_table", "aws_vpc_endpoint"):
        assert stack.count(resource_type) == 0, resource_type
    assert not [g for g in stack.resources("aws_cloudwatch_log_group") if g["name"].endswith("/vpc-flow")]
    assert not [r for r in stack.resources("aws_iam_role") if r["name"].endswith("-vpc-flow-logs")]


def test_existing_vpc_security_groups_are_created_in_that_vpc(options: dict[str, Template]) -> None:
    groups = options["shared"].resources("aws_security_group")
    assert sorted(g["name"] for g in groups) == ["aigw-shared-alb", "aigw-shared-tasks"]
    assert {g["vpc_id"] for g in groups} == {VPC_ID}
    assert options["shared"].outputs["vpc_id"]["value"] == VPC_ID


def test_tasks_run_in_the_given_private_subnets_checked_at_plan_time(options: dict[str, Template]) -> None:
    stack = options["shared"]
    subnets = service(stack)["network_configuration"]["subnets"]
    read = [data_source(stack, "aws_subnet", reference) for reference in subnets]
    assert [d["id"] for d in read] == PRIVATE_SUBNET_IDS
    for subnet in read:
        conditions = [c["condition"] for c in subnet["lifecycle"]["postcondition"]]
        assert conditions == [f'${{self.vpc_id == "{VPC_ID}"}}', "${!self.map_public_ip_on_launch}"]


def test_load_balancer_goes_into_the_given_public_subnets(options: dict[str, Template]) -> None:
    stack = options["shared"]
    read = [data_source(stack, "aws_subnet", reference) for reference in stack.resource("aws_lb")["subnets"]]
    assert [d["id"] for d in read] == PUBLIC_SUBNET_IDS
    # Public subnets must be in the VPC; whether they map public IPs is the owner's business.
    assert all(len(d["lifecycle"]["postcondition"]) == 1 for d in read)


def test_nat_gateway_in_an_existing_vpc_routes_each_private_subnet_through_it(options: dict[str, Template]) -> None:
    stack = options["shared-nat"]
    nat = stack.resource("aws_nat_gateway")
    assert data_source(stack, "aws_subnet", nat["subnet_id"])["id"] == PUBLIC_SUBNET_IDS[0]
    tables = stack.resources("aws_route_table")
    assert len(tables) == 2 and {t["vpc_id"] for t in tables} == {VPC_ID}
    for index, subnet_id in enumerate(PRIVATE_SUBNET_IDS):
        association = stack.resource("aws_route_table_association", {"route_table_id": tables[index].ref("id")})
        assert data_source(stack, "aws_subnet", association["subnet_id"])["id"] == subnet_id
        stack.resource("aws_route", {"route_table_id": tables[index].ref("id"), "nat_gateway_id": nat.ref("id")})
    s3 = stack.resource("aws_vpc_endpoint", {"vpc_endpoint_type": "Gateway"})
    assert s3["route_table_ids"] == [t.ref("id") for t in tables]


def test_endpoints_in_an_existing_vpc_admit_https_from_each_private_subnet(options: dict[str, Template]) -> None:
    stack = options["shared-endpoints"]
    assert stack.count("aws_vpc_endpoint", {"vpc_endpoint_type": "Interface", "vpc_id": VPC_ID}) == 4
    group = stack.resource("aws_security_group", {"name": "aigw-shared-endpoints-endpoints"})
    rules = stack.resources("aws_vpc_security_group_ingress_rule", {"security_group_id": group.ref("id")})
    read = [data_source(stack, "aws_subnet", rule["cidr_ipv4"]) for rule in rules]
    assert [d["id"] for d in read] == PRIVATE_SUBNET_IDS
    assert all((rule["from_port"], rule["to_port"]) == (443, 443) for rule in rules)
    # Without a NAT gateway of its own, the S3 endpoint joins the route tables the subnets already use.
    s3 = stack.resource("aws_vpc_endpoint", {"vpc_endpoint_type": "Gateway"})
    tables = [data_source(stack, "aws_route_table", reference) for reference in s3["route_table_ids"]]
    assert [t["subnet_id"] for t in tables] == service(stack)["network_configuration"]["subnets"]
    assert stack.count("aws_nat_gateway") == 0


def test_a_created_vpc_keeps_every_network_resource(options: dict[str, Template]) -> None:
    for resource_type in CREATED_NETWORK_TYPES:
        assert options["base"].count(resource_type) >= 1, resource_type


# -- ECS Exec ---------------------------------------------------------------------
def task_role_statements(stack: Template) -> dict[str, dict[str, Any]]:
    role = stack.resource("aws_iam_role", {"name": f"aigw-{stack.name.removeprefix('ai-gateway-')}-task"})
    policy = stack.resource("aws_iam_role_policy", {"role": role.ref("id")})
    return {statement["Sid"]: statement for statement in policy.json("policy")["Statement"]}


def test_exec_is_off_by_default(options: dict[str, Template]) -> None:
    stack = options["base"]
    assert "enable_execute_command" not in service(stack).props
    assert "configuration" not in stack.resource("aws_ecs_cluster").props
    assert not [g for g in stack.resources("aws_cloudwatch_log_group") if g["name"].endswith("/ecs-exec")]
    assert not [s for s in task_role_statements(stack) if s.startswith("EcsExec")]


def test_exec_turns_on_execute_command_on_the_service(options: dict[str, Template]) -> None:
    assert service(options["exec"])["enable_execute_command"] is True


def test_exec_sessions_are_logged_under_the_logs_key_and_encrypted_with_their_own_key(
    options: dict[str, Template],
) -> None:
    stack = options["exec"]
    group = stack.resource("aws_cloudwatch_log_group", {"name": "/aigw-exec/ecs-exec"})
    logs_key = stack.resource("aws_kms_key", {"description": "aigw-exec: CloudWatch Logs and alarm topic encryption"})
    exec_key = stack.resource("aws_kms_key", {"description": "aigw-exec: ECS Exec session encryption"})
    assert group["kms_key_id"] == logs_key.ref("arn") and exec_key["enable_key_rotation"] is True
    configuration = stack.resource("aws_ecs_cluster")["configuration"]["execute_command_configuration"]
    assert configuration == {
        "kms_key_id": exec_key.ref("arn"),
        "logging": "OVERRIDE",
        "log_configuration": {"cloud_watch_encryption_enabled": True, "cloud_watch_log_group_name": group.ref("name")},
    }


def test_exec_grants_the_task_role_exactly_the_session_permissions(options: dict[str, Template]) -> None:
    stack = options["exec"]
    statements = task_role_statements(stack)
    group = stack.resource("aws_cloudwatch_log_group", {"name": "/aigw-exec/ecs-exec"})
    exec_key = stack.resource("aws_kms_key", {"description": "aigw-exec: ECS Exec session encryption"})
    assert statements["EcsExecSessionChannels"]["Action"] == [
        "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
    ]  # fmt: skip
    assert statements["EcsExecSessionChannels"]["Resource"] == "*"
    assert statements["EcsExecFindLogGroup"] == {"Sid": "EcsExecFindLogGroup", "Effect": "Allow",
                                                  "Action": "logs:DescribeLogGroups", "Resource": "*"}  # fmt: skip
    assert statements["EcsExecSessionLogs"]["Resource"] == [f"{group.ref('arn')}:log-stream:*", group.ref("arn")]
    assert statements["EcsExecDecryptSessionKey"]["Action"] == "kms:Decrypt"
    assert statements["EcsExecDecryptSessionKey"]["Resource"] == exec_key.ref("arn")
    # Nothing else changes on the role: the base's statements plus these four.
    assert set(statements) - set(task_role_statements(options["base"])) == {
        "EcsExecSessionChannels", "EcsExecFindLogGroup", "EcsExecSessionLogs", "EcsExecDecryptSessionKey"}  # fmt: skip


def test_exec_sessions_reach_session_manager_through_an_endpoint_where_there_are_endpoints(
    options: dict[str, Template],
) -> None:
    def endpoint_services(stack: Template) -> set[str]:
        return {e["service_name"].rsplit(".", 1)[1] for e in stack.resources("aws_vpc_endpoint")}

    assert "ssmmessages" in endpoint_services(options["exec"])
    assert "ssmmessages" not in endpoint_services(options["base"])
    assert options["exec-shared"].count("aws_vpc_endpoint") == 0


def gate_findings(stack: Template) -> set[tuple[str, str]]:
    """(rule, construct path) of every non-compliant verdict of our rules."""
    document = StackDoc(stack.document, stack.name.removeprefix("ai-gateway-"))
    found = set()
    for rule in RULES:
        for resource_type in rule.resource_types:
            for res in document.resources(resource_type):
                if rule.check(res, document) is Verdict.NON_COMPLIANT:
                    found.add((rule.id, res.construct_path))
    return found


def test_the_gate_reports_exec_as_an_exposure_accepted_only_where_the_registry_names_the_environment(
    options: dict[str, Template],
) -> None:
    assert gate_findings(options["exec"]) == {("AIGW-ECS1", "compute/service/service")}
    assert gate_findings(options["base"]) == set()
    registry = suppressions.load()
    accepted = [s for s in registry if s.check == "AIGW-ECS1"]
    assert [(s.construct, s.environments) for s in accepted] == [("compute/service/service", ("qa",))]
    assert not any(s.covers("AIGW-ECS1", "compute/service/service", "exec") for s in registry)
