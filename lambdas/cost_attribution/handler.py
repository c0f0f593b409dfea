"""Cost attribution: prices every request of the data plane's access log.

CloudWatch Logs delivers the data plane's access-log lines (docs/data-plane.md,
"The access-log line") to this function in batches (a subscription filter on
the `access` log group: gzip, then base64). Each line is parsed against that
schema and priced from the pricing table (DynamoDB: per provider and model,
prices per 1K or 1M input and output tokens from an effective date, in USD).
The metrics go out as CloudWatch embedded metric format (EMF) in this
function's own log output: no PutMetricData permission, no API calls, no
throttling, and the numbers stay in the log next to the lines they came from.

Namespace `AIGateway`:
- `Requests`, `EstimatedCostUsd`, `CacheHits`, `UsageUnknown` by Provider, Model, Team
  (and `EstimatedCostUsd` by Team alone: what a team's daily cost alarm watches);
- `TokensUsed` by Provider, Model, Team and TokenType (input, output);
- `TimeToFirstToken` and `RequestTime` (milliseconds, each request a value,
  so percentiles hold) by Provider and Model, for answers that succeeded;
  `CacheHits` counts the requests the data plane's response cache answered
  (`"cache": "hit"`), which cost nothing and have no usage of their own;
- `UnpricedLines` by Reason: lines that cannot be priced (malformed, an
  unknown model, a route not priced by tokens, a client's own config), each
  also logged; they never fail the batch.

Money is Decimal from the table to the sum; a float appears only in the EMF
value. A request whose usage never arrived (a stream cut off, a provider that
reported none) counts in `UsageUnknown` and never as zero tokens and $0.
Model names are a bounded dimension: a model the table does not price is
`other`. Dimension values come from the data plane's own fields (provider
from its allow-list, team from the validated token), never from a client.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TextIO

NAMESPACE = "AIGateway"
# The routes whose answers are priced by tokens (aigw/data_plane/render.py GENERATING_ROUTES, and embeddings).
TOKEN_PRICED_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/responses", "/v1/embeddings"}
)
OTHER_MODEL = "other"
NO_TEAM = "none"
# EMF takes at most 100 values per metric in one document.
MAX_VALUES = 100
# The fields of an access-log line this function reads, with their JSON types.
_LINE_FIELDS: dict[str, tuple[type, ...]] = {
    "time": (str,),
    "path": (str,),
    "status": (int,),
    "request_time": (int, float),
    "team": (str,),
    "provider": (str,),
    "model": (str,),
    "rule": (str,),
}
_OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {
    "input_tokens": (int,),
    "output_tokens": (int,),
    "stream": (bool,),
    "time_to_first_token": (int, float),
    "cache": (str,),
}


@dataclass(frozen=True)
class Price:
    """Prices of one model from its effective date: per `per_tokens` tokens, in `currency`."""

    input_price: Decimal
    output_price: Decimal
    per_tokens: int
    currency: str
    effective_date: str

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        return (Decimal(input_tokens) * self.input_price + Decimal(output_tokens) * self.output_price) / Decimal(
            self.per_tokens
        )


@dataclass(frozen=True)
class Usage:
    """One access-log line, as far as cost attribution reads it."""

    day: str  # YYYY-MM-DD (UTC) of the line's time: which price applies
    path: str
    status: int
    provider: str
    model: str
    team: str
    rule: str
    input_tokens: int | None
    output_tokens: int | None
    time_to_first_token: float | None
    request_time: float
    cache: str = ""


class Malformed(ValueError):
    """A line that is not an access-log line of the documented schema."""


def parse_line(message: str) -> Usage:
    try:
        line = json.loads(message)
    except json.JSONDecodeError as error:
        raise Malformed(f"not JSON ({error.msg})") from None
    if not isinstance(line, dict):
        raise Malformed("not a JSON object")
    for name, kinds in _LINE_FIELDS.items():
        value = line.get(name)
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise Malformed(f"{name} is missing or not {' or '.join(kind.__name__ for kind in kinds)}")
    for name, kinds in _OPTIONAL_FIELDS.items():
        value = line.get(name)
        if value is not None and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
            raise Malformed(f"{name} is not {' or '.join(kind.__name__ for kind in kinds)} or null")
        if name.endswith("_tokens") and isinstance(value, int) and value < 0:
            raise Malformed(f"{name} is negative")
    day = line["time"][:10]
    if len(day) != 10 or day[4] != "-" or day[7] != "-" or not (day[:4] + day[5:7] + day[8:]).isdigit():
        raise Malformed("time is not an ISO-8601 time")
    return Usage(
        day=day,
        path=line["path"],
        status=line["status"],
        provider=line["provider"],
        model=line["model"],
        team=line["team"] or NO_TEAM,
        rule=line["rule"],
        input_tokens=line.get("input_tokens"),
        output_tokens=line.get("output_tokens"),
        time_to_first_token=line.get("time_to_first_token"),
        request_time=float(line["request_time"]),
        cache=line.get("cache") or "",
    )


def decode_batch(event: Mapping[str, Any]) -> dict[str, Any]:
    """The subscription batch of a Lambda event: base64, then gzip, then JSON."""
    data = base64.b64decode(event["awslogs"]["data"])
    batch: dict[str, Any] = json.loads(gzip.decompress(data))
    return batch


PriceLookup = Callable[[str, str, str], Price | None]


class PriceTable:
    """Prices from the DynamoDB table: key `model_key` (`<provider>/<model>`),
    sort key `effective_date`; the price of a day is the latest one that took
    effect on or before it. Cached for the life of the function's instance
    (a changed price applies to instances started after it: minutes)."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self._items: dict[str, list[dict[str, Any]]] = {}

    def _history(self, model_key: str) -> list[dict[str, Any]]:
        if model_key not in self._items:
            items: list[dict[str, Any]] = []
            query: dict[str, Any] = {
                "KeyConditionExpression": "model_key = :key",
                "ExpressionAttributeValues": {":key": model_key},
            }
            while True:
                page = self._table.query(**query)
                items += page.get("Items", [])
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            self._items[model_key] = sorted(items, key=lambda item: str(item["effective_date"]))
        return self._items[model_key]

    def __call__(self, provider: str, model: str, day: str) -> Price | None:
        if not provider or not model:
            return None
        applicable = [item for item in self._history(f"{provider}/{model}") if str(item["effective_date"]) <= day]
        if not applicable:
            return None
        item = applicable[-1]
        return Price(
            input_price=Decimal(str(item["input_price"])),
            output_price=Decimal(str(item["output_price"])),
            per_tokens=int(item["per_tokens"]),
            currency=str(item["currency"]),
            effective_date=str(item["effective_date"]),
        )


@dataclass
class Totals:
    requests: int = 0
    cost: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_hits: int = 0
    usage_unknown: int = 0


@dataclass
class Report:
    """What one batch adds up to."""

    by_key: dict[tuple[str, str, str], Totals] = field(default_factory=lambda: defaultdict(Totals))
    first_token_ms: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    request_ms: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    unpriced: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def cost(self) -> Decimal:
        return sum((totals.cost for totals in self.by_key.values()), Decimal(0))


def attribute(messages: Iterable[str], prices: PriceLookup, log: TextIO) -> Report:
    """Prices every line; a line that cannot be priced is counted and logged, never raised."""
    report = Report()
    for message in messages:
        try:
            usage = parse_line(message)
        except Malformed as error:
            report.unpriced["malformed"] += 1
            print(json.dumps({"unpriced": "malformed", "problem": str(error), "line": message[:512]}), file=log)
            continue
        if usage.rule or usage.status < 200:
            continue  # refused by the data plane: no provider was called
        if not usage.provider:
            report.unpriced["client-config"] += 1  # the client's own keys: not the organisation's cost
            continue
        price = prices(usage.provider, usage.model, usage.day)
        model = usage.model if price is not None else OTHER_MODEL
        totals = report.by_key[(usage.provider, model, usage.team)]
        totals.requests += 1
        if usage.cache == "hit":
            totals.cache_hits += 1  # answered by the data plane's cache: no provider call, no cost
            continue
        succeeded = 200 <= usage.status < 300
        if succeeded and usage.time_to_first_token is not None:
            report.first_token_ms[(usage.provider, model)].append(round(usage.time_to_first_token * 1000, 3))
        if succeeded:
            report.request_ms[(usage.provider, model)].append(round(usage.request_time * 1000, 3))
        if usage.path not in TOKEN_PRICED_PATHS:
            report.unpriced["not-token-priced"] += 1
            continue
        if usage.input_tokens is None and usage.output_tokens is None:
            if succeeded:
                totals.usage_unknown += 1  # never zero tokens and $0
                print(json.dumps({"usage_unknown": True, "line": message[:512]}), file=log)
            continue
        input_tokens, output_tokens = usage.input_tokens or 0, usage.output_tokens or 0
        totals.input_tokens += input_tokens
        totals.output_tokens += output_tokens
        if price is None:
            report.unpriced["unknown-model"] += 1
            print(
                json.dumps({"unpriced": "unknown-model", "provider": usage.provider, "line": message[:512]}), file=log
            )
            continue
        if price.currency != "USD":
            report.unpriced["currency"] += 1
            print(json.dumps({"unpriced": "currency", "currency": price.currency, "line": message[:512]}), file=log)
            continue
        totals.cost += price.cost(input_tokens, output_tokens)
    return report


def _chunks(values: list[float]) -> Iterator[list[float]]:
    for start in range(0, len(values), MAX_VALUES):
        yield values[start : start + MAX_VALUES]


def emf_documents(report: Report, timestamp_ms: int) -> Iterator[dict[str, Any]]:
    """The report as EMF documents (one per dimension set and key)."""

    def document(
        dimensions: dict[str, str], metrics: dict[str, tuple[Any, str]], by_team: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        directives = [
            {
                "Namespace": NAMESPACE,
                "Dimensions": [list(dimensions)],
                "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
            }
        ]
        if by_team:  # the same values once more per team alone (the daily cost alarm's metric)
            directives.append(
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Team"]],
                    "Metrics": [{"Name": name, "Unit": metrics[name][1]} for name in by_team],
                }
            )
        return {
            "_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": directives},
            **dimensions,
            **{name: value for name, (value, _) in metrics.items()},
        }

    for (provider, model, team), totals in sorted(report.by_key.items()):
        dimensions = {"Provider": provider, "Model": model, "Team": team}
        yield document(
            dimensions,
            {
                "Requests": (totals.requests, "Count"),
                "EstimatedCostUsd": (float(totals.cost), "None"),
                "CacheHits": (totals.cache_hits, "Count"),
                "UsageUnknown": (totals.usage_unknown, "Count"),
            },
            by_team=("EstimatedCostUsd",),
        )
        for kind, tokens in (("input", totals.input_tokens), ("output", totals.output_tokens)):
            yield document({**dimensions, "TokenType": kind}, {"TokensUsed": (tokens, "Count")})
    for name, series in (("TimeToFirstToken", report.first_token_ms), ("RequestTime", report.request_ms)):
        for (provider, model), values in sorted(series.items()):
            for chunk in _chunks(values):
                yield document({"Provider": provider, "Model": model}, {name: (chunk, "Milliseconds")})
    for reason, count in sorted(report.unpriced.items()):
        yield document({"Reason": reason}, {"UnpricedLines": (count, "Count")})


def run(event: Mapping[str, Any], prices: PriceLookup, out: TextIO) -> Report:
    batch = decode_batch(event)
    if batch.get("messageType") != "DATA_MESSAGE":
        return Report()  # CloudWatch Logs' control message when the subscription is created
    events = batch.get("logEvents", [])
    report = attribute((entry["message"] for entry in events), prices, out)
    timestamp = max((int(entry["timestamp"]) for entry in events), default=0)
    for doc in emf_documents(report, timestamp):
        print(json.dumps(doc, separators=(",", ":")), file=out)
    summary = {"lines": len(events), "estimated_cost_usd": str(report.cost), "unpriced": dict(report.unpriced)}
    print(json.dumps(summary), file=out)
    return report


_prices: PriceTable | None = None


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    global _prices
    if _prices is None:
        import boto3  # in the Lambda runtime

        _prices = PriceTable(boto3.resource("dynamodb").Table(os.environ["PRICES_TABLE"]))
    report = run(event, _prices, sys.stdout)
    return {"estimated_cost_usd": str(report.cost)}
