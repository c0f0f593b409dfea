"""The programmable data plane (OpenResty; config/data-plane/aigw_dataplane.lua),
proven against the real gateway with a synthesized task definition (JWT auth
on, every org key: tests/scenarios.py "org-keys"): team
identity, Bedrock signed with the task role, token usage per request, spans
and metrics, and the JSON body rules. Loopback only; the credentials endpoint,
Bedrock and the collector are recording mocks (tests/aws_mocks.py)."""

from __future__ import annotations

import base64
import http.client
import json
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from aigw.data_plane.contract import CREDENTIALS_REFRESH_SECONDS
from aigw.settings.clients import DEFAULT_TEAM
from tests.aws_mocks import BedrockRuntimeMock, CredentialsEndpoint, OtlpRecorder
from tests.gateway_fixtures import CLIENT, CLIENT_ID, CLIENT_JWT, ORG_KEYS
from tests.gateway_harness import GatewayHarness, Response, RunningDataPlane, chat, request
from tests.mock_providers import MockProvider

pytestmark = pytest.mark.gateway

ROOT = Path(__file__).resolve().parent.parent
BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def new_trace() -> str:
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"


def token(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"Bearer {part({'alg': 'RS256'})}.{part(claims)}.c2ln"


# -- team identity ------------------------------------------------------------------------
def test_every_access_log_line_names_the_client(org_data_plane: RunningDataPlane) -> None:
    trace = new_trace()
    assert (
        chat(org_data_plane.base_url, {"x-portkey-provider": "openai", "x-amzn-trace-id": trace, **CLIENT}).status
        == 200
    )
    assert org_data_plane.access_line(trace)["client_id"] == CLIENT_ID


def test_refusals_name_the_client_too(org_data_plane: RunningDataPlane) -> None:
    trace = new_trace()
    response = chat(org_data_plane.base_url, {"x-portkey-provider": "mistral-ai", "x-amzn-trace-id": trace, **CLIENT})
    assert response.status == 403
    line = org_data_plane.access_line(trace)
    assert (line["client_id"], line["rule"]) == (CLIENT_ID, "provider")


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer client-own-key", token({"scope": "https://gateway.internal/invoke"}), "Basic dXNlcjpwYXNz"],
)
def test_requests_without_a_validated_token_are_refused(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, authorization: str | None
) -> None:
    headers = {"x-portkey-provider": "openai", **({"Authorization": authorization} if authorization else {})}
    response = chat(org_data_plane.base_url, headers)
    assert response.status == 401 and response.json()["error"]["rule"] == "identity"
    assert harness.interception.outbound() == []


def test_the_token_reaches_no_upstream_and_no_log(org_data_plane: RunningDataPlane, harness: GatewayHarness) -> None:
    assert chat(org_data_plane.base_url, {"x-portkey-provider": "anthropic", **CLIENT}).status == 200
    time.sleep(0.2)
    assert CLIENT_JWT not in json.dumps(harness.interception.outbound())
    assert CLIENT_JWT not in "".join(p.read_text() for p in org_data_plane.home.glob("*.log"))


# -- Bedrock through the task role --------------------------------------------------------------
def test_bedrock_is_signed_with_the_task_roles_credentials(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider], credentials: CredentialsEndpoint
) -> None:
    bedrock = mocks["bedrock"]
    assert isinstance(bedrock, BedrockRuntimeMock)
    response = chat(org_data_plane.base_url, {"x-portkey-provider": "bedrock", **CLIENT}, model=BEDROCK_MODEL)
    assert response.status == 200, response.body
    assert bedrock.verifications == [True]
    assert bedrock.access_keys == [credentials.current.access_key_id]
    assert bedrock.session_tokens == [credentials.current.session_token]


def test_bedrock_streams_signed_with_the_task_role(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    response = chat(
        org_data_plane.base_url, {"x-portkey-provider": "bedrock", **CLIENT}, model=BEDROCK_MODEL, stream=True
    )
    assert response.status == 200 and b"data:" in response.body
    assert isinstance(mocks["bedrock"], BedrockRuntimeMock)
    assert mocks["bedrock"].verifications == [True]


def test_task_role_credentials_are_cached_until_shortly_before_they_expire(
    harness: GatewayHarness, mocks: dict[str, MockProvider], credentials: CredentialsEndpoint
) -> None:
    bedrock = mocks["bedrock"]
    assert isinstance(bedrock, BedrockRuntimeMock)
    # A data plane of its own: no worker has cached anything yet.
    data_plane = harness.start_data_plane(ORG_KEYS, "rotation", credentials_uri=credentials.full_uri)
    # Valid for 3 s past the refresh margin: cached for about 3 s.
    first = credentials.issue(valid_for_seconds=CREDENTIALS_REFRESH_SECONDS + 3)
    credentials.clear()
    headers = {"x-portkey-provider": "bedrock", **CLIENT}
    for _ in range(6):
        assert chat(data_plane.base_url, headers, model=BEDROCK_MODEL).status == 200
    # Each nginx worker fetches once (worker_processes auto: one per core here).
    assert 1 <= len(credentials.requests) <= 2
    assert set(bedrock.access_keys) == {first.access_key_id}
    # The role rotates; the cached set goes stale and is fetched again.
    second = credentials.issue(valid_for_seconds=3600)
    time.sleep(3.5)
    bedrock.clear()
    for _ in range(4):
        assert chat(data_plane.base_url, headers, model=BEDROCK_MODEL).status == 200
    assert set(bedrock.access_keys) == {second.access_key_id}
    assert bedrock.verifications == [True] * 4


def test_without_jwt_auth_nobody_spends_the_task_roles_bedrock_access(
    passthrough_data_plane: RunningDataPlane, harness: GatewayHarness, credentials: CredentialsEndpoint
) -> None:
    credentials.clear()
    headers = {
        "x-portkey-provider": "bedrock",
        "x-portkey-aws-access-key-id": "AKIDCLIENT",
        "Authorization": "Bearer x",
    }
    response = chat(passthrough_data_plane.base_url, headers, model=BEDROCK_MODEL)
    assert response.status == 403 and response.json()["error"]["rule"] == "provider"
    assert harness.interception.outbound() == [] and credentials.requests == []


def test_credentials_never_appear_in_responses_or_logs(
    org_data_plane: RunningDataPlane, credentials: CredentialsEndpoint, mocks: dict[str, MockProvider]
) -> None:
    mocks["bedrock"].error_status = 400
    failing = chat(org_data_plane.base_url, {"x-portkey-provider": "bedrock", **CLIENT}, model=BEDROCK_MODEL)
    mocks["bedrock"].error_status = None
    working = chat(org_data_plane.base_url, {"x-portkey-provider": "bedrock", **CLIENT}, model=BEDROCK_MODEL)
    time.sleep(0.2)
    texts = [
        failing.body.decode(),
        working.body.decode(),
        "".join(p.read_text() for p in org_data_plane.home.glob("*.log")),
    ]
    for issued in credentials.issued:
        for secret in (issued.secret_access_key, issued.session_token):
            assert all(secret not in text for text in texts)


# -- token usage per request ----------------------------------------------------------------------
def test_usage_of_a_completion_is_logged_as_the_client_received_it(org_data_plane: RunningDataPlane) -> None:
    trace = new_trace()
    response = chat(org_data_plane.base_url, {"x-portkey-provider": "openai", "x-amzn-trace-id": trace, **CLIENT})
    usage = response.json()["usage"]
    line = org_data_plane.access_line(trace)
    assert (line["provider"], line["model"], line["status"]) == ("openai", "mock", 200)
    assert (line["input_tokens"], line["output_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])


def test_usage_of_an_anthropic_message_is_logged(org_data_plane: RunningDataPlane) -> None:
    trace = new_trace()
    body = {"model": "claude-haiku", "max_tokens": 32, "messages": [{"role": "user", "content": "hello there"}]}
    headers = {"x-portkey-provider": "anthropic", "x-amzn-trace-id": trace, **CLIENT}
    response = request(f"{org_data_plane.base_url}/v1/messages", body, headers)
    usage = response.json()["usage"]
    line = org_data_plane.access_line(trace)
    assert (line["input_tokens"], line["output_tokens"]) == (usage["input_tokens"], usage["output_tokens"])


def stream_events(response: Response) -> list[dict[str, Any]]:
    lines = response.body.decode().splitlines()
    return [json.loads(line[5:]) for line in lines if line.startswith("data:") and line[5:].strip().startswith("{")]


def test_usage_of_a_stream_comes_from_its_final_usage_chunk(org_data_plane: RunningDataPlane) -> None:
    trace = new_trace()
    headers = {"x-portkey-provider": "openai", "x-amzn-trace-id": trace, **CLIENT}
    response = chat(org_data_plane.base_url, headers, stream=True, stream_options={"include_usage": True})
    (usage,) = [event["usage"] for event in stream_events(response) if event.get("usage")]
    line = org_data_plane.access_line(trace)
    assert (line["input_tokens"], line["output_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])


@pytest.mark.parametrize("stream_options", [None, {"include_usage": False}, {"include_obfuscation": False}])
def test_a_stream_is_always_asked_for_its_usage_and_the_client_gets_the_stream_it_asked_for(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider], stream_options: dict[str, bool] | None
) -> None:
    # A client cannot keep its tokens from being counted by not asking for them.
    trace = new_trace()
    headers = {"x-portkey-provider": "openai", "x-amzn-trace-id": trace, **CLIENT}
    extra = {"stream_options": stream_options} if stream_options is not None else {}
    response = chat(org_data_plane.base_url, headers, stream=True, **extra)
    (received,) = mocks["openai"].requests
    asked = json.loads(received.body)["stream_options"]
    assert asked == {**(stream_options or {}), "include_usage": True}
    # The provider's usage chunk (and the "usage": null of every other chunk) is not what this client
    # asked for: its stream is the chunks of the answer, then [DONE], as without the question.
    text = response.body.decode()
    assert '"usage"' not in text and text.rstrip().endswith("data: [DONE]")
    events = stream_events(response)
    assert events and all(event["choices"] for event in events)
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == mocks["openai"].reply_text
    line = org_data_plane.access_line(trace)
    assert line["input_tokens"] and line["output_tokens"], line


def test_usage_of_a_streamed_anthropic_message_comes_from_start_and_delta_events(
    org_data_plane: RunningDataPlane,
) -> None:
    trace = new_trace()
    body = {"model": "claude-haiku", "max_tokens": 32, "stream": True,
            "messages": [{"role": "user", "content": "hello there"}]}  # fmt: skip
    headers = {"x-portkey-provider": "anthropic", "x-amzn-trace-id": trace, **CLIENT}
    response = request(f"{org_data_plane.base_url}/v1/messages", body, headers)
    events = stream_events(response)
    (start,) = [e for e in events if e.get("type") == "message_start"]
    (delta,) = [e for e in events if e.get("type") == "message_delta"]
    line = org_data_plane.access_line(trace)
    assert line["input_tokens"] == start["message"]["usage"]["input_tokens"]
    assert line["output_tokens"] == delta["usage"]["output_tokens"]


@pytest.mark.parametrize("stream", [False, True])
def test_usage_of_bedrock_normalised_by_the_gateway_is_logged(org_data_plane: RunningDataPlane, stream: bool) -> None:
    trace = new_trace()
    headers = {"x-portkey-provider": "bedrock", "x-amzn-trace-id": trace, **CLIENT}
    response = chat(org_data_plane.base_url, headers, model=BEDROCK_MODEL, stream=stream)
    usage = [e["usage"] for e in stream_events(response) if e.get("usage")][-1] if stream else response.json()["usage"]
    line = org_data_plane.access_line(trace)
    assert (line["provider"], line["model"]) == ("bedrock", BEDROCK_MODEL)
    assert (line["input_tokens"], line["output_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])


# -- body rules ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["../../v1beta/tunedModels/x", "gemini-pro?alt=", "gemini#x", "models/gemini-pro"])
def test_a_google_model_cannot_steer_the_url(
    passthrough_data_plane: RunningDataPlane, harness: GatewayHarness, model: str
) -> None:
    headers = {"x-portkey-provider": "google", "Authorization": "Bearer own-google-key"}
    response = chat(passthrough_data_plane.base_url, headers, model=model)
    assert response.status == 400 and response.json()["error"]["rule"] == "model"
    assert harness.interception.outbound() == []


def test_a_bedrock_model_cannot_steer_the_url(org_data_plane: RunningDataPlane, harness: GatewayHarness) -> None:
    response = chat(org_data_plane.base_url, {"x-portkey-provider": "bedrock", **CLIENT}, model="x/../../guardrail/g")
    assert response.status == 400 and response.json()["error"]["rule"] == "model"
    assert harness.interception.outbound() == []


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/responses", {"model": "gpt-4o", "input": "hi", "previous_response_id": "resp_other_team"}),
        ("/v1/responses", {"model": "gpt-4o", "input": "hi", "conversation": "conv_other_team"}),
        ("/v1/responses", {"model": "gpt-4o", "prompt": {"id": "pmpt_org"}}),
        ("/v1/responses", {"model": "gpt-4o", "input": "hi", "tools": [{"type": "file_search",
                                                                        "vector_store_ids": ["vs_org"]}]}),
        ("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_id": "file-org"}}]}]}),
    ],
)  # fmt: skip
def test_references_to_stored_objects_are_refused(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, route: str, body: dict[str, object]
) -> None:
    response = request(f"{org_data_plane.base_url}{route}", body, {"x-portkey-provider": "openai", **CLIENT})
    assert response.status == 403 and response.json()["error"]["rule"] == "stored-object"
    assert harness.interception.outbound() == []


def test_the_anthropic_beta_body_field_cannot_turn_on_the_files_api(
    org_data_plane: RunningDataPlane, harness: GatewayHarness
) -> None:
    body = {"model": "claude", "max_tokens": 8, "anthropic_beta": "files-api-2025-04-14",
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    response = request(f"{org_data_plane.base_url}/v1/messages", body, {"x-portkey-provider": "anthropic", **CLIENT})
    assert response.status == 403 and response.json()["error"]["rule"] == "stored-object"
    assert harness.interception.outbound() == []


def test_a_body_that_is_not_a_json_object_is_refused(org_data_plane: RunningDataPlane) -> None:
    response = request(
        f"{org_data_plane.base_url}/v1/chat/completions", b"[1,2]", {"x-portkey-provider": "openai", **CLIENT}
    )
    assert response.status == 400 and response.json()["error"]["rule"] == "body"


def test_repeated_provider_headers_are_refused(org_data_plane: RunningDataPlane, harness: GatewayHarness) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", org_data_plane.port, timeout=20)
    try:
        connection.putrequest("POST", "/v1/chat/completions")
        for name, value in (("x-portkey-provider", "openai"), ("x-portkey-provider", "anthropic"),
                            ("authorization", CLIENT["Authorization"]), ("content-type", "application/json"),
                            ("content-length", "2")):  # fmt: skip
            connection.putheader(name, value)
        connection.endheaders(b"{}")
        response = connection.getresponse()
        assert response.status == 400
        assert json.loads(response.read())["error"]["rule"] == "header"
    finally:
        connection.close()
    assert harness.interception.outbound() == []


# -- telemetry -------------------------------------------------------------------------------------
def test_each_request_becomes_one_span_linked_to_the_load_balancers_trace(
    org_data_plane: RunningDataPlane, otlp: OtlpRecorder
) -> None:
    trace = new_trace()
    headers = {"x-portkey-provider": "openai", "x-amzn-trace-id": trace, **CLIENT}
    usage = chat(org_data_plane.base_url, headers).json()["usage"]
    expected_trace_id = trace.split("-", 1)[1].replace("-", "")
    deadline = time.monotonic() + 10
    spans = []
    while not spans and time.monotonic() < deadline:
        spans = [s for s in otlp.spans() if s.trace_id == expected_trace_id]
        time.sleep(0.1)
    (span,) = spans
    assert span.attributes["gen_ai.system"] == "openai"
    assert span.attributes["gen_ai.request.model"] == "mock"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["aigw.client_id"] == CLIENT_ID
    assert span.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert span.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]


def test_request_and_token_counts_reach_the_collector_as_metrics(
    org_data_plane: RunningDataPlane, quiet_otlp: OtlpRecorder
) -> None:
    usage = chat(org_data_plane.base_url, {"x-portkey-provider": "anthropic", **CLIENT}).json()["usage"]
    assert quiet_otlp.wait_for_metric("InputTokens", timeout=10)
    points = {p.name: p for p in quiet_otlp.metric_points() if p.attributes.get("provider") == "anthropic"}
    assert points["Requests"].value == 1
    assert points["InputTokens"].value == usage["prompt_tokens"]
    assert points["OutputTokens"].value == usage["completion_tokens"]
    assert points["Requests"].attributes["team"] == DEFAULT_TEAM  # the team the client id maps to


def test_telemetry_carries_no_prompt_no_key_and_no_token(org_data_plane: RunningDataPlane, otlp: OtlpRecorder) -> None:
    prompt = "a secret prompt " + uuid.uuid4().hex
    body = {"model": "mock", "messages": [{"role": "user", "content": prompt}]}
    assert (
        request(
            f"{org_data_plane.base_url}/v1/chat/completions", body, {"x-portkey-provider": "openai", **CLIENT}
        ).status
        == 200
    )
    assert otlp.wait_for_spans(1, timeout=10)
    time.sleep(1.5)  # the metrics of the same flush
    exported = json.dumps([payload.json for payload in otlp.payloads])
    assert prompt not in exported and CLIENT_JWT not in exported
    assert not any(key in exported for key in ORG_KEYS.values())


def test_the_time_to_first_token_is_the_streams_first_event_not_its_end(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    gate = threading.Event()
    mocks["openai"].stream_gate = gate  # the first event now, the rest when the gate opens
    trace = new_trace()
    url = org_data_plane.base_url.removeprefix("http://")
    connection = http.client.HTTPConnection(url, timeout=30)
    try:
        body = json.dumps({"model": "mock", "stream": True, "messages": [{"role": "user", "content": "hello"}]})
        connection.request("POST", "/v1/chat/completions", body, {
            "content-type": "application/json", "x-portkey-provider": "openai", "x-amzn-trace-id": trace, **CLIENT,
        })  # fmt: skip
        response = connection.getresponse()
        assert response.status == 200
        assert response.read1(65536)  # the first event reached the client: only then may the rest come
        time.sleep(0.5)
        gate.set()
        response.read()
    finally:
        gate.set()
        connection.close()
    line = org_data_plane.access_line(trace)
    assert line["stream"] is True
    # The rest came at least 0.5 s after the client had the first event: the time is the first event's.
    assert line["request_time"] - line["time_to_first_token"] >= 0.5, line
    trace = new_trace()
    assert (
        chat(org_data_plane.base_url, {"x-portkey-provider": "openai", "x-amzn-trace-id": trace, **CLIENT}).status
        == 200
    )
    line = org_data_plane.access_line(trace)
    assert line["stream"] is False and 0 <= line["time_to_first_token"] <= line["request_time"]


def test_a_refused_request_logs_no_stream_and_no_first_token(org_data_plane: RunningDataPlane) -> None:
    trace = new_trace()
    assert (
        chat(org_data_plane.base_url, {"x-portkey-provider": "mistral-ai", "x-amzn-trace-id": trace, **CLIENT}).status
        == 403
    )
    line = org_data_plane.access_line(trace)
    assert (line["stream"], line["time_to_first_token"]) == (None, None)


# -- the log schema ----------------------------------------------------------------------------------
def test_the_documented_access_log_schema_is_the_logged_one(org_data_plane: RunningDataPlane) -> None:
    trace = new_trace()
    assert (
        chat(org_data_plane.base_url, {"x-portkey-provider": "openai", "x-amzn-trace-id": trace, **CLIENT}).status
        == 200
    )
    logged = set(org_data_plane.access_line(trace))
    document = (ROOT / "docs" / "data-plane.md").read_text()
    table = document.split("<!-- access-log schema -->", 2)[1]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE))
    assert documented == logged


# -- found by the independent attack run on the data plane ------------------------------------------
@pytest.mark.parametrize(
    ("route", "content_type", "body"),
    [
        ("/v1/responses", "audio/mpeg", {"model": "gpt-4o", "input": "hi", "previous_response_id": "resp_other_team"}),
        ("/v1/chat/completions", "multipart/form-data; boundary=x", {"model": "gpt-4o", "messages": []}),
        ("/v1/chat/completions", "text/plain", {"model": "gpt-4o", "messages": []}),
        ("/v1/audio/transcriptions", "application/json", {"model": "whisper-1"}),
    ],
)
def test_a_body_the_data_plane_cannot_check_never_reaches_the_gateway(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, route: str, content_type: str, body: dict[str, object]
) -> None:
    # The gateway parses a JSON body whatever the Content-Type says.
    headers = {"x-portkey-provider": "openai", "content-type": content_type, **CLIENT}
    response = request(f"{org_data_plane.base_url}{route}", json.dumps(body).encode(), headers)
    assert response.status == 415 and response.json()["error"]["rule"] == "content-type"
    assert harness.interception.outbound() == []


def test_an_upstream_x_accel_redirect_cannot_reach_the_credentials_location(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider], credentials: CredentialsEndpoint
) -> None:
    mocks["openai"].extra_headers = {"X-Accel-Redirect": "/_aigw/credentials"}
    credentials.clear()
    response = chat(org_data_plane.base_url, {"x-portkey-provider": "openai", **CLIENT})
    assert response.status == 200 and response.json()["choices"]
    assert "x-accel-redirect" not in response.headers
    assert credentials.requests == []
    assert all(c.secret_access_key not in response.body.decode() for c in credentials.issued)


@pytest.mark.parametrize(
    "model",
    ["arn:aws:bedrock:us-east-1:123456789012:prompt/PROMPT12345:1", "arn:aws:bedrock:us-east-1:123:x", "a/b/c",
     "anthropic.claude%2F..%2Fx"],
)  # fmt: skip
def test_bedrock_models_are_model_ids_never_arns_or_paths(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, model: str
) -> None:
    response = chat(org_data_plane.base_url, {"x-portkey-provider": "bedrock", **CLIENT}, model=model)
    assert response.status == 400 and response.json()["error"]["rule"] == "model"
    assert harness.interception.outbound() == []


@pytest.mark.parametrize(
    "extra",
    [
        {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_url": "s3://other-team/payroll.pdf",
                                                                              "mime_type": "application/pdf"}}]}]},
        {"guardrailConfig": {"guardrailIdentifier": "org-guardrail", "guardrailVersion": "1"}},
    ],
)  # fmt: skip
def test_bedrock_cannot_read_s3_or_apply_the_organisations_guardrails(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, extra: dict[str, object]
) -> None:
    body = {"model": BEDROCK_MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}
    response = request(
        f"{org_data_plane.base_url}/v1/chat/completions", body, {"x-portkey-provider": "bedrock", **CLIENT}
    )
    assert response.status == 403 and response.json()["error"]["rule"] == "stored-object"
    assert harness.interception.outbound() == []


def test_a_body_nested_too_deep_to_scan_is_refused(org_data_plane: RunningDataPlane, harness: GatewayHarness) -> None:
    nested: dict[str, object] = {"anthropic_beta": "files-api-2025-04-14"}
    for _ in range(40):
        nested = {"a": nested}
    body = {"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}], "metadata": nested}
    response = request(f"{org_data_plane.base_url}/v1/messages", body, {"x-portkey-provider": "anthropic", **CLIENT})
    assert response.status == 403 and response.json()["error"]["rule"] == "stored-object"
    assert harness.interception.outbound() == []


def test_a_client_supplied_byte_cannot_drop_other_requests_spans(
    org_data_plane: RunningDataPlane, otlp: OtlpRecorder
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", org_data_plane.port, timeout=20)
    try:
        for _ in range(5):
            connection.request("POST", "/v1/x%FF", b"{}", {"content-type": "application/json", **CLIENT})
            connection.getresponse().read()
    finally:
        connection.close()
    trace = new_trace()
    assert (
        chat(org_data_plane.base_url, {"x-portkey-provider": "openai", "x-amzn-trace-id": trace, **CLIENT}).status
        == 200
    )
    expected = trace.split("-", 1)[1].replace("-", "")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not [s for s in otlp.spans() if s.trace_id == expected]:
        time.sleep(0.1)
    assert [s for s in otlp.spans() if s.trace_id == expected]
    # The refused requests' spans name no client-spelled route.
    assert not [s for s in otlp.spans() if "/v1/x" in s.name or "/v1/x" in str(s.attributes.get("http.route"))]


def test_the_task_roles_session_token_goes_only_to_bedrock_runtime(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, credentials: CredentialsEndpoint
) -> None:
    for model in (BEDROCK_MODEL, "us.anthropic.claude-3-5-sonnet-20240620-v1:0"):
        chat(org_data_plane.base_url, {"x-portkey-provider": "bedrock", **CLIENT}, model=model)
    carrying = [e for e in harness.interception.outbound()
                if any(c.session_token in json.dumps(e) for c in credentials.issued)]  # fmt: skip
    assert carrying and {e["host"] for e in carrying} == {"bedrock-runtime.us-east-1.amazonaws.com"}
