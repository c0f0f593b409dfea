"""`[gateway.deployment]`: how ECS replaces the tasks on a deploy, one strategy at a time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from aigw.settings.common import Problem, Section

# ECS-native deployment strategies in hashicorp/aws (CHANGELOG): aws_ecs_service
# `deployment_configuration` (strategy BLUE_GREEN, bake time, lifecycle hooks)
# and `load_balancer.advanced_configuration` arrived in 6.4.0; the LINEAR and
# CANARY strategies with their configuration blocks in 6.21.0.
DEPLOYMENT_STRATEGY_MIN_PROVIDER: dict[str, tuple[int, int, int]] = {
    "blue_green": (6, 4, 0),
    "canary": (6, 21, 0),
    "linear": (6, 21, 0),
}

# Deployment strategies and the [gateway.deployment] keys each one reads; any
# other strategy's key is refused, so that exactly one strategy is configured.
DeploymentStrategy = Literal["rolling", "blue_green", "canary", "linear"]
STRATEGY_KEYS: dict[str, tuple[str, ...]] = {
    "rolling": (),
    "blue_green": ("bake_time_minutes", "lifecycle_hooks"),
    "canary": ("bake_time_minutes", "canary_percent", "canary_bake_time_minutes", "lifecycle_hooks"),
    "linear": ("bake_time_minutes", "linear_step_percent", "linear_step_bake_time_minutes", "lifecycle_hooks"),
}
# Defaults of the strategy keys: ECS's own for canary and linear (ECS API
# reference, CanaryConfiguration and LinearConfiguration); the bake time after
# the production shift has no ECS default for BLUE_GREEN, so this project's.
DEFAULT_BAKE_TIME_MINUTES = 10
DEFAULT_CANARY_PERCENT = 5.0
DEFAULT_CANARY_BAKE_TIME_MINUTES = 10
DEFAULT_LINEAR_STEP_PERCENT = 10.0
DEFAULT_LINEAR_STEP_BAKE_TIME_MINUTES = 6
MAX_BAKE_TIME_MINUTES = 1440
LifecycleStage = Literal[
    "RECONCILE_SERVICE", "PRE_SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT",
]  # fmt: skip
# Stages that exist only with test traffic: a blue/green deployment's test listener rule.
TEST_TRAFFIC_STAGES: frozenset[str] = frozenset({"TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT"})
LAMBDA_ARN = re.compile(
    r"^arn:aws:lambda:(?P<region>[a-z0-9-]+):\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]{1,128})?$"
)
_HOOK_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _tenths(value: float) -> bool:
    """Whether ``value`` is a multiple of 0.1, as ECS requires of traffic percentages."""
    return abs(round(value * 10) - value * 10) < 1e-9


class LifecycleHookSettings(Section):
    """A Lambda function ECS runs at stages of a deployment; it answers SUCCEEDED, FAILED (roll back) or
    IN_PROGRESS."""

    function_arn: str = Field(
        description="ARN of the Lambda function (same region as the stack; optionally with a version or alias). "
        "ECS invokes it through a role this stack creates, allowed to invoke exactly the configured functions. "
        "Required."
    )
    stages: list[LifecycleStage] = Field(
        min_length=1,
        description="Deployment stages at which ECS runs it, in ECS's names (`PRE_SCALE_UP`, `POST_SCALE_UP`, "
        "`PRODUCTION_TRAFFIC_SHIFT`, ...); the test traffic stages only with blue_green, which routes test "
        "traffic. Required.",
    )

    @field_validator("function_arn")
    @classmethod
    def _function(cls, value: str) -> str:
        if not LAMBDA_ARN.match(value):
            raise ValueError(
                f"{value!r} is not a Lambda function ARN (arn:aws:lambda:<region>:<account>:function:<name>)"
            )
        return value

    @field_validator("stages")
    @classmethod
    def _unique_stages(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError(f"{values} lists a stage twice")
        return values


@dataclass(frozen=True)
class TrafficStep:
    """A share of production traffic moved to the new revision, and the minutes before the next move."""

    percent: float
    bake_time_minutes: int


@dataclass(frozen=True)
class DeploymentPlan:
    """A deployment strategy with every default resolved (``DeploymentSettings.plan``)."""

    strategy: str
    # blue_green, canary, linear: both revisions run this long after production traffic has moved.
    bake_time_minutes: int
    canary: TrafficStep | None
    linear: TrafficStep | None
    # Hook name -> (Lambda function ARN, lifecycle stages), sorted by name.
    lifecycle_hooks: dict[str, tuple[str, tuple[str, ...]]]

    @property
    def test_traffic(self) -> bool:
        """Whether the deployment routes test traffic to the new revision before production (blue/green)."""
        return self.strategy == "blue_green"


class DeploymentSettings(Section):
    """How ECS replaces the tasks on a deploy (`[gateway.deployment]`): exactly one strategy."""

    strategy: DeploymentStrategy = Field(
        "rolling",
        description="`rolling`: tasks replaced in place behind the one target group, 100/200 %, circuit breaker "
        "with rollback. `blue_green`: a full new revision behind an alternate target group, checked through a "
        "test listener rule (header `X-Aigw-Test-Traffic: green`), then all production traffic at once. "
        "`canary`: canary_percent of production traffic first, the rest after canary_bake_time_minutes. "
        "`linear`: linear_step_percent more every linear_step_bake_time_minutes. The last three are ECS-native "
        "(hashicorp/aws >= 6.4 for blue_green, >= 6.21 for canary and linear), need an Application Load "
        "Balancer without JWT auth (ECS cannot shift traffic on a rule that authenticates) and keep the "
        "circuit breaker. Only the chosen strategy's keys may be set. Default: rolling.",
    )
    bake_time_minutes: int | None = Field(
        None,
        ge=0,
        le=MAX_BAKE_TIME_MINUTES,
        description="blue_green, canary, linear: minutes both revisions keep running after production traffic "
        f"has moved, before the old one is stopped (0-1440). Default: {DEFAULT_BAKE_TIME_MINUTES}.",
    )
    canary_percent: float | None = Field(
        None,
        ge=0.1,
        le=100,
        description="canary: percent of production traffic the new revision gets first (0.1-100, in steps of "
        f"0.1). Default: {DEFAULT_CANARY_PERCENT:g}.",
    )
    canary_bake_time_minutes: int | None = Field(
        None,
        ge=0,
        le=MAX_BAKE_TIME_MINUTES,
        description="canary: minutes at canary_percent before the rest of the traffic moves (0-1440). "
        f"Default: {DEFAULT_CANARY_BAKE_TIME_MINUTES}.",
    )
    linear_step_percent: float | None = Field(
        None,
        ge=3,
        le=100,
        description="linear: percent of production traffic moved at each step (3-100, in steps of 0.1). "
        f"Default: {DEFAULT_LINEAR_STEP_PERCENT:g}.",
    )
    linear_step_bake_time_minutes: int | None = Field(
        None,
        ge=0,
        le=MAX_BAKE_TIME_MINUTES,
        description=f"linear: minutes between steps (0-1440). Default: {DEFAULT_LINEAR_STEP_BAKE_TIME_MINUTES}.",
    )
    lifecycle_hooks: dict[str, LifecycleHookSettings] = Field(
        default_factory=dict,
        description="blue_green, canary, linear: Lambda functions ECS runs at deployment stages, keyed by a name "
        "of your choice (`[gateway.deployment.lifecycle_hooks.<name>]`, lowercase letters, digits, '-'). "
        "Default: none.",
    )

    @field_validator("canary_percent", "linear_step_percent")
    @classmethod
    def _percent(cls, value: float | None) -> float | None:
        if value is not None and not _tenths(value):
            raise ValueError(f"{value} is not a multiple of 0.1 (ECS shifts traffic in tenths of a percent)")
        return value

    @field_validator("lifecycle_hooks")
    @classmethod
    def _hook_names(cls, hooks: dict[str, LifecycleHookSettings]) -> dict[str, LifecycleHookSettings]:
        bad = [name for name in hooks if not _HOOK_NAME.match(name)]
        if bad:
            raise ValueError(
                f"hook names {', '.join(map(repr, bad))}: 1-32 lowercase letters, digits and '-', starting with a "
                "letter"
            )
        return hooks

    @property
    def advanced(self) -> bool:
        """Whether ECS shifts traffic between two target groups (every strategy but rolling)."""
        return self.strategy != "rolling"

    @property
    def plan(self) -> DeploymentPlan:
        """The strategy with every default resolved."""
        canary = linear = None
        if self.strategy == "canary":
            canary = TrafficStep(
                DEFAULT_CANARY_PERCENT if self.canary_percent is None else self.canary_percent,
                _or(self.canary_bake_time_minutes, DEFAULT_CANARY_BAKE_TIME_MINUTES),
            )
        if self.strategy == "linear":
            linear = TrafficStep(
                DEFAULT_LINEAR_STEP_PERCENT if self.linear_step_percent is None else self.linear_step_percent,
                _or(self.linear_step_bake_time_minutes, DEFAULT_LINEAR_STEP_BAKE_TIME_MINUTES),
            )
        return DeploymentPlan(
            strategy=self.strategy,
            bake_time_minutes=_or(self.bake_time_minutes, DEFAULT_BAKE_TIME_MINUTES),
            canary=canary,
            linear=linear,
            lifecycle_hooks={
                name: (hook.function_arn, tuple(hook.stages)) for name, hook in sorted(self.lifecycle_hooks.items())
            },
        )

    def problems(self) -> Iterator[Problem]:
        for name in (key for keys in STRATEGY_KEYS.values() for key in keys):
            if name in self.model_fields_set and name not in STRATEGY_KEYS[self.strategy]:
                owners = [strategy for strategy, keys in STRATEGY_KEYS.items() if name in keys]
                yield Problem(
                    name,
                    f"belongs to strategy {' / '.join(owners)}, but strategy is {self.strategy!r}; one strategy is "
                    "configured at a time: remove this key or change strategy",
                )
        if self.strategy != "blue_green":
            for hook_name, hook in self.lifecycle_hooks.items():
                test_stages = sorted(set(hook.stages) & TEST_TRAFFIC_STAGES)
                if test_stages:
                    yield Problem(
                        f"lifecycle_hooks.{hook_name}.stages",
                        f"{', '.join(test_stages)}: only blue_green routes test traffic; {self.strategy} "
                        "deployments check the new revision on a share of production traffic",
                    )
