"""The data plane's gauges of what its task has in flight (StreamsInFlight,
RequestsInFlight), which the service can scale on
(`gateway.streams_per_task`): they rise with streams open and fall when they
end. On the data plane as synthesized, in front of the real gateway, with a
collector of its own."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigw.data_plane.contract import DATA_PLANE_CONTAINER, RUNTIME_VARIABLE
from tests.aws_mocks import CredentialsEndpoint, MetricPoint, OtlpRecorder
from tests.gateway_fixtures import CLIENT, CLIENT_ID, ORG_KEYS, REFERENCES, held_streams, stack_file
from tests.gateway_harness import (
    GatewayHarness,
    TaskDefinition,
    chat,
    free_port,
    start_data_plane_process,
    stop_process,
)
from tests.mock_providers import MockProvider

pytestmark = pytest.mark.gateway


@pytest.fixture
def collector() -> Iterator[OtlpRecorder]:
    recorder = OtlpRecorder().start()
    yield recorder
    recorder.stop()


def runtime_teams(task: TaskDefinition) -> list[str]:
    """The Terraform references of the task's team client ids."""
    return list(json.loads(task.environment(DATA_PLANE_CONTAINER)[RUNTIME_VARIABLE])["teams"])


def gauges(collector: OtlpRecorder) -> list[tuple[int, int]]:
    """(requests, streams) of each report, in order."""
    points: list[MetricPoint] = collector.metric_points()
    requests = [p for p in points if p.name == "RequestsInFlight"]
    streams = [p for p in points if p.name == "StreamsInFlight"]
    assert all(p.kind == "gauge" and p.attributes == {"environment": "org-keys"} for p in requests + streams)
    return [(int(r.value or 0), int(s.value or 0)) for r, s in zip(requests, streams, strict=True)]


def wait_for(collector: OtlpRecorder, wanted: tuple[int, int], after: int = 0) -> int:
    """The index of the first report from ``after`` on that is ``wanted``."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        reports = gauges(collector)
        for index in range(after, len(reports)):
            if reports[index] == wanted:
                return index
        time.sleep(0.2)
    raise AssertionError(f"no report of {wanted} (requests, streams) after #{after}: {gauges(collector)}")


def test_streams_in_flight_rise_with_open_streams_and_fall_when_they_end(
    harness: GatewayHarness, mocks: dict[str, MockProvider], credentials: CredentialsEndpoint, collector: OtlpRecorder
) -> None:
    data_plane = harness.start_data_plane(
        ORG_KEYS, "in-flight", otlp_port=collector.port, credentials_uri=credentials.full_uri
    )
    idle = wait_for(collector, (0, 0))
    with held_streams(mocks["openai"], data_plane.port, 2) as finish:
        busy = wait_for(collector, (2, 2), after=idle + 1)
        finish()
    wait_for(collector, (0, 0), after=busy + 1)


def test_past_its_bound_a_task_answers_503_with_retry_after_at_once_and_takes_requests_again_after(
    harness: GatewayHarness,
    scenarios_outdir: Path,
    mocks: dict[str, MockProvider],
    credentials: CredentialsEndpoint,
) -> None:
    """The "saturating" scenario: gateway.max_requests_in_flight = 10."""
    task = TaskDefinition.from_stack(stack_file(scenarios_outdir, "saturating"))
    references = {expression[2:-1]: CLIENT_ID for expression in runtime_teams(task)}
    data_plane = harness.start_data_plane(
        ORG_KEYS, "saturating", task=task, references=references, credentials_uri=credentials.full_uri
    )
    with held_streams(mocks["openai"], data_plane.port, 10) as finish:
        trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
        refused = chat(data_plane.base_url, {"x-portkey-provider": "openai", "x-amzn-trace-id": trace, **CLIENT})
        assert refused.status == 503 and refused.headers["retry-after"] == "1"
        assert json.loads(refused.body)["error"]["rule"] == "saturated"
        assert data_plane.access_line(trace)["rule"] == "saturated"
        assert len(mocks["openai"].requests) == 10  # the refused one never reached the gateway
        finish()
    assert chat(data_plane.base_url, {"x-portkey-provider": "openai", **CLIENT}).status == 200


def test_requests_that_end_on_nginxs_own_error_pages_leave_the_count(
    harness: GatewayHarness, scenarios_outdir: Path, tmp_path: Path
) -> None:
    """The "saturating" scenario (10 in flight) in front of a gateway that is down: every request ends on
    nginx's own 502 page (an internal redirect). Each must give its place back, or after ten the task
    would refuse everything, for good."""
    task = TaskDefinition.from_stack(stack_file(scenarios_outdir, "saturating"))
    references = {**REFERENCES, **{expression[2:-1]: CLIENT_ID for expression in runtime_teams(task)}}
    process, port = start_data_plane_process(task, ORG_KEYS, tmp_path / "down", free_port(), references=references)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "the data plane did not start"
                time.sleep(0.1)
        statuses = [chat(f"http://127.0.0.1:{port}", {"x-portkey-provider": "openai", **CLIENT}).status
                    for _ in range(15)]  # fmt: skip
        assert statuses == [502] * 15
    finally:
        stop_process(process)
