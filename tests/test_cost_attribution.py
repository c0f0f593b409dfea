"""The cost attribution function (lambdas/cost_attribution/handler.py) run
in-process: batches wrapped as CloudWatch Logs delivers them, prices from a
pricing table in moto's DynamoDB (filled by tools/prices.py), metrics read
back from its EMF output. The access lines are the data plane's own: the
harness's, or lines of exactly that schema."""

from __future__ import annotations

import base64
import gzip
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from lambdas.cost_attribution import handler
from tools import prices

LINE = {
    "time": "2026-12-05T10:00:00+00:00", "method": "POST", "path": "/v1/chat/completions", "status": 200,
    "request_time": 1.25, "upstream_time": "1.240", "client_id": "abc", "team": "search", "provider": "openai",
    "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 500, "stream": False, "time_to_first_token": 0.4,
    "route": "", "option": "", "rule": "", "limit": "", "bytes": 100, "trace": "",
}  # fmt: skip
# Test prices, large enough that a few requests cost dollars (cents are checked exactly).
PRICE_LIST = """version = 1
[[prices]]
provider = "openai"
model = "gpt-4o"
input = "12.34"
output = "56.78"
per_tokens = 1000
currency = "USD"
effective_date = "2026-01-01"
[[prices]]
provider = "openai"
model = "gpt-4o"
input = "1.00"
output = "2.00"
per_tokens = 1000
currency = "USD"
effective_date = "2026-12-05"
[[prices]]
provider = "anthropic"
model = "claude-haiku-4-5"
input = "3.00"
output = "15.00"
per_tokens = 1000000
currency = "USD"
effective_date = "2025-10-15"
"""


def line(**changes: Any) -> str:
    return json.dumps({**LINE, **changes})


def subscription_event(messages: list[str], message_type: str = "DATA_MESSAGE") -> dict[str, Any]:
    """A Lambda event as a CloudWatch Logs subscription delivers it: JSON, gzip, base64."""
    batch = {
        "messageType": message_type, "owner": "123456789012", "logGroup": "/aigw-test/access",
        "logStream": "data-plane/data-plane/0123", "subscriptionFilters": ["aigw-test-cost-attribution"],
        "logEvents": [
            {"id": str(index), "timestamp": 1796464800000 + index, "message": message}
            for index, message in enumerate(messages)
        ],
    }  # fmt: skip
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(batch).encode())).decode()}}


@pytest.fixture
def table(tmp_path: Path) -> Iterator[Any]:
    """The pricing table in moto's DynamoDB, as the stack creates it, filled by tools/prices.py."""
    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        created = dynamodb.create_table(
            TableName="aigw-test-prices",
            KeySchema=[
                {"AttributeName": "model_key", "KeyType": "HASH"},
                {"AttributeName": "effective_date", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "model_key", "AttributeType": "S"},
                {"AttributeName": "effective_date", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        listed = tmp_path / "prices.toml"
        listed.write_text(PRICE_LIST)
        prices.seed(created, prices.load(listed))
        yield created


def run(event: dict[str, Any], table: Any) -> tuple[handler.Report, list[dict[str, Any]], list[dict[str, Any]]]:
    """The report, the EMF documents and the other lines the function printed."""
    out = io.StringIO()
    report = handler.run(event, handler.PriceTable(table), out)
    printed = [json.loads(text) for text in out.getvalue().splitlines()]
    return report, [doc for doc in printed if "_aws" in doc], [doc for doc in printed if "_aws" not in doc]


def metric(documents: list[dict[str, Any]], name: str, **dimensions: str) -> Any:
    """The value of `name` in the one EMF document with exactly these dimensions."""
    found = [
        doc[name]
        for doc in documents
        if name in doc
        and doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [list(dimensions)]
        and all(doc[key] == value for key, value in dimensions.items())
    ]
    assert len(found) == 1, (name, dimensions, found)
    return found[0]


# -- pricing ---------------------------------------------------------------------------------


def test_a_line_is_priced_at_the_price_in_effect_on_its_day(table: Any) -> None:
    before = line(time="2026-12-04T23:59:59+00:00")  # 12.34 / 56.78 per 1K
    on = line(time="2026-12-05T00:00:00+00:00")  # 1.00 / 2.00 per 1K from that day
    report, documents, _ = run(subscription_event([before, on]), table)
    # 1000 x 12.34 + 500 x 56.78 per 1K, then 1000 x 1.00 + 500 x 2.00 per 1K.
    assert report.cost == Decimal("12.34") + Decimal("28.39") + Decimal("1.00") + Decimal("1.00")
    assert metric(documents, "EstimatedCostUsd", Provider="openai", Model="gpt-4o", Team="search") == 42.73
    assert metric(documents, "Requests", Provider="openai", Model="gpt-4o", Team="search") == 2
    tokens = {"input": 2000, "output": 1000}
    for kind, count in tokens.items():
        assert (
            metric(documents, "TokensUsed", Provider="openai", Model="gpt-4o", Team="search", TokenType=kind) == count
        )


def test_the_cost_is_published_by_team_alone_too(table: Any) -> None:
    _, documents, _ = run(subscription_event([line()]), table)
    (document,) = [doc for doc in documents if "EstimatedCostUsd" in doc]
    directives = document["_aws"]["CloudWatchMetrics"]
    assert [d["Dimensions"] for d in directives] == [[["Provider", "Model", "Team"]], [["Team"]]]
    assert [m["Name"] for m in directives[1]["Metrics"]] == ["EstimatedCostUsd"]
    assert all(d["Namespace"] == "AIGateway" for d in directives)


def test_teams_are_kept_apart_and_a_line_without_a_team_is_none(table: Any) -> None:
    messages = [line(team="search"), line(team="batch"), line(team="")]
    _, documents, _ = run(subscription_event(messages), table)
    for team in ("search", "batch", "none"):
        assert metric(documents, "Requests", Provider="openai", Model="gpt-4o", Team=team) == 1


def test_a_streamed_request_whose_usage_never_arrived_is_usage_unknown_never_zero(table: Any) -> None:
    cut = line(stream=True, input_tokens=None, output_tokens=None)
    report, documents, logged = run(subscription_event([cut]), table)
    assert report.cost == 0
    keys = {"Provider": "openai", "Model": "gpt-4o", "Team": "search"}
    assert metric(documents, "UsageUnknown", **keys) == 1
    assert metric(documents, "TokensUsed", **keys, TokenType="input") == 0
    assert [entry for entry in logged if entry.get("usage_unknown")], logged


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not json at all", "malformed"),
        (line()[:40], "malformed"),  # truncated
        ("[1, 2]", "malformed"),
        (line(status="200"), "malformed"),
        (line(input_tokens=-5), "malformed"),
        (line(input_tokens=True), "malformed"),
        (line(cache=1), "malformed"),
        (line(time="yesterday"), "malformed"),
        (json.dumps({k: v for k, v in LINE.items() if k != "provider"}), "malformed"),
        (line(model="gpt-9-turbo"), "unknown-model"),
        (line(path="/v1/images/generations", input_tokens=None, output_tokens=None), "not-token-priced"),
        (line(provider=""), "client-config"),
    ],
)
def test_lines_that_cannot_be_priced_are_counted_and_logged_and_never_fail_the_batch(
    table: Any, message: str, reason: str
) -> None:
    report, documents, logged = run(subscription_event([message, line()]), table)
    assert metric(documents, "UnpricedLines", Reason=reason) == 1
    assert report.cost == Decimal("2.00")  # the good line is still priced: 1000 x 1.00 + 500 x 2.00 per 1K
    if reason in ("malformed", "unknown-model"):
        assert [entry for entry in logged if entry.get("unpriced") == reason], logged


def test_an_unknown_model_keeps_no_name_of_its_own(table: Any) -> None:
    _, documents, _ = run(subscription_event([line(model="client-chosen-name-123")]), table)
    assert metric(documents, "Requests", Provider="openai", Model="other", Team="search") == 1
    assert "client-chosen-name-123" not in json.dumps(documents)


def test_a_cache_hit_is_counted_and_costs_nothing(table: Any) -> None:
    hit = line(cache="hit", input_tokens=None, output_tokens=None, time_to_first_token=0.001)
    report, documents, logged = run(subscription_event([hit, line(cache="miss")]), table)
    keys = {"Provider": "openai", "Model": "gpt-4o", "Team": "search"}
    assert metric(documents, "CacheHits", **keys) == 1
    assert metric(documents, "Requests", **keys) == 2
    assert metric(documents, "UsageUnknown", **keys) == 0
    assert report.cost == Decimal("2.00")  # the miss alone: 1000 x 1.00 + 500 x 2.00 per 1K
    assert not [entry for entry in logged if entry.get("usage_unknown")]


def test_refused_requests_cost_nothing_and_count_nowhere(table: Any) -> None:
    report, documents, _ = run(subscription_event([line(rule="provider", status=403, input_tokens=None)]), table)
    assert report.cost == 0 and not [doc for doc in documents if "Requests" in doc]


def test_latency_is_published_per_request_for_answers_that_succeeded(table: Any) -> None:
    messages = [line(time_to_first_token=0.2, request_time=1.0), line(time_to_first_token=0.3, request_time=2.0),
                line(status=500, time_to_first_token=0.9, request_time=9.0)]  # fmt: skip
    _, documents, _ = run(subscription_event(messages), table)
    assert metric(documents, "TimeToFirstToken", Provider="openai", Model="gpt-4o") == [200.0, 300.0]
    assert metric(documents, "RequestTime", Provider="openai", Model="gpt-4o") == [1000.0, 2000.0]


def test_the_control_message_of_a_new_subscription_is_ignored(table: Any) -> None:
    report, documents, _ = run(subscription_event(["CWL CONTROL MESSAGE"], "CONTROL_MESSAGE"), table)
    assert documents == [] and report.cost == 0


# -- the arithmetic, for any usage ---------------------------------------------------------------

PRICE = handler.Price(Decimal("12.34"), Decimal("56.78"), 1000, "USD", "2026-01-01")
usages = st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)), max_size=20)


@given(st.integers(0, 10**12), st.integers(0, 10**12))
def test_a_cost_is_never_negative_and_is_decimal(input_tokens: int, output_tokens: int) -> None:
    cost = PRICE.cost(input_tokens, output_tokens)
    assert isinstance(cost, Decimal) and cost >= 0


@given(usages)
def test_a_batch_costs_the_sum_of_its_lines(pairs: list[tuple[int, int]]) -> None:
    def lookup(provider: str, model: str, day: str) -> handler.Price:
        return PRICE

    messages = [line(input_tokens=i, output_tokens=o) for i, o in pairs]
    report = handler.attribute(messages, lookup, io.StringIO())
    assert report.cost == sum((PRICE.cost(i, o) for i, o in pairs), Decimal(0))


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_a_cost_is_exact(input_tokens: int, output_tokens: int) -> None:
    # Integer arithmetic in thousandths of a cent: what the price list's decimals mean.
    exact = Decimal(input_tokens * 1234 + output_tokens * 5678) / Decimal(100 * 1000)
    assert PRICE.cost(input_tokens, output_tokens) == exact


def test_a_price_in_another_currency_is_never_counted_as_usd() -> None:
    eur = handler.Price(Decimal("1.00"), Decimal("2.00"), 1000, "EUR", "2026-01-01")
    log = io.StringIO()
    report = handler.attribute([line()], lambda provider, model, day: eur, log)
    assert report.cost == 0 and report.unpriced == {"currency": 1}
    assert json.loads(log.getvalue().splitlines()[0])["unpriced"] == "currency"


def test_a_failed_request_without_usage_is_not_usage_unknown(table: Any) -> None:
    failed = line(status=502, input_tokens=None, output_tokens=None)
    _, documents, logged = run(subscription_event([failed]), table)
    keys = {"Provider": "openai", "Model": "gpt-4o", "Team": "search"}
    assert metric(documents, "Requests", **keys) == 1
    assert metric(documents, "UsageUnknown", **keys) == 0
    assert not [entry for entry in logged if entry.get("usage_unknown")]


def test_a_price_history_over_several_pages_is_read_to_its_end() -> None:
    common = {"model_key": "openai/gpt-4o", "per_tokens": 1000, "currency": "USD"}
    pages = [
        {"Items": [{**common, "effective_date": "2026-01-01", "input_price": Decimal("12.34"),
                    "output_price": Decimal("56.78")}], "LastEvaluatedKey": {"model_key": "openai/gpt-4o"}},
        {"Items": [{**common, "effective_date": "2026-12-05", "input_price": Decimal("1.00"),
                    "output_price": Decimal("2.00")}]},
    ]  # fmt: skip

    class Paged:
        def query(self, **query: Any) -> dict[str, Any]:
            return pages[1 if "ExclusiveStartKey" in query else 0]

    price = handler.PriceTable(Paged())("openai", "gpt-4o", "2026-12-05")
    assert price is not None and (price.input_price, price.effective_date) == (Decimal("1.00"), "2026-12-05")


def test_latency_values_go_out_at_most_100_to_a_document() -> None:
    messages = [line(request_time=index / 1000) for index in range(250)]
    report = handler.attribute(messages, lambda provider, model, day: PRICE, io.StringIO())
    series = [doc["RequestTime"] for doc in handler.emf_documents(report, 0) if "RequestTime" in doc]
    assert [len(values) for values in series] == [100, 100, 50]
    assert [value for values in series for value in values] == [float(index) for index in range(250)]


def test_a_boolean_is_not_a_status() -> None:
    report = handler.attribute([line(status=True), line()], lambda provider, model, day: PRICE, io.StringIO())
    assert report.unpriced == {"malformed": 1}


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/responses", "/v1/embeddings"]
)
def test_every_generating_route_and_embeddings_are_priced_by_their_tokens(path: str) -> None:
    report = handler.attribute([line(path=path)], lambda provider, model, day: PRICE, io.StringIO())
    assert report.cost == PRICE.cost(1000, 500) and not report.unpriced
