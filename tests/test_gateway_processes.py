"""A task of N vCPUs runs N gateway processes (aigw/data_plane/task.py,
GATEWAY_PRIMARY): run as the task definition runs them (the "tuned"
scenario, 2 vCPUs), two workers serve requests, through the data plane too;
a worker that dies is forked again, a crash loop ends the task, and SIGTERM
stops every worker. One vCPU keeps the image's own command."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aigw.data_plane.contract import GATEWAY_CONTAINER
from bench.synth import process_tree
from tests.gateway_fixtures import REFERENCES, held_streams, stack_file
from tests.gateway_harness import GatewayHarness, TaskDefinition, chat, running_gateway
from tests.mock_providers import MockProvider, intercept_map

pytestmark = pytest.mark.gateway

PASSTHROUGH = {"x-portkey-provider": "openai", "Authorization": "Bearer sk-client-own-key"}


@pytest.fixture(scope="module")
def two_vcpu_task(scenarios_outdir: Path) -> TaskDefinition:
    """tests/scenarios.py "tuned": cpu = 2048, JWT auth off (clients bring their keys)."""
    return TaskDefinition.from_stack(stack_file(scenarios_outdir, "tuned"))


@pytest.fixture
def cluster(two_vcpu_task: TaskDefinition, mocks: dict[str, MockProvider]) -> Iterator[GatewayHarness]:
    """Its own gateway (the tests kill its processes)."""
    with running_gateway(two_vcpu_task, intercept_map(mocks, ()), mocks["sink"].base_url) as harness:
        yield harness


def workers(harness: GatewayHarness) -> set[int]:
    assert harness.gateway_process is not None
    return set(process_tree(harness.gateway_process.pid)) - {harness.gateway_process.pid}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(what)


def serving_pids(harness: GatewayHarness, base_url: str, requests: int = 20) -> set[int]:
    """The processes that made the provider calls of ``requests`` chat completions (the interception's log)."""
    harness.interception.reset()
    for _ in range(requests):
        response = chat(base_url, PASSTHROUGH)
        assert response.status == 200, response.body
    return {event["pid"] for event in harness.interception.outbound()}


def test_one_vcpu_keeps_the_images_own_command(passthrough_task: TaskDefinition) -> None:
    container = passthrough_task.containers[GATEWAY_CONTAINER]  # "base": 512 CPU units
    assert "command" not in container and "entryPoint" not in container


def test_two_vcpus_run_two_gateway_workers_that_both_serve(
    cluster: GatewayHarness, mocks: dict[str, MockProvider]
) -> None:
    command = cluster.task.command(GATEWAY_CONTAINER)
    assert command[:2] == ["node", "-e"] and command[3:] == ["2", "/app/build/start-server.js"]
    pids = workers(cluster)
    assert len(pids) == 2
    # Directly (the health check's way in): the primary hands the connections to both in turn.
    assert serving_pids(cluster, cluster.gateway_url) == pids
    # Through the data plane: streams held at once, on connections of its own to the gateway, run on both.
    data_plane = cluster.start_data_plane({}, "two-workers", references=REFERENCES)
    cluster.interception.reset()
    with held_streams(mocks["openai"], data_plane.port, 4) as finish:
        assert {event["pid"] for event in cluster.interception.outbound()} == pids
        finish()


def test_a_worker_that_dies_is_forked_again_and_a_crash_loop_ends_the_task(cluster: GatewayHarness) -> None:
    assert cluster.gateway_process is not None
    first = workers(cluster)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(workers(cluster) - first) == 1 and len(workers(cluster)) == 2, "no worker was forked again")
    assert cluster.gateway_process.poll() is None
    log = cluster.workdir / "gateway.log"
    assert f"gateway worker {victim} exited (SIGKILL)" in log.read_text(errors="replace")
    wait_for(lambda: log.read_text(errors="replace").count("Ready for connections") >= 3, "the new worker not ready")
    assert serving_pids(cluster, cluster.gateway_url) == workers(cluster)
    # Two more deaths within the minute (three for two workers): the primary gives up, the task is replaced.
    primary = cluster.gateway_process
    for _ in range(2):
        before = workers(cluster)
        os.kill(min(before), signal.SIGKILL)
        wait_for(lambda before=before: primary.poll() is not None or workers(cluster) != before, "no reaction")
    assert primary.wait(timeout=10) == 1
    assert "gateway workers keep exiting" in log.read_text(errors="replace")
    wait_for(lambda: not any(alive(pid) for pid in before), "a worker outlived its primary")


def test_sigterm_stops_every_worker(cluster: GatewayHarness) -> None:
    assert cluster.gateway_process is not None
    pids = workers(cluster)
    assert len(pids) == 2
    cluster.gateway_process.send_signal(signal.SIGTERM)  # what ECS sends when it stops the container
    assert cluster.gateway_process.wait(timeout=10) == 0
    assert not any(alive(pid) for pid in pids)
