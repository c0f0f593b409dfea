"""Edge: what faces clients. The load balancer, internet-facing in the public
subnets or internal in the private ones, with its security group (listener
ports from the allowed CIDRs only) and the target group (the tasks' key
proxy), either

- an Application Load Balancer: the HTTP listener (forward, or redirect to
  HTTPS), the HTTPS listener (TLS 1.3; with JWT auth, ALB-native validation of
  the Cognito JWT before forwarding), host routing (only the gateway's
  hostname is forwarded, every other host gets a fixed 404), and the WAFv2
  web ACL with its logging; or
- a Network Load Balancer: one TLS listener (TLS 1.3) or, without a
  certificate, one TCP listener, cross-zone load balancing on, in front of a
  TCP target group health-checked over HTTP like the ALB's.

The later load-balancer options (a second target group for blue/green) land here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_aws.lb import Lb, LbAccessLogs
from cdktf_cdktf_provider_aws.lb_listener import (
    LbListener,
    LbListenerDefaultAction,
    LbListenerDefaultActionFixedResponse,
    LbListenerDefaultActionRedirect,
)
from cdktf_cdktf_provider_aws.lb_listener_rule import (
    LbListenerRule,
    LbListenerRuleAction,
    LbListenerRuleCondition,
    LbListenerRuleConditionHostHeader,
)
from cdktf_cdktf_provider_aws.lb_target_group import LbTargetGroup, LbTargetGroupHealthCheck
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.wafv2_web_acl import (
    Wafv2WebAcl,
    Wafv2WebAclDefaultAction,
    Wafv2WebAclDefaultActionAllow,
    Wafv2WebAclRule,
    Wafv2WebAclRuleAction,
    Wafv2WebAclRuleActionBlock,
    Wafv2WebAclRuleOverrideAction,
    Wafv2WebAclRuleOverrideActionNone,
    Wafv2WebAclRuleVisibilityConfig,
    Wafv2WebAclVisibilityConfig,
)
from cdktf_cdktf_provider_aws.wafv2_web_acl_association import Wafv2WebAclAssociation
from cdktf_cdktf_provider_aws.wafv2_web_acl_logging_configuration import Wafv2WebAclLoggingConfiguration
from constructs import Construct

from aigw.key_proxy import ALB_IDLE_TIMEOUT_SECONDS, HEALTH_PATH, PROXY_PORT, refusal
from aigw.settings import EdgeSettings, LoadBalancerType
from modules.access_logs import AccessLogBucket
from modules.context import StackContext
from modules.grants import allow_cidrs
from modules.network import NetworkOutputs

COMMON_RULE_SET = "AWSManagedRulesCommonRuleSet"
WAF_MANAGED_RULE_GROUPS: tuple[str, ...] = (
    COMMON_RULE_SET,
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesKnownBadInputsRuleSet",
)
# Rules of the common rule set that always only count (label) instead of
# blocking, before the environment's edge.waf_counted_body_rules. Its
# SizeRestrictions_BODY blocks every body over 8 KB, and a chat
# request with a long prompt or a few turns of history is larger than that:
# with it blocking, WAF would refuse ordinary inference. The body size limit is
# the data plane's instead (gateway.max_request_body_mib, answered with a 413).
WAF_COUNTED_RULES: tuple[str, ...] = ("SizeRestrictions_BODY",)
# TLS 1.3 with 1.2 fallback for older clients; the admin guide's policy.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Host routing: one listener rule per routed host, keyed by the host's role, so
# that a later host (the enterprise image's MCP gateway) gets a rule of its own
# without renumbering or renaming this one.
HOST_RULE_PRIORITIES: dict[str, int] = {"gateway": 10}
# What a request for any other host gets: the key proxy's JSON error shape,
# without naming the hosts that are served.
UNKNOWN_HOST_STATUS = "404"
UNKNOWN_HOST_BODY = json.dumps(refusal("host", "not a host this gateway serves"), sort_keys=True)
# Cross-zone load balancing on the NLB (off by default there, always on for
# an ALB): with few tasks, ECS rarely places as many in every zone, and each
# zone's NLB node would otherwise send its share only to the tasks in its own
# zone. The price is inter-zone data transfer, small next to LLM calls.
NLB_CROSS_ZONE = True


@dataclass(frozen=True)
class JwtIssuer:
    """What the HTTPS listener validates tokens against (from modules/auth.py)."""

    issuer: str
    jwks_endpoint: str
    required_scope: str


@dataclass(frozen=True)
class AccessLogDestination:
    """Where the load balancer writes its access logs (``config`` None: nowhere)."""

    config: LbAccessLogs | None
    bucket_name: str
    # ELB checks that it may write when logging is turned on: the created bucket's policy comes first.
    wait_for: list[ITerraformDependable]


@dataclass(frozen=True)
class EdgeOutputs:
    # What the service scales on and what monitoring watches depend on it.
    load_balancer_type: LoadBalancerType
    load_balancer_arn: str
    load_balancer_arn_suffix: str
    load_balancer_dns_name: str
    load_balancer_security_group_id: str
    target_group_arn: str
    target_group_arn_suffix: str
    base_url: str
    # The access-log bucket (empty when access logs are off).
    access_logs_bucket: str
    # The service must wait for these listeners and listener rules (the target
    # group must be attached to the load balancer).
    listeners: list[ITerraformDependable]


def proxy_health_check() -> LbTargetGroupHealthCheck:
    """HTTP GET of the proxy's health path, proxied to the gateway: a task is
    healthy only when both answer. The same check behind either load balancer."""
    return LbTargetGroupHealthCheck(
        enabled=True,
        path=HEALTH_PATH,
        port="traffic-port",
        protocol="HTTP",
        matcher="200",
        interval=15,
        timeout=5,
        healthy_threshold=2,
        unhealthy_threshold=3,
    )


def forward_actions(edge: EdgeSettings, target_group_arn: str, jwt: JwtIssuer) -> list[dict[str, Any]]:
    """What the serving listener does with a request for the gateway, as the
    action blocks a listener's default action and a listener rule share:
    forward, preceded with JWT auth by ALB-native validation (hashicorp/aws
    >= 6.22) of the signature against the pool's JWKS, iss/exp/nbf/iat, and
    the invoke scope."""
    if not edge.enable_jwt_auth:
        return [{"type": "forward", "target_group_arn": target_group_arn}]
    claim = {"name": "scope", "format": "space-separated-values", "values": [jwt.required_scope]}
    return [
        {
            "type": "jwt-validation",
            "order": 1,
            "jwt_validation": {"issuer": jwt.issuer, "jwks_endpoint": jwt.jwks_endpoint, "additional_claim": [claim]},
        },
        {"type": "forward", "order": 2, "target_group_arn": target_group_arn},
    ]


def managed_rule_group(group: str, edge: EdgeSettings) -> dict[str, Any]:
    """The statement of an AWS managed rule group; in the common rule set,
    WAF_COUNTED_RULES and the environment's `edge.waf_counted_body_rules` only count."""
    statement: dict[str, Any] = {"name": group, "vendor_name": "AWS"}
    counted = (*WAF_COUNTED_RULES, *edge.waf_counted_body_rules) if group == COMMON_RULE_SET else ()
    if counted:
        statement["rule_action_override"] = [{"name": rule, "action_to_use": {"count": {}}} for rule in counted]
    return statement


def unknown_host_action() -> LbListenerDefaultAction:
    """A fixed 404 for requests whose Host is not routed (host routing on)."""
    return LbListenerDefaultAction(
        type="fixed-response",
        fixed_response=LbListenerDefaultActionFixedResponse(
            content_type="application/json", message_body=UNKNOWN_HOST_BODY, status_code=UNKNOWN_HOST_STATUS
        ),
    )


class Edge(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        edge: EdgeSettings,
        allowed_cidrs: list[str],
        context: StackContext,
        network: NetworkOutputs,
        jwt: JwtIssuer,
        waf_log_group_arn: str | None,
    ) -> None:
        """``allowed_cidrs``: what the listeners admit, resolved from the settings
        (``EnvironmentSettings.load_balancer_cidrs``)."""
        super().__init__(scope, construct_id)
        prefix = context.prefix
        # Construct ids and names of the load balancer's own resources: the
        # ALB keeps those it always had; an NLB's are its own, so switching
        # type replaces the load balancer rather than mutating it.
        kind = edge.load_balancer_type
        short = kind.short_name
        scheme = "Internal" if edge.internal else "Internet-facing"
        lb_sg_id = SecurityGroup(
            self,
            f"{short}-sg",
            name=f"{prefix}-{short}",
            description=f"{scheme} load balancer: listener ports from allowed CIDRs only",
            vpc_id=network.vpc_id,
            tags={"Name": f"{prefix}-{short}"},
        ).id
        for port in kind.listener_ports(edge.https):
            allow_cidrs(
                self,
                f"{short}-from-clients-{port}",
                security_group_id=lb_sg_id,
                cidrs=allowed_cidrs,
                port=port,
                description=f"clients on {port}",
            )
        # Internal: only the private subnets, which have no route from the internet.
        subnets = network.private_subnet_ids if edge.internal else network.public_subnet_ids
        logs = self._access_logs(edge, context)
        if not kind.reads_http:
            lb, target_group, listeners = self._network(prefix, edge, context, network, lb_sg_id, subnets, logs)
        else:
            lb, target_group, listeners = self._application(
                prefix, edge, context, network, lb_sg_id, subnets, logs, jwt
            )
            if edge.enable_waf:
                if waf_log_group_arn is None:
                    raise ValueError("WAF is enabled but observability created no WAF log group")
                self._web_acl(prefix, edge, lb.arn, waf_log_group_arn)

        dns_name = lb.dns_name
        self.outputs = EdgeOutputs(
            load_balancer_type=edge.load_balancer_type,
            load_balancer_arn=lb.arn,
            load_balancer_arn_suffix=lb.arn_suffix,
            load_balancer_dns_name=dns_name,
            load_balancer_security_group_id=lb_sg_id,
            target_group_arn=target_group.arn,
            target_group_arn_suffix=target_group.arn_suffix,
            base_url=f"{'https' if edge.https else 'http'}://{edge.gateway_host or dns_name}",
            access_logs_bucket=logs.bucket_name,
            listeners=listeners,
        )

    def _access_logs(self, edge: EdgeSettings, context: StackContext) -> AccessLogDestination:
        """The given bucket, or one this stack creates (modules/access_logs.py)."""
        settings = edge.access_logs
        if not settings.enabled:
            return AccessLogDestination(None, "", [])
        wait_for: list[ITerraformDependable] = []
        bucket_name = settings.bucket
        if not bucket_name:
            bucket = AccessLogBucket(
                self,
                "access-logs",
                load_balancer_type=edge.load_balancer_type,
                prefix=settings.prefix,
                expiration_days=settings.expiration_days,
                context=context,
            )
            bucket_name, wait_for = bucket.name, [bucket.policy]
        config = LbAccessLogs(bucket=bucket_name, prefix=settings.prefix or None, enabled=True)
        return AccessLogDestination(config, bucket_name, wait_for)

    def _application(
        self,
        prefix: str,
        edge: EdgeSettings,
        context: StackContext,
        network: NetworkOutputs,
        security_group_id: str,
        subnets: list[str],
        logs: AccessLogDestination,
        jwt: JwtIssuer,
    ) -> tuple[Lb, LbTargetGroup, list[ITerraformDependable]]:
        """The ALB, its HTTP target group and listeners (HTTP, HTTPS, host rules)."""
        alb = Lb(
            self,
            "alb",
            name=f"{prefix}-alb",
            internal=edge.internal,
            load_balancer_type="application",
            security_groups=[security_group_id],
            subnets=subnets,
            drop_invalid_header_fields=True,
            enable_deletion_protection=context.deletion_protection,
            # LLM responses stream for minutes; the default 60 s would cut them.
            idle_timeout=ALB_IDLE_TIMEOUT_SECONDS,
            access_logs=logs.config,
            depends_on=logs.wait_for or None,
        )
        target_group = LbTargetGroup(
            self,
            "gateway-tg",
            name=f"{prefix}-gw",
            # The task's entry point is the key proxy, never the gateway itself.
            port=PROXY_PORT,
            protocol="HTTP",
            target_type="ip",
            vpc_id=network.vpc_id,
            deregistration_delay="60",
            health_check=proxy_health_check(),
        )
        alb_arn, target_group_arn = alb.arn, target_group.arn
        # Role -> hostname of each host-routed service (only the gateway for now).
        routes = {"gateway": edge.gateway_host} if edge.gateway_host else {}
        forward = forward_actions(edge, target_group_arn, jwt)
        serving = self._http_listener(edge, alb_arn, forward, routed=bool(routes))
        listeners: list[ITerraformDependable] = [serving]
        if edge.https:
            serving = self._https_listener(edge, alb_arn, forward, routed=bool(routes))
            listeners.append(serving)
        serving_arn = serving.arn
        for role, host in routes.items():
            listeners.append(
                LbListenerRule(
                    self,
                    f"host-{role}",
                    listener_arn=serving_arn,
                    priority=HOST_RULE_PRIORITIES[role],
                    condition=[LbListenerRuleCondition(host_header=LbListenerRuleConditionHostHeader(values=[host]))],
                    action=[LbListenerRuleAction(**action) for action in forward],
                )
            )
        return alb, target_group, listeners

    def _network(
        self,
        prefix: str,
        edge: EdgeSettings,
        context: StackContext,
        network: NetworkOutputs,
        security_group_id: str,
        subnets: list[str],
        logs: AccessLogDestination,
    ) -> tuple[Lb, LbTargetGroup, list[ITerraformDependable]]:
        """The NLB, its TCP target group and its one listener: TLS on 443 with a
        certificate (TLS ends at the NLB), else plain TCP on 80 (development).
        No port-80 listener beside TLS: an NLB cannot redirect, it would only
        carry plaintext."""
        nlb = Lb(
            self,
            "nlb",
            name=f"{prefix}-nlb",
            internal=edge.internal,
            load_balancer_type="network",
            # Security groups on an NLB (since 2023) let the tasks admit the
            # load balancer by group, as behind the ALB. An NLB created without
            # them cannot get them later; this one always has one.
            security_groups=[security_group_id],
            subnets=subnets,
            enable_cross_zone_load_balancing=NLB_CROSS_ZONE,
            enable_deletion_protection=context.deletion_protection,
            access_logs=logs.config,
            depends_on=logs.wait_for or None,
        )
        target_group = LbTargetGroup(
            self,
            "gateway-tcp-tg",
            name=f"{prefix}-gw-tcp",
            port=PROXY_PORT,
            protocol="TCP",
            target_type="ip",
            vpc_id=network.vpc_id,
            deregistration_delay="60",
            # The proxy sees the NLB's addresses, as it sees the ALB's (the NLB
            # access log has the clients'). The tasks admit the NLB's security
            # group either way (AWS honours the reference with preservation on).
            preserve_client_ip="false",
            # An HTTP check through the proxy, as behind the ALB.
            health_check=proxy_health_check(),
        )
        forward = [LbListenerDefaultAction(type="forward", target_group_arn=target_group.arn)]
        if edge.https:
            listener = LbListener(
                self,
                "tls-listener",
                load_balancer_arn=nlb.arn,
                port=443,
                protocol="TLS",
                ssl_policy=TLS_POLICY,
                certificate_arn=edge.certificate_arn,
                # No ALPN: the proxy speaks HTTP/1.1 behind the NLB, so clients must not negotiate h2.
                default_action=forward,
            )
        else:
            listener = LbListener(
                self, "tcp-listener", load_balancer_arn=nlb.arn, port=80, protocol="TCP", default_action=forward
            )
        return nlb, target_group, [listener]

    def _http_listener(
        self, edge: EdgeSettings, alb_arn: str, forward: list[dict[str, Any]], *, routed: bool
    ) -> LbListener:
        if edge.https:
            actions = [
                LbListenerDefaultAction(
                    type="redirect",
                    redirect=LbListenerDefaultActionRedirect(port="443", protocol="HTTPS", status_code="HTTP_301"),
                )
            ]
        else:
            actions = [unknown_host_action()] if routed else [LbListenerDefaultAction(**a) for a in forward]
        return LbListener(
            self, "http-listener", load_balancer_arn=alb_arn, port=80, protocol="HTTP", default_action=actions
        )

    def _https_listener(
        self, edge: EdgeSettings, alb_arn: str, forward: list[dict[str, Any]], *, routed: bool
    ) -> LbListener:
        return LbListener(
            self,
            "https-listener",
            load_balancer_arn=alb_arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=edge.certificate_arn,
            default_action=[unknown_host_action()] if routed else [LbListenerDefaultAction(**a) for a in forward],
        )

    def _web_acl(self, prefix: str, edge: EdgeSettings, alb_arn: str, log_group_arn: str) -> None:
        def visibility(metric: str) -> Wafv2WebAclRuleVisibilityConfig:
            return Wafv2WebAclRuleVisibilityConfig(
                cloudwatch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
            )

        rules = [
            Wafv2WebAclRule(
                name=group,
                priority=priority,
                override_action=Wafv2WebAclRuleOverrideAction(none=Wafv2WebAclRuleOverrideActionNone()),
                # The bindings type `statement` as Any (its nesting is recursive),
                # so it is written in Terraform's own block shape.
                statement={"managed_rule_group_statement": managed_rule_group(group, edge)},
                visibility_config=visibility(group),
            )
            for priority, group in enumerate(WAF_MANAGED_RULE_GROUPS, start=1)
        ]
        rules.append(
            Wafv2WebAclRule(
                name="RateLimitPerIp",
                priority=len(rules) + 1,
                action=Wafv2WebAclRuleAction(block=Wafv2WebAclRuleActionBlock()),
                statement={
                    "rate_based_statement": {
                        "limit": edge.waf_rate_limit,
                        "aggregate_key_type": "IP",
                        "evaluation_window_sec": 300,
                    }
                },
                visibility_config=visibility("RateLimitPerIp"),
            )
        )
        acl = Wafv2WebAcl(
            self,
            "web-acl",
            name=f"{prefix}-web-acl",
            scope="REGIONAL",
            default_action=Wafv2WebAclDefaultAction(allow=Wafv2WebAclDefaultActionAllow()),
            rule=rules,
            visibility_config=Wafv2WebAclVisibilityConfig(
                cloudwatch_metrics_enabled=True, metric_name=f"{prefix}-web-acl", sampled_requests_enabled=True
            ),
        )
        acl_arn = acl.arn
        Wafv2WebAclAssociation(self, "web-acl-alb", resource_arn=alb_arn, web_acl_arn=acl_arn)
        Wafv2WebAclLoggingConfiguration(
            self, "web-acl-logging", resource_arn=acl_arn, log_destination_configs=[log_group_arn]
        )
