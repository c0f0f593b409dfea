"""Cost attribution on the data plane's own lines: requests of two teams
through the "teams" scenario's data plane (two tasks, the real gateway, the
mock providers), their access lines captured as CloudWatch Logs would
deliver them, priced by the function in-process against moto's DynamoDB;
the cost per team to the cent, from the usage the answers reported."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.gateway_harness import RunningDataPlane, request
from tests.team_fixtures import client_id_of, fake_jwt
from tests.test_cost_attribution import metric, run, subscription_event
from tests.test_cost_attribution import table as table  # the fixture
from tests.tls_store import Store

pytestmark = pytest.mark.gateway

# The test price list's prices (tests/test_cost_attribution.py PRICE_LIST) on 2026-12-04 and on later days.
GPT_4O = {"before": (Decimal("12.34"), Decimal("56.78"), 1000), "from": (Decimal("1.00"), Decimal("2.00"), 1000)}
HAIKU = (Decimal("3.00"), Decimal("15.00"), 1_000_000)


def ask(data_plane: RunningDataPlane, team: str, provider: str, body: dict[str, Any]) -> tuple[dict[str, int], str]:
    """One chat completion as `team`: the usage the answer reported, and its access line (JSON text)."""
    trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    headers = {"Authorization": f"Bearer {fake_jwt(client_id_of(team))}", "x-portkey-provider": provider,
               "x-amzn-trace-id": trace}  # fmt: skip
    response = request(f"{data_plane.base_url}/v1/chat/completions", body, headers)
    assert response.status == 200, response.body
    if body.get("stream"):
        events = [json.loads(line[6:]) for line in response.body.decode().splitlines() if line.startswith("data: {")]
        usage = next(event["usage"] for event in events if event.get("usage"))
    else:
        usage = response.json()["usage"]
    return usage, json.dumps(data_plane.access_line(trace))


def cost(usage: dict[str, int], price: tuple[Decimal, Decimal, int]) -> Decimal:
    return (usage["prompt_tokens"] * price[0] + usage["completion_tokens"] * price[1]) / price[2]


def test_two_teams_lines_from_the_data_plane_are_priced_to_the_cent(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store, table: Any, tmp_path: Path
) -> None:
    first, second = two_tasks
    prompt = [{"role": "user", "content": "price this request, please, with a few more words in it"}]
    default_usage, lines = [], []
    for task, stream in ((first, False), (second, False), (first, True)):
        body: dict[str, Any] = {"model": "gpt-4o", "messages": prompt}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        usage, logged = ask(task, "default", "openai", body)
        default_usage.append(usage)
        lines.append(logged)
    batch_usage, logged = ask(second, "batch", "anthropic", {"model": "claude-haiku-4-5", "max_tokens": 50,
                                                           "messages": prompt})  # fmt: skip
    lines.append(logged)
    report, documents, _ = run(subscription_event(lines), table)

    day = json.loads(lines[0])["time"][:10]
    price = GPT_4O["from"] if day >= "2026-12-05" else GPT_4O["before"]
    expected_default = sum((cost(usage, price) for usage in default_usage), Decimal(0))
    expected_batch = cost(batch_usage, HAIKU)
    assert expected_default > Decimal("0.10")  # large enough that cents mean something
    default = metric(documents, "EstimatedCostUsd", Provider="openai", Model="gpt-4o", Team="default")
    batch = metric(documents, "EstimatedCostUsd", Provider="anthropic", Model="claude-haiku-4-5", Team="batch")
    assert round(default, 2) == float(expected_default.quantize(Decimal("0.01")))
    assert round(batch, 6) == float(expected_batch.quantize(Decimal("0.000001")))
    assert report.cost == expected_default + expected_batch
    assert metric(documents, "Requests", Provider="openai", Model="gpt-4o", Team="default") == 3
    tokens = sum(usage["prompt_tokens"] for usage in default_usage)
    assert (
        metric(documents, "TokensUsed", Provider="openai", Model="gpt-4o", Team="default", TokenType="input") == tokens
    )
    assert metric(documents, "UsageUnknown", Provider="openai", Model="gpt-4o", Team="default") == 0
    first_token = metric(documents, "TimeToFirstToken", Provider="openai", Model="gpt-4o")
    assert len(first_token) == 3 and all(value >= 0 for value in first_token)
