"""The security rules that the service options touch, each with a compliant
and a non-compliant case on small hand-written stack documents: an existing
VPC's subnets (read by data sources) for AIGW-NET1 and AIGW-NET3, ECS Exec for
AIGW-ECS1, AIGW-ECS2 and the wildcard resources its sessions need (AIGW-IAM2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from security.rules import NO_PUBLIC_IPS_CONDITION, RULES, Verdict
from security.stackdoc import Res, StackDoc

IN_VPC = '${self.vpc_id == "vpc-0a1b2c3d4e5f60718"}'


def verdict(rule_id: str, document: dict[str, Any], resource_type: str, name: str) -> Verdict:
    rule = next(r for r in RULES if r.id == rule_id)
    stack = StackDoc(document, "test")
    return rule.check(Res(resource_type, name, document["resource"][resource_type][name]), stack)


def existing_subnet(*conditions: str) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "subnet-0bb00000000000001"}
    if conditions:
        body["lifecycle"] = {"postcondition": [{"condition": c, "error_message": "no"} for c in conditions]}
    return body


# -- AIGW-NET3: tasks without public IPs ----------------------------------------------
def service_in(subnet: dict[str, Any]) -> dict[str, Any]:
    network = {"assign_public_ip": False, "subnets": ["${data.aws_subnet.private.id}"]}
    return {
        "data": {"aws_subnet": {"private": subnet}},
        "resource": {"aws_ecs_service": {"svc": {"network_configuration": network}}},
    }


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [((IN_VPC, NO_PUBLIC_IPS_CONDITION), Verdict.COMPLIANT), ((IN_VPC,), Verdict.NON_COMPLIANT),
     ((), Verdict.NON_COMPLIANT)],
)  # fmt: skip
def test_net3_existing_subnet_needs_a_postcondition_refusing_public_ips(
    conditions: tuple[str, ...], expected: Verdict
) -> None:
    assert verdict("AIGW-NET3", service_in(existing_subnet(*conditions)), "aws_ecs_service", "svc") is expected


def test_net3_unknown_subnet_reference_is_non_compliant() -> None:
    document = service_in(existing_subnet(IN_VPC, NO_PUBLIC_IPS_CONDITION))
    document["resource"]["aws_ecs_service"]["svc"]["network_configuration"]["subnets"] = ["subnet-0bb00000000000001"]
    assert verdict("AIGW-NET3", document, "aws_ecs_service", "svc") is Verdict.NON_COMPLIANT


# -- AIGW-NET1: only the load balancer open outside the VPC ----------------------------
def ingress_from(cidr: str, subnet: dict[str, Any]) -> dict[str, Any]:
    rule = {"security_group_id": "${aws_security_group.endpoints.id}", "cidr_ipv4": cidr, "from_port": 443,
            "to_port": 443}  # fmt: skip
    return {
        "data": {"aws_subnet": {"private": subnet}},
        "resource": {
            "aws_security_group": {"endpoints": {"vpc_id": "vpc-0a1b2c3d4e5f60718"}},
            "aws_vpc_security_group_ingress_rule": {"rule": rule},
        },
    }


@pytest.mark.parametrize(
    ("cidr", "conditions", "expected"),
    [("${data.aws_subnet.private.cidr_block}", (IN_VPC,), Verdict.COMPLIANT),
     ("${data.aws_subnet.private.cidr_block}", (), Verdict.NON_COMPLIANT),
     ("${data.aws_subnet.private.id}", (IN_VPC,), Verdict.NON_COMPLIANT),
     ("0.0.0.0/0", (IN_VPC,), Verdict.NON_COMPLIANT)],
)  # fmt: skip
def test_net1_existing_subnet_cidr_counts_as_inside_the_vpc_only_when_pinned_to_it(
    cidr: str, conditions: tuple[str, ...], expected: Verdict
) -> None:
    document = ingress_from(cidr, existing_subnet(*conditions))
    assert verdict("AIGW-NET1", document, "aws_vpc_security_group_ingress_rule", "rule") is expected


# -- AIGW-ECS1 / AIGW-ECS2: ECS Exec ------------------------------------------------------
LOGGED = {
    "execute_command_configuration": {
        "kms_key_id": "${aws_kms_key.exec.arn}",
        "logging": "OVERRIDE",
        "log_configuration": {"cloud_watch_log_group_name": "/x/ecs-exec", "cloud_watch_encryption_enabled": True},
    }
}


def cluster_with(exec_enabled: bool, configuration: dict[str, Any] | None) -> dict[str, Any]:
    cluster: dict[str, Any] = {"name": "c"}
    if configuration is not None:
        cluster["configuration"] = configuration
    service = {"cluster": "${aws_ecs_cluster.c.arn}", "enable_execute_command": exec_enabled}
    return {"resource": {"aws_ecs_cluster": {"c": cluster}, "aws_ecs_service": {"svc": service}}}


@pytest.mark.parametrize(("enabled", "expected"), [(False, Verdict.COMPLIANT), (True, Verdict.NON_COMPLIANT)])
def test_ecs1_exec_on_a_service_is_reported(enabled: bool, expected: Verdict) -> None:
    assert verdict("AIGW-ECS1", cluster_with(enabled, LOGGED), "aws_ecs_service", "svc") is expected


def without(path: tuple[str, ...]) -> dict[str, Any]:
    configuration = json.loads(json.dumps(LOGGED))
    node = configuration["execute_command_configuration"]
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return configuration


@pytest.mark.parametrize(
    ("enabled", "configuration", "expected"),
    [(True, LOGGED, Verdict.COMPLIANT), (False, None, Verdict.NOT_APPLICABLE), (True, None, Verdict.NON_COMPLIANT),
     (True, without(("kms_key_id",)), Verdict.NON_COMPLIANT), (True, without(("logging",)), Verdict.NON_COMPLIANT),
     (True, without(("log_configuration", "cloud_watch_encryption_enabled")), Verdict.NON_COMPLIANT),
     (True, without(("log_configuration", "cloud_watch_log_group_name")), Verdict.NON_COMPLIANT)],
)  # fmt: skip
def test_ecs2_exec_sessions_must_be_logged_encrypted_and_keyed(
    enabled: bool, configuration: dict[str, Any] | None, expected: Verdict
) -> None:
    assert verdict("AIGW-ECS2", cluster_with(enabled, configuration), "aws_ecs_cluster", "c") is expected


@pytest.mark.parametrize(
    ("actions", "expected"),
    [(["ssmmessages:CreateControlChannel", "ssmmessages:OpenDataChannel"], Verdict.COMPLIANT),
     (["logs:DescribeLogGroups"], Verdict.COMPLIANT),
     (["ssmmessages:CreateControlChannel", "logs:PutLogEvents"], Verdict.NON_COMPLIANT)],
)  # fmt: skip
def test_iam2_exec_session_actions_may_use_a_wildcard_resource(actions: list[str], expected: Verdict) -> None:
    policy = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    )
    document = {"resource": {"aws_iam_role_policy": {"p": {"role": "${aws_iam_role.r.id}", "policy": policy}}}}
    assert verdict("AIGW-IAM2", document, "aws_iam_role_policy", "p") is expected
