"""Monitoring: the dashboard (modules/dashboard.py) and the alarms on the
load balancer and the service. Built last: it watches everything else.

Behind an ALB: 5xx rate, unhealthy targets, p99 latency, running tasks.
Behind an NLB, which publishes no HTTP metrics, the 5xx-rate and latency
alarms are not built (settings refuse their thresholds); unhealthy targets
(AWS/NetworkELB) and running tasks remain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.cloudwatch_dashboard import CloudwatchDashboard
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import (
    CloudwatchMetricAlarm,
    CloudwatchMetricAlarmMetricQuery,
    CloudwatchMetricAlarmMetricQueryMetric,
)
from constructs import Construct

from aigw.settings import LoadBalancerType, ObservabilitySettings
from modules.context import StackContext
from modules.dashboard import Watched, dashboard_body
from modules.observability import METRICS_NAMESPACE, SAVED_QUERIES, ObservabilityOutputs


@dataclass(frozen=True)
class MonitoredService:
    """What the dashboard and alarms watch, from networking and compute."""

    load_balancer_type: LoadBalancerType
    load_balancer_arn_suffix: str
    target_group_arn_suffix: str
    cluster_name: str
    service_name: str
    min_tasks: int
    # The data plane's access log the query panels read (None in hybrid mode, which writes none).
    access_log_group: str | None
    # The second target group of a blue/green, canary or linear deployment.
    alternate_target_group_arn_suffix: str | None = None
    # Teams with a token budget (an alarm each on its alert), and whether any team is counted in the shared store.
    budget_teams: tuple[str, ...] = ()
    counts_limits: bool = False
    # Whether the data plane answers from the response cache (an alarm on its store failing).
    caches_answers: bool = False
    # Whether the data plane applies the organisation's guardrail (an alarm on it being unavailable, a panel).
    applies_guardrail: bool = False
    # Cost attribution on: its dashboard panels, and a daily cost alarm per team listed here (USD).
    cost_attribution: bool = False
    team_daily_cost_usd: tuple[tuple[str, float], ...] = ()


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
        body = dashboard_body(
            {title: query for title, query in SAVED_QUERIES.values()},
            Watched(
                region=context.region,
                access_log_group=watched.access_log_group,
                load_balancer_type=watched.load_balancer_type,
                load_balancer_arn_suffix=watched.load_balancer_arn_suffix,
                target_group_arn_suffix=watched.target_group_arn_suffix,
                cluster_name=watched.cluster_name,
                service_name=watched.service_name,
                alternate_target_group_arn_suffix=watched.alternate_target_group_arn_suffix,
                cost_namespace=METRICS_NAMESPACE if watched.cost_attribution else None,
                guardrail_namespace=METRICS_NAMESPACE if watched.applies_guardrail else None,
            ),
        )
        dashboard = CloudwatchDashboard(
            self, "dashboard", dashboard_name=f"{prefix}-gateway", dashboard_body=json.dumps(body)
        )
        self.dashboard_name = dashboard.dashboard_name

        actions = [observability.alarm_topic_arn]
        kind = watched.load_balancer_type
        namespace = kind.cloudwatch_namespace
        lb_dimensions = {"LoadBalancer": watched.load_balancer_arn_suffix}

        def alb_sum(metric_id: str, name: str) -> CloudwatchMetricAlarmMetricQuery:
            return CloudwatchMetricAlarmMetricQuery(
                id=metric_id,
                metric=CloudwatchMetricAlarmMetricQueryMetric(
                    namespace=namespace, metric_name=name, period=300, stat="Sum", dimensions=lb_dimensions
                ),
            )

        if kind.publishes_http_metrics:
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
                "alarm-p99-latency",
                alarm_name=f"{prefix}-p99-latency",
                alarm_description=f"p99 target response time above {settings.alarm_p99_latency_seconds} s",
                namespace=namespace,
                metric_name="TargetResponseTime",
                dimensions=lb_dimensions,
                extended_statistic="p99",
                period=300,
                evaluation_periods=2,
                threshold=settings.alarm_p99_latency_seconds,
                comparison_operator="GreaterThanThreshold",
                treat_missing_data="notBreaching",
                alarm_actions=actions,
                ok_actions=actions,
            )
        unhealthy: dict[str, Any] = {
            "namespace": namespace,
            "metric_name": "UnHealthyHostCount",
            "dimensions": {"TargetGroup": watched.target_group_arn_suffix, **lb_dimensions},
            "statistic": "Maximum",
            "period": 60,
        }
        if alternate := watched.alternate_target_group_arn_suffix:
            # The tasks sit in either target group, whichever the last deployment
            # left live: count the unhealthy targets of both.
            def group(metric_id: str, suffix: str) -> CloudwatchMetricAlarmMetricQuery:
                return CloudwatchMetricAlarmMetricQuery(
                    id=metric_id,
                    metric=CloudwatchMetricAlarmMetricQueryMetric(
                        namespace=namespace,
                        metric_name="UnHealthyHostCount",
                        period=60,
                        stat="Maximum",
                        dimensions={"TargetGroup": suffix, **lb_dimensions},
                    ),
                )

            unhealthy = {
                "metric_query": [
                    group("primary", watched.target_group_arn_suffix),
                    group("alternate", alternate),
                    CloudwatchMetricAlarmMetricQuery(
                        id="unhealthy",
                        expression="FILL(primary, 0) + FILL(alternate, 0)",
                        label="Unhealthy targets in either target group",
                        return_data=True,
                    ),
                ]
            }
        CloudwatchMetricAlarm(
            self,
            "alarm-unhealthy-targets",
            alarm_name=f"{prefix}-unhealthy-targets",
            alarm_description="At least one gateway task fails its load balancer health check",
            **unhealthy,
            evaluation_periods=3,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=actions,
            ok_actions=actions,
        )
        for team in watched.budget_teams:
            CloudwatchMetricAlarm(
                self,
                f"alarm-budget-{team}",
                alarm_name=f"{prefix}-budget-alert-{team}",
                alarm_description=f"Team {team} passed its budget's alert threshold (clients.{team}.budget)",
                namespace=METRICS_NAMESPACE,
                metric_name="BudgetAlerts",
                # The data plane counts an alert with no provider, model or status (aigw/telemetry.lua).
                dimensions={"provider": "none", "model": "none", "team": team, "status": "0"},
                statistic="Sum",
                period=300,
                evaluation_periods=1,
                threshold=0,
                comparison_operator="GreaterThanThreshold",
                treat_missing_data="notBreaching",
                alarm_actions=actions,
            )
        for team, limit in watched.team_daily_cost_usd:
            CloudwatchMetricAlarm(
                self,
                f"alarm-daily-cost-{team}",
                alarm_name=f"{prefix}-daily-cost-{team}",
                alarm_description=f"Team {team}'s estimated cost today passed {limit} USD "
                "(cost_attribution.team_daily_cost_alarm_usd)",
                namespace=METRICS_NAMESPACE,
                metric_name="EstimatedCostUsd",
                # The cost attribution function publishes the cost by team alone too.
                dimensions={"Team": team},
                statistic="Sum",
                period=86400,
                evaluation_periods=1,
                threshold=limit,
                comparison_operator="GreaterThanThreshold",
                treat_missing_data="notBreaching",
                alarm_actions=actions,
            )
        # What the data plane depends on per request: an alarm when a request went on without it
        # (the stores fail open) or was refused for want of it (the guardrail fails closed).
        unavailable = (
            (watched.counts_limits, "limits-unavailable", "LimitsUnavailable",
             "Requests were let through without their team's limits: the shared store was unavailable "
             "(limits fail open)"),
            (watched.caches_answers, "cache-unavailable", "CacheUnavailable",
             "Requests were answered without the response cache: its store was unavailable (the cache fails open)"),
            (watched.applies_guardrail, "guardrail-unavailable", "GuardrailUnavailable",
             "Requests were refused (503) because the guardrail could not check them: ApplyGuardrail failed or "
             "timed out (the guardrail fails closed)"),
        )  # fmt: skip
        for wanted, name, metric, description in unavailable:
            if not wanted:
                continue
            CloudwatchMetricAlarm(
                self,
                f"alarm-{name}",
                alarm_name=f"{prefix}-{name}",
                alarm_description=description,
                metric_query=[
                    CloudwatchMetricAlarmMetricQuery(
                        id="unavailable",
                        expression=f'SELECT SUM({metric}) FROM SCHEMA("{METRICS_NAMESPACE}", model, '
                        "provider, status, team)",
                        period=300,
                        return_data=True,
                    )
                ],
                evaluation_periods=1,
                threshold=0,
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
