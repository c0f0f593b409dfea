"""A machine token of one team's app client: ``make token ENV=<env> [TEAM=<team>]``
(``python -m tools.token <env> [--team T] [--outputs-json FILE] [--show-secret]``).

Reads the stack's outputs with ``terraform output -json`` in
``cdktf.out/stacks/ai-gateway-<env>`` (the client secret is a sensitive
output: Terraform gives it to this command, never to the terminal), then
asks the Cognito token endpoint for a ``client_credentials`` token with the
gateway's invoke scope, and prints only the token, so that
``TOKEN=$(make -s token ENV=prod TEAM=search)`` works. How the team gets a
token itself and calls the gateway with it goes to standard error, with the
secret as a variable; the client id and secret themselves go there only with
``--show-secret`` (``SHOW_SECRET=1`` for make). The team may be left out when
the environment has one (``default`` without ``[clients]`` tables).

An environment with JWT auth off (dev, local) has no token to give: its
clients send their own provider key; this says so and exits 1.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from aigw.environments import environment_named_or_report

ROOT = Path(__file__).resolve().parent.parent
INVOKE_SCOPE_SUFFIX = "/invoke"
TIMEOUT_SECONDS = 20


class TokenError(RuntimeError):
    pass


def stack_outputs(stack: str) -> dict[str, Any]:
    """``terraform output -json`` of the synthesized stack: name -> value (sensitive ones included)."""
    stack_dir = ROOT / "cdktf.out" / "stacks" / stack
    if not stack_dir.is_dir():
        raise TokenError(f"{stack_dir}: not synthesized; run `make synth` (and deploy) first")
    for command in (["terraform", "init", "-input=false", "-no-color"], ["terraform", "output", "-json"]):
        result = subprocess.run(command, cwd=stack_dir, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                check=False, timeout=300)  # fmt: skip
        if result.returncode != 0:
            raise TokenError(f"`{' '.join(command)}` in {stack_dir} failed: {result.stderr.strip()[-2000:]}")
    return {name: entry["value"] for name, entry in json.loads(result.stdout).items()}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would follow a redirect of the POST as a GET with the same headers,
    the client secret's Basic authorization included, to any host and scheme."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise TokenError(f"the token endpoint redirected ({code}) to {newurl}; the secret is not sent on")


def _loopback(url: str) -> bool:
    return urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


def request_token(token_endpoint: str, client_id: str, client_secret: str, scope: str) -> str:
    """The access token of a client_credentials grant (HTTP Basic client authentication)."""
    if not token_endpoint.startswith("https://") and not _loopback(token_endpoint):
        raise TokenError(f"token endpoint {token_endpoint!r}: the client secret goes only to an https endpoint")
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": scope}).encode()
    request = urllib.request.Request(token_endpoint, data=body, method="POST", headers={
        "Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=TIMEOUT_SECONDS) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:500]
        raise TokenError(f"the token endpoint answered {error.code}: {detail}") from error
    except (urllib.error.URLError, TimeoutError) as error:
        raise TokenError(f"the token endpoint {token_endpoint} could not be reached: {error}") from error
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise TokenError("the token endpoint's answer has no access_token")
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("environment")
    parser.add_argument("--team", help="the team ([clients.<team>]); needed when the environment has several")
    parser.add_argument("--outputs-json", type=Path, help="the stack's outputs (`terraform output -json`) from a file")
    parser.add_argument("--show-secret", action="store_true", help="also print the client id and secret (stderr)")
    args = parser.parse_args(argv)
    environment = environment_named_or_report(args.environment)
    if environment is None:
        return 2
    if environment.settings.hybrid.enabled:
        print(
            f"{environment.path}: {environment.name} runs in hybrid mode and takes no token: its clients send their "
            "Portkey API key, which the enterprise gateway checks against Portkey's control plane (docs/hybrid.md)",
            file=sys.stderr,
        )
        return 1
    teams = sorted(environment.settings.teams)
    team = args.team or (teams[0] if len(teams) == 1 else None)
    if team not in teams:
        problem = f"no team {args.team!r}" if args.team else "more than one team"
        print(f"{environment.path}: {problem}; name one of {', '.join(teams)} with TEAM=<team>", file=sys.stderr)
        return 2
    if not environment.settings.edge.enable_jwt_auth:
        print(
            f"{environment.path}: edge.enable_jwt_auth is off: {environment.name} takes no token; its clients send "
            "their own provider key (see the README, 'Calling the gateway from the SDKs')",
            file=sys.stderr,
        )
        return 1
    try:
        if args.outputs_json:
            raw = json.loads(args.outputs_json.read_text())
            outputs = {name: entry["value"] for name, entry in raw.items()}
        else:
            outputs = stack_outputs(environment.stack_name)
        scopes = [s for s in outputs["cognito_scopes"] if s.endswith(INVOKE_SCOPE_SUFFIX)]
        if len(scopes) != 1:
            raise TokenError(f"cognito_scopes {outputs['cognito_scopes']} has no single invoke scope")
        client_id, secret = outputs["cognito_client_ids"][team], outputs["cognito_client_secrets"][team]
        token = request_token(outputs["cognito_token_endpoint"], client_id, secret, scopes[0])
    except (TokenError, KeyError) as error:
        print(f"make token: {error}", file=sys.stderr)
        return 1
    print(how(environment.stack_name, team, client_id, outputs, scopes[0]), file=sys.stderr)
    if args.show_secret:
        print(f"client id: {client_id}\nclient secret: {secret}", file=sys.stderr)
    print(token)
    return 0


def how(stack: str, team: str, client_id: str, outputs: dict[str, Any], scope: str) -> str:
    """How the team gets a token itself and calls the gateway with it (no secret in it)."""
    return "\n".join(
        [
            f"team {team}: app client {client_id}; its secret: terraform output -json cognito_client_secrets "
            f"(in cdktf.out/stacks/{stack}), or SHOW_SECRET=1",
            "get a token (valid for the team's token_validity_minutes):",
            f'  TOKEN=$(curl -s -u "{client_id}:$CLIENT_SECRET" -d grant_type=client_credentials -d scope={scope} \\',
            f"    {outputs['cognito_token_endpoint']} | jq -r .access_token)",
            "call the gateway with it:",
            f'  curl -s {outputs.get("gateway_url", "<gateway_url>")}/v1/chat/completions -H "Authorization: Bearer '
            '$TOKEN" -H "x-portkey-provider: openai" \\',
            "    -H 'content-type: application/json' "
            """-d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'""",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
