"""`[edge]`: what faces clients (the load balancer, its listeners, WAF, JWT
validation) and its access logs (`[edge.access_logs]`)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Literal

from pydantic import Field, field_validator

from aigw.settings.common import Problem, Section, valid_bucket_name
from aigw.settings.load_balancer import LoadBalancerType

# hashicorp/aws gained the ALB `jwt-validation` listener action in 6.22.0.
JWT_VALIDATION_MIN_PROVIDER: tuple[int, int, int] = (6, 22, 0)

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


def world_open(network: ipaddress.IPv4Network) -> bool:
    private = any(network.subnet_of(block) for block in _PRIVATE_RANGES)
    return network.prefixlen < WORLD_OPEN_BELOW_PREFIX and not private


ACM_ARN = re.compile(r"^arn:aws:acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[A-Za-z0-9-]+$")
# A DNS name as ALB host conditions match it: lowercase labels of letters,
# digits and inner hyphens, at least two, the last starting with a letter (so
# never an IP address), no wildcards; ALB condition values are at most 128 characters.
_HOSTNAME = re.compile(r"^(?=.{1,128}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
# An S3 key prefix of safe characters, segments joined by "/", no leading or trailing "/".
_KEY_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$")


def valid_hostname(value: str) -> str:
    """A host name an ALB host condition matches."""
    if not _HOSTNAME.match(value):
        raise ValueError(
            f"{value!r} is not a hostname the load balancer can route: lowercase DNS labels (letters, digits, "
            "inner '-') joined by dots, at least two, at most 128 characters, no wildcards, no IP addresses"
        )
    return value


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
        return valid_bucket_name(value) if value else value

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
        LoadBalancerType.APPLICATION,
        # A TOML file gives a string, which strict validation would not turn into the enum.
        strict=False,
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
        if value and not ACM_ARN.match(value):
            raise ValueError(
                f"{value!r} is not an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>); "
                "leave empty for HTTP only"
            )
        return value

    @field_validator("gateway_host")
    @classmethod
    def _host(cls, value: str) -> str:
        return valid_hostname(value) if value else value

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

    def problems(self) -> Iterator[Problem]:
        kind = self.load_balancer_type
        use_alb = 'use load_balancer_type = "application"'
        if self.enable_waf and not kind.supports_waf:
            yield Problem(
                "enable_waf",
                f"AWS WAF protects application load balancers only, not a network load balancer; {use_alb} or "
                "turn this off",
            )
        if self.enable_jwt_auth and not kind.validates_jwt:
            yield Problem(
                "enable_jwt_auth",
                "JWT validation is an action of an application load balancer's HTTPS listener; a network load "
                f"balancer reads no HTTP and validates nothing. {use_alb}, or turn this off (clients then bring "
                "their own provider keys)",
            )
        elif self.enable_jwt_auth and not self.https:
            yield Problem(
                "enable_jwt_auth",
                "JWT validation runs on the HTTPS listener; set edge.certificate_arn or turn this off",
            )
        if self.access_logs.enabled and kind.logs_only_tls_listeners and not self.https:
            yield Problem(
                "access_logs.enabled",
                "a network load balancer writes access logs only for TLS listeners, and without "
                "edge.certificate_arn it has none; set a certificate or turn access logs off",
            )
        if self.gateway_host and not kind.routes_by_host:
            yield Problem(
                "gateway_host",
                f"host routing reads the HTTP Host header, which a network load balancer never sees; {use_alb} "
                "or remove this key",
            )
        for problem in self.access_logs.problems():
            yield Problem(f"access_logs.{problem.field}", problem.message)
        if not self.enable_waf:
            for field in ("waf_rate_limit", "waf_counted_body_rules"):
                if field in self.model_fields_set:
                    yield Problem(field, "configures the WAF, and edge.enable_waf is off: turn it on or remove this")
