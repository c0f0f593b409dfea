"""`make token ENV=<env>` (tools/token.py): a client_credentials token from
the stack's outputs, with the secret sent only to the token endpoint and
printed only when asked. A loopback server plays Cognito's token endpoint."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.mock_providers import LoopbackServer, RecordedRequest, Reply
from tools import token

CLIENT_ID = "4mq0example0client0id"
SECRET = "s3cr3t-" + "x" * 20
ISSUED = "eyJhbGciOiJSUzI1NiJ9.eyJjbGllbnRfaWQiOiI0bXEwIn0.c2ln"


class TokenEndpoint(LoopbackServer):
    """Answers a client_credentials grant with Basic client authentication, as Cognito does."""

    def handle(self, request: RecordedRequest) -> Reply:
        self.requests.append(request)
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
        form = urllib.parse.parse_qs(request.body.decode())
        if request.headers.get("authorization") != expected:
            return Reply.json({"error": "invalid_client"}, 400)
        if form != {"grant_type": ["client_credentials"], "scope": ["https://gateway.internal/invoke"]}:
            return Reply.json({"error": "invalid_scope"}, 400)
        return Reply.json({"access_token": ISSUED, "expires_in": 3600, "token_type": "Bearer"})

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[RecordedRequest] = []


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint().start() as server:
        yield server


def outputs_file(tmp_path: Path, token_endpoint: str, team: str = "default") -> Path:
    outputs = {
        "gateway_url": "https://gateway.example.com",
        "cognito_client_ids": {team: CLIENT_ID, "other": "7other0client"},
        "cognito_client_secrets": {team: SECRET, "other": "not-" + SECRET},
        "cognito_token_endpoint": token_endpoint,
        "cognito_scopes": ["https://gateway.internal/invoke", "https://gateway.internal/admin"],
    }
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({name: {"value": value, "sensitive": False} for name, value in outputs.items()}))
    return path


def test_prints_only_the_token(endpoint: TokenEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = outputs_file(tmp_path, f"{endpoint.base_url}/oauth2/token")
    assert token.main(["prod", "--outputs-json", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ISSUED + "\n"
    assert SECRET not in captured.out + captured.err
    assert [r.path for r in endpoint.requests] == ["/oauth2/token"]
    # How to do it without make, on stderr: the team's client id, the secret as a variable.
    assert f'curl -s -u "{CLIENT_ID}:$CLIENT_SECRET" -d grant_type=client_credentials' in captured.err
    assert "https://gateway.example.com/v1/chat/completions" in captured.err


def test_the_secret_is_printed_only_when_asked(
    endpoint: TokenEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = outputs_file(tmp_path, f"{endpoint.base_url}/oauth2/token")
    assert token.main(["prod", "--outputs-json", str(path), "--show-secret"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ISSUED + "\n"
    assert f"client secret: {SECRET}" in captured.err


def test_a_refused_grant_names_the_endpoints_answer(
    endpoint: TokenEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(token.TokenError, match=r"answered 400: .*invalid_client"):
        token.request_token(f"{endpoint.base_url}/oauth2/token", CLIENT_ID, "wrong", "https://gateway.internal/invoke")


def test_the_secret_never_goes_to_a_plain_http_endpoint_off_loopback() -> None:
    with pytest.raises(token.TokenError, match="only to an https endpoint"):
        token.request_token("http://auth.example.com/oauth2/token", CLIENT_ID, SECRET, "scope")


def test_an_environment_without_jwt_auth_has_no_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert token.main(["dev", "--outputs-json", str(outputs_file(tmp_path, "https://unused"))]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "edge.enable_jwt_auth is off: dev takes no token" in captured.err


def test_a_hybrid_environment_has_no_token_and_says_what_its_clients_send(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIGW_ENV_DIR", str(ROOT / "examples" / "hybrid-mcp"))
    # With or without a team named: hybrid mode has no teams, and no token for any of them.
    for argv in (["hybrid-mcp"], ["hybrid-mcp", "--team", "ops"]):
        assert token.main(argv) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "hybrid-mcp runs in hybrid mode and takes no token: its clients send their Portkey API key" in (
            captured.err
        )


class Redirecting(LoopbackServer):
    """A token endpoint that answers 302 to another server: urllib would follow it with the same headers."""

    def __init__(self, to: str) -> None:
        super().__init__()
        self.to = to

    def handle(self, request: RecordedRequest) -> Reply:
        return Reply(302, {"location": self.to}, b"")


def test_a_redirect_is_refused_and_the_secret_goes_nowhere_else(endpoint: TokenEndpoint) -> None:
    redirecting = Redirecting(f"{endpoint.base_url}/steal").start()
    try:
        with pytest.raises(token.TokenError, match=r"redirected \(302\)"):
            token.request_token(f"{redirecting.base_url}/oauth2/token", CLIENT_ID, SECRET, "scope")
    finally:
        redirecting.stop()
    assert endpoint.requests == []


def test_a_team_gets_a_token_of_its_own_client(
    endpoint: TokenEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIGW_ENV_DIR", str(ROOT / "examples" / "multi-team"))
    path = outputs_file(tmp_path, f"{endpoint.base_url}/oauth2/token", team="search")
    assert token.main(["teams", "--team", "search", "--outputs-json", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ISSUED + "\n" and "team search: app client " + CLIENT_ID in captured.err
    # A team the environment does not configure is refused, even where the outputs name it.
    assert token.main(["teams", "--team", "other", "--outputs-json", str(path)]) == 2


@pytest.mark.parametrize(("team", "problem"), [(None, "more than one team"), ("nobody", "no team 'nobody'")])
def test_an_environment_with_several_teams_needs_one_named(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    team: str | None,
    problem: str,
) -> None:
    monkeypatch.setenv("AIGW_ENV_DIR", str(ROOT / "examples" / "multi-team"))
    path = outputs_file(tmp_path, "https://unused")
    assert token.main(["teams", *(["--team", team] if team else []), "--outputs-json", str(path)]) == 2
    err = capsys.readouterr().err
    assert problem in err and "name one of batch, default, search with TEAM=<team>" in err
