"""`[gateway]`: the Portkey gateway service on ECS Fargate, its Azure target
(`[gateway.azure]`) and its autoscaling; the deployment strategy is in deployment.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from aigw.settings.common import Problem, Section
from aigw.settings.deployment import DeploymentSettings

# Autoscaling: the cooldowns this stack has always used, and the request-count
# target that applies by default wherever a request policy can work.
SCALE_IN_COOLDOWN_SECONDS = 120
SCALE_OUT_COOLDOWN_SECONDS = 60
DEFAULT_REQUESTS_PER_TARGET = 1000
# [gateway] keys that only mean something with autoscaling on.
AUTOSCALING_KEYS: tuple[str, ...] = (
    "min_capacity", "max_capacity", "cpu_target_percent", "memory_target_percent", "requests_per_target",
    "streams_per_task", "scale_in_cooldown_seconds", "scale_out_cooldown_seconds",
)  # fmt: skip

# Valid task sizes on Fargate (CPU units -> allowed memory MiB), per the ECS
# developer guide's task-size table.
FARGATE_MEMORY_BY_CPU: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$")
_AZURE_RESOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}[A-Za-z0-9]$")
_AZURE_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_AZURE_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


def valid_image(value: str) -> str:
    """An image reference pinned by a tag (not `latest`) or a digest."""
    if not _IMAGE.match(value):
        raise ValueError(f"{value!r} must be an image reference pinned by a tag or an @sha256 digest")
    if value.endswith(":latest"):
        raise ValueError(f"{value!r}: the 'latest' tag is not reproducible; pin a version")
    return value


class AzureSettings(Section):
    """The Azure OpenAI deployment the gateway sends Azure requests to. The
    data plane sets these for every Azure request; clients cannot choose them."""

    resource_name: str = Field(
        description="Azure OpenAI resource (the `<name>` of `https://<name>.openai.azure.com`). Required."
    )
    deployment_id: str = Field(description="Deployment within the resource. Required.")
    api_version: str = Field(description="Azure OpenAI API version, e.g. `2024-10-21`. Required.")

    @field_validator("resource_name")
    @classmethod
    def _resource(cls, value: str) -> str:
        if not _AZURE_RESOURCE.match(value):
            raise ValueError(f"{value!r} is not an Azure resource name (2-64 letters, digits and '-')")
        return value

    @field_validator("deployment_id")
    @classmethod
    def _deployment(cls, value: str) -> str:
        if not _AZURE_DEPLOYMENT.match(value):
            raise ValueError(f"{value!r} is not an Azure deployment name (1-64 letters, digits, '.', '_', '-')")
        return value

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        if not _AZURE_API_VERSION.match(value):
            raise ValueError(f"{value!r} is not an Azure API version (YYYY-MM-DD or YYYY-MM-DD-preview)")
        return value


class GatewaySettings(Section):
    """The Portkey gateway service on ECS Fargate."""

    image: str = Field(
        "portkeyai/gateway:1.15.2",
        description="Upstream gateway image, pinned by tag or digest. Default: `portkeyai/gateway:1.15.2`.",
    )
    image_from_ecr: bool = Field(
        False,
        description="Run the task's images from this stack's ECR repositories instead of pulling them from the "
        "upstream registries: the gateway from `<prefix>/gateway` (same tag or digest as `image`) and the data "
        "plane, which holds the provider keys, from `<prefix>/data-plane` (same as `data_plane_image`); the "
        "operator pushes both, and ECR scans them on push. The collector stays AWS's public ADOT image. "
        "Default: false.",
    )
    data_plane_image: str = Field(
        "openresty/openresty:1.27.1.2-alpine",
        description="Image of the data plane in front of the gateway (the `data-plane` container): the official "
        "OpenResty image, nginx with LuaJIT; its code and configuration come from the stack, not the image "
        "(docs/data-plane.md). Default: `openresty/openresty:1.27.1.2-alpine`.",
    )
    provider_keys: list[Literal["openai", "anthropic", "google", "azure"]] = Field(
        ["openai", "anthropic"],
        description="Providers with an organisation key in Secrets Manager. With `edge.enable_jwt_auth` the data "
        "plane injects them for authenticated clients (each secret needs a value before tasks can start) and offers "
        "only these providers; without JWT auth the secrets are created but not used. `azure` needs "
        "`[gateway.azure]`. Default: openai, anthropic.",
    )
    azure: AzureSettings | None = Field(
        None,
        description="Azure OpenAI target (`[gateway.azure]`); Azure is offered only when it is set. Default: none.",
    )
    max_request_body_mib: int = Field(
        50,
        ge=1,
        le=512,
        description="Largest request body the data plane accepts, in MiB (larger: a JSON 413). Admits OpenAI's "
        "25 MB audio uploads and 50 MB image edits. Default: 50.",
    )
    drain_seconds: int = Field(
        300,
        ge=0,
        le=3600,
        description="How long requests and streams in flight may go on when their task is replaced (a "
        "deployment, scale-in): the target groups' deregistration delay, during which the load balancer sends "
        "the task nothing new. ECS then stops the data plane, which finishes what is still in flight for up to "
        "its stop timeout (Fargate's maximum, 120 s) before the gateway stops. A stream longer than this may be "
        "cut. Default: 300.",
    )
    max_requests_in_flight: int | None = Field(
        None,
        ge=10,
        le=100_000,
        description="Requests (streams included) one task's data plane takes to the gateway at once; past it, "
        "a JSON 503 with Retry-After (rule `saturated`, logged and counted) instead of a queue that overflows "
        "the gateway's listen queue into resets and timeouts. Default: about 1,000 per vCPU (`cpu` * 1000 / "
        "1024): one vCPU holds about 500 typical streams (README: Performance), so this bounds the wait, not "
        "the throughput.",
    )
    collector_image: str = Field(
        "amazon/aws-otel-collector:v0.43.3",
        description="ADOT collector sidecar image. Default: `amazon/aws-otel-collector:v0.43.3`.",
    )
    cpu: Literal[256, 512, 1024, 2048, 4096, 8192, 16384] = Field(
        512,
        description="Task CPU units (Fargate sizes). The task runs one gateway process per vCPU (`cpu` / 1024, at "
        "least one: Node runs the gateway's JavaScript on one core), forked by a Node cluster primary; at 1 vCPU "
        "or less, the image's own command (hybrid mode: the enterprise image's own command, always). Default: 512.",
    )
    memory: int = Field(1024, description="Task memory in MiB; must be valid for `cpu` on Fargate. Default: 1024.")
    desired_count: int = Field(
        2,
        description="Tasks at deploy time, between min_capacity and max_capacity; with autoscaling off, the "
        "task count. Default: 2.",
    )
    enable_autoscaling: bool = Field(
        True,
        description="Target-tracking autoscaling of the task count between min_capacity and max_capacity, on CPU "
        "and, where set, memory, requests and streams in flight per task. Off: the service runs desired_count "
        "tasks and the scaling keys (min_capacity to scale_out_cooldown_seconds) are refused. Default: true.",
    )
    min_capacity: int = Field(1, description="Autoscaling floor, 1 to 100. Default: 1.")
    max_capacity: int = Field(3, description="Autoscaling ceiling, 1 to 100, at least min_capacity. Default: 3.")
    cpu_target_percent: int = Field(
        70, ge=10, le=95, description="Target average CPU utilization of the tasks (10-95). Default: 70."
    )
    memory_target_percent: int | None = Field(
        None,
        ge=10,
        le=95,
        description="Target average memory utilization of the tasks (10-95); set it to add a memory policy. "
        "Default: none (no memory policy).",
    )
    requests_per_target: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Target load balancer requests per task per minute (ALBRequestCountPerTarget); only with an "
        "Application Load Balancer and a rolling deployment (under blue/green, canary and linear the production "
        "target group alternates). Default: 1000 where it applies, otherwise no request policy.",
    )
    streams_per_task: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Target streams in flight per task (the data plane's StreamsInFlight, averaged over the "
        "tasks): a policy that sees how many completions are open, which requests per minute cannot (a "
        "two-minute stream counts once). Measure a task's saturation point first (`make bench`) and set this "
        "below it. Default: none (no stream policy).",
    )
    scale_in_cooldown_seconds: int = Field(
        SCALE_IN_COOLDOWN_SECONDS,
        ge=0,
        le=3600,
        description=f"Seconds after a scale-in before the next one (0-3600). Default: {SCALE_IN_COOLDOWN_SECONDS}.",
    )
    scale_out_cooldown_seconds: int = Field(
        SCALE_OUT_COOLDOWN_SECONDS,
        ge=0,
        le=3600,
        description=f"Seconds after a scale-out before the next one (0-3600). Default: {SCALE_OUT_COOLDOWN_SECONDS}.",
    )
    enable_execute_command: bool = Field(
        False,
        description="ECS Exec: operators may open a shell in a running task (`aws ecs execute-command`). The "
        "task role gets the four ssmmessages permissions the session needs, every session is logged to its own "
        "log group under the stack's logs key and encrypted with a key of its own, and the security gate reports "
        "it (AIGW-ECS1) until the environment accepts it in security/suppressions.toml. Default: false.",
    )
    deployment: DeploymentSettings = Field(
        default_factory=DeploymentSettings,
        description="How ECS replaces the tasks on a deploy (`[gateway.deployment]`). Default: a rolling deployment.",
    )
    server_mode: Literal["gateway", "mcp", "all"] = Field(
        "gateway",
        description="What the gateway serves: `gateway`, the AI gateway; `mcp`, Portkey's MCP gateway (port "
        "8788); `all`, both, routed by host (an ALB with `edge.gateway_host` and `hybrid.mcp_host`). `mcp` and "
        "`all` exist only in the enterprise image, so they need `[hybrid]`: the OSS image (`@portkey-ai/gateway` "
        "1.15.2) has no MCP server, no SERVER_MODE variable and no port 8788. Default: `gateway`.",
    )
    fargate_spot_weight: int = Field(
        0,
        ge=0,
        le=100,
        description="Weight of FARGATE_SPOT against FARGATE (weight 1, base 1 task always on FARGATE); "
        "0 runs everything on FARGATE. Default: 0.",
    )

    @field_validator("image", "collector_image", "data_plane_image")
    @classmethod
    def _image(cls, value: str) -> str:
        return valid_image(value)

    @field_validator("min_capacity", "desired_count")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"{value} is out of range; allowed: 1 or more")
        return value

    @field_validator("max_capacity")
    @classmethod
    def _max(cls, value: int) -> int:
        if not 1 <= value <= 100:
            raise ValueError(f"{value} is out of range; allowed: 1 to 100")
        return value

    @field_validator("provider_keys")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError(f"{values} lists a provider twice")
        return values

    @property
    def requests_in_flight_cap(self) -> int:
        """``max_requests_in_flight``, or its default for the task's CPU."""
        if self.max_requests_in_flight is not None:
            return self.max_requests_in_flight
        return self.cpu * 1000 // 1024

    def problems(self) -> Iterator[Problem]:
        for problem in self.deployment.problems():
            yield Problem(f"deployment.{problem.field}", problem.message)
        allowed = FARGATE_MEMORY_BY_CPU[self.cpu]
        if self.memory not in allowed:
            yield Problem(
                "memory",
                f"{self.memory} MiB is not a Fargate size for cpu = {self.cpu}; allowed: {_describe_sizes(allowed)}",
            )
        if not self.enable_autoscaling:
            for name in AUTOSCALING_KEYS:
                if name in self.model_fields_set:
                    yield Problem(name, "autoscaling is off (enable_autoscaling = false); remove this key")
            return
        if self.min_capacity > self.max_capacity:
            yield Problem("max_capacity", f"{self.max_capacity} is below min_capacity ({self.min_capacity}); raise it")
        elif not self.min_capacity <= self.desired_count <= self.max_capacity:
            yield Problem(
                "desired_count",
                f"{self.desired_count} must lie between min_capacity ({self.min_capacity}) "
                f"and max_capacity ({self.max_capacity})",
            )

    @property
    def minimum_tasks(self) -> int:
        """Tasks the service should never run fewer of (the running-tasks alarm's threshold)."""
        return self.min_capacity if self.enable_autoscaling else self.desired_count


def _describe_sizes(sizes: tuple[int, ...]) -> str:
    if len(sizes) <= 3:
        return ", ".join(str(size) for size in sizes)
    return f"{sizes[0]} to {sizes[-1]} in steps of {sizes[1] - sizes[0]}"


@dataclass(frozen=True)
class AutoscalingPlan:
    """What the service's target tracking does, every default resolved (``EnvironmentSettings.autoscaling``)."""

    min_capacity: int
    max_capacity: int
    cpu_target_percent: int
    memory_target_percent: int | None
    requests_per_target: int | None
    streams_per_task: int | None
    scale_in_cooldown_seconds: int
    scale_out_cooldown_seconds: int
