"""Fixtures of the per-team limit tests (tests/test_team_limits.py and
tests/test_team_limits_attacks.py): the "teams" scenario's data plane
(tests/scenarios.py: `default`, `search` with 3 requests a minute and 2 in
flight, `batch` with a 64-token cap and a shadowed 100-token budget), twice,
as two tasks, in front of the harness's gateway, counting in one TLS-only
redis-server (tests/tls_store.py) with the image's lua-resty-redis."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aigw.data_plane.contract import DATA_PLANE_CONTAINER, RUNTIME_VARIABLE
from tests import tls_store
from tests.gateway_fixtures import ORG_KEYS, stack_file
from tests.gateway_harness import GatewayHarness, RunningDataPlane, TaskDefinition, request
from tests.tls_store import Store

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def fake_jwt(client_id: str) -> str:
    def part(value: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'client_id': client_id, 'scope': 'https://gateway.internal/invoke'})}.c2ln"


def client_id_of(team: str) -> str:
    return f"client0{team.replace('-', '0')}0id"


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    running = tls_store.start(tmp_path_factory.mktemp("store"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def teams_task(scenarios_outdir: Path) -> TaskDefinition:
    return TaskDefinition.from_stack(stack_file(scenarios_outdir, "teams"))


def references(task: TaskDefinition, store: Store) -> dict[str, str]:
    """Terraform's values for the teams' client ids and the store's address."""
    runtime = json.loads(task.environment(DATA_PLANE_CONTAINER)[RUNTIME_VARIABLE])
    values = {expression[2:-1]: client_id_of(team) for expression, team in runtime["teams"].items()}
    values[runtime["store"]["host"][2:-1]] = "127.0.0.1"
    values[runtime["store"]["port"][2:-1]] = str(store.port)
    return values


@pytest.fixture(scope="session")
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
