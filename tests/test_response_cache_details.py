"""Response cache details a mutation pass found untested: the size cap's
boundary, the stored content type, the per-worker breaker, the routes that are
never cached, the keys of another Azure deployment and of a changed route, and
the CacheUnavailable count (the "cache" scenario, as tests/test_response_cache.py)."""

from __future__ import annotations

import copy
import http.client
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from aigw.data_plane.bundle import pack
from aigw.data_plane.contract import BUNDLE_VARIABLE, DATA_PLANE_CONTAINER, SHA256_VARIABLE
from tests.aws_mocks import CredentialsEndpoint, OtlpRecorder
from tests.gateway_fixtures import ORG_KEYS
from tests.gateway_harness import GatewayHarness, RunningDataPlane, TaskDefinition
from tests.mock_providers import MockProvider
from tests.team_fixtures import client_id_of, fake_jwt, references
from tests.test_response_cache import BODY, ask, cache_task, empty_store, tasks  # noqa: F401 (fixtures)
from tests.test_response_cache_attacks import cached_keys, wait_stored
from tests.tls_store import Store

pytestmark = pytest.mark.gateway
Tasks = tuple[RunningDataPlane, RunningDataPlane]


def test_an_answer_of_exactly_the_size_cap_is_stored(
    tasks: Tasks,  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
) -> None:
    cap = 64 * 1024  # max_entry_kib = 64
    mocks["openai"].reply_text = "x" * 60000
    probe, _ = ask(tasks[0], body={**BODY, "temperature": 0.3})
    wait_stored(empty_store)
    empty_store.cli("FLUSHALL")
    mocks["openai"].reply_text = "x" * (60000 + cap - len(probe.body))
    first, line = ask(tasks[0])
    assert len(first.body) == cap and line["cache"] == "miss"
    assert len(wait_stored(empty_store)) == 1


def test_a_hit_carries_the_stored_content_type(tasks: Tasks, empty_store: Store) -> None:  # noqa: F811
    ask(tasks[0])
    (key,) = wait_stored(empty_store)
    entry = json.loads(empty_store.cli("GET", key))
    entry["content_type"] = "application/json; charset=utf-8"
    empty_store.cli("SET", key, json.dumps(entry), "KEEPTTL")
    hit, line = ask(tasks[1])
    assert line["cache"] == "hit" and hit.headers["content-type"] == "application/json; charset=utf-8"


def keepalive_ask(connection: http.client.HTTPConnection, data_plane: RunningDataPlane) -> dict[str, Any]:
    """On one connection: one nginx worker, so one breaker."""
    trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    headers = {"Authorization": f"Bearer {fake_jwt(client_id_of('default'))}", "x-amzn-trace-id": trace,
               "content-type": "application/json"}  # fmt: skip
    connection.request("POST", "/v1/chat/completions", json.dumps(BODY).encode(), headers)
    response = connection.getresponse()
    response.read()
    assert response.status == 200
    return data_plane.access_line(trace)


def error_log(data_plane: RunningDataPlane) -> str:
    return "".join(path.read_text(errors="replace") for path in data_plane.home.glob("*.log"))


def connect(data_plane: RunningDataPlane) -> http.client.HTTPConnection:
    url = urlsplit(data_plane.base_url)
    return http.client.HTTPConnection(str(url.hostname), url.port, timeout=30)


def test_a_success_resets_the_breakers_count(tasks: Tasks, empty_store: Store) -> None:  # noqa: F811
    connection = connect(tasks[0])
    try:
        for _ in range(3):  # three failures, but never in a row: the breaker stays closed
            empty_store.cli("CLIENT", "PAUSE", "3000", "ALL")
            try:
                assert keepalive_ask(connection, tasks[0])["cache"] == "unavailable"
            finally:
                empty_store.cli("CLIENT", "UNPAUSE")
            assert keepalive_ask(connection, tasks[0])["cache"] in ("miss", "hit")
            wait_stored(empty_store)
    finally:
        connection.close()


def test_three_failures_in_a_row_open_the_breaker(tasks: Tasks, empty_store: Store) -> None:  # noqa: F811
    connection = connect(tasks[0])
    before = error_log(tasks[0]).count("store skipped after recent failures")
    empty_store.stop()
    try:
        for _ in range(4):
            assert keepalive_ask(connection, tasks[0])["cache"] == "unavailable"
    finally:
        connection.close()
        empty_store.start_again()
    time.sleep(0.3)
    assert error_log(tasks[0]).count("store skipped after recent failures") > before
    time.sleep(5.5)  # the breaker (breaker_seconds = 5) closes again for the tests after


def test_a_responses_request_is_never_cached(
    tasks: Tasks,  # noqa: F811
    empty_store: Store,  # noqa: F811
) -> None:
    for _ in range(2):
        response, line = ask(tasks[0], body={"model": "gpt-4o", "input": "what is 2 + 2?"}, path="/v1/responses")
        assert response.status == 200 and line["cache"] == ""
    time.sleep(0.3)
    assert cached_keys(empty_store) == []


def changed(task: TaskDefinition, change: Callable[[dict[str, Any]], None]) -> TaskDefinition:
    """The task with its bundle's settings.json changed (and the bundle's pinned hash with it)."""
    files = {name: text.encode() for name, text in task.bundle().items()}
    settings = json.loads(files["settings.json"])
    change(settings)
    files["settings.json"] = json.dumps(settings).encode()
    bundle = pack(files)
    environment_files = {
        key: (bundle.environment_file if text.startswith(BUNDLE_VARIABLE + "=") else text)
        for key, text in task.environment_files.items()
    }
    containers = copy.deepcopy(task.containers)
    for item in containers[DATA_PLANE_CONTAINER].get("environment", []):
        if item["name"] == SHA256_VARIABLE:
            item["value"] = bundle.sha256
    return TaskDefinition(containers, environment_files)


def start(
    harness: GatewayHarness, task: TaskDefinition, store: Store, credentials: CredentialsEndpoint, name: str,
    **more: Any,
) -> RunningDataPlane:  # fmt: skip
    return harness.start_data_plane(ORG_KEYS, name, task=task, references=references(task, store),
                                    store_ca=store.ca, credentials_uri=credentials.full_uri, **more)  # fmt: skip


def test_another_azure_deployment_is_another_key(
    harness: GatewayHarness,
    cache_task: TaskDefinition,  # noqa: F811
    store: Store,
    credentials: CredentialsEndpoint,
    tasks: Tasks,  # noqa: F811
    empty_store: Store,  # noqa: F811
) -> None:
    def deployment(settings: dict[str, Any]) -> None:
        settings["azure"]["deployment_id"] = settings["azure"]["deployment_id"] + "-other"

    other = start(harness, changed(cache_task, deployment), store, credentials, "details-azure")
    azure = {"x-portkey-provider": "azure-openai"}
    first, line = ask(tasks[0], headers=azure)
    assert first.status == 200 and line["cache"] == "miss"
    wait_stored(empty_store)
    assert ask(tasks[1], headers=azure)[1]["cache"] == "hit"
    assert ask(other, headers=azure)[1]["cache"] == "miss"


def test_a_changed_route_config_is_another_key(
    harness: GatewayHarness,
    cache_task: TaskDefinition,  # noqa: F811
    store: Store,
    credentials: CredentialsEndpoint,
    tasks: Tasks,  # noqa: F811
    empty_store: Store,  # noqa: F811
) -> None:
    def route(settings: dict[str, Any]) -> None:
        settings["routing"]["configs"]["chat"]["config"]["request_timeout"] = 60000

    other = start(harness, changed(cache_task, route), store, credentials, "details-route")
    first, line = ask(tasks[0])
    assert first.status == 200 and line["cache"] == "miss"
    wait_stored(empty_store)
    assert ask(tasks[1])[1]["cache"] == "hit"
    response, line = ask(other)
    assert response.status == 200 and line["cache"] == "miss"


def test_a_request_answered_uncached_is_counted(
    harness: GatewayHarness,
    cache_task: TaskDefinition,  # noqa: F811
    store: Store,
    credentials: CredentialsEndpoint,
    quiet_otlp: OtlpRecorder,
    empty_store: Store,  # noqa: F811
) -> None:
    plane = start(harness, cache_task, store, credentials, "details-otlp", otlp_port=quiet_otlp.port)
    empty_store.stop()
    try:
        assert ask(plane)[1]["cache"] == "unavailable"
    finally:
        empty_store.start_again()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if any(p.name == "CacheUnavailable" and p.value for p in quiet_otlp.metric_points()):
            return
        time.sleep(0.2)
    raise AssertionError("no CacheUnavailable point above 0")
