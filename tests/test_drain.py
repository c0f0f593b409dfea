"""A task being replaced cuts no stream in flight: ECS stops the data plane
with SIGTERM (after the load balancer's deregistration delay,
`gateway.drain_seconds`), which its start script turns into nginx's graceful
shutdown. Run on the data plane as synthesized (its own start command), in
front of the real gateway."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time

import pytest

from tests.aws_mocks import CredentialsEndpoint
from tests.gateway_fixtures import CLIENT, ORG_KEYS
from tests.gateway_harness import GatewayHarness
from tests.mock_providers import MockProvider

pytestmark = pytest.mark.gateway


def test_a_stream_in_flight_finishes_after_sigterm_and_no_new_connection_is_taken(
    harness: GatewayHarness, mocks: dict[str, MockProvider], credentials: CredentialsEndpoint
) -> None:
    data_plane = harness.start_data_plane(ORG_KEYS, "drain", credentials_uri=credentials.full_uri)
    gate = threading.Event()
    mocks["openai"].stream_gate = gate  # the first event now, the rest when the gate opens
    connection = http.client.HTTPConnection("127.0.0.1", data_plane.port, timeout=30)
    try:
        body = json.dumps({"model": "mock", "stream": True, "messages": [{"role": "user", "content": "hello"}]})
        connection.request("POST", "/v1/chat/completions", body, {
            "content-type": "application/json", "x-portkey-provider": "openai", **CLIENT,
        })  # fmt: skip
        response = connection.getresponse()
        assert response.status == 200
        assert response.read1(65536)  # the stream is under way
        data_plane.process.send_signal(signal.SIGTERM)  # what ECS sends when it stops the container
        # nginx stops listening: a new connection is refused while the stream goes on.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", data_plane.port), timeout=1).close()
            except ConnectionRefusedError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the data plane still takes new connections after SIGTERM")
        assert data_plane.process.poll() is None  # still finishing the stream
        gate.set()
        rest = response.read()
    finally:
        gate.set()
        connection.close()
    assert b"data: [DONE]" in rest, rest[-300:]
    assert data_plane.process.wait(timeout=20) == 0  # then it exits, cleanly


def test_sigint_still_stops_the_data_plane_at_once(harness: GatewayHarness, credentials: CredentialsEndpoint) -> None:
    data_plane = harness.start_data_plane(ORG_KEYS, "fast-stop", credentials_uri=credentials.full_uri)
    data_plane.process.send_signal(signal.SIGINT)
    data_plane.process.wait(timeout=10)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", data_plane.port), timeout=1).close()
