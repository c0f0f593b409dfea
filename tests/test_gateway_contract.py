"""The gateway runtime contract, proven against the real gateway: what the
stack wires into the task (modules/gateway_task.py) is what Portkey Gateway
1.15.2 acts on. Runs the gateway from npm, the key proxy under nginx with the
deployed configuration, and mock upstreams; loopback only, bounded in time."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator

import pytest

from modules.gateway_task import ProxyConfig
from tests.gateway_harness import GatewayHarness, MockUpstream, Proxy, chat, request, running_gateway

pytestmark = pytest.mark.gateway

ORG_KEYS = {"OPENAI_API_KEY": "org-key-openai", "ANTHROPIC_API_KEY": "org-key-anthropic"}


def _fake_jwt() -> str:
    """A JWT-shaped bearer token (unsigned; built here so no token is committed)."""

    def part(value: dict[str, str] | str) -> str:
        raw = value if isinstance(value, str) else json.dumps(value)
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    return ".".join([part({"alg": "RS256"}), part({"scope": "https://gateway.internal/invoke"}), part("signature")])


CLIENT_JWT = _fake_jwt()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, MockUpstream]]:
    mocks = {
        name: MockUpstream(name, status)
        for name, status in (("openai", 200), ("anthropic", 200), ("healthy", 200), ("failing", 500),
                             ("limited", 429), ("heavy", 200), ("light", 200), ("elsewhere", 200))
    }  # fmt: skip
    for mock in mocks.values():
        mock.start()
    yield mocks
    for mock in mocks.values():
        mock.stop()


@pytest.fixture(autouse=True)
def clear_recordings(upstreams: dict[str, MockUpstream]) -> None:
    for mock in upstreams.values():
        mock.requests.clear()


@pytest.fixture(scope="module")
def harness() -> Iterator[GatewayHarness]:
    with running_gateway() as running:
        yield running


@pytest.fixture(scope="module")
def org_proxy(harness: GatewayHarness, upstreams: dict[str, MockUpstream]) -> Proxy:
    """JWT auth on: the proxy injects org keys for openai and anthropic."""
    config = ProxyConfig(
        org_keys=("openai", "anthropic"),
        provider_hosts={"openai": upstreams["openai"].base_url, "anthropic": upstreams["anthropic"].base_url},
    )
    return harness.start_proxy(config, ORG_KEYS, "org-keys")


@pytest.fixture(scope="module")
def passthrough_proxy(harness: GatewayHarness, upstreams: dict[str, MockUpstream]) -> Proxy:
    """No JWT auth: clients bring their own provider key."""
    return harness.start_proxy(ProxyConfig(provider_hosts={"openai": upstreams["openai"].base_url}), {}, "passthrough")


def test_health_path_reaches_the_gateway(org_proxy: Proxy) -> None:
    response = request(f"{org_proxy.base_url}/health")
    assert response.status == 200
    assert response.body == b"AI Gateway says hey!"


def test_completion_reaches_the_provider_with_the_org_key_never_the_client_jwt(
    org_proxy: Proxy, upstreams: dict[str, MockUpstream]
) -> None:
    response = chat(org_proxy.base_url, {"x-portkey-provider": "openai", "Authorization": f"Bearer {CLIENT_JWT}"})
    assert response.status == 200, response.body
    assert response.json()["choices"][0]["message"]["content"] == "answer from openai"
    assert upstreams["openai"].authorizations() == ["Bearer org-key-openai"]
    received = json.dumps([r["headers"] for m in upstreams.values() for r in m.requests])
    assert CLIENT_JWT not in received


def test_each_provider_gets_its_own_org_key(org_proxy: Proxy, upstreams: dict[str, MockUpstream]) -> None:
    response = chat(org_proxy.base_url, {"x-portkey-provider": "anthropic", "Authorization": f"Bearer {CLIENT_JWT}"})
    assert response.status == 200, response.body
    (received,) = upstreams["anthropic"].requests
    assert "org-key-anthropic" in json.dumps(received["headers"])
    assert CLIENT_JWT not in json.dumps(received["headers"])


def test_client_cannot_redirect_the_org_key_with_a_custom_host(
    org_proxy: Proxy, upstreams: dict[str, MockUpstream]
) -> None:
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": upstreams["elsewhere"].base_url,
        "Authorization": f"Bearer {CLIENT_JWT}",
    }
    assert chat(org_proxy.base_url, headers).status == 200
    assert upstreams["elsewhere"].requests == []
    assert upstreams["openai"].authorizations() == ["Bearer org-key-openai"]


def test_fallback_config_moves_to_the_second_target_when_the_first_fails(
    org_proxy: Proxy, upstreams: dict[str, MockUpstream]
) -> None:
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "openai", "api_key": "client-key-a", "custom_host": upstreams["failing"].base_url},
            {"provider": "openai", "api_key": "client-key-b", "custom_host": upstreams["healthy"].base_url},
        ],
    }
    headers = {"x-portkey-config": json.dumps(config), "Authorization": f"Bearer {CLIENT_JWT}"}
    response = chat(org_proxy.base_url, headers)
    assert response.status == 200, response.body
    assert response.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert upstreams["failing"].authorizations() == ["Bearer client-key-a"]
    assert upstreams["healthy"].authorizations() == ["Bearer client-key-b"]
    # A client's own config never gets the organisation's keys.
    assert "org-key" not in json.dumps([r["headers"] for m in upstreams.values() for r in m.requests])


def test_fallback_also_covers_rate_limited_targets(org_proxy: Proxy, upstreams: dict[str, MockUpstream]) -> None:
    config = {
        "strategy": {"mode": "fallback", "on_status_codes": [429, 500]},
        "targets": [
            {"provider": "openai", "api_key": "k1", "custom_host": upstreams["limited"].base_url},
            {"provider": "openai", "api_key": "k2", "custom_host": upstreams["healthy"].base_url},
        ],
    }
    response = chat(org_proxy.base_url, {"x-portkey-config": json.dumps(config)})
    assert response.status == 200, response.body
    assert len(upstreams["limited"].requests) == 1 and len(upstreams["healthy"].requests) == 1


LOADBALANCE_REQUESTS = 120


def test_loadbalance_config_spreads_requests_by_weight(org_proxy: Proxy, upstreams: dict[str, MockUpstream]) -> None:
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {"provider": "openai", "api_key": "k", "custom_host": upstreams["heavy"].base_url, "weight": 0.75},
            {"provider": "openai", "api_key": "k", "custom_host": upstreams["light"].base_url, "weight": 0.25},
        ],
    }
    headers = {"x-portkey-config": json.dumps(config)}
    statuses = [chat(org_proxy.base_url, headers).status for _ in range(LOADBALANCE_REQUESTS)]
    assert statuses == [200] * LOADBALANCE_REQUESTS
    heavy, light = len(upstreams["heavy"].requests), len(upstreams["light"].requests)
    assert heavy + light == LOADBALANCE_REQUESTS
    # Binomial(120, 0.75): mean 90, sd 4.7; +-20 is over 4 sd.
    assert 70 <= heavy <= 110, (heavy, light)


def test_provider_without_an_org_key_gets_a_clear_400(org_proxy: Proxy, upstreams: dict[str, MockUpstream]) -> None:
    response = chat(org_proxy.base_url, {"x-portkey-provider": "google", "Authorization": f"Bearer {CLIENT_JWT}"})
    assert response.status == 400
    assert "no organisation key" in response.json()["message"]
    assert all(m.requests == [] for m in upstreams.values())


def test_request_without_provider_or_config_gets_a_clear_400(org_proxy: Proxy) -> None:
    response = chat(org_proxy.base_url, {"Authorization": f"Bearer {CLIENT_JWT}"})
    assert response.status == 400
    assert "x-portkey-config or x-portkey-provider" in response.json()["message"]


def test_access_log_lines_carry_the_fields_the_saved_queries_read(org_proxy: Proxy) -> None:
    trace = f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}"
    assert chat(org_proxy.base_url, {"x-portkey-provider": "openai", "x-amzn-trace-id": trace}).status == 200
    # nginx writes the line when the request is finalized, which may be just after the response.
    deadline = time.monotonic() + 5
    lines: list[dict[str, object]] = []
    while not lines and time.monotonic() < deadline:
        lines = [entry for entry in org_proxy.access_lines() if entry["trace"] == trace]
        time.sleep(0.05)
    (line,) = lines
    assert line["provider"] == "openai" and line["status"] == 200
    assert line["path"] == "/v1/chat/completions"
    assert isinstance(line["request_time"], float)


def test_without_jwt_auth_the_client_brings_its_own_key(
    passthrough_proxy: Proxy, upstreams: dict[str, MockUpstream]
) -> None:
    response = chat(passthrough_proxy.base_url, {"x-portkey-provider": "openai", "Authorization": "Bearer client-own"})
    assert response.status == 200, response.body
    assert upstreams["openai"].authorizations() == ["Bearer client-own"]


def test_the_gateway_ignores_provider_key_variables(
    harness: GatewayHarness, upstreams: dict[str, MockUpstream]
) -> None:
    # What the deployed gateway container receives: no *_API_KEY, nothing it ignores.
    assert harness.gateway_env == {"NODE_ENV": "production"}


def test_bedrock_needs_no_org_key_because_the_task_role_signs(org_proxy: Proxy) -> None:
    # Not sent through the gateway here: without ECS credentials it would try
    # the instance metadata endpoint, which is off limits for these tests.
    conf = next(org_proxy.access_log.parent.glob("conf.d/*.conf")).read_text()
    assert '"bedrock||" 0;' in conf
