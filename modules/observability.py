"""Observability: the logs KMS key, every log group, the saved Logs Insights
queries and the alarm topic. Created first: everything else writes into them.
The dashboard and alarms, which watch the rest, are modules/monitoring.py."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_query_definition import CloudwatchQueryDefinition
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

from aigw.settings import ObservabilitySettings
from modules.context import StackContext
from modules.kms import customer_managed_key

METRICS_NAMESPACE = "AIGateway"

# Log streams of the system, by role. The WAF name must start with
# "aws-waf-logs-" for WAF to deliver into it.
LOG_STREAMS: dict[str, str] = {
    "access": "access",
    "gateway": "gateway",
    "collector": "collector",
    "otlp_logs": "otlp-logs",
    "metrics": "metrics",
    "vpc_flow": "vpc-flow",
}
# The roles only the data plane and its collector write (not in hybrid mode).
DATA_PLANE_LOG_ROLES = frozenset({"access", "collector", "otlp_logs", "metrics"})

# Logs Insights queries over the data plane's JSON access-log lines (fields
# `provider`, `status`, `request_time` in seconds, `path`; see
# docs/data-plane.md). Keyed by a stable id.
SAVED_QUERIES: dict[str, tuple[str, str]] = {
    "requests-per-hour": (
        "Requests per hour by provider",
        "fields @timestamp, provider\n| filter ispresent(provider)\n"
        "| stats count(*) as requests by bin(1h), provider\n| sort bin(1h) desc",
    ),
    "error-rate": (
        "Error rate by provider",
        "fields provider, status\n| filter ispresent(status)\n"
        "| stats sum(status >= 500) / count(*) * 100 as error_rate_percent, count(*) as requests by provider\n"
        "| sort error_rate_percent desc",
    ),
    "latency": (
        "Latency p50/p95/p99 by provider",
        "fields provider, request_time * 1000 as duration_ms\n| filter ispresent(request_time)\n"
        "| stats pct(duration_ms, 50) as p50_ms, pct(duration_ms, 95) as p95_ms, "
        "pct(duration_ms, 99) as p99_ms by provider",
    ),
    "top-endpoints": (
        "Top endpoints",
        "fields path\n| filter ispresent(path)\n| stats count(*) as requests by path\n| sort requests desc\n| limit 20",
    ),
}


@dataclass(frozen=True)
class ObservabilityOutputs:
    logs_kms_key_arn: str
    log_group_names: dict[str, str]
    log_group_arns: dict[str, str]
    waf_log_group_arn: str | None
    alarm_topic_arn: str


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: ObservabilitySettings,
        context: StackContext,
        create_waf_log_group: bool,
        create_flow_log_group: bool,
        create_exec_log_group: bool,
        create_data_plane_log_groups: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        prefix = context.prefix
        logs_service = f"logs.{context.region}.amazonaws.com"
        log_groups_of_account = f"arn:{context.partition}:logs:{context.region}:{context.account_id}:log-group:*"
        key = customer_managed_key(
            self,
            "logs-key",
            context=context,
            description=f"{prefix}: CloudWatch Logs and alarm topic encryption",
            alias=f"{prefix}-logs",
            statements=(
                {
                    "Sid": "CloudWatchLogsOfThisAccountAndRegion",
                    "Effect": "Allow",
                    "Principal": {"Service": logs_service},
                    "Action": [
                        "kms:Encrypt*",
                        "kms:Decrypt*",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:Describe*",
                    ],
                    "Resource": "*",
                    "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups_of_account}},
                },
                {
                    "Sid": "CloudWatchAlarmsPublishToEncryptedTopic",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": context.account_id}},
                },
            ),
        )
        key_arn = key.arn

        names: dict[str, str] = {}
        arns: dict[str, str] = {}
        for role, stream in LOG_STREAMS.items():
            if role == "vpc_flow" and not create_flow_log_group:
                continue  # an existing VPC's flow logs are its owner's
            if role in DATA_PLANE_LOG_ROLES and not create_data_plane_log_groups:
                continue
            group = CloudwatchLogGroup(
                self,
                f"log-group-{stream}",
                name=f"/{prefix}/{stream}",
                retention_in_days=settings.log_retention_days,
                kms_key_id=key_arn,
            )
            names[role], arns[role] = group.name, group.arn

        waf_log_group_arn = None
        if create_waf_log_group:
            waf_group = CloudwatchLogGroup(
                self,
                "log-group-waf",
                name=f"aws-waf-logs-{prefix}",
                retention_in_days=settings.log_retention_days,
                kms_key_id=key_arn,
            )
            names["waf"], arns["waf"] = waf_group.name, waf_group.arn
            waf_log_group_arn = arns["waf"]

        if create_exec_log_group:
            exec_group = CloudwatchLogGroup(
                self,
                "log-group-ecs-exec",
                name=f"/{prefix}/ecs-exec",
                retention_in_days=settings.log_retention_days,
                kms_key_id=key_arn,
            )
            names["ecs_exec"], arns["ecs_exec"] = exec_group.name, exec_group.arn

        # The saved queries read the data plane's access log.
        saved_queries = settings.enable_saved_queries and create_data_plane_log_groups
        for query_id, (title, query) in SAVED_QUERIES.items() if saved_queries else ():
            CloudwatchQueryDefinition(
                self,
                f"query-{query_id}",
                name=f"{prefix}/{title}",
                log_group_names=[names["access"]],
                query_string=query,
            )

        topic_arn = SnsTopic(self, "alarm-topic", name=f"{prefix}-alarms", kms_master_key_id=key_arn).arn
        if settings.alarm_email:
            SnsTopicSubscription(
                self, "alarm-email", topic_arn=topic_arn, protocol="email", endpoint=settings.alarm_email
            )

        self.outputs = ObservabilityOutputs(
            logs_kms_key_arn=key_arn,
            log_group_names=names,
            log_group_arns=arns,
            waf_log_group_arn=waf_log_group_arn,
            alarm_topic_arn=topic_arn,
        )
