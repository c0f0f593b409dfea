"""Observability and monitoring: the logs key, log groups, saved queries,
dashboard, alarms and their topic. Stacks come from tests/scenarios.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from security.stackdoc import Res, StackDoc


def logs_key(stack: StackDoc) -> Res:
    (key,) = [k for k in stack.resources("aws_kms_key") if "CloudWatch Logs" in k["description"]]
    return key


def access_log_group(stack: StackDoc) -> Res:
    """The group the data plane (the task's entry point) logs each request to."""
    (definitions,) = [t.json("container_definitions") for t in stack.resources("aws_ecs_task_definition")]
    (data_plane,) = [c for c in definitions if c["name"] == "data-plane"]
    return stack.follow(data_plane["logConfiguration"]["options"]["awslogs-group"])


def dashboard_widgets(stack: StackDoc) -> list[dict[str, Any]]:
    return list(json.loads(stack.resource("aws_cloudwatch_dashboard")["dashboard_body"])["widgets"])


def alarm(stack: StackDoc, name_suffix: str) -> Res:
    (found,) = [a for a in stack.resources("aws_cloudwatch_metric_alarm") if a["alarm_name"].endswith(name_suffix)]
    return found


# -- logs key and log groups --------------------------------------------------
def test_logs_key_rotates(scenarios: dict[str, StackDoc]) -> None:
    assert logs_key(scenarios["base"])["enable_key_rotation"] is True


def test_logs_key_lets_cloudwatch_logs_use_it_only_for_this_accounts_log_groups_in_the_region(
    scenarios: dict[str, StackDoc],
) -> None:
    (logs,) = [
        s
        for s in logs_key(scenarios["seoul"]).json("policy")["Statement"]
        if s["Principal"].get("Service", "").startswith("logs.")
    ]
    assert logs["Principal"]["Service"] == "logs.ap-northeast-2.amazonaws.com"
    context = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert context.startswith("arn:${data.aws_partition.")
    assert ":logs:ap-northeast-2:${data.aws_caller_identity." in context


@pytest.mark.parametrize("name", ["base", "secure"])
def test_every_log_group_is_encrypted_with_the_logs_key(scenarios: dict[str, StackDoc], name: str) -> None:
    stack = scenarios[name]
    key = logs_key(stack)
    assert {g.name: g["kms_key_id"] for g in stack.resources("aws_cloudwatch_log_group")} == {
        g.name: key.ref("arn") for g in stack.resources("aws_cloudwatch_log_group")
    }


@pytest.mark.parametrize(("name", "days"), [("base", 365), ("tuned", 400)])
def test_every_log_group_keeps_logs_for_the_retention_setting(
    scenarios: dict[str, StackDoc], name: str, days: int
) -> None:
    assert {g["retention_in_days"] for g in scenarios[name].resources("aws_cloudwatch_log_group")} == {days}


def test_no_waf_log_group_without_waf(scenarios: dict[str, StackDoc]) -> None:
    names = [g["name"] for g in scenarios["base"].resources("aws_cloudwatch_log_group")]
    assert not [name for name in names if name.startswith("aws-waf-logs-")]


# -- saved queries ------------------------------------------------------------
def test_saved_queries_for_requests_errors_latency_and_endpoints(scenarios: dict[str, StackDoc]) -> None:
    queries = scenarios["base"].resources("aws_cloudwatch_query_definition")
    assert sorted(q["name"] for q in queries) == [
        "aigw-base/Error rate by provider",
        "aigw-base/Latency p50/p95/p99 by provider",
        "aigw-base/Requests per hour by provider",
        "aigw-base/Top endpoints",
    ]


def test_saved_queries_read_the_access_log(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    access = access_log_group(stack)
    for query in stack.resources("aws_cloudwatch_query_definition"):
        assert query["log_group_names"] == [access.ref("name")], query["name"]


def test_latency_query_reports_percentiles_of_the_data_planes_request_time_in_milliseconds(
    scenarios: dict[str, StackDoc],
) -> None:
    # request_time is what the data plane logs, in seconds (docs/data-plane.md).
    query = scenarios["base"].resource(
        "aws_cloudwatch_query_definition", {"name": "aigw-base/Latency p50/p95/p99 by provider"}
    )["query_string"]
    assert "request_time * 1000 as duration_ms" in query
    assert all(f"pct(duration_ms, {percentile})" in query for percentile in (50, 95, 99))


def test_requests_query_counts_per_hour_and_provider(scenarios: dict[str, StackDoc]) -> None:
    query = scenarios["base"].resource(
        "aws_cloudwatch_query_definition", {"name": "aigw-base/Requests per hour by provider"}
    )["query_string"]
    assert "by bin(1h), provider" in query


def test_saved_queries_can_be_left_out(scenarios: dict[str, StackDoc]) -> None:
    assert scenarios["tuned"].count("aws_cloudwatch_query_definition") == 0


# -- dashboard ----------------------------------------------------------------
@pytest.mark.parametrize("name", ["base", "tuned"])
def test_dashboard_runs_the_four_queries_with_or_without_saved_queries(
    scenarios: dict[str, StackDoc], name: str
) -> None:
    stack = scenarios[name]
    log_widgets = [w for w in dashboard_widgets(stack) if w["type"] == "log"]
    assert len(log_widgets) == 4
    assert all(f"SOURCE '{access_log_group(stack).ref('name')}'" in w["properties"]["query"] for w in log_widgets)


def test_dashboard_charts_load_balancer_and_service_health(scenarios: dict[str, StackDoc]) -> None:
    metrics = {
        metric[1]
        for widget in dashboard_widgets(scenarios["base"])
        if widget["type"] == "metric"
        for metric in widget["properties"]["metrics"]
    }
    assert {"RequestCount", "HTTPCode_Target_5XX_Count", "TargetResponseTime", "HealthyHostCount",
            "UnHealthyHostCount", "CPUUtilization", "MemoryUtilization", "RunningTaskCount"} <= metrics  # fmt: skip


def test_dashboard_watches_the_stacks_load_balancer(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    assert stack.resource("aws_lb").ref("arn_suffix") in stack.resource("aws_cloudwatch_dashboard")["dashboard_body"]


# -- alarms -------------------------------------------------------------------
def test_every_alarm_notifies_the_alarm_topic(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    topic = stack.resource("aws_sns_topic").ref("arn")
    alarms = stack.resources("aws_cloudwatch_metric_alarm")
    assert len(alarms) == 4
    assert all(a["alarm_actions"] == [topic] for a in alarms)


def test_5xx_alarm_fires_on_the_share_of_5xx_responses(scenarios: dict[str, StackDoc]) -> None:
    (expression,) = [q for q in alarm(scenarios["base"], "-alb-5xx-rate")["metric_query"] if q.get("expression")]
    assert expression["return_data"] is True
    assert "target5xx" in expression["expression"] and "elb5xx" in expression["expression"]
    assert "/ requests" in expression["expression"]


@pytest.mark.parametrize(("name", "percent"), [("base", 5), ("tuned", 2.5)])
def test_5xx_alarm_threshold_follows_the_setting(scenarios: dict[str, StackDoc], name: str, percent: float) -> None:
    assert alarm(scenarios[name], "-alb-5xx-rate")["threshold"] == percent


@pytest.mark.parametrize(("name", "seconds"), [("base", 30), ("tuned", 45)])
def test_p99_latency_alarm_threshold_follows_the_setting(
    scenarios: dict[str, StackDoc], name: str, seconds: float
) -> None:
    latency = alarm(scenarios[name], "-p99-latency")
    assert (latency["extended_statistic"], latency["threshold"]) == ("p99", seconds)


def test_unhealthy_targets_alarm_fires_on_any_unhealthy_target(scenarios: dict[str, StackDoc]) -> None:
    unhealthy = alarm(scenarios["base"], "-unhealthy-targets")
    assert (unhealthy["metric_name"], unhealthy["comparison_operator"], unhealthy["threshold"]) == (
        "UnHealthyHostCount",
        "GreaterThanThreshold",
        0,
    )


def test_running_tasks_alarm_watches_the_service(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    running = alarm(stack, "-running-tasks-below-minimum")
    assert running["dimensions"]["ServiceName"] == stack.resource("aws_ecs_service").ref("name")


@pytest.mark.parametrize(("name", "minimum"), [("base", 1), ("tuned", 2)])
def test_running_tasks_alarm_fires_below_the_minimum_capacity(
    scenarios: dict[str, StackDoc], name: str, minimum: int
) -> None:
    running = alarm(scenarios[name], "-running-tasks-below-minimum")
    assert (running["metric_name"], running["comparison_operator"], running["threshold"]) == (
        "RunningTaskCount",
        "LessThanThreshold",
        minimum,
    )


def test_alarm_topic_is_encrypted_with_the_logs_key(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    stack.resource("aws_sns_topic", {"kms_master_key_id": logs_key(stack).ref("arn")})


def test_no_mail_subscription_without_an_alarm_email(scenarios: dict[str, StackDoc]) -> None:
    assert scenarios["base"].count("aws_sns_topic_subscription") == 0


def test_alarm_email_is_subscribed_to_the_alarm_topic(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["tuned"]
    stack.resource(
        "aws_sns_topic_subscription",
        {
            "protocol": "email",
            "endpoint": "oncall@example.com",
            "topic_arn": stack.resource("aws_sns_topic").ref("arn"),
        },
    )
