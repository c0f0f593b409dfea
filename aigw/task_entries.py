"""Where the load balancer sends traffic inside a task, by mode: the data
plane's port (the OSS gateway behind it), or in hybrid mode the enterprise
gateway's own ports, one per host it serves. The edge builds a target group
per entry and the service registers the task's container port in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aigw.data_plane.contract import DATA_PLANE_CONTAINER, DATA_PLANE_PORT, GATEWAY_CONTAINER, HEALTH_PATH
from aigw.settings.hybrid import ENTERPRISE_GATEWAY_PORT, MCP_PORT

if TYPE_CHECKING:
    from aigw.settings import EnvironmentSettings

ENTERPRISE_HEALTH_PATH = "/v1/health"


@dataclass(frozen=True)
class TaskEntry:
    """One host's way into a task: its role (``gateway`` or ``mcp``), the container, its port and
    the path the target group checks."""

    role: str
    container: str
    port: int
    health_path: str

    @property
    def reached(self) -> str:
        """What the load balancer reaches, in words (security-group rule descriptions)."""
        if self.container == DATA_PLANE_CONTAINER:
            return "data plane"
        return "MCP gateway" if self.role == "mcp" else "enterprise gateway"


def task_entries(settings: EnvironmentSettings) -> list[TaskEntry]:
    """The task's entries, the primary (the load balancer's default) first."""
    if not settings.hybrid.enabled:
        return [TaskEntry("gateway", DATA_PLANE_CONTAINER, DATA_PLANE_PORT, HEALTH_PATH)]
    return gateway_entries(settings.gateway.server_mode)


def gateway_entries(server_mode: str) -> list[TaskEntry]:
    """The enterprise gateway's ports by server mode."""
    entries = []
    if server_mode in ("gateway", "all"):
        entries.append(TaskEntry("gateway", GATEWAY_CONTAINER, ENTERPRISE_GATEWAY_PORT, ENTERPRISE_HEALTH_PATH))
    if server_mode in ("mcp", "all"):
        entries.append(TaskEntry("mcp", GATEWAY_CONTAINER, MCP_PORT, ENTERPRISE_HEALTH_PATH))
    return entries


def entry_hosts(settings: EnvironmentSettings) -> dict[str, str]:
    """The host each entry's role is routed by: ``edge.gateway_host`` for the primary
    and, serving both (server_mode `all`), ``hybrid.mcp_host`` for the MCP gateway."""
    entries = task_entries(settings)
    hosts = {entries[0].role: settings.edge.gateway_host}
    if len(entries) > 1:
        hosts["mcp"] = settings.hybrid.mcp_host or ""
    return {role: host for role, host in hosts.items() if host}
