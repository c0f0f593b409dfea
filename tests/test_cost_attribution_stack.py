"""Cost attribution as the stack synthesizes it ("teams" scenario,
tests/scenarios.py): the pricing table, the function and its surroundings,
its least-privilege role, the subscription, the dashboard and the alarm;
and none of it when it is off ("secure")."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from aigw.lambda_package import package
from modules.cost_attribution import FUNCTION_DIR, SUBSCRIPTION_FILTER
from security.stackdoc import StackDoc

COST_TYPES = ("aws_lambda_function", "aws_dynamodb_table", "aws_cloudwatch_log_subscription_filter", "aws_sqs_queue")


def test_the_pricing_table_is_on_demand_recoverable_and_encrypted_with_its_own_key(
    scenarios: dict[str, StackDoc],
) -> None:
    stack = scenarios["teams"]
    table = stack.resource("aws_dynamodb_table")
    assert (table["name"], table["billing_mode"]) == ("aigw-teams-prices", "PAY_PER_REQUEST")
    assert (table["hash_key"], table["range_key"]) == ("model_key", "effective_date")
    assert table["point_in_time_recovery"] == {"enabled": True}
    key = stack.follow(table["server_side_encryption"]["kms_key_arn"])
    assert key["description"] == "aigw-teams: cost attribution (pricing table, dead letters)"
    assert key["enable_key_rotation"] is True
    assert table["deletion_protection_enabled"] is True


def test_the_function_is_pinned_arm64_python_with_reserved_concurrency_and_a_dead_letter_queue(
    scenarios: dict[str, StackDoc],
) -> None:
    stack = scenarios["teams"]
    function = stack.resource("aws_lambda_function")
    assert (function["runtime"], function["architectures"], function["handler"]) == (
        "python3.12", ["arm64"], "handler.handler",
    )  # fmt: skip
    assert function["reserved_concurrent_executions"] == 3
    queue = stack.follow(function["dead_letter_config"]["target_arn"])
    assert queue["kms_master_key_id"] == stack.resource("aws_dynamodb_table")["server_side_encryption"]["kms_key_arn"]
    invoke = stack.resource("aws_lambda_function_event_invoke_config")
    assert invoke["maximum_retry_attempts"] == 2
    group = stack.resource("aws_cloudwatch_log_group", {"name": "/aws/lambda/aigw-teams-cost-attribution"})
    assert function["logging_config"]["log_group"] == group.ref("name")
    assert group["retention_in_days"] >= 30 and group["kms_key_id"]
    assert function["environment"]["variables"] == {"PRICES_TABLE": stack.resource("aws_dynamodb_table").ref("name")}


def test_the_package_is_deterministic_and_its_hash_is_what_the_stack_pins(scenarios: dict[str, StackDoc]) -> None:
    first, second = package(FUNCTION_DIR), package(FUNCTION_DIR)
    assert first.data == second.data
    function = scenarios["teams"].resource("aws_lambda_function")
    assert function["source_code_hash"] == base64.b64encode(hashlib.sha256(first.data).digest()).decode()
    names = zipfile.ZipFile(io.BytesIO(first.data)).namelist()
    assert "handler.py" in names and not [n for n in names if "test" in n or "__pycache__" in n]


def test_the_function_reaches_dynamodb_and_nothing_else(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["teams"]
    function = stack.resource("aws_lambda_function")
    (group_ref,) = function["vpc_config"]["security_group_ids"]
    group = stack.follow(group_ref)
    private = sorted(s.ref("id") for s in stack.resources("aws_subnet") if "private" in s.name)
    assert sorted(function["vpc_config"]["subnet_ids"]) == private
    rules = [
        r for r in stack.resources("aws_vpc_security_group_egress_rule") if r["security_group_id"] == group.ref("id")
    ]
    (rule,) = rules
    assert (rule["ip_protocol"], rule["from_port"], rule["to_port"]) == ("tcp", 443, 443)
    prefix_list = stack.data("aws_ec2_managed_prefix_list")[0]
    assert prefix_list["name"] == "com.amazonaws.us-east-1.dynamodb"
    assert rule["prefix_list_id"] == f"${{data.aws_ec2_managed_prefix_list.{prefix_list.name}.id}}"
    assert not [
        r for r in stack.resources("aws_vpc_security_group_ingress_rule") if r["security_group_id"] == group.ref("id")
    ]
    endpoint = stack.resource("aws_vpc_endpoint", {"service_name": "com.amazonaws.us-east-1.dynamodb"})
    assert endpoint["vpc_endpoint_type"] == "Gateway"


def test_the_role_may_write_its_logs_read_prices_and_send_dead_letters_only(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["teams"]
    role = stack.resource("aws_iam_role", {"name": "aigw-teams-cost-attribution"})
    trust = json.loads(role["assume_role_policy"])["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}]
    policy = stack.resource("aws_iam_role_policy", {"name": "cost-attribution"}).policy("policy")
    assert policy is not None
    statements = {s["Sid"]: s for s in policy["Statement"]}
    table, queue = stack.resource("aws_dynamodb_table"), stack.resource("aws_sqs_queue")
    assert statements["ReadPrices"]["Action"] == ["dynamodb:Query", "dynamodb:GetItem"]
    assert statements["ReadPrices"]["Resource"] == [table.ref("arn")]
    assert statements["SendDeadLetters"] == {"Sid": "SendDeadLetters", "Effect": "Allow",
                                             "Action": ["sqs:SendMessage"], "Resource": [queue.ref("arn")]}  # fmt: skip
    group = stack.resource("aws_cloudwatch_log_group", {"name": "/aws/lambda/aigw-teams-cost-attribution"})
    assert set(statements["WriteOwnLogs"]["Resource"]) == {group.ref("arn"), f"{group.ref('arn')}:log-stream:*"}
    assert statements["UseOwnKeyThroughItsServices"]["Condition"]["StringEquals"]["kms:ViaService"] == [
        "dynamodb.us-east-1.amazonaws.com", "sqs.us-east-1.amazonaws.com", "lambda.us-east-1.amazonaws.com",
    ]  # fmt: skip
    assert set(statements) == {
        "WriteOwnLogs", "ReadPrices", "SendDeadLetters", "UseOwnKeyThroughItsServices",
        "CreateInterfacesInPrivateSubnets", "ManageOwnInterfaces", "DescribeInterfaces",
    }  # fmt: skip
    assert statements["DescribeInterfaces"]["Action"] == ["ec2:DescribeNetworkInterfaces"]
    wildcard = [s["Sid"] for s in statements.values() if s["Resource"] == "*" or "*" in s["Resource"]]
    assert wildcard == ["DescribeInterfaces"]  # the one action EC2 does not scope to a resource
    assert trust[0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "${data.aws_caller_identity.caller.account_id}"}
    }
    assert all(not a.startswith(("dynamodb:Put", "dynamodb:Delete", "cloudwatch:", "s3:")) for s in statements.values()
               for a in s["Action"])  # fmt: skip


def test_the_access_log_is_subscribed_and_only_logs_may_invoke(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["teams"]
    subscription = stack.resource("aws_cloudwatch_log_subscription_filter")
    access = stack.resource("aws_cloudwatch_log_group", {"name": "/aigw-teams/access"})
    function = stack.resource("aws_lambda_function")
    assert subscription["log_group_name"] == access.ref("name")
    assert subscription["filter_pattern"] == SUBSCRIPTION_FILTER == "{ $.status >= 100 }"
    assert subscription["destination_arn"] == function.ref("arn")
    permission = stack.resource("aws_lambda_permission")
    assert (permission["principal"], permission["source_arn"]) == ("logs.amazonaws.com", f"{access.ref('arn')}:*")


def test_the_dashboard_shows_cost_and_tokens_by_provider_model_and_team_and_latency_percentiles(
    scenarios: dict[str, StackDoc],
) -> None:
    body = json.loads(scenarios["teams"].resource("aws_cloudwatch_dashboard")["dashboard_body"])
    titles = [widget["properties"]["title"] for widget in body["widgets"]]
    for dimension in ("provider", "model", "team"):
        assert f"Estimated cost (USD) by {dimension}" in titles and f"Tokens by {dimension}" in titles
    latency = [w for w in body["widgets"] if w["properties"]["title"].startswith("Time to first token")]
    expressions = [m[0]["expression"] for m in latency[0]["properties"]["metrics"]]
    assert [e.split("', '")[1].split("'")[0] for e in expressions] == ["p50", "p90", "p99"]
    by_team = next(w for w in body["widgets"] if w["properties"]["title"] == "Estimated cost (USD) by team")
    assert by_team["properties"]["metrics"][0][0]["expression"] == (
        'SELECT SUM(EstimatedCostUsd) FROM SCHEMA("AIGateway", Provider, Model, Team) GROUP BY Team'
    )


def test_a_team_daily_cost_alarm_watches_its_cost_by_team(scenarios: dict[str, StackDoc]) -> None:
    alarm = scenarios["teams"].resource("aws_cloudwatch_metric_alarm", {"alarm_name": "aigw-teams-daily-cost-search"})
    assert (alarm["namespace"], alarm["metric_name"], alarm["dimensions"]) == (
        "AIGateway", "EstimatedCostUsd", {"Team": "search"},
    )  # fmt: skip
    assert (alarm["period"], alarm["statistic"], alarm["threshold"]) == (86400, "Sum", 25.5)


def test_without_cost_attribution_there_is_none_of_it(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["secure"]
    for kind in COST_TYPES:
        assert stack.resources(kind) == [], kind
    assert not [e for e in stack.resources("aws_vpc_endpoint") if e["service_name"].endswith(".dynamodb")]
    assert stack.outputs["pricing_table_name"]["value"] == ""


def test_the_handler_folder_holds_the_function_alone() -> None:
    assert sorted(p.name for p in Path(FUNCTION_DIR).glob("*.py")) == ["__init__.py", "handler.py"]


def test_a_folder_without_its_handler_is_never_packaged_empty(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no handler\.py"):
        package(tmp_path / "cost_attribution")


def test_a_package_depends_on_its_sources_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "fn"
    for name in ("handler.py", "a.py", "z.py", "sub/__init__.py", "sub/b.py", "test_handler.py",
                 "__pycache__/handler.cpython-312.py"):  # fmt: skip
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"# {name}\n")
    first = package(folder)
    names = zipfile.ZipFile(io.BytesIO(first.data)).namelist()
    assert names == ["a.py", "handler.py", "sub/__init__.py", "sub/b.py", "z.py"]
    (folder / "a.py").chmod(0o755)  # an executable bit on one machine
    listed = Path.rglob
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: reversed(list(listed(self, pattern))))  # another order
    assert package(folder).data == first.data


def test_the_function_is_invoked_by_this_accounts_logs_and_encrypted_with_its_key(
    scenarios: dict[str, StackDoc],
) -> None:
    stack = scenarios["teams"]
    permission = stack.resource("aws_lambda_permission")
    assert permission["source_account"] == "${data.aws_caller_identity.caller.account_id}"
    function = stack.resource("aws_lambda_function")
    assert function["kms_key_arn"] == stack.resource("aws_dynamodb_table")["server_side_encryption"]["kms_key_arn"]
    invoke = stack.resource("aws_lambda_function_event_invoke_config")
    assert invoke["maximum_event_age_in_seconds"] == 6 * 3600


def test_the_daily_cost_alarm_fires_above_its_limit(scenarios: dict[str, StackDoc]) -> None:
    alarm = scenarios["teams"].resource("aws_cloudwatch_metric_alarm", {"alarm_name": "aigw-teams-daily-cost-search"})
    assert (alarm["comparison_operator"], alarm["evaluation_periods"], alarm["treat_missing_data"]) == (
        "GreaterThanThreshold", 1, "notBreaching",
    )  # fmt: skip


def test_every_cost_and_latency_panel_groups_its_own_metric(scenarios: dict[str, StackDoc]) -> None:
    body = json.loads(scenarios["teams"].resource("aws_cloudwatch_dashboard")["dashboard_body"])
    widgets = {w["properties"]["title"]: w["properties"].get("metrics") for w in body["widgets"]}
    schema = 'SCHEMA("AIGateway", Provider, Model, Team'
    for dimension in ("Provider", "Model", "Team"):
        assert widgets[f"Estimated cost (USD) by {dimension.lower()}"][0][0]["expression"] == (
            f"SELECT SUM(EstimatedCostUsd) FROM {schema}) GROUP BY {dimension}"
        )
        assert widgets[f"Tokens by {dimension.lower()}"][0][0]["expression"] == (
            f"SELECT SUM(TokensUsed) FROM {schema}, TokenType) GROUP BY {dimension}, TokenType"
        )
    for metric, title in (("TimeToFirstToken", "Time to first token (ms)"), ("RequestTime", "Total time (ms)")):
        expressions = [m[0]["expression"] for m in widgets[f"{title} p50/p90/p99 by provider and model"]]
        assert len(expressions) == 3 and all(f'MetricName="{metric}"' in e for e in expressions), expressions
