"""One environment file: its top-level keys and its tables, with what is
resolved from several of them (the load balancer's CIDRs, the autoscaling
plan, the zones). The rules that read several tables are in rules.py."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Annotated

from pydantic import Field, field_validator

from aigw.settings.backend import BackendSettings
from aigw.settings.clients import (
    ALL_SCOPES,
    DEFAULT_TEAM,
    ClientSettings,
    ResponseCacheSettings,
    SharedStoreSettings,
    TeamName,
    team_count_problems,
)
from aigw.settings.common import Problem, Section, valid_region
from aigw.settings.cost import CostAttributionSettings
from aigw.settings.edge import INTERNET_FACING_DEFAULT_CIDRS, EdgeSettings, world_open
from aigw.settings.emulator import EmulatorSettings
from aigw.settings.features import FeatureSettings
from aigw.settings.gateway import DEFAULT_REQUESTS_PER_TARGET, AutoscalingPlan, GatewaySettings
from aigw.settings.guardrails import GuardrailSettings
from aigw.settings.hybrid import HybridSettings
from aigw.settings.network import NetworkSettings, default_zones
from aigw.settings.observability import ObservabilitySettings
from aigw.settings.routing import RouteName, RouteSettings, routing_problems
from aigw.settings.rules import cross_section_problems
from aigw.versions import parse_constraint

# Keys that existed once, with what to write instead (a plain "unknown key" would not say).
REMOVED_KEYS: dict[str, str] = {
    "network.num_az": 'removed; list the zones instead, e.g. availability_zones = ["us-east-1a", "us-east-1b"] '
    "(its length is the number of zones; default: the region's first two zones where this project knows them)",
    "gateway.proxy_image": "renamed to gateway.data_plane_image (the data plane is one component with one name)",
    "features.enable_multi_client": "replaced by one [clients.<team>] table per consuming team (each gets its own "
    "Cognito app client, scopes and limits; see the configuration reference)",
    "features.enable_response_cache": "replaced by [response_cache] enabled = true (and clients.<team>.cache per "
    "team; see the configuration reference)",
    "features.enable_cost_attribution": "replaced by [cost_attribution] enabled = true (with its own settings; see "
    "the configuration reference)",
    "features.enable_fallback_routing": "replaced by [routing.<name>] tables (named routing configs, one of them "
    "the default; see the configuration reference)",
    "features.enable_guardrails": "replaced by [guardrails] enabled = true (with its own settings; see the "
    "configuration reference)",
}

ENVIRONMENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
_TAG_KEY = re.compile(r"^[A-Za-z0-9 _.:/=+@-]{1,128}$")

SECTION_NAMES: tuple[str, ...] = (
    "backend", "network", "gateway", "edge", "observability", "emulator", "shared_store", "response_cache",
    "cost_attribution", "guardrails", "hybrid", "features",
)  # fmt: skip

Tags = dict[Annotated[str, Field(pattern=_TAG_KEY.pattern)], Annotated[str, Field(max_length=256)]]


class EnvironmentSettings(Section):
    """One environment file. Top-level keys, then one table per area."""

    region: str = Field(
        description="AWS region of the stack: any region of the `aws` partition (those of aws-cn, aws-us-gov "
        "and the other partitions are refused). Required."
    )
    aws_provider_version: str = Field(
        "~> 6.22",
        description="Version constraint of hashicorp/aws written into the stack. Default: `~> 6.22`.",
    )
    deletion_protection: bool = Field(
        True,
        description="Protect the load balancer and the Cognito user pool (none in hybrid mode) from deletion. "
        "Default: true.",
    )
    tags: Tags = Field(
        default_factory=dict,
        description="Extra default tags on every resource (Project, Environment, ManagedBy are always set). "
        "Default: none.",
    )
    backend: BackendSettings
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    edge: EdgeSettings = Field(default_factory=EdgeSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    emulator: EmulatorSettings = Field(default_factory=EmulatorSettings)
    clients: dict[TeamName, ClientSettings] = Field(
        default_factory=dict,
        description="The consuming teams, one `[clients.<team>]` table each (the configuration reference has an "
        "example). Each gets its own Cognito app client; the load balancer admits only their tokens, and the "
        "data plane logs, counts and limits each request under its team. Renaming a team replaces its client "
        "(new id and secret). Needs `edge.enable_jwt_auth`; at most 10. Default: none: one client, team "
        "`default`, with no limits (a `[clients.default]` table keeps that client).",
    )
    shared_store: SharedStoreSettings = Field(default_factory=SharedStoreSettings)
    response_cache: ResponseCacheSettings = Field(default_factory=ResponseCacheSettings)
    routing: dict[RouteName, RouteSettings] = Field(
        default_factory=dict,
        description="Named routing configs over the organisation's providers, one `[routing.<name>]` table each "
        "(the configuration reference has a fallback and a loadbalance example). The default applies to requests "
        "that name no provider, config or route; a client picks another with `x-aigw-route: <name>`. The data "
        "plane fills in each target's credentials per request (none is written into a config) and publishes "
        "each config, without credentials, as an SSM parameter. Needs `edge.enable_jwt_auth`; at most 20. "
        "Default: none (clients name a provider or send their own config).",
    )
    cost_attribution: CostAttributionSettings = Field(default_factory=CostAttributionSettings)
    guardrails: GuardrailSettings = Field(default_factory=GuardrailSettings)
    hybrid: HybridSettings = Field(default_factory=HybridSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)

    @field_validator("region")
    @classmethod
    def _knownvalid_region(cls, value: str) -> str:
        return valid_region(value)

    @field_validator("aws_provider_version")
    @classmethod
    def _constraint(cls, value: str) -> str:
        parse_constraint(value)
        return value

    @property
    def load_balancer_cidrs(self) -> list[str]:
        """The CIDRs the load balancer admits: ``edge.allowed_cidrs``, or when it is not
        set the default of the scheme (internet-facing: the whole internet; internal: the VPC),
        and in hybrid mode with inbound ``ip_allow_list`` the control plane's addresses."""
        if self.edge.allowed_cidrs is not None:
            cidrs = list(self.edge.allowed_cidrs)
        else:
            cidrs = [self.network.vpc_cidr] if self.edge.internal else list(INTERNET_FACING_DEFAULT_CIDRS)
        control = self.hybrid.control_plane
        if self.hybrid.enabled and control.inbound == "ip_allow_list":
            cidrs += [cidr for cidr in control.allowed_cidrs if cidr not in cidrs]
        return cidrs

    @property
    def world_open_cidrs(self) -> list[str]:
        """The CIDRs that let the internet at large reach the gateway (none behind an internal load balancer)."""
        if self.edge.internal:
            return []
        return [cidr for cidr in self.load_balancer_cidrs if world_open(ipaddress.IPv4Network(cidr))]

    @property
    def autoscaling(self) -> AutoscalingPlan | None:
        """The service's autoscaling with every default resolved, or None when it is off."""
        gateway = self.gateway
        if not gateway.enable_autoscaling:
            return None
        requests = gateway.requests_per_target
        counts_requests = self.edge.load_balancer_type.publishes_request_count
        if requests is None and counts_requests and not gateway.deployment.advanced:
            requests = DEFAULT_REQUESTS_PER_TARGET
        return AutoscalingPlan(
            min_capacity=gateway.min_capacity,
            max_capacity=gateway.max_capacity,
            cpu_target_percent=gateway.cpu_target_percent,
            memory_target_percent=gateway.memory_target_percent,
            requests_per_target=requests,
            streams_per_task=gateway.streams_per_task,
            scale_in_cooldown_seconds=gateway.scale_in_cooldown_seconds,
            scale_out_cooldown_seconds=gateway.scale_out_cooldown_seconds,
        )

    @property
    def availability_zones(self) -> list[str]:
        """The zones the created VPC spans: ``network.availability_zones``, or the
        region's default; none with an existing VPC (its subnets decide)."""
        if self.network.existing_vpc:
            return []
        zones = self.network.availability_zones or default_zones(self.region)
        if zones is None:
            raise ValueError(f"no availability zones for {self.region}; validation should have refused this")
        return zones

    @property
    def teams(self) -> dict[str, ClientSettings]:
        """The consuming teams: the [clients] tables, or the one default client
        as it always was (both scopes, one-hour tokens, no limits)."""
        return dict(self.clients) if self.clients else {DEFAULT_TEAM: ClientSettings(scopes=list(ALL_SCOPES))}

    @property
    def needs_shared_store(self) -> bool:
        hybrid_store = self.hybrid.enabled and self.hybrid.cache.backend == "serverless"
        return hybrid_store or self.response_cache.enabled or any(client.limited for client in self.clients.values())

    def _cost_problems(self) -> Iterator[Problem]:
        cost = self.cost_attribution
        if not cost.enabled:
            for name in ("reserved_concurrency", "team_daily_cost_alarm_usd"):
                if name in cost.model_fields_set:
                    yield Problem(
                        f"cost_attribution.{name}", "cost attribution is off: set enabled = true or remove this key",
                        frozenset({"cost_attribution"}),
                    )  # fmt: skip
        unknown = sorted(set(cost.team_daily_cost_alarm_usd) - set(self.teams))
        if unknown:
            yield Problem(
                "cost_attribution.team_daily_cost_alarm_usd",
                f"{', '.join(unknown)}: not a team here (teams: {', '.join(sorted(self.teams))})",
                frozenset({"cost_attribution", "clients"}),
            )

    def _routing_problems(self) -> Iterator[Problem]:
        for name, route in self.routing.items():
            for problem in route.problems():
                yield Problem(f"routing.{name}.{problem.field}", problem.message, frozenset({"routing"}))
        keys = list(self.gateway.provider_keys)
        for field, message in routing_problems(self.routing, keys, self.edge.enable_jwt_auth):
            path = f"routing.{field}" if field else "routing"
            yield Problem(path, message, frozenset({"routing", "edge", "gateway"}))

    def problems(self) -> Iterator[Problem]:
        yield from cross_section_problems(self)
        for problem in team_count_problems(self.clients):
            yield Problem("clients", problem.message, frozenset({"clients"}))
        yield from self._routing_problems()
        yield from self._cost_problems()
        for name in SECTION_NAMES:
            section: Section = getattr(self, name)
            for problem in section.problems():
                yield Problem(f"{name}.{problem.field}", problem.message, frozenset({name}))
