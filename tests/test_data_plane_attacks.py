"""The findings of the independent attack run on the data plane, and the
classes of mistake an independent mutation run slipped past the suite, each
attacked here against a synthesized data plane with JWT auth on and every
org key (tests/scenarios.py "org-keys", run by the harness of
tests/gateway_harness.py): log lines that are always JSON in UTF-8, metric
dimensions no client can choose, refusals without internals, a bound on the
headers inspected, patterns anchored at the real end, stored objects and
remote tools, credentials masked in relayed answers, the header allow-list
as the gateway's own build reads headers, body checks whatever nginx did
with the body, and identity from the token alone. The second mutation run
(62 mutants, 33 survived) added: limits tested at their boundary, chunked
bodies, keys split across reads and the task role's secrets masked, what
reaches the gateway and the provider (no client token, no query string, no
provider header, the task role's credentials only for Bedrock), repeated
response headers, and the internal locations as rendered."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from aigw.data_plane.policy import ANTHROPIC_BETAS, FORWARDED_HEADERS
from aigw.settings.clients import DEFAULT_TEAM
from tests.aws_mocks import CredentialsEndpoint, OtlpRecorder
from tests.gateway_fixtures import (
    CLIENT,
    CLIENT_ID,
    CLIENT_JWT,
    ORG_KEYS,
    REFERENCES,
    assert_no_org_key_leaves_its_provider,
)
from tests.gateway_harness import (
    GatewayHarness,
    RunningDataPlane,
    TaskDefinition,
    chat,
    request,
    start_data_plane_process,
    wait_until_answering,
)
from tests.gateway_runtime import GATEWAY_SERVER
from tests.mock_providers import EchoSink, MockProvider, RecordedRequest

pytestmark = pytest.mark.gateway

CHAT_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
INTERNALS = re.compile(r"table: 0x|userdata: |function: |builtin: |cdata<|thread: ")


def new_trace() -> str:
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"


def send_raw(data_plane: RunningDataPlane, payload: bytes, *, read: bool = True, half_close: bool = True) -> bytes:
    """Bytes on a connection of their own, exactly as given; what came back (until the
    data plane closes; ``half_close`` ends the client's side first, which nginx takes as an
    abandoned request once it proxies)."""
    with socket.create_connection(("127.0.0.1", data_plane.port), timeout=20) as connection:
        connection.sendall(payload)
        if not read:
            return b""
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def raw_chat(provider: str = "openai") -> bytes:
    """A chat request as bytes, closing the connection after the answer (for answers http.client refuses)."""
    body = json.dumps(CHAT_BODY).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"x-portkey-provider: {provider}\r\nAuthorization: {CLIENT['Authorization']}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")  # fmt: skip
    return head.encode() + body


def wait_for_lines(data_plane: RunningDataPlane, count: int, timeout: float = 5.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = data_plane.access_lines()
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    return data_plane.access_lines()


# -- every access-log line is one JSON object in valid UTF-8 -------------------------------------------------
def test_a_request_abandoned_before_its_headers_end_logs_valid_json(org_data_plane: RunningDataPlane) -> None:
    before = len(org_data_plane.access_lines())
    send_raw(org_data_plane, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Amzn-Trace-Id: Ro", read=False)
    lines = wait_for_lines(org_data_plane, before + 1)  # strict: every line decoded as UTF-8 and parsed as JSON
    (line,) = lines[before:]
    assert (line["input_tokens"], line["output_tokens"], line["trace"]) == (None, None, "")


@pytest.mark.parametrize(
    "request_bytes",
    [
        # A trace header with bytes a client chose (>= 0x80, not UTF-8).
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Amzn-Trace-Id: Root=1-\xff\xfe-\xc3\x28\r\n"
        b"Content-Length: 2\r\nContent-Type: application/json\r\n\r\n{}",
        # A path that decodes to a byte that is not UTF-8.
        b"POST /v1/x%FF%C3%28 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        # A provider header with such bytes.
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-portkey-provider: open\xe9ai\r\n"
        b"Content-Length: 2\r\nContent-Type: application/json\r\n\r\n{}",
        # A request line nginx cannot parse.
        b"\xff\xfe / HTTP/1.1\r\n\r\n",
    ],
    ids=["trace-header", "path", "provider-header", "request-line"],
)
def test_client_bytes_never_make_a_log_line_invalid(org_data_plane: RunningDataPlane, request_bytes: bytes) -> None:
    before = len(org_data_plane.access_lines())
    send_raw(org_data_plane, request_bytes)
    lines = wait_for_lines(org_data_plane, before + 1)
    assert len(lines) == before + 1
    for value in lines[-1].values():
        assert not isinstance(value, str) or value.isascii(), lines[-1]


def test_a_model_the_answer_names_is_logged_as_printable_text(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    # With its own routing config (and its own key) a client's body model is not checked, and the
    # provider echoes it: the log line must still be valid, the model printable ASCII.
    trace = new_trace()
    config = json.dumps({"provider": "openai", "api_key": "sk-client-own"})
    body = {"model": "gpt-\u00e9\u0000\u2028x", "messages": [{"role": "user", "content": "hi"}]}
    response = request(f"{org_data_plane.base_url}/v1/chat/completions", body,
                       {**CLIENT, "x-portkey-config": config, "x-amzn-trace-id": trace})  # fmt: skip
    assert response.status == 200, response.body
    # é is two bytes in UTF-8, NUL one, U+2028 three: each byte outside printable ASCII is one "?".
    assert org_data_plane.access_line(trace)["model"] == "gpt-??????x"


# -- metric dimensions: bounded, never chosen by a client ----------------------------------------------------
def test_models_a_client_invents_share_one_metric_dimension(
    org_data_plane: RunningDataPlane, quiet_otlp: OtlpRecorder
) -> None:
    otlp = quiet_otlp
    invented = [f"gpt-4o-{uuid.uuid4().hex[:8]}" for _ in range(6)]
    for model in invented:
        assert chat(org_data_plane.base_url, {"x-portkey-provider": "openai", **CLIENT}, model=model).status == 200
    assert chat(org_data_plane.base_url, {"x-portkey-provider": "openai", **CLIENT}, model="gpt-4o").status == 200
    assert otlp.wait_for_metric("Requests", timeout=10)
    time.sleep(1.5)  # the rest of the flush
    points = [p for p in otlp.metric_points() if p.name == "Requests" and p.attributes["provider"] == "openai"]
    models = {str(p.attributes["model"]) for p in points}
    assert models == {"other", "gpt-4o"}
    assert sum(p.value for p in points if p.attributes["model"] == "other") >= len(invented)
    assert {p.attributes["team"] for p in points} == {DEFAULT_TEAM}
    exported = json.dumps([payload.json for payload in otlp.payloads if "resourceMetrics" in payload.json])
    assert not [model for model in invented if model in exported]


def test_refused_requests_count_under_bounded_dimensions(
    org_data_plane: RunningDataPlane, quiet_otlp: OtlpRecorder
) -> None:
    otlp = quiet_otlp
    for provider in ("mistral-ai", f"x-{uuid.uuid4().hex}", "OPENAI\u00e9"):
        chat(org_data_plane.base_url, {"x-portkey-provider": provider, **CLIENT})
    request(f"{org_data_plane.base_url}/v1/{uuid.uuid4().hex}", CHAT_BODY, CLIENT)
    assert otlp.wait_for_metric("Requests", timeout=10)
    time.sleep(1.5)
    points = [p for p in otlp.metric_points() if p.name == "Requests"]
    assert {(p.attributes["provider"], p.attributes["model"]) for p in points} <= {("none", "none"), ("none", "other")}


# -- refusals never expose internals -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {"x-portkey-config": '{"targets":[{"provider":{"nested":{"table":1}}}]}'},
        {"x-portkey-config": '{"targets":[{"provider":["openai"]}]}'},
        {"x-portkey-config": '{"strategy":{"mode":"fallback"},"targets":[[[[]]]],"custom_host":{}}'},
        {"x-portkey-provider": "openai", "anthropic-beta": "files-api-2025-04-14"},
    ],
)
def test_refusals_never_print_an_internal(org_data_plane: RunningDataPlane, headers: dict[str, str]) -> None:
    response = request(f"{org_data_plane.base_url}/v1/chat/completions", CHAT_BODY, {**CLIENT, **headers})
    assert response.status == 403
    assert not INTERNALS.search(response.body.decode()), response.body


@pytest.mark.parametrize("model", [{"id": "gpt-4o"}, ["gpt-4o"], 7, None])
def test_a_model_that_is_not_a_string_is_refused_without_internals(
    org_data_plane: RunningDataPlane, model: object
) -> None:
    body = {**CHAT_BODY, "model": model}
    response = request(
        f"{org_data_plane.base_url}/v1/chat/completions", body, {"x-portkey-provider": "openai", **CLIENT}
    )
    assert response.status == 400 and response.json()["error"]["rule"] == "model"
    assert not INTERNALS.search(response.body.decode())


# -- header count --------------------------------------------------------------------------------------------
def test_more_headers_than_inspected_are_refused(org_data_plane: RunningDataPlane, harness: GatewayHarness) -> None:
    # A repeated security header placed after 100 others would go unseen.
    body = json.dumps(CHAT_BODY).encode()
    headers = [("content-type", "application/json"), ("x-portkey-provider", "openai"), *CLIENT.items()]
    headers += [(f"x-filler-{i}", str(i)) for i in range(100)]
    headers += [("x-portkey-provider", "anthropic"), ("content-length", str(len(body)))]
    connection = http.client.HTTPConnection("127.0.0.1", org_data_plane.port, timeout=20)
    try:
        connection.putrequest("POST", "/v1/chat/completions")
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        assert response.status == 431
        assert json.loads(response.read())["error"]["rule"] == "header-count"
    finally:
        connection.close()
    assert harness.interception.outbound() == []


def send_with_headers(data_plane: RunningDataPlane, headers: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
    """A chat request with exactly these headers (plus Host, which http.client adds; no Accept-Encoding)."""
    body = json.dumps(CHAT_BODY).encode()
    connection = http.client.HTTPConnection("127.0.0.1", data_plane.port, timeout=20)
    try:
        connection.putrequest("POST", "/v1/chat/completions", skip_accept_encoding=True)
        for name, value in [*headers, ("content-length", str(len(body)))]:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_a_hundred_headers_pass_and_one_more_is_refused(org_data_plane: RunningDataPlane) -> None:
    # Host, Content-Length, Content-Type, Authorization and x-portkey-provider, then fillers.
    base = [("content-type", "application/json"), ("x-portkey-provider", "openai"), *CLIENT.items()]
    assert send_with_headers(org_data_plane, base + [(f"x-filler-{i}", "v") for i in range(95)])[0] == 200
    status, answer = send_with_headers(org_data_plane, base + [(f"x-filler-{i}", "v") for i in range(96)])
    assert (status, answer["error"]["rule"]) == (431, "header-count")


@pytest.mark.parametrize(
    ("name", "values"),
    [("x-portkey-metadata", ('{"a":"1"}', '{"a":"2"}')), ("x-amzn-trace-id", ("Root=1-a", "Root=1-b")),
     ("accept", ("application/json", "text/event-stream")), ("anthropic-version", ("2023-06-01", "2023-01-01")),
     ("x-portkey-provider", ("openai", "openai"))],
)  # fmt: skip
def test_a_header_it_reads_or_forwards_may_appear_only_once(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, name: str, values: tuple[str, str]
) -> None:
    # nginx forwards the first copy, a check could read another.
    headers = [("content-type", "application/json"), *CLIENT.items(), *((name, value) for value in values)]
    if name != "x-portkey-provider":
        headers.append(("x-portkey-provider", "openai"))
    status, answer = send_with_headers(org_data_plane, headers)
    assert (status, answer["error"]["rule"]) == (400, "header")
    assert harness.interception.outbound() == []


def test_a_request_with_ordinary_sdk_headers_passes(org_data_plane: RunningDataPlane) -> None:
    # The OpenAI SDK sends about 15 headers; the ALB adds X-Forwarded-* and X-Amzn-Trace-Id.
    names = ("lang", "package-version", "os", "arch", "runtime", "runtime-version", "retry-count", "read-timeout")
    sdk = {f"x-stainless-{name}": "v" for name in names}
    alb = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https", "x-forwarded-port": "443"}
    assert chat(org_data_plane.base_url, {"x-portkey-provider": "openai", **CLIENT, **sdk, **alb}).status == 200


# -- stored objects and remote tools -------------------------------------------------------------------------
@pytest.mark.parametrize("header", ["anthropic-beta", "x-portkey-anthropic-beta"])
@pytest.mark.parametrize("beta", ["files-api-2025-04-14", "code-execution-2025-05-22", "code-execution-2025-08-25",
                                  "mcp-client-2025-04-04", "web-fetch-2025-09-10", "skills-2025-10-02",
                                  "prompt-caching-2024-07-31,files-api-2025-04-14"])  # fmt: skip
def test_anthropic_betas_that_reach_stored_objects_or_hosts_are_refused(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, header: str, beta: str
) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    response = request(f"{org_data_plane.base_url}/v1/messages", body,
                       {"x-portkey-provider": "anthropic", header: beta, **CLIENT})  # fmt: skip
    assert response.status == 403 and response.json()["error"]["rule"] == "anthropic-beta"
    assert harness.interception.outbound() == []


# Each beta a client may ask for, with why it reaches neither another team's data nor a host the request names.
# A beta added to the policy without a line here fails the test below.
REVIEWED_BETAS = {
    "prompt-caching-2024-07-31": "caches the request's own prompt",
    "pdfs-2024-09-25": "documents sent inline in the request",
    "token-efficient-tools-2025-02-19": "encoding of the request's own tools",
    "output-128k-2025-02-19": "a longer answer",
    "interleaved-thinking-2025-05-14": "answer shape",
    "fine-grained-tool-streaming-2025-05-14": "answer shape",
    "extended-cache-ttl-2025-04-11": "caches the request's own prompt longer",
    "context-1m-2025-08-07": "a longer context",
    "computer-use-2024-10-22": "tools the client runs itself",
    "computer-use-2025-01-24": "tools the client runs itself",
}


def test_every_offered_anthropic_beta_was_reviewed() -> None:
    assert set(ANTHROPIC_BETAS) == set(REVIEWED_BETAS), set(ANTHROPIC_BETAS) ^ set(REVIEWED_BETAS)


def test_an_offered_anthropic_beta_reaches_anthropic(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-portkey-provider": "anthropic", "anthropic-beta": "prompt-caching-2024-07-31", **CLIENT}
    assert request(f"{org_data_plane.base_url}/v1/messages", body, headers).status == 200
    (received,) = mocks["anthropic"].requests
    assert received.headers.get("anthropic-beta") == "prompt-caching-2024-07-31"


@pytest.mark.parametrize(
    ("route", "provider", "extra", "rule"),
    [
        ("/v1/messages", "anthropic", {"container": "container_011CQ"}, "stored-object"),
        ("/v1/messages", "anthropic", {"container": {"skills": [{"type": "custom", "skill_id": "sk_1"}]}},
         "stored-object"),
        ("/v1/responses", "openai", {"tools": [{"type": "code_interpreter", "container": "cntr_other_team"}]},
         "stored-object"),
        ("/v1/responses", "openai", {"tools": [{"type": "mcp", "server_label": "x",
                                                "server_url": "https://attacker.example"}]}, "remote-tool"),
        ("/v1/messages", "anthropic", {"mcp_servers": [{"type": "url", "url": "https://attacker.example",
                                                        "name": "x"}]}, "remote-tool"),
    ],
)  # fmt: skip
def test_containers_skills_and_remote_tools_are_refused(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, route: str, provider: str,
    extra: dict[str, object], rule: str,
) -> None:  # fmt: skip
    body = {"model": "claude-sonnet-4-5" if provider == "anthropic" else "gpt-4o", "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}], "input": "hi", **extra}  # fmt: skip
    response = request(f"{org_data_plane.base_url}{route}", body, {"x-portkey-provider": provider, **CLIENT})
    assert response.status == 403 and response.json()["error"]["rule"] == rule
    assert harness.interception.outbound() == []


# -- relayed answers never carry a credential the data plane holds -------------------------------------------
@pytest.mark.parametrize(("provider", "key"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")])
@pytest.mark.parametrize("status", [400, 401, 500])
def test_a_provider_error_that_echoes_the_org_key_reaches_the_client_masked(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, mocks: dict[str, MockProvider],
    provider: str, key: str, status: int,
) -> None:  # fmt: skip
    mocks[provider].error_status = status
    mocks[provider].error_message = f"Incorrect API key provided: {ORG_KEYS[key]}. Check it."
    response = chat(org_data_plane.base_url, {"x-portkey-provider": provider, **CLIENT})
    assert mocks[provider].api_keys() == [ORG_KEYS[key]]  # the key did reach the provider
    assert response.status == status
    assert "*" * len(ORG_KEYS[key]) in response.body.decode()
    assert_no_org_key_leaves_its_provider(harness, response.body, json.dumps(response.headers))


def test_a_stream_that_carries_the_org_key_reaches_the_client_masked(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    # The mock streams its text a word at a time: the key arrives in its own event.
    mocks["openai"].reply_text = f"leaking {ORG_KEYS['OPENAI_API_KEY']} here"
    response = chat(org_data_plane.base_url, {"x-portkey-provider": "openai", **CLIENT}, stream=True)
    assert response.status == 200 and b"data:" in response.body
    assert ORG_KEYS["OPENAI_API_KEY"].encode() not in response.body
    assert b"*" * len(ORG_KEYS["OPENAI_API_KEY"]) in response.body


def test_a_response_header_that_carries_the_org_key_is_dropped(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    mocks["openai"].extra_headers = {"x-request-echo": f"key={ORG_KEYS['OPENAI_API_KEY']}", "x-kept": "yes"}
    response = chat(org_data_plane.base_url, {"x-portkey-provider": "openai", **CLIENT})
    assert response.status == 200
    assert ORG_KEYS["OPENAI_API_KEY"] not in json.dumps(response.headers)


def test_a_credential_in_a_response_header_after_a_hundred_others_is_dropped(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    # Response headers are read whole: a limit of 100 would leave the last ones unchecked.
    mocks["openai"].extra_headers = {**{f"x-pad-{i:03d}": "v" for i in range(120)},
                                     "x-zz-echo": ORG_KEYS["OPENAI_API_KEY"]}  # fmt: skip
    answer = send_raw(org_data_plane, raw_chat(), half_close=False)  # http.client takes 100 headers
    assert answer.startswith(b"HTTP/1.1 200") and b"x-pad-119" in answer.lower(), answer[:200]
    assert ORG_KEYS["OPENAI_API_KEY"].encode() not in answer


def test_a_key_split_across_reads_is_masked(org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]) -> None:
    # 4,000 copies span many of nginx's reads: some copies are cut between two.
    key = ORG_KEYS["OPENAI_API_KEY"]
    mocks["openai"].error_status = 400
    mocks["openai"].error_message = (key + " ") * 4000
    text = chat(org_data_plane.base_url, {"x-portkey-provider": "openai", **CLIENT}).body.decode()
    assert key not in text and text.count("*" * len(key)) == 4000


def test_the_task_roles_secrets_echoed_by_bedrock_are_masked(
    org_data_plane: RunningDataPlane, credentials: CredentialsEndpoint, mocks: dict[str, MockProvider]
) -> None:
    # Earlier tests rotate the task role's credentials, so the two workers may hold different sets: Bedrock
    # echoes the set it was called with, so only an answer to the worker whose set it echoes counts.
    by_token = {c.session_token: c for c in credentials.issued}
    chat(org_data_plane.base_url, {"x-portkey-provider": "bedrock", **CLIENT}, model=BEDROCK_MODEL)
    for _ in range(20):
        used = by_token[str(mocks["bedrock"].session_tokens[-1])]
        mocks["bedrock"].reply_text = f"echo {used.secret_access_key} {used.session_token}"
        response = chat(org_data_plane.base_url, {"x-portkey-provider": "bedrock", **CLIENT}, model=BEDROCK_MODEL)
        if mocks["bedrock"].session_tokens[-1] == used.session_token:
            break
    else:
        pytest.fail("no worker answered twice in a row")
    text = response.body.decode()
    assert response.status == 200 and "echo " + "*" * len(used.secret_access_key) in text, text[:300]
    assert used.secret_access_key not in text and used.session_token not in text


# -- what reaches the provider: no client token, no query string, no provider header of the client's ---------
def test_a_client_config_never_carries_the_clients_token_to_the_provider(
    org_data_plane: RunningDataPlane, harness: GatewayHarness
) -> None:
    # On a proxied route the gateway copies every header it does not know onto the provider's request.
    config = json.dumps({"provider": "openai", "api_key": "sk-client-own"})
    for route, body in (("/v1/moderations", {"input": "hi"}), ("/v1/chat/completions", CHAT_BODY)):
        response = request(f"{org_data_plane.base_url}{route}", body, {"x-portkey-config": config, **CLIENT})
        assert response.status == 200, response.body
    outbound = harness.interception.outbound()
    assert len(outbound) == 2 and CLIENT_JWT not in json.dumps(outbound)


def test_no_query_string_reaches_the_provider(org_data_plane: RunningDataPlane, harness: GatewayHarness) -> None:
    response = request(f"{org_data_plane.base_url}/v1/moderations?limit=100&after=x&key=y", {"input": "hi"},
                       {"x-portkey-provider": "openai", **CLIENT})  # fmt: skip
    assert response.status == 200, response.body
    assert [event["url"] for event in harness.interception.outbound()] == ["https://api.openai.com/v1/moderations"]


# Headers a provider acts on (the organisation or project a key acts for, features, routing).
PROVIDER_HEADERS = {
    "openai-organization": "org-attacker", "openai-project": "proj-attacker", "openai-beta": "assistants=v2",
    "x-stainless-helper": "1", "anthropic-dangerous-direct-browser-access": "true", "x-goog-user-project": "p",
    "x-goog-api-key": "k", "api-key": "k", "x-ms-client-request-id": "1", "x-amz-security-token": "t",
    "x-smuggled": "1",
}  # fmt: skip


def test_provider_headers_of_the_client_never_reach_the_provider(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    response = request(f"{org_data_plane.base_url}/v1/moderations", {"input": "hi"},
                       {"x-portkey-provider": "openai", **PROVIDER_HEADERS, **CLIENT})  # fmt: skip
    assert response.status == 200, response.body
    (received,) = mocks["openai"].requests
    assert not set(PROVIDER_HEADERS) & set(received.headers), received.headers


# -- the header allow-list, held against the headers the gateway's own build reads ---------------------------
# What the data plane sets itself (never the client's value), and the client headers it forwards, each with why
# the gateway may see it. A header added to the allow-list without a line here fails the test below.
SET_BY_THE_DATA_PLANE = {
    "authorization", "x-api-key", "x-portkey-provider", "x-portkey-config", "x-portkey-azure-resource-name",
    "x-portkey-azure-deployment-id", "x-portkey-azure-api-version", "x-portkey-aws-access-key-id",
    "x-portkey-aws-secret-access-key", "x-portkey-aws-session-token", "x-portkey-aws-region",
}  # fmt: skip
REVIEWED_CLIENT_HEADERS = {
    "content-type": "the body's media type, checked per route",
    "accept": "content negotiation only",
    "x-portkey-trace-id": "labels the gateway's own logs",
    "x-portkey-metadata": "labels the gateway's own logs",
    "x-portkey-retry-count": "retries the same target with the same key",
    "x-portkey-request-timeout": "a timeout, no target",
    "x-portkey-strict-open-ai-compliance": "response shape only",
    "x-portkey-anthropic-version": "API version of the fixed Anthropic host",
    "x-portkey-anthropic-beta": "checked against the allowed betas",
    "anthropic-version": "API version of the fixed Anthropic host",
    "anthropic-beta": "checked against the allowed betas",
    "x-amzn-trace-id": "the load balancer's trace id",
}


def gateway_headers() -> set[str]:
    """Every request header name the gateway 1.15.2 build reads (its x-portkey-* family spelled as
    `x-${POWERED_BY}-…`, and the provider headers it names)."""
    build = GATEWAY_SERVER.read_text(encoding="utf-8")
    family = {f"x-portkey-{name}" for name in re.findall(r"`x-\$\{[a-zA-Z_$]+\}-([a-z0-9-]+)`", build)}
    named = set(re.findall(r"[\"'](x-portkey-[a-z0-9-]+|x-api-key|api-key|anthropic-[a-z-]+)[\"']", build))
    return family | named


@pytest.fixture(scope="module")
def recording_gateway() -> Iterator[EchoSink]:
    """Stands where the gateway is and records what reaches it."""
    with EchoSink() as sink:
        yield sink


CONTAINER_TOKEN = "container-token-" + uuid.uuid4().hex  # AWS_CONTAINER_AUTHORIZATION_TOKEN


@pytest.fixture(scope="module")
def recorder_credentials() -> Iterator[CredentialsEndpoint]:
    """A credentials endpoint of its own, answering only with the container's token."""
    endpoint = CredentialsEndpoint()
    endpoint.required_token = CONTAINER_TOKEN
    endpoint.start()
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="module")
def data_plane_before_recorder(
    org_task: TaskDefinition,
    recording_gateway: EchoSink,
    recorder_credentials: CredentialsEndpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningDataPlane]:
    """The org-keys data plane with the task role's credentials endpoint (and the token the SDKs send with a
    full URI), in front of a recorder instead of the gateway."""
    home = tmp_path_factory.mktemp("recorded") / "data-plane"
    process, port = start_data_plane_process(
        org_task, ORG_KEYS, home, recording_gateway.port, references=REFERENCES,
        credentials_uri=recorder_credentials.full_uri, credentials_token=CONTAINER_TOKEN,
    )  # fmt: skip
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/health", process, "the data plane", home / "stderr.log")
        yield RunningDataPlane(port, home, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_build_still_names_the_headers_this_test_reads() -> None:
    # Guards the extraction below: if the gateway's spelling changes, this fails rather than passing vacuously.
    headers = gateway_headers()
    assert {"x-portkey-custom-host", "x-portkey-forward-headers", "x-portkey-aws-role-arn", "x-portkey-provider",
            "x-portkey-azure-resource-name", "x-portkey-vertex-region", "x-api-key"} <= headers  # fmt: skip
    assert len(headers) > 60


def test_only_reviewed_headers_reach_the_gateway(
    data_plane_before_recorder: RunningDataPlane, recording_gateway: EchoSink
) -> None:
    marker = "client-chose-this"
    # In two requests: together they are more headers than a request may carry.
    for names in (gateway_headers() | set(REVIEWED_CLIENT_HEADERS) | SET_BY_THE_DATA_PLANE, set(PROVIDER_HEADERS)):
        sent = dict.fromkeys(names, marker)
        sent.update({"content-type": "application/json", "x-portkey-provider": "openai", **CLIENT,
                     "anthropic-beta": "prompt-caching-2024-07-31",
                     "x-portkey-anthropic-beta": "prompt-caching-2024-07-31", "x-portkey-config": ""})  # fmt: skip
        recording_gateway.clear()
        response = request(f"{data_plane_before_recorder.base_url}/v1/chat/completions", CHAT_BODY, sent)
        assert response.status == 200, response.body
        (received,) = recording_gateway.requests
        arrived = set(received.headers) - {"host", "content-length", "connection"}
        assert arrived <= set(REVIEWED_CLIENT_HEADERS) | SET_BY_THE_DATA_PLANE, sorted(
            arrived - set(REVIEWED_CLIENT_HEADERS) - SET_BY_THE_DATA_PLANE
        )
        for name in SET_BY_THE_DATA_PLANE & arrived:
            assert marker not in received.headers[name], name
    assert set(FORWARDED_HEADERS) <= set(REVIEWED_CLIENT_HEADERS)


def aws_headers(received: RecordedRequest) -> dict[str, str]:
    return {name: value for name, value in received.headers.items() if name.startswith("x-portkey-aws-") and value}


def test_the_task_roles_credentials_reach_the_gateway_only_for_bedrock(
    data_plane_before_recorder: RunningDataPlane, recording_gateway: EchoSink, recorder_credentials: CredentialsEndpoint
) -> None:
    recording_gateway.clear()
    url = f"{data_plane_before_recorder.base_url}/v1/chat/completions"
    assert request(url, CHAT_BODY, {"x-portkey-provider": "openai", **CLIENT}).status == 200
    bedrock = {**CHAT_BODY, "model": BEDROCK_MODEL}
    assert request(url, bedrock, {"x-portkey-provider": "bedrock", **CLIENT}).status == 200
    to_openai, to_bedrock = recording_gateway.requests
    assert aws_headers(to_openai) == {}
    assert aws_headers(to_bedrock)["x-portkey-aws-session-token"] == recorder_credentials.current.session_token


def test_the_credentials_endpoint_is_called_with_the_containers_token(
    data_plane_before_recorder: RunningDataPlane, recorder_credentials: CredentialsEndpoint
) -> None:
    # The endpoint answers 401 without the token: Bedrock would then be refused with 503.
    bedrock = {**CHAT_BODY, "model": BEDROCK_MODEL}
    for _ in range(4):
        response = request(f"{data_plane_before_recorder.base_url}/v1/chat/completions", bedrock,
                           {"x-portkey-provider": "bedrock", **CLIENT})  # fmt: skip
        assert response.status == 200, response.body
    assert recorder_credentials.requests
    assert {r.headers.get("authorization") for r in recorder_credentials.requests} == {CONTAINER_TOKEN}


def test_a_client_config_reaches_the_gateway_without_the_clients_token(
    data_plane_before_recorder: RunningDataPlane, recording_gateway: EchoSink
) -> None:
    recording_gateway.clear()
    config = json.dumps({"provider": "openai", "api_key": "sk-client-own"})
    request(f"{data_plane_before_recorder.base_url}/v1/chat/completions", CHAT_BODY,
            {"x-portkey-config": config, **CLIENT})  # fmt: skip
    (received,) = recording_gateway.requests
    assert not received.headers.get("authorization") and not received.headers.get("x-api-key"), received.headers
    assert CLIENT_JWT not in json.dumps(received.headers)


def test_a_credential_in_any_copy_of_a_repeated_response_header_is_dropped(
    data_plane_before_recorder: RunningDataPlane, recording_gateway: EchoSink
) -> None:
    key = ORG_KEYS["OPENAI_API_KEY"]
    recording_gateway.extra_header_lines = [("x-echo", "harmless"), ("x-echo", f"key={key}")]
    try:
        answer = send_raw(data_plane_before_recorder, raw_chat(), half_close=False)
    finally:
        recording_gateway.extra_header_lines = []
    head = answer.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 200") and key.encode() not in head, head


def test_nginx_directives_in_an_answer_are_ignored_and_never_relayed(
    data_plane_before_recorder: RunningDataPlane, recording_gateway: EchoSink
) -> None:
    directives = {"X-Accel-Redirect": "/_aigw/credentials", "X-Accel-Buffering": "yes", "X-Accel-Expires": "60",
                  "X-Accel-Limit-Rate": "1", "X-Accel-Charset": "koi8-r"}  # fmt: skip
    recording_gateway.extra_headers = directives
    try:
        response = request(f"{data_plane_before_recorder.base_url}/v1/chat/completions", CHAT_BODY,
                           {"x-portkey-provider": "openai", **CLIENT})  # fmt: skip
    finally:
        recording_gateway.extra_headers = {}
    assert response.status == 200 and b"echo POST" in response.body
    assert not {name.lower() for name in directives} & {name.lower() for name in response.headers}


@pytest.mark.parametrize("option", ["12abc", "-1", "99999", "1 2", "0x1"])
def test_an_option_index_is_logged_only_as_digits(
    data_plane_before_recorder: RunningDataPlane, recording_gateway: EchoSink, option: str
) -> None:
    trace = new_trace()
    recording_gateway.extra_headers = {"x-portkey-last-used-option-index": option}
    try:
        request(f"{data_plane_before_recorder.base_url}/v1/chat/completions", CHAT_BODY,
                {"x-portkey-provider": "openai", "x-amzn-trace-id": trace, **CLIENT})  # fmt: skip
    finally:
        recording_gateway.extra_headers = {}
    assert data_plane_before_recorder.access_line(trace)["option"] in ("", None)


def test_nginx_directives_in_an_answer_never_steer_nginx(org_task: TaskDefinition) -> None:
    # nginx hides X-Accel-* from clients by itself, but acts on them unless told to ignore them: an
    # X-Accel-Buffering: yes would buffer every stream, an X-Accel-Redirect reach an internal location.
    server = org_task.bundle()["server.conf"]
    names = {"X-Accel-Redirect", "X-Accel-Buffering", "X-Accel-Expires", "X-Accel-Limit-Rate", "X-Accel-Charset"}
    proxied = re.findall(r"^\s*proxy_pass ", server, re.M)
    ignored = re.findall(r"^\s*proxy_ignore_headers ([^;]+);", server, re.M)
    # Every location that proxies to the gateway (the credentials one proxies to ECS's endpoint).
    assert len(ignored) == len(proxied) - 1 and len(ignored) >= 2
    for line in ignored:
        assert names <= set(line.split()), line


# -- the internal locations, as rendered ---------------------------------------------------------------------
def location_block(config: str, name: str) -> str:
    start = config.index(f"location = {name} {{")
    return config[start : config.index("\n    }", start)]


def test_the_credentials_location_is_internal_and_only_for_the_lua_subrequest(org_task: TaskDefinition) -> None:
    # Two layers, each hiding the other's loss from a request test: neither may go.
    block = location_block(org_task.bundle()["server.conf"], "/_aigw/credentials")
    assert re.search(r"^\s*internal;$", block, re.M)
    assert re.search(r"if not ngx\.is_subrequest then\s+return ngx\.exit\(404\)", block)


# -- body checks whatever nginx did with the body ------------------------------------------------------------
@pytest.mark.parametrize(
    ("provider", "field", "rule", "status"),
    [("openai", {"previous_response_id": "resp_other_team"}, "stored-object", 403),
     ("google", {"model": "../../v1beta/files"}, "model", 400),
     ("openai", {"metadata": {"x": {"file_id": "file-org"}}}, "stored-object", 403)],
)  # fmt: skip
def test_a_body_nginx_keeps_in_a_file_is_checked_like_one_in_memory(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, provider: str, field: dict[str, object], rule: str,
    status: int,
) -> None:  # fmt: skip
    # Over client_body_buffer_size (1 MiB) and under the 50 MiB limit: nginx writes the body to a temp file.
    padding = "x" * (2 * 1024 * 1024)
    route = "/v1/responses" if "previous_response_id" in field else "/v1/chat/completions"
    body = {**CHAT_BODY, "input": "hi", "padding": padding, **field}
    response = request(f"{org_data_plane.base_url}{route}", body, {"x-portkey-provider": provider, **CLIENT})
    assert response.status == status and response.json()["error"]["rule"] == rule
    assert harness.interception.outbound() == []


def test_a_large_clean_body_reaches_the_provider(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    body = {**CHAT_BODY, "messages": [{"role": "user", "content": "y" * (3 * 1024 * 1024)}]}
    assert request(f"{org_data_plane.base_url}/v1/chat/completions", body,
                   {"x-portkey-provider": "openai", **CLIENT}).status == 200  # fmt: skip
    assert len(mocks["openai"].requests[0].body) > 3 * 1024 * 1024


def send_chunked(data_plane: RunningDataPlane, route: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """A POST with Transfer-Encoding: chunked (no Content-Length), in 4 KiB chunks."""
    connection = http.client.HTTPConnection("127.0.0.1", data_plane.port, timeout=30)
    try:
        connection.putrequest("POST", route)
        for name, value in {"content-type": "application/json", "transfer-encoding": "chunked", **headers}.items():
            connection.putheader(name, value)
        connection.endheaders()
        for start in range(0, len(body), 4096):
            piece = body[start : start + 4096]
            connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


@pytest.mark.parametrize("padding", [0, 2 * 1024 * 1024], ids=["in-memory", "in-a-file"])
def test_a_chunked_body_is_checked_like_any_other(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, padding: int
) -> None:
    body = {"model": "gpt-4o", "input": "hi", "pad": "x" * padding, "previous_response_id": "resp_other_team"}
    status, answer = send_chunked(org_data_plane, "/v1/responses", json.dumps(body).encode(),
                                  {"x-portkey-provider": "openai", **CLIENT})  # fmt: skip
    assert (status, answer["error"]["rule"]) == (403, "stored-object")
    assert harness.interception.outbound() == []


def test_a_clean_chunked_body_reaches_the_provider(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    status, _ = send_chunked(org_data_plane, "/v1/chat/completions", json.dumps(CHAT_BODY).encode(),
                             {"x-portkey-provider": "openai", **CLIENT})  # fmt: skip
    assert status == 200 and len(mocks["openai"].requests) == 1


# -- identity from the validated token only ------------------------------------------------------------------
def jwt_for(client_id: str) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'client_id': client_id})}.c2ln"


IDENTITY_HEADERS = {
    "x-client-id": "attackerclient", "client-id": "attackerclient", "client_id": "attackerclient",
    "x-portkey-client-id": "attackerclient", "x-amzn-oidc-identity": "attackerclient",
    "x-amzn-oidc-data": jwt_for("attackerclient"), "x-amzn-oidc-accesstoken": jwt_for("attackerclient"),
    "x-forwarded-user": "attackerclient", "x-team": "billing", "x-aigw-team": "billing",
    "x-portkey-metadata": json.dumps({"client_id": "attackerclient", "team": "billing", "_user": "x"}),
}  # fmt: skip


def test_the_client_and_team_come_from_the_token_never_from_another_header(org_data_plane: RunningDataPlane) -> None:
    trace = new_trace()
    headers = {"x-portkey-provider": "openai", "x-amzn-trace-id": trace, **IDENTITY_HEADERS, **CLIENT}
    response = chat(org_data_plane.base_url, headers)
    assert response.status == 200
    line = org_data_plane.access_line(trace)
    assert (line["client_id"], line["team"]) == (CLIENT_ID, DEFAULT_TEAM)


AUTHORIZATION_LIKE = (
    "x-forwarded-authorization", "proxy-authorization", "x-authorization", "x-original-authorization",
    "authentication", "x-auth-token", "x-access-token", "x-jwt-assertion", "x-forwarded-access-token", "x-id-token",
    "x-amzn-oidc-accesstoken", "x-portkey-api-key", "x-api-key",
)  # fmt: skip


def test_identity_comes_from_authorization_and_no_header_like_it(org_data_plane: RunningDataPlane) -> None:
    trace = new_trace()
    other = f"Bearer {jwt_for('attackerclient')}"
    headers = {"x-portkey-provider": "openai", "x-amzn-trace-id": trace, **dict.fromkeys(AUTHORIZATION_LIKE, other)}
    assert chat(org_data_plane.base_url, {**headers, **CLIENT}).status == 200
    assert org_data_plane.access_line(trace)["client_id"] == CLIENT_ID


def test_identity_headers_without_the_token_are_refused(
    org_data_plane: RunningDataPlane, harness: GatewayHarness
) -> None:
    response = chat(org_data_plane.base_url, {"x-portkey-provider": "openai", **IDENTITY_HEADERS})
    assert response.status == 401 and response.json()["error"]["rule"] == "identity"
    assert harness.interception.outbound() == []


def test_a_token_of_another_client_is_refused_and_logged_with_that_client_and_no_team(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    # The load balancer admits only the stack's clients; one that reached a task anyway goes no further.
    trace = new_trace()
    headers = {"x-portkey-provider": "openai", "x-amzn-trace-id": trace,
               "Authorization": f"Bearer {jwt_for('9zz9otherclient')}"}  # fmt: skip
    response = chat(org_data_plane.base_url, headers)
    assert response.status == 403 and response.json()["error"]["rule"] == "identity"
    assert mocks["openai"].requests == []
    assert (org_data_plane.access_line(trace)["client_id"], org_data_plane.access_line(trace)["team"]) == (
        "9zz9otherclient", "")  # fmt: skip


def test_identity_is_never_read_from_a_header_by_the_lua(org_task: TaskDefinition) -> None:
    # The identity module reads the Authorization header the handler gives it, and nothing else.
    identity = org_task.bundle()["lua/aigw/identity.lua"]
    assert "ngx.var" not in identity and "get_headers" not in identity and "http_" not in identity
    handler = org_task.bundle()["lua/aigw/handler.lua"]
    assert re.findall(r"identity\.resolve\(([^,]*),", handler) == ['ctx.headers["authorization"]']


# -- the access log ------------------------------------------------------------------------------------------
def test_quotes_and_backslashes_of_a_client_keep_the_log_line_json(org_data_plane: RunningDataPlane) -> None:
    before = len(org_data_plane.access_lines())
    send_raw(org_data_plane, b"POST /v1/x%22%5C HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    lines = wait_for_lines(org_data_plane, before + 1)
    assert lines[-1]["path"] == '/v1/x"\\'
