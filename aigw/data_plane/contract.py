"""What the data plane, the gateway, the load balancer and the task agree
on: ports, the health path, timeouts, container names and the environment
variables that carry the bundle. One place, read by both sides."""

from __future__ import annotations

GATEWAY_PORT = 8787  # the gateway's own (default) port, inside the task only
# The gateway image's entry point (its WORKDIR is /app; its own command is
# `npm run start:node`, i.e. `node build/start-server.js`).
GATEWAY_SERVER_PATH = "/app/build/start-server.js"
# Fargate's CPU units per vCPU: a task runs one gateway process per vCPU.
CPU_UNITS_PER_VCPU = 1024
DATA_PLANE_PORT = 8080  # the task's entry point: the load balancer's target
HEALTH_PATH = "/health"  # proxied to the gateway's "/" ("AI Gateway says hey!")
# Upstream (gateway) read/send timeout: completions stream for minutes.
UPSTREAM_TIMEOUT_SECONDS = 300
# The load balancer's idle timeout; the data plane keeps client connections
# open longer than the ALB does, or the ALB reuses a connection nginx is
# closing and answers 502.
ALB_IDLE_TIMEOUT_SECONDS = 300
CLIENT_KEEPALIVE_SECONDS = ALB_IDLE_TIMEOUT_SECONDS + 50
# Idle connections to the gateway each worker keeps: enough that streams
# reuse them rather than open new ones in bursts, which the gateway's listen
# queue (Node's default backlog, 511) would drop and the kernel retry seconds later.
UPSTREAM_KEEPALIVE_CONNECTIONS = 1024
# How long one stays idle: under the gateway's own keep-alive timeout (Node's
# http server default, 5 s), or nginx could send a request on a connection the
# gateway is closing, and a POST is not retried (a 502).
UPSTREAM_IDLE_SECONDS = 4
# The containers' open-files limit (ulimit nofile, soft and hard): sockets
# included, the data plane and the gateway hold two per request in flight.
OPEN_FILES = 65_536
# How long ECS waits for a container to exit on its own once told to stop
# (Fargate's maximum); the data plane finishes what is in flight within it.
STOP_TIMEOUT_SECONDS = 120
# nginx's own bound on finishing in flight once it is shutting down gracefully:
# inside the stop timeout, with time left for the gateway behind it.
DRAIN_TIMEOUT_SECONDS = STOP_TIMEOUT_SECONDS - 10
# The ADOT collector's OTLP/HTTP receiver in the same task.
OTLP_HOST, OTLP_PORT = "127.0.0.1", 4318
TELEMETRY_FLUSH_SECONDS = 1
SERVICE_NAME = "ai-gateway-data-plane"
# What the data plane has in flight, per task (gauges, every few seconds, with
# the environment's name as their one dimension): the service can scale on
# the average over its tasks (gateway.streams_per_task).
STREAMS_IN_FLIGHT_METRIC = "StreamsInFlight"
REQUESTS_IN_FLIGHT_METRIC = "RequestsInFlight"
IN_FLIGHT_DIMENSION = "environment"
IN_FLIGHT_REPORT_SECONDS = 10
# Credentials are fetched again this long before they expire (as the AWS SDKs do).
CREDENTIALS_REFRESH_SECONDS = 300

DATA_PLANE_CONTAINER = "data-plane"
GATEWAY_CONTAINER = "gateway"
COLLECTOR_CONTAINER = "adot-collector"

# The task definition's environment of the data plane container.
BUNDLE_VARIABLE = "AIGW_DATA_PLANE_BUNDLE"  # from the S3 environment file: the bundle, base64
SHA256_VARIABLE = "AIGW_DATA_PLANE_SHA256"  # the bundle's hash, pinned in the task definition
RUNTIME_VARIABLE = "AIGW_DATA_PLANE_RUNTIME"  # runtime joins (JSON), e.g. client id -> team
KEY_VARIABLES_VARIABLE = "AIGW_KEY_VARIABLES"  # names of the org-key variables ECS injects
# The task role's credentials endpoint (ECS sets the relative URI; the AWS
# SDKs also honour a full URI on loopback, which the harness uses).
CREDENTIALS_VARIABLES: tuple[str, ...] = (
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
)
# Only the local harness sets these (the task definition never does; a test
# holds that): nginx's home, Debian's module lines, and loopback addresses.
HARNESS_VARIABLES: tuple[str, ...] = (
    "AIGW_HOME",
    "AIGW_NGINX_PRELUDE",
    "AIGW_LISTEN",
    "AIGW_GATEWAY_ADDRESS",
    "AIGW_OTLP_ADDRESS",
    "AIGW_STORE_CA",
)
# Where the bundles live in their bucket: <prefix><sha256>.env.
BUNDLE_KEY_PREFIX = "data-plane/"
