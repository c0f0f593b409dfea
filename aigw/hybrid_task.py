"""What runs in hybrid mode, as plain data (ECS JSON, no cdktf): the
enterprise gateway's container, the data service's and the built-in Redis's,
with the variables the stack sets for each, translated from Portkey's ECS
module (terraform/ecs/main.tf of portkey-gateway-infrastructure):

    load balancer -> gateway :8787 (and the MCP gateway :8788) -> control plane
                     gateway -> data-service:<port>, redis:6379 (Service Connect)

None of this can run here: the enterprise image is licensed. Its variables are
the guide's and its module's, not read from the image's build (which this
project cannot obtain); docs/hybrid.md says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aigw.data_plane.contract import GATEWAY_CONTAINER, STOP_TIMEOUT_SECONDS
from aigw.settings.hybrid import ENTERPRISE_GATEWAY_PORT, MCP_PORT, HybridSettings
from aigw.task_entries import ENTERPRISE_HEALTH_PATH, gateway_entries

DATA_SERVICE_CONTAINER = "data-service"
REDIS_CONTAINER = "redis"
REDIS_PORT = 6379
DATA_SERVICE_HEALTH_PATH = "/health"
PUBLIC_ALBUS = "https://albus.portkey.ai"
# Service Connect names (the client aliases other services call).
GATEWAY_ALIAS, DATA_SERVICE_ALIAS, REDIS_ALIAS = "gateway", "data-service", "redis"


@dataclass(frozen=True)
class CacheEndpoint:
    """The Redis both services use: `host:port`, TLS, mode, CACHE_STORE's value."""

    address: str
    tls: bool
    mode: str
    store: str


def _pairs(variables: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in sorted(variables.items())]


def _secrets(secrets: Mapping[str, str]) -> list[dict[str, str]]:
    """Each variable from the JSON key of its own name (Portkey's convention)."""
    return [{"name": name, "valueFrom": f"{arn}:{name}::"} for name, arn in sorted(secrets.items())]


def _health(command: str, *, start_period: int) -> dict[str, Any]:
    return {"command": ["CMD-SHELL", command], "interval": 30, "timeout": 5, "retries": 3, "startPeriod": start_period}


def _logs(group: str, region: str, prefix: str) -> dict[str, Any]:
    return {
        "logDriver": "awslogs",
        "options": {"awslogs-group": group, "awslogs-region": region, "awslogs-stream-prefix": prefix},
    }


def common_variables(hybrid: HybridSettings, cache: CacheEndpoint, region: str) -> dict[str, str]:
    """What the gateway and the data service share: the cache and the log store's region."""
    variables = {
        "CACHE_STORE": cache.store,
        "REDIS_URL": cache.address,
        "REDIS_TLS_ENABLED": "true" if cache.tls else "false",
        "REDIS_MODE": cache.mode,
    }
    if hybrid.log_store is not None:
        variables["LOG_STORE_REGION"] = hybrid.log_store.region or region
    return variables


def gateway_variables(hybrid: HybridSettings, server_mode: str, cache: CacheEndpoint, region: str) -> dict[str, str]:
    variables = {**hybrid.gateway.environment, **common_variables(hybrid, cache, region)}
    variables["PORT"] = str(ENTERPRISE_GATEWAY_PORT)
    if server_mode != "gateway":
        variables["SERVER_MODE"] = server_mode
        variables["MCP_PORT"] = str(MCP_PORT)
        variables["MCP_GATEWAY_BASE_URL"] = hybrid.mcp_gateway_base_url or ""
    if hybrid.log_store is not None:
        variables["LOG_STORE_GENERATIONS_BUCKET"] = hybrid.log_store.bucket
    if hybrid.data_service.enabled:
        variables["DATASERVICE_BASEPATH"] = f"http://{DATA_SERVICE_ALIAS}:{hybrid.data_service.port}"
    variables.update(hybrid.control_plane.base_paths)
    return variables


def data_service_variables(hybrid: HybridSettings, cache: CacheEndpoint, region: str) -> dict[str, str]:
    store = hybrid.log_store
    if store is None:
        raise ValueError("the data service needs a log store; validation should have refused this")
    variables = {**hybrid.data_service.environment, **common_variables(hybrid, cache, region)}
    variables.update(
        {
            "PORT": str(hybrid.data_service.port),
            "ALBUS_ENDPOINT": hybrid.control_plane.base_paths.get("ALBUS_BASEPATH", PUBLIC_ALBUS),
            "LOG_EXPORTS_BUCKET": store.exports_bucket or store.bucket,
            "FINETUNES_BUCKET": store.finetune_bucket or store.bucket,
            "AWS_S3_FINETUNE_BUCKET": store.finetune_bucket or store.bucket,
            "GATEWAY_BASE_URL": f"http://{GATEWAY_ALIAS}:{ENTERPRISE_GATEWAY_PORT}",
        }
    )
    return variables


def cache_secret(hybrid: HybridSettings) -> dict[str, str]:
    """REDIS_PASSWORD for both services when the external cache uses AUTH."""
    auth = hybrid.cache.auth_secret_arn if hybrid.cache.backend == "elasticache" else None
    return {"REDIS_PASSWORD": auth} if auth else {}


def secrets_read(containers: list[dict[str, Any]]) -> list[str]:
    """The secrets ECS reads to start these containers, once each: the secret of each variable
    (its ARN, without the JSON key after it) and the registry credentials."""
    arns = [":".join(s["valueFrom"].split(":")[:7]) for c in containers for s in c.get("secrets", [])]
    arns += [c["repositoryCredentials"]["credentialsParameter"] for c in containers if "repositoryCredentials" in c]
    return sorted(set(arns))


def gateway_container(
    hybrid: HybridSettings, server_mode: str, cache: CacheEndpoint, *, region: str, log_group: str
) -> dict[str, Any]:
    """The enterprise gateway: pulled with the registry credentials, its ports
    named for Service Connect, checked on its health path."""
    entries = gateway_entries(server_mode)
    return {
        "name": GATEWAY_CONTAINER,
        "image": hybrid.gateway_image,
        "essential": True,
        "repositoryCredentials": {"credentialsParameter": hybrid.registry_credentials_secret_arn},
        "portMappings": [
            {"containerPort": entry.port, "protocol": "tcp", "name": entry.role, "appProtocol": "http"}
            for entry in entries
        ],
        "environment": _pairs(gateway_variables(hybrid, server_mode, cache, region)),
        "secrets": _secrets({**hybrid.gateway.secrets, **cache_secret(hybrid)}),
        "healthCheck": _health(f"wget -qO- http://localhost:{entries[0].port}{ENTERPRISE_HEALTH_PATH} || exit 1",
                               start_period=60),
        "logConfiguration": _logs(log_group, region, GATEWAY_CONTAINER),
        "stopTimeout": STOP_TIMEOUT_SECONDS,
    }  # fmt: skip


def data_service_container(
    hybrid: HybridSettings, cache: CacheEndpoint, *, region: str, log_group: str
) -> dict[str, Any]:
    port = hybrid.data_service.port
    return {
        "name": DATA_SERVICE_CONTAINER,
        "image": hybrid.data_service.image,
        "essential": True,
        "repositoryCredentials": {"credentialsParameter": hybrid.registry_credentials_secret_arn},
        "portMappings": [{"containerPort": port, "protocol": "tcp", "name": DATA_SERVICE_ALIAS, "appProtocol": "http"}],
        "environment": _pairs(data_service_variables(hybrid, cache, region)),
        "secrets": _secrets({**hybrid.data_service.secrets, **cache_secret(hybrid)}),
        "healthCheck": _health(f"wget -qO- http://localhost:{port}{DATA_SERVICE_HEALTH_PATH} || exit 1",
                               start_period=60),
        "logConfiguration": _logs(log_group, region, DATA_SERVICE_CONTAINER),
    }  # fmt: skip


def redis_container(hybrid: HybridSettings, *, region: str, log_group: str) -> dict[str, Any]:
    """The built-in Redis: no persistence asked for (a cache), reached only through Service Connect."""
    return {
        "name": REDIS_CONTAINER,
        "image": hybrid.cache.image,
        "essential": True,
        "portMappings": [{"containerPort": REDIS_PORT, "protocol": "tcp", "name": REDIS_ALIAS}],
        "healthCheck": _health("redis-cli -h 127.0.0.1 ping | grep PONG || exit 1", start_period=10),
        "logConfiguration": _logs(log_group, region, REDIS_CONTAINER),
    }
