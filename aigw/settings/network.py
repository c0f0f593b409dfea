"""`[network]`: the VPC the stack creates, or an existing one, and the zones it spans."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from pydantic import Field, field_validator

from aigw.settings.common import Problem, Section

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

# EC2 resource ids: the prefix and 8 (older) or 17 lowercase hex digits.
_VPC_ID = re.compile(r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$")
_SUBNET_ID = re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
# [network] keys that give an existing VPC (all three together), and those that describe one the stack creates.
EXISTING_VPC_KEYS: tuple[str, ...] = ("vpc_id", "public_subnet_ids", "private_subnet_ids")
CREATED_VPC_KEYS: tuple[str, ...] = ("vpc_cidr", "availability_zones", "single_nat_gateway")


def default_zones(region: str) -> list[str] | None:
    """The default of network.availability_zones in ``region``, or None where there is none."""
    letters = DEFAULT_ZONE_LETTERS.get(region)
    return [f"{region}{letter}" for letter in letters[:DEFAULT_ZONE_COUNT]] if letters else None


class NetworkSettings(Section):
    """The VPC: public subnets for the load balancer, private ones for the tasks; created, or an existing one."""

    vpc_cidr: str = Field("10.0.0.0/16", description="IPv4 CIDR of the VPC, /16 to /22. Default: `10.0.0.0/16`.")
    availability_zones: list[str] | None = Field(
        None,
        description="Availability zones to span, 2 to 6, each with a public and a private subnet. Zone names: "
        "the region and a letter (`us-east-1a`); zone IDs (`use1-az1`) and Local Zones are not accepted. Letters "
        "map to physical zones per account and not every zone offers every service: check with `aws ec2 "
        "describe-availability-zones`. Default: the region's first two zones from the table of defaults in "
        "`aigw/settings/network.py` (`us-east-1a`, `us-east-1b` in us-east-1; 14 regions); required in other regions.",
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
