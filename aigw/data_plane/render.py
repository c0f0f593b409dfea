"""The data plane's bundle: every file the container runs, rendered from a
DataPlaneConfig. Pure: the same config gives the same bytes (no time, no
environment, no randomness), so the bundle's hash changes exactly when what
the data plane runs changes. Templates and Lua live in config/data-plane/."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jinja2

from aigw.data_plane.config import DataPlaneConfig, Guardrail, Route, TeamLimits
from aigw.data_plane.contract import (
    ALB_IDLE_TIMEOUT_SECONDS,
    CLIENT_KEEPALIVE_SECONDS,
    CREDENTIALS_REFRESH_SECONDS,
    CREDENTIALS_VARIABLES,
    DATA_PLANE_PORT,
    DRAIN_TIMEOUT_SECONDS,
    GATEWAY_PORT,
    HEALTH_PATH,
    IN_FLIGHT_DIMENSION,
    IN_FLIGHT_REPORT_SECONDS,
    OPEN_FILES,
    OTLP_HOST,
    OTLP_PORT,
    REQUESTS_IN_FLIGHT_METRIC,
    RUNTIME_VARIABLE,
    SERVICE_NAME,
    STREAMS_IN_FLIGHT_METRIC,
    TELEMETRY_FLUSH_SECONDS,
    UPSTREAM_IDLE_SECONDS,
    UPSTREAM_KEEPALIVE_CONNECTIONS,
    UPSTREAM_TIMEOUT_SECONDS,
)
from aigw.data_plane.policy import (
    ANTHROPIC_BETAS,
    CONFIG_KEYS,
    CONFIG_PROVIDERS,
    CONFIG_VALUES,
    FORWARDED_HEADERS,
    MAX_BODY_CONTAINERS,
    MAX_BODY_DEPTH,
    MAX_CONFIG_UPSTREAM_CALLS,
    MAX_HEADERS,
    MODEL_PATTERNS,
    MULTIPART_ROUTES,
    OWN_ERRORS,
    PROVIDER_SLUGS,
    REMOTE_TOOL_FIELDS,
    REMOTE_TOOL_TOP_LEVEL,
    REMOTE_TOOL_TYPES,
    SINGLE_HEADERS,
    STORED_OBJECT_FIELDS,
    STORED_OBJECT_ID_HOLDERS,
    STORED_OBJECT_TOOL_FIELDS,
    STORED_OBJECT_TOP_LEVEL,
    STORED_OBJECT_TYPES,
    STORED_OBJECT_URLS,
    key_variable,
    refusal,
)
from aigw.data_plane.routing import portkey_config

SOURCE_DIR = Path(__file__).resolve().parent.parent.parent / "config" / "data-plane"
LUA_DIR = SOURCE_DIR / "lua"
TEMPLATE_DIR = SOURCE_DIR / "templates"
START_COMMAND_FILE = SOURCE_DIR / "start.sh"
# Amazon's root CAs, which the shared store's certificate chains to (bundled when a team is counted).
STORE_CA_SOURCE = SOURCE_DIR / "store-ca.pem"
STORE_CA_FILE = "store-ca.pem"

MAX_USAGE_BODY_BYTES = 1024 * 1024  # answers read for their usage (larger: usage not logged)
MAX_EVENT_BYTES = 256 * 1024
USAGE_TAIL_BYTES = 64 * 1024  # of a larger answer, where its top-level usage is read
MAX_QUEUED_SPANS = 10_000
METRIC_NAMES: dict[str, str] = {
    "requests": "Requests",
    "input": "InputTokens",
    "output": "OutputTokens",
    # Requests let through without their limits because the shared store was unavailable.
    "unavailable": "LimitsUnavailable",
    # A team's budget passing its alert threshold.
    "alerts": "BudgetAlerts",
    # Requests that went on uncached because the response cache's store was unavailable.
    "cache_unavailable": "CacheUnavailable",
    # Requests and answers the guardrail blocked, and requests refused because it could not check them.
    "guardrail_input": "GuardrailBlockedInputs",
    "guardrail_output": "GuardrailBlockedOutputs",
    "guardrail_unavailable": "GuardrailUnavailable",
}
# The routes whose answers the response cache keeps (JSON, deterministic for a
# given body and provider: not /v1/responses, whose answers the provider may store and chain).
CACHED_ROUTES: tuple[str, ...] = ("/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/embeddings")
# Forwarded request headers that change the answer, and so are part of a cached answer's key.
CACHE_KEY_HEADERS: tuple[str, ...] = (
    "accept", "anthropic-version", "anthropic-beta", "x-portkey-anthropic-version", "x-portkey-anthropic-beta",
    "x-portkey-strict-open-ai-compliance",
)  # fmt: skip
# Requests on a named route, per route, serving provider and status.
ROUTE_METRIC_NAME = "RoutedRequests"
# The task's record of failing route targets (nginx shared memory; a few hundred bytes per target).
ROUTING_DICT_SIZE = "1m"
ERROR_LOCATION = "/_aigw/errors"
# The routes whose answers are generated tokens (a team's max_tokens cap applies).
GENERATING_ROUTES: tuple[str, ...] = ("/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/responses")
# Streams that report usage only when the request asks (stream_options.include_usage):
# OpenAI-shaped completions to the providers whose gateway config passes stream_options on.
# Checked in the 1.15.2 build: Azure's `complete` config has no stream_options (the gateway drops it).
STREAM_USAGE: dict[str, tuple[str, ...]] = {
    "/v1/chat/completions": ("openai", "azure-openai"),
    "/v1/completions": ("openai",),
}
# How the data plane talks to the shared store: TLS verified against Amazon's
# roots (shipped in the bundle as store-ca.pem), short timeouts (a slow store
# must not slow every request: limits fail open), a per-worker breaker, and
# how long a request's in-flight entry outlives a task that died mid-request.
STORE_OPTIONS: dict[str, Any] = {
    "tls": True,
    "connect_timeout_ms": 250,
    "handshake_timeout_ms": 1000,
    "send_timeout_ms": 200,
    "read_timeout_ms": 250,
    "pool_size": 32,
    "idle_ms": 60_000,
    "breaker_seconds": 5,
    "inflight_stale_seconds": UPSTREAM_TIMEOUT_SECONDS + 60,
    # A client gone (499) keeps its slot this long: the gateway's call goes on without it.
    "abandoned_hold_seconds": 60,
}
# nginx variables the Lua code sets for upstream headers (declared in the configuration).
LUA_HEADER_VARIABLES: dict[str, str] = {
    "x-portkey-azure-resource-name": "aigw_azure_resource_name",
    "x-portkey-azure-deployment-id": "aigw_azure_deployment_id",
    "x-portkey-azure-api-version": "aigw_azure_api_version",
    "x-portkey-aws-access-key-id": "aigw_aws_access_key_id",
    "x-portkey-aws-secret-access-key": "aigw_aws_secret_access_key",
    "x-portkey-aws-session-token": "aigw_aws_session_token",
    "x-portkey-aws-region": "aigw_aws_region",
}
# How the data plane calls ApplyGuardrail: pooled TLS connections to the
# region's bedrock-runtime endpoint, verified against Amazon's roots.
GUARDRAIL_OPTIONS: dict[str, Any] = {"connect_port": 443, "pool_size": 32, "idle_ms": 60_000}
# nginx's connections per worker and open files per process, below the
# containers' nofile limit (task definition: OPEN_FILES).
WORKER_CONNECTIONS = 16_384
# The data plane's accept queue (the kernel caps it at net.core.somaxconn, 4096 on current kernels).
LISTEN_BACKLOG = 4096
# The routes whose answers the output check reads: the generated text, and an
# image's rewritten prompt (the image itself is not checked).
CHECKED_ANSWER_ROUTES: tuple[str, ...] = (*GENERATING_ROUTES, "/v1/images/generations")
# The subrequest that fetches an answer from the gateway whole, for the output check.
RELAY_LOCATION = "/_aigw/relay"
# Upstream headers that would steer nginx if the gateway relayed them.
ACCEL_HEADERS: tuple[str, ...] = (
    "X-Accel-Redirect", "X-Accel-Expires", "X-Accel-Limit-Rate", "X-Accel-Buffering", "X-Accel-Charset",
)  # fmt: skip

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._:/+=~| -]*$")


def nginx_string(value: str) -> str:
    """A double-quoted nginx string of a value the configuration embeds.
    Only values validated at settings time reach here; anything that could
    end the string, start a variable or a directive is refused."""
    if not _SAFE_VALUE.match(value):
        raise ValueError(f"{value!r} cannot be embedded in the data plane configuration")
    return f'"{value}"'


def nginx_json_body(payload: object) -> str:
    """The text of a JSON response body for an nginx single-quoted string:
    nginx unescapes backslashes and would expand `$variables`."""
    text = json.dumps(payload, separators=(",", ":"))
    if "'" in text or "$" in text:
        raise ValueError(f"{text!r} cannot be quoted in the data plane configuration")
    return text.replace("\\", "\\\\")


_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # nginx and sh, not HTML: the filters below do the quoting
    keep_trailing_newline=True,
)
_TEMPLATES.filters["q"] = nginx_string
_TEMPLATES.filters["body"] = nginx_json_body


def _upstream_headers() -> list[tuple[str, str]]:
    headers = {name: "$http_" + name.replace("-", "_") for name in FORWARDED_HEADERS}
    headers["content-type"] = "$content_type"
    headers["authorization"] = "$aigw_authorization"
    headers["x-api-key"] = "$aigw_api_key"
    headers["x-portkey-provider"] = "$aigw_provider"
    headers["x-portkey-config"] = "$aigw_config"
    headers.update({header: f"${variable}" for header, variable in LUA_HEADER_VARIABLES.items()})
    return sorted(headers.items())


def relay_variables() -> list[str]:
    """The nginx variables the upstream request is built from: a relayed
    request (the output check) carries them into its subrequest."""
    names = {value[1:] for _, value in _upstream_headers() if value.startswith("$aigw_")}
    return sorted(names | {"aigw_upstream_path"})


def verifies_aws_tls(config: DataPlaneConfig) -> bool:
    """Whether the data plane opens TLS connections to AWS itself (the shared store, ApplyGuardrail)."""
    return config.uses_store or config.guardrail is not None


def server_config(config: DataPlaneConfig) -> str:
    """The http-level configuration (templates/server.conf.j2)."""
    return _TEMPLATES.get_template("server.conf.j2").render(
        upstream_keepalive=UPSTREAM_KEEPALIVE_CONNECTIONS,
        upstream_idle=UPSTREAM_IDLE_SECONDS,
        max_body_mib=config.max_body_mib,
        alb_idle_timeout=ALB_IDLE_TIMEOUT_SECONDS,
        client_keepalive=CLIENT_KEEPALIVE_SECONDS,
        lua_variables=list(LUA_HEADER_VARIABLES.values()),
        own_errors=OWN_ERRORS,
        error_location=ERROR_LOCATION,
        refusals={
            "health_method": refusal("method", f"only GET is offered on {HEALTH_PATH}"),
            "own": {status: refusal(f"http-{status}", message) for status, message in OWN_ERRORS.items()},
        },
        health_path=HEALTH_PATH,
        headers=_upstream_headers(),
        accel_headers=ACCEL_HEADERS,
        upstream_timeout=UPSTREAM_TIMEOUT_SECONDS,
        uses_store=verifies_aws_tls(config),
        routing_dict_size=ROUTING_DICT_SIZE if config.routing else None,
        relay_location=RELAY_LOCATION if config.guardrail and config.guardrail.check_output else None,
    )


def main_config(config: DataPlaneConfig) -> str:
    """The main nginx configuration (templates/nginx.conf.j2)."""
    variables = [key_variable(name) for name in config.org_keys] + list(CREDENTIALS_VARIABLES)
    return _TEMPLATES.get_template("nginx.conf.j2").render(
        environment=[*variables, RUNTIME_VARIABLE, "AIGW_OTLP_ADDRESS", "AIGW_GUARDRAIL_ADDRESS"],
        drain_timeout=DRAIN_TIMEOUT_SECONDS,
        open_files=OPEN_FILES,
        worker_connections=WORKER_CONNECTIONS,
    )


def entrypoint(config: DataPlaneConfig) -> str:
    """The data plane's start (templates/entrypoint.sh.j2), run once the bundle is verified."""
    return _TEMPLATES.get_template("entrypoint.sh.j2").render(
        listen=DATA_PLANE_PORT,
        listen_backlog=LISTEN_BACKLOG,
        gateway=f"127.0.0.1:{GATEWAY_PORT}",
        uses_store=verifies_aws_tls(config),
        store_ca=STORE_CA_FILE,
    )


def _set(values: Any) -> dict[str, bool]:
    return dict.fromkeys(sorted(values), True)


def _team_limits(limits: TeamLimits) -> dict[str, Any]:
    document: dict[str, Any] = {"counted": limits.counted, "cache": limits.cache}
    for name in ("requests_per_minute", "max_concurrent_requests", "max_tokens"):
        if getattr(limits, name) is not None:
            document[name] = getattr(limits, name)
    if limits.budget is not None:
        document["budget"] = asdict(limits.budget)
    return document


def _route(route: Route) -> dict[str, Any]:
    return {
        "strategy": route.strategy,
        "config": portkey_config(route),
        "targets": [{"provider": target.provider, "model": target.model} for target in route.targets],
        "skip_after_failures": route.skip_after_failures,
        "skip_seconds": route.skip_seconds,
    }


def _guardrail(guardrail: Guardrail) -> dict[str, Any]:
    host = f"bedrock-runtime.{guardrail.region}.amazonaws.com"
    return {
        "host": host,
        "connect_host": host,
        "region": guardrail.region,
        "check_input": guardrail.check_input,
        "check_output": guardrail.check_output,
        "output_streams": guardrail.output_streams,
        "blocked_input_message": guardrail.blocked_input_message,
        "blocked_output_message": guardrail.blocked_output_message,
        "timeout_ms": guardrail.timeout_ms,
        "answer_routes": _set(CHECKED_ANSWER_ROUTES),
        **GUARDRAIL_OPTIONS,
    }


def settings_document(config: DataPlaneConfig) -> dict[str, Any]:
    """What the Lua code acts on (settings.json)."""
    offered = config.offered_providers
    return {
        "environment": config.environment,
        "service_name": SERVICE_NAME,
        "org_keys": config.injects_keys,
        "org_key_variables": {PROVIDER_SLUGS[name]: key_variable(name) for name in config.org_keys},
        "providers": _set(offered),
        "routes": {route: _set(slug for slug in offered if slug in slugs) for route, slugs in config.routes.items()},
        "multipart_routes": _set(MULTIPART_ROUTES),
        "single_headers": list(SINGLE_HEADERS),
        "max_headers": MAX_HEADERS,
        "anthropic_betas": _set(ANTHROPIC_BETAS),
        "config_keys": _set(CONFIG_KEYS),
        "config_providers": _set(CONFIG_PROVIDERS),
        "config_values": CONFIG_VALUES,
        "max_config_calls": MAX_CONFIG_UPSTREAM_CALLS,
        "model_patterns": MODEL_PATTERNS,
        "stored_object_fields": _set(STORED_OBJECT_FIELDS),
        "stored_object_top_level": {route: _set(keys) for route, keys in STORED_OBJECT_TOP_LEVEL.items()},
        "stored_object_tool_fields": _set(STORED_OBJECT_TOOL_FIELDS),
        "stored_object_types": _set(STORED_OBJECT_TYPES),
        "stored_object_id_holders": _set(STORED_OBJECT_ID_HOLDERS),
        "stored_object_urls": {provider: list(patterns) for provider, patterns in STORED_OBJECT_URLS.items()},
        "remote_tools": {
            "top_level": _set(REMOTE_TOOL_TOP_LEVEL),
            "types": _set(REMOTE_TOOL_TYPES),
            "fields": _set(REMOTE_TOOL_FIELDS),
        },
        "max_body_depth": MAX_BODY_DEPTH,
        "max_body_containers": MAX_BODY_CONTAINERS,
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
        "telemetry": {
            "enabled": config.telemetry,
            "otlp_host": OTLP_HOST,
            "otlp_port": OTLP_PORT,
            "flush_seconds": TELEMETRY_FLUSH_SECONDS,
            "max_queued_spans": MAX_QUEUED_SPANS,
            "metric_names": {
                counter: name
                for counter, name in METRIC_NAMES.items()
                if config.guardrail is not None or not counter.startswith("guardrail_")
            },
            "route_metric_name": ROUTE_METRIC_NAME,
            "in_flight": {
                "streams": STREAMS_IN_FLIGHT_METRIC,
                "requests": REQUESTS_IN_FLIGHT_METRIC,
                "dimension": IN_FLIGHT_DIMENSION,
                "report_seconds": IN_FLIGHT_REPORT_SECONDS,
            },
            "metric_models": _set(config.all_metric_models),
        },
        "team_limits": {team: _team_limits(limits) for team, limits in sorted(config.teams.items())},
        "generating_routes": _set(GENERATING_ROUTES),
        "stream_usage": {route: _set(providers) for route, providers in STREAM_USAGE.items()},
        "store": STORE_OPTIONS if config.uses_store else None,
        "cache": (
            {
                "ttl_seconds": config.cache.ttl_seconds,
                "max_entry_bytes": config.cache.max_entry_bytes,
                "routes": _set(CACHED_ROUTES),
                "key_headers": list(CACHE_KEY_HEADERS),
            }
            if config.cache
            else None
        ),
        "routing": {
            "default": config.default_route,
            "configs": {name: _route(route) for name, route in sorted(config.routing.items())},
        },
        "guardrail": _guardrail(config.guardrail) if config.guardrail else None,
        "max_in_flight": config.max_in_flight,
        "relay_variables": relay_variables(),
        "relay_location": RELAY_LOCATION,
        "usage": {
            "max_body_bytes": MAX_USAGE_BODY_BYTES,
            "max_event_bytes": MAX_EVENT_BYTES,
            "tail_bytes": USAGE_TAIL_BYTES,
        },
    }


def lua_files() -> dict[str, bytes]:
    """The Lua modules, by their path in the bundle (lua/aigw/<name>.lua)."""
    return {path.relative_to(SOURCE_DIR).as_posix(): path.read_bytes() for path in sorted(LUA_DIR.rglob("*.lua"))}


def bundle_files(config: DataPlaneConfig) -> dict[str, bytes]:
    """Every file of the bundle, by its path under the data plane's home."""
    settings = json.dumps(settings_document(config), sort_keys=True, indent=1) + "\n"
    store_files = {STORE_CA_FILE: STORE_CA_SOURCE.read_bytes()} if verifies_aws_tls(config) else {}
    return {
        **store_files,
        "nginx.conf": main_config(config).encode(),
        "server.conf": server_config(config).encode(),
        "settings.json": settings.encode(),
        "entrypoint.sh": entrypoint(config).encode(),
        **lua_files(),
    }


def start_command() -> str:
    """The container's start command (config/data-plane/start.sh): verifies
    the bundle against the task definition's hash, unpacks it, runs it."""
    return START_COMMAND_FILE.read_text(encoding="utf-8")
