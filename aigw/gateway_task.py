"""What runs inside one gateway task, as plain data: the container
definitions (ECS JSON) of the key proxy, the gateway and the collector.

Pure Python (no cdktf), so the compute module and the local harness
(tests/gateway_harness.py, ``make gateway-local``) use the very same
definitions. The key proxy's configuration is aigw/key_proxy.py;
docs/gateway-contract.md explains the design:

    ALB (JWT validated) -> key proxy :8080 (nginx) -> gateway 127.0.0.1:8787 -> provider
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aigw.key_proxy import (
    GATEWAY_PORT,
    HEALTH_PATH,
    PROXY_PORT,
    ProxyConfig,
    entrypoint_script,
    key_variable,
    proxy_environment,
)

GATEWAY_CONTAINER = "gateway"
PROXY_CONTAINER = "key-proxy"
COLLECTOR_CONTAINER = "adot-collector"
# The gateway trusts the hosts listed in TRUSTED_CUSTOM_HOSTS as custom hosts
# even when they are loopback or private addresses; unset, it trusts
# localhost, 127.0.0.1, ::1 and host.docker.internal, so a client config could
# aim the gateway at the task's own ports (the collector, the key proxy).
# This name is in a reserved TLD (RFC 2606) and never resolves: the gateway
# trusts nothing, and its own checks refuse loopback, private and link-local
# addresses in custom hosts.
TRUSTED_CUSTOM_HOSTS_NONE = "no-trusted-custom-hosts.invalid"
GATEWAY_ENVIRONMENT: dict[str, str] = {
    # Production mode: no UI, no /log/stream (which would stream every
    # request's apiKey); the key proxy refuses that route regardless.
    "NODE_ENV": "production",
    "TRUSTED_CUSTOM_HOSTS": TRUSTED_CUSTOM_HOSTS_NONE,
}


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
        "command": ["/bin/sh", "-c", entrypoint_script()],
        "environment": [{"name": name, "value": value} for name, value in proxy_environment(proxy).items()],
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
        "environment": [{"name": name, "value": value} for name, value in GATEWAY_ENVIRONMENT.items()],
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
