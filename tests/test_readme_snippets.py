"""The README's SDK snippets ("Calling the gateway from the SDKs"), each run
from the README's own text as a user runs it: a Python process with
GATEWAY_URL and GATEWAY_TOKEN, against the data plane and the real gateway,
with JWT auth on (the organisation's keys go upstream) and off (the client's
own key does). A snippet edited into something that does not work, or a
claim about what goes upstream that is not true, fails here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import processes
from tests.aws_mocks import BedrockRuntimeMock
from tests.gateway_fixtures import CLIENT_JWT, ORG_KEYS
from tests.gateway_harness import RunningDataPlane
from tests.mock_providers import MockProvider
from tests.project_copy import ROOT

pytestmark = pytest.mark.gateway
SNIPPET = re.compile(r"<!-- snippet: (?P<name>[a-z]+) -->\n```python\n(?P<code>.*?)```", re.S)
CLIENTS_OWN_KEY = "sk-the-clients-own-key"
PROVIDER = {"openai": "openai", "anthropic": "anthropic", "portkey": "openai"}


def readme_snippets() -> dict[str, str]:
    return {match["name"]: match["code"] for match in SNIPPET.finditer((ROOT / "README.md").read_text())}


def run_snippet(
    name: str, data_plane: RunningDataPlane, token: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / f"readme_{name}.py"  # not <name>.py: it would shadow the SDK's package
    script.write_text(readme_snippets()[name])
    env = {**os.environ, "GATEWAY_URL": data_plane.base_url, "GATEWAY_TOKEN": token, "NO_PROXY": "127.0.0.1"}
    return processes.run([sys.executable, str(script)], cwd=tmp_path, env=env, timeout=120)


def test_the_readme_has_every_snippet_this_file_runs() -> None:
    assert set(readme_snippets()) == {*PROVIDER, "bedrock"}


@pytest.mark.parametrize("name", sorted(PROVIDER))
@pytest.mark.parametrize("jwt_auth", ["on", "off"])
def test_the_snippet_answers_plain_and_streamed(
    name: str, jwt_auth: str, request: pytest.FixtureRequest, mocks: dict[str, MockProvider], tmp_path: Path
) -> None:
    data_plane: RunningDataPlane = request.getfixturevalue(
        "org_data_plane" if jwt_auth == "on" else "passthrough_data_plane"
    )
    result = run_snippet(name, data_plane, CLIENT_JWT if jwt_auth == "on" else CLIENTS_OWN_KEY, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    provider = mocks[PROVIDER[name]]
    assert result.stdout.splitlines() == [provider.reply_text, provider.reply_text]  # the plain call, the stream
    assert [bool(sent.json().get("stream")) for sent in provider.requests] == [False, True]
    key = ORG_KEYS[f"{PROVIDER[name].upper()}_API_KEY"] if jwt_auth == "on" else CLIENTS_OWN_KEY
    assert provider.api_keys() == [key, key]


def test_the_bedrock_snippet_is_signed_with_the_task_role(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider], tmp_path: Path
) -> None:
    result = run_snippet("bedrock", org_data_plane, CLIENT_JWT, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    bedrock = mocks["bedrock"]
    assert isinstance(bedrock, BedrockRuntimeMock)
    assert result.stdout.splitlines() == [bedrock.reply_text]
    assert bedrock.verifications == [True]


def test_the_bedrock_snippet_is_refused_without_jwt_auth(
    passthrough_data_plane: RunningDataPlane, mocks: dict[str, MockProvider], tmp_path: Path
) -> None:
    result = run_snippet("bedrock", passthrough_data_plane, CLIENTS_OWN_KEY, tmp_path)
    assert result.returncode != 0
    assert "openai.PermissionDeniedError" in result.stderr, result.stderr[-2000:]
    assert mocks["bedrock"].requests == []
