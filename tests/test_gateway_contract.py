"""The gateway runtime contract, proven against the real gateway: what the
stack deploys into the task (the synthesized container definitions of the
scenarios "org-keys" and "base", tests/scenarios.py) is what Portkey Gateway 1.15.2, on the
image's Node and dependency versions, acts on. Loopback only, bounded in time;
provider hosts are redirected inside the gateway process to recording mocks
(tests/gateway_harness.py). The attacks are in tests/test_key_exfiltration.py."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import processes
from tests.gateway_fixtures import CLIENT, CLIENT_JWT, ORG_KEYS, REFERENCES, stack_file
from tests.gateway_harness import (
    GatewayHarness,
    RunningDataPlane,
    TaskDefinition,
    chat,
    request,
    start_data_plane_process,
)
from tests.gateway_runtime import GATEWAY_NODE
from tests.mock_providers import MockProvider

pytestmark = pytest.mark.gateway


def answer_text(response: Any) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


# -- org keys (prod) -------------------------------------------------------------
def test_health_path_reaches_the_gateway(org_data_plane: RunningDataPlane) -> None:
    response = request(f"{org_data_plane.base_url}/health")
    assert (response.status, response.body) == (200, b"AI Gateway says hey!")


def test_completion_reaches_the_provider_with_the_org_key_never_the_client_jwt(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider], harness: GatewayHarness
) -> None:
    response = chat(org_data_plane.base_url, {"x-portkey-provider": "openai", **CLIENT})
    assert response.status == 200, response.body
    assert answer_text(response) == mocks["openai"].reply_text
    assert mocks["openai"].api_keys() == [ORG_KEYS["OPENAI_API_KEY"]]
    assert CLIENT_JWT not in json.dumps(harness.interception.outbound())


@pytest.mark.parametrize(
    ("provider", "mock_name", "key"),
    [
        ("anthropic", "anthropic", "ANTHROPIC_API_KEY"),
        ("azure-openai", "azure-openai", "AZURE_API_KEY"),
        ("google", "google", "GOOGLE_API_KEY"),
    ],
)
def test_each_provider_gets_its_own_org_key_where_it_expects_it(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider], provider: str, mock_name: str, key: str
) -> None:
    response = chat(org_data_plane.base_url, {"x-portkey-provider": provider, **CLIENT})
    assert response.status == 200, response.body
    assert mocks[mock_name].api_keys() == [ORG_KEYS[key]]


def test_azure_requests_go_to_the_deployment_of_the_environment_file(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider], harness: GatewayHarness
) -> None:
    assert chat(org_data_plane.base_url, {"x-portkey-provider": "azure-openai", **CLIENT}).status == 200
    (received,) = mocks["azure-openai"].requests
    # the org-keys scenario: resource example-openai, deployment gpt-4o, API version 2024-10-21
    assert received.path == "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    assert [e["host"] for e in harness.interception.outbound()] == ["example-openai.openai.azure.com"]


def test_fallback_config_moves_to_the_next_target_with_the_clients_own_keys(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    mocks["openai"].error_status = 500
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "openai", "api_key": "client-key-a"},
            {"provider": "anthropic", "api_key": "client-key-b"},
        ],
    }
    response = chat(org_data_plane.base_url, {"x-portkey-config": json.dumps(config), **CLIENT})
    assert response.status == 200, response.body
    assert response.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert mocks["openai"].api_keys() == ["client-key-a"]
    assert mocks["anthropic"].api_keys() == ["client-key-b"]


LOADBALANCE_REQUESTS = 80


def test_loadbalance_config_spreads_requests_by_weight(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {"provider": "openai", "api_key": "k", "weight": 0.75},
            {"provider": "anthropic", "api_key": "k", "weight": 0.25},
        ],
    }
    headers = {"x-portkey-config": json.dumps(config), **CLIENT}
    statuses = [chat(org_data_plane.base_url, headers).status for _ in range(LOADBALANCE_REQUESTS)]
    assert statuses == [200] * LOADBALANCE_REQUESTS
    heavy, light = len(mocks["openai"].requests), len(mocks["anthropic"].requests)
    assert heavy + light == LOADBALANCE_REQUESTS
    # Binomial(80, 0.75): mean 60, sd 3.9; +-16 is over 4 sd.
    assert 44 <= heavy <= 76, (heavy, light)


def test_a_request_with_its_own_config_gets_no_org_key(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider], harness: GatewayHarness
) -> None:
    config = {"provider": "openai", "api_key": "client-own-key"}
    response = chat(
        org_data_plane.base_url, {"x-portkey-config": json.dumps(config), "x-portkey-provider": "openai", **CLIENT}
    )
    assert response.status == 200, response.body
    assert mocks["openai"].api_keys() == ["client-own-key"]
    assert not any(key in json.dumps(harness.interception.outbound()) for key in ORG_KEYS.values())


@pytest.mark.parametrize("provider", ["mistral-ai", "vertex-ai", "groq", "openai ,anthropic", "openai\tx"])
def test_providers_without_an_org_key_are_refused_by_the_data_plane(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, provider: str
) -> None:
    response = chat(org_data_plane.base_url, {"x-portkey-provider": provider, **CLIENT})
    assert response.status == 403
    assert response.json()["error"]["rule"] == "provider"
    assert harness.interception.outbound() == []


def test_the_gateway_receives_the_data_planes_spelling_of_the_provider(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    # nginx compares map strings without regard to case; the gateway does not.
    response = chat(org_data_plane.base_url, {"x-portkey-provider": "OpenAI", **CLIENT})
    assert response.status == 200, response.body
    assert mocks["openai"].api_keys() == [ORG_KEYS["OPENAI_API_KEY"]]


def test_a_request_naming_no_provider_and_no_config_is_refused_with_the_offered_list(
    org_data_plane: RunningDataPlane,
) -> None:
    response = chat(org_data_plane.base_url, CLIENT)
    assert response.status == 403
    assert "(anthropic, azure-openai, bedrock, google, openai)" in response.json()["error"]["message"]


def test_access_log_lines_carry_the_fields_the_saved_queries_read(org_data_plane: RunningDataPlane) -> None:
    trace = f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}"
    assert (
        chat(org_data_plane.base_url, {"x-portkey-provider": "openai", "x-amzn-trace-id": trace, **CLIENT}).status
        == 200
    )
    line = org_data_plane.access_line(trace)
    assert (line["provider"], line["status"], line["path"]) == ("openai", 200, "/v1/chat/completions")
    assert isinstance(line["request_time"], float) and line["rule"] == ""


def test_refusals_are_logged_with_the_rule_that_refused(org_data_plane: RunningDataPlane) -> None:
    trace = f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}"
    assert (
        request(f"{org_data_plane.base_url}/v1/files", headers={"x-amzn-trace-id": trace}, method="GET").status == 404
    )
    line = org_data_plane.access_line(trace)
    assert (line["status"], line["rule"]) == (404, "route")


def test_the_data_plane_log_never_holds_an_org_key_or_the_client_jwt(org_data_plane: RunningDataPlane) -> None:
    assert chat(org_data_plane.base_url, {"x-portkey-provider": "openai", **CLIENT}).status == 200
    time.sleep(0.2)
    logs = "".join(p.read_text() for p in org_data_plane.home.glob("*.log"))
    assert logs and CLIENT_JWT not in logs
    assert not any(key in logs for key in ORG_KEYS.values())


# -- clients' own keys (dev) ------------------------------------------------------
def test_without_jwt_auth_the_client_brings_its_own_key(
    passthrough_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    response = chat(passthrough_data_plane.base_url, {"x-portkey-provider": "openai", "Authorization": "Bearer own"})
    assert response.status == 200, response.body
    assert mocks["openai"].api_keys() == ["own"]


def test_without_jwt_auth_an_anthropic_client_may_use_x_api_key(
    passthrough_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    response = chat(passthrough_data_plane.base_url, {"x-portkey-provider": "anthropic", "x-api-key": "own-anthropic"})
    assert response.status == 200, response.body
    assert mocks["anthropic"].api_keys() == ["own-anthropic"]


def test_without_jwt_auth_google_takes_the_clients_own_key(
    passthrough_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    response = chat(passthrough_data_plane.base_url, {"x-portkey-provider": "google", "Authorization": "Bearer own-g"})
    assert response.status == 200, response.body
    assert mocks["google"].api_keys() == ["own-g"]


def test_without_jwt_auth_azure_is_not_offered_without_a_target(passthrough_data_plane: RunningDataPlane) -> None:
    # the base scenario has no [gateway.azure]: a client cannot name a resource.
    response = chat(
        passthrough_data_plane.base_url, {"x-portkey-provider": "azure-openai", "Authorization": "Bearer own"}
    )
    assert response.status == 403 and response.json()["error"]["rule"] == "provider"


# -- streaming ------------------------------------------------------------------------
def stream_through(
    data_plane: RunningDataPlane, path: str, body: dict[str, Any], headers: dict[str, str], mock: MockProvider
) -> tuple[int, bytes, bytes]:
    """Stream a response through the data plane while the mock holds back all but
    its first chunk until the client has that chunk: if anything on the way
    buffered, the first chunk would never arrive in time and the mock's gate
    would time out (recorded in ``mock.gate_results``)."""
    mock.stream_gate = threading.Event()
    connection = http.client.HTTPConnection("127.0.0.1", data_plane.port, timeout=20)
    try:
        connection.request("POST", path, json.dumps(body), {"content-type": "application/json", **headers})
        response = connection.getresponse()
        first = b""
        while b"data:" not in first:
            line = response.readline()
            if not line:
                break
            first += line
        mock.stream_gate.set()
        return response.status, first, response.read()
    finally:
        connection.close()


def test_openai_chunks_arrive_as_the_provider_produces_them(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    status, first, rest = stream_through(
        org_data_plane, "/v1/chat/completions", body, {"x-portkey-provider": "openai", **CLIENT}, mocks["openai"]
    )
    assert status == 200 and first.startswith(b"data: ")
    assert mocks["openai"].gate_results == [True]
    assert rest.rstrip().endswith(b"data: [DONE]")


def test_anthropic_message_events_arrive_as_the_provider_produces_them(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    body = {"model": "mock-claude", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}],
            "stream": True}  # fmt: skip
    status, first, rest = stream_through(
        org_data_plane, "/v1/messages", body, {"x-portkey-provider": "anthropic", **CLIENT}, mocks["anthropic"]
    )
    assert status == 200 and b"message_start" in first
    assert mocks["anthropic"].gate_results == [True]
    assert b"message_stop" in rest


# -- the official SDKs as clients -------------------------------------------------------
@pytest.fixture
def openai_client(org_data_plane: RunningDataPlane) -> Any:
    openai = pytest.importorskip("openai")
    return openai.OpenAI(
        base_url=f"{org_data_plane.base_url}/v1", api_key=CLIENT_JWT, default_headers={"x-portkey-provider": "openai"},
        max_retries=0, timeout=20,
    )  # fmt: skip


def chat_with_the_org_key(client: Any, mocks: dict[str, MockProvider]) -> None:
    """An OpenAI-compatible SDK client's completion reaches OpenAI with the org key."""
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == mocks["openai"].reply_text
    assert mocks["openai"].api_keys() == [ORG_KEYS["OPENAI_API_KEY"]]


def streams_chunk_by_chunk(client: Any, mocks: dict[str, MockProvider]) -> None:
    """An OpenAI-compatible SDK client gets the first chunk before the mock sends the rest."""
    gate = mocks["openai"].stream_gate = threading.Event()
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    pieces: list[str] = []
    for chunk in stream:
        gate.set()
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    assert "".join(pieces) == mocks["openai"].reply_text
    assert mocks["openai"].gate_results == [True]


def test_openai_sdk_chat_completion(openai_client: Any, mocks: dict[str, MockProvider]) -> None:
    chat_with_the_org_key(openai_client, mocks)


def test_openai_sdk_streams_chunk_by_chunk(openai_client: Any, mocks: dict[str, MockProvider]) -> None:
    streams_chunk_by_chunk(openai_client, mocks)


@pytest.fixture
def anthropic_client(org_data_plane: RunningDataPlane) -> Any:
    anthropic = pytest.importorskip("anthropic")
    return anthropic.Anthropic(
        base_url=org_data_plane.base_url, auth_token=CLIENT_JWT, default_headers={"x-portkey-provider": "anthropic"},
        max_retries=0, timeout=20,
    )  # fmt: skip


def test_anthropic_sdk_message(anthropic_client: Any, mocks: dict[str, MockProvider]) -> None:
    message = anthropic_client.messages.create(
        model="mock-claude", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == mocks["anthropic"].reply_text
    assert mocks["anthropic"].api_keys() == [ORG_KEYS["ANTHROPIC_API_KEY"]]


def test_anthropic_sdk_streams_event_by_event(anthropic_client: Any, mocks: dict[str, MockProvider]) -> None:
    gate = mocks["anthropic"].stream_gate = threading.Event()
    with anthropic_client.messages.stream(
        model="mock-claude", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        pieces: list[str] = []
        for event in stream:
            gate.set()  # the first event (message_start) is here: release the rest
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                pieces.append(event.delta.text)
    assert "".join(pieces) == mocks["anthropic"].reply_text
    assert mocks["anthropic"].gate_results == [True]


@pytest.fixture
def portkey_client(org_data_plane: RunningDataPlane) -> Any:
    portkey_ai = pytest.importorskip("portkey_ai")
    # The SDK insists on a Portkey API key (x-portkey-api-key); the OSS gateway
    # ignores it and the data plane drops it.
    unused_portkey_key = "-".join(["unused", "by", "the", "oss", "gateway"])
    return portkey_ai.Portkey(
        base_url=f"{org_data_plane.base_url}/v1", api_key=unused_portkey_key, provider="openai",
        Authorization=f"Bearer {CLIENT_JWT}", max_retries=0,
    )  # fmt: skip


def test_portkey_sdk_chat_completion(portkey_client: Any, mocks: dict[str, MockProvider]) -> None:
    chat_with_the_org_key(portkey_client, mocks)


def test_portkey_sdk_streams_chunk_by_chunk(portkey_client: Any, mocks: dict[str, MockProvider]) -> None:
    streams_chunk_by_chunk(portkey_client, mocks)


# -- data plane robustness --------------------------------------------------------------------
def test_requests_on_one_client_connection_share_one_gateway_connection(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, mocks: dict[str, MockProvider]
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", org_data_plane.port, timeout=20)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    headers = {"x-portkey-provider": "openai", "content-type": "application/json", **CLIENT}
    try:
        for _ in range(5):
            connection.request("POST", "/v1/chat/completions", body, headers)
            response = connection.getresponse()
            assert response.status == 200
            response.read()
    finally:
        connection.close()
    assert len(mocks["openai"].requests) == 5
    # Without upstream keepalive every request would open its own connection (5).
    assert len(harness.interception.events("inbound-connection")) <= 1


def test_the_data_plane_keeps_client_connections_open_longer_than_the_load_balancer(
    synth_outdir: Path, prod_task: TaskDefinition
) -> None:
    document = json.loads(stack_file(synth_outdir, "prod").read_text())
    (balancer,) = document["resource"]["aws_lb"].values()
    template = prod_task.bundle()["server.conf"]
    (keepalive,) = re.findall(r"^\s*keepalive_timeout (\d+)s;", template.split("server {", 1)[1], re.MULTILINE)
    # The ALB must never reuse a connection nginx is closing (intermittent 502s).
    assert int(keepalive) > int(balancer["idle_timeout"])


def test_a_body_over_the_limit_gets_a_json_413(org_data_plane: RunningDataPlane, harness: GatewayHarness) -> None:
    body = b'{"model":"m","pad":"' + b"x" * (51 * 1024 * 1024) + b'"}'
    response = request(f"{org_data_plane.base_url}/v1/chat/completions", body, {"x-portkey-provider": "openai"})
    assert response.status == 413
    assert response.json()["error"]["rule"] == "http-413"
    assert harness.interception.outbound() == []


def test_a_25_mb_audio_upload_reaches_the_provider(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    boundary = "aigwboundary"
    audio = b"\x00" * (25 * 1000 * 1000)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n'
            "Content-Type: audio/mpeg\r\n\r\n"
        ).encode()
        + audio
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"x-portkey-provider": "openai", "content-type": f"multipart/form-data; boundary={boundary}", **CLIENT}
    response = request(f"{org_data_plane.base_url}/v1/audio/transcriptions", body, headers)
    assert response.status == 200, response.body[:500]
    (received,) = mocks["openai"].requests
    assert received.path == "/v1/audio/transcriptions" and len(received.body) >= len(audio)


def test_websocket_upgrades_are_refused_in_json_not_turned_into_200(org_data_plane: RunningDataPlane) -> None:
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "x-portkey-provider": "openai", **CLIENT}  # fmt: skip
    response = request(f"{org_data_plane.base_url}/v1/realtime?model=gpt-4o-realtime-preview", headers=headers,
                       method="GET")  # fmt: skip
    assert response.status == 400
    assert response.json()["error"]["rule"] == "websocket"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _run_data_plane(task: TaskDefinition, keys: dict[str, str], home: Path, gateway_port: int) -> tuple[Any, int]:
    """Start a data plane; returns once it listens or has exited."""
    process, port = start_data_plane_process(task, keys, home, gateway_port, references=REFERENCES)
    deadline = time.monotonic() + 10
    while process.poll() is None and not _listening(port):
        assert time.monotonic() < deadline, (home / "stderr.log").read_text()
        time.sleep(0.05)
    return process, port


@pytest.fixture
def data_plane_without_gateway(org_task: TaskDefinition, tmp_path: Path) -> Iterator[str]:
    """The prod data plane in front of a port where no gateway listens."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_port = int(unused.getsockname()[1])
    process, port = _run_data_plane(org_task, ORG_KEYS, tmp_path / "data-plane", dead_port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_gateway_that_does_not_answer_gets_a_json_502(data_plane_without_gateway: str) -> None:
    response = chat(data_plane_without_gateway, {"x-portkey-provider": "openai", **CLIENT})
    assert response.status == 502
    assert response.json()["error"]["rule"] == "http-502"


# Whitespace before and after a key, of every kind a pasted or piped secret
# carries. Trailing spaces and tabs matter most: a command substitution strips
# trailing newlines by itself, so a start script that trimmed only the front
# would still pass a test that used only a trailing newline.
SURROUNDING_WHITESPACE: dict[str, tuple[str, str]] = {
    "trailing-space": ("", "  "),
    "trailing-tab": ("", "\t"),
    "trailing-crlf": ("", "\r\n"),
    "leading-space": ("  ", ""),
    "leading-newline": ("\n", ""),
    "both-mixed": (" \t\n", " \t\r\n\n"),
}


@pytest.mark.parametrize("kind", sorted(SURROUNDING_WHITESPACE))
def test_org_keys_stored_with_surrounding_whitespace_are_trimmed_at_both_ends(
    harness: GatewayHarness, mocks: dict[str, MockProvider], kind: str
) -> None:
    before, after = SURROUNDING_WHITESPACE[kind]
    keys = {**ORG_KEYS, "OPENAI_API_KEY": f"{before}{ORG_KEYS['OPENAI_API_KEY']}{after}"}
    data_plane = harness.start_data_plane(keys, f"trimmed-{kind}")
    response = chat(data_plane.base_url, {"x-portkey-provider": "openai", **CLIENT})
    assert response.status == 200, response.body
    assert mocks["openai"].api_keys() == [ORG_KEYS["OPENAI_API_KEY"]]


@pytest.mark.parametrize("bad", ["two words", 'quo"te', "dollar$var", "semi;colon", "", " \t\n", "in\nner"])
def test_org_keys_a_provider_never_issues_stop_the_data_plane_with_a_clear_line(
    org_task: TaskDefinition, tmp_path: Path, bad: str
) -> None:
    process, _ = _run_data_plane(org_task, {**ORG_KEYS, "ANTHROPIC_API_KEY": bad}, tmp_path / "data-plane", 9)
    assert process.wait(timeout=10) == 1
    stderr = (tmp_path / "data-plane" / "stderr.log").read_text()
    assert stderr.startswith("data-plane: ANTHROPIC_API_KEY ")
    assert bad.strip() == "" or bad not in stderr


# Allocates with enough survival that V8 grows the young generation to its largest (two semi-spaces),
# and prints that size in MiB.
YOUNG_GENERATION_PROBE = (
    "const v8 = require('v8'); let most = 0; const kept = [];"
    "for (let i = 0; i < 300; i++) { const a = []; for (let j = 0; j < 20000; j++) a.push({ x: j, y: 's' + j });"
    "kept.push(a); if (kept.length > 8) kept.shift();"
    "most = Math.max(most, v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size); }"
    "console.log(most / 1048576);"
)


def test_the_gateways_node_options_are_taken_by_the_images_node_and_enlarge_its_young_generation(
    prod_task: TaskDefinition,
) -> None:
    # GIVEN the gateway container's environment as prod deploys it, and the image's Node (20)
    options = prod_task.environment("gateway")["NODE_OPTIONS"]

    def young_generation_mib(node_options: str | None) -> float:
        env = {"PATH": "/usr/bin:/bin", **({"NODE_OPTIONS": node_options} if node_options else {})}
        result = processes.run([str(GATEWAY_NODE), "-e", YOUNG_GENERATION_PROBE], env=env, timeout=60)
        assert result.returncode == 0, result.stderr  # a flag Node refuses in NODE_OPTIONS fails the start
        return float(result.stdout.strip())

    # THEN Node accepts them and the young generation grows to two 64 MiB semi-spaces, not V8's default 2 x 16
    assert options == "--max-semi-space-size=64"
    assert young_generation_mib(options) == 128
    assert young_generation_mib(None) == 32
