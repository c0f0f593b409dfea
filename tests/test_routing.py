"""Named routes ([routing.<name>]) through the real gateway 1.15.2: the data
plane of the "routing" scenario (tests/scenarios.py ROUTES) renders each
route into the gateway's config and fills in every target's credentials per
request. Fallback, retries, load balancing, the default, a named route,
targets skipped after failing, and each organisation key reaching only its
provider's host."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.aws_mocks import BedrockRuntimeMock, CredentialsEndpoint, OtlpRecorder
from tests.gateway_fixtures import (
    CLIENT,
    CLIENT_JWT,
    ORG_KEYS,
    assert_no_org_key_leaves_its_provider,
    stack_file,
)
from tests.gateway_harness import GatewayHarness, Response, RunningDataPlane, TaskDefinition, chat, request
from tests.mock_providers import MockProvider
from tests.scenarios import ROUTES

pytestmark = pytest.mark.gateway


@pytest.fixture(scope="module")
def routing_task(scenarios_outdir: Path) -> TaskDefinition:
    return TaskDefinition.from_stack(stack_file(scenarios_outdir, "routing"))


@pytest.fixture(scope="module")
def routed(
    harness: GatewayHarness, routing_task: TaskDefinition, credentials: CredentialsEndpoint, otlp: OtlpRecorder
) -> RunningDataPlane:
    return harness.start_data_plane(
        ORG_KEYS, "routing", task=routing_task, otlp_port=otlp.port, credentials_uri=credentials.full_uri
    )


def trace() -> str:
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"


def call(data_plane: RunningDataPlane, route: str | None = None, **extra: object) -> tuple[Response, dict[str, object]]:
    """A chat completion on `route` (None: the default); the answer and its access line."""
    traced = trace()
    headers = {"x-amzn-trace-id": traced, **CLIENT, **({"x-aigw-route": route} if route else {})}
    response = chat(data_plane.base_url, headers, **extra)
    return response, data_plane.access_line(traced)


def keys_seen(mock: MockProvider) -> list[str | None]:
    return mock.api_keys()


# -- selection -------------------------------------------------------------------------------------


def test_the_default_route_applies_when_a_request_names_no_provider_config_or_route(
    routed: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    response, line = call(routed)
    assert response.status == 200, response.body
    (sent,) = mocks["openai"].requests
    assert sent.json_object()["model"] == "gpt-4o-mini"  # the target's model, not the request's
    assert keys_seen(mocks["openai"]) == [ORG_KEYS["OPENAI_API_KEY"]]
    assert mocks["anthropic"].requests == []
    assert (line["route"], line["option"], line["provider"], line["model"]) == ("chat", "0", "openai", "gpt-4o-mini")


def test_a_named_route_applies_when_asked(
    routed: RunningDataPlane, mocks: dict[str, MockProvider], credentials: CredentialsEndpoint
) -> None:
    response, line = call(routed, "aws-first")
    assert response.status == 200, response.body
    bedrock = mocks["bedrock"]
    assert isinstance(bedrock, BedrockRuntimeMock)
    assert bedrock.verifications == [True]  # signed with the task role's credentials the data plane filled in
    assert bedrock.access_keys == [credentials.current.access_key_id]
    assert bedrock.model_ids == ["anthropic.claude-3-haiku-20240307-v1:0"]
    assert (line["route"], line["option"], line["provider"]) == ("aws-first", "0", "bedrock")


def test_unknown_route_names_get_a_json_400_listing_the_configured_ones(
    routed: RunningDataPlane, harness: GatewayHarness
) -> None:
    for name in ("nope", "CHAT", "chat/../x", ""):
        response = chat(routed.base_url, {"x-aigw-route": name, **CLIENT})
        assert response.status == 400, name
        error = response.json()["error"]
        assert error["rule"] == "route"
        assert error["message"].endswith("configured: " + ", ".join(sorted(ROUTES)))
    assert harness.interception.outbound() == []


@pytest.mark.parametrize(
    "other", [{"x-portkey-provider": "openai"}, {"x-portkey-config": json.dumps({"provider": "openai"})}]
)
def test_a_route_named_with_a_provider_or_a_config_is_refused(
    routed: RunningDataPlane, harness: GatewayHarness, other: dict[str, str]
) -> None:
    response = chat(routed.base_url, {"x-aigw-route": "chat", **other, **CLIENT})
    assert response.status == 400 and response.json()["error"]["rule"] == "route"
    assert harness.interception.outbound() == []


def test_a_route_whose_providers_the_path_does_not_offer_is_refused(
    routed: RunningDataPlane, harness: GatewayHarness
) -> None:
    body = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    response = request(f"{routed.base_url}/v1/messages", body, CLIENT)  # the default sends to OpenAI first
    assert response.status == 400, response.body
    error = response.json()["error"]
    assert error["rule"] == "route" and "openai" in error["message"]
    assert harness.interception.outbound() == []


def test_a_provider_named_by_the_client_still_gets_that_provider_alone(
    routed: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    assert chat(routed.base_url, {"x-portkey-provider": "google", **CLIENT}).status == 200
    assert [len(mocks[name].requests) for name in ("google", "openai", "anthropic")] == [1, 0, 0]


def test_client_configs_still_get_no_organisation_key(routed: RunningDataPlane, mocks: dict[str, MockProvider]) -> None:
    config = json.dumps({"strategy": {"mode": "fallback"}, "targets": [{"provider": "openai", "api_key": "own"}]})
    response = chat(routed.base_url, {"x-portkey-config": config, **CLIENT})
    assert response.status == 200, response.body
    assert keys_seen(mocks["openai"]) == ["own"]  # the client's key, not the organisation's


# -- fallback, retries, load balancing --------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 429])
def test_fallback_moves_on_when_a_target_answers_a_5xx_or_a_429(
    routed: RunningDataPlane, mocks: dict[str, MockProvider], harness: GatewayHarness, status: int
) -> None:
    mocks["openai"].error_status = status
    response, line = call(routed)
    assert response.status == 200, response.body
    assert len(mocks["openai"].requests) == 1 and len(mocks["anthropic"].requests) == 1
    assert mocks["anthropic"].requests[0].json_object()["model"] == "claude-haiku-4-5"
    assert keys_seen(mocks["anthropic"]) == [ORG_KEYS["ANTHROPIC_API_KEY"]]
    assert (line["route"], line["option"], line["provider"]) == ("chat", "1", "anthropic")
    assert_no_org_key_leaves_its_provider(harness, response.body, json.dumps(dict(response.headers)))


def test_fallback_moves_on_only_on_the_configured_codes(
    routed: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    mocks["openai"].error_status = 500  # not one of on-503's codes: the answer is the 500
    response, line = call(routed, "on-503")
    assert response.status == 500
    assert mocks["google"].requests == [] and line["option"] == "0"
    mocks["openai"].error_status = 503
    response, line = call(routed, "on-503")
    assert response.status == 200 and len(mocks["google"].requests) == 1 and line["option"] == "1"


@pytest.mark.parametrize(("status", "calls"), [(503, 3), (500, 1)])
def test_retries_follow_the_configured_codes(
    routed: RunningDataPlane, mocks: dict[str, MockProvider], status: int, calls: int
) -> None:
    mocks["openai"].error_status = status  # retrying: two retries, on 503 only
    response, _ = call(routed, "retrying")
    assert response.status == status
    assert len(mocks["openai"].requests) == calls


def test_loadbalance_splits_about_as_weighted(routed: RunningDataPlane, mocks: dict[str, MockProvider]) -> None:
    total = 200
    options: Counter[str] = Counter()
    for _ in range(total):
        response, line = call(routed, "spread")
        assert response.status == 200
        options[str(line["provider"])] += 1
    openai, google = len(mocks["openai"].requests), len(mocks["google"].requests)
    assert openai + google == total
    # 3:1 is 150 of 200; the standard deviation is about 6.1, so 120-180 fails about once in 10^6 runs.
    assert 120 <= openai <= 180, (openai, google)
    assert options == Counter({"openai": openai, "google": google})  # the log names the target that served


def test_an_azure_target_gets_its_deployment_and_key(routed: RunningDataPlane, mocks: dict[str, MockProvider]) -> None:
    mocks["bedrock"].error_status = 503
    response, line = call(routed, "aws-first")
    assert response.status == 200, response.body
    (sent,) = mocks["azure-openai"].requests
    assert "/openai/deployments/gpt-4o/chat/completions" in sent.path
    assert keys_seen(mocks["azure-openai"]) == [ORG_KEYS["AZURE_API_KEY"]]
    assert (line["option"], line["provider"]) == ("1", "azure-openai")


# -- keys ------------------------------------------------------------------------------------------------


def test_each_targets_key_reaches_only_its_providers_host_and_never_the_client_or_a_log(
    routed: RunningDataPlane, mocks: dict[str, MockProvider], harness: GatewayHarness
) -> None:
    answers: list[bytes | str] = []
    for route in ROUTES:
        for stream in (False, True):
            response, _ = call(routed, route, stream=stream)
            answers += [response.body, json.dumps(dict(response.headers))]
    mocks["openai"].error_status = 503  # the fallbacks' second targets too
    for route in ("chat", "on-503"):
        response, _ = call(routed, route)
        assert response.status == 200
        answers += [response.body]
    assert_no_org_key_leaves_its_provider(harness, *answers)
    for name, key in (
        ("openai", "OPENAI"),
        ("anthropic", "ANTHROPIC"),
        ("google", "GOOGLE"),
        ("azure-openai", "AZURE"),
    ):
        seen = set(keys_seen(mocks[name]))
        assert seen <= {ORG_KEYS[f"{key}_API_KEY"]}, (name, seen)
    assert [bool(keys_seen(mocks[name])) for name in ("openai", "anthropic", "google")] == [True, True, True]
    logs = "".join(path.read_text() for path in routed.home.glob("*.log"))
    assert not any(key in logs for key in ORG_KEYS.values())
    assert CLIENT_JWT not in logs


def test_the_published_config_carries_no_credentials(routed: RunningDataPlane) -> None:
    settings = json.loads(routed.file("settings.json"))
    text = json.dumps(settings["routing"])
    assert not any(key in text for key in ORG_KEYS.values())
    assert "api_key" not in text and "aws_" not in text


# -- targets that keep failing ----------------------------------------------------------------------


def test_a_target_that_keeps_failing_is_skipped_for_its_pause_then_tried_again(
    routed: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    anthropic, openai = mocks["anthropic"], mocks["openai"]
    anthropic.error_status = 500  # skipping: anthropic, then openai; skipped after 2 failures for 2 s
    for _ in range(2):
        response, line = call(routed, "skipping")
        assert response.status == 200 and line["option"] == "1"
    assert len(anthropic.requests) == 2
    # Every nginx worker shares the record: several requests, none reaches the skipped target.
    for _ in range(4):
        response, line = call(routed, "skipping")
        assert response.status == 200 and (line["option"], line["provider"]) == ("1", "openai")
    assert len(anthropic.requests) == 2 and len(openai.requests) == 6
    time.sleep(2.2)
    anthropic.error_status = None
    response, line = call(routed, "skipping")
    assert response.status == 200 and (line["option"], line["provider"]) == ("0", "anthropic")
    assert len(anthropic.requests) == 3


def test_bad_requests_never_make_a_target_look_failing(
    routed: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    anthropic = mocks["anthropic"]
    anthropic.error_status = 400  # what a client's bad request earns
    for _ in range(4):
        response, _ = call(routed, "skipping")
        assert response.status == 400
    anthropic.error_status = None
    response, line = call(routed, "skipping")
    assert response.status == 200 and line["provider"] == "anthropic"


# -- telemetry --------------------------------------------------------------------------------------------


def test_the_span_and_a_metric_carry_the_route(routed: RunningDataPlane, quiet_otlp: OtlpRecorder) -> None:
    response, _ = call(routed, "spread")
    assert response.status == 200
    assert quiet_otlp.wait_for_metric("RoutedRequests", timeout=10)
    (point,) = [p for p in quiet_otlp.metric_points() if p.name == "RoutedRequests"]
    assert point.value == 1
    assert point.attributes["route"] == "spread" and point.attributes["status"] == "200"
    assert point.attributes["provider"] in {"openai", "google"}
    assert [span.attributes["aigw.route"] for span in quiet_otlp.spans()] == ["spread"]


def test_a_routed_request_body_is_checked_for_every_target(routed: RunningDataPlane, harness: GatewayHarness) -> None:
    response, _ = call(routed, "on-503", model="../../v1beta/tunedModels/x")  # Google's pattern refuses it
    assert response.status == 400, response.body
    assert response.json()["error"]["rule"] == "model"
    assert harness.interception.outbound() == []


def test_a_stream_on_a_route_whose_targets_all_report_when_asked_is_asked_for_usage(
    routed: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    response, line = call(routed, "retrying", stream=True)
    assert response.status == 200
    (received,) = mocks["openai"].requests
    assert json.loads(received.body)["stream_options"] == {"include_usage": True}
    assert '"usage"' not in response.body.decode()  # the client did not ask: it gets none
    assert line["input_tokens"] and line["output_tokens"], line


def test_a_stream_on_a_route_with_a_target_that_reports_unasked_is_passed_as_sent(
    routed: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    response, _ = call(routed, "chat", stream=True)  # openai, then anthropic (which reports usage unasked)
    assert response.status == 200
    (received,) = mocks["openai"].requests
    assert "stream_options" not in json.loads(received.body)
