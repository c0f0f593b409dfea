"""Attacks on named routes ([routing.<name>], df9c847) by an authenticated but
untrusted client, through the real gateway 1.15.2 (the "routing" scenario of
tests/scenarios.py, fixtures of tests/test_routing.py).

The invariants attacked: an org key or task-role credential reaches only its
own provider's host, never the client or a log; the client selects a
configured route and nothing else (no host, resource, credentials); the body
is checked for every target; and a client cannot make a provider "look
failing" to steer every team's traffic (the skip record)."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from aigw.data_plane.contract import (
    CREDENTIALS_REFRESH_SECONDS,
)
from aigw.settings.routing import RouteSettings
from tests import test_routing
from tests.aws_mocks import BedrockRuntimeMock, CredentialsEndpoint, OtlpRecorder, bedrock_runtime_host
from tests.gateway_fixtures import (
    AZURE_RESOURCE,
    CLIENT,
    CLIENT_JWT,
    ORG_KEYS,
    REGION,
    assert_no_org_key_leaves_its_provider,
    official_hosts,
)
from tests.gateway_harness import GatewayHarness, Response, RunningDataPlane, TaskDefinition, chat
from tests.mock_providers import MockProvider, azure_openai_host
from tests.scenarios import ROUTES
from tests.test_routing import call

pytestmark = pytest.mark.gateway

# tests/test_routing.py's task of the "routing" scenario (a fixture, reused).
routing_task = test_routing.routing_task

# Every host a route of the scenario may send to (the official ones only).
OFFICIAL = (
    official_hosts("openai") | official_hosts("anthropic") | official_hosts("google")
    | {azure_openai_host(AZURE_RESOURCE), bedrock_runtime_host(REGION)}
)  # fmt: skip


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def routed(
    harness: GatewayHarness, routing_task: TaskDefinition, credentials: CredentialsEndpoint, otlp: OtlpRecorder
) -> RunningDataPlane:
    """tests/test_routing.py's data plane, under a name of its own (both modules may run in one session)."""
    return harness.start_data_plane(
        ORG_KEYS, "routing-attacks", task=routing_task, otlp_port=otlp.port, credentials_uri=credentials.full_uri
    )


def fresh_plane(
    harness: GatewayHarness,
    task: TaskDefinition,
    credentials: CredentialsEndpoint,
    otlp: OtlpRecorder,
) -> RunningDataPlane:
    """A data plane of its own: an empty skip record, no credentials cached by its workers."""
    return harness.start_data_plane(
        ORG_KEYS, f"attack-{uuid.uuid4().hex[:8]}", task=task, otlp_port=otlp.port,
        credentials_uri=credentials.full_uri,
    )  # fmt: skip


def raw_post(
    data_plane: RunningDataPlane, headers: Sequence[tuple[str, str | bytes]], body: dict[str, Any] | None = None
) -> Response:
    """A chat completion with headers exactly as given (repeats, raw bytes)."""
    payload = json.dumps(body or {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", data_plane.port, timeout=20)
    try:
        connection.putrequest("POST", "/v1/chat/completions", skip_accept_encoding=True)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(len(payload)))
        connection.putheader("Authorization", f"Bearer {CLIENT_JWT}")
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(payload)
        answer = connection.getresponse()
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read())
    finally:
        connection.close()


def served(data_plane: RunningDataPlane, route: str, **extra: Any) -> tuple[int, str]:
    """(status, provider that served) of a chat completion on ``route``."""
    response, line = call(data_plane, route, **extra)
    return response.status, str(line["provider"])


def clear(mocks: dict[str, MockProvider], harness: GatewayHarness) -> None:
    for mock in mocks.values():
        mock.clear()
    harness.interception.reset()


def outbound_hosts(harness: GatewayHarness) -> set[str]:
    return {str(event["host"]) for event in harness.interception.outbound()}


def secrets_of(credentials: CredentialsEndpoint) -> list[str]:
    found = list(ORG_KEYS.values())
    for issued in credentials.issued:
        found += [issued.access_key_id, issued.secret_access_key, issued.session_token]
    return found


# -- 1. selecting a route: header smuggling ------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [("x-aigw-route", "chat"), ("x-aigw-route", "skipping")],  # repeated
        [("x-aigw-route", "chat"), ("X-AIGW-ROUTE", "chat")],  # repeated, another spelling of the name
        [("x-aigw-route", "Spread")],  # the value's case
        [("x-aigw-route", "spread\tx")],  # inner whitespace
        [("x-aigw-route", "spread,chat")],  # a list
        [("x-aigw-route", b"spr\xc3\xa9ad")],  # non-ASCII
        [("x-aigw-route", "spread" + "a" * 8000)],  # very long
        [("x-aigw-route", "chat"), ("X-Portkey-Provider", "openai")],  # with a provider, the name cased otherwise
        [("x-aigw-route", "chat"), ("x-portkey-provider", "")],  # with an empty provider
    ],
    ids=[
        "repeat",
        "repeat-cased",
        "value-case",
        "tab",
        "list",
        "non-ascii",
        "long",
        "provider-cased",
        "provider-empty",
    ],
)
def test_smuggled_route_headers_are_refused_before_anything_goes_out(
    routed: RunningDataPlane, harness: GatewayHarness, headers: list[tuple[str, str | bytes]]
) -> None:
    response = raw_post(routed, headers)
    assert response.status == 400, (response.status, response.body[:300])
    error = response.json()["error"]
    assert error["rule"] in {"route", "header"}
    assert b"aaaaaaaaaa" not in response.body  # a long value is not echoed
    assert harness.interception.outbound() == []


@pytest.mark.parametrize("value", [" spread", "spread ", "\tspread\t"])
def test_whitespace_around_a_route_name_selects_that_route_and_no_other(
    routed: RunningDataPlane, mocks: dict[str, MockProvider], value: str
) -> None:
    response = raw_post(routed, [("X-Aigw-Route", value)])
    if response.status == 400:  # refused is fine
        assert response.json()["error"]["rule"] == "route"
        return
    assert response.status == 200, response.body
    assert len(mocks["openai"].requests) + len(mocks["google"].requests) == 1  # spread's targets only
    assert mocks["anthropic"].requests == []


def test_an_empty_client_config_header_falls_to_the_route_not_to_a_client_config(
    routed: RunningDataPlane, mocks: dict[str, MockProvider], harness: GatewayHarness
) -> None:
    response = raw_post(routed, [("x-aigw-route", "on-503"), ("x-portkey-config", "")])
    assert response.status == 200, response.body
    assert mocks["openai"].api_keys() == [ORG_KEYS["OPENAI_API_KEY"]]
    response = raw_post(routed, [("x-portkey-config", " ")])  # trimmed to empty: the default route
    assert response.status == 200, response.body
    assert_no_org_key_leaves_its_provider(harness, response.body)


def test_a_client_config_without_a_key_still_gets_no_organisation_key(
    routed: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    config = json.dumps({"strategy": {"mode": "fallback"}, "targets": [{"provider": "openai"}, {"provider": "google"}]})
    response = chat(routed.base_url, {"x-portkey-config": config, **CLIENT})
    assert not any(key in mocks["openai"].api_keys() for key in ORG_KEYS.values())
    assert not any(key in mocks["google"].api_keys() for key in ORG_KEYS.values())
    assert ORG_KEYS["OPENAI_API_KEY"].encode() not in response.body


# -- 2. what the client adds to a routed request ---------------------------------------------------

# Every x-portkey-* header the gateway 1.15.2 reads to pick a host, credentials or a resource.
STEERING_HEADERS = {
    "x-portkey-custom-host": "http://127.0.0.1:9/v1",
    "x-portkey-forward-headers": "authorization,x-api-key",
    "x-portkey-api-key": "client-key",
    "x-portkey-virtual-key": "vk",
    "x-portkey-aws-region": "eu-west-1",
    "x-portkey-aws-access-key-id": "AKIDCLIENT",
    "x-portkey-aws-role-arn": "arn:aws:iam::111111111111:role/x",
    "x-portkey-azure-resource-name": "evil",
    "x-portkey-azure-deployment-id": "evil",
    "x-portkey-openai-organization": "org-evil",
    "x-portkey-default-input-guardrails": "[]",
    "x-portkey-mode": "proxy",
    # Forwarded by the data plane: must not change a target either.
    "x-portkey-metadata": json.dumps({"_user": "x", "provider": "google"}),
    "x-portkey-retry-count": "5",
    "x-portkey-strict-open-ai-compliance": "false",
    "x-portkey-trace-id": "attack",
}


@pytest.mark.parametrize("route", ["chat", "aws-first", "spread"])
def test_client_portkey_headers_choose_no_host_credentials_or_resource_on_a_route(
    routed: RunningDataPlane, mocks: dict[str, MockProvider], harness: GatewayHarness, route: str
) -> None:
    mocks["openai"].error_status = 503  # chat moves on to Anthropic
    mocks["bedrock"].error_status = 503  # aws-first moves on to Azure
    response = chat(routed.base_url, {"x-aigw-route": route, **STEERING_HEADERS, **CLIENT})
    assert response.status in (200, 503), response.body
    assert outbound_hosts(harness) <= OFFICIAL, harness.interception.outbound()
    assert len(mocks["sink"].requests) == 0
    for name in ("openai", "anthropic", "google", "azure-openai"):
        assert "client-key" not in mocks[name].api_keys()
    if route == "aws-first":
        (sent,) = mocks["azure-openai"].requests
        assert "/openai/deployments/gpt-4o/" in sent.path
    assert_no_org_key_leaves_its_provider(harness, response.body, json.dumps(response.headers))


def test_body_fields_choose_no_provider_host_or_key_on_a_route(
    routed: RunningDataPlane, mocks: dict[str, MockProvider], harness: GatewayHarness
) -> None:
    fields = {
        "provider": "google", "api_key": "client-key", "custom_host": "http://127.0.0.1:9/v1",
        "customHost": "http://127.0.0.1:9/v1", "config": {"provider": "google"}, "targets": [{"provider": "google"}],
        "override_params": {"model": "gpt-5"}, "resource_name": "evil", "deployment_id": "evil",
        "aws_region": "eu-west-1", "forward_headers": ["authorization"], "strategy": {"mode": "single"},
    }  # fmt: skip
    for route in ("chat", "aws-first"):
        response, _ = call(routed, route, **fields)
        assert response.status == 200, response.body
    assert outbound_hosts(harness) <= OFFICIAL
    assert len(mocks["sink"].requests) == 0 and mocks["google"].requests == []
    assert [r.json_object()["model"] for r in mocks["openai"].requests] == ["gpt-4o-mini"]
    assert mocks["openai"].api_keys() == [ORG_KEYS["OPENAI_API_KEY"]]


@pytest.mark.parametrize("model", [{"$ne": 1}, ["gpt-5"], 7, "x" * 5000, 'gpt-4o\n{"team":"other"}'])
def test_an_unchecked_model_on_a_route_that_forces_every_model_goes_nowhere(
    routed: RunningDataPlane, mocks: dict[str, MockProvider], model: object
) -> None:
    # "chat" forces a model on both targets, so the body's model is not checked at all.
    response, line = call(routed, "chat", model=model)
    assert response.status == 200, response.body
    assert [r.json_object()["model"] for r in mocks["openai"].requests] == ["gpt-4o-mini"]
    assert (line["provider"], line["model"]) == ("openai", "gpt-4o-mini")


# -- 3. body checks per target --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "extra", "rule"),
    [
        # Google takes the request's model on on-503 and spread: its pattern applies (no path, no query).
        ("on-503", {"model": "gemini-2.5-flash/../../upload/v1beta/files"}, "model"),
        ("spread", {"model": "gemini-2.5-flash:generateContent?alt=x"}, "model"),
        # Stored objects of every target's provider.
        ("spread", {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "gs://bucket/object"}}]}]}, "stored-object"),
        ("on-503", {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {
                "url": "https://generativelanguage.googleapis.com/v1beta/files/abc"}}]}]}, "stored-object"),
        ("aws-first", {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": " S3://org-bucket/secret.png"}}]}]}, "stored-object"),
    ],
)  # fmt: skip
def test_the_body_is_checked_for_every_target_of_the_route(
    routed: RunningDataPlane, harness: GatewayHarness, route: str, extra: dict[str, Any], rule: str
) -> None:
    response, _ = call(routed, route, **extra)
    assert response.status in (400, 403), response.body
    assert response.json()["error"]["rule"] == rule
    assert harness.interception.outbound() == []


# -- 4. the skip record: can a client make a provider look failing? --------------------------------


@pytest.mark.parametrize("version", ["\u2603", "2023-06-01\r\nX-Evil: 1", "2023-06-01\n", 20230601, ""])
def test_a_body_anthropic_version_that_is_not_a_version_date_is_refused_before_any_target(
    harness: GatewayHarness,
    routing_task: TaskDefinition,
    credentials: CredentialsEndpoint,
    otlp: OtlpRecorder,
    mocks: dict[str, MockProvider],
    version: object,
) -> None:
    """Found by an attack run: the gateway 1.15.2 sends a body's `anthropic_version` as Anthropic's
    `anthropic-version` header (providerOptions.anthropicVersion ?? body.anthropic_version). A value
    fetch refuses as a header made the gateway's call fail before it left, a 500 *with* the option
    index: the fallback moved on and the data plane counted Anthropic as failing, though Anthropic
    never saw a request; two such bodies skipped it for every team. Now refused (400, `body`)."""
    data_plane = fresh_plane(harness, routing_task, credentials, otlp)
    for _ in range(2):
        response, line = call(data_plane, "skipping", anthropic_version=version)
        assert response.status == 400 and line["rule"] == "body", response.body
    assert harness.interception.outbound() == []
    assert served(data_plane, "skipping") == (200, "anthropic")
    assert served(data_plane, "skipping", anthropic_version="2023-06-01") == (200, "anthropic")


def slow(monkeypatch: pytest.MonkeyPatch, *providers: MockProvider, seconds: float = 0.3) -> None:
    """Providers that answer after ``seconds`` (a real provider takes far longer than the timeouts below)."""
    for mock in providers:
        answer = mock.reply

        def delayed(recorded: Any, answer: Any = answer) -> Any:
            time.sleep(seconds)
            return answer(recorded)

        monkeypatch.setattr(mock, "reply", delayed)


def test_408_may_trigger_neither_a_fallback_nor_a_retry() -> None:
    """Found by an attack run: the gateway answers 408 when the client's own x-portkey-request-timeout
    runs out (the header applies to every target, ahead of the config). A route that fell back on
    408 moved past every target the client timed out (each counted as failing: a 1 ms timeout
    skipped a provider for everyone), and one that retried on 408 made every configured call for one
    request, each abandoned. 408 is no longer a trigger code."""
    for field in ("on_status_codes", "retry_on_status_codes"):
        extra = {"retry_attempts": 1} if field == "retry_on_status_codes" else {}
        with pytest.raises(ValueError, match="only 429 and 5xx"):
            RouteSettings.model_validate(
                {"strategy": "fallback", "targets": [{"provider": "openai"}, {"provider": "anthropic"}],
                 field: [408, 503], **extra}
            )  # fmt: skip


def test_the_clients_request_timeout_makes_no_target_look_failing_and_no_call_retried(
    harness: GatewayHarness,
    routing_task: TaskDefinition,
    credentials: CredentialsEndpoint,
    otlp: OtlpRecorder,
    mocks: dict[str, MockProvider],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data_plane = fresh_plane(harness, routing_task, credentials, otlp)
    slow(monkeypatch, mocks["anthropic"], mocks["openai"])
    for _ in range(3):  # "skipping": anthropic, then openai; two failures skip it
        response = chat(data_plane.base_url, {"x-aigw-route": "skipping", "x-portkey-request-timeout": "50", **CLIENT})
        assert response.status == 408
    # "retrying": OpenAI alone, retried twice on 503: the client's timeout is not retried.
    response = chat(data_plane.base_url, {"x-aigw-route": "retrying", "x-portkey-request-timeout": "50", **CLIENT})
    assert response.status == 408
    time.sleep(0.5)
    assert len(mocks["openai"].requests) == 1, "one client request made several calls to OpenAI"
    monkeypatch.undo()
    clear(mocks, harness)
    assert served(data_plane, "skipping") == (200, "anthropic"), "a client's timeouts made Anthropic skipped for all"


def test_a_clients_4xx_never_resets_the_failures_of_a_failing_target(
    harness: GatewayHarness,
    routing_task: TaskDefinition,
    credentials: CredentialsEndpoint,
    otlp: OtlpRecorder,
    mocks: dict[str, MockProvider],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by an attack run (the reverse steering): Anthropic fails every valid request (500), yet a
    request it refuses (400, or a 408 of the client's own timeout) counted as an answer and deleted its
    count, so one client interleaving such requests kept a failing provider first in line for every
    team. Only a 2xx ends a run of failures now."""
    anthropic = mocks["anthropic"]
    answer = anthropic.reply

    def failing(recorded: Any) -> Any:
        if b"attacker" in recorded.body:
            return anthropic.error(400, "invalid request")
        return anthropic.error(500, "overloaded")

    monkeypatch.setattr(anthropic, "reply", failing)
    data_plane = fresh_plane(harness, routing_task, credentials, otlp)
    # "skipping": two failures in a row skip Anthropic for 2 s; the attacker's 400 comes between them.
    assert served(data_plane, "skipping") == (200, "openai")  # another team: Anthropic 500, then OpenAI
    response, _ = call(data_plane, "skipping", user="attacker")
    assert response.status == 400
    assert served(data_plane, "skipping") == (200, "openai")  # Anthropic's second 500 in a row
    anthropic.clear()
    for _ in range(3):
        assert served(data_plane, "skipping") == (200, "openai")
    monkeypatch.setattr(anthropic, "reply", answer)
    assert anthropic.requests == [], "a client's 400 kept a failing Anthropic first in line"


def test_a_request_timeout_on_a_route_without_408_never_counts_as_failing(
    harness: GatewayHarness,
    routing_task: TaskDefinition,
    credentials: CredentialsEndpoint,
    otlp: OtlpRecorder,
    mocks: dict[str, MockProvider],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data_plane = fresh_plane(harness, routing_task, credentials, otlp)
    slow(monkeypatch, mocks["anthropic"], mocks["openai"])
    for _ in range(3):
        response = chat(data_plane.base_url, {"x-aigw-route": "skipping", "x-portkey-request-timeout": "50", **CLIENT})
        assert response.status == 408 and response.headers["x-portkey-last-used-option-index"] == "config.targets[0]"
    monkeypatch.undo()
    assert served(data_plane, "skipping") == (200, "anthropic")


@pytest.mark.parametrize(
    "body",
    [
        {"messages": "hi"},  # the gateway's own exception: no option index
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 5}}]}]},
        {"model": "claude-haiku-4-5", "max_tokens": 10**9},  # the provider's 400
        {"model": "no-such-model"},
    ],
)
def test_gateway_exceptions_and_bad_requests_never_count_as_failing(
    harness: GatewayHarness,
    routing_task: TaskDefinition,
    credentials: CredentialsEndpoint,
    otlp: OtlpRecorder,
    mocks: dict[str, MockProvider],
    body: dict[str, Any],
) -> None:
    data_plane = fresh_plane(harness, routing_task, credentials, otlp)
    mocks["anthropic"].error_status = 400 if "messages" not in body else None
    for _ in range(3):
        response, _ = call(data_plane, "skipping", **body)
        assert response.status in (400, 500), response.body
    mocks["anthropic"].error_status = None
    assert served(data_plane, "skipping") == (200, "anthropic")


def test_when_every_target_is_skipped_all_are_tried_and_keys_stay_put(
    harness: GatewayHarness,
    routing_task: TaskDefinition,
    credentials: CredentialsEndpoint,
    otlp: OtlpRecorder,
    mocks: dict[str, MockProvider],
) -> None:
    data_plane = fresh_plane(harness, routing_task, credentials, otlp)
    mocks["anthropic"].error_status = mocks["openai"].error_status = 500
    for _ in range(2):
        response, _ = call(data_plane, "skipping")
        assert response.status == 500
    clear(mocks, harness)
    response, line = call(data_plane, "skipping")  # both skipped: both tried
    assert response.status == 500 and line["option"] == "1"
    assert len(mocks["anthropic"].requests) == 1 and len(mocks["openai"].requests) == 1
    assert mocks["anthropic"].api_keys() == [ORG_KEYS["ANTHROPIC_API_KEY"]]
    assert mocks["openai"].api_keys() == [ORG_KEYS["OPENAI_API_KEY"]]
    assert_no_org_key_leaves_its_provider(harness, response.body, json.dumps(response.headers))


# -- 5. what comes back and what is logged ---------------------------------------------------------


def test_failing_targets_echo_no_credential_to_the_client_or_any_log(
    harness: GatewayHarness,
    routing_task: TaskDefinition,
    credentials: CredentialsEndpoint,
    otlp: OtlpRecorder,
    mocks: dict[str, MockProvider],
) -> None:
    data_plane = fresh_plane(harness, routing_task, credentials, otlp)
    answers: list[str | bytes] = []
    for status in (500, 503, 429, 401):
        for mock in mocks.values():
            mock.error_status = status
        for route in ROUTES:
            for extra in ({}, {"stream": True}, {"messages": "hi"}, {"anthropic_version": "\u2603"}):
                response, line = call(data_plane, route, **extra)
                answers += [response.body, json.dumps(response.headers), json.dumps(line)]
    for mock in mocks.values():
        mock.error_status = None
    assert_no_org_key_leaves_its_provider(harness, *answers)
    secrets = secrets_of(credentials)
    for text in answers:
        decoded = text.decode(errors="replace") if isinstance(text, bytes) else text
        assert not any(secret in decoded for secret in secrets)
    logs = "".join(path.read_text(errors="replace") for path in data_plane.home.glob("*.log"))
    logs += (harness.workdir / "gateway.log").read_text(errors="replace")
    leaked = [secret[:12] for secret in secrets if secret in logs]
    assert leaked == [], f"credentials in a log: {leaked}"


def test_routed_bedrock_uses_refreshed_task_role_credentials_and_masks_every_set(
    harness: GatewayHarness,
    routing_task: TaskDefinition,
    credentials: CredentialsEndpoint,
    otlp: OtlpRecorder,
    mocks: dict[str, MockProvider],
) -> None:
    bedrock = mocks["bedrock"]
    assert isinstance(bedrock, BedrockRuntimeMock)
    first = credentials.issue(valid_for_seconds=CREDENTIALS_REFRESH_SECONDS + 3)
    data_plane = fresh_plane(harness, routing_task, credentials, otlp)
    answers: list[bytes] = []
    for _ in range(4):
        response, line = call(data_plane, "aws-first")
        assert response.status == 200 and line["provider"] == "bedrock"
        answers.append(response.body)
    assert set(bedrock.access_keys) == {first.access_key_id}
    second = credentials.issue(valid_for_seconds=3600)
    time.sleep(3.5)
    bedrock.clear()
    for _ in range(4):
        response, line = call(data_plane, "aws-first")
        assert response.status == 200
        answers.append(response.body)
    assert set(bedrock.access_keys) == {second.access_key_id}
    assert bedrock.verifications == [True] * 4
    for secret in (first.secret_access_key, first.session_token, second.secret_access_key, second.session_token):
        assert not any(secret.encode() in answer for answer in answers)


def test_a_routed_request_whose_task_role_is_unavailable_is_refused_cleanly(
    harness: GatewayHarness,
    routing_task: TaskDefinition,
    credentials: CredentialsEndpoint,
    otlp: OtlpRecorder,
    mocks: dict[str, MockProvider],
) -> None:
    """Current behaviour, kept: a route with a Bedrock target is refused (503, `credentials`) while
    the task role's credentials cannot be fetched, even when its Azure target could serve."""
    data_plane = fresh_plane(harness, routing_task, credentials, otlp)
    credentials.error_status = 500
    try:
        response, line = call(data_plane, "aws-first")
    finally:
        credentials.error_status = None
    assert response.status == 503 and response.json()["error"]["rule"] == "credentials"
    assert harness.interception.outbound() == []
    assert line["route"] == "aws-first"


def test_the_route_and_option_in_the_log_and_metric_are_never_the_clients(
    routed: RunningDataPlane, mocks: dict[str, MockProvider], quiet_otlp: OtlpRecorder
) -> None:
    headers = {
        "x-aigw-route": "spread", "x-portkey-metadata": json.dumps({"route": "evil", "provider": "evil"}),
        "x-portkey-trace-id": "config.targets[7]", **CLIENT,
    }  # fmt: skip
    mocks["openai"].extra_headers = {"x-portkey-last-used-option-index": "config.targets[7]"}
    mocks["google"].extra_headers = {"x-portkey-last-used-option-index": "config.targets[7]"}
    trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    response = chat(routed.base_url, {**headers, "x-amzn-trace-id": trace}, model="gemini-2.5-flash")
    assert response.status == 200
    line = routed.access_line(trace)
    assert line["route"] == "spread" and line["option"] in {"", "0", "1"}
    assert line["provider"] in {"", "openai", "google"}
    assert quiet_otlp.wait_for_metric("RoutedRequests", timeout=10)
    for point in quiet_otlp.metric_points():
        if point.name == "RoutedRequests":
            assert point.attributes["route"] == "spread"
            assert point.attributes["provider"] in {"openai", "google", "none"}


@pytest.fixture(autouse=True)
def _no_leftovers(mocks: dict[str, MockProvider]) -> Iterator[None]:
    yield
    for mock in mocks.values():
        mock.error_status = None
        mock.extra_headers = {}
