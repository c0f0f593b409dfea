"""Policy as code over synthesized stacks (cdk-nag style): one rule = one
small function over one resource, returning COMPLIANT, NON_COMPLIANT or
NOT_APPLICABLE. ``RULES`` documents itself (``python -m security.gate --rules``).

The rules encode this project's promises: least-privilege IAM, only the load
balancer open to the outside, tasks without public IPs, customer-managed
encryption at rest, and buckets that are private and TLS-only.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aigw.data_plane.contract import DATA_PLANE_CONTAINER
from aigw.settings import LoadBalancerType
from security.stackdoc import Res, StackDoc


class Verdict(Enum):
    COMPLIANT = "compliant"
    NON_COMPLIANT = "non-compliant"
    NOT_APPLICABLE = "not applicable"


Check = Callable[[Res, StackDoc], Verdict]


@dataclass(frozen=True)
class Rule:
    id: str
    cause: str
    explanation: str
    resource_types: tuple[str, ...]
    check: Check


# Actions AWS authorizes only on "*" (no resource-level permissions), each
# with the reason it is needed. A statement with Resource "*" must consist of these.
WILDCARD_RESOURCE_ACTIONS: dict[str, str] = {
    "ecr:GetAuthorizationToken": "registry login token; ECR has no resource for it",
    "xray:PutTraceSegments": "the collector sends traces; X-Ray has no resource-level permissions",
    "xray:PutTelemetryRecords": "collector telemetry about itself; no resource-level permissions",
    "xray:GetSamplingRules": "sampling rules; no resource-level permissions",
    "xray:GetSamplingTargets": "sampling targets; no resource-level permissions",
    "xray:GetSamplingStatisticSummaries": "sampling statistics; no resource-level permissions",
    "cloudwatch:PutMetricData": "no resource-level permissions; must be limited by a cloudwatch:namespace condition",
    "ssmmessages:CreateControlChannel": "ECS Exec session channel from the task; ssmmessages has no resources",
    "ssmmessages:CreateDataChannel": "ECS Exec session channel from the task; ssmmessages has no resources",
    "ssmmessages:OpenControlChannel": "ECS Exec session channel from the task; ssmmessages has no resources",
    "ssmmessages:OpenDataChannel": "ECS Exec session channel from the task; ssmmessages has no resources",
    "logs:DescribeLogGroups": "a listing: ECS Exec's agent finds its session log group; granted on '*' in AWS's guide",
    "elasticloadbalancing:DescribeListeners": "ECS reads the listener while it shifts traffic; ELBv2 Describe* "
    "actions have no resource-level permissions",
    "elasticloadbalancing:DescribeRules": "ECS reads its listener rules while it shifts traffic; no resources",
    "elasticloadbalancing:DescribeTargetGroups": "ECS reads both target groups while it shifts traffic; no resources",
    "elasticloadbalancing:DescribeTargetHealth": "ECS waits for the new tasks' health while it shifts traffic; no "
    "resources",
    "ec2:DescribeNetworkInterfaces": "Lambda finds a VPC function's interfaces (cost attribution); EC2 Describe* "
    "actions have no resource-level permissions",
}
# The postcondition on an existing subnet (modules/network.py) that refuses one assigning public IPs.
NO_PUBLIC_IPS_CONDITION = "${!self.map_public_ip_on_launch}"
# Services whose requests to assume a role carry aws:SourceArn (besides aws:SourceAccount).
SOURCE_ARN_SERVICES: frozenset[str] = frozenset({"ecs-tasks.amazonaws.com", "vpc-flow-logs.amazonaws.com"})


def _statements(document: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not document:
        return []
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _verdict(ok: bool) -> Verdict:
    return Verdict.COMPLIANT if ok else Verdict.NON_COMPLIANT


# -- IAM -----------------------------------------------------------------------
def no_wildcard_actions(res: Res, stack: StackDoc) -> Verdict:
    for statement in _statements(res.policy("policy")):
        for action in _as_list(statement.get("Action", [])):
            if action == "*" or str(action).endswith(":*"):
                return Verdict.NON_COMPLIANT
    return Verdict.COMPLIANT


def wildcard_resource_only_where_required(res: Res, stack: StackDoc) -> Verdict:
    for statement in _statements(res.policy("policy")):
        if statement.get("Effect") != "Allow" or "*" not in _as_list(statement.get("Resource", [])):
            continue
        actions = _as_list(statement.get("Action", []))
        if not all(action in WILDCARD_RESOURCE_ACTIONS for action in actions):
            return Verdict.NON_COMPLIANT
        if "cloudwatch:PutMetricData" in actions:
            conditions = statement.get("Condition", {})
            if not any("cloudwatch:namespace" in block for block in conditions.values()):
                return Verdict.NON_COMPLIANT
    return Verdict.COMPLIANT


def _secret_of(value_from: str) -> str:
    """The secret's ARN of a `valueFrom`, without the JSON key and version that may follow it."""
    return ":".join(value_from.split(":")[:7])


def execution_role_reads_only_injected_secrets(res: Res, stack: StackDoc) -> Verdict:
    definitions = _container_definitions(res)
    # Judged per container, not pooled: where a data plane runs, a key given to the gateway is exposed even
    # when the role may read it. (Hybrid mode runs the enterprise gateway alone, with its own secrets.)
    names = {c.get("name") for c in definitions}
    if DATA_PLANE_CONTAINER in names and any(
        c.get("secrets") for c in definitions if c.get("name") != DATA_PLANE_CONTAINER
    ):
        return Verdict.NON_COMPLIANT
    injected = {_secret_of(s["valueFrom"]) for c in definitions for s in c.get("secrets", [])}
    injected |= {
        c["repositoryCredentials"]["credentialsParameter"] for c in definitions if c.get("repositoryCredentials")
    }
    role = stack.resolve(res.body.get("execution_role_arn", ""))
    if role is None:
        return _verdict(not injected)
    readable: set[str] = set()
    for policy in stack.resources("aws_iam_role_policy"):
        if policy.body.get("role") not in (role.ref("id"), role.ref("name")):
            continue
        for statement in _statements(policy.policy("policy")):
            actions = _as_list(statement.get("Action", []))
            if any(a in ("secretsmanager:GetSecretValue", "secretsmanager:*", "*") for a in actions):
                readable |= set(_as_list(statement.get("Resource", [])))
    return _verdict(readable == injected)


def _exec_session_keys(stack: StackDoc) -> set[str]:
    """The keys that encrypt ECS Exec sessions (the cluster's execute-command configuration)."""
    keys = set()
    for cluster in stack.resources("aws_ecs_cluster"):
        configuration = cluster.body.get("configuration", {}).get("execute_command_configuration", {})
        if configuration.get("kms_key_id"):
            keys.add(configuration["kms_key_id"])
    return keys


def kms_use_only_through_a_service(res: Res, stack: StackDoc) -> Verdict:
    exempt = _exec_session_keys(stack)
    for statement in _statements(res.policy("policy")):
        actions = [str(action) for action in _as_list(statement.get("Action", []))]
        if statement.get("Effect") != "Allow" or not any(action.startswith("kms:") for action in actions):
            continue
        if any("kms:ViaService" in block for block in statement.get("Condition", {}).values()):
            continue
        # The SSM agent decrypts an ECS Exec session's data channel with the key itself, not through a service.
        if actions == ["kms:Decrypt"] and set(_as_list(statement.get("Resource", []))) <= exempt:
            continue
        return Verdict.NON_COMPLIANT
    return Verdict.COMPLIANT


def trust_policies_scoped_to_account(res: Res, stack: StackDoc) -> Verdict:
    for statement in _statements(res.policy("assume_role_policy")):
        services = _as_list(statement.get("Principal", {}).get("Service", []))
        if statement.get("Effect") != "Allow" or not services:
            continue
        condition = statement.get("Condition", {})
        if "aws:SourceAccount" not in condition.get("StringEquals", {}):
            return Verdict.NON_COMPLIANT
        if any(s in SOURCE_ARN_SERVICES for s in services) and "aws:SourceArn" not in condition.get("ArnLike", {}):
            return Verdict.NON_COMPLIANT
    return Verdict.COMPLIANT


def key_policy_trusts_only_the_account(res: Res, stack: StackDoc) -> Verdict:
    for statement in _statements(res.policy("policy")):
        principal = statement.get("Principal", {})
        if principal == "*" or "*" in _as_list(principal.get("AWS", [])):
            return Verdict.NON_COMPLIANT
        for arn in _as_list(principal.get("AWS", [])):
            if not str(arn).endswith(":root"):
                return Verdict.NON_COMPLIANT
        actions = _as_list(statement.get("Action", []))
        if "kms:*" in actions and "AWS" not in principal:
            return Verdict.NON_COMPLIANT
    return Verdict.COMPLIANT


# -- network -------------------------------------------------------------------
def _load_balancer_of(group_ref: str, stack: StackDoc) -> Res | None:
    return next((lb for lb in stack.resources("aws_lb") if group_ref in lb.body.get("security_groups", [])), None)


def _vpc_cidr_of(group_ref: str, stack: StackDoc) -> ipaddress.IPv4Network | None:
    group = stack.resolve(group_ref)
    vpc = stack.resolve(group.body.get("vpc_id", "")) if group else None
    return ipaddress.IPv4Network(vpc.body["cidr_block"]) if vpc else None


# A data source of this stack: ${data.<type>.<name>.<attribute>}.
_DATA_REFERENCE = re.compile(r"^\$\{data\.([a-z0-9_]+)\.([^.}]+)\.([a-z0-9_]+)\}$")


def _data_source(reference: Any, stack: StackDoc) -> tuple[str, dict[str, Any], str] | None:
    """(type, body, attribute) of the data source a ``${data.…}`` reference reads, if it is one."""
    match = _DATA_REFERENCE.match(reference) if isinstance(reference, str) else None
    if not match:
        return None
    body = stack.document.get("data", {}).get(match[1], {}).get(match[2])
    return (match[1], body, match[3]) if body is not None else None


def _postconditions(body: dict[str, Any]) -> list[str]:
    return [str(c.get("condition", "")) for c in body.get("lifecycle", {}).get("postcondition", [])]


def _existing_subnet_cidr(cidr: Any, stack: StackDoc) -> bool:
    """A CIDR read from an existing subnet that a postcondition pins to the deployment's VPC."""
    source = _data_source(cidr, stack)
    return (
        source is not None
        and source[0] == "aws_subnet"
        and source[2] == "cidr_block"
        and any("self.vpc_id ==" in condition for condition in _postconditions(source[1]))
    )


def only_load_balancer_open_outside_vpc(res: Res, stack: StackDoc) -> Verdict:
    cidr = res.body.get("cidr_ipv4") or res.body.get("cidr_ipv6")
    if not cidr:
        return Verdict.NOT_APPLICABLE
    if _existing_subnet_cidr(cidr, stack):
        return Verdict.COMPLIANT
    try:
        network = ipaddress.ip_network(cidr)
    except ValueError:
        return Verdict.NON_COMPLIANT  # a CIDR known only at apply time that nothing pins inside the VPC
    group_ref = res.body["security_group_id"]
    vpc_cidr = _vpc_cidr_of(group_ref, stack)
    if vpc_cidr is not None and network.version == 4 and network.subnet_of(vpc_cidr):
        return Verdict.COMPLIANT
    balancer = _load_balancer_of(group_ref, stack)
    if balancer is None:
        return Verdict.NON_COMPLIANT
    ports = {
        listener.body.get("port")
        for listener in stack.resources("aws_lb_listener")
        if listener.body.get("load_balancer_arn") == balancer.ref("arn")
    }
    return _verdict(res.body.get("from_port") == res.body.get("to_port") and res.body.get("from_port") in ports)


def tasks_admit_only_security_groups(res: Res, stack: StackDoc) -> Verdict:
    task_groups = {
        group
        for service in stack.resources("aws_ecs_service")
        for group in service.body.get("network_configuration", {}).get("security_groups", [])
    }
    if res.body.get("security_group_id") not in task_groups:
        return Verdict.NOT_APPLICABLE
    return _verdict(bool(res.body.get("referenced_security_group_id")) and not res.body.get("cidr_ipv4"))


def no_public_ip_on_tasks(res: Res, stack: StackDoc) -> Verdict:
    network = res.body.get("network_configuration", {})
    if network.get("assign_public_ip") is not False:
        return Verdict.NON_COMPLIANT
    for subnet_ref in network.get("subnets", []):
        subnet = stack.resolve(subnet_ref)
        if subnet is not None:
            if subnet.body.get("map_public_ip_on_launch") is not False:
                return Verdict.NON_COMPLIANT
            continue
        # An existing subnet, read by a data source: a postcondition must refuse one that assigns public IPs.
        source = _data_source(subnet_ref, stack)
        if source is None or source[0] != "aws_subnet" or NO_PUBLIC_IPS_CONDITION not in _postconditions(source[1]):
            return Verdict.NON_COMPLIANT
    return Verdict.COMPLIANT


def no_inline_open_ingress(res: Res, stack: StackDoc) -> Verdict:
    return _verdict(not res.body.get("ingress"))


# -- ECS -----------------------------------------------------------------------
def no_ecs_exec(res: Res, stack: StackDoc) -> Verdict:
    return _verdict(res.body.get("enable_execute_command") is not True)


def ecs_exec_sessions_logged_and_encrypted(res: Res, stack: StackDoc) -> Verdict:
    cluster_refs = {res.ref("arn"), res.ref("id"), res.ref("name")}
    exec_services = [
        service
        for service in stack.resources("aws_ecs_service")
        if service.body.get("cluster") in cluster_refs and service.body.get("enable_execute_command") is True
    ]
    if not exec_services:
        return Verdict.NOT_APPLICABLE
    configuration = res.body.get("configuration", {}).get("execute_command_configuration", {})
    logs = configuration.get("log_configuration", {})
    return _verdict(
        configuration.get("logging") == "OVERRIDE"
        and bool(configuration.get("kms_key_id"))
        and bool(logs.get("cloud_watch_log_group_name"))
        and logs.get("cloud_watch_encryption_enabled") is True
    )


# -- encryption at rest --------------------------------------------------------
def _has(key: str) -> Check:
    def check(res: Res, stack: StackDoc) -> Verdict:
        return _verdict(bool(res.body.get(key)))

    return check


def dynamodb_customer_key(res: Res, stack: StackDoc) -> Verdict:
    sse = res.body.get("server_side_encryption", {})
    return _verdict(sse.get("enabled") is True and bool(sse.get("kms_key_arn")))


def ecr_customer_key(res: Res, stack: StackDoc) -> Verdict:
    configurations = res.body.get("encryption_configuration", [])
    return _verdict(bool(configurations) and all(c.get("encryption_type") == "KMS" for c in configurations))


# -- buckets -------------------------------------------------------------------
def _for_bucket(stack: StackDoc, resource_type: str, bucket: Res) -> list[Res]:
    refs = {bucket.ref("id"), bucket.ref("bucket")}
    return [r for r in stack.resources(resource_type) if r.body.get("bucket") in refs]


def bucket_blocks_public_access(res: Res, stack: StackDoc) -> Verdict:
    flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    blocks = _for_bucket(stack, "aws_s3_bucket_public_access_block", res)
    return _verdict(bool(blocks) and all(all(b.body.get(flag) is True for flag in flags) for b in blocks))


def bucket_denies_insecure_transport(res: Res, stack: StackDoc) -> Verdict:
    for policy in _for_bucket(stack, "aws_s3_bucket_policy", res):
        for statement in _statements(policy.policy("policy")):
            condition = statement.get("Condition", {}).get("Bool", {})
            if statement.get("Effect") == "Deny" and str(condition.get("aws:SecureTransport")).lower() == "false":
                return Verdict.COMPLIANT
    return Verdict.NON_COMPLIANT


def _load_balancer_type(balancer: Res) -> LoadBalancerType | None:
    """The type of an ``aws_lb`` (the provider's default: application); None for one this stack never builds."""
    value = balancer.body.get("load_balancer_type", LoadBalancerType.APPLICATION)
    return next((kind for kind in LoadBalancerType if kind == value), None)


def _receives_sse_s3_only_access_logs(bucket: Res, stack: StackDoc) -> bool:
    """Is ``bucket`` where a load balancer of the stack whose log delivery supports
    SSE-S3 only (an application load balancer) writes its access logs?"""
    refs = {bucket.ref("id"), bucket.ref("bucket")}
    for balancer in stack.resources("aws_lb"):
        blocks = _as_list(balancer.body.get("access_logs") or [])
        logs: dict[str, Any] = blocks[0] if blocks and isinstance(blocks[0], dict) else {}
        kind = _load_balancer_type(balancer)
        sse_s3_only = kind is not None and kind.access_logs_sse_s3_only
        if sse_s3_only and logs.get("enabled") is True and logs.get("bucket") in refs:
            return True
    return False


def bucket_customer_key(res: Res, stack: StackDoc) -> Verdict:
    for configuration in _for_bucket(stack, "aws_s3_bucket_server_side_encryption_configuration", res):
        for rule in _as_list(configuration.body.get("rule", [])):
            default = rule.get("apply_server_side_encryption_by_default", {})
            if default.get("sse_algorithm") == "aws:kms" and default.get("kms_master_key_id"):
                return Verdict.COMPLIANT
            # ALB access-log delivery supports SSE-S3 only (the ALB guide, modules/access_logs.py).
            if default.get("sse_algorithm") == "AES256" and _receives_sse_s3_only_access_logs(res, stack):
                return Verdict.COMPLIANT
    return Verdict.NON_COMPLIANT


def _container_definitions(res: Res) -> list[dict[str, Any]]:
    # Literal template markers are escaped for Terraform ("$${"); that does not affect the JSON.
    return list(json.loads(res.body.get("container_definitions", "[]")))


POLICIES = ("aws_iam_role_policy", "aws_iam_policy")
RULES: tuple[Rule, ...] = (
    Rule("AIGW-IAM1", "IAM policy grants a wildcard action", "Name each action; 'svc:*' and '*' grant "
         "future actions nobody reviewed.", POLICIES, no_wildcard_actions),
    Rule("AIGW-IAM2", "IAM policy uses Resource '*' for an action that supports resources",
         "Only actions without resource-level permissions (WILDCARD_RESOURCE_ACTIONS) may use '*'; "
         "cloudwatch:PutMetricData also needs a cloudwatch:namespace condition.", POLICIES,
         wildcard_resource_only_where_required),
    Rule("AIGW-IAM3", "A container beside the data plane receives a secret, or the execution role may read "
         "secrets the task does not receive (or misses one it does)",
         "Where a data plane runs, only it holds provider keys (the gateway and the collector never do); and the "
         "execution role's secretsmanager:GetSecretValue resources equal the secrets the task's containers "
         "receive (JSON keys stripped) and their registry credentials, nothing more.",
         ("aws_ecs_task_definition",), execution_role_reads_only_injected_secrets),
    Rule("AIGW-IAM5", "IAM policy lets a principal use a KMS key directly, not only through a service",
         "Every kms: grant carries kms:ViaService (Secrets Manager, S3, ECR, ...), so the key decrypts only what "
         "that service holds for the principal; the one exception is kms:Decrypt on an ECS Exec session key, "
         "which the SSM agent uses itself.", POLICIES, kms_use_only_through_a_service),
    Rule("AIGW-IAM4", "Service trust policy not scoped to this account",
         "Service principals need aws:SourceAccount (and aws:SourceArn where the service sends it) "
         "against the confused-deputy problem.", ("aws_iam_role",), trust_policies_scoped_to_account),
    Rule("AIGW-KMS1", "Key policy trusts principals outside the account",
         "Key policies name the account root (administered through IAM) or service principals with "
         "conditions, never '*'.", ("aws_kms_key",), key_policy_trusts_only_the_account),
    Rule("AIGW-NET1", "Traffic from outside the VPC reaches something other than the load balancer's listeners",
         "Only the load balancer's security group may admit CIDRs outside the VPC, and only on its "
         "listener ports.", ("aws_vpc_security_group_ingress_rule",), only_load_balancer_open_outside_vpc),
    Rule("AIGW-NET2", "Tasks admit traffic by CIDR",
         "Task security groups admit only the security groups that need them (the load balancer's).",
         ("aws_vpc_security_group_ingress_rule",), tasks_admit_only_security_groups),
    Rule("AIGW-NET3", "Tasks can get public IPs",
         "ECS services run without public IPs in subnets that assign none (an existing subnet: checked by a "
         "postcondition at plan time).", ("aws_ecs_service",), no_public_ip_on_tasks),
    Rule("AIGW-NET4", "Security group with inline ingress rules",
         "Rules are separate resources written by grants.allow_from/allow_cidrs, so every edge is reviewed.",
         ("aws_security_group",), no_inline_open_ingress),
    Rule("AIGW-ECS1", "ECS Exec is enabled on a service",
         "A shell in the running tasks (ECS Exec) is a deliberate exposure: accept it per environment in "
         "security/suppressions.toml, with the reason.", ("aws_ecs_service",), no_ecs_exec),
    Rule("AIGW-ECS2", "ECS Exec sessions are not logged to an encrypted log group or not encrypted",
         "Where a service of the cluster has ECS Exec, the cluster logs every session (logging OVERRIDE) to a "
         "CloudWatch log group with encryption enforced and encrypts the session with a customer key.",
         ("aws_ecs_cluster",), ecs_exec_sessions_logged_and_encrypted),
    Rule("AIGW-ENC1", "Log group not encrypted with a customer key", "Set kms_key_id.",
         ("aws_cloudwatch_log_group",), _has("kms_key_id")),
    Rule("AIGW-ENC2", "Secret not encrypted with a customer key", "Set kms_key_id.",
         ("aws_secretsmanager_secret",), _has("kms_key_id")),
    Rule("AIGW-ENC3", "SNS topic not encrypted", "Set kms_master_key_id.", ("aws_sns_topic",),
         _has("kms_master_key_id")),
    Rule("AIGW-ENC4", "SQS queue not encrypted with a customer key", "Set kms_master_key_id.", ("aws_sqs_queue",),
         _has("kms_master_key_id")),
    Rule("AIGW-ENC5", "DynamoDB table not encrypted with a customer key",
         "Enable server_side_encryption with kms_key_arn.", ("aws_dynamodb_table",), dynamodb_customer_key),
    Rule("AIGW-ENC6", "ECR repository not encrypted with KMS", "encryption_type KMS.", ("aws_ecr_repository",),
         ecr_customer_key),
    Rule("AIGW-S3-1", "Bucket does not block public access",
         "Every bucket has a public access block with all four flags on.", ("aws_s3_bucket",),
         bucket_blocks_public_access),
    Rule("AIGW-S3-2", "Bucket accepts requests without TLS",
         "Every bucket policy denies aws:SecureTransport = false.", ("aws_s3_bucket",),
         bucket_denies_insecure_transport),
    Rule("AIGW-S3-3", "Bucket not encrypted with a customer key",
         "Default encryption aws:kms with a customer key. One exception: the access-log bucket of an "
         "application load balancer uses SSE-S3 (AES256), the only encryption ALB log delivery supports.",
         ("aws_s3_bucket",), bucket_customer_key),
)  # fmt: skip


def evaluate(stack: StackDoc, rules: tuple[Rule, ...] = RULES) -> Iterator[tuple[Rule, Res, Verdict]]:
    for rule in rules:
        for resource_type in rule.resource_types:
            for res in stack.resources(resource_type):
                yield rule, res, rule.check(res, stack)
