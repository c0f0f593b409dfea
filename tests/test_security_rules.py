"""Each security rule has a compliant and a non-compliant case (cdk-nag style),
on small hand-written stack documents."""

from __future__ import annotations

import json
from typing import Any

import pytest

from security.rules import RULES, Rule, Verdict
from security.stackdoc import Res, StackDoc

ACCOUNT = "${data.aws_caller_identity.caller.account_id}"


def doc(resources: dict[str, dict[str, dict[str, Any]]]) -> StackDoc:
    return StackDoc({"resource": resources}, "test")


def rule(rule_id: str) -> Rule:
    return next(r for r in RULES if r.id == rule_id)


def verdict(rule_id: str, stack: StackDoc, resource_type: str, name: str) -> Verdict:
    body = stack.document["resource"][resource_type][name]
    return rule(rule_id).check(Res(resource_type, name, body), stack)


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def role_policy(*statements: dict[str, Any]) -> StackDoc:
    return doc({"aws_iam_role_policy": {"p": {"role": "${aws_iam_role.r.id}", "policy": policy(*statements)}}})


def test_every_rule_is_documented_and_unique() -> None:
    assert len({r.id for r in RULES}) == len(RULES)
    assert all(r.cause and r.explanation and r.resource_types for r in RULES)


@pytest.mark.parametrize(
    ("action", "expected"),
    [("logs:PutLogEvents", Verdict.COMPLIANT), ("*", Verdict.NON_COMPLIANT), ("s3:*", Verdict.NON_COMPLIANT)],
)
def test_iam1_wildcard_actions(action: str, expected: Verdict) -> None:
    stack = role_policy({"Effect": "Allow", "Action": [action], "Resource": "arn:aws:logs:x"})
    assert verdict("AIGW-IAM1", stack, "aws_iam_role_policy", "p") is expected


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ({"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}, Verdict.COMPLIANT),
        ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}, Verdict.NON_COMPLIANT),
        (
            {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
             "Condition": {"StringEquals": {"cloudwatch:namespace": "AIGateway"}}},
            Verdict.COMPLIANT,
        ),
        ({"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"}, Verdict.NON_COMPLIANT),
    ],
)  # fmt: skip
def test_iam2_wildcard_resources(statement: dict[str, Any], expected: Verdict) -> None:
    assert verdict("AIGW-IAM2", role_policy(statement), "aws_iam_role_policy", "p") is expected


def execution_stack(readable: list[str], secrets: dict[str, list[str]]) -> StackDoc:
    """A task whose execution role may read ``readable``, and whose containers receive ``secrets`` (by container)."""
    containers = [
        {"name": name, "secrets": [{"name": f"K{i}", "valueFrom": arn} for i, arn in enumerate(arns)]}
        for name, arns in secrets.items()
    ]
    return doc(
        {
            "aws_iam_role": {"exec": {"name": "exec"}},
            "aws_iam_role_policy": {
                "p": {
                    "role": "${aws_iam_role.exec.id}",
                    "policy": policy(
                        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": readable}
                    ),
                }
            },
            "aws_ecs_task_definition": {
                "task": {
                    "execution_role_arn": "${aws_iam_role.exec.arn}",
                    "container_definitions": json.dumps(containers),
                }
            },
        }
    )


@pytest.mark.parametrize(
    ("readable", "secrets"),
    [(["a", "b"], {"data-plane": ["a", "b"], "gateway": [], "adot-collector": []}),
     ([], {"data-plane": [], "gateway": [], "adot-collector": []})],
)  # fmt: skip
def test_iam3_compliant_when_the_role_reads_exactly_what_the_data_plane_receives(
    readable: list[str], secrets: dict[str, list[str]]
) -> None:
    stack = execution_stack(readable, secrets)
    assert verdict("AIGW-IAM3", stack, "aws_ecs_task_definition", "task") is Verdict.COMPLIANT


@pytest.mark.parametrize(
    ("readable", "secrets"),
    [(["a", "b"], {"data-plane": ["a"]}), (["a"], {"data-plane": ["a", "b"]})],
    ids=["reads-one-not-received", "misses-one-received"],
)
def test_iam3_non_compliant_when_the_role_reads_other_secrets_than_received(
    readable: list[str], secrets: dict[str, list[str]]
) -> None:
    stack = execution_stack(readable, secrets)
    assert verdict("AIGW-IAM3", stack, "aws_ecs_task_definition", "task") is Verdict.NON_COMPLIANT


@pytest.mark.parametrize(
    ("readable", "secrets"),
    [(["a"], {"data-plane": ["a"], "gateway": ["a"]}), (["a"], {"data-plane": [], "gateway": ["a"]}),
     (["a", "b"], {"data-plane": ["a"], "gateway": ["b"]}), (["a"], {"data-plane": [], "adot-collector": ["a"]})],
    ids=["gateway-too", "gateway-instead", "one-each", "collector"],
)  # fmt: skip
def test_iam3_non_compliant_when_a_container_other_than_the_data_plane_receives_a_secret(
    readable: list[str], secrets: dict[str, list[str]]
) -> None:
    # The gateway (and the collector) must never hold a provider key, even one the role may read.
    stack = execution_stack(readable, secrets)
    assert verdict("AIGW-IAM3", stack, "aws_ecs_task_definition", "task") is Verdict.NON_COMPLIANT


KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY,
          "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}},
         Verdict.COMPLIANT),
        ({"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": KEY}, Verdict.NON_COMPLIANT),
        ({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY}, Verdict.NON_COMPLIANT),
        ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}, Verdict.COMPLIANT),
    ],
    ids=["through-secrets-manager", "direct-generate-and-decrypt", "direct-decrypt", "no-kms"],
)  # fmt: skip
def test_iam5_kms_use_only_through_a_service(statement: dict[str, Any], expected: Verdict) -> None:
    assert verdict("AIGW-IAM5", role_policy(statement), "aws_iam_role_policy", "p") is expected


def test_iam5_admits_a_direct_decrypt_of_the_ecs_exec_session_key_only() -> None:
    stack = role_policy({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY})
    stack.document["resource"]["aws_ecs_cluster"] = {
        "c": {"configuration": {"execute_command_configuration": {"kms_key_id": KEY}}}
    }
    assert verdict("AIGW-IAM5", stack, "aws_iam_role_policy", "p") is Verdict.COMPLIANT
    widened = role_policy({"Effect": "Allow", "Action": ["kms:Decrypt", "kms:Encrypt"], "Resource": KEY})
    widened.document["resource"]["aws_ecs_cluster"] = stack.document["resource"]["aws_ecs_cluster"]
    assert verdict("AIGW-IAM5", widened, "aws_iam_role_policy", "p") is Verdict.NON_COMPLIANT


HYBRID_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:client-org-AbCdEf"
REGISTRY_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:registry-XyZ123"


def hybrid_stack(readable: list[str], *, registry: bool = True) -> StackDoc:
    """Hybrid mode's task: the enterprise gateway alone, one secret from a JSON key, the registry credentials."""
    stack = execution_stack(readable, {"gateway": [f"{HYBRID_SECRET}:PORTKEY_CLIENT_AUTH::"]})
    task = stack.resource("aws_ecs_task_definition")
    containers = json.loads(task["container_definitions"])
    if registry:
        containers[0]["repositoryCredentials"] = {"credentialsParameter": REGISTRY_SECRET}
    task.body["container_definitions"] = json.dumps(containers)
    return stack


def test_iam3_compliant_in_hybrid_mode_when_the_role_reads_the_gateways_secrets_and_registry_credentials() -> None:
    stack = hybrid_stack([HYBRID_SECRET, REGISTRY_SECRET])
    assert verdict("AIGW-IAM3", stack, "aws_ecs_task_definition", "task") is Verdict.COMPLIANT


@pytest.mark.parametrize(
    ("readable", "registry"),
    [([HYBRID_SECRET], True), ([HYBRID_SECRET, REGISTRY_SECRET, "arn:aws:secretsmanager:x"], True),
     ([HYBRID_SECRET, REGISTRY_SECRET], False)],
    ids=["misses-the-registry-credentials", "reads-one-more", "reads-credentials-no-container-uses"],
)  # fmt: skip
def test_iam3_non_compliant_in_hybrid_mode_when_the_role_reads_other_secrets(
    readable: list[str], registry: bool
) -> None:
    stack = hybrid_stack(readable, registry=registry)
    assert verdict("AIGW-IAM3", stack, "aws_ecs_task_definition", "task") is Verdict.NON_COMPLIANT


@pytest.mark.parametrize(
    ("service", "condition", "expected"),
    [
        ("ecs-tasks.amazonaws.com", {"StringEquals": {"aws:SourceAccount": ACCOUNT},
                                     "ArnLike": {"aws:SourceArn": "arn:aws:ecs:*"}}, Verdict.COMPLIANT),
        ("ecs-tasks.amazonaws.com", {"StringEquals": {"aws:SourceAccount": ACCOUNT}}, Verdict.NON_COMPLIANT),
        ("lambda.amazonaws.com", {"StringEquals": {"aws:SourceAccount": ACCOUNT}}, Verdict.COMPLIANT),
        ("lambda.amazonaws.com", {}, Verdict.NON_COMPLIANT),
    ],
)  # fmt: skip
def test_iam4_trust_policies(service: str, condition: dict[str, Any], expected: Verdict) -> None:
    trust = policy(
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole", "Condition": condition}
    )
    stack = doc({"aws_iam_role": {"r": {"assume_role_policy": trust}}})
    assert verdict("AIGW-IAM4", stack, "aws_iam_role", "r") is expected


@pytest.mark.parametrize(
    ("principal", "expected"),
    [({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, Verdict.COMPLIANT), ({"AWS": "*"}, Verdict.NON_COMPLIANT),
     ("*", Verdict.NON_COMPLIANT), ({"AWS": "arn:aws:iam::111122223333:role/other"}, Verdict.NON_COMPLIANT)],
)  # fmt: skip
def test_kms1_key_policy_principals(principal: Any, expected: Verdict) -> None:
    key_policy = policy({"Effect": "Allow", "Principal": principal, "Action": "kms:*", "Resource": "*"})
    stack = doc({"aws_kms_key": {"k": {"policy": key_policy}}})
    assert verdict("AIGW-KMS1", stack, "aws_kms_key", "k") is expected


def network(cidr: str, port: int, on_alb: bool) -> StackDoc:
    return doc(
        {
            "aws_vpc": {"v": {"cidr_block": "10.0.0.0/16"}},
            "aws_security_group": {"g": {"vpc_id": "${aws_vpc.v.id}"}},
            "aws_lb": {"alb": {"security_groups": ["${aws_security_group.g.id}"] if on_alb else []}},
            "aws_lb_listener": {"l": {"load_balancer_arn": "${aws_lb.alb.arn}", "port": 443}},
            "aws_vpc_security_group_ingress_rule": {
                "i": {
                    "security_group_id": "${aws_security_group.g.id}",
                    "cidr_ipv4": cidr,
                    "from_port": port,
                    "to_port": port,
                }
            },
        }
    )


@pytest.mark.parametrize(
    ("cidr", "port", "on_alb", "expected"),
    [("0.0.0.0/0", 443, True, Verdict.COMPLIANT), ("0.0.0.0/0", 22, True, Verdict.NON_COMPLIANT),
     ("0.0.0.0/0", 443, False, Verdict.NON_COMPLIANT), ("10.0.8.0/24", 443, False, Verdict.COMPLIANT)],
)  # fmt: skip
def test_net1_outside_traffic_only_to_load_balancer_listeners(
    cidr: str, port: int, on_alb: bool, expected: Verdict
) -> None:
    stack = network(cidr, port, on_alb)
    assert verdict("AIGW-NET1", stack, "aws_vpc_security_group_ingress_rule", "i") is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [({"referenced_security_group_id": "${aws_security_group.alb.id}"}, Verdict.COMPLIANT),
     ({"cidr_ipv4": "10.0.0.0/16"}, Verdict.NON_COMPLIANT)],
)  # fmt: skip
def test_net2_tasks_admit_only_security_groups(source: dict[str, str], expected: Verdict) -> None:
    stack = doc(
        {
            "aws_ecs_service": {"s": {"network_configuration": {"security_groups": ["${aws_security_group.t.id}"]}}},
            "aws_vpc_security_group_ingress_rule": {"i": {"security_group_id": "${aws_security_group.t.id}", **source}},
        }
    )
    assert verdict("AIGW-NET2", stack, "aws_vpc_security_group_ingress_rule", "i") is expected


@pytest.mark.parametrize(
    ("assign", "map_public", "expected"),
    [(False, False, Verdict.COMPLIANT), (True, False, Verdict.NON_COMPLIANT), (False, True, Verdict.NON_COMPLIANT)],
)
def test_net3_no_public_ips_on_tasks(assign: bool, map_public: bool, expected: Verdict) -> None:
    stack = doc(
        {
            "aws_subnet": {"s": {"map_public_ip_on_launch": map_public}},
            "aws_ecs_service": {
                "svc": {"network_configuration": {"assign_public_ip": assign, "subnets": ["${aws_subnet.s.id}"]}}
            },
        }
    )
    assert verdict("AIGW-NET3", stack, "aws_ecs_service", "svc") is expected


def test_net4_inline_ingress() -> None:
    stack = doc({"aws_security_group": {"ok": {"name": "a"}, "bad": {"ingress": [{"cidr_blocks": ["0.0.0.0/0"]}]}}})
    assert verdict("AIGW-NET4", stack, "aws_security_group", "ok") is Verdict.COMPLIANT
    assert verdict("AIGW-NET4", stack, "aws_security_group", "bad") is Verdict.NON_COMPLIANT


@pytest.mark.parametrize(
    ("rule_id", "resource_type", "good", "bad"),
    [
        ("AIGW-ENC1", "aws_cloudwatch_log_group", {"kms_key_id": "k"}, {}),
        ("AIGW-ENC2", "aws_secretsmanager_secret", {"kms_key_id": "k"}, {}),
        ("AIGW-ENC3", "aws_sns_topic", {"kms_master_key_id": "k"}, {}),
        ("AIGW-ENC4", "aws_sqs_queue", {"kms_master_key_id": "k"}, {"sqs_managed_sse_enabled": True}),
        ("AIGW-ENC5", "aws_dynamodb_table", {"server_side_encryption": {"enabled": True, "kms_key_arn": "k"}},
         {"server_side_encryption": {"enabled": True}}),
        ("AIGW-ENC6", "aws_ecr_repository", {"encryption_configuration": [{"encryption_type": "KMS"}]},
         {"encryption_configuration": [{"encryption_type": "AES256"}]}),
    ],
)  # fmt: skip
def test_encryption_rules(rule_id: str, resource_type: str, good: dict[str, Any], bad: dict[str, Any]) -> None:
    stack = doc({resource_type: {"good": good, "bad": bad}})
    assert verdict(rule_id, stack, resource_type, "good") is Verdict.COMPLIANT
    assert verdict(rule_id, stack, resource_type, "bad") is Verdict.NON_COMPLIANT


def bucket_stack(**extra: dict[str, dict[str, Any]]) -> StackDoc:
    return doc({"aws_s3_bucket": {"b": {"bucket": "state"}}, **extra})


def test_s3_rules_compliant_bucket() -> None:
    ref = "${aws_s3_bucket.b.id}"
    tls = policy({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
                  "Condition": {"Bool": {"aws:SecureTransport": "false"}}})  # fmt: skip
    stack = bucket_stack(
        aws_s3_bucket_public_access_block={"p": {"bucket": ref, "block_public_acls": True, "block_public_policy": True,
                                                 "ignore_public_acls": True, "restrict_public_buckets": True}},
        aws_s3_bucket_policy={"tls": {"bucket": ref, "policy": tls}},
        aws_s3_bucket_server_side_encryption_configuration={
            "e": {"bucket": ref, "rule": [{"apply_server_side_encryption_by_default": {
                "sse_algorithm": "aws:kms", "kms_master_key_id": "k"}}]}
        },
    )  # fmt: skip
    for rule_id in ("AIGW-S3-1", "AIGW-S3-2", "AIGW-S3-3"):
        assert verdict(rule_id, stack, "aws_s3_bucket", "b") is Verdict.COMPLIANT, rule_id


def test_s3_rules_bare_bucket() -> None:
    stack = bucket_stack()
    for rule_id in ("AIGW-S3-1", "AIGW-S3-2", "AIGW-S3-3"):
        assert verdict(rule_id, stack, "aws_s3_bucket", "b") is Verdict.NON_COMPLIANT, rule_id
