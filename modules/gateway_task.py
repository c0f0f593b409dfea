"""What runs inside one gateway task, as plain data: the container
definitions (ECS JSON) and the key-injecting proxy's nginx template.

Pure Python (no cdktf), so the compute module and the local harness
(tests/gateway_harness.py, ``make gateway-local``) render the very same
configuration. docs/gateway-contract.md explains the design; in short:

    ALB (JWT validated) -> proxy :8080 (nginx) -> gateway 127.0.0.1:8787 -> provider

- Portkey Gateway 1.15.2 reads no provider key or routing config from its
  environment; both travel per request (``x-portkey-provider``,
  ``x-portkey-config``, ``Authorization``). With only ``x-portkey-provider``,
  the client's ``Authorization`` header is forwarded to the provider.
- So the proxy owns the ``Authorization`` header. With org keys on (JWT auth
  on), it replaces the client's JWT with the organisation's key for the
  provider the client names (from Secrets Manager, injected by ECS into the
  proxy container only) and drops ``x-portkey-custom-host`` so a client
  cannot send that key elsewhere. A request that brings its own
  ``x-portkey-config`` gets no org key (its targets carry their own keys).
  A named provider without an org key is refused with a JSON 400.
- With org keys off (no JWT: nobody is authenticated), the proxy passes the
  client's own ``Authorization`` through, as in Portkey's own guide.
- The proxy writes one JSON access-log line per request (provider, status,
  request_time, path), which the saved queries and the dashboard read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GATEWAY_PORT = 8787  # the gateway's own (default) port, inside the task only
PROXY_PORT = 8080  # the task's entry point: the load balancer's target
HEALTH_PATH = "/health"  # proxied to the gateway's "/" ("AI Gateway says hey!")

GATEWAY_CONTAINER = "gateway"
PROXY_CONTAINER = "key-proxy"
COLLECTOR_CONTAINER = "adot-collector"
PROXY_TEMPLATE_VARIABLE = "AIGW_PROXY_TEMPLATE"
# The official nginx image renders /etc/nginx/templates/*.template with
# envsubst (defined variables only) into /etc/nginx/conf.d/ at start.
PROXY_TEMPLATE_PATH = "/etc/nginx/templates/gateway.conf.template"
PROXY_COMMAND = [
    "/bin/sh",
    "-c",
    f'printf "%s" "${PROXY_TEMPLATE_VARIABLE}" > {PROXY_TEMPLATE_PATH} '
    "&& exec /docker-entrypoint.sh nginx -g 'daemon off;'",
]
# How long a completion may stream; ALB idle timeout is set to match.
UPSTREAM_TIMEOUT_SECONDS = 300

# Secret name (Secrets Manager) -> Portkey provider slug it authenticates.
PROVIDER_SLUGS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "azure": "azure-openai",
}


# Providers the gateway authenticates with the task role, not a key.
TASK_ROLE_PROVIDERS: tuple[str, ...] = ("bedrock",)


def key_variable(secret_name: str) -> str:
    """Environment variable the proxy container receives the key in."""
    return f"{secret_name.upper()}_API_KEY"


@dataclass(frozen=True)
class ProxyConfig:
    """How the proxy treats credentials.

    org_keys: secret names whose values the proxy injects (empty: pass the
    client's Authorization through). provider_hosts: Portkey provider slug ->
    base URL the gateway must use for it (``x-portkey-custom-host``), e.g. a
    regional or private endpoint; the local harness points them at mocks.
    """

    org_keys: tuple[str, ...] = ()
    provider_hosts: Mapping[str, str] = field(default_factory=dict)

    @property
    def injects_keys(self) -> bool:
        return bool(self.org_keys)


def _nginx_string(value: str) -> str:
    """A double-quoted nginx string; `${NAME}` stays for envsubst to fill."""
    if any(c in value for c in '"\\\n'):
        raise ValueError(f"{value!r} cannot be embedded in the proxy configuration")
    return f'"{value}"'


def proxy_template(config: ProxyConfig) -> str:
    """The nginx server configuration (an envsubst template: `${X_API_KEY}`
    placeholders are filled from the container's secrets at start)."""
    lines = [
        "# Rendered by modules/gateway_task.py; see docs/gateway-contract.md.",
        "log_format aigw_access escape=json",
        '  \'{"time":"$time_iso8601","method":"$request_method","path":"$uri","status":$status,\'',
        '  \'"request_time":$request_time,"upstream_time":"$upstream_response_time",\'',
        '  \'"provider":"$upstream_http_x_portkey_provider",\'',
        '  \'"option":"$upstream_http_x_portkey_last_used_option_index",\'',
        '  \'"bytes":$body_bytes_sent,"trace":"$http_x_amzn_trace_id"}\';',
        "",
    ]
    header_lines: list[str] = []
    if config.injects_keys:
        lines += ["map $http_x_portkey_provider $aigw_org_key {", '    default "";']
        for secret in config.org_keys:
            value = "Bearer ${" + key_variable(secret) + "}"
            lines.append(f"    {_nginx_string(PROVIDER_SLUGS[secret])} {_nginx_string(value)};")
        lines += [
            "}",
            "# A client that brings its own routing config brings its own keys.",
            "map $http_x_portkey_config $aigw_authorization {",
            '    default "";',
            '    "" $aigw_org_key;',
            "}",
            "# A provider named without a config and without an org key for it",
            "# (providers authenticated by the task role need none).",
            'map "$http_x_portkey_provider|$aigw_org_key|$http_x_portkey_config" $aigw_missing_key {',
            "    default 0;",
            *(f'    "{slug}||" 0;' for slug in TASK_ROLE_PROVIDERS),
            '    "~^[^|]+\\|\\|$" 1;',
            "}",
            "",
        ]
        header_lines += [
            "        proxy_set_header Authorization $aigw_authorization;",
        ]
    lines += ["map $http_x_portkey_provider $aigw_custom_host {", '    default "";']
    for slug, host in sorted(config.provider_hosts.items()):
        lines.append(f"    {_nginx_string(slug)} {_nginx_string(host)};")
    lines += ["}", ""]
    # Only configured hosts: a client must not redirect a request (and, with
    # org keys, the organisation's key) to a host of its choosing.
    header_lines.append("        proxy_set_header x-portkey-custom-host $aigw_custom_host;")

    lines += [
        "server {",
        f"    listen {PROXY_PORT};",
        "    access_log /dev/stdout aigw_access;",
        "    client_max_body_size 20m;",
        "",
        f"    location = {HEALTH_PATH} {{",
        "        access_log off;",
        f"        proxy_pass http://127.0.0.1:{GATEWAY_PORT}/;",
        "    }",
        "",
        "    location / {",
    ]
    if config.injects_keys:
        lines += [
            "        default_type application/json;",
            "        if ($aigw_missing_key) {",
            '            return 400 \'{"status":"failure","message":"no organisation key is configured for '
            "the requested provider; send an x-portkey-config whose targets carry your own keys\"}';",
            "        }",
        ]
    lines += [
        *header_lines,
        "        proxy_http_version 1.1;",
        '        proxy_set_header Connection "";',
        "        proxy_set_header Host $host;",
        "        # Completions stream (SSE): pass bytes on as they arrive.",
        "        proxy_buffering off;",
        f"        proxy_read_timeout {UPSTREAM_TIMEOUT_SECONDS}s;",
        f"        proxy_send_timeout {UPSTREAM_TIMEOUT_SECONDS}s;",
        f"        proxy_pass http://127.0.0.1:{GATEWAY_PORT};",
        "    }",
        "}",
        "",
    ]
    return "\n".join(lines)


def task_containers(
    *,
    gateway_image: str,
    proxy_image: str,
    collector_image: str,
    collector_config: str,
    region: str,
    log_groups: Mapping[str, str],
    secret_arns: Mapping[str, str],
    proxy: ProxyConfig,
    metrics_namespace: str,
) -> list[dict[str, Any]]:
    """The task's container definitions (ECS JSON): proxy, gateway, collector.

    ``secret_arns`` maps secret name -> ARN; only those in ``proxy.org_keys``
    are injected, into the proxy container alone."""

    def awslogs(group: str, stream_prefix: str) -> dict[str, Any]:
        return {
            "logDriver": "awslogs",
            "options": {"awslogs-group": group, "awslogs-region": region, "awslogs-stream-prefix": stream_prefix},
        }

    def health_check(command: list[str], *, interval: int, start_period: int) -> dict[str, Any]:
        return {"command": command, "interval": interval, "timeout": 5, "retries": 3, "startPeriod": start_period}

    proxy_container = {
        "name": PROXY_CONTAINER,
        "image": proxy_image,
        "essential": True,
        "portMappings": [{"containerPort": PROXY_PORT, "protocol": "tcp", "name": "http"}],
        "entryPoint": [],
        "command": PROXY_COMMAND,
        "environment": [{"name": PROXY_TEMPLATE_VARIABLE, "value": proxy_template(proxy)}],
        "secrets": [{"name": key_variable(name), "valueFrom": secret_arns[name]} for name in proxy.org_keys],
        "healthCheck": health_check(
            ["CMD-SHELL", f"wget -q -O /dev/null http://127.0.0.1:{PROXY_PORT}{HEALTH_PATH} || exit 1"],
            interval=15,
            start_period=10,
        ),
        "logConfiguration": awslogs(log_groups["access"], "proxy"),
        "dependsOn": [{"containerName": GATEWAY_CONTAINER, "condition": "HEALTHY"}],
    }
    gateway_container = {
        "name": GATEWAY_CONTAINER,
        "image": gateway_image,
        "essential": True,
        "portMappings": [{"containerPort": GATEWAY_PORT, "protocol": "tcp", "name": "gateway"}],
        # Read by the gateway: production mode, no UI banner or browser launch.
        "environment": [{"name": "NODE_ENV", "value": "production"}],
        # Node's own fetch: the image has no curl, and node is always there.
        "healthCheck": health_check(
            [
                "CMD-SHELL",
                f"node -e \"fetch('http://127.0.0.1:{GATEWAY_PORT}/')"
                '.then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"',
            ],
            interval=15,
            start_period=20,
        ),
        "logConfiguration": awslogs(log_groups["gateway"], "gateway"),
        "dependsOn": [{"containerName": COLLECTOR_CONTAINER, "condition": "START"}],
    }
    collector_container = {
        "name": COLLECTOR_CONTAINER,
        "image": collector_image,
        # Telemetry must not take the gateway down with it.
        "essential": False,
        "environment": [
            {"name": "AOT_CONFIG_CONTENT", "value": collector_config},
            {"name": "EMF_LOG_GROUP", "value": log_groups["metrics"]},
            {"name": "OTLP_LOG_GROUP", "value": log_groups["otlp_logs"]},
            {"name": "METRICS_NAMESPACE", "value": metrics_namespace},
        ],
        "healthCheck": health_check(["CMD", "/healthcheck"], interval=30, start_period=15),
        "logConfiguration": awslogs(log_groups["collector"], "collector"),
    }
    return [proxy_container, gateway_container, collector_container]


def container(definitions: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [c for c in definitions if c["name"] == name]
    return found


def environment_of(definition: Mapping[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in definition.get("environment", [])}


def dumps(definitions: list[dict[str, Any]]) -> str:
    return json.dumps(definitions)
