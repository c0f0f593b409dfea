"""Named edges of the system: every security-group rule and IAM grant between
two parts of the stack is written by one of these functions, so each edge can
be found by name (``allow_from``, ``grant_…``) rather than by reading policies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

Statement = dict[str, Any]


def policy_document(statements: Sequence[Statement]) -> str:
    """An IAM policy document as the JSON string Terraform expects."""
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def allow_from(
    scope: Construct,
    name: str,
    *,
    source_security_group_id: str,
    target_security_group_id: str,
    port: int,
    description: str,
) -> None:
    """Let ``source`` reach ``target`` on TCP ``port``: the egress rule on the
    source and the matching ingress rule on the target, nothing wider."""
    VpcSecurityGroupEgressRule(
        scope,
        f"{name}-egress",
        security_group_id=source_security_group_id,
        referenced_security_group_id=target_security_group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        description=f"to {description}",
    )
    VpcSecurityGroupIngressRule(
        scope,
        f"{name}-ingress",
        security_group_id=target_security_group_id,
        referenced_security_group_id=source_security_group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        description=f"from {description}",
    )


def cidr_id(cidr: str) -> str:
    """A construct-id fragment naming a CIDR (``10.0.0.0/16`` -> ``10-0-0-0-16``):
    rules keyed by their CIDR keep their ids when the list is reordered."""
    return cidr.replace(".", "-").replace("/", "-").replace(":", "-")


def allow_cidrs(
    scope: Construct,
    name: str,
    *,
    security_group_id: str,
    cidrs: Sequence[str],
    port: int,
    description: str,
) -> None:
    """Ingress on TCP ``port`` from each CIDR, one rule per CIDR, each with an
    id derived from its CIDR (``<name>-10-0-0-0-16``)."""
    for cidr in cidrs:
        VpcSecurityGroupIngressRule(
            scope,
            f"{name}-{cidr_id(cidr)}",
            security_group_id=security_group_id,
            cidr_ipv4=cidr,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description=description,
        )


def allow_subnets(
    scope: Construct,
    name: str,
    *,
    security_group_id: str,
    subnet_cidrs: Mapping[str, str],
    port: int,
    description: str,
) -> None:
    """Ingress on TCP ``port`` from each subnet's CIDR (``{subnet id: CIDR}``),
    one rule per subnet with an id derived from the subnet id
    (``<name>-subnet-0123…``): for subnets whose CIDRs are known only at plan
    time (an existing VPC's, read by data sources)."""
    for subnet_id, cidr in subnet_cidrs.items():
        VpcSecurityGroupIngressRule(
            scope,
            f"{name}-{subnet_id}",
            security_group_id=security_group_id,
            cidr_ipv4=cidr,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description=description,
        )


def allow_https_egress(scope: Construct, name: str, *, security_group_id: str, description: str) -> None:
    """Outbound HTTPS anywhere: LLM providers over the NAT, AWS APIs over the endpoints."""
    VpcSecurityGroupEgressRule(
        scope,
        name,
        security_group_id=security_group_id,
        cidr_ipv4="0.0.0.0/0",
        ip_protocol="tcp",
        from_port=443,
        to_port=443,
        description=description,
    )


def service_trust_policy(service: str, *, account_id: str, source_arn: str | None = None) -> str:
    """Trust policy for an AWS service principal, scoped to this account (and
    to ``source_arn`` where the service sends it) against confused deputies."""
    condition: dict[str, Any] = {"StringEquals": {"aws:SourceAccount": account_id}}
    if source_arn:
        condition["ArnLike"] = {"aws:SourceArn": source_arn}
    return policy_document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
                "Condition": condition,
            }
        ]
    )


def grant_secrets_read(secret_arns: Sequence[str], *, kms_key_arn: str, region: str) -> list[Statement]:
    """Read exactly these secrets, decrypting only through Secrets Manager."""
    return [
        {
            "Sid": "ReadProviderSecrets",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": list(secret_arns),
        },
        {
            "Sid": "DecryptSecretsThroughSecretsManager",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": kms_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
        },
    ]


def grant_log_writes(log_group_arns: Sequence[str], *, sid: str) -> Statement:
    """Create streams in and put events into exactly these log groups."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
        "Resource": [f"{arn}:log-stream:*" for arn in log_group_arns] + list(log_group_arns),
    }


def grant_ecr_pull(repository_arns: list[str], *, kms_key_arn: str, region: str) -> list[Statement]:
    """Log in to ECR and pull images of these repositories, decrypting their
    layers only through ECR."""
    return [
        # GetAuthorizationToken has no resource-level permissions.
        {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Sid": "PullTaskImages",
            "Effect": "Allow",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            "Resource": repository_arns,
        },
        {
            "Sid": "DecryptImageLayers",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": kms_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": f"ecr.{region}.amazonaws.com"}},
        },
    ]


def grant_bedrock_invoke(*, partition: str, region: str) -> Statement:
    """Invoke the region's foundation models (streaming too)."""
    return {
        "Sid": "InvokeBedrockFoundationModels",
        "Effect": "Allow",
        "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
        "Resource": f"arn:{partition}:bedrock:{region}::foundation-model/*",
    }


def grant_apply_guardrail(guardrail_arn: str) -> Statement:
    """Apply exactly this guardrail (any of its versions: a version has no ARN of its own)."""
    return {
        "Sid": "ApplyOrganisationGuardrail",
        "Effect": "Allow",
        "Action": "bedrock:ApplyGuardrail",
        "Resource": guardrail_arn,
    }


# The Session Manager channels an ECS Exec session opens from inside the task;
# ssmmessages has no resource-level permissions, so they are granted on "*".
ECS_EXEC_CHANNEL_ACTIONS: tuple[str, ...] = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)


def grant_ecs_exec_sessions(*, log_group_arn: str, kms_key_arn: str) -> list[Statement]:
    """What the task role needs for ECS Exec with logged, encrypted sessions
    (ECS developer guide, "Using ECS Exec": IAM permissions, logging, KMS):
    the Session Manager channels, finding and writing the session log group,
    and decrypting the session's data channel key."""
    return [
        {"Sid": "EcsExecSessionChannels", "Effect": "Allow", "Action": list(ECS_EXEC_CHANNEL_ACTIONS), "Resource": "*"},
        # The agent looks its log group up before writing; DescribeLogGroups is granted on "*" in AWS's guide.
        {"Sid": "EcsExecFindLogGroup", "Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": "*"},
        grant_log_writes([log_group_arn], sid="EcsExecSessionLogs"),
        {"Sid": "EcsExecDecryptSessionKey", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": kms_key_arn},
    ]


# Reads ECS makes while it shifts traffic; ELBv2's Describe* actions have no
# resource-level permissions (AmazonECSInfrastructureRolePolicyForLoadBalancers
# grants exactly these on "*").
LOAD_BALANCER_READ_ACTIONS: tuple[str, ...] = (
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
)


def grant_ecs_traffic_shifting(
    *, target_group_arns: Sequence[str], listener_rule_arns: Sequence[str]
) -> list[Statement]:
    """The ECS infrastructure role for load balancers, cut down from AWS's
    managed policy (AmazonECSInfrastructureRolePolicyForLoadBalancers, v6) to
    this service: read the load balancer's state, register the tasks in its two
    target groups, and move traffic by modifying its own listener rules. The
    managed policy's ModifyListener is left out: on an Application Load
    Balancer ECS shifts traffic on the listener rules it is given (ECS API,
    AdvancedConfiguration: a listener only for a Network Load Balancer)."""
    return [
        {
            "Sid": "ReadLoadBalancerState",
            "Effect": "Allow",
            "Action": list(LOAD_BALANCER_READ_ACTIONS),
            "Resource": "*",
        },
        {
            "Sid": "RegisterTasksInBothTargetGroups",
            "Effect": "Allow",
            "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
            "Resource": list(target_group_arns),
        },
        {
            "Sid": "ShiftTrafficOnOwnListenerRules",
            "Effect": "Allow",
            "Action": "elasticloadbalancing:ModifyRule",
            "Resource": list(listener_rule_arns),
        },
    ]


def grant_lambda_invoke(function_arns: Sequence[str], *, sid: str) -> Statement:
    """Invoke exactly these Lambda functions."""
    return {"Sid": sid, "Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": list(function_arns)}


# Actions AWS only authorizes on "*" (no resource-level permissions).
XRAY_WRITE_ACTIONS: tuple[str, ...] = (
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
)


def grant_xray_write() -> Statement:
    """Send traces and read sampling rules (X-Ray has no resource-level permissions)."""
    return {"Sid": "XRayTraces", "Effect": "Allow", "Action": list(XRAY_WRITE_ACTIONS), "Resource": "*"}


def grant_metrics_in_namespace(namespace: str) -> Statement:
    """PutMetricData, only into one CloudWatch namespace."""
    return {
        "Sid": "MetricsInOwnNamespace",
        "Effect": "Allow",
        "Action": "cloudwatch:PutMetricData",
        "Resource": "*",
        "Condition": {"StringEquals": {"cloudwatch:namespace": namespace}},
    }


def grant_parameters_read(parameter_arns: Sequence[str]) -> list[Statement]:
    """Read exactly these SSM parameters (String: no key to decrypt)."""
    return [
        {
            "Sid": "ReadRoutingConfigs",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter", "ssm:GetParameters"],
            "Resource": list(parameter_arns),
        }
    ]


def grant_object_read(bucket_arn: str, key_prefix: str, *, kms_key_arn: str, region: str) -> list[Statement]:
    """Read the objects under ``key_prefix`` of one bucket (and where it is),
    decrypting only through S3: what ECS needs to fetch an environment file."""
    return [
        {
            "Sid": "ReadDataPlaneBundles",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"{bucket_arn}/{key_prefix}*",
        },
        {"Sid": "LocateDataPlaneBucket", "Effect": "Allow", "Action": "s3:GetBucketLocation", "Resource": bucket_arn},
        {
            "Sid": "DecryptDataPlaneBundlesThroughS3",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": kms_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
        },
    ]


def deny_insecure_transport(bucket_arn: str) -> Statement:
    """A bucket policy statement refusing every request made without TLS."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def grant_alb_log_delivery(log_objects_arn: str, *, delivery_principal: dict[str, str]) -> Statement:
    """Let an ALB's log delivery put objects under ``log_objects_arn``
    (``<bucket>/<prefix>/AWSLogs/<account>/*``), exactly as the ALB guide's bucket
    policy has it: the regional Elastic Load Balancing account or the log
    delivery service principal (``delivery_principal``), no conditions."""
    return {"Sid": "AlbLogDelivery", "Effect": "Allow", "Principal": delivery_principal,
            "Action": "s3:PutObject", "Resource": log_objects_arn}  # fmt: skip


def grant_nlb_log_delivery(
    bucket_arn: str, log_objects_arn: str, *, account_id: str, region: str, partition: str
) -> list[Statement]:
    """Let an NLB's log delivery (CloudWatch Logs' vended-log service) check the
    bucket's ACL and put objects under ``log_objects_arn``, only for deliveries
    of this account and region, as the NLB guide's bucket policy has it."""
    source = {
        "StringEquals": {"aws:SourceAccount": account_id},
        "ArnLike": {"aws:SourceArn": f"arn:{partition}:logs:{region}:{account_id}:*"},
    }
    return [
        {"Sid": "NlbLogDeliveryAclCheck", "Effect": "Allow", "Principal": {"Service": "delivery.logs.amazonaws.com"},
         "Action": "s3:GetBucketAcl", "Resource": bucket_arn, "Condition": source},
        {"Sid": "NlbLogDeliveryWrite", "Effect": "Allow", "Principal": {"Service": "delivery.logs.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": log_objects_arn,
         "Condition": {**source, "StringEquals": {**source["StringEquals"],
                                                  "s3:x-amz-acl": "bucket-owner-full-control"}}},
    ]  # fmt: skip


def grant_log_delivery_key_use(*, account_id: str, region: str, partition: str) -> Statement:
    """Key policy statement: CloudWatch Logs' vended-log delivery (which writes
    NLB access logs) may encrypt with the key, only for this account and region."""
    return {
        "Sid": "LogDeliveryEncryptsAccessLogs",
        "Effect": "Allow",
        "Principal": {"Service": "delivery.logs.amazonaws.com"},
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
        "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:SourceAccount": account_id},
            "ArnLike": {"aws:SourceArn": f"arn:{partition}:logs:{region}:{account_id}:*"},
        },
    }


def grant_hybrid_secrets_read(secret_arns: Sequence[str], *, kms_key_arn: str | None, region: str) -> list[Statement]:
    """Read exactly the hybrid mode's secrets (the registry credentials and
    each service's variables); decrypt with their customer key, where they
    have one, only through Secrets Manager (the AWS-managed key needs no grant)."""
    statements: list[Statement] = [
        {"Sid": "ReadHybridSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": sorted(set(secret_arns))},
    ]  # fmt: skip
    if kms_key_arn:
        statements.append(
            {
                "Sid": "DecryptHybridSecretsThroughSecretsManager",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
            }
        )
    return statements


# The object actions of Portkey's log store, per service (its ECS module's iam.tf).
LOG_STORE_GATEWAY_ACTIONS: tuple[str, ...] = ("s3:GetObject", "s3:PutObject")
LOG_STORE_DATA_SERVICE_ACTIONS: tuple[str, ...] = (
    "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
)  # fmt: skip


def grant_log_store(
    buckets: Sequence[str], actions: Sequence[str], *, partition: str, kms_key_arn: str | None, bucket_region: str
) -> list[Statement]:
    """Exactly these object actions on the log store's buckets' objects, and
    with a customer key its encrypt and decrypt through S3 in the buckets' region."""
    statements: list[Statement] = [
        {
            "Sid": "LogStoreObjects",
            "Effect": "Allow",
            "Action": list(actions),
            "Resource": [f"arn:{partition}:s3:::{bucket}/*" for bucket in buckets],
        }
    ]
    if kms_key_arn:
        statements.append(
            {
                "Sid": "LogStoreKeyThroughS3",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"s3.{bucket_region}.amazonaws.com"}},
            }
        )
    return statements


def grant_assume_role(role_arn: str) -> Statement:
    """Assume exactly one role (cross-account Bedrock: the role there trusts this one)."""
    return {"Sid": "AssumeBedrockAccountRole", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}
