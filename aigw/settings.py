"""Typed settings of one environment file (``environments/<env>.toml``).

Every field is documented here; the README's configuration reference is
generated from these models (``python -m aigw.docs``) and a test keeps the
two in step. Field validators check single values; ``problems()`` methods check
rules that span fields and report each problem against the field to change.
Nothing in this module imports cdktf, so a bad file is reported in well under
a second, before the (slow) provider bindings are loaded.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aigw.versions import admits_older_than, parse_constraint

# hashicorp/aws gained the ALB `jwt-validation` listener action in 6.22.0.
JWT_VALIDATION_MIN_PROVIDER: tuple[int, int, int] = (6, 22, 0)
# ECS-native deployment strategies in hashicorp/aws (CHANGELOG): aws_ecs_service
# `deployment_configuration` (strategy BLUE_GREEN, bake time, lifecycle hooks)
# and `load_balancer.advanced_configuration` arrived in 6.4.0; the LINEAR and
# CANARY strategies with their configuration blocks in 6.21.0.
DEPLOYMENT_STRATEGY_MIN_PROVIDER: dict[str, tuple[int, int, int]] = {
    "blue_green": (6, 4, 0),
    "canary": (6, 21, 0),
    "linear": (6, 21, 0),
}

# Default zone letters per region: network.availability_zones defaults to the
# first two. Only defaults: zone letters are mapped to physical zones per
# account, and not every zone offers every service (check yours with
# `aws ec2 describe-availability-zones`). Any other region works with the
# zones listed explicitly.
DEFAULT_ZONE_LETTERS: dict[str, str] = {
    "us-east-1": "abcdef",
    "us-east-2": "abc",
    "us-west-2": "abcd",
    "ca-central-1": "abd",
    "eu-west-1": "abc",
    "eu-west-2": "abc",
    "eu-west-3": "abc",
    "eu-central-1": "abc",
    "eu-north-1": "abc",
    "ap-south-1": "abc",
    "ap-southeast-1": "abc",
    "ap-southeast-2": "abc",
    "ap-northeast-1": "acd",
    "sa-east-1": "abc",
}
DEFAULT_ZONE_COUNT = 2
# An internet-facing ALB needs subnets in two zones; no region has more than six.
MIN_ZONES, MAX_ZONES = 2, 6

# Region names of the `aws` partition: <geography>-<direction>-<number>. The AWS
# SDKs' partition data narrows the geography to a list (us|eu|ap|sa|ca|me|af|il|mx);
# it is left open here so that a region AWS opens later needs no change.
_AWS_REGION = re.compile(r"^[a-z]{2}-[a-z]+-\d{1,2}$")
# Regions of the other partitions, by the AWS SDKs' partition data. They are
# refused: the stack writes `aws`-partition service endpoint names
# (com.amazonaws.<region>.<service>), `amazonaws.com` service hosts in
# conditions, the Cognito hosted domain (amazoncognito.com) and ALB JWT
# validation, which differ or do not exist there.
OTHER_PARTITION_REGIONS: dict[str, re.Pattern[str]] = {
    "aws-cn": re.compile(r"^cn-[a-z]+-\d+$"),
    "aws-us-gov": re.compile(r"^us-gov-[a-z]+-\d+$"),
    "aws-iso": re.compile(r"^us-iso-[a-z]+-\d+$"),
    "aws-iso-b": re.compile(r"^us-isob-[a-z]+-\d+$"),
    "aws-iso-e": re.compile(r"^eu-isoe-[a-z]+-\d+$"),
    "aws-iso-f": re.compile(r"^us-isof-[a-z]+-\d+$"),
    "aws-eusc": re.compile(r"^eusc-[a-z]+-[a-z]+-\d+$"),
}

LoadBalancerType = Literal["application", "network"]
# Body-inspecting rules of AWSManagedRulesCommonRuleSet that an environment may set to count.
WafBodyRule = Literal["CrossSiteScripting_BODY", "GenericLFI_BODY", "GenericRFI_BODY", "EC2MetaDataSSRF_BODY"]

# What an internet-facing load balancer admits when edge.allowed_cidrs is not
# set (an internal one admits the VPC's own CIDR).
INTERNET_FACING_DEFAULT_CIDRS: tuple[str, ...] = ("0.0.0.0/0",)

# An allowed_cidrs entry counts as "the internet at large" when it is a public
# range broader than /16 (more than 65,536 addresses: 0.0.0.0/0, its halves, a
# cloud provider's /8). Ranges inside the RFC 1918 private blocks never do.
WORLD_OPEN_BELOW_PREFIX = 16
_PRIVATE_RANGES = tuple(ipaddress.IPv4Network(c) for c in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))

# Keys that existed once, with what to write instead (a plain "unknown key" would not say).
REMOVED_KEYS: dict[str, str] = {
    "network.num_az": 'removed; list the zones instead, e.g. availability_zones = ["us-east-1a", "us-east-1b"] '
    "(its length is the number of zones; default: the region's first two zones where this project knows them)",
}

# Autoscaling: the cooldowns this stack has always used, and the request-count
# target that applies by default wherever a request policy can work.
SCALE_IN_COOLDOWN_SECONDS = 120
SCALE_OUT_COOLDOWN_SECONDS = 60
DEFAULT_REQUESTS_PER_TARGET = 1000
# [gateway] keys that only mean something with autoscaling on.
AUTOSCALING_KEYS: tuple[str, ...] = (
    "min_capacity", "max_capacity", "cpu_target_percent", "memory_target_percent", "requests_per_target",
    "scale_in_cooldown_seconds", "scale_out_cooldown_seconds",
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

# Retention values CloudWatch Logs accepts (PutRetentionPolicy).
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

ENVIRONMENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_DYNAMODB_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_ACM_ARN = re.compile(r"^arn:aws:acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[A-Za-z0-9-]+$")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$")
_TAG_KEY = re.compile(r"^[A-Za-z0-9 _.:/=+@-]{1,128}$")
# A DNS name as ALB host conditions match it: lowercase labels of letters,
# digits and inner hyphens, at least two, the last starting with a letter (so
# never an IP address), no wildcards; ALB condition values are at most 128 characters.
# An S3 key prefix of safe characters, segments joined by "/", no leading or trailing "/".
_KEY_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$")
_HOSTNAME = re.compile(r"^(?=.{1,128}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
# EC2 resource ids: the prefix and 8 (older) or 17 lowercase hex digits.
_VPC_ID = re.compile(r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$")
_SUBNET_ID = re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
# [network] keys that give an existing VPC (all three together), and those that describe one the stack creates.
EXISTING_VPC_KEYS: tuple[str, ...] = ("vpc_id", "public_subnet_ids", "private_subnet_ids")
CREATED_VPC_KEYS: tuple[str, ...] = ("vpc_cidr", "availability_zones", "single_nat_gateway")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an environment file, against the field to change."""

    field: str
    message: str
    # Top-level keys the rule read; used to skip rules whose input was invalid.
    inputs: frozenset[str] = frozenset()


class Section(BaseModel):
    """Base of every settings table: strict keys, immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def problems(self) -> Iterator[Problem]:
        """Rules spanning several fields of this table (none by default)."""
        return iter(())


def _region(value: str) -> str:
    for partition, pattern in OTHER_PARTITION_REGIONS.items():
        if pattern.match(value):
            raise ValueError(
                f"{value!r} is a region of the {partition} partition; this project deploys only to the aws "
                f"partition (its service endpoint names, service principals, Cognito hosted domain and ALB JWT "
                f"validation differ or are missing in {partition})"
            )
    if not _AWS_REGION.match(value):
        raise ValueError(f"{value!r} is not an AWS region name (like us-east-1 or ap-northeast-2)")
    return value


def default_zones(region: str) -> list[str] | None:
    """The default of network.availability_zones in ``region``, or None where there is none."""
    letters = DEFAULT_ZONE_LETTERS.get(region)
    return [f"{region}{letter}" for letter in letters[:DEFAULT_ZONE_COUNT]] if letters else None


def _bucket_name(value: str) -> str:
    if not _S3_BUCKET.match(value) or ".." in value:
        raise ValueError(
            f"{value!r} is not a valid S3 bucket name (3-63 characters: lowercase letters, digits, dots, hyphens)"
        )
    return value


class BackendSettings(Section):
    """Terraform state: one S3 object per environment, locked through DynamoDB."""

    bucket: str = Field(description="S3 bucket holding the state. Required.")
    key: str = Field(description="Object key of this environment's state. Required.")
    dynamodb_table: str = Field(description="DynamoDB table for state locks (hash key `LockID`). Required.")
    region: str = Field(description="Region of the bucket and the table (`aws` partition). Required.")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        return _bucket_name(value)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not value.strip() or value.startswith("/"):
            raise ValueError("must be a non-empty object key that does not start with '/'")
        return value

    @field_validator("dynamodb_table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not _DYNAMODB_TABLE.match(value):
            raise ValueError(
                f"{value!r} is not a valid DynamoDB table name (3-255 characters: letters, digits, '_', '-', '.')"
            )
        return value

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        return _region(value)


class NetworkSettings(Section):
    """The VPC: public subnets for the load balancer, private ones for the tasks; created, or an existing one."""

    vpc_cidr: str = Field("10.0.0.0/16", description="IPv4 CIDR of the VPC, /16 to /22. Default: `10.0.0.0/16`.")
    availability_zones: list[str] | None = Field(
        None,
        description="Availability zones to span, 2 to 6, each with a public and a private subnet. Zone names: "
        "the region and a letter (`us-east-1a`); zone IDs (`use1-az1`) and Local Zones are not accepted. Letters "
        "map to physical zones per account and not every zone offers every service: check with `aws ec2 "
        "describe-availability-zones`. Default: the region's first two zones from the table of defaults in "
        "`aigw/settings.py` (`us-east-1a`, `us-east-1b` in us-east-1; 14 regions); required in other regions.",
    )
    single_nat_gateway: bool = Field(
        True,
        description="One shared NAT gateway (cheaper) instead of one per AZ (survives an AZ outage). Default: true.",
    )
    vpc_id: str | None = Field(
        None,
        description="An existing VPC to deploy into instead of creating one (`vpc-` and 8 or 17 hex digits), "
        "given together with public_subnet_ids and private_subnet_ids. The stack then creates no VPC, subnets, "
        "internet gateway, flow logs or default security group rules (they belong to the VPC's owner) and no "
        "NAT gateway or endpoints unless create_nat_gateway or create_vpc_endpoints ask for them; its security "
        "groups are created in this VPC. Excludes vpc_cidr, availability_zones and single_nat_gateway. "
        "Default: none (the stack creates the VPC).",
    )
    public_subnet_ids: list[str] | None = Field(
        None,
        description="With vpc_id: the load balancer's subnets, at least two, in different availability zones, "
        "routed to an internet gateway. Default: none; required with vpc_id.",
    )
    private_subnet_ids: list[str] | None = Field(
        None,
        description="With vpc_id: the tasks' subnets, at least two, with outbound internet access (a NAT "
        "gateway of the VPC, or create_nat_gateway); subnets that assign public IPs on launch are refused at "
        "plan time. Default: none; required with vpc_id.",
    )
    create_nat_gateway: bool | None = Field(
        None,
        description="With vpc_id: create a NAT gateway in the first public subnet and a route table per private "
        "subnet sending outbound traffic through it (the private subnets must not already have a route table "
        "association of their own). A VPC the stack creates always gets its NAT gateways. Default: true for a "
        "created VPC, false with vpc_id.",
    )
    create_vpc_endpoints: bool | None = Field(
        None,
        description="Create the S3 gateway endpoint and the interface endpoints (ecr.api, ecr.dkr, logs, "
        "secretsmanager) with private DNS for the private subnets; without them the tasks reach these AWS APIs "
        "through the NAT gateway. With vpc_id: only where the VPC has no such endpoints yet (two endpoints with "
        "private DNS for one service conflict), and the S3 gateway endpoint only with create_nat_gateway (it "
        "goes into route tables, and the VPC's own belong to its owner). Default: true for a created VPC, false "
        "with vpc_id.",
    )

    @field_validator("vpc_id")
    @classmethod
    def _vpc_id(cls, value: str | None) -> str | None:
        if value is not None and not _VPC_ID.match(value):
            raise ValueError(f"{value!r} is not a VPC id (vpc- and 8 or 17 lowercase hex digits)")
        return value

    @field_validator("public_subnet_ids", "private_subnet_ids")
    @classmethod
    def _subnet_ids(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return values
        bad = [value for value in values if not _SUBNET_ID.match(value)]
        if bad:
            raise ValueError(f"not subnet ids (subnet- and 8 or 17 lowercase hex digits): {', '.join(map(repr, bad))}")
        if len(values) < MIN_ZONES:
            raise ValueError(
                f"lists {len(values)} subnet(s); at least {MIN_ZONES} are needed, in different availability zones "
                "(an internet-facing load balancer needs two; tasks in two zones survive the loss of one)"
            )
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(map(repr, repeated))} more than once")
        return values

    @property
    def existing_vpc(self) -> bool:
        """Whether the stack deploys into an existing VPC (``vpc_id``) instead of creating one."""
        return self.vpc_id is not None

    @property
    def nat_gateway(self) -> bool:
        """Whether the stack creates NAT gateways (``create_nat_gateway`` with its default resolved)."""
        return self.create_nat_gateway if self.create_nat_gateway is not None else not self.existing_vpc

    @property
    def vpc_endpoints(self) -> bool:
        """Whether the stack creates VPC endpoints (``create_vpc_endpoints`` with its default resolved)."""
        return self.create_vpc_endpoints if self.create_vpc_endpoints is not None else not self.existing_vpc

    def problems(self) -> Iterator[Problem]:
        given = [name for name in EXISTING_VPC_KEYS if getattr(self, name) is not None]
        if given and len(given) < len(EXISTING_VPC_KEYS):
            for name in EXISTING_VPC_KEYS:
                if name not in given:
                    yield Problem(
                        name,
                        f"required with {' and '.join(given)}: an existing VPC is given as vpc_id with its "
                        "public_subnet_ids and private_subnet_ids, all three",
                    )
        if self.existing_vpc:
            for name in CREATED_VPC_KEYS:
                if name in self.model_fields_set:
                    yield Problem(name, "describes a VPC this stack creates; with vpc_id remove it")
            shared = sorted(set(self.public_subnet_ids or ()) & set(self.private_subnet_ids or ()))
            if shared:
                yield Problem(
                    "private_subnet_ids",
                    f"{', '.join(map(repr, shared))} is also in public_subnet_ids; the tasks' subnets and the load "
                    "balancer's are separate tiers",
                )
        elif self.create_nat_gateway is False:
            yield Problem(
                "create_nat_gateway",
                "a VPC this stack creates always gets its NAT gateway: the tasks reach the LLM providers through "
                "it. Remove this key (it applies to an existing VPC, with vpc_id)",
            )

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value, strict=True)
        except ValueError as error:
            raise ValueError(f"{value!r} is not a valid IPv4 CIDR block ({error})") from None
        if not 16 <= network.prefixlen <= 22:
            raise ValueError(
                f"{value!r}: prefix length must be between /16 and /22 (each of up to 12 subnets takes 1/16 of the VPC)"
            )
        return value

    @field_validator("availability_zones")
    @classmethod
    def _zones(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return values
        if not MIN_ZONES <= len(values) <= MAX_ZONES:
            raise ValueError(
                f"lists {len(values)} zone(s); allowed: {MIN_ZONES} to {MAX_ZONES} "
                "(an internet-facing load balancer needs two)"
            )
        repeated = sorted({zone for zone in values if values.count(zone) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(map(repr, repeated))} more than once")
        return values


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
_LAMBDA_ARN = re.compile(
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
        if not _LAMBDA_ARN.match(value):
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


_AZURE_RESOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}[A-Za-z0-9]$")
_AZURE_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_AZURE_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


class AzureSettings(Section):
    """The Azure OpenAI deployment the gateway sends Azure requests to. The key
    proxy sets these for every Azure request; clients cannot choose them."""

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
        "plane, which holds the provider keys, from `<prefix>/data-plane` (same as `proxy_image`); the operator "
        "pushes both, and ECR scans them on push. The collector stays AWS's public ADOT image. Default: false.",
    )
    proxy_image: str = Field(
        "openresty/openresty:1.27.1.2-alpine",
        description="The data plane in front of the gateway (the `key-proxy` container): the official "
        "OpenResty image, nginx with LuaJIT (docs/data-plane.md). Default: `openresty/openresty:1.27.1.2-alpine`.",
    )
    provider_keys: list[Literal["openai", "anthropic", "google", "azure"]] = Field(
        ["openai", "anthropic"],
        description="Providers with an organisation key in Secrets Manager. With `edge.enable_jwt_auth` the proxy "
        "injects them for authenticated clients (each secret needs a value before tasks can start) and offers "
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
        description="Largest request body the key proxy accepts, in MiB (larger: a JSON 413). Admits OpenAI's "
        "25 MB audio uploads and 50 MB image edits. Default: 50.",
    )
    collector_image: str = Field(
        "amazon/aws-otel-collector:v0.43.3",
        description="ADOT collector sidecar image. Default: `amazon/aws-otel-collector:v0.43.3`.",
    )
    cpu: Literal[256, 512, 1024, 2048, 4096, 8192, 16384] = Field(
        512, description="Task CPU units (Fargate sizes). Default: 512."
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
        "and, where set, memory and requests per task. Off: the service runs desired_count tasks and the "
        "scaling keys (min_capacity to scale_out_cooldown_seconds) are refused. Default: true.",
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
        description="What the gateway serves: `gateway`, the AI gateway. Portkey's `mcp` (the MCP gateway) and "
        "`all` (both, the MCP gateway on 8788 behind host routing) exist only in its enterprise image and are "
        "refused until this stack deploys that image (the hybrid deployment issue): the OSS image "
        "(`@portkey-ai/gateway` 1.15.2) has no MCP server, no SERVER_MODE variable and no port 8788. "
        "Default: `gateway`.",
    )
    fargate_spot_weight: int = Field(
        0,
        ge=0,
        le=100,
        description="Weight of FARGATE_SPOT against FARGATE (weight 1, base 1 task always on FARGATE); "
        "0 runs everything on FARGATE. Default: 0.",
    )

    @field_validator("image", "collector_image", "proxy_image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not _IMAGE.match(value):
            raise ValueError(f"{value!r} must be an image reference pinned by a tag or an @sha256 digest")
        if value.endswith(":latest"):
            raise ValueError(f"{value!r}: the 'latest' tag is not reproducible; pin a version")
        return value

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

    def problems(self) -> Iterator[Problem]:
        if self.server_mode != "gateway":
            yield Problem(
                "server_mode",
                f"{self.server_mode!r} needs Portkey's enterprise gateway image, which this stack does not deploy "
                "yet (the hybrid deployment issue): the OSS image @portkey-ai/gateway 1.15.2 has no MCP server, "
                'reads no SERVER_MODE variable and listens on no port 8788. Use "gateway" or remove this key',
            )
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


class AccessLogSettings(Section):
    """The load balancer's access logs in S3 (`[edge.access_logs]`)."""

    enabled: bool = Field(
        False,
        description="Write the load balancer's access logs to S3. An NLB logs only its TLS listener, so it needs "
        "`edge.certificate_arn`. Default: false.",
    )
    bucket: str = Field(
        "",
        description="An existing bucket in the stack's region to write to; its bucket policy (and for an NLB "
        "with SSE-KMS, its key policy) must let Elastic Load Balancing write, as AWS documents for the load "
        "balancer type. Empty: the stack creates `aigw-<env>-lb-logs-<account>-<region>`: versioned, public "
        "access blocked, TLS-only, delivery granted as AWS documents for the region, objects expiring after "
        "`expiration_days`, encrypted with SSE-S3 behind an ALB (the only encryption ALB log delivery "
        "supports) or SSE-KMS with its own customer-managed key behind an NLB. Default: empty.",
    )
    prefix: str = Field(
        "",
        description="Key prefix of the log objects, before the `AWSLogs/` part AWS adds: segments of letters, "
        "digits and `!_.*'()-` joined by `/`, without `AWSLogs`. Default: empty (logs at the bucket's root).",
    )
    expiration_days: int = Field(
        90,
        ge=1,
        le=3650,
        description="Days after which log objects in the created bucket expire (replaced versions too). Only "
        "with a bucket the stack creates. Default: 90.",
    )

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        return _bucket_name(value) if value else value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value:
            return value
        if not _KEY_PREFIX.match(value) or len(value) > 200:
            raise ValueError(
                f"{value!r} is not a key prefix: segments of letters, digits and !_.*'()- joined by '/', with no "
                "leading or trailing '/', at most 200 characters"
            )
        if "AWSLogs" in value:
            raise ValueError(f"{value!r}: a prefix must not contain AWSLogs (AWS adds AWSLogs/<account>/ after it)")
        return value

    def problems(self) -> Iterator[Problem]:
        if not self.enabled:
            for name in sorted(self.model_fields_set - {"enabled"}):
                yield Problem(name, "access logs are off; set enabled = true or remove this key")
        elif self.bucket and "expiration_days" in self.model_fields_set:
            yield Problem(
                "expiration_days",
                f"the stack manages the lifecycle only of a bucket it creates, not of {self.bucket!r}; set the "
                "expiry on that bucket and remove this key, or remove bucket to let the stack create one",
            )


class EdgeSettings(Section):
    """What faces clients: the load balancer, its listeners, WAF and JWT validation."""

    load_balancer_type: LoadBalancerType = Field(
        "application",
        description="`application` (ALB: HTTP-aware; host routing, WAF and JWT validation) or `network` (NLB: "
        "TCP/TLS pass-through with a security group, cross-zone load balancing on; the endpoint an AWS "
        "PrivateLink endpoint service needs). With `network`: WAF, JWT validation, `gateway_host`, "
        "`gateway.requests_per_target` and the ALB-metric alarms are refused. Changing it replaces the load "
        "balancer (new DNS name). Default: `application`.",
    )
    internal: bool = Field(
        False,
        description="An internal load balancer in the private subnets, reachable only from the VPC and the "
        "networks routed into it (peering, VPN, Transit Gateway), instead of an internet-facing one in the "
        "public subnets. Changing it replaces the load balancer (new DNS name). Default: false.",
    )
    certificate_arn: str = Field(
        "",
        description="ACM certificate (same region) for TLS: the ALB's HTTPS listener on 443 (port 80 "
        "redirects), or the NLB's TLS listener on 443 (no port 80), both with policy "
        "`ELBSecurityPolicy-TLS13-1-2-2021-06`. Empty serves plain HTTP on port 80 (the NLB: TCP), "
        "for development. Default: empty.",
    )
    allowed_cidrs: list[str] | None = Field(
        None,
        min_length=1,
        description="IPv4 CIDRs allowed to reach the load balancer on its listener ports. Default: derived from "
        'the scheme: internet-facing, `["0.0.0.0/0"]`, the whole internet (refused while JWT auth is off unless '
        "`allow_unauthenticated_public_access` accepts it); internal, the VPC's CIDR (`network.vpc_cidr`).",
    )
    gateway_host: str = Field(
        "",
        description="Host routing: the DNS name clients call (e.g. `gateway.example.com`). The load balancer "
        "forwards only requests for this host and answers any other Host with a fixed 404, and `gateway_url` "
        "uses it. Point its DNS record at the load balancer and cover it with the certificate. Application load "
        "balancer only. Default: empty (every host is forwarded).",
    )
    enable_waf: bool = Field(
        False,
        description="Attach a WAFv2 web ACL to the load balancer: AWS's common, IP-reputation and known-bad-inputs "
        "rule groups, then a per-IP rate rule. The common group's `SizeRestrictions_BODY` (any body over 8 KB, "
        "i.e. a long prompt) only counts; the data plane limits body size (`gateway.max_request_body_mib`). "
        "Default: false.",
    )
    waf_rate_limit: int = Field(
        2000,
        ge=10,
        le=2_000_000_000,
        description="Requests per client IP per 5 minutes before the WAF blocks it. Needs `enable_waf`. Default: 2000.",
    )
    waf_counted_body_rules: list[WafBodyRule] = Field(
        [],
        description="Rules of AWS's common rule set that inspect the request body and only count (label, "
        "metrics, logs) instead of blocking: prompts that quote code or URLs can match `CrossSiteScripting_BODY`, "
        "`GenericLFI_BODY`, `GenericRFI_BODY` or `EC2MetaDataSSRF_BODY`. Each one listed is a protection given "
        "up; the README's Security section says what the WAF sees of a body. Needs `enable_waf`. Default: "
        "none (all block).",
    )
    enable_jwt_auth: bool = Field(
        False,
        description="Validate Cognito JWTs on the HTTPS listener (needs `certificate_arn` and "
        "`aws_provider_version` >= 6.22). Default: false.",
    )
    access_logs: AccessLogSettings = Field(
        default_factory=AccessLogSettings,
        description="The load balancer's access logs in S3 (`[edge.access_logs]`). Default: off (`enabled = false`).",
    )
    allow_unauthenticated_public_access: bool = Field(
        False,
        description="Accept a gateway that anyone on the internet can use: an internet-facing load balancer "
        "with JWT auth off while `allowed_cidrs` holds 0.0.0.0/0 (the default) or another public range broader "
        "than /16. That combination is refused unless this is true; it builds nothing, and is refused where "
        "there is nothing to accept. Default: false.",
    )

    @field_validator("certificate_arn")
    @classmethod
    def _certificate(cls, value: str) -> str:
        if value and not _ACM_ARN.match(value):
            raise ValueError(
                f"{value!r} is not an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>); "
                "leave empty for HTTP only"
            )
        return value

    @field_validator("gateway_host")
    @classmethod
    def _host(cls, value: str) -> str:
        if value and not _HOSTNAME.match(value):
            raise ValueError(
                f"{value!r} is not a hostname the load balancer can route: lowercase DNS labels (letters, digits, "
                "inner '-') joined by dots, at least two, at most 128 characters, no wildcards, no IP addresses"
            )
        return value

    @field_validator("waf_counted_body_rules")
    @classmethod
    def _unique_rules(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError(f"{values} lists a rule twice")
        return values

    @field_validator("allowed_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return values
        bad = []
        for value in values:
            try:
                ipaddress.IPv4Network(value, strict=True)
            except ValueError:
                bad.append(value)
        if bad:
            raise ValueError(f"not valid IPv4 CIDR blocks: {', '.join(map(repr, bad))}")
        return values

    @property
    def https(self) -> bool:
        return bool(self.certificate_arn)

    @property
    def network(self) -> bool:
        """A network load balancer (NLB)."""
        return self.load_balancer_type == "network"

    def problems(self) -> Iterator[Problem]:
        if self.network:
            yield from self._network_problems()
        elif self.enable_jwt_auth and not self.https:
            yield Problem(
                "enable_jwt_auth",
                "JWT validation runs on the HTTPS listener; set edge.certificate_arn or turn this off",
            )
        for problem in self.access_logs.problems():
            yield Problem(f"access_logs.{problem.field}", problem.message)
        if not self.enable_waf:
            for field in ("waf_rate_limit", "waf_counted_body_rules"):
                if field in self.model_fields_set:
                    yield Problem(field, "configures the WAF, and edge.enable_waf is off: turn it on or remove this")

    def _network_problems(self) -> Iterator[Problem]:
        """What an NLB cannot do: it passes TCP (or TLS it ends) through and never reads HTTP."""
        use_alb = 'use load_balancer_type = "application"'
        if self.enable_waf:
            yield Problem(
                "enable_waf",
                f"AWS WAF protects application load balancers only, not a network load balancer; {use_alb} or "
                "turn this off",
            )
        if self.enable_jwt_auth:
            yield Problem(
                "enable_jwt_auth",
                "JWT validation is an action of an application load balancer's HTTPS listener; a network load "
                f"balancer reads no HTTP and validates nothing. {use_alb}, or turn this off (clients then bring "
                "their own provider keys)",
            )
        if self.access_logs.enabled and not self.https:
            yield Problem(
                "access_logs.enabled",
                "a network load balancer writes access logs only for TLS listeners, and without "
                "edge.certificate_arn it has none; set a certificate or turn access logs off",
            )
        if self.gateway_host:
            yield Problem(
                "gateway_host",
                f"host routing reads the HTTP Host header, which a network load balancer never sees; {use_alb} "
                "or remove this key",
            )


def _world_open(network: ipaddress.IPv4Network) -> bool:
    private = any(network.subnet_of(block) for block in _PRIVATE_RANGES)
    return network.prefixlen < WORLD_OPEN_BELOW_PREFIX and not private


class ObservabilitySettings(Section):
    """Logs, dashboard and alarms."""

    log_retention_days: int = Field(365, description="Retention of every log group, in days. Default: 365.")
    enable_saved_queries: bool = Field(
        True,
        description="Create the four saved Logs Insights queries. Turn off only where CloudWatch Logs query "
        "definitions are unavailable (the local emulator); the dashboard keeps its query widgets. Default: true.",
    )
    alarm_email: str = Field(
        "",
        description="Address subscribed to the alarm topic (confirmation mail required); empty: none. Default: empty.",
    )
    alarm_5xx_percent: float = Field(
        5.0,
        gt=0,
        le=100,
        description="ALB 5xx responses, % of requests over 5 minutes, that raise the alarm. Application load "
        "balancer only (an NLB has no HTTP metrics). Default: 5.",
    )
    alarm_p99_latency_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="p99 target response time (seconds) that raises the alarm; LLM calls are slow. Application "
        "load balancer only (an NLB has no response-time metric). Default: 30.",
    )

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"{value} is not a CloudWatch Logs retention; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}"
            )
        return value

    @field_validator("alarm_email")
    @classmethod
    def _email(cls, value: str) -> str:
        if value and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value


_ENDPOINT = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")


class EmulatorSettings(Section):
    """A local AWS emulator (moto server) in place of AWS, for `make deploy` and the end-to-end tests."""

    endpoint: str = Field(
        "",
        description="Base URL of the emulator (e.g. `http://127.0.0.1:4566`). Every AWS API call of the provider "
        "and of the state backend goes there; credentials come from the environment. Empty: real AWS. "
        "Default: empty.",
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value and not _ENDPOINT.match(value):
            raise ValueError(f"{value!r} must be a base URL like http://127.0.0.1:4566 (scheme, host, port; no path)")
        return value


class FeatureSettings(Section):
    """Opt-in features (B-series). Each is refused until it is built, never silently ignored."""

    enable_multi_client: bool = Field(False, description="One Cognito app client per consuming team. Not built yet.")
    enable_fallback_routing: bool = Field(False, description="Default provider fallback routing. Not built yet.")
    enable_cost_attribution: bool = Field(False, description="Per-client cost attribution. Not built yet.")
    enable_guardrails: bool = Field(False, description="Bedrock guardrails. Not built yet.")
    enable_response_cache: bool = Field(False, description="Response cache in front of providers. Not built yet.")

    def problems(self) -> Iterator[Problem]:
        for name in type(self).model_fields:
            if getattr(self, name):
                yield Problem(name, "this feature is not built in this release yet; set it to false")


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
        description="Protect the load balancer and the Cognito user pool from deletion. Default: true.",
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
    features: FeatureSettings = Field(default_factory=FeatureSettings)

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        return _region(value)

    @field_validator("aws_provider_version")
    @classmethod
    def _constraint(cls, value: str) -> str:
        parse_constraint(value)
        return value

    @property
    def load_balancer_cidrs(self) -> list[str]:
        """The CIDRs the load balancer admits: ``edge.allowed_cidrs``, or when it is not
        set the default of the scheme (internet-facing: the whole internet; internal: the VPC)."""
        if self.edge.allowed_cidrs is not None:
            return list(self.edge.allowed_cidrs)
        return [self.network.vpc_cidr] if self.edge.internal else list(INTERNET_FACING_DEFAULT_CIDRS)

    @property
    def world_open_cidrs(self) -> list[str]:
        """The CIDRs that let the internet at large reach the gateway (none behind an internal load balancer)."""
        if self.edge.internal:
            return []
        return [cidr for cidr in self.load_balancer_cidrs if _world_open(ipaddress.IPv4Network(cidr))]

    @property
    def autoscaling(self) -> AutoscalingPlan | None:
        """The service's autoscaling with every default resolved, or None when it is off."""
        gateway = self.gateway
        if not gateway.enable_autoscaling:
            return None
        requests = gateway.requests_per_target
        if requests is None and load_balancer_supports_request_count(self) and not gateway.deployment.advanced:
            requests = DEFAULT_REQUESTS_PER_TARGET
        return AutoscalingPlan(
            min_capacity=gateway.min_capacity,
            max_capacity=gateway.max_capacity,
            cpu_target_percent=gateway.cpu_target_percent,
            memory_target_percent=gateway.memory_target_percent,
            requests_per_target=requests,
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

    def problems(self) -> Iterator[Problem]:
        yield from cross_section_problems(self)
        for name in SECTION_NAMES:
            section: Section = getattr(self, name)
            for problem in section.problems():
                yield Problem(f"{name}.{problem.field}", problem.message, frozenset({name}))


@dataclass(frozen=True)
class AutoscalingPlan:
    """What the service's target tracking does, every default resolved (``EnvironmentSettings.autoscaling``)."""

    min_capacity: int
    max_capacity: int
    cpu_target_percent: int
    memory_target_percent: int | None
    requests_per_target: int | None
    scale_in_cooldown_seconds: int
    scale_out_cooldown_seconds: int


def load_balancer_type(env: EnvironmentSettings) -> Literal["application", "network"]:
    """The kind of load balancer the edge builds for ``env`` (edge.load_balancer_type)."""
    return env.edge.load_balancer_type


def load_balancer_supports_request_count(env: EnvironmentSettings) -> bool:
    """Whether target tracking on requests per task can work: only an
    Application Load Balancer publishes ALBRequestCountPerTarget."""
    return load_balancer_type(env) == "application"


def load_balancer_supports_strategy(env: EnvironmentSettings) -> bool:
    """Whether ECS can shift traffic for ``gateway.deployment.strategy`` on this
    load balancer: rolling works everywhere; blue_green, canary and linear here
    need an Application Load Balancer (ECS also shifts blue/green traffic on a
    Network Load Balancer's listener, but this stack's edge has none) whose
    production listener forwards without authenticating first."""
    if not env.gateway.deployment.advanced:
        return True
    return load_balancer_type(env) == "application" and not env.edge.enable_jwt_auth


SECTION_NAMES: tuple[str, ...] = ("backend", "network", "gateway", "edge", "observability", "emulator", "features")


def cross_section_problems(env: EnvironmentSettings) -> Iterator[Problem]:
    """Rules that read more than one table."""
    if not env.network.existing_vpc:
        yield from _zone_problems(env.region, env.network.availability_zones)
    if env.edge.enable_jwt_auth and admits_older_than(
        parse_constraint(env.aws_provider_version), JWT_VALIDATION_MIN_PROVIDER
    ):
        yield Problem(
            "aws_provider_version",
            f"{env.aws_provider_version!r} admits provider versions older than 6.22, which lack ALB JWT "
            'validation (edge.enable_jwt_auth); use "~> 6.22" or turn JWT auth off',
            frozenset({"edge", "aws_provider_version"}),
        )
    if "provider_keys" in env.gateway.model_fields_set and env.gateway.provider_keys and not env.edge.enable_jwt_auth:
        yield Problem(
            "gateway.provider_keys",
            "organisation keys are injected only for JWT-authenticated clients; turn on edge.enable_jwt_auth "
            "or remove this key (the secrets are still created)",
            frozenset({"gateway", "edge"}),
        )
    if "azure" in env.gateway.provider_keys and env.gateway.azure is None:
        yield Problem(
            "gateway.azure",
            "required when gateway.provider_keys lists azure: the resource_name, deployment_id and api_version "
            "every Azure request goes to (clients cannot choose them)",
            frozenset({"gateway"}),
        )
    if env.gateway.azure is not None and env.edge.enable_jwt_auth and "azure" not in env.gateway.provider_keys:
        yield Problem(
            "gateway.azure",
            "with JWT auth the proxy offers only providers with an organisation key; add azure to "
            "gateway.provider_keys or remove this table",
            frozenset({"gateway", "edge"}),
        )
    yield from _public_access_problems(env)
    yield from _network_load_balancer_problems(env)
    yield from _deployment_problems(env)
    certificate = re.match(_ACM_ARN, env.edge.certificate_arn)
    if certificate and certificate["region"] != env.region:
        yield Problem(
            "edge.certificate_arn",
            f"the certificate is in {certificate['region']} but the load balancer is in {env.region}; "
            "ACM certificates must be in the load balancer's region",
            frozenset({"edge", "region"}),
        )


def _network_load_balancer_problems(env: EnvironmentSettings) -> Iterator[Problem]:
    """Settings elsewhere that only an ALB gives meaning to: refused with an NLB, never ignored."""
    if not env.edge.network:
        return
    if "requests_per_target" in env.gateway.model_fields_set:
        yield Problem(
            "gateway.requests_per_target",
            "the service scales on ALBRequestCountPerTarget, which a network load balancer does not publish; "
            "remove this key (with an NLB the service scales on CPU alone)",
            frozenset({"gateway", "edge"}),
        )
    alarms = {
        "alarm_5xx_percent": "no HTTP status counts (the dashboard's error-rate query reads every status from "
        "the key proxy's access log)",
        "alarm_p99_latency_seconds": "no response times (the dashboard's latency query reads them from the key "
        "proxy's access log)",
    }
    for name, missing in alarms.items():
        if name in env.observability.model_fields_set:
            yield Problem(
                f"observability.{name}",
                f"a network load balancer publishes {missing}, so this alarm is not built; remove this key",
                frozenset({"observability", "edge"}),
            )


def _public_access_problems(env: EnvironmentSettings) -> Iterator[Problem]:
    """An unauthenticated gateway open to the internet is refused unless accepted by name.
    Reads only [edge]: an internal load balancer is never open to the internet, and an
    internet-facing one's default does not depend on the VPC."""
    edge, inputs = env.edge, frozenset({"edge"})
    open_cidrs = ", ".join(env.world_open_cidrs)
    if open_cidrs and not edge.enable_jwt_auth and not edge.allow_unauthenticated_public_access:
        default = "" if edge.allowed_cidrs is not None else " (the default)"
        yield Problem(
            "edge.allowed_cidrs",
            f"{open_cidrs}{default} lets anyone on the internet reach the gateway while edge.enable_jwt_auth "
            "is off, so anyone could use it. Narrow this to your clients' ranges (public ranges of "
            f"/{WORLD_OPEN_BELOW_PREFIX} or narrower), turn on edge.enable_jwt_auth, or accept it with "
            "edge.allow_unauthenticated_public_access = true",
            inputs,
        )
    if edge.allow_unauthenticated_public_access and (edge.enable_jwt_auth or not open_cidrs):
        if edge.enable_jwt_auth:
            reason = "edge.enable_jwt_auth is on"
        elif edge.internal:
            reason = "edge.internal is true: the load balancer cannot be reached from the internet"
        else:
            reason = "no allowed_cidrs entry is world-open"
        yield Problem(
            "edge.allow_unauthenticated_public_access",
            f"there is nothing to accept ({reason}); remove this key",
            inputs,
        )


def _deployment_problems(env: EnvironmentSettings) -> Iterator[Problem]:
    deployment = env.gateway.deployment
    strategy = deployment.strategy
    if deployment.advanced and env.edge.gateway_host:
        yield Problem(
            "gateway.deployment.strategy",
            f"{strategy!r} shifts traffic with a listener rule of its own, which host routing "
            "(edge.gateway_host) would bypass: the two are not built together yet; use rolling or remove "
            "edge.gateway_host",
            frozenset({"gateway", "edge"}),
        )
    if strategy in DEPLOYMENT_STRATEGY_MIN_PROVIDER and admits_older_than(
        parse_constraint(env.aws_provider_version), DEPLOYMENT_STRATEGY_MIN_PROVIDER[strategy]
    ):
        minimum = ".".join(map(str, DEPLOYMENT_STRATEGY_MIN_PROVIDER[strategy][:2]))
        yield Problem(
            "aws_provider_version",
            f"{env.aws_provider_version!r} admits provider versions older than {minimum}, which lack the ECS "
            f'{strategy} deployment strategy (gateway.deployment.strategy); use "~> 6.22" or a rolling deployment',
            frozenset({"gateway", "aws_provider_version"}),
        )
    if not load_balancer_supports_strategy(env):
        reason = (
            "edge.enable_jwt_auth puts jwt-validation before forward on the production listener, and ECS shifts "
            "traffic only on rules that just forward (ECS developer guide, Application Load Balancer resources "
            'for blue/green deployments); turn JWT auth off or deploy with strategy = "rolling"'
            if env.edge.enable_jwt_auth
            else f"ECS shifts {strategy} traffic on an Application Load Balancer's listener rules, and this "
            f"environment's load balancer is a {load_balancer_type(env)} one"
        )
        yield Problem("gateway.deployment.strategy", f"{strategy!r} needs a load balancer that supports it: {reason}",
                      frozenset({"gateway", "edge"}))  # fmt: skip
    if deployment.advanced and "requests_per_target" in env.gateway.model_fields_set and env.gateway.enable_autoscaling:
        yield Problem(
            "gateway.requests_per_target",
            f"a {strategy} deployment moves production traffic between two target groups, and a request-count "
            "policy follows one of them (after a deployment it would see no requests and scale in); scale on "
            "CPU and memory_target_percent instead",
            frozenset({"gateway"}),
        )
    for name, hook in deployment.lifecycle_hooks.items():
        function_region = _LAMBDA_ARN.match(hook.function_arn)
        if function_region and function_region["region"] != env.region:
            yield Problem(
                f"gateway.deployment.lifecycle_hooks.{name}.function_arn",
                f"the function is in {function_region['region']} but the service is in {env.region}; ECS invokes "
                "lifecycle hooks in the service's region",
                frozenset({"gateway", "region"}),
            )


def _zone_problems(region: str, zones: list[str] | None) -> Iterator[Problem]:
    inputs = frozenset({"network", "region"})
    if zones is None:
        if default_zones(region) is None:
            yield Problem(
                "network.availability_zones",
                f"required in {region}, which has no default zones here; list {MIN_ZONES} to {MAX_ZONES} zones "
                f'this account has, e.g. availability_zones = ["{region}a", "{region}b"] (see `aws ec2 '
                f"describe-availability-zones --region {region}`)",
                inputs,
            )
        return
    zone_name = re.compile(rf"^{re.escape(region)}[a-z]$")
    for index, zone in enumerate(zones):
        if not zone_name.match(zone):
            yield Problem(
                f"network.availability_zones[{index}]",
                f"{zone!r} is not a zone name of {region}: the region followed by one letter, e.g. "
                f"{region}a (zone IDs and Local Zones are not accepted)",
                inputs,
            )
