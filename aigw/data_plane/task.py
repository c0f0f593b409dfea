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
    CPU_UNITS_PER_VCPU,
    DATA_PLANE_CONTAINER,
    DATA_PLANE_PORT,
    GATEWAY_CONTAINER,
    GATEWAY_PORT,
    GATEWAY_SERVER_PATH,
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
    # A young generation of 64 MiB semi-spaces instead of V8's default (16 MiB on 64-bit): a stream's
    # chunks are short-lived garbage, and with the default the collector took 19 % of the gateway's CPU
    # under 1,000 streams. Measured (README: Where the gateway's time goes): 12-15 % less gateway CPU,
    # about 100-180 MiB more resident at saturation. Node 20 accepts it in NODE_OPTIONS (a test runs it).
    "NODE_OPTIONS": "--max-semi-space-size=64",
}


def gateway_environment(runtime: DataPlaneRuntime) -> dict[str, str]:
    """The gateway's variables: with a shared store, its internal caches live there too, shared by the
    tasks (REDIS_CONNECTION_STRING, over TLS: the serverless cache speaks TLS only)."""
    redis_url = runtime.redis_url
    return {**GATEWAY_ENVIRONMENT, **({"REDIS_CONNECTION_STRING": redis_url} if redis_url else {})}


# Node runs the gateway's JavaScript on one core: a task of N vCPUs runs N
# gateway processes, forked by this primary with Node's cluster module (the
# task definition's command, `node -e GATEWAY_PRIMARY <N> <server> [args]`;
# the image stays the upstream one). Each worker is exactly the image's
# `node build/start-server.js [args]` (execArgv emptied: the -e would
# otherwise be inherited); they share the port, the primary handing out the
# connections in turn (the data plane's keep-alive connections, the health
# check's). A worker that exits is forked again, so a task never stays at
# reduced capacity unnoticed and the other workers' streams go on; more exits
# than workers within a minute is a crash loop (a start-up failure, memory
# exhausted): the primary exits 1 and ECS replaces the task, as it does today
# when the one process dies. SIGTERM (ECS stopping the task, after the data
# plane has drained and exited) or SIGINT: every worker gets SIGTERM (the
# gateway has no handler of it: it ends at once, with nothing in flight) and
# the primary exits 0 once they have. The primary is PID 1: it must handle
# SIGTERM itself (the kernel ignores unhandled signals to PID 1).
GATEWAY_PRIMARY = """const cluster = require("node:cluster");
const [n, exec, ...args] = process.argv.slice(1);
const workers = Number(n), exits = [];
let alive = 0, stopping = false;
cluster.setupPrimary({ exec, args, execArgv: [] });
const fork = () => { alive++; cluster.fork(); };
cluster.on("exit", (worker, code, signal) => {
  alive--;
  if (stopping) { if (!alive) process.exit(0); return; }
  const now = Date.now();
  exits.push(now);
  while (now - exits[0] > 60000) exits.shift();
  console.error(`gateway worker ${worker.process.pid} exited (${signal || code}), ${exits.length} in the last minute`);
  if (exits.length > workers) { console.error("gateway workers keep exiting: stopping the task"); process.exit(1); }
  fork();
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => {
  stopping = true;
  for (const worker of Object.values(cluster.workers)) worker.process.kill("SIGTERM");
  if (!alive) process.exit(0);
});
for (let i = 0; i < workers; i++) fork();
"""


def gateway_processes(cpu: int) -> int:
    """Gateway processes in a task of ``cpu`` CPU units: one per vCPU, at least one."""
    return max(1, cpu // CPU_UNITS_PER_VCPU)


def gateway_command(cpu: int) -> dict[str, list[str]]:
    """The gateway container's entry point and command: none with one process
    (the image's own, `npm run start:node`), else the cluster primary."""
    processes = gateway_processes(cpu)
    if processes == 1:
        return {}
    return {"entryPoint": [], "command": ["node", "-e", GATEWAY_PRIMARY, str(processes), GATEWAY_SERVER_PATH]}


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
    cpu: int,
) -> list[dict[str, Any]]:
    """The task's container definitions (ECS JSON): data plane, gateway, collector.
    Only the data plane receives secrets (the org keys). ``cpu``: the task's CPU
    units, which set how many gateway processes it runs (one per vCPU)."""

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
        **gateway_command(cpu),
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
