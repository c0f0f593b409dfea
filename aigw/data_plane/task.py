"""What runs inside one gateway task, as plain data: the container
definitions (ECS JSON) of the data plane, the gateway and the collector.

Pure Python (no cdktf), so the compute module and the local harness
(tests/gateway_harness.py, ``make gateway-local``) use the very same
definitions:

    load balancer -> data plane :8080 (OpenResty) -> gateway 127.0.0.1:8787 -> provider
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aigw.data_plane.config import DataPlaneRuntime
from aigw.data_plane.contract import (
    COLLECTOR_CONTAINER,
    DATA_PLANE_CONTAINER,
    DATA_PLANE_PORT,
    GATEWAY_CONTAINER,
    GATEWAY_PORT,
    HEALTH_PATH,
    KEY_VARIABLES_VARIABLE,
    OPEN_FILES,
    RUNTIME_VARIABLE,
    SHA256_VARIABLE,
    STOP_TIMEOUT_SECONDS,
)
from aigw.data_plane.policy import key_variable
from aigw.data_plane.render import start_command

# The gateway trusts the hosts listed in TRUSTED_CUSTOM_HOSTS as custom hosts
# even when they are loopback or private addresses; unset, it trusts
# localhost, 127.0.0.1, ::1 and host.docker.internal, so a client config could
# aim the gateway at the task's own ports (the collector, the data plane).
# This name is in a reserved TLD (RFC 2606) and never resolves: the gateway
# trusts nothing, and its own checks refuse loopback, private and link-local
# addresses in custom hosts.
TRUSTED_CUSTOM_HOSTS_NONE = "no-trusted-custom-hosts.invalid"
GATEWAY_ENVIRONMENT: dict[str, str] = {
    # Production mode: no UI, no /log/stream (which would stream every
    # request's apiKey); the data plane refuses that route regardless.
    "NODE_ENV": "production",
    "TRUSTED_CUSTOM_HOSTS": TRUSTED_CUSTOM_HOSTS_NONE,
}


def gateway_environment(runtime: DataPlaneRuntime) -> dict[str, str]:
    """The gateway's variables: with a shared store, its internal caches live there too, shared by the
    tasks (REDIS_CONNECTION_STRING, over TLS: the serverless cache speaks TLS only)."""
    redis_url = runtime.redis_url
    return {**GATEWAY_ENVIRONMENT, **({"REDIS_CONNECTION_STRING": redis_url} if redis_url else {})}


@dataclass(frozen=True)
class DataPlaneTaskInputs:
    """What the data plane container is started with: its image, its bundle
    (the S3 object ECS reads as an environment file, and the sha256 the
    start command checks it against), the runtime joins, and the org-key
    secrets ECS injects (secret name -> ARN)."""

    image: str
    bundle_object_arn: str
    bundle_sha256: str
    runtime: DataPlaneRuntime
    org_key_secret_arns: Mapping[str, str]


def task_containers(
    *,
    gateway_image: str,
    data_plane: DataPlaneTaskInputs,
    collector_image: str,
    collector_config: str,
    region: str,
    log_groups: Mapping[str, str],
    metrics_namespace: str,
) -> list[dict[str, Any]]:
    """The task's container definitions (ECS JSON): data plane, gateway, collector.
    Only the data plane receives secrets (the org keys)."""

    def awslogs(group: str, stream_prefix: str) -> dict[str, Any]:
        return {
            "logDriver": "awslogs",
            "options": {"awslogs-group": group, "awslogs-region": region, "awslogs-stream-prefix": stream_prefix},
        }

    def health_check(command: list[str], *, interval: int, start_period: int) -> dict[str, Any]:
        return {"command": command, "interval": interval, "timeout": 5, "retries": 3, "startPeriod": start_period}

    key_names = sorted(data_plane.org_key_secret_arns)
    data_plane_container = {
        "name": DATA_PLANE_CONTAINER,
        "image": data_plane.image,
        "essential": True,
        "portMappings": [{"containerPort": DATA_PLANE_PORT, "protocol": "tcp", "name": "http"}],
        "entryPoint": [],
        "command": ["/bin/sh", "-c", start_command()],
        "environment": [
            {"name": SHA256_VARIABLE, "value": data_plane.bundle_sha256},
            {"name": RUNTIME_VARIABLE, "value": data_plane.runtime.to_json()},
            {"name": KEY_VARIABLES_VARIABLE, "value": " ".join(key_variable(name) for name in key_names)},
        ],
        "environmentFiles": [{"type": "s3", "value": data_plane.bundle_object_arn}],
        "secrets": [
            {"name": key_variable(name), "valueFrom": data_plane.org_key_secret_arns[name]} for name in key_names
        ],
        "healthCheck": health_check(
            ["CMD-SHELL", f"wget -q -O /dev/null http://127.0.0.1:{DATA_PLANE_PORT}{HEALTH_PATH} || exit 1"],
            interval=15,
            start_period=10,
        ),
        "logConfiguration": awslogs(log_groups["access"], DATA_PLANE_CONTAINER),
        # Stopping, ECS stops the data plane first (it depends on the gateway): it finishes
        # what is in flight (entrypoint.sh: SIGTERM -> nginx's graceful shutdown), then the gateway stops.
        "dependsOn": [{"containerName": GATEWAY_CONTAINER, "condition": "HEALTHY"}],
        "stopTimeout": STOP_TIMEOUT_SECONDS,
        "ulimits": [{"name": "nofile", "softLimit": OPEN_FILES, "hardLimit": OPEN_FILES}],
    }
    gateway_container = {
        "name": GATEWAY_CONTAINER,
        "image": gateway_image,
        "essential": True,
        "portMappings": [{"containerPort": GATEWAY_PORT, "protocol": "tcp", "name": "gateway"}],
        "environment": [
            {"name": name, "value": value} for name, value in gateway_environment(data_plane.runtime).items()
        ],
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
        "logConfiguration": awslogs(log_groups["gateway"], GATEWAY_CONTAINER),
        "dependsOn": [{"containerName": COLLECTOR_CONTAINER, "condition": "START"}],
        # Told to stop only once the data plane has exited: nothing of its is in flight any more.
        "stopTimeout": STOP_TIMEOUT_SECONDS,
        "ulimits": [{"name": "nofile", "softLimit": OPEN_FILES, "hardLimit": OPEN_FILES}],
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
    return [data_plane_container, gateway_container, collector_container]
