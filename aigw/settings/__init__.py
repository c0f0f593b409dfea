"""Typed settings of one environment file (``environments/<env>.toml``).

One module per table (``backend``, ``network``, ``gateway`` with its Azure
target, ``deployment`` for ``[gateway.deployment]``, ``edge`` with its access
logs, ``observability``, ``emulator``, ``features``), the root model in
``environment``, the rules that read more than one table in ``rules``, what
every table is built from in ``common``, and the load balancer type with its
behaviour in ``load_balancer``. This package re-exports every public name,
so ``from aigw.settings import EdgeSettings`` keeps working.

Every field is documented in its table's module; the README's configuration
reference is generated from these models (``python -m aigw.docs``) and a test
keeps the two in step. Field validators check single values; ``problems()``
methods check rules that span fields and report each problem against the
field to change. Nothing in this package imports cdktf, so a bad file is
reported in well under a second, before the (slow) provider bindings are loaded.
"""

from __future__ import annotations

from aigw.settings.backend import BackendSettings
from aigw.settings.common import OTHER_PARTITION_REGIONS, Problem, Section
from aigw.settings.deployment import (
    DEFAULT_BAKE_TIME_MINUTES,
    DEFAULT_CANARY_BAKE_TIME_MINUTES,
    DEFAULT_CANARY_PERCENT,
    DEFAULT_LINEAR_STEP_BAKE_TIME_MINUTES,
    DEFAULT_LINEAR_STEP_PERCENT,
    DEPLOYMENT_STRATEGY_MIN_PROVIDER,
    MAX_BAKE_TIME_MINUTES,
    STRATEGY_KEYS,
    TEST_TRAFFIC_STAGES,
    DeploymentPlan,
    DeploymentSettings,
    DeploymentStrategy,
    LifecycleHookSettings,
    LifecycleStage,
    TrafficStep,
)
from aigw.settings.edge import (
    INTERNET_FACING_DEFAULT_CIDRS,
    JWT_VALIDATION_MIN_PROVIDER,
    WORLD_OPEN_BELOW_PREFIX,
    AccessLogSettings,
    EdgeSettings,
    WafBodyRule,
)
from aigw.settings.emulator import EmulatorSettings
from aigw.settings.environment import ENVIRONMENT_NAME, REMOVED_KEYS, SECTION_NAMES, EnvironmentSettings, Tags
from aigw.settings.features import FeatureSettings
from aigw.settings.gateway import (
    AUTOSCALING_KEYS,
    DEFAULT_REQUESTS_PER_TARGET,
    FARGATE_MEMORY_BY_CPU,
    SCALE_IN_COOLDOWN_SECONDS,
    SCALE_OUT_COOLDOWN_SECONDS,
    AutoscalingPlan,
    AzureSettings,
    GatewaySettings,
)
from aigw.settings.hybrid import HybridSettings
from aigw.settings.load_balancer import LoadBalancerType
from aigw.settings.network import (
    CREATED_VPC_KEYS,
    DEFAULT_ZONE_COUNT,
    DEFAULT_ZONE_LETTERS,
    EXISTING_VPC_KEYS,
    MAX_ZONES,
    MIN_ZONES,
    NetworkSettings,
    default_zones,
)
from aigw.settings.observability import LOG_RETENTION_DAYS, ObservabilitySettings
from aigw.settings.rules import cross_section_problems, load_balancer_supports_strategy

__all__ = [
    "AUTOSCALING_KEYS",
    "CREATED_VPC_KEYS",
    "DEFAULT_BAKE_TIME_MINUTES",
    "DEFAULT_CANARY_BAKE_TIME_MINUTES",
    "DEFAULT_CANARY_PERCENT",
    "DEFAULT_LINEAR_STEP_BAKE_TIME_MINUTES",
    "DEFAULT_LINEAR_STEP_PERCENT",
    "DEFAULT_REQUESTS_PER_TARGET",
    "DEFAULT_ZONE_COUNT",
    "DEFAULT_ZONE_LETTERS",
    "DEPLOYMENT_STRATEGY_MIN_PROVIDER",
    "ENVIRONMENT_NAME",
    "EXISTING_VPC_KEYS",
    "FARGATE_MEMORY_BY_CPU",
    "INTERNET_FACING_DEFAULT_CIDRS",
    "JWT_VALIDATION_MIN_PROVIDER",
    "LOG_RETENTION_DAYS",
    "MAX_BAKE_TIME_MINUTES",
    "MAX_ZONES",
    "MIN_ZONES",
    "OTHER_PARTITION_REGIONS",
    "REMOVED_KEYS",
    "SCALE_IN_COOLDOWN_SECONDS",
    "SCALE_OUT_COOLDOWN_SECONDS",
    "SECTION_NAMES",
    "STRATEGY_KEYS",
    "TEST_TRAFFIC_STAGES",
    "WORLD_OPEN_BELOW_PREFIX",
    "AccessLogSettings",
    "AutoscalingPlan",
    "AzureSettings",
    "BackendSettings",
    "DeploymentPlan",
    "DeploymentSettings",
    "DeploymentStrategy",
    "EdgeSettings",
    "EmulatorSettings",
    "EnvironmentSettings",
    "FeatureSettings",
    "GatewaySettings",
    "HybridSettings",
    "LifecycleHookSettings",
    "LifecycleStage",
    "LoadBalancerType",
    "NetworkSettings",
    "ObservabilitySettings",
    "Problem",
    "Section",
    "Tags",
    "TrafficStep",
    "WafBodyRule",
    "cross_section_problems",
    "default_zones",
    "load_balancer_supports_strategy",
]
