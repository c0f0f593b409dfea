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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

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

ENTRYPOINT_FILE = Path(__file__).resolve().parent.parent / "config" / "key-proxy" / "entrypoint.sh"
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
    413: "the request body is larger than the gateway accepts (gateway.max_request_body_mib)",
    414: "the request line is too long",
    494: "the request headers are too large",
    500: "the key proxy failed",
    502: "the gateway did not answer",
    503: "the gateway is unavailable",
    504: "the gateway did not answer in time",
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


def nginx_string(value: str) -> str:
    """A double-quoted nginx string of a value the configuration embeds.
    Only values validated at settings time reach here; anything that could
    end the string, start a variable or a directive is refused."""
    if not _SAFE_VALUE.match(value):
        raise ValueError(f"{value!r} cannot be embedded in the proxy configuration")
    return f'"{value}"'


def _json_refusal(status: int, rule: str, message: str) -> list[str]:
    body = json.dumps({"error": {"message": message, "type": "aigw_refused", "rule": rule}}, separators=(",", ":"))
    if "'" in body or "$" in body:
        raise ValueError(f"refusal body for {rule!r} cannot be quoted in nginx")
    return [f'set $aigw_rule "{rule}";', f"return {status} '{body}';"]


def _block(header: str, lines: Iterable[str]) -> list[str]:
    return [f"{header} {{", *(f"    {line}" if line else "" for line in lines), "}"]


def _map(source: str, target: str, entries: Iterable[tuple[str, str]], default: str = '""') -> list[str]:
    return _block(f"map {source} {target}", [f"default {default};", *(f"{key} {value};" for key, value in entries)])


def proxy_template(config: ProxyConfig) -> str:
    """The nginx configuration (http-level: a conf.d file). An envsubst
    template: `${X_API_KEY}` placeholders are filled from the container's
    secrets at start (config/key-proxy/entrypoint.sh)."""
    offered = config.offered_providers
    lines = [
        "# Rendered by modules/key_proxy.py; see docs/gateway-contract.md.",
        "log_format aigw_access escape=json",
        '  \'{"time":"$time_iso8601","method":"$request_method","path":"$uri","status":$status,\'',
        '  \'"request_time":$request_time,"upstream_time":"$upstream_response_time",\'',
        '  \'"provider":"$upstream_http_x_portkey_provider",\'',
        '  \'"option":"$upstream_http_x_portkey_last_used_option_index",\'',
        '  \'"rule":"$aigw_rule","bytes":$body_bytes_sent,"trace":"$http_x_amzn_trace_id"}\';',
        "",
        *_block(
            "upstream aigw_gateway",
            [
                f"server 127.0.0.1:{GATEWAY_PORT};",
                f"keepalive {UPSTREAM_KEEPALIVE_CONNECTIONS};",
                "keepalive_timeout 60s;",
            ],
        ),
        "",
        "# Route x provider: which providers each inference route is offered for.",
        *_map(
            '"$uri|$http_x_portkey_provider"',
            "$aigw_route_offers_provider",
            (
                (nginx_string(f"{route}|{slug}"), "1")
                for route, slugs in sorted(config.routes.items())
                for slug in offered
                if slug in slugs
            ),
            default="0",
        ),
        "# A client config may only route among fixed-host providers with its own keys.",
        *_map(
            "$http_x_portkey_config",
            "$aigw_config_refused",
            [
                # The PCRE \\\\u (a backslash, then u) in nginx's quoting.
                ('"~\\\\\\\\u"', "1"),
                (f'"~\\"(?!(?:{"|".join(CONFIG_KEYS)})\\")[^\\"]*\\"\\s*:"', "1"),
                # Possessive \s*+: a backtracking \s* would let the lookahead start at a space.
                (f'"~\\"provider\\"\\s*+:\\s*+(?!\\"(?:{"|".join(CONFIG_PROVIDERS)})\\")"', "1"),
            ],
            "0",
        ),
        "# A request with its own routing config names its providers inside it.",
        *_map('"$http_x_portkey_config|$aigw_route_offers_provider"', "$aigw_provider_refused", [('"|0"', "1")], "0"),
    ]
    lines += [
        "# The provider header the gateway receives is always one of these",
        "# spellings (nginx compares map strings without regard to case).",
        *_map(
            "$http_x_portkey_provider",
            "$aigw_provider_slug",
            ((nginx_string(slug), nginx_string(slug)) for slug in offered),
        ),
    ]
    if config.injects_keys:
        lines += [
            *_map(
                "$http_x_portkey_provider",
                "$aigw_org_key",
                (
                    (nginx_string(PROVIDER_SLUGS[name]), '"Bearer ${' + key_variable(name) + '}"')
                    for name in config.org_keys
                ),
            ),
            "# Org keys only for requests without a config of their own; such a",
            "# request gets no provider header either, so a config cannot make the",
            "# gateway call back into this proxy to collect a key.",
            *_map("$http_x_portkey_config", "$aigw_authorization", [('""', "$aigw_org_key")]),
            *_map("$http_x_portkey_config", "$aigw_provider", [('""', "$aigw_provider_slug")]),
        ]
    azure_headers: dict[str, str] = {}
    if config.azure is not None:
        for header, value in (
            ("x-portkey-azure-resource-name", config.azure.resource_name),
            ("x-portkey-azure-deployment-id", config.azure.deployment_id),
            ("x-portkey-azure-api-version", config.azure.api_version),
        ):
            variable = "$aigw_" + header.removeprefix("x-portkey-").replace("-", "_")
            lines += _map("$http_x_portkey_provider", variable, [(nginx_string(AZURE_SLUG), nginx_string(value))])
            azure_headers[header] = variable

    headers = {name: "$http_" + name.replace("-", "_") for name in FORWARDED_HEADERS}
    headers["content-type"] = "$content_type"
    if config.injects_keys:
        headers["authorization"] = "$aigw_authorization"
        headers["x-portkey-provider"] = "$aigw_provider"
    else:
        headers.update({name: "$http_" + name.replace("-", "_") for name in CLIENT_CREDENTIAL_HEADERS})
        headers["x-portkey-provider"] = "$aigw_provider_slug"
    headers["x-portkey-config"] = "$http_x_portkey_config"
    headers.update(azure_headers)
    proxy_lines = [
        "# Only the headers listed here reach the gateway (an allow-list).",
        "proxy_pass_request_headers off;",
        *(f"proxy_set_header {name} {value};" for name, value in sorted(headers.items())),
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "# Completions stream (SSE): pass bytes on as they arrive.",
        "proxy_buffering off;",
        f"proxy_read_timeout {UPSTREAM_TIMEOUT_SECONDS}s;",
        f"proxy_send_timeout {UPSTREAM_TIMEOUT_SECONDS}s;",
    ]

    server = [
        f"listen {PROXY_PORT};",
        "server_tokens off;",
        "access_log /dev/stdout aigw_access;",
        "default_type application/json;",
        f"client_max_body_size {config.max_body_mib}m;",
        f"keepalive_timeout {CLIENT_KEEPALIVE_SECONDS}s;",
        'set $aigw_rule "";',
        # A URI, not a named location: nginx cannot redirect a request whose
        # line it could not parse (no URI yet) to a named location.
        *(f"error_page {status} {ERROR_LOCATION}/{status};" for status in OWN_ERRORS),
        "# WebSocket (/v1/realtime) is not offered: refused, never turned into HTTP.",
        *_block(
            "if ($http_upgrade)",
            _json_refusal(400, "websocket", "WebSocket upgrades (realtime) are not offered by this gateway"),
        ),
        "",
        *_block(
            f"location = {HEALTH_PATH}",
            [
                "access_log off;",
                *_block(
                    "if ($request_method !~ ^(GET|HEAD)$)",
                    _json_refusal(405, "method", "only GET is offered on /health"),
                ),
                *proxy_lines[:2],
                "proxy_http_version 1.1;",
                'proxy_set_header Connection "";',
                'set $args "";',
                "proxy_pass http://aigw_gateway/;",
            ],
        ),
    ]
    for route in sorted(config.routes):
        offered_here = ", ".join(slug for slug in offered if slug in config.routes[route]) or "none"
        server += [
            "",
            *_block(
                f"location = {route}",
                [
                    *_block(
                        "if ($request_method != POST)",
                        _json_refusal(405, "method", f"only POST is offered on {route}"),
                    ),
                    *_block(
                        "if ($aigw_config_refused)",
                        _json_refusal(
                            403,
                            "config",
                            "x-portkey-config may only route among "
                            f"{', '.join(CONFIG_PROVIDERS)} with your own keys, using the keys "
                            f"{', '.join(CONFIG_KEYS)}; no \\\\u escapes",
                        ),
                    ),
                    *_block(
                        "if ($aigw_provider_refused)",
                        _json_refusal(
                            403,
                            "provider",
                            f"name a provider offered on {route} in x-portkey-provider ({offered_here}) "
                            "or send an x-portkey-config with your own provider keys",
                        ),
                    ),
                    *proxy_lines,
                    "# The canonical path only: never the client's spelling, never its query.",
                    'set $args "";',
                    f"proxy_pass http://aigw_gateway{route};",
                ],
            ),
        ]
    server += [
        "",
        *_block(
            "location /",
            _json_refusal(404, "route", f"not an offered route; offered: POST {', '.join(sorted(config.routes))}"),
        ),
    ]
    for status, message in OWN_ERRORS.items():
        server += _block(
            f"location = {ERROR_LOCATION}/{status}", ["internal;", *_json_refusal(status, f"http-{status}", message)]
        )
    lines += ["", *_block("server", server), ""]
    return "\n".join(lines)


def entrypoint_script() -> str:
    """The proxy container's start command (config/key-proxy/entrypoint.sh)."""
    return ENTRYPOINT_FILE.read_text(encoding="utf-8")


def proxy_environment(config: ProxyConfig) -> dict[str, str]:
    """The proxy container's (non-secret) environment."""
    return {
        TEMPLATE_VARIABLE: proxy_template(config),
        KEY_VARIABLES_VARIABLE: " ".join(key_variable(name) for name in config.org_keys),
    }
