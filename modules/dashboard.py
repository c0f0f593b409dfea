"""The CloudWatch dashboard's body, as data: panels in reading order, laid
out on a two-column grid. Pure Python (no cdktf); modules/monitoring.py
passes the references of what it watches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aigw.settings import LoadBalancerType

PANEL_WIDTH = 12  # of the dashboard's 24 columns: two panels a row
PANEL_HEIGHT = 6
PERIOD_SECONDS = 60


@dataclass(frozen=True)
class Watched:
    """What the dashboard shows: the access-log group (None in hybrid mode, which
    writes none: no query panels) and the metric dimensions."""

    region: str
    access_log_group: str | None
    load_balancer_type: LoadBalancerType
    load_balancer_arn_suffix: str
    target_group_arn_suffix: str
    cluster_name: str
    service_name: str
    # Blue/green, canary and linear deployments move the tasks between the
    # edge's target group and this one: after a deployment the edge's is idle.
    alternate_target_group_arn_suffix: str | None = None
    # Cost attribution's metrics (lambdas/cost_attribution/handler.py): tokens, cost and latency panels.
    cost_namespace: str | None = None
    # The data plane's guardrail counts (blocked inputs and answers, checks unavailable): one panel.
    guardrail_namespace: str | None = None


def _query_panel(title: str, query: str, log_group: str, watched: Watched) -> dict[str, Any]:
    return {
        "type": "log",
        "properties": {
            "title": title,
            "region": watched.region,
            "query": f"SOURCE '{log_group}' | {query}",
            "view": "table",
        },
    }


def _metric_panel(title: str, metrics: list[list[object]], stat: str, watched: Watched) -> dict[str, Any]:
    return {
        "type": "metric",
        "properties": {
            "title": title,
            "region": watched.region,
            "stat": stat,
            "period": PERIOD_SECONDS,
            "metrics": metrics,
        },
    }


def _target_health_metrics(elb: str, watched: Watched) -> list[list[object]]:
    """Healthy and unhealthy targets of each target group the tasks can be in,
    each group's lines labelled when there are two."""
    primary, alternate = watched.target_group_arn_suffix, watched.alternate_target_group_arn_suffix
    groups = [("primary", primary), ("alternate", alternate)] if alternate else [("", primary)]
    metrics: list[list[object]] = []
    for label, suffix in groups:
        for name in ("HealthyHostCount", "UnHealthyHostCount"):
            line: list[object] = [elb, name, "TargetGroup", suffix, "LoadBalancer", watched.load_balancer_arn_suffix]
            metrics.append([*line, {"label": f"{name} ({label})"}] if label else line)
    return metrics


def _traffic_panels(watched: Watched) -> list[dict[str, Any]]:
    """What the load balancer publishes about traffic. An ALB counts requests,
    status codes and response times; an NLB sees only flows and TCP resets
    (the data plane's access log, in the query panels, has statuses and
    latencies behind either)."""
    lb = ["LoadBalancer", watched.load_balancer_arn_suffix]
    kind = watched.load_balancer_type
    elb = kind.cloudwatch_namespace
    if not kind.publishes_http_metrics:
        flows = ("NewFlowCount", "TCP_Client_Reset_Count", "TCP_ELB_Reset_Count", "TCP_Target_Reset_Count")
        return [
            _metric_panel("NLB new flows and TCP resets", [[elb, name, *lb] for name in flows], "Sum", watched),
            _metric_panel("NLB active flows", [[elb, "ActiveFlowCount", *lb]], "Average", watched),
        ]
    return [
        _metric_panel(
            "ALB requests and 5xx",
            [
                [elb, "RequestCount", *lb],
                [elb, "HTTPCode_Target_5XX_Count", *lb],
                [elb, "HTTPCode_ELB_5XX_Count", *lb],
            ],
            "Sum",
            watched,
        ),
        _metric_panel("ALB target response time p99", [[elb, "TargetResponseTime", *lb]], "p99", watched),
    ]


COST_PERIOD_SECONDS = 3600
LATENCY_PERIOD_SECONDS = 300
LATENCY_PERCENTILES = ("p50", "p90", "p99")


def _expression_panel(title: str, expressions: list[tuple[str, str]], period: int, watched: Watched) -> dict[str, Any]:
    """A panel of metric expressions (label, expression): Metrics Insights queries or SEARCH."""
    return {
        "type": "metric",
        "properties": {
            "title": title,
            "region": watched.region,
            "period": period,
            "metrics": [
                [{"expression": expression, "id": f"e{index}", "label": label}]
                for index, (label, expression) in enumerate(expressions)
            ],
        },
    }


def _cost_panels(namespace: str, watched: Watched) -> list[dict[str, Any]]:
    """Cost and tokens by provider, by model and by team (Metrics Insights, summed per
    dimension), then time to first token and total time, p50/p90/p99 per provider and model."""
    schema = f'SCHEMA("{namespace}", Provider, Model, Team)'
    tokens_schema = f'SCHEMA("{namespace}", Provider, Model, Team, TokenType)'
    result: list[dict[str, Any]] = []
    for dimension in ("Provider", "Model", "Team"):
        cost = f"SELECT SUM(EstimatedCostUsd) FROM {schema} GROUP BY {dimension}"
        tokens = f"SELECT SUM(TokensUsed) FROM {tokens_schema} GROUP BY {dimension}, TokenType"
        result.append(
            _expression_panel(
                f"Estimated cost (USD) by {dimension.lower()}", [("", cost)], COST_PERIOD_SECONDS, watched
            )
        )
        result.append(_expression_panel(f"Tokens by {dimension.lower()}", [("", tokens)], COST_PERIOD_SECONDS, watched))
    for metric, title in (("TimeToFirstToken", "Time to first token (ms)"), ("RequestTime", "Total time (ms)")):
        found = [
            (
                stat,
                f"SEARCH('{{{namespace},Provider,Model}} MetricName=\"{metric}\"', '{stat}', {LATENCY_PERIOD_SECONDS})",
            )
            for stat in LATENCY_PERCENTILES
        ]
        result.append(
            _expression_panel(f"{title} p50/p90/p99 by provider and model", found, LATENCY_PERIOD_SECONDS, watched)
        )
    result.append(
        _expression_panel(
            "Requests with unknown usage, lines not priced",
            [
                ("usage unknown", f"SELECT SUM(UsageUnknown) FROM {schema} GROUP BY Provider"),
                ("not priced", f'SELECT SUM(UnpricedLines) FROM SCHEMA("{namespace}", Reason) GROUP BY Reason'),
            ],
            COST_PERIOD_SECONDS,
            watched,
        )
    )
    return result


# The data plane's guardrail counts, by label, in the dimensions of all its metrics.
GUARDRAIL_METRICS: tuple[tuple[str, str], ...] = (
    ("inputs blocked", "GuardrailBlockedInputs"),
    ("answers blocked", "GuardrailBlockedOutputs"),
    ("refused: guardrail unavailable", "GuardrailUnavailable"),
)


def _guardrail_panel(namespace: str, watched: Watched) -> dict[str, Any]:
    """Requests and answers the guardrail blocked, and requests refused because it could not check them."""
    schema = f'SCHEMA("{namespace}", model, provider, status, team)'
    return _expression_panel(
        "Guardrail: blocked inputs and answers, checks unavailable",
        [(label, f"SELECT SUM({metric}) FROM {schema}") for label, metric in GUARDRAIL_METRICS],
        LATENCY_PERIOD_SECONDS,
        watched,
    )


def panels(queries: Mapping[str, str], watched: Watched) -> list[dict[str, Any]]:
    """Every panel in reading order: the saved queries (title -> query) over the
    access log where there is one, then load balancer and service health."""
    service = ["ClusterName", watched.cluster_name, "ServiceName", watched.service_name]
    elb = watched.load_balancer_type.cloudwatch_namespace
    log_group = watched.access_log_group
    return [
        *(_query_panel(title, query, log_group, watched) for title, query in queries.items() if log_group),
        *_traffic_panels(watched),
        _metric_panel(
            "Healthy / unhealthy targets",
            _target_health_metrics(elb, watched),
            "Minimum",
            watched,
        ),
        _metric_panel(
            "ECS service CPU / memory / running tasks",
            [
                ["AWS/ECS", "CPUUtilization", *service],
                ["AWS/ECS", "MemoryUtilization", *service],
                ["ECS/ContainerInsights", "RunningTaskCount", *service],
            ],
            "Average",
            watched,
        ),
        *((_guardrail_panel(watched.guardrail_namespace, watched),) if watched.guardrail_namespace else ()),
        *(_cost_panels(watched.cost_namespace, watched) if watched.cost_namespace else ()),
    ]


def dashboard_body(queries: Mapping[str, str], watched: Watched) -> dict[str, Any]:
    """The dashboard JSON: panels placed left to right, top to bottom."""
    widgets = []
    for index, panel in enumerate(panels(queries, watched)):
        column, row = index % 2, index // 2
        placed = {"type": panel["type"], "x": column * PANEL_WIDTH, "y": row * PANEL_HEIGHT,
                  "width": PANEL_WIDTH, "height": PANEL_HEIGHT, "properties": panel["properties"]}  # fmt: skip
        widgets.append(placed)
    return {"widgets": widgets}
