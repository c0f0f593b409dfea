"""Observability module: logs key, log groups, saved queries, dashboard, alarms."""

from __future__ import annotations

import json

from tests.template import Template

LOG_GROUP_SUFFIXES = ("access", "gateway", "collector", "otlp-logs", "metrics")


def logs_key(stack: Template) -> dict:
    (key,) = [k for k in stack.resources("aws_kms_key") if "CloudWatch Logs" in k["description"]]
    return key


def test_logs_key_rotates_and_lets_cloudwatch_logs_of_this_account_and_region_use_it(env_stack: Template) -> None:
    key = logs_key(env_stack)
    assert key["enable_key_rotation"] is True
    policy = key.json("policy")
    (logs,) = [s for s in policy["Statement"] if s["Principal"].get("Service", "").startswith("logs.")]
    assert logs["Principal"]["Service"] == "logs.us-east-1.amazonaws.com"
    assert "kms:GenerateDataKey*" in logs["Action"] and "kms:Decrypt*" in logs["Action"]
    context = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert context.startswith("arn:${data.aws_partition.") and ":logs:us-east-1:${data.aws_caller_identity." in context


def test_every_log_group_has_retention_and_the_logs_key(env_stack: Template) -> None:
    key = logs_key(env_stack)
    groups = env_stack.resources("aws_cloudwatch_log_group")
    assert groups
    for group in groups:
        assert group["retention_in_days"] == 365, group.name
        assert group["kms_key_id"] == key.ref("arn"), group.name


def test_a_log_group_exists_for_each_stream(env_stack: Template) -> None:
    names = {g["name"] for g in env_stack.resources("aws_cloudwatch_log_group")}
    env = "prod" if "aws-waf-logs-aigw-prod" in names else "dev"
    assert {f"/aigw-{env}/{suffix}" for suffix in LOG_GROUP_SUFFIXES} <= names


def test_waf_log_group_only_with_waf_and_named_for_waf_delivery(dev: Template, prod: Template) -> None:
    assert not [g for g in dev.resources("aws_cloudwatch_log_group") if g["name"].startswith("aws-waf-logs-")]
    prod.resource("aws_cloudwatch_log_group", {"name": "aws-waf-logs-aigw-prod"})


def test_retention_follows_the_setting(staging: Template) -> None:
    assert {g["retention_in_days"] for g in staging.resources("aws_cloudwatch_log_group")} == {400}


def test_four_saved_queries_over_the_access_log_group(env_stack: Template) -> None:
    queries = env_stack.resources("aws_cloudwatch_query_definition")
    titles = sorted(q["name"].split("/", 1)[1] for q in queries)
    assert titles == [
        "Error rate by provider",
        "Latency p50/p95/p99 by provider",
        "Requests per hour by provider",
        "Top endpoints",
    ]
    access = next(g for g in env_stack.resources("aws_cloudwatch_log_group") if g["name"].endswith("/access"))
    for query in queries:
        assert query["log_group_names"] == [access.ref("name")]
    latency = next(q for q in queries if q["name"].endswith("Latency p50/p95/p99 by provider"))
    # request_time is what the key proxy logs (seconds; see aigw/gateway_task.py)
    assert "request_time * 1000 as duration_ms" in latency["query_string"]
    for percentile in (50, 95, 99):
        assert f"pct(duration_ms, {percentile})" in latency["query_string"]
    assert "by bin(1h), provider" in next(q for q in queries if "per hour" in q["name"])["query_string"]


def test_dashboard_shows_the_queries_and_alb_ecs_health(env_stack: Template) -> None:
    dashboard = env_stack.resource("aws_cloudwatch_dashboard")
    body = json.loads(dashboard["dashboard_body"])
    log_titles = {w["properties"]["title"] for w in body["widgets"] if w["type"] == "log"}
    assert len(log_titles) == 4
    metrics = {m[1] for w in body["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]}
    assert {"RequestCount", "HTTPCode_Target_5XX_Count", "TargetResponseTime", "HealthyHostCount",
            "UnHealthyHostCount", "CPUUtilization", "MemoryUtilization", "RunningTaskCount"} <= metrics  # fmt: skip
    alb = env_stack.resource("aws_lb")
    assert alb.ref("arn_suffix") in dashboard["dashboard_body"]


def test_alarms_cover_5xx_rate_unhealthy_targets_p99_and_running_tasks(env_stack: Template) -> None:
    topic = env_stack.resource("aws_sns_topic")
    alarms = {a["alarm_name"].split("-", 2)[2]: a for a in env_stack.resources("aws_cloudwatch_metric_alarm")}
    assert set(alarms) == {"alb-5xx-rate", "unhealthy-targets", "p99-latency", "running-tasks-below-minimum"}
    for alarm in alarms.values():
        assert alarm["alarm_actions"] == [topic.ref("arn")]

    rate = alarms["alb-5xx-rate"]
    (expression,) = [q for q in rate["metric_query"] if q.get("expression")]
    assert "target5xx" in expression["expression"] and "/ requests" in expression["expression"]
    assert expression["return_data"] is True and rate["threshold"] == 5

    assert alarms["unhealthy-targets"]["metric_name"] == "UnHealthyHostCount"
    assert alarms["unhealthy-targets"]["comparison_operator"] == "GreaterThanThreshold"
    assert alarms["p99-latency"]["extended_statistic"] == "p99"
    running = alarms["running-tasks-below-minimum"]
    assert running["metric_name"] == "RunningTaskCount"
    assert running["comparison_operator"] == "LessThanThreshold"
    service = env_stack.resource("aws_ecs_service")
    assert running["dimensions"]["ServiceName"] == service.ref("name")


def test_running_tasks_alarm_threshold_is_the_configured_minimum(dev: Template, prod: Template) -> None:
    def threshold(stack: Template) -> float:
        return stack.resource("aws_cloudwatch_metric_alarm", {"metric_name": "RunningTaskCount"})["threshold"]

    assert (threshold(dev), threshold(prod)) == (1, 2)


def test_alarm_topic_is_encrypted_and_mail_subscription_only_when_configured(dev: Template, staging: Template) -> None:
    assert dev.resource("aws_sns_topic")["kms_master_key_id"] == logs_key(dev).ref("arn")
    assert dev.count("aws_sns_topic_subscription") == 0
    staging.resource("aws_sns_topic_subscription", {"protocol": "email", "endpoint": "oncall@example.com"})


def test_saved_queries_can_be_left_out_where_unavailable(stacks: dict[str, Template]) -> None:
    # local.toml: the emulator has no CloudWatch Logs query definitions.
    assert stacks["local"].count("aws_cloudwatch_query_definition") == 0
    body = json.loads(stacks["local"].resource("aws_cloudwatch_dashboard")["dashboard_body"])
    assert len([w for w in body["widgets"] if w["type"] == "log"]) == 4
