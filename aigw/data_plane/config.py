"""The data plane of one environment: what it offers and enforces
(DataPlaneConfig, known when the stack is synthesized and rendered into the
bundle) and the runtime joins that only other constructs know (DataPlaneRuntime,
Terraform references carried by the task definition). Assembled by the
data-plane construct (modules/data_plane.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from aigw.data_plane.policy import AZURE_SLUG, BEDROCK_SLUG, INFERENCE_ROUTES, KNOWN_MODELS, PROVIDER_SLUGS

DEFAULT_MAX_BODY_MIB = 50


@dataclass(frozen=True)
class AzureTarget:
    """The one Azure OpenAI deployment the gateway may call (from the environment file)."""

    resource_name: str
    deployment_id: str
    api_version: str


@dataclass(frozen=True)
class TeamBudget:
    tokens: int
    period: str
    alert_at_percent: int
    mode: str
    unknown_usage_tokens: int


@dataclass(frozen=True)
class TeamLimits:
    """What the data plane enforces for one team (from `[clients.<team>]`)."""

    requests_per_minute: int | None = None
    max_concurrent_requests: int | None = None
    max_tokens: int | None = None
    budget: TeamBudget | None = None
    # With the response cache: private, shared (one namespace with the other shared teams) or no-store.
    cache: str = "private"

    @property
    def counted(self) -> bool:
        """Whether its requests are counted in the shared store."""
        return any(v is not None for v in (self.requests_per_minute, self.max_concurrent_requests, self.budget))


@dataclass(frozen=True)
class ResponseCache:
    """The response cache (`[response_cache]`): how long an answer is kept and the largest one kept."""

    ttl_seconds: int
    max_entry_bytes: int


@dataclass(frozen=True)
class Guardrail:
    """The organisation's Bedrock guardrail as the data plane applies it
    (`[guardrails]`); its id and version are runtime joins (DataPlaneRuntime)."""

    region: str
    check_input: bool = True
    check_output: bool = True
    # Streams under output checks: "buffer" (the whole answer checked before its first event) or "refuse".
    output_streams: str = "buffer"
    blocked_input_message: str = "This request was blocked by the organisation's guardrail."
    blocked_output_message: str = "The answer was blocked by the organisation's guardrail."
    timeout_ms: int = 5000


@dataclass(frozen=True)
class RouteTarget:
    """One provider of a route: its gateway slug and the model it forces (None: the request's)."""

    provider: str
    model: str | None = None
    weight: int | None = None


@dataclass(frozen=True)
class Route:
    """A named routing config (from `[routing.<name>]`); aigw/data_plane/routing.py renders it."""

    strategy: str
    targets: tuple[RouteTarget, ...]
    on_status_codes: tuple[int, ...] | None = None
    retry_attempts: int = 0
    retry_on_status_codes: tuple[int, ...] | None = None
    skip_after_failures: int = 3
    skip_seconds: int = 30


@dataclass(frozen=True)
class DataPlaneConfig:
    """How the data plane treats a request.

    org_keys: secret names whose values the data plane injects (JWT auth
    on); empty: clients bring their own provider keys. azure: the Azure
    deployment Azure requests go to (None: Azure is not offered).
    bedrock_region: with org keys, Bedrock is offered, signed with the task
    role in this region (None: not offered). metric_models: model names, beyond
    the known ones, that keep their name in the metrics' `model` dimension."""

    org_keys: tuple[str, ...] = ()
    azure: AzureTarget | None = None
    max_body_mib: int = DEFAULT_MAX_BODY_MIB
    bedrock_region: str | None = None
    environment: str = "local"
    telemetry: bool = True
    routes: Mapping[str, frozenset[str]] = field(default_factory=lambda: INFERENCE_ROUTES)
    metric_models: tuple[str, ...] = ()
    teams: Mapping[str, TeamLimits] = field(default_factory=dict)
    # Named routing configs, and the one that applies when a request names no provider, config or route.
    routing: Mapping[str, Route] = field(default_factory=dict)
    default_route: str | None = None
    cache: ResponseCache | None = None
    guardrail: Guardrail | None = None
    # Requests the task takes to the gateway at once; past it, 503 with Retry-After.
    max_in_flight: int = 1000

    @property
    def uses_store(self) -> bool:
        return self.cache is not None or any(limits.counted for limits in self.teams.values())

    def __post_init__(self) -> None:
        unknown = set(self.org_keys) - set(PROVIDER_SLUGS)
        if unknown:
            raise ValueError(f"no provider slug for org keys {sorted(unknown)}")
        if "azure" in self.org_keys and self.azure is None:
            raise ValueError("an Azure org key needs an AzureTarget (resource, deployment, API version)")
        if self.bedrock_region is not None and not self.org_keys:
            raise ValueError("Bedrock signs with the task role: offered only with JWT auth (org keys)")
        if self.routing and not self.org_keys:
            raise ValueError("routes fill in org keys: offered only with JWT auth")
        if self.cache is not None and not self.org_keys:
            raise ValueError("the response cache is keyed on the validated team: offered only with JWT auth")
        if (self.default_route is None) != (not self.routing) or (
            self.default_route is not None and self.default_route not in self.routing
        ):
            raise ValueError(f"the default route {self.default_route!r} is not one of {sorted(self.routing)}")
        offered = set(self.offered_providers)
        for name, route in self.routing.items():
            missing = {target.provider for target in route.targets} - offered
            if missing:
                raise ValueError(f"route {name} names providers that are not offered: {sorted(missing)}")

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

    @property
    def all_metric_models(self) -> tuple[str, ...]:
        return tuple(sorted(set(KNOWN_MODELS) | set(self.metric_models)))


@dataclass(frozen=True)
class DataPlaneRuntime:
    """Values the data plane needs that other constructs make, joined when
    Terraform applies: teams maps a Cognito app client id (a Terraform
    reference) to the team it belongs to."""

    teams: Mapping[str, str] = field(default_factory=dict)
    # The shared store's address (the serverless cache's endpoint), when a team is counted.
    store_host: str | None = None
    store_port: str | None = None
    # The organisation's guardrail and its published version, with [guardrails].
    guardrail_id: str | None = None
    guardrail_version: str | None = None

    @property
    def redis_url(self) -> str | None:
        """The shared store as the gateway's REDIS_CONNECTION_STRING (TLS: rediss)."""
        return None if self.store_host is None else f"rediss://{self.store_host}:{self.store_port}"

    def to_json(self) -> str:
        """The task definition's value of AIGW_DATA_PLANE_RUNTIME (references
        inside are interpolated by Terraform; client ids are letters and digits,
        the store's host a DNS name and its port a number)."""
        document: dict[str, object] = {"teams": dict(self.teams)}
        if self.store_host is not None:
            document["store"] = {"host": self.store_host, "port": self.store_port}
        if self.guardrail_id is not None:
            document["guardrail"] = {"id": self.guardrail_id, "version": self.guardrail_version}
        return json.dumps(document, sort_keys=True, separators=(",", ":"))
