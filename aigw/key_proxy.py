"""The key proxy in front of the gateway: its nginx configuration and start
command, as plain Python (no cdktf), shared by the compute module and the
local harness. docs/gateway-contract.md explains every rule; in short, the
proxy faces authenticated but untrusted clients and

- serves an allow-list of inference routes (POST only), each for the
  providers it makes sense for; everything else, `/v1/proxy/…`, files,
  batches, stored responses, `/log/stream` and WebSocket upgrades included,
  gets a JSON refusal naming the rule;
- forwards an allow-list of request headers and sets every header that
  chooses a host, a resource, a deployment or credentials itself (Azure's
  resource, deployment and API version come from the environment file);
- with organisation keys (JWT auth on): replaces the client's token with the
  organisation's key of the provider the client names; a request carrying its
  own ``x-portkey-config`` gets neither an org key nor the provider header
  (so a config cannot bounce a request back into the proxy to collect one);
- forwards the canonical route path only (no client path, no query string),
  keeps upstream connections alive, answers its own errors in JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from aigw.settings import EdgeSettings, GatewaySettings

GATEWAY_PORT = 8787  # the gateway's own (default) port, inside the task only
PROXY_PORT = 8080  # the task's entry point: the load balancer's target
HEALTH_PATH = "/health"  # proxied to the gateway's "/" ("AI Gateway says hey!")
# Upstream (gateway) read/send timeout: completions stream for minutes.
UPSTREAM_TIMEOUT_SECONDS = 300
# The load balancer's idle timeout; the proxy must keep client connections
# open longer than the ALB does, or the ALB reuses a connection nginx is
# closing and answers 502.
ALB_IDLE_TIMEOUT_SECONDS = 300
CLIENT_KEEPALIVE_SECONDS = ALB_IDLE_TIMEOUT_SECONDS + 50
UPSTREAM_KEEPALIVE_CONNECTIONS = 32
DEFAULT_MAX_BODY_MIB = 50

KEY_PROXY_DIR = Path(__file__).resolve().parent.parent / "config" / "key-proxy"
ENTRYPOINT_FILE = KEY_PROXY_DIR / "entrypoint.sh"
TEMPLATE_FILE = KEY_PROXY_DIR / "gateway.conf.j2"
TEMPLATE_VARIABLE = "AIGW_PROXY_TEMPLATE"
KEY_VARIABLES_VARIABLE = "AIGW_KEY_VARIABLES"

# Secret name (Secrets Manager, `gateway.provider_keys`) -> Portkey provider slug.
PROVIDER_SLUGS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "azure": "azure-openai",
}
AZURE_SLUG = PROVIDER_SLUGS["azure"]

# The inference routes the proxy serves (POST only), each with the providers
# it is offered for. Everything else is refused. Files, batches, fine-tuning,
# stored completions/responses, assistants, vector stores, `/v1/proxy` and
# the catch-all `/v1/*` passthrough would let any client read or delete the
# organisation's data at the provider with the organisation's key.
INFERENCE_ROUTES: dict[str, frozenset[str]] = {
    "/v1/chat/completions": frozenset({"openai", "anthropic", "google", "azure-openai"}),
    "/v1/completions": frozenset({"openai", "azure-openai"}),
    "/v1/embeddings": frozenset({"openai", "google", "azure-openai"}),
    "/v1/messages": frozenset({"anthropic"}),
    "/v1/responses": frozenset({"openai"}),
    "/v1/images/generations": frozenset({"openai", "azure-openai"}),
    "/v1/images/edits": frozenset({"openai", "azure-openai"}),
    "/v1/audio/speech": frozenset({"openai", "azure-openai"}),
    "/v1/audio/transcriptions": frozenset({"openai", "azure-openai"}),
    "/v1/audio/translations": frozenset({"openai", "azure-openai"}),
    "/v1/moderations": frozenset({"openai"}),
}

# Client request headers the proxy passes on, besides the ones it decides
# itself (Authorization, x-portkey-provider, x-portkey-config, Azure's).
# Nothing else reaches the gateway: not x-portkey-custom-host, not
# x-portkey-forward-headers, not any credential or host selector
# (x-portkey-aws-*, -vertex-*, -azure-*, -openai-organization/-project,
# -huggingface-base-url, x-api-key with org keys, …).
FORWARDED_HEADERS: tuple[str, ...] = (
    "content-type",
    "accept",
    "x-portkey-trace-id",
    "x-portkey-metadata",
    "x-portkey-retry-count",
    "x-portkey-request-timeout",
    "x-portkey-strict-open-ai-compliance",
    "x-portkey-anthropic-version",
    "x-portkey-anthropic-beta",
    "anthropic-version",
    "anthropic-beta",
    "x-amzn-trace-id",
)
# With org keys off, clients authenticate to the provider themselves.
CLIENT_CREDENTIAL_HEADERS: tuple[str, ...] = ("authorization", "x-api-key")

# Client routing configs (x-portkey-config) may use these keys only: routing
# among providers with the client's own keys. Everything that would choose a
# host, a region, a resource, an account, a credentials source or a callback
# (custom_host, resource_name, aws_region, vertex_*, hooks, guardrails,
# forward_headers, …) is refused, and so are \u escapes, with which a JSON key
# could spell a refused name. Conditional routing is not offered.
CONFIG_KEYS: tuple[str, ...] = (
    "strategy", "mode", "on_status_codes", "targets", "provider", "api_key", "weight", "retry", "attempts",
    "use_retry_after_header", "request_timeout", "cache", "max_age", "strict_open_ai_compliance", "override_params",
    "model", "temperature", "max_tokens", "max_completion_tokens", "top_p", "top_k", "stop", "seed",
    "presence_penalty", "frequency_penalty", "n",
)  # fmt: skip
# Providers a client config may name (their hosts are fixed; Azure's is not).
CONFIG_PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "google")

# The proxy's own errors (nginx-generated, never the gateway's), as JSON.
OWN_ERRORS: dict[int, str] = {
    400: "the request could not be read",
    404: "not an offered route",
    408: "the request was not received in time",
    411: "the request needs a length",
    413: "the request body is larger than the gateway accepts (gateway.max_request_body_mib)",
    414: "the request line is too long",
    494: "the request headers are too large",
    500: "the key proxy failed",
    501: "the request uses a transfer encoding the proxy does not implement",
    502: "the gateway did not answer",
    503: "the gateway is unavailable",
    504: "the gateway did not answer in time",
    505: "the HTTP version is not supported",
}


ERROR_LOCATION = "/_aigw/errors"


@dataclass(frozen=True)
class AzureTarget:
    """The one Azure OpenAI deployment the gateway may call (from the environment file)."""

    resource_name: str
    deployment_id: str
    api_version: str


@dataclass(frozen=True)
class ProxyConfig:
    """How the proxy treats a request.

    org_keys: secret names whose values the proxy injects (JWT auth on);
    empty: clients bring their own provider keys. azure: the Azure deployment
    Azure requests go to (None: Azure is not offered)."""

    org_keys: tuple[str, ...] = ()
    azure: AzureTarget | None = None
    max_body_mib: int = DEFAULT_MAX_BODY_MIB
    routes: Mapping[str, frozenset[str]] = field(default_factory=lambda: INFERENCE_ROUTES)

    def __post_init__(self) -> None:
        unknown = set(self.org_keys) - set(PROVIDER_SLUGS)
        if unknown:
            raise ValueError(f"no provider slug for org keys {sorted(unknown)}")
        if "google" in self.org_keys:
            raise ValueError(
                "google cannot carry an organisation key: the gateway puts the body's model into the URL beside it"
            )
        if "azure" in self.org_keys and self.azure is None:
            raise ValueError("an Azure org key needs an AzureTarget (resource, deployment, API version)")

    @property
    def injects_keys(self) -> bool:
        return bool(self.org_keys)

    @property
    def offered_providers(self) -> tuple[str, ...]:
        """Provider slugs clients may name in x-portkey-provider."""
        if self.injects_keys:
            return tuple(PROVIDER_SLUGS[name] for name in self.org_keys)
        return tuple(slug for slug in PROVIDER_SLUGS.values() if slug != AZURE_SLUG or self.azure is not None)


def key_variable(secret_name: str) -> str:
    """Environment variable the proxy container receives an org key in."""
    return f"{secret_name.upper()}_API_KEY"


_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._:/+=~| -]*$")
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_-]*$")


def nginx_string(value: str) -> str:
    """A double-quoted nginx string of a value the configuration embeds.
    Only values validated at settings time reach here; anything that could
    end the string, start a variable or a directive is refused."""
    if not _SAFE_VALUE.match(value):
        raise ValueError(f"{value!r} cannot be embedded in the proxy configuration")
    return f'"{value}"'


def nginx_json_body(payload: object) -> str:
    """The text of a JSON response body for an nginx single-quoted string:
    nginx unescapes backslashes and would expand `$variables`."""
    text = json.dumps(payload, separators=(",", ":"))
    if "'" in text or "$" in text:
        raise ValueError(f"{text!r} cannot be quoted in the proxy configuration")
    return text.replace("\\", "\\\\")


def refusal(rule: str, message: str) -> dict[str, object]:
    """The JSON body of a refusal: OpenAI-style error with the rule that refused."""
    return {"error": {"message": message, "type": "aigw_refused", "rule": rule}}


_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_FILE.parent),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # nginx, not HTML: the filters below do the quoting
    keep_trailing_newline=True,
)
_TEMPLATES.filters["q"] = nginx_string
_TEMPLATES.filters["body"] = nginx_json_body


def proxy_template(config: ProxyConfig) -> str:
    """The nginx configuration (a conf.d file), rendered from
    config/key-proxy/gateway.conf.j2. An envsubst template: `${X_API_KEY}`
    placeholders are filled from the container's secrets at start
    (config/key-proxy/entrypoint.sh)."""
    offered = config.offered_providers
    for word in (*CONFIG_KEYS, *CONFIG_PROVIDERS):
        if not _IDENTIFIER.match(word):
            raise ValueError(f"{word!r} cannot be part of the config rule's regular expression")
    routes = [(route, [slug for slug in offered if slug in slugs]) for route, slugs in sorted(config.routes.items())]
    headers = {name: "$http_" + name.replace("-", "_") for name in FORWARDED_HEADERS}
    headers["content-type"] = "$content_type"
    if config.injects_keys:
        headers["authorization"] = "$aigw_authorization"
        headers["x-portkey-provider"] = "$aigw_provider"
    else:
        headers.update({name: "$http_" + name.replace("-", "_") for name in CLIENT_CREDENTIAL_HEADERS})
        headers["x-portkey-provider"] = "$aigw_provider_slug"
    headers["x-portkey-config"] = "$http_x_portkey_config"
    azure: list[tuple[str, str, str]] = []
    if config.azure is not None:
        for header, value in (
            ("x-portkey-azure-resource-name", config.azure.resource_name),
            ("x-portkey-azure-deployment-id", config.azure.deployment_id),
            ("x-portkey-azure-api-version", config.azure.api_version),
        ):
            variable = "$aigw_" + header.removeprefix("x-portkey-").replace("-", "_")
            azure.append((header, variable, value))
            headers[header] = variable
    refusals = {
        "websocket": refusal("websocket", "WebSocket upgrades (realtime) are not offered by this gateway"),
        "health_method": refusal("method", f"only GET is offered on {HEALTH_PATH}"),
        "method": {route: refusal("method", f"only POST is offered on {route}") for route, _ in routes},
        "config": refusal(
            "config",
            f"x-portkey-config may only route among {', '.join(CONFIG_PROVIDERS)} with your own keys, "
            f"using the keys {', '.join(CONFIG_KEYS)}; no \\u escapes",
        ),
        "provider": {
            route: refusal(
                "provider",
                f"name a provider offered on {route} in x-portkey-provider ({', '.join(slugs) or 'none'}) "
                "or send an x-portkey-config with your own provider keys",
            )
            for route, slugs in routes
        },
        "route": refusal("route", f"not an offered route; offered: POST {', '.join(r for r, _ in routes)}"),
        "own": {status: refusal(f"http-{status}", message) for status, message in OWN_ERRORS.items()},
    }
    return _TEMPLATES.get_template(TEMPLATE_FILE.name).render(
        gateway_port=GATEWAY_PORT,
        proxy_port=PROXY_PORT,
        upstream_keepalive=UPSTREAM_KEEPALIVE_CONNECTIONS,
        routes=routes,
        config_keys=CONFIG_KEYS,
        config_providers=CONFIG_PROVIDERS,
        offered=offered,
        org_keys=[(PROVIDER_SLUGS[name], key_variable(name)) for name in config.org_keys],
        azure=azure,
        max_body_mib=config.max_body_mib,
        alb_idle_timeout=ALB_IDLE_TIMEOUT_SECONDS,
        client_keepalive=CLIENT_KEEPALIVE_SECONDS,
        own_errors=OWN_ERRORS,
        error_location=ERROR_LOCATION,
        refusals=refusals,
        health_path=HEALTH_PATH,
        headers=sorted(headers.items()),
        upstream_timeout=UPSTREAM_TIMEOUT_SECONDS,
    )


def entrypoint_script() -> str:
    """The proxy container's start command (config/key-proxy/entrypoint.sh)."""
    return ENTRYPOINT_FILE.read_text(encoding="utf-8")


def proxy_environment(config: ProxyConfig) -> dict[str, str]:
    """The proxy container's (non-secret) environment."""
    return {
        TEMPLATE_VARIABLE: proxy_template(config),
        KEY_VARIABLES_VARIABLE: " ".join(key_variable(name) for name in config.org_keys),
    }


def proxy_config_for(gateway: GatewaySettings, edge: EdgeSettings) -> ProxyConfig:
    """The key proxy's rules for an environment: org keys only for
    authenticated (JWT) clients, otherwise clients bring their own."""
    azure = gateway.azure
    return ProxyConfig(
        org_keys=tuple(gateway.provider_keys) if edge.enable_jwt_auth else (),
        azure=AzureTarget(azure.resource_name, azure.deployment_id, azure.api_version) if azure else None,
        max_body_mib=gateway.max_request_body_mib,
    )
