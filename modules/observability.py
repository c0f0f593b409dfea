"""Observability: the logs KMS key, every log group, saved queries (created
first, everything else writes into them) and, once the load balancer and the
service exist, the dashboard and alarms (``Monitoring``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.cloudwatch_dashboard import CloudwatchDashboard
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import (
    CloudwatchMetricAlarm,
    CloudwatchMetricAlarmMetricQuery,
    CloudwatchMetricAlarmMetricQueryMetric,
)
from cdktf_cdktf_provider_aws.cloudwatch_query_definition import CloudwatchQueryDefinition
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

from aigw.settings import ObservabilitySettings
from modules.context import StackContext
from modules.grants import policy_document

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

# Logs Insights queries over the key proxy's JSON access-log lines (fields
# `provider`, `status`, `request_time` in seconds, `path`; see
# aigw/gateway_task.py). Keyed by a stable id.
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
        self, scope: Construct, construct_id: str, *, settings: ObservabilitySettings, context: StackContext
    ) -> None:
        super().__init__(scope, construct_id)
        prefix = context.prefix
        logs_service = f"logs.{context.region}.amazonaws.com"
        log_groups_of_account = f"arn:{context.partition}:logs:{context.region}:{context.account_id}:log-group:*"
        key = KmsKey(
            self,
            "logs-key",
            description=f"{prefix}: CloudWatch Logs and alarm topic encryption",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=policy_document(
                [
                    context.key_admin_statement(),
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
                ]
            ),
        )
        KmsAlias(self, "logs-key-alias", name=f"alias/{prefix}-logs", target_key_id=key.key_id)
        key_arn = key.arn

        names: dict[str, str] = {}
        arns: dict[str, str] = {}
        for role, stream in LOG_STREAMS.items():
            group = CloudwatchLogGroup(
                self,
                f"log-group-{stream}",
                name=f"/{prefix}/{stream}",
                retention_in_days=settings.log_retention_days,
                kms_key_id=key_arn,
            )
            names[role], arns[role] = group.name, group.arn

        waf_log_group_arn = None
        if context.waf_enabled:
            waf_group = CloudwatchLogGroup(
                self,
                "log-group-waf",
                name=f"aws-waf-logs-{prefix}",
                retention_in_days=settings.log_retention_days,
                kms_key_id=key_arn,
            )
            names["waf"], arns["waf"] = waf_group.name, waf_group.arn
            waf_log_group_arn = arns["waf"]

        for query_id, (title, query) in SAVED_QUERIES.items() if settings.enable_saved_queries else ():
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


@dataclass(frozen=True)
class MonitoredService:
    """What the dashboard and alarms watch, from networking and compute."""

    load_balancer_arn_suffix: str
    target_group_arn_suffix: str
    cluster_name: str
    service_name: str
    min_tasks: int


class Monitoring(Construct):
    """Dashboard and alarms; built last because it watches everything else."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: ObservabilitySettings,
        context: StackContext,
        observability: ObservabilityOutputs,
        watched: MonitoredService,
    ) -> None:
        super().__init__(scope, construct_id)
        prefix = context.prefix
        alb = ["LoadBalancer", watched.load_balancer_arn_suffix]
        target = ["TargetGroup", watched.target_group_arn_suffix, *alb]
        service = ["ClusterName", watched.cluster_name, "ServiceName", watched.service_name]

        def metric_widget(title: str, metrics: list[list[object]], stat: str, x: int, y: int) -> dict[str, object]:
            return {
                "type": "metric",
                "x": x,
                "y": y,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": title,
                    "region": context.region,
                    "stat": stat,
                    "period": 60,
                    "metrics": metrics,
                },
            }

        widgets: list[dict[str, object]] = []
        for index, (title, query) in enumerate(SAVED_QUERIES.values()):
            widgets.append(
                {
                    "type": "log",
                    "x": (index % 2) * 12,
                    "y": (index // 2) * 6,
                    "width": 12,
                    "height": 6,
                    "properties": {
                        "title": title,
                        "region": context.region,
                        "query": f"SOURCE '{observability.log_group_names['access']}' | {query}",
                        "view": "table",
                    },
                }
            )
        widgets += [
            metric_widget(
                "ALB requests and 5xx",
                [
                    ["AWS/ApplicationELB", "RequestCount", *alb],
                    ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", *alb],
                    ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", *alb],
                ],
                "Sum",
                0,
                12,
            ),
            metric_widget(
                "ALB target response time p99",
                [["AWS/ApplicationELB", "TargetResponseTime", *alb]],
                "p99",
                12,
                12,
            ),
            metric_widget(
                "Healthy / unhealthy targets",
                [
                    ["AWS/ApplicationELB", "HealthyHostCount", *target],
                    ["AWS/ApplicationELB", "UnHealthyHostCount", *target],
                ],
                "Minimum",
                0,
                18,
            ),
            metric_widget(
                "ECS service CPU / memory / running tasks",
                [
                    ["AWS/ECS", "CPUUtilization", *service],
                    ["AWS/ECS", "MemoryUtilization", *service],
                    ["ECS/ContainerInsights", "RunningTaskCount", *service],
                ],
                "Average",
                12,
                18,
            ),
        ]
        dashboard = CloudwatchDashboard(
            self, "dashboard", dashboard_name=f"{prefix}-gateway", dashboard_body=json.dumps({"widgets": widgets})
        )
        self.dashboard_name = dashboard.dashboard_name

        actions = [observability.alarm_topic_arn]
        alb_dimensions = {"LoadBalancer": watched.load_balancer_arn_suffix}

        def alb_sum(metric_id: str, name: str) -> CloudwatchMetricAlarmMetricQuery:
            return CloudwatchMetricAlarmMetricQuery(
                id=metric_id,
                metric=CloudwatchMetricAlarmMetricQueryMetric(
                    namespace="AWS/ApplicationELB", metric_name=name, period=300, stat="Sum", dimensions=alb_dimensions
                ),
            )

        CloudwatchMetricAlarm(
            self,
            "alarm-5xx-rate",
            alarm_name=f"{prefix}-alb-5xx-rate",
            alarm_description=f"More than {settings.alarm_5xx_percent}% of requests answered 5xx over 5 minutes",
            comparison_operator="GreaterThanThreshold",
            evaluation_periods=1,
            threshold=settings.alarm_5xx_percent,
            treat_missing_data="notBreaching",
            metric_query=[
                alb_sum("requests", "RequestCount"),
                alb_sum("target5xx", "HTTPCode_Target_5XX_Count"),
                alb_sum("elb5xx", "HTTPCode_ELB_5XX_Count"),
                CloudwatchMetricAlarmMetricQuery(
                    id="rate",
                    expression="100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests",
                    label="5xx rate (%)",
                    return_data=True,
                ),
            ],
            alarm_actions=actions,
            ok_actions=actions,
        )
        CloudwatchMetricAlarm(
            self,
            "alarm-unhealthy-targets",
            alarm_name=f"{prefix}-unhealthy-targets",
            alarm_description="At least one gateway task fails its load balancer health check",
            namespace="AWS/ApplicationELB",
            metric_name="UnHealthyHostCount",
            dimensions={"TargetGroup": watched.target_group_arn_suffix, **alb_dimensions},
            statistic="Maximum",
            period=60,
            evaluation_periods=3,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=actions,
            ok_actions=actions,
        )
        CloudwatchMetricAlarm(
            self,
            "alarm-p99-latency",
            alarm_name=f"{prefix}-p99-latency",
            alarm_description=f"p99 target response time above {settings.alarm_p99_latency_seconds} s",
            namespace="AWS/ApplicationELB",
            metric_name="TargetResponseTime",
            dimensions=alb_dimensions,
            extended_statistic="p99",
            period=300,
            evaluation_periods=2,
            threshold=settings.alarm_p99_latency_seconds,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=actions,
            ok_actions=actions,
        )
        CloudwatchMetricAlarm(
            self,
            "alarm-running-tasks",
            alarm_name=f"{prefix}-running-tasks-below-minimum",
            alarm_description=f"Fewer than {watched.min_tasks} gateway tasks running",
            namespace="ECS/ContainerInsights",
            metric_name="RunningTaskCount",
            dimensions={"ClusterName": watched.cluster_name, "ServiceName": watched.service_name},
            statistic="Minimum",
            period=60,
            evaluation_periods=3,
            threshold=watched.min_tasks,
            comparison_operator="LessThanThreshold",
            treat_missing_data="breaching",
            alarm_actions=actions,
            ok_actions=actions,
        )
