"""Per-team limits on a real store: the "teams" scenario's data plane
(tests/scenarios.py: `default`, `search` with 3 requests a minute and 2 in
flight, `batch` with a 64-token cap and a shadowed 100-token budget) in front
of the pinned gateway, counting in a real redis-server reached over TLS (as
the serverless cache is), with the image's lua-resty-redis
(tests/harness/lua). Two data planes share one store, as two tasks do."""

from __future__ import annotations

import threading
import time

import pytest

from tests.gateway_harness import RunningDataPlane
from tests.mock_providers import MockProvider
from tests.team_fixtures import CHAT, call, client_id_of
from tests.tls_store import Store

pytestmark = pytest.mark.gateway


def test_a_teams_rate_limit_holds_across_two_tasks_and_not_for_other_teams(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store
) -> None:
    first, second = two_tasks
    # 3 a minute for search, whichever task serves them: the fourth is refused on either.
    statuses = [call(task, "search")[0] for task in (first, second, first)]
    assert statuses == [200, 200, 200]
    for task in (second, first):
        status, headers, body, trace = call(task, "search")
        assert status == 429
        assert body["error"]["rule"] == "rate-limit" and "3 requests per minute" in body["error"]["message"]
        assert 1 <= int(headers["retry-after"]) <= 60
        assert task.access_line(trace)["team"] == "search"
    # Another team is not limited by search's count.
    assert [call(task, "default")[0] for task in (first, second, first, second)] == [200] * 4


def test_the_counters_live_in_the_store_keyed_by_team(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store
) -> None:
    call(two_tasks[0], "search")
    call(two_tasks[1], "search")
    keys = fresh_store.cli("KEYS", "aigw:*").split()
    rate = [key for key in keys if key.startswith("aigw:{search}:rpm:")]
    assert len(rate) == 1 and fresh_store.cli("GET", rate[0]) == "2", keys


def test_requests_in_flight_are_limited_across_tasks(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store, mocks: dict[str, MockProvider]
) -> None:
    gate = threading.Event()
    mocks["openai"].stream_gate = gate
    first, second = two_tasks
    results: list[int] = []
    stream = {**CHAT, "stream": True}
    threads = [
        threading.Thread(target=lambda t=t: results.append(call(t, "search", stream)[0])) for t in (first, second)
    ]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while fresh_store.cli("ZCARD", "aigw:{search}:inflight") != "2" and time.monotonic() < deadline:
            time.sleep(0.05)
        status, _, body, _ = call(first, "search", stream)
        assert status == 429 and body["error"]["rule"] == "concurrency-limit", body
    finally:
        gate.set()
        for thread in threads:
            thread.join(timeout=30)
    assert results == [200, 200]
    # Both slots are given back when the streams end.
    deadline = time.monotonic() + 5
    while fresh_store.cli("ZCARD", "aigw:{search}:inflight") != "0" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fresh_store.cli("ZCARD", "aigw:{search}:inflight") == "0"


def test_a_team_cap_on_output_tokens_refuses_requests_asking_for_more_or_none(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store
) -> None:
    task = two_tasks[0]
    for body in (CHAT, {**CHAT, "max_tokens": 65}, {**CHAT, "max_tokens": 10, "max_completion_tokens": 1000},
                 {**CHAT, "max_tokens": "10"}):  # fmt: skip
        status, _, answer, _ = call(task, "batch", body)
        assert status == 400 and answer["error"]["rule"] == "max-tokens", (body, answer)
    assert call(task, "batch", {**CHAT, "max_tokens": 64})[0] == 200
    # Other teams have no cap.
    assert call(task, "default", {**CHAT, "max_tokens": 100000})[0] == 200


def test_a_shadowed_budget_logs_what_it_would_refuse_and_refuses_nothing(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store
) -> None:
    task = two_tasks[0]
    status, _, answer, trace = call(task, "batch", {**CHAT, "max_tokens": 64})
    assert status == 200
    used = answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"]
    key = next(k for k in fresh_store.cli("KEYS", "aigw:{batch}:tokens:*").split())
    deadline = time.monotonic() + 5
    while fresh_store.cli("GET", key) != str(used) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fresh_store.cli("GET", key) == str(used)
    assert task.access_line(trace)["limit"] == ""
    # Past the 100-token budget: still answered, and marked.
    fresh_store.cli("SET", key, "100")
    status, _, _, trace = call(task, "batch", {**CHAT, "max_tokens": 64})
    assert status == 200
    assert task.access_line(trace)["limit"] == "budget_shadow"
    assert "budget_shadow: team batch" in task.file("stderr.log")


def test_the_budget_alert_is_logged_once_when_the_total_passes_its_threshold(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store
) -> None:
    task = two_tasks[1]
    before = task.file("stderr.log").count("budget_alert: team batch")
    # 50 % of 100 tokens: a request's usage takes the total from 45 past 50 once.
    day_key = f"aigw:{{batch}}:tokens:{time.strftime('%Y%m%d', time.gmtime())}"
    fresh_store.cli("SET", day_key, "45")
    for _ in range(2):
        assert call(task, "batch", {**CHAT, "max_tokens": 64})[0] == 200
    deadline = time.monotonic() + 5
    while task.file("stderr.log").count("budget_alert: team batch") == before and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert task.file("stderr.log").count("budget_alert: team batch") == before + 1


def test_an_unknown_client_is_refused_even_if_it_reached_the_task(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store
) -> None:
    status, _, body, trace = call(two_tasks[0], "not-a-team")
    assert status == 403 and body["error"]["rule"] == "identity", body
    line = two_tasks[0].access_line(trace)
    assert line["client_id"] == client_id_of("not-a-team") and line["team"] == ""


def test_limits_fail_open_when_the_store_dies_mid_run_and_each_such_request_is_logged(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store
) -> None:
    task = two_tasks[0]
    assert call(task, "search")[0] == 200
    fresh_store.stop()
    try:
        log_before = task.file("stderr.log")
        results = [call(task, "search") for _ in range(12)]  # more than the 3 a minute
        assert [status for status, *_ in results] == [200] * 12
        for _, _, _, trace in results:
            line = task.access_line(trace)
            assert (line["team"], line["limit"]) == ("search", "limits-unavailable"), line
        log = task.file("stderr.log")[len(log_before) :]
        assert log.count("limits: store unavailable") == 12, log
        # The breaker: after 3 failures in a row a worker leaves the store alone for a while, so a
        # dead store costs a few failed connections per worker, not one per request (2 workers).
        assert log.count("store skipped after recent failures") >= 12 - 2 * 3, log
    finally:
        fresh_store.start_again()
    # Back: counting resumes (the breaker closes within its 5 s).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _, _, _, trace = call(task, "search")
        if task.access_line(trace)["limit"] == "":
            break
        time.sleep(0.5)
    assert task.access_line(trace)["limit"] == ""
