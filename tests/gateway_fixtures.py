"""Fixtures of the gateway tier (pytest plugin, loaded by tests/conftest.py).

One real gateway (as deployed, see tests/gateway_harness.py) serves the whole
session, with data planes in front of it: the synthesized task definitions
of two scenarios built in code (tests/scenarios.py): "org-keys" (JWT auth on:
organisation keys for openai, anthropic, google and azure, Bedrock through
the task role) and "base" (JWT auth off: clients bring their own keys); and,
for the smoke tests of the shipped files, environments/prod.toml's and
environments/dev.toml's.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aigw.data_plane.contract import GATEWAY_CONTAINER, TELEMETRY_FLUSH_SECONDS
from tests.aws_mocks import BedrockRuntimeMock, CredentialsEndpoint, OtlpRecorder, bedrock_runtime_host
from tests.gateway_harness import (
    GatewayHarness,
    RunningDataPlane,
    TaskDefinition,
    running_gateway,
    system_tools_missing,
)
from tests.mock_providers import UPSTREAM_HOSTS, MockProvider, azure_openai_host, intercept_map, start_all, stop_all
from tests.scenarios import ORG_KEYS_AZURE

# Organisation keys given to the prod data plane: distinctive, so any appearance
# anywhere (an upstream request, a response, a log) is found by a search.
ORG_KEYS: dict[str, str] = {
    "OPENAI_API_KEY": "orgkey-openai-4f1c9e",
    "ANTHROPIC_API_KEY": "orgkey-anthropic-7b2d0a",
    "GOOGLE_API_KEY": "orgkey-google-5e3c1f",
    "AZURE_API_KEY": "orgkey-azure-2a8b6d",
}
# The provider (mock name) each org key belongs to.
KEY_PROVIDER: dict[str, str] = {
    ORG_KEYS["OPENAI_API_KEY"]: "openai",
    ORG_KEYS["ANTHROPIC_API_KEY"]: "anthropic",
    ORG_KEYS["GOOGLE_API_KEY"]: "google",
    ORG_KEYS["AZURE_API_KEY"]: "azure-openai",
}
AZURE_RESOURCE = ORG_KEYS_AZURE.resource_name  # the "org-keys" scenario's [gateway.azure]


CLIENT_ID = "4mq0example0client0id0team0a"


def _fake_jwt() -> str:
    """A JWT-shaped bearer token as the ALB forwards it (unsigned; built here
    so that no token is committed)."""

    def part(value: dict[str, str] | str) -> str:
        raw = value if isinstance(value, str) else json.dumps(value)
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    claims = {"client_id": CLIENT_ID, "scope": "https://gateway.internal/invoke", "token_use": "access"}
    return ".".join([part({"alg": "RS256", "kid": "k"}), part(claims), part("signature")])


CLIENT_JWT = _fake_jwt()
# What Terraform writes for the references in the task definition: the stack's
# Cognito app client is the one whose token CLIENT_JWT stands for.
REFERENCES: dict[str, str] = {"aws_cognito_user_pool_client": CLIENT_ID}
CLIENT = {"Authorization": f"Bearer {CLIENT_JWT}"}


def stack_file(synth_outdir: Path, environment: str) -> Path:
    return synth_outdir / "stacks" / f"ai-gateway-{environment}" / "cdk.tf.json"


@pytest.fixture(scope="session")
def org_task(scenarios_outdir: Path) -> TaskDefinition:
    """The data plane the gateway tier attacks: JWT auth on, every org key (tests/scenarios.py "org-keys")."""
    return TaskDefinition.from_stack(stack_file(scenarios_outdir, "org-keys"))


@pytest.fixture(scope="session")
def passthrough_task(scenarios_outdir: Path) -> TaskDefinition:
    """JWT auth off: clients bring their own keys (tests/scenarios.py "base")."""
    return TaskDefinition.from_stack(stack_file(scenarios_outdir, "base"))


@pytest.fixture(scope="session")
def prod_task(synth_outdir: Path) -> TaskDefinition:
    """The shipped environments/prod.toml, for the smoke tests of the shipped files."""
    return TaskDefinition.from_stack(stack_file(synth_outdir, "prod"))


@pytest.fixture(scope="session")
def dev_task(synth_outdir: Path) -> TaskDefinition:
    """The shipped environments/dev.toml, for the smoke tests of the shipped files."""
    return TaskDefinition.from_stack(stack_file(synth_outdir, "dev"))


REGION = "us-east-1"  # the scenarios' region: Bedrock runs in the stack's region


@pytest.fixture(scope="session")
def credentials() -> Iterator[CredentialsEndpoint]:
    """The task role's credentials endpoint (ECS's, mocked)."""
    endpoint = CredentialsEndpoint().start()
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpRecorder]:
    """The collector's OTLP/HTTP receiver (recording)."""
    recorder = OtlpRecorder().start()
    yield recorder
    recorder.stop()


@pytest.fixture
def quiet_otlp(otlp: OtlpRecorder) -> OtlpRecorder:
    """The recorder with what earlier tests sent forgotten: every worker flushes what it holds within
    one flush interval, so after that (and a margin) only this test's telemetry arrives."""
    time.sleep(TELEMETRY_FLUSH_SECONDS + 0.5)
    otlp.clear()
    return otlp


@pytest.fixture(scope="session")
def mocks(credentials: CredentialsEndpoint) -> Iterator[dict[str, MockProvider]]:
    started = start_all()
    bedrock = BedrockRuntimeMock()
    bedrock.accept_from(credentials)  # it verifies every signature against the task role's credentials
    started["bedrock"] = bedrock.start()
    yield started
    stop_all(started)


@pytest.fixture(autouse=True)
def clear_recordings(request: pytest.FixtureRequest) -> None:
    """Each gateway-tier test starts with empty recordings."""
    if "mocks" in request.fixturenames:
        for mock in request.getfixturevalue("mocks").values():
            mock.clear()
            mock.error_status = None
            mock.error_message = None
            mock.reply_text = mock.default_reply_text
            mock.stream_gate = None
            mock.extra_headers = {}
            mock.extra_header_lines = []
    if "harness" in request.fixturenames:
        request.getfixturevalue("harness").interception.reset()
    if "otlp" in request.fixturenames:
        request.getfixturevalue("otlp").clear()


@pytest.fixture(scope="session")
def harness(
    org_task: TaskDefinition,
    passthrough_task: TaskDefinition,
    prod_task: TaskDefinition,
    mocks: dict[str, MockProvider],
) -> Iterator[GatewayHarness]:
    missing = system_tools_missing()
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: `make test` installs them (make system-deps)")
    # One gateway serves every data plane: prove they all run the same gateway, the shipped prod's included.
    assert org_task.environment(GATEWAY_CONTAINER) == passthrough_task.environment(GATEWAY_CONTAINER)
    assert org_task.environment(GATEWAY_CONTAINER) == prod_task.environment(GATEWAY_CONTAINER)
    upstreams = intercept_map(mocks, (AZURE_RESOURCE,))
    upstreams[bedrock_runtime_host(REGION)] = mocks["bedrock"].base_url
    with running_gateway(org_task, upstreams, mocks["sink"].base_url, REFERENCES) as running:
        yield running


@pytest.fixture(scope="session")
def org_data_plane(harness: GatewayHarness, credentials: CredentialsEndpoint, otlp: OtlpRecorder) -> RunningDataPlane:
    """JWT auth on, organisation keys injected, Bedrock through the task role
    (credentials endpoint), telemetry to the recording collector."""
    return harness.start_data_plane(ORG_KEYS, "org-keys", otlp_port=otlp.port, credentials_uri=credentials.full_uri)


@pytest.fixture(scope="session")
def passthrough_data_plane(harness: GatewayHarness, passthrough_task: TaskDefinition) -> RunningDataPlane:
    """JWT auth off, clients bring their own provider keys."""
    return harness.start_data_plane({}, "passthrough", task=passthrough_task)


def official_hosts(provider: str) -> set[str]:
    hosts = {host for host, name in UPSTREAM_HOSTS.items() if name == provider}
    if provider == "azure-openai":
        hosts.add(azure_openai_host(AZURE_RESOURCE))
    return hosts


def assert_no_org_key_leaves_its_provider(harness: GatewayHarness, *texts: str | bytes) -> None:
    """No org key in the given response texts, and every outbound request that
    carries an org key goes to that key's provider's official host."""
    for text in texts:
        decoded = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
        for key in KEY_PROVIDER:
            assert key not in decoded, f"an organisation key ({KEY_PROVIDER[key]}) reached the client"
    for event in harness.interception.outbound():
        carried = json.dumps([event.get("url"), event.get("path"), event.get("headers")])
        for key, provider in KEY_PROVIDER.items():
            if key in carried:
                assert event["host"] in official_hosts(provider), (
                    f"the {provider} organisation key went to {event['host']}: {event}"
                )


@contextlib.contextmanager
def held_streams(mock: MockProvider, port: int, count: int) -> Iterator[Callable[[], None]]:
    """``count`` chat streams under way through the data plane at ``port``, each past its first event
    and held there at ``mock``'s gate; the context gives the function that opens the gate and reads each
    stream to its end."""
    gate = threading.Event()
    mock.stream_gate = gate
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(count)]
    try:
        responses = []
        for connection in connections:
            body = json.dumps({"model": "mock", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
            connection.request("POST", "/v1/chat/completions", body, {
                "content-type": "application/json", "x-portkey-provider": "openai", **CLIENT,
            })  # fmt: skip
            response = connection.getresponse()
            assert response.status == 200 and response.read1(65536)  # under way
            responses.append(response)

        def finish() -> None:
            gate.set()
            for response in responses:
                rest = response.read()
                assert b"data: [DONE]" in rest, rest[-300:]

        yield finish
    finally:
        gate.set()
        for connection in connections:
            connection.close()
