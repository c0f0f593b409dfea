"""Edge: what faces clients. The load balancer, internet-facing in the public
subnets or internal in the private ones, with its security group (listener
ports from the allowed CIDRs only) and the target group (the tasks' data
plane), either

- an Application Load Balancer: the HTTP listener (forward, or redirect to
  HTTPS), the HTTPS listener (TLS 1.3; with JWT auth, ALB-native validation of
  the Cognito JWT before forwarding), host routing (only the gateway's
  hostname is forwarded, every other host gets a fixed 404), and the WAFv2
  web ACL with its logging (modules/waf.py); or
- a Network Load Balancer: one TLS listener (TLS 1.3) or, without a
  certificate, one TCP listener, cross-zone load balancing on, in front of a
  TCP target group health-checked over HTTP like the ALB's.

Both are built by one builder: what the type decides comes from the type
(aigw/settings/load_balancer.py), and what differs between the two types'
own resources is data (LOAD_BALANCER_RESOURCES)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_aws.lb import Lb
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
from constructs import Construct

from aigw.data_plane.contract import ALB_IDLE_TIMEOUT_SECONDS
from aigw.data_plane.policy import refusal
from aigw.settings import EdgeSettings, LoadBalancerType
from aigw.task_entries import TaskEntry
from modules.access_logs import access_log_destination
from modules.context import StackContext
from modules.grants import allow_cidrs
from modules.network import NetworkOutputs
from modules.waf import web_acl

# TLS 1.3 with 1.2 fallback for older clients; the admin guide's policy.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Host routing: one listener rule per routed host, keyed by the host's role, so
# that a later host (the enterprise image's MCP gateway) gets a rule of its own
# without renumbering or renaming this one.
HOST_RULE_PRIORITIES: dict[str, int] = {"gateway": 10, "mcp": 20}
# What a request for any other host gets: the data plane's JSON error shape,
# without naming the hosts that are served.
UNKNOWN_HOST_STATUS = "404"
UNKNOWN_HOST_BODY = json.dumps(refusal("host", "not a host this gateway serves"), sort_keys=True)
# Cross-zone load balancing on the NLB (off by default there, always on for
# an ALB): with few tasks, ECS rarely places as many in every zone, and each
# zone's NLB node would otherwise send its share only to the tasks in its own
# zone. The price is inter-zone data transfer, small next to LLM calls.
NLB_CROSS_ZONE = True


@dataclass(frozen=True)
class LoadBalancerResources:
    """What differs between the two types' own resources beyond what the type
    answers (aigw/settings/load_balancer.py). None leaves an argument out."""

    # Construct id and name suffix of the target group: each type's own from the
    # start, so switching type replaces it; Terraform addresses, never renamed.
    target_group_id: str
    target_group_name: str
    # ALB: drop requests with malformed headers; an idle timeout long enough
    # for LLM responses, which stream for minutes (the default 60 s would cut them).
    drop_invalid_header_fields: bool | None = None
    idle_timeout: int | None = None
    # NLB: NLB_CROSS_ZONE, and no client IP preservation: the data plane sees the
    # NLB's addresses, as it sees the ALB's (the NLB access log has the
    # clients'). The tasks admit the NLB's security group either way (AWS
    # honours the reference with preservation on).
    enable_cross_zone_load_balancing: bool | None = None
    preserve_client_ip: str | None = None


LOAD_BALANCER_RESOURCES: dict[LoadBalancerType, LoadBalancerResources] = {
    LoadBalancerType.APPLICATION: LoadBalancerResources(
        target_group_id="gateway-tg",
        target_group_name="gw",
        drop_invalid_header_fields=True,
        idle_timeout=ALB_IDLE_TIMEOUT_SECONDS,
    ),
    LoadBalancerType.NETWORK: LoadBalancerResources(
        target_group_id="gateway-tcp-tg",
        target_group_name="gw-tcp",
        enable_cross_zone_load_balancing=NLB_CROSS_ZONE,
        preserve_client_ip="false",
    ),
}


@dataclass(frozen=True)
class JwtIssuer:
    """What the HTTPS listener validates tokens against (from modules/auth.py)."""

    issuer: str
    jwks_endpoint: str
    required_scope: str
    # The app clients admitted (the `client_id` claim): no other client of the pool.
    client_ids: list[str]


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
    # The target group of each task entry by role (aigw/task_entries.py), the primary's included.
    target_group_arns: dict[str, str]
    # How long a deregistered target keeps its requests in flight (every target group of the service).
    deregistration_delay: str
    base_url: str
    # The access-log bucket (empty when access logs are off).
    access_logs_bucket: str
    # The service must wait for these listeners and listener rules (the target
    # group must be attached to the load balancer).
    listeners: list[ITerraformDependable]


def entry_health_check(entry: TaskEntry) -> LbTargetGroupHealthCheck:
    """HTTP GET of the entry's health path: the data plane's, proxied to the gateway
    (a task is healthy only when both answer), or the enterprise gateway's own.
    The same check behind either load balancer."""
    return LbTargetGroupHealthCheck(
        enabled=True,
        path=entry.health_path,
        port="traffic-port",
        protocol="HTTP",
        matcher="200",
        interval=15,
        timeout=5,
        healthy_threshold=2,
        unhealthy_threshold=3,
    )


def forward_actions(edge: EdgeSettings, target_group_arn: str, jwt: JwtIssuer | None) -> list[dict[str, Any]]:
    """What the serving listener does with a request for the gateway, as the
    action blocks a listener's default action and a listener rule share:
    forward, preceded with JWT auth by ALB-native validation (hashicorp/aws
    >= 6.22) of the signature against the pool's JWKS, iss/exp/nbf/iat, the
    invoke scope, and a `client_id` that is one of the stack's app clients
    (another client of the same pool gets a 401 here). ``jwt`` is None only
    where there is no pool (hybrid mode, which refuses JWT auth)."""
    if not edge.enable_jwt_auth:
        return [{"type": "forward", "target_group_arn": target_group_arn}]
    if jwt is None:
        raise ValueError("edge.enable_jwt_auth needs the stack's Cognito pool; none was given")
    claims = [
        {"name": "scope", "format": "space-separated-values", "values": [jwt.required_scope]},
        {"name": "client_id", "format": "single-string", "values": list(jwt.client_ids)},
    ]
    return [
        {
            "type": "jwt-validation",
            "order": 1,
            "jwt_validation": {"issuer": jwt.issuer, "jwks_endpoint": jwt.jwks_endpoint, "additional_claim": claims},
        },
        {"type": "forward", "order": 2, "target_group_arn": target_group_arn},
    ]


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
        jwt: JwtIssuer | None,
        waf_log_group_arn: str | None,
        drain_seconds: int,
        entries: list[TaskEntry],
        hosts: dict[str, str],
        private_link_inbound: bool = False,
    ) -> None:
        """``allowed_cidrs``: what the listeners admit, resolved from the settings
        (``EnvironmentSettings.load_balancer_cidrs``); ``drain_seconds``: the
        target groups' deregistration delay (``gateway.drain_seconds``);
        ``entries``: a target group each, the first the primary; ``hosts``: the
        host each entry's role is routed by (none: the primary takes every
        host); ``private_link_inbound``: an endpoint service fronts the (network)
        load balancer, whose security group cannot name the consumers' addresses."""
        super().__init__(scope, construct_id)
        prefix = context.prefix
        kind = edge.load_balancer_type
        resources = LOAD_BALANCER_RESOURCES[kind]
        # Construct ids and names of the load balancer's own resources: the
        # ALB keeps those it always had; an NLB's are its own, so switching
        # type replaces the load balancer rather than mutating it.
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
        logs = access_log_destination(self, edge.access_logs, load_balancer_type=kind, context=context)
        lb = Lb(
            self,
            short,
            name=f"{prefix}-{short}",
            internal=edge.internal,
            load_balancer_type=kind.value,
            # Security groups on an NLB (since 2023) let the tasks admit the
            # load balancer by group, as behind the ALB. An NLB created without
            # them cannot get them later; this one always has one.
            security_groups=[lb_sg_id],
            # Internal: only the private subnets, which have no route from the internet.
            subnets=network.private_subnet_ids if edge.internal else network.public_subnet_ids,
            drop_invalid_header_fields=resources.drop_invalid_header_fields,
            enable_cross_zone_load_balancing=resources.enable_cross_zone_load_balancing,
            enable_deletion_protection=context.deletion_protection,
            idle_timeout=resources.idle_timeout,
            access_logs=logs.config,
            enforce_security_group_inbound_rules_on_private_link_traffic="off" if private_link_inbound else None,
            depends_on=logs.wait_for or None,
        )
        target_groups = {
            entry.role: LbTargetGroup(
                self,
                # The primary keeps the target group the stack always had.
                resources.target_group_id if index == 0 else f"{entry.role}-tg",
                name=f"{prefix}-{resources.target_group_name}" if index == 0 else f"{prefix}-{entry.role}",
                # The task's entry point: the data plane, never the OSS gateway itself.
                port=entry.port,
                protocol=kind.target_protocol,
                target_type="ip",
                vpc_id=network.vpc_id,
                deregistration_delay=str(drain_seconds),
                preserve_client_ip=resources.preserve_client_ip,
                health_check=entry_health_check(entry),
            )
            for index, entry in enumerate(entries)
        }
        target_group = target_groups[entries[0].role]
        forwards = {role: forward_actions(edge, group.arn, jwt) for role, group in target_groups.items()}
        listeners = self._listeners(edge, lb.arn, forwards, hosts, primary=entries[0].role)
        if edge.enable_waf:
            if waf_log_group_arn is None:
                raise ValueError("WAF is enabled but observability created no WAF log group")
            web_acl(self, prefix=prefix, edge=edge, alb_arn=lb.arn, log_group_arn=waf_log_group_arn)

        dns_name = lb.dns_name
        self.outputs = EdgeOutputs(
            load_balancer_type=kind,
            load_balancer_arn=lb.arn,
            load_balancer_arn_suffix=lb.arn_suffix,
            load_balancer_dns_name=dns_name,
            load_balancer_security_group_id=lb_sg_id,
            target_group_arn=target_group.arn,
            target_group_arn_suffix=target_group.arn_suffix,
            target_group_arns={role: group.arn for role, group in target_groups.items()},
            deregistration_delay=str(drain_seconds),
            base_url=f"{'https' if edge.https else 'http'}://{edge.gateway_host or dns_name}",
            access_logs_bucket=logs.bucket_name,
            listeners=listeners,
        )

    def _listeners(
        self, edge: EdgeSettings, lb_arn: str, forwards: dict[str, list[dict[str, Any]]], hosts: dict[str, str],
        *, primary: str,
    ) -> list[ITerraformDependable]:  # fmt: skip
        """The serving listener: with a certificate HTTPS (ALB) or TLS ending at
        the NLB on 443, else HTTP or TCP on 80 (development); with a certificate
        the ALB's port 80 only redirects, and the NLB has no port 80 (it cannot
        redirect; it would only carry plaintext). With host routing, the serving
        listener forwards only the routed hosts, through a rule each."""
        kind = edge.load_balancer_type
        listeners: list[ITerraformDependable] = []
        if edge.https and kind.redirects_to_https:
            redirect = LbListenerDefaultActionRedirect(port="443", protocol="HTTPS", status_code="HTTP_301")
            listeners.append(
                LbListener(
                    self,
                    "http-listener",
                    load_balancer_arn=lb_arn,
                    port=80,
                    protocol="HTTP",
                    default_action=[LbListenerDefaultAction(type="redirect", redirect=redirect)],
                )
            )
        routes = hosts  # role -> host name of each host-routed entry (aigw/task_entries.entry_hosts)
        protocol = kind.listener_protocol(edge.https)
        serving = LbListener(
            self,
            # http-listener, https-listener, tls-listener or tcp-listener, as they always were.
            f"{protocol.lower()}-listener",
            load_balancer_arn=lb_arn,
            port=443 if edge.https else 80,
            protocol=protocol,
            ssl_policy=TLS_POLICY if edge.https else None,
            certificate_arn=edge.certificate_arn or None,
            # No ALPN on the NLB's TLS: the data plane speaks HTTP/1.1 behind it, so clients must not negotiate h2.
            default_action=[unknown_host_action()]
            if routes
            else [LbListenerDefaultAction(**a) for a in forwards[primary]],
        )
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
                    action=[LbListenerRuleAction(**action) for action in forwards[role]],
                )
            )
        return listeners
