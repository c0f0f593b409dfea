"""Fixtures of the gateway tier (pytest plugin, loaded by tests/conftest.py).

One real gateway (as deployed, see tests/gateway_harness.py) serves the whole
session, with the key proxies of two shipped environments in front of it:
prod (JWT auth on: organisation keys for openai, anthropic and azure)
and dev (JWT auth off: clients bring their own keys). Both proxies are the
synthesized task definitions of those environments, not a test variant.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigw.gateway_task import GATEWAY_CONTAINER
from tests.aws_mocks import BedrockRuntimeMock, CredentialsEndpoint, OtlpRecorder, bedrock_runtime_host
from tests.gateway_harness import GatewayHarness, Proxy, TaskDefinition, running_gateway, system_tools_missing
from tests.mock_providers import UPSTREAM_HOSTS, MockProvider, azure_openai_host, intercept_map, start_all, stop_all

# Organisation keys given to the prod proxy: distinctive, so any appearance
# anywhere (an upstream request, a response, a log) is found by a search.
ORG_KEYS: dict[str, str] = {
    "OPENAI_API_KEY": "orgkey-openai-4f1c9e",
    "ANTHROPIC_API_KEY": "orgkey-anthropic-7b2d0a",
    "AZURE_API_KEY": "orgkey-azure-2a8b6d",
}
# The provider (mock name) each org key belongs to.
KEY_PROVIDER: dict[str, str] = {
    ORG_KEYS["OPENAI_API_KEY"]: "openai",
    ORG_KEYS["ANTHROPIC_API_KEY"]: "anthropic",
    ORG_KEYS["AZURE_API_KEY"]: "azure-openai",
}
PROD_AZURE_RESOURCE = "example-openai"  # environments/prod.toml [gateway.azure]


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
CLIENT = {"Authorization": f"Bearer {CLIENT_JWT}"}


def stack_file(synth_outdir: Path, environment: str) -> Path:
    return synth_outdir / "stacks" / f"ai-gateway-{environment}" / "cdk.tf.json"


@pytest.fixture(scope="session")
def prod_task(synth_outdir: Path) -> TaskDefinition:
    return TaskDefinition.from_stack(stack_file(synth_outdir, "prod"))


@pytest.fixture(scope="session")
def dev_task(synth_outdir: Path) -> TaskDefinition:
    return TaskDefinition.from_stack(stack_file(synth_outdir, "dev"))


PROD_REGION = "us-east-1"  # environments/prod.toml: Bedrock runs in the stack's region


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
            mock.stream_gate = None
            mock.extra_headers = {}
    if "harness" in request.fixturenames:
        request.getfixturevalue("harness").interception.reset()
    if "otlp" in request.fixturenames:
        request.getfixturevalue("otlp").clear()


@pytest.fixture(scope="session")
def harness(
    prod_task: TaskDefinition, dev_task: TaskDefinition, mocks: dict[str, MockProvider]
) -> Iterator[GatewayHarness]:
    missing = system_tools_missing()
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: `make test` installs them (make system-deps)")
    # One gateway serves both proxies: prove the two environments run the same gateway.
    assert prod_task.environment(GATEWAY_CONTAINER) == dev_task.environment(GATEWAY_CONTAINER)
    upstreams = intercept_map(mocks, (PROD_AZURE_RESOURCE,))
    upstreams[bedrock_runtime_host(PROD_REGION)] = mocks["bedrock"].base_url
    with running_gateway(prod_task, upstreams, mocks["sink"].base_url) as running:
        yield running


@pytest.fixture(scope="session")
def org_proxy(harness: GatewayHarness, credentials: CredentialsEndpoint, otlp: OtlpRecorder) -> Proxy:
    """prod: JWT auth on, organisation keys injected, Bedrock through the task
    role (credentials endpoint), telemetry to the recording collector."""
    return harness.start_proxy(ORG_KEYS, "prod", otlp_port=otlp.port, credentials_uri=credentials.full_uri)


@pytest.fixture(scope="session")
def passthrough_proxy(harness: GatewayHarness, dev_task: TaskDefinition) -> Proxy:
    """dev: JWT auth off, clients bring their own provider keys."""
    return harness.start_proxy({}, "dev", task=dev_task)


def official_hosts(provider: str) -> set[str]:
    hosts = {host for host, name in UPSTREAM_HOSTS.items() if name == provider}
    if provider == "azure-openai":
        hosts.add(azure_openai_host(PROD_AZURE_RESOURCE))
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
