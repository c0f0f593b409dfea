"""The response cache ([response_cache]) on a real store: the "cache"
scenario's data plane (tests/scenarios.py: teams `default` and `other`
private, `search` and `billing` sharing one namespace, `secret` never cached),
twice, as two tasks, in front of the harness's gateway, with the answers in
one TLS-only redis-server (tests/tls_store.py) reached with the image's
lua-resty-redis. And the gateway itself pointed at the store
(REDIS_CONNECTION_STRING, rediss://)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from aigw.data_plane.contract import GATEWAY_CONTAINER
from tests.aws_mocks import CredentialsEndpoint
from tests.gateway_fixtures import ORG_KEYS, REFERENCES, stack_file
from tests.gateway_harness import GatewayHarness, Response, RunningDataPlane, TaskDefinition, request, running_gateway
from tests.mock_providers import MockProvider
from tests.team_fixtures import client_id_of, fake_jwt, references
from tests.tls_store import Store

pytestmark = pytest.mark.gateway

BODY = {"model": "gpt-4o", "temperature": 0.2, "messages": [{"role": "user", "content": "what is 2 + 2?"}]}


@pytest.fixture(scope="module")
def cache_task(scenarios_outdir: Path) -> TaskDefinition:
    return TaskDefinition.from_stack(stack_file(scenarios_outdir, "cache"))


@pytest.fixture(scope="module")
def tasks(
    harness: GatewayHarness,
    cache_task: TaskDefinition,
    store: Store,
    credentials: CredentialsEndpoint,
    request: pytest.FixtureRequest,
) -> tuple[RunningDataPlane, RunningDataPlane]:
    """Two tasks of the cache scenario (per test module: another module that imports this fixture gets its own)."""
    values = references(cache_task, store)
    module = request.module.__name__.rsplit(".", 1)[-1]
    return tuple(  # type: ignore[return-value]
        harness.start_data_plane(
            ORG_KEYS,
            f"{module}-{n}",
            task=cache_task,
            references=values,
            store_ca=store.ca,
            credentials_uri=credentials.full_uri,
        )
        for n in (1, 2)
    )


@pytest.fixture
def empty_store(store: Store) -> Store:
    if store.process.poll() is not None:
        store.start_again()
    store.cli("FLUSHALL")
    return store


def ask(
    data_plane: RunningDataPlane,
    team: str = "default",
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    path: str = "/v1/chat/completions",
) -> tuple[Response, dict[str, Any]]:
    trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    sent = {"Authorization": f"Bearer {fake_jwt(client_id_of(team))}", "x-amzn-trace-id": trace, **(headers or {})}
    response = request(f"{data_plane.base_url}{path}", body or BODY, sent)
    return response, data_plane.access_line(trace)


def stored(store: Store) -> None:
    """Wait until the data plane's timer has stored the answer (it is written after the response)."""
    deadline = time.monotonic() + 5
    while not store.cli("KEYS", "aigw:cache:*").split() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_the_second_identical_request_is_a_hit_byte_for_byte_and_the_provider_saw_one_call(
    tasks: tuple[RunningDataPlane, RunningDataPlane], empty_store: Store, mocks: dict[str, MockProvider]
) -> None:
    first, line = ask(tasks[0])
    assert first.status == 200 and first.headers["x-aigw-cache"] == "MISS" and line["cache"] == "miss"
    stored(empty_store)
    second, line = ask(tasks[1])  # another task: the cache is shared
    assert second.status == 200 and second.headers["x-aigw-cache"] == "HIT" and line["cache"] == "hit"
    assert second.body == first.body
    assert second.headers["content-type"] == first.headers["content-type"]
    assert len(mocks["openai"].requests) == 1
    assert (line["input_tokens"], line["output_tokens"], line["upstream_time"]) == (None, None, "")


def test_the_same_body_in_another_key_order_is_another_key(
    tasks: tuple[RunningDataPlane, RunningDataPlane], empty_store: Store, mocks: dict[str, MockProvider]
) -> None:
    # The key is the body's bytes: the order of keys may matter to the provider (a JSON schema's properties).
    ask(tasks[0])
    stored(empty_store)
    reordered = {"messages": BODY["messages"], "temperature": 0.2, "model": "gpt-4o"}
    response, line = ask(tasks[0], body=reordered)
    assert response.status == 200 and line["cache"] == "miss" and len(mocks["openai"].requests) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"team": "other"},  # another team's private namespace
        {"body": {**BODY, "temperature": 0.3}},  # a parameter that changes the answer
        {"body": {**BODY, "messages": [{"role": "user", "content": "what is 2 + 3?"}]}},
        {"body": {**BODY, "seed": 7}},
        {"headers": {"x-aigw-route": "chat"}},  # the route in effect, not the provider named
        {"headers": {"x-portkey-provider": "openai", "x-portkey-strict-open-ai-compliance": "false"}},
    ],
)
def test_another_team_a_changed_parameter_or_another_route_misses(
    tasks: tuple[RunningDataPlane, RunningDataPlane],
    empty_store: Store,
    mocks: dict[str, MockProvider],
    change: dict[str, Any],
) -> None:
    ask(tasks[0], headers={"x-portkey-provider": "openai"})
    stored(empty_store)
    headers = change.get("headers", {"x-portkey-provider": "openai"})
    response, line = ask(tasks[0], change.get("team", "default"), change.get("body"), headers)
    assert response.status == 200 and line["cache"] == "miss", line
    assert len(mocks["openai"].requests) == 2


def test_teams_that_share_a_namespace_receive_each_others_answers_and_no_one_elses(
    tasks: tuple[RunningDataPlane, RunningDataPlane], empty_store: Store, mocks: dict[str, MockProvider]
) -> None:
    ask(tasks[0], "search")
    stored(empty_store)
    assert ask(tasks[1], "billing")[1]["cache"] == "hit"
    assert ask(tasks[1], "default")[1]["cache"] == "miss"
    assert len(mocks["openai"].requests) == 2


def test_a_no_store_team_is_never_cached_nor_served_from_the_cache(
    tasks: tuple[RunningDataPlane, RunningDataPlane], empty_store: Store, mocks: dict[str, MockProvider]
) -> None:
    for _ in range(2):
        response, line = ask(tasks[0], "secret")
        assert response.status == 200 and line["cache"] == "" and "x-aigw-cache" not in response.headers
    time.sleep(0.3)
    assert empty_store.cli("KEYS", "aigw:cache:*").split() == []
    assert len(mocks["openai"].requests) == 2


@pytest.mark.parametrize(
    "headers", [{"cache-control": "no-cache"}, {"Cache-Control": "max-age=0, no-store"}, {"x-aigw-cache": "bypass"}]
)
def test_the_client_can_bypass_the_cache(
    tasks: tuple[RunningDataPlane, RunningDataPlane],
    empty_store: Store,
    mocks: dict[str, MockProvider],
    headers: dict[str, str],
) -> None:
    ask(tasks[0])
    stored(empty_store)
    response, line = ask(tasks[0], headers=headers)
    assert response.status == 200 and response.headers["x-aigw-cache"] == "BYPASS" and line["cache"] == "bypass"
    assert len(mocks["openai"].requests) == 2


def test_another_value_of_the_bypass_header_is_refused(tasks: tuple[RunningDataPlane, RunningDataPlane]) -> None:
    response, line = ask(tasks[0], headers={"x-aigw-cache": "refresh"})
    assert response.status == 400 and line["rule"] == "cache"


def test_a_streamed_request_is_never_cached(
    tasks: tuple[RunningDataPlane, RunningDataPlane], empty_store: Store, mocks: dict[str, MockProvider]
) -> None:
    for _ in range(2):
        response, line = ask(tasks[0], body={**BODY, "stream": True})
        assert response.status == 200 and line["cache"] == ""
    assert len(mocks["openai"].requests) == 2
    assert empty_store.cli("KEYS", "aigw:cache:*").split() == []


@pytest.mark.parametrize("status", [429, 500, 400])
def test_an_error_is_never_cached(
    tasks: tuple[RunningDataPlane, RunningDataPlane], empty_store: Store, mocks: dict[str, MockProvider], status: int
) -> None:
    mocks["openai"].error_status = status
    assert ask(tasks[0])[0].status == status
    time.sleep(0.3)
    mocks["openai"].error_status = None
    response, line = ask(tasks[0])
    assert response.status == 200 and line["cache"] == "miss"
    assert len(mocks["openai"].requests) == 2


def test_an_answer_over_the_size_cap_is_not_stored(
    tasks: tuple[RunningDataPlane, RunningDataPlane], empty_store: Store, mocks: dict[str, MockProvider]
) -> None:
    mocks["openai"].reply_text = "x" * (70 * 1024)  # max_entry_kib = 64
    for _ in range(2):
        assert ask(tasks[0])[1]["cache"] == "miss"
    assert empty_store.cli("KEYS", "aigw:cache:*").split() == []


def test_answers_expire_with_the_configured_ttl(
    tasks: tuple[RunningDataPlane, RunningDataPlane], empty_store: Store
) -> None:
    ask(tasks[0])
    stored(empty_store)
    (key,) = empty_store.cli("KEYS", "aigw:cache:*").split()
    assert 590 <= int(empty_store.cli("TTL", key)) <= 600


def test_the_cache_store_dying_lets_requests_through_uncached_and_each_is_logged(
    tasks: tuple[RunningDataPlane, RunningDataPlane], empty_store: Store, mocks: dict[str, MockProvider]
) -> None:
    ask(tasks[0])
    stored(empty_store)
    empty_store.stop()
    try:
        for _ in range(2):
            response, line = ask(tasks[0])
            assert response.status == 200 and line["cache"] == "unavailable"
        assert len(mocks["openai"].requests) == 3
        log = (tasks[0].home / "error.log").read_text() if (tasks[0].home / "error.log").exists() else ""
        log += "".join(path.read_text(errors="replace") for path in tasks[0].home.glob("*.log"))
        assert "aigw: cache: store unavailable" in log
    finally:
        empty_store.start_again()


def test_the_gateway_accepts_the_stores_tls_url_and_connects_to_it(
    cache_task: TaskDefinition, store: Store, mocks: dict[str, MockProvider], tmp_path_factory: pytest.TempPathFactory
) -> None:
    url = cache_task.environment(GATEWAY_CONTAINER)["REDIS_CONNECTION_STRING"]
    assert url.startswith("rediss://${") and url.endswith("}")  # the serverless cache's endpoint, over TLS
    if store.process.poll() is not None:
        store.start_again()
    before = len(store.cli("CLIENT", "LIST").splitlines())
    values = {**REFERENCES, **references(cache_task, store)}
    workdir = tmp_path_factory.mktemp("redis-gateway")
    # The serverless cache's certificate chains to Amazon's roots, which Node trusts; the test store's to its own CA.
    with running_gateway(
        cache_task, {}, mocks["sink"].base_url, values, workdir, {"NODE_EXTRA_CA_CERTS": str(store.ca)}
    ):
        deadline = time.monotonic() + 10
        while len(store.cli("CLIENT", "LIST").splitlines()) <= before and time.monotonic() < deadline:
            time.sleep(0.1)
        connected = len(store.cli("CLIENT", "LIST").splitlines())
    log = (workdir / "gateway.log").read_text(errors="replace")
    assert connected > before, f"the gateway opened no connection to the store:\n{log[-3000:]}"
    assert "ECONNREFUSED" not in log and "certificate" not in log.lower(), log[-3000:]
