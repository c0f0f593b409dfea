"""Per-team limits on a real store: the "teams" scenario's data plane
(tests/scenarios.py: `default`, `search` with 3 requests a minute and 2 in
flight, `batch` with a 64-token cap and a shadowed 100-token budget) in front
of the pinned gateway, counting in a real redis-server reached over TLS (as
the serverless cache is), with the image's lua-resty-redis
(tests/harness/lua). Two data planes share one store, as two tasks do."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aigw.data_plane.contract import DATA_PLANE_CONTAINER, RUNTIME_VARIABLE
from tests.gateway_fixtures import ORG_KEYS, stack_file
from tests.gateway_harness import GatewayHarness, RunningDataPlane, TaskDefinition, free_port, request
from tests.mock_providers import MockProvider

pytestmark = pytest.mark.gateway

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def fake_jwt(client_id: str) -> str:
    import base64

    def part(value: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'client_id': client_id, 'scope': 'https://gateway.internal/invoke'})}.c2ln"


def client_id_of(team: str) -> str:
    return f"client0{team.replace('-', '0')}0id"


@dataclass
class Store:
    """A redis-server with TLS only, its certificate from a test CA."""

    port: int
    ca: Path
    process: subprocess.Popen[bytes]
    workdir: Path

    def cli(self, *args: str) -> str:
        command = ["redis-cli", "--tls", "--cacert", str(self.ca), "-h", "127.0.0.1", "-p", str(self.port), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=10, check=True).stdout.strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def start_again(self) -> None:
        self.process = _redis(self.workdir, self.port)
        _wait_for(self)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _certificates(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=aigw test store CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=directory)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
             "-out", "server.csr", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=DNS:127.0.0.1,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=directory)  # fmt: skip


def _redis(directory: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(directory / "server.pem"), "--tls-key-file", str(directory / "server.key"),
         "--tls-ca-cert-file", str(directory / "ca.pem"), "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=(directory / "redis.log").open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _wait_for(store: Store) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if store.cli("PING") == "PONG":
                return
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"redis-server did not answer: {(store.workdir / 'redis.log').read_text()[-2000:]}")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    directory = tmp_path_factory.mktemp("store")
    _certificates(directory)
    port = free_port()
    running = Store(port, directory / "ca.pem", _redis(directory, port), directory)
    _wait_for(running)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def teams_task(scenarios_outdir: Path) -> TaskDefinition:
    return TaskDefinition.from_stack(stack_file(scenarios_outdir, "teams"))


def references(task: TaskDefinition, store: Store) -> dict[str, str]:
    """Terraform's values for the teams' client ids and the store's address."""
    runtime = json.loads(task.environment(DATA_PLANE_CONTAINER)[RUNTIME_VARIABLE])
    values = {expression[2:-1]: client_id_of(team) for expression, team in runtime["teams"].items()}
    values[runtime["store"]["host"][2:-1]] = "127.0.0.1"
    values[runtime["store"]["port"][2:-1]] = str(store.port)
    return values


@pytest.fixture(scope="module")
def two_tasks(
    harness: GatewayHarness, teams_task: TaskDefinition, store: Store
) -> tuple[RunningDataPlane, RunningDataPlane]:
    """Two data planes (two tasks) of the teams' stack, one store."""
    values = references(teams_task, store)
    return (
        harness.start_data_plane(ORG_KEYS, "teams-1", task=teams_task, references=values, store_ca=store.ca),
        harness.start_data_plane(ORG_KEYS, "teams-2", task=teams_task, references=values, store_ca=store.ca),
    )


@pytest.fixture
def fresh_store(store: Store) -> Store:
    """No counts of earlier tests (and the store up)."""
    if store.process.poll() is not None:
        store.start_again()
    store.cli("FLUSHALL")
    return store


def call(
    data_plane: RunningDataPlane, team: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, str], Any, str]:
    """A chat completion as ``team``: status, headers, the answer (JSON, or the
    text of a stream) and the trace id its access line carries."""
    trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    headers = {"Authorization": f"Bearer {fake_jwt(client_id_of(team))}", "x-portkey-provider": "openai",
               "x-amzn-trace-id": trace}  # fmt: skip
    response = request(f"{data_plane.base_url}/v1/chat/completions", body or CHAT, headers)
    streamed = response.headers.get("content-type", "").startswith("text/event-stream")
    return response.status, response.headers, response.body.decode() if streamed else response.json(), trace


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
        results = [call(task, "search") for _ in range(6)]  # more than the 3 a minute
        assert [status for status, *_ in results] == [200] * 6
        for _, _, _, trace in results:
            line = task.access_line(trace)
            assert (line["team"], line["limit"]) == ("search", "limits-unavailable"), line
        log = task.file("stderr.log")[len(log_before) :]
        assert log.count("limits: store unavailable") == 6, log
        # The breaker: after a failure a worker leaves the store alone for a while, so a dead
        # store costs one failed connection per worker, not one per request.
        assert log.count("store skipped after a recent failure") >= 6 - 2, log
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
