"""A task being replaced cuts no stream in flight: ECS stops the data plane
with SIGTERM (after the load balancer's deregistration delay,
`gateway.drain_seconds`), which its start script turns into nginx's graceful
shutdown. Run on the data plane as synthesized (its own start command), in
front of the real gateway."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from tests.aws_mocks import CredentialsEndpoint
from tests.gateway_fixtures import ORG_KEYS, held_streams
from tests.gateway_harness import GatewayHarness
from tests.mock_providers import MockProvider

pytestmark = pytest.mark.gateway


def test_a_stream_in_flight_finishes_after_sigterm_and_no_new_connection_is_taken(
    harness: GatewayHarness, mocks: dict[str, MockProvider], credentials: CredentialsEndpoint
) -> None:
    data_plane = harness.start_data_plane(ORG_KEYS, "drain", credentials_uri=credentials.full_uri)
    with held_streams(mocks["openai"], data_plane.port, 1) as finish:
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
        finish()  # it ends with its [DONE]
    assert data_plane.process.wait(timeout=20) == 0  # then it exits, cleanly


def test_sigint_still_stops_the_data_plane_at_once(harness: GatewayHarness, credentials: CredentialsEndpoint) -> None:
    data_plane = harness.start_data_plane(ORG_KEYS, "fast-stop", credentials_uri=credentials.full_uri)
    data_plane.process.send_signal(signal.SIGINT)
    data_plane.process.wait(timeout=10)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", data_plane.port), timeout=1).close()
