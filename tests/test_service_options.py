"""The service options as synthesized: the deployment strategy (rolling,
ECS-native blue/green, canary, linear), autoscaling (on or off; CPU, memory
and requests targets; cooldowns), an existing VPC and ECS Exec. Each
environment is the small valid base plus the option under test
(tests/option_stacks.py), synthesized once; the Portkey guide's production
example is the shipped examples/portkey-guide-prod/portkey-prod.toml.

Blue/green, canary and linear need hashicorp/aws 6.4 / 6.21 while this
machine's provider mirror holds 5.100 (tests/test_terraform_validate.py
validates these stacks without the two ECS blocks): the blocks are built
through the typed 6.25 bindings (a wrong field or type fails synthesis) and
checked here as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from security import suppressions
from security.rules import RULES, Verdict
from security.stackdoc import Res as Resource
from security.stackdoc import StackDoc
from security.stackdoc import StackDoc as Template
from tests.option_stacks import (
    CERTIFICATE_ARN,
    EXISTING_VPC,
    PRIVATE_SUBNET_IDS,
    PUBLIC_SUBNET_IDS,
    VPC_ID,
    option_environment,
)

SMOKE_FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:gateway-smoke"
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
    "blue-green": {
        "edge": {"certificate_arn": CERTIFICATE_ARN},
        "gateway": {
            "deployment": {
                "strategy": "blue_green",
                "lifecycle_hooks": {
                    "smoke": {
                        "function_arn": SMOKE_FUNCTION,
                        "stages": ["POST_TEST_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"],
                    }
                },
            }
        },
    },
    "blue-green-http": {"gateway": {"deployment": {"strategy": "blue_green", "bake_time_minutes": 0}}},
    "canary": {
        "gateway": {"deployment": {"strategy": "canary", "canary_percent": 12.5, "canary_bake_time_minutes": 15}}
    },
    "streams": {"gateway": {"streams_per_task": 250}},
    "linear": {
        "gateway": {
            "deployment": {"strategy": "linear", "linear_step_percent": 20, "bake_time_minutes": 30},
            "drain_seconds": 900,
        }
    },
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
        if "predefined_metric_specification" in configuration:
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
    assert "lifecycle" not in service(stack).body


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
    # No route tables of its own without a NAT gateway: the owner's stay untouched, so no S3 gateway endpoint.
    assert stack.count("aws_vpc_endpoint", {"vpc_endpoint_type": "Gateway"}) == 0
    assert stack.count("aws_route_table") == 0 and stack.count("aws_nat_gateway") == 0


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
    assert "enable_execute_command" not in service(stack).body
    assert "configuration" not in stack.resource("aws_ecs_cluster").body
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


# -- deployment strategy ----------------------------------------------------------
ADVANCED = ("blue-green", "blue-green-http", "canary", "linear")


def listener_rules(stack: Template) -> dict[str, Resource]:
    """Listener rules by construct name (production-rule, test-rule)."""
    return {rule.name.split("_")[1]: rule for rule in stack.resources("aws_lb_listener_rule")}


def alternate_group(stack: Template) -> Resource:
    return stack.resource("aws_lb_target_group", {"name": f"aigw-{stack.name.removeprefix('ai-gateway-')}-gw-alt"})


def primary_group(stack: Template) -> Resource:
    return stack.resource("aws_lb_target_group", {"name": f"aigw-{stack.name.removeprefix('ai-gateway-')}-gw"})


def test_rolling_deploys_as_before_with_one_target_group_and_no_rules(options: dict[str, Template]) -> None:
    stack = options["base"]
    assert "deployment_configuration" not in service(stack).body
    assert service(stack)["load_balancer"] == [
        {"container_name": "data-plane", "container_port": 8080, "target_group_arn": primary_group(stack).ref("arn")}
    ]
    assert service(stack)["deployment_circuit_breaker"] == {"enable": True, "rollback": True}
    assert stack.count("aws_lb_target_group") == 1 and stack.count("aws_lb_listener_rule") == 0
    assert not [r for r in stack.resources("aws_iam_role") if r["name"].endswith("-ecs-traffic")]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("blue-green", {"strategy": "BLUE_GREEN", "bake_time_in_minutes": "10"}),
     ("blue-green-http", {"strategy": "BLUE_GREEN", "bake_time_in_minutes": "0"}),
     ("canary", {"strategy": "CANARY", "bake_time_in_minutes": "10",
                 "canary_configuration": {"canary_percent": 12.5, "canary_bake_time_in_minutes": "15"}}),
     ("linear", {"strategy": "LINEAR", "bake_time_in_minutes": "30",
                 "linear_configuration": {"step_percent": 20, "step_bake_time_in_minutes": "6"}})],
)  # fmt: skip
def test_each_strategy_writes_its_ecs_deployment_configuration(
    options: dict[str, Template], name: str, expected: dict[str, Any]
) -> None:
    configuration = dict(service(options[name])["deployment_configuration"])
    configuration.pop("lifecycle_hook", None)
    assert configuration == expected
    # The circuit breaker keeps watching deployments of every strategy.
    assert service(options[name])["deployment_circuit_breaker"] == {"enable": True, "rollback": True}


@pytest.mark.parametrize("name", ADVANCED)
def test_traffic_shifting_strategies_get_an_alternate_target_group_like_the_primary(
    options: dict[str, Template], name: str
) -> None:
    primary, alternate = primary_group(options[name]), alternate_group(options[name])
    assert {k: v for k, v in alternate.body.items() if k not in ("//", "name")} == {
        k: v for k, v in primary.body.items() if k not in ("//", "name")
    }


@pytest.mark.parametrize(("name", "port"), [("blue-green", 443), ("blue-green-http", 80), ("canary", 80)])
def test_production_rule_forwards_every_path_on_the_listener_clients_use(
    options: dict[str, Template], name: str, port: int
) -> None:
    stack = options[name]
    rule = listener_rules(stack)["production-rule"]
    assert stack.follow(rule["listener_arn"])["port"] == port
    assert rule["priority"] == 100 and rule["condition"] == [{"path_pattern": {"values": ["/*"]}}]
    assert rule["action"] == [
        {"type": "forward", "forward": {"target_group": [
            {"arn": primary_group(stack).ref("arn"), "weight": 100},
            {"arn": alternate_group(stack).ref("arn"), "weight": 0}]}}
    ]  # fmt: skip
    # ECS re-weights the rule on every deployment; Terraform must not undo that.
    assert rule["lifecycle"] == {"ignore_changes": ["action"]}


def test_blue_green_routes_header_marked_test_traffic_through_its_own_rule_first(options: dict[str, Template]) -> None:
    stack = options["blue-green"]
    rules = listener_rules(stack)
    test_rule = rules["test-rule"]
    assert test_rule["condition"] == [{"http_header": {"http_header_name": "X-Aigw-Test-Traffic", "values": ["green"]}}]
    assert test_rule["priority"] < rules["production-rule"]["priority"]
    assert test_rule["listener_arn"] == rules["production-rule"]["listener_arn"]
    assert test_rule["action"] == rules["production-rule"]["action"]
    assert test_rule["lifecycle"] == {"ignore_changes": ["action"]}


@pytest.mark.parametrize("name", ["canary", "linear"])
def test_canary_and_linear_shift_production_traffic_without_a_test_rule(
    options: dict[str, Template], name: str
) -> None:
    assert list(listener_rules(options[name])) == ["production-rule"]
    assert "test_listener_rule" not in service(options[name])["load_balancer"][0]["advanced_configuration"]


@pytest.mark.parametrize("name", ADVANCED)
def test_service_names_the_alternate_group_the_rules_and_the_role(options: dict[str, Template], name: str) -> None:
    stack = options[name]
    rules = listener_rules(stack)
    role = stack.resource("aws_iam_role", {"name": f"aigw-{name}-ecs-traffic"})
    (balancer,) = service(stack)["load_balancer"]
    expected = {
        "alternate_target_group_arn": alternate_group(stack).ref("arn"),
        "production_listener_rule": rules["production-rule"].ref("arn"),
        "role_arn": role.ref("arn"),
    }
    if "test-rule" in rules:
        expected["test_listener_rule"] = rules["test-rule"].ref("arn")
    assert balancer["advanced_configuration"] == expected
    assert balancer["target_group_arn"] == primary_group(stack).ref("arn")
    # The service waits for its rules: ECS checks both groups are reachable through them.
    assert {f"aws_lb_listener_rule.{rule.name}" for rule in rules.values()} <= set(service(stack)["depends_on"])


@pytest.mark.parametrize("name", ADVANCED)
def test_unhealthy_target_alarm_counts_both_target_groups(options: dict[str, Template], name: str) -> None:
    # After a deployment the tasks live in the alternate group and the edge's group
    # is empty: an alarm on the edge's group alone would never fire again.
    stack = options[name]
    alarms = stack.resources("aws_cloudwatch_metric_alarm")
    (unhealthy,) = [a for a in alarms if a["alarm_name"].endswith("-unhealthy-targets")]
    queries = {query["id"]: query for query in unhealthy["metric_query"]}
    load_balancer = stack.resource("aws_lb").ref("arn_suffix")
    for query_id, group in (("primary", primary_group(stack)), ("alternate", alternate_group(stack))):
        metric = queries[query_id]["metric"]
        assert (metric["metric_name"], metric["stat"], metric["period"]) == ("UnHealthyHostCount", "Maximum", 60)
        assert metric["dimensions"] == {"TargetGroup": group.ref("arn_suffix"), "LoadBalancer": load_balancer}
    returned = [query for query in queries.values() if query.get("return_data")]
    assert [query["expression"] for query in returned] == ["FILL(primary, 0) + FILL(alternate, 0)"]
    assert (unhealthy["comparison_operator"], unhealthy["threshold"]) == ("GreaterThanThreshold", 0)


@pytest.mark.parametrize("name", ADVANCED)
def test_dashboard_charts_the_health_of_both_target_groups(options: dict[str, Template], name: str) -> None:
    stack = options[name]
    body = json.loads(stack.resource("aws_cloudwatch_dashboard")["dashboard_body"])
    (health,) = [w for w in body["widgets"] if w["properties"].get("title") == "Healthy / unhealthy targets"]
    charted = {(line[1], line[3]) for line in health["properties"]["metrics"]}
    assert charted == {
        (metric, group.ref("arn_suffix"))
        for metric in ("HealthyHostCount", "UnHealthyHostCount")
        for group in (primary_group(stack), alternate_group(stack))
    }


def test_infrastructure_role_is_trusted_by_ecs_of_this_account_and_may_touch_only_this_service(
    options: dict[str, Template],
) -> None:
    stack = options["blue-green"]
    role = stack.resource("aws_iam_role", {"name": "aigw-blue-green-ecs-traffic"})
    (trust,) = role.json("assume_role_policy")["Statement"]
    assert trust["Principal"] == {"Service": "ecs.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "${data.aws_caller_identity.caller.account_id}"}
    }
    policy = stack.resource("aws_iam_role_policy", {"role": role.ref("id")}).json("policy")
    rules = listener_rules(stack)
    assert policy["Statement"] == [
        {"Sid": "ReadLoadBalancerState", "Effect": "Allow", "Resource": "*", "Action": [
            "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeRules",
            "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetHealth"]},
        {"Sid": "RegisterTasksInBothTargetGroups", "Effect": "Allow",
         "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
         "Resource": [primary_group(stack).ref("arn"), alternate_group(stack).ref("arn")]},
        {"Sid": "ShiftTrafficOnOwnListenerRules", "Effect": "Allow", "Action": "elasticloadbalancing:ModifyRule",
         "Resource": [rules["production-rule"].ref("arn"), rules["test-rule"].ref("arn")]},
    ]  # fmt: skip


def test_lifecycle_hooks_run_through_a_role_that_may_invoke_only_their_functions(options: dict[str, Template]) -> None:
    stack = options["blue-green"]
    role = stack.resource("aws_iam_role", {"name": "aigw-blue-green-deploy-hooks"})
    assert role.json("assume_role_policy")["Statement"][0]["Principal"] == {"Service": "ecs.amazonaws.com"}
    policy = stack.resource("aws_iam_role_policy", {"role": role.ref("id")}).json("policy")
    assert policy["Statement"] == [
        {
            "Sid": "InvokeLifecycleHooks",
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": [SMOKE_FUNCTION],
        }
    ]
    # A struct in a list of blocks: a plain dict there would synthesize as an empty block.
    assert service(stack)["deployment_configuration"]["lifecycle_hook"] == [
        {"hook_target_arn": SMOKE_FUNCTION, "role_arn": role.ref("arn"),
         "lifecycle_stages": ["POST_TEST_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"]}
    ]  # fmt: skip


def test_no_hook_role_without_hooks(options: dict[str, Template]) -> None:
    assert not [r for r in options["canary"].resources("aws_iam_role") if r["name"].endswith("-deploy-hooks")]
    assert "lifecycle_hook" not in service(options["canary"])["deployment_configuration"]


@pytest.mark.parametrize("name", ADVANCED)
def test_traffic_shifting_stacks_pass_our_rules(options: dict[str, Template], name: str) -> None:
    assert gate_findings(options[name]) == set()


# -- the Portkey ECS guide's production example -----------------------------------
def test_guide_production_example_translates_alb_autoscaling_and_blue_green(stacks: dict[str, Template]) -> None:
    stack = stacks["portkey-prod"]
    # Public ALB with TLS; three zones, a NAT gateway in each.
    assert stack.resource("aws_lb")["internal"] is False
    assert stack.resource("aws_lb_listener", {"port": 443})["protocol"] == "HTTPS"
    assert stack.count("aws_subnet") == 6 and stack.count("aws_nat_gateway") == 3
    # Tasks of 1 vCPU / 2 GiB, three of them to start.
    task = stack.resource("aws_ecs_task_definition")
    assert (task["cpu"], task["memory"], service(stack)["desired_count"]) == ("1024", "2048", 3)
    # gateway_autoscaling: 3..20, CPU 70, memory 80, cooldowns 120 / 60.
    target = stack.resource("aws_appautoscaling_target")
    assert (target["min_capacity"], target["max_capacity"]) == (3, 20)
    found = policies(stack)
    assert sorted(found) == ["ECSServiceAverageCPUUtilization", "ECSServiceAverageMemoryUtilization"]
    assert found["ECSServiceAverageCPUUtilization"]["target_value"] == 70
    assert found["ECSServiceAverageMemoryUtilization"]["target_value"] == 80
    assert {(c["scale_in_cooldown"], c["scale_out_cooldown"]) for c in found.values()} == {(120, 60)}
    # gateway_deployment_configuration: enable_blue_green = true.
    assert service(stack)["deployment_configuration"] == {"strategy": "BLUE_GREEN", "bake_time_in_minutes": "15"}
    assert set(listener_rules(stack)) == {"production-rule", "test-rule"}


# -- draining: no stream cut by a deployment, within gateway.drain_seconds ------------
def test_target_groups_keep_requests_in_flight_for_the_drain_time(options: dict[str, Template]) -> None:
    assert primary_group(options["base"])["deregistration_delay"] == "300"  # the default
    linear = options["linear"]
    assert primary_group(linear)["deregistration_delay"] == "900"
    assert alternate_group(linear)["deregistration_delay"] == "900"  # the deployment's other group too


def test_the_data_plane_and_the_gateway_get_fargates_longest_stop_timeout(options: dict[str, Template]) -> None:
    from aigw.data_plane.config import DataPlaneConfig
    from aigw.data_plane.contract import DRAIN_TIMEOUT_SECONDS
    from aigw.data_plane.render import main_config

    task = options["base"].resource("aws_ecs_task_definition")
    containers = {c["name"]: c for c in json.loads(task["container_definitions"])}
    assert containers["data-plane"]["stopTimeout"] == containers["gateway"]["stopTimeout"] == 120
    # The gateway stops after the data plane: the data plane depends on it.
    assert {"containerName": "gateway", "condition": "HEALTHY"} in containers["data-plane"]["dependsOn"]
    # nginx's own bound on finishing in flight ends inside the stop timeout.
    assert f"worker_shutdown_timeout {DRAIN_TIMEOUT_SECONDS}s;" in main_config(DataPlaneConfig())
    assert DRAIN_TIMEOUT_SECONDS < 120


# -- autoscaling on streams in flight -----------------------------------------------
def stream_policy(stack: Template) -> dict[str, Any]:
    (policy,) = [p for p in stack.resources("aws_appautoscaling_policy") if p["name"].endswith("-streams")]
    return policy["target_tracking_scaling_policy_configuration"]  # type: ignore[no-any-return]


def test_streams_per_task_tracks_the_data_planes_gauge_averaged_over_the_tasks(options: dict[str, Template]) -> None:
    configuration = stream_policy(options["streams"])
    assert configuration["target_value"] == 250
    assert configuration["customized_metric_specification"] == {
        "metric_name": "StreamsInFlight",
        "namespace": "AIGateway",
        "statistic": "Average",
        "dimensions": [{"name": "environment", "value": "streams"}],
    }
    assert (configuration["scale_in_cooldown"], configuration["scale_out_cooldown"]) == (120, 60)
    # Beside the others, not instead of them.
    assert {"ECSServiceAverageCPUUtilization"} <= set(policies(options["streams"]))
    assert not [p for p in options["base"].resources("aws_appautoscaling_policy") if p["name"].endswith("-streams")]


# -- limits set on purpose ------------------------------------------------------------
def test_the_data_plane_and_the_gateway_may_open_65536_files(options: dict[str, Template]) -> None:
    task = options["base"].resource("aws_ecs_task_definition")
    containers = {c["name"]: c for c in json.loads(task["container_definitions"])}
    for name in ("data-plane", "gateway"):
        assert containers[name]["ulimits"] == [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}], name
