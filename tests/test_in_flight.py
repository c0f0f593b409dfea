"""The data plane's gauges of what its task has in flight (StreamsInFlight,
RequestsInFlight), which the service can scale on
(`gateway.streams_per_task`): they rise with streams open and fall when they
end. On the data plane as synthesized, in front of the real gateway, with a
collector of its own."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator

import pytest

from tests.aws_mocks import CredentialsEndpoint, MetricPoint, OtlpRecorder
from tests.gateway_fixtures import CLIENT, ORG_KEYS
from tests.gateway_harness import GatewayHarness
from tests.mock_providers import MockProvider

pytestmark = pytest.mark.gateway


@pytest.fixture
def collector() -> Iterator[OtlpRecorder]:
    recorder = OtlpRecorder().start()
    yield recorder
    recorder.stop()


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
    gate = threading.Event()
    mocks["openai"].stream_gate = gate  # each stream's first event now, the rest when the gate opens
    connections = [http.client.HTTPConnection("127.0.0.1", data_plane.port, timeout=30) for _ in range(2)]
    try:
        responses = []
        for connection in connections:
            body = json.dumps({"model": "mock", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
            connection.request("POST", "/v1/chat/completions", body, {
                "content-type": "application/json", "x-portkey-provider": "openai", **CLIENT,
            })  # fmt: skip
            response = connection.getresponse()
            assert response.status == 200 and response.read1(65536)
            responses.append(response)
        busy = wait_for(collector, (2, 2), after=idle + 1)
        gate.set()
        for response in responses:
            assert b"[DONE]" in response.read()
    finally:
        gate.set()
        for connection in connections:
            connection.close()
    wait_for(collector, (0, 0), after=busy + 1)
