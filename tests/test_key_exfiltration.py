"""Regression suite: an authenticated but untrusted client tries to steal or
misuse the organisation's provider keys through the data plane.

Every attack runs against the prod task exactly as synthesized (JWT auth on,
organisation keys for openai, anthropic and azure) in front of the
real gateway, whose outbound traffic is recorded and redirected inside its
process (tests/gateway_harness.py): the official provider hosts to recording
mocks, any other host to a recording "attacker" that echoes what it got.
Each test asserts what the attack must not achieve: no organisation key ever
reaches a host other than its provider's official API host, none ever
appears in a response, and keys work only on the allow-listed routes.
"""

from __future__ import annotations

import http.client
import json
import os
import socket

import pytest

from bench.synth import process_tree
from tests.gateway_fixtures import CLIENT, ORG_KEYS, assert_no_org_key_leaves_its_provider
from tests.gateway_harness import GatewayHarness, Response, RunningDataPlane, chat, request
from tests.local_task import listening_addresses
from tests.mock_providers import MockProvider

pytestmark = pytest.mark.gateway

ATTACKER = "attacker.example:8443"
CHAT_BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
CHAT_BYTES = json.dumps(CHAT_BODY).encode()


def raw(data_plane: RunningDataPlane, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Response:
    """A request whose target is sent byte for byte (no client-side normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", data_plane.port, timeout=20)
    try:
        connection.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
        for name, value in {**headers, "content-type": "application/json", "content-length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def assert_refused(response: Response, status: int, rule: str) -> None:
    assert response.status == status, response.body[:500]
    assert response.json()["error"]["rule"] == rule


# -- 1. Azure resource, deployment and version from client headers ---------------------
@pytest.mark.parametrize(
    "header",
    [
        {"x-portkey-azure-resource-name": f"{ATTACKER}#"},
        {"x-portkey-azure-resource-name": "attacker.example/x?"},
        {"x-portkey-azure-deployment-id": "../../../../x#"},
        {"x-portkey-azure-api-version": "1&x=#"},
        {"x-portkey-azure-foundry-url": f"https://{ATTACKER}"},
        {"x-portkey-azure-endpoint-name": ATTACKER},
        {"x-portkey-azure-auth-mode": "entra", "x-portkey-azure-entra-tenant-id": "t"},
    ],
)
def test_azure_host_and_deployment_headers_from_clients_are_ignored(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, mocks: dict[str, MockProvider], header: dict[str, str]
) -> None:
    response = chat(org_data_plane.base_url, {"x-portkey-provider": "azure-openai", **CLIENT, **header})
    assert response.status == 200, response.body
    assert mocks["sink"].requests == []
    assert [r.path for r in mocks["azure-openai"].requests] == [
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    ]
    assert_no_org_key_leaves_its_provider(harness, response.body, json.dumps(response.headers))


def test_the_azure_resource_injection_of_the_report_does_not_reach_the_attacker(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, mocks: dict[str, MockProvider]
) -> None:
    headers = {"x-portkey-provider": "azure-openai", "x-portkey-azure-resource-name": f"{ATTACKER}#",
               "x-portkey-azure-deployment-id": "d", "x-portkey-azure-api-version": "2024-02-01", **CLIENT}  # fmt: skip
    response = chat(org_data_plane.base_url, headers)
    assert mocks["sink"].requests == []
    assert "echo" not in response.json()
    assert_no_org_key_leaves_its_provider(harness, response.body)


def test_realtime_with_azure_headers_is_refused_before_any_websocket(
    org_data_plane: RunningDataPlane, harness: GatewayHarness
) -> None:
    headers = {"x-portkey-provider": "azure-openai", "x-portkey-azure-resource-name": f"{ATTACKER}#",
               "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", **CLIENT}  # fmt: skip
    assert_refused(raw(org_data_plane, "GET", "/v1/realtime?model=x", headers), 400, "websocket")
    assert_refused(raw(org_data_plane, "GET", "/v1/realtime?model=x", {**CLIENT}), 404, "route")
    assert harness.interception.outbound() == [] and harness.interception.events("dns") == []


# -- 2./3. passthrough paths that build the upstream URL from the client's path --------
@pytest.mark.parametrize(
    ("provider", "target"),
    [
        ("azure-openai", f"/v1/{ATTACKER}/.openai.azure.com/steal"),
        ("google", "/v1/proxy.attacker.example:8443/steal"),
        ("openai", "/v1/proxy/chat/completions"),
        ("openai", "/v1/proxy/https://attacker.example/steal"),
        ("anthropic", "/v1/anything/else"),
    ],
)
def test_client_chosen_paths_never_become_upstream_urls(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, provider: str, target: str
) -> None:
    response = raw(
        org_data_plane, "POST", target, {"x-portkey-provider": provider, **CLIENT}, json.dumps(CHAT_BODY).encode()
    )
    assert_refused(response, 404, "route")
    assert harness.interception.outbound() == []


# -- 4. the org key beyond inference ---------------------------------------------------
@pytest.mark.parametrize(
    ("method", "target", "status", "rule"),
    [
        ("GET", "/v1/files/file-abc/content", 404, "route"),
        ("DELETE", "/v1/files/file-abc", 404, "route"),
        ("GET", "/v1/files", 404, "route"),
        ("POST", "/v1/files", 404, "route"),
        ("GET", "/v1/chat/completions?limit=100", 405, "method"),
        ("GET", "/v1/chat/completions/chatcmpl-abc/messages", 404, "route"),
        ("GET", "/v1/responses/resp_abc", 404, "route"),
        ("DELETE", "/v1/responses/resp_abc", 404, "route"),
        ("GET", "/v1/responses", 405, "method"),
        ("GET", "/v1/vector_stores", 404, "route"),
        ("DELETE", "/v1/assistants/asst_abc", 404, "route"),
        ("POST", "/v1/batches", 404, "route"),
        ("GET", "/v1/batches/batch_abc/output", 404, "route"),
        ("POST", "/v1/fine_tuning/jobs", 404, "route"),
        ("GET", "/v1/models", 404, "route"),
        ("POST", "/v1/messages/count_tokens", 404, "route"),
        ("POST", "/v1/prompts/p/completions", 404, "route"),
        ("PUT", "/v1/chat/completions", 405, "method"),
        ("DELETE", "/v1/embeddings", 405, "method"),
    ],
)
def test_the_org_key_works_only_on_inference_routes(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, method: str, target: str, status: int, rule: str
) -> None:
    response = raw(org_data_plane, method, target, {"x-portkey-provider": "openai", **CLIENT})
    assert_refused(response, status, rule)
    assert harness.interception.outbound() == []


@pytest.mark.parametrize(
    ("route", "provider"),
    [
        ("/v1/messages", "openai"),
        ("/v1/moderations", "anthropic"),
        ("/v1/images/generations", "google"),
        ("/v1/responses", "anthropic"),
        ("/v1/audio/speech", "google"),
    ],
)
def test_routes_are_offered_only_for_the_providers_they_make_sense_for(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, route: str, provider: str
) -> None:
    response = request(f"{org_data_plane.base_url}{route}", CHAT_BODY, {"x-portkey-provider": provider, **CLIENT})
    assert_refused(response, 403, "provider")
    assert harness.interception.outbound() == []


# -- 5. client configs: custom hosts, loopback SSRF, a second hop through the data plane -------
@pytest.mark.parametrize(
    "custom_host",
    ["http://127.0.0.1:4318", "http://localhost:8080/v1", "http://[::1]:8787", "http://host.docker.internal:8080",
     "http://169.254.170.2/v2", "http://10.0.0.5", f"https://{ATTACKER}/v1", "http://localtest.me:8080/v1"],
)  # fmt: skip
def test_client_configs_cannot_choose_a_host(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, custom_host: str
) -> None:
    config = {"provider": "openai", "api_key": "client-key", "custom_host": custom_host}
    response = request(
        f"{org_data_plane.base_url}/v1/chat/completions", CHAT_BODY, {"x-portkey-config": json.dumps(config), **CLIENT}
    )
    assert_refused(response, 403, "config")
    assert harness.interception.outbound() == []


@pytest.mark.parametrize(
    "config",
    [
        {"provider": "azure-openai", "api_key": "k", "resource_name": f"{ATTACKER}#", "deployment_id": "d"},
        {"provider": "bedrock", "aws_region": f"{ATTACKER}#", "aws_access_key_id": "a", "aws_secret_access_key": "s"},
        {"provider": "vertex-ai", "vertex_region": f"{ATTACKER}#", "vertex_project_id": "p", "api_key": "k"},
        {"provider": "huggingface", "api_key": "k", "huggingface_base_url": f"https://{ATTACKER}"},
        {"provider": "ollama", "custom_host": f"https://{ATTACKER}"},
        {"provider": "openai", "api_key": "k", "forward_headers": ["authorization"]},
        {"provider": "openai", "api_key": "k", "before_request_hooks": [{"id": "x"}]},
        {"provider": "openai", "api_key": "k", "input_guardrails": [{"default.webhook": {"webhookURL": "http://x"}}]},
        {"strategy": {"mode": "fallback"}, "targets": [{"provider": "openai", "api_key": "k",
                                                        "custom_host": f"https://{ATTACKER}"}]},
        {"strategy": {"mode": "conditional", "conditions": [{"query": {"x": 1}, "then": "a"}]}, "targets": []},
    ],
)  # fmt: skip
def test_client_configs_cannot_select_hosts_regions_resources_or_callbacks(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, config: dict[str, object]
) -> None:
    response = request(
        f"{org_data_plane.base_url}/v1/chat/completions", CHAT_BODY, {"x-portkey-config": json.dumps(config), **CLIENT}
    )
    assert_refused(response, 403, "config")
    assert harness.interception.outbound() == []


@pytest.mark.parametrize(
    "raw_config",
    [
        '{"provider":"openai","api_key":"k","custom\\u005fhost":"https://attacker.example"}',
        '{"provider" : "openai", "api_key":"k", "custom_host" : "https://attacker.example"}',
        '{"provider":"OpenAI","api_key":"k"}',
    ],
)
def test_client_configs_cannot_hide_a_refused_key_by_spelling(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, raw_config: str
) -> None:
    response = request(
        f"{org_data_plane.base_url}/v1/chat/completions", CHAT_BODY, {"x-portkey-config": raw_config, **CLIENT}
    )
    assert_refused(response, 403, "config")
    assert harness.interception.outbound() == []


@pytest.mark.parametrize("custom_host", ["http://127.0.0.1:4318", "http://[::1]:8080", "http://localhost.:8080"])
def test_the_deployed_gateway_itself_trusts_no_loopback_custom_host(harness: GatewayHarness, custom_host: str) -> None:
    # Defence in depth behind the data plane: with TRUSTED_CUSTOM_HOSTS as deployed,
    # the gateway refuses loopback literals (unset, it would trust them).
    config = {"provider": "openai", "api_key": "client-key", "custom_host": custom_host}
    response = request(
        f"{harness.gateway_url}/v1/chat/completions", CHAT_BODY, {"x-portkey-config": json.dumps(config)}
    )
    assert response.status == 400 and b"Invalid custom host" in response.body, response.body
    assert harness.interception.outbound() == []


def test_the_gateway_alone_would_accept_localhost_which_is_why_the_data_plane_refuses_custom_hosts(
    harness: GatewayHarness,
) -> None:
    # Gateway 1.15.2 exempts the name "localhost" from its reserved-name
    # checks, and checks names, not the addresses they resolve to: its own
    # validation cannot keep a config inside the task. The data plane's config rule does.
    config = {"provider": "openai", "api_key": "client-key", "custom_host": "http://localhost:8080/v1"}
    response = request(
        f"{harness.gateway_url}/v1/chat/completions", CHAT_BODY, {"x-portkey-config": json.dumps(config)}
    )
    assert response.status == 200
    assert [e["host"] for e in harness.interception.outbound()] == ["localhost:8080"]


def test_custom_host_headers_from_clients_never_reach_the_gateway(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, mocks: dict[str, MockProvider]
) -> None:
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": f"https://{ATTACKER}/v1", **CLIENT}
    response = chat(org_data_plane.base_url, headers)
    assert response.status == 200
    assert [e["host"] for e in harness.interception.outbound()] == ["api.openai.com"]
    assert mocks["sink"].requests == []


def test_the_second_hop_itself_is_refused_by_the_data_plane(
    org_data_plane: RunningDataPlane, harness: GatewayHarness
) -> None:
    # Should a config still reach the data plane through the gateway (a name that
    # resolves to the task), the gateway sends the config's own key and no
    # provider header: the data plane never forwards x-portkey-provider alongside a
    # client config, so forward_headers has nothing to forward; and it does
    # not carry the JWT the load balancer validated. Refused.
    response = chat(org_data_plane.base_url, {"authorization": "Bearer client-key"})
    assert_refused(response, 401, "identity")
    assert harness.interception.outbound() == []


def test_a_config_without_a_provider_borrows_nothing_from_the_data_plane(
    org_data_plane: RunningDataPlane, harness: GatewayHarness
) -> None:
    # A config with neither provider nor targets takes both from the request
    # headers in the gateway; the data plane sends it neither.
    headers = {"x-portkey-config": json.dumps({"retry": {"attempts": 1}}), "x-portkey-provider": "openai", **CLIENT}
    response = chat(org_data_plane.base_url, headers)
    assert response.status == 400
    assert harness.interception.outbound() == []
    assert_no_org_key_leaves_its_provider(harness, response.body)


# -- 6. gateway-internal routes ----------------------------------------------------------
@pytest.mark.parametrize("target", ["/log/stream", "/public/", "/public/logs", "/", "/v1"])
def test_gateway_internal_routes_are_refused_at_the_data_plane(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, target: str
) -> None:
    assert_refused(raw(org_data_plane, "GET", target, CLIENT), 404, "route")


def test_the_deployed_gateway_runs_in_production_mode(harness: GatewayHarness) -> None:
    # Without NODE_ENV=production the gateway streams every request's apiKey on /log/stream.
    direct = request(f"{harness.gateway_url}/log/stream", method="GET")
    assert direct.status == 404
    assert harness.gateway_environment["NODE_ENV"] == "production"


# -- 7. header smuggling -------------------------------------------------------------------
SMUGGLED = {
    "x-portkey-forward-headers": "x-portkey-provider,authorization,x-smuggled",
    "x-smuggled": "1",
    "x-api-key": "attacker-chosen",
    "x-portkey-api-key": "attacker-chosen",
    "x-portkey-openai-organization": "org-attacker",
    "x-portkey-openai-project": "proj-attacker",
    "x-portkey-virtual-key": "vk",
    "x-portkey-aws-region": f"{ATTACKER}#",
    "x-portkey-vertex-region": f"{ATTACKER}#",
    "x-portkey-huggingface-base-url": f"https://{ATTACKER}",
    "x-portkey-default-input-guardrails": "not json",
}


def test_credential_and_host_selectors_from_clients_never_reach_the_provider(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, mocks: dict[str, MockProvider]
) -> None:
    response = chat(org_data_plane.base_url, {"x-portkey-provider": "openai", **CLIENT, **SMUGGLED})
    assert response.status == 200, response.body
    (received,) = mocks["openai"].requests
    assert mocks["openai"].api_keys() == [ORG_KEYS["OPENAI_API_KEY"]]
    for name in ("x-smuggled", "x-api-key", "openai-organization", "openai-project"):
        assert name not in received.headers
    assert "attacker" not in json.dumps(received.headers)
    assert [e["host"] for e in harness.interception.outbound()] == ["api.openai.com"]


def test_an_anthropic_client_cannot_substitute_its_own_key_header(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    response = chat(
        org_data_plane.base_url, {"x-portkey-provider": "anthropic", "x-api-key": "attacker-chosen", **CLIENT}
    )
    assert response.status == 200, response.body
    assert mocks["anthropic"].api_keys() == [ORG_KEYS["ANTHROPIC_API_KEY"]]


def test_bedrock_credentials_and_region_from_clients_never_reach_the_gateway(
    org_data_plane: RunningDataPlane, harness: GatewayHarness
) -> None:
    # Bedrock signs with the task role's credentials only: the client's
    # region and keys are dropped, the request goes to the stack's region.
    headers = {"x-portkey-provider": "bedrock", "x-portkey-aws-region": f"{ATTACKER}#",
               "x-portkey-aws-access-key-id": "AKIDEXAMPLE", "x-portkey-aws-secret-access-key": "s"}  # fmt: skip
    response = chat(org_data_plane.base_url, {**headers, **CLIENT}, model="anthropic.claude-3-haiku-20240307-v1:0")
    assert response.status == 200, response.body
    assert [e["host"] for e in harness.interception.outbound()] == ["bedrock-runtime.us-east-1.amazonaws.com"]
    assert "AKIDEXAMPLE" not in json.dumps(harness.interception.outbound())


def test_without_credentials_bedrock_is_refused_not_signed_with_the_clients(
    harness: GatewayHarness, org_data_plane: RunningDataPlane
) -> None:
    # A data plane whose credentials endpoint is missing refuses Bedrock.
    data_plane = harness.start_data_plane(ORG_KEYS, "no-credentials")
    headers = {"x-portkey-provider": "bedrock", "x-portkey-aws-access-key-id": "AKIDEXAMPLE", **CLIENT}
    assert_refused(
        chat(data_plane.base_url, headers, model="anthropic.claude-3-haiku-20240307-v1:0"), 503, "credentials"
    )
    assert harness.interception.outbound() == []


# -- 8. path tricks ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "target",
    [
        "//v1/chat/completions",
        "/v1//chat/completions",
        "/v1/chat%2Fcompletions",
        "/v1/files/../chat/completions",
        "/v1/./chat/completions",
        "/v1/chat/completions?api-version=1&key=x",
        "/v1/%63hat/completions",
    ],
)
def test_path_spellings_of_an_inference_route_reach_only_that_route(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, mocks: dict[str, MockProvider], target: str
) -> None:
    response = raw(
        org_data_plane, "POST", target, {"x-portkey-provider": "openai", **CLIENT}, json.dumps(CHAT_BODY).encode()
    )
    assert response.status == 200, response.body
    assert [r.path for r in mocks["openai"].requests] == ["/v1/chat/completions"]
    assert [e["url"] for e in harness.interception.outbound()] == ["https://api.openai.com/v1/chat/completions"]


@pytest.mark.parametrize(
    "target",
    [
        "/v1/chat/completions/../../v1/files",
        "/v1/chat/completions/%2e%2e/%2e%2e/v1/files",
        "/v1/chat/completions%2F..%2F..%2Fv1%2Ffiles",
        "/v1/chat/completions/",
        "/V1/chat/completions",
        "/v1/chat/completions%00",
        "/v1/chat/completions;x",
        "/v1/proxy%2Fchat/completions",
    ],
)
def test_path_spellings_of_other_routes_are_refused(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, target: str
) -> None:
    response = raw(
        org_data_plane, "POST", target, {"x-portkey-provider": "openai", **CLIENT}, json.dumps(CHAT_BODY).encode()
    )
    assert response.status in (400, 404), response.body
    assert harness.interception.outbound() == []


def test_a_request_line_with_an_absolute_uri_cannot_choose_a_host(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, mocks: dict[str, MockProvider]
) -> None:
    target = f"http://{ATTACKER}/v1/chat/completions"
    response = raw(
        org_data_plane, "POST", target, {"x-portkey-provider": "openai", **CLIENT}, json.dumps(CHAT_BODY).encode()
    )
    assert response.status == 200
    assert [e["host"] for e in harness.interception.outbound()] == ["api.openai.com"]
    assert mocks["sink"].requests == []


# -- 9. keys never in responses ---------------------------------------------------------
@pytest.mark.parametrize("provider", ["openai", "anthropic", "azure-openai"])
@pytest.mark.parametrize("status", [400, 401, 500])
def test_provider_errors_do_not_echo_the_org_key(
    org_data_plane: RunningDataPlane,
    harness: GatewayHarness,
    mocks: dict[str, MockProvider],
    provider: str,
    status: int,
) -> None:
    mocks[provider].error_status = status
    response = chat(org_data_plane.base_url, {"x-portkey-provider": provider, **CLIENT})
    assert response.status >= 400
    assert_no_org_key_leaves_its_provider(harness, response.body, json.dumps(response.headers))


def test_an_unreachable_provider_does_not_echo_the_org_key(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, mocks: dict[str, MockProvider]
) -> None:
    # A failing fetch must not carry the request (and the key) into the error the gateway returns.
    anthropic = mocks["anthropic"]
    port = anthropic.port
    anthropic.stop()
    try:
        response = chat(org_data_plane.base_url, {"x-portkey-provider": "anthropic", **CLIENT})
        assert response.status >= 400
        assert_no_org_key_leaves_its_provider(harness, response.body, json.dumps(response.headers))
    finally:
        anthropic.start(port)


@pytest.mark.parametrize(
    "model", ["../../v1beta/tunedModels/x", "gemini-pro?alt=", "%2e%2e/%2e%2e/v1/files", "gemini-pro\n", "a/b"]
)
def test_a_google_model_cannot_choose_the_path_the_org_key_is_used_on(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, model: str
) -> None:
    # Gateway 1.15.2 builds models/<body model>:generateContent?key=<key>:
    # the body's model would choose the Google API path the org key is used on.
    response = request(f"{org_data_plane.base_url}/v1/chat/completions", {**CHAT_BODY, "model": model},
                       {"x-portkey-provider": "google", **CLIENT})  # fmt: skip
    assert_refused(response, 400, "model")
    assert harness.interception.outbound() == []


def test_streamed_answers_do_not_carry_the_org_key(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, mocks: dict[str, MockProvider]
) -> None:
    response = chat(org_data_plane.base_url, {"x-portkey-provider": "openai", **CLIENT}, stream=True)
    assert response.status == 200 and b"data:" in response.body
    assert_no_org_key_leaves_its_provider(harness, response.body, json.dumps(response.headers))


# -- 10. source of the request ------------------------------------------------------------------
def test_the_host_header_does_not_matter_to_routing(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    with socket.create_connection(("127.0.0.1", org_data_plane.port), timeout=20) as connection:
        body = json.dumps(CHAT_BODY).encode()
        connection.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: attacker.example\r\nx-portkey-provider: openai\r\n"
            + f"authorization: {CLIENT['Authorization']}\r\n".encode()
            + b"content-type: application/json\r\nconnection: close\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")
    assert mocks["openai"].api_keys() == [ORG_KEYS["OPENAI_API_KEY"]]


def test_the_gateway_data_planes_and_mocks_listen_on_loopback_only(
    harness: GatewayHarness, org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    # The gateway's own server (@hono/node-server) binds every interface unless told otherwise; the
    # harness's preload (tests/harness/intercept.cjs) binds it to 127.0.0.1, so a local run with a real
    # provider key is never reachable from the network. Here: every listening socket of the gateway, of
    # each data plane's nginx master, and of this process (the mocks, the collector).
    # A data plane's nginx is its start script's child: every process below each one started.
    started = [process.pid for process in harness.processes if process.poll() is None]
    pids = [pid for started_pid in started for pid in process_tree(started_pid)] + [os.getpid()]
    listening = listening_addresses(pids)
    ports = {port for _, port in listening}
    assert harness.gateway_port in ports and org_data_plane.port in ports
    assert mocks["openai"].port in ports
    assert {address for address, _ in listening} == {"127.0.0.1"}, listening
