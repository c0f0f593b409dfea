"""The data plane in front of the gateway (the "key-proxy" container): its
configuration and start command, as plain Python (no cdktf), shared by the
compute module and the local harness. OpenResty runs the rules as Lua
(config/data-plane/aigw_dataplane.lua) over a JSON rendering of the
environment's settings; docs/gateway-contract.md states every rule and
docs/data-plane.md the design. In short, it faces authenticated but
untrusted clients and

- serves an allow-list of inference routes (POST only), each for the
  providers it makes sense for; everything else gets a JSON refusal naming
  the rule;
- forwards an allow-list of request headers and sets every header that
  chooses a host, a resource, a deployment or credentials itself;
- with JWT auth: knows the team (the token's client_id), replaces the
  token with the organisation's key of the provider named, or with the task
  role's credentials for Bedrock; a request with its own config gets none;
- checks the JSON body (the model, references to stored objects), reads
  token usage out of the answer, logs one JSON line and one span per request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

DATA_PLANE_DIR = Path(__file__).resolve().parent.parent / "config" / "data-plane"
ENTRYPOINT_FILE = DATA_PLANE_DIR / "entrypoint.sh"
MAIN_TEMPLATE_FILE = DATA_PLANE_DIR / "nginx.conf.j2"
TEMPLATE_FILE = DATA_PLANE_DIR / "gateway.conf.j2"
LUA_FILE = DATA_PLANE_DIR / "aigw_dataplane.lua"
# The container's environment variables (see config/data-plane/entrypoint.sh).
MAIN_VARIABLE = "AIGW_NGINX_MAIN"
TEMPLATE_VARIABLE = "AIGW_NGINX_SERVER"
LUA_VARIABLE = "AIGW_DATAPLANE_LUA"
SETTINGS_VARIABLE = "AIGW_DATAPLANE_CONFIG"
KEY_VARIABLES_VARIABLE = "AIGW_KEY_VARIABLES"
# The task role's credentials endpoint (ECS sets the relative URI; the AWS
# SDKs also honour a full URI on loopback, which the harness uses).
CREDENTIALS_VARIABLES: tuple[str, ...] = (
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
)
# Credentials are fetched again this long before they expire (as the AWS SDKs do).
CREDENTIALS_REFRESH_SECONDS = 300
# The ADOT collector's OTLP/HTTP receiver in the same task.
OTLP_HOST, OTLP_PORT = "127.0.0.1", 4318
TELEMETRY_FLUSH_SECONDS = 1
SERVICE_NAME = "ai-gateway-data-plane"
# Metric names (OTLP; the collector's awsemf exporter puts them into AIGateway).
METRIC_NAMES: dict[str, str] = {"requests": "Requests", "input": "InputTokens", "output": "OutputTokens"}

# Secret name (Secrets Manager, `gateway.provider_keys`) -> Portkey provider slug.
PROVIDER_SLUGS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "azure": "azure-openai",
}
AZURE_SLUG = PROVIDER_SLUGS["azure"]
BEDROCK_SLUG = "bedrock"
# What `model` may look like per provider. Google and Bedrock put it into
# the upstream URL (Google next to the key): no slash, no query, no fragment.
MODEL_PATTERNS: dict[str, str] = {
    "default": r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$",
    "google": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
    # provider.model[-version][:n], optionally a cross-region prefix (us., eu., …);
    # never an ARN: the gateway calls Bedrock's control plane for those.
    BEDROCK_SLUG: r"^(?:(?:us|eu|apac|au|ca|jp|global)\.)?[a-z0-9-]+\.[A-Za-z0-9._-]{1,160}(?::[0-9]{1,3})?$",
}
# Body fields that point at objects stored at the provider under the
# organisation's account, anywhere in the body / at the top of one route.
STORED_OBJECT_FIELDS: tuple[str, ...] = (
    "file_id", "vector_store_ids", "previous_response_id", "anthropic_beta", "guardrailConfig", "guardrail_config",
)  # fmt: skip
# Routes that take multipart uploads; every other route takes JSON only.
MULTIPART_ROUTES: tuple[str, ...] = ("/v1/images/edits", "/v1/audio/transcriptions", "/v1/audio/translations")
MAX_BODY_DEPTH = 32
STORED_OBJECT_TOP_LEVEL: dict[str, tuple[str, ...]] = {"/v1/responses": ("conversation", "prompt")}
MAX_USAGE_BODY_BYTES = 1024 * 1024  # answers read for their usage (larger: usage not logged)
MAX_EVENT_BYTES = 256 * 1024
MAX_QUEUED_SPANS = 10_000

# The inference routes the proxy serves (POST only), each with the providers
# it is offered for. Everything else is refused. Files, batches, fine-tuning,
# stored completions/responses, assistants, vector stores, `/v1/proxy` and
# the catch-all `/v1/*` passthrough would let any client read or delete the
# organisation's data at the provider with the organisation's key.
INFERENCE_ROUTES: dict[str, frozenset[str]] = {
    "/v1/chat/completions": frozenset({"openai", "anthropic", "google", "azure-openai", "bedrock"}),
    "/v1/completions": frozenset({"openai", "azure-openai"}),
    "/v1/embeddings": frozenset({"openai", "google", "azure-openai"}),
    "/v1/messages": frozenset({"anthropic", "bedrock"}),
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
    """How the data plane treats a request.

    org_keys: secret names whose values the data plane injects (JWT auth
    on); empty: clients bring their own provider keys. azure: the Azure
    deployment Azure requests go to (None: Azure is not offered).
    bedrock_region: with org keys, Bedrock is offered, signed with the task
    role in this region (None: not offered)."""

    org_keys: tuple[str, ...] = ()
    azure: AzureTarget | None = None
    max_body_mib: int = DEFAULT_MAX_BODY_MIB
    bedrock_region: str | None = None
    environment: str = "local"
    teams: Mapping[str, str] = field(default_factory=dict)
    telemetry: bool = True
    routes: Mapping[str, frozenset[str]] = field(default_factory=lambda: INFERENCE_ROUTES)

    def __post_init__(self) -> None:
        unknown = set(self.org_keys) - set(PROVIDER_SLUGS)
        if unknown:
            raise ValueError(f"no provider slug for org keys {sorted(unknown)}")
        if "azure" in self.org_keys and self.azure is None:
            raise ValueError("an Azure org key needs an AzureTarget (resource, deployment, API version)")
        if self.bedrock_region is not None and not self.org_keys:
            raise ValueError("Bedrock signs with the task role: offered only with JWT auth (org keys)")

    @property
    def injects_keys(self) -> bool:
        return bool(self.org_keys)

    @property
    def offered_providers(self) -> tuple[str, ...]:
        """Provider slugs clients may name in x-portkey-provider."""
        if self.injects_keys:
            keyed = tuple(PROVIDER_SLUGS[name] for name in self.org_keys)
            return keyed + ((BEDROCK_SLUG,) if self.bedrock_region else ())
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
    loader=jinja2.FileSystemLoader(DATA_PLANE_DIR),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # nginx, not HTML: the filters below do the quoting
    keep_trailing_newline=True,
)
_TEMPLATES.filters["q"] = nginx_string
_TEMPLATES.filters["body"] = nginx_json_body

# Variables the Lua code sets for upstream headers (nginx needs them declared).
LUA_HEADER_VARIABLES: dict[str, str] = {
    "x-portkey-azure-resource-name": "aigw_azure_resource_name",
    "x-portkey-azure-deployment-id": "aigw_azure_deployment_id",
    "x-portkey-azure-api-version": "aigw_azure_api_version",
    "x-portkey-aws-access-key-id": "aigw_aws_access_key_id",
    "x-portkey-aws-secret-access-key": "aigw_aws_secret_access_key",
    "x-portkey-aws-session-token": "aigw_aws_session_token",
    "x-portkey-aws-region": "aigw_aws_region",
}


def _upstream_headers() -> list[tuple[str, str]]:
    headers = {name: "$http_" + name.replace("-", "_") for name in FORWARDED_HEADERS}
    headers["content-type"] = "$content_type"
    headers["authorization"] = "$aigw_authorization"
    headers["x-api-key"] = "$aigw_api_key"
    headers["x-portkey-provider"] = "$aigw_provider"
    headers["x-portkey-config"] = "$aigw_config"
    headers.update({header: f"${variable}" for header, variable in LUA_HEADER_VARIABLES.items()})
    return sorted(headers.items())


def _refusals() -> dict[str, Any]:
    return {
        "health_method": refusal("method", f"only GET is offered on {HEALTH_PATH}"),
        "own": {status: refusal(f"http-{status}", message) for status, message in OWN_ERRORS.items()},
    }


def proxy_template(config: ProxyConfig) -> str:
    """The http-level configuration (config/data-plane/gateway.conf.j2)."""
    return _TEMPLATES.get_template(TEMPLATE_FILE.name).render(
        gateway_port=GATEWAY_PORT,
        proxy_port=PROXY_PORT,
        upstream_keepalive=UPSTREAM_KEEPALIVE_CONNECTIONS,
        max_body_mib=config.max_body_mib,
        alb_idle_timeout=ALB_IDLE_TIMEOUT_SECONDS,
        client_keepalive=CLIENT_KEEPALIVE_SECONDS,
        lua_variables=list(LUA_HEADER_VARIABLES.values()),
        own_errors=OWN_ERRORS,
        error_location=ERROR_LOCATION,
        refusals=_refusals(),
        health_path=HEALTH_PATH,
        headers=_upstream_headers(),
        accel_headers=(
            "X-Accel-Redirect",
            "X-Accel-Expires",
            "X-Accel-Limit-Rate",
            "X-Accel-Buffering",
            "X-Accel-Charset",
        ),
        upstream_timeout=UPSTREAM_TIMEOUT_SECONDS,
    )


def main_config(config: ProxyConfig) -> str:
    """The main nginx configuration (config/data-plane/nginx.conf.j2)."""
    variables = [key_variable(name) for name in config.org_keys] + list(CREDENTIALS_VARIABLES)
    return _TEMPLATES.get_template(MAIN_TEMPLATE_FILE.name).render(environment=variables)


def data_plane_settings(config: ProxyConfig) -> dict[str, Any]:
    """What the Lua code acts on (dataplane.json)."""
    offered = config.offered_providers
    routes = {route: {slug: True for slug in offered if slug in slugs} for route, slugs in config.routes.items()}
    return {
        "environment": config.environment,
        "service_name": SERVICE_NAME,
        "org_keys": config.injects_keys,
        "org_key_variables": {PROVIDER_SLUGS[name]: key_variable(name) for name in config.org_keys},
        "provider_slugs": {slug: slug for slug in offered},
        "routes": routes,
        "route_list": ", ".join(sorted(config.routes)),
        "route_help": {route: ", ".join(slugs) for route, slugs in routes.items() if slugs},
        "config_keys": dict.fromkeys(CONFIG_KEYS, True),
        "config_providers": dict.fromkeys(CONFIG_PROVIDERS, True),
        "config_help": f"allowed keys: {', '.join(CONFIG_KEYS)}; providers: {', '.join(CONFIG_PROVIDERS)}",
        "model_patterns": MODEL_PATTERNS,
        "stored_object_fields": dict.fromkeys(STORED_OBJECT_FIELDS, True),
        "stored_object_top_level": {r: dict.fromkeys(keys, True) for r, keys in STORED_OBJECT_TOP_LEVEL.items()},
        "multipart_routes": dict.fromkeys(MULTIPART_ROUTES, True),
        "max_body_depth": MAX_BODY_DEPTH,
        "azure": (
            {
                "resource_name": config.azure.resource_name,
                "deployment_id": config.azure.deployment_id,
                "api_version": config.azure.api_version,
            }
            if config.azure
            else None
        ),
        "bedrock_region": config.bedrock_region or "",
        "credentials_refresh_seconds": CREDENTIALS_REFRESH_SECONDS,
        "teams": dict(config.teams),
        "telemetry": config.telemetry,
        "otlp_host": OTLP_HOST,
        "otlp_port": OTLP_PORT,
        "flush_seconds": TELEMETRY_FLUSH_SECONDS,
        "metric_names": METRIC_NAMES,
        "max_usage_body_bytes": MAX_USAGE_BODY_BYTES,
        "max_event_bytes": MAX_EVENT_BYTES,
        "max_queued_spans": MAX_QUEUED_SPANS,
    }


def entrypoint_script() -> str:
    """The container's start command (config/data-plane/entrypoint.sh)."""
    return ENTRYPOINT_FILE.read_text(encoding="utf-8")


def proxy_environment(config: ProxyConfig) -> dict[str, str]:
    """The container's (non-secret) environment."""
    return {
        MAIN_VARIABLE: main_config(config),
        TEMPLATE_VARIABLE: proxy_template(config),
        LUA_VARIABLE: LUA_FILE.read_text(encoding="utf-8"),
        SETTINGS_VARIABLE: json.dumps(data_plane_settings(config), sort_keys=True, separators=(",", ":")),
        KEY_VARIABLES_VARIABLE: " ".join(key_variable(name) for name in config.org_keys),
    }


def proxy_config_for(gateway: GatewaySettings, edge: EdgeSettings, *, region: str, environment: str) -> ProxyConfig:
    """The data plane's rules for an environment: org keys (and Bedrock with
    the task role) only for authenticated (JWT) clients."""
    azure = gateway.azure
    return ProxyConfig(
        org_keys=tuple(gateway.provider_keys) if edge.enable_jwt_auth else (),
        azure=AzureTarget(azure.resource_name, azure.deployment_id, azure.api_version) if azure else None,
        max_body_mib=gateway.max_request_body_mib,
        bedrock_region=region if edge.enable_jwt_auth else None,
        environment=environment,
    )
