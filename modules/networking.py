"""Networking: VPC, subnets, NAT, VPC endpoints, the internet-facing ALB with
its target group and HTTP listener, and the WAFv2 web ACL in front of it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.default_security_group import DefaultSecurityGroup
from cdktf_cdktf_provider_aws.eip import Eip
from cdktf_cdktf_provider_aws.flow_log import FlowLog
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.internet_gateway import InternetGateway
from cdktf_cdktf_provider_aws.lb import Lb
from cdktf_cdktf_provider_aws.lb_listener import (
    LbListener,
    LbListenerDefaultAction,
    LbListenerDefaultActionRedirect,
)
from cdktf_cdktf_provider_aws.lb_target_group import LbTargetGroup, LbTargetGroupHealthCheck
from cdktf_cdktf_provider_aws.nat_gateway import NatGateway
from cdktf_cdktf_provider_aws.route import Route
from cdktf_cdktf_provider_aws.route_table import RouteTable
from cdktf_cdktf_provider_aws.route_table_association import RouteTableAssociation
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.subnet import Subnet
from cdktf_cdktf_provider_aws.vpc import Vpc
from cdktf_cdktf_provider_aws.vpc_endpoint import VpcEndpoint
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

from aigw.key_proxy import HEALTH_PATH, PROXY_PORT
from aigw.settings import EdgeSettings, NetworkSettings
from modules.context import StackContext
from modules.grants import allow_cidrs, grant_log_writes, policy_document, service_trust_policy

INTERFACE_ENDPOINTS: tuple[str, ...] = ("ecr.api", "ecr.dkr", "logs", "secretsmanager")
WAF_MANAGED_RULE_GROUPS: tuple[str, ...] = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesKnownBadInputsRuleSet",
)
# TLS 1.3 with 1.2 fallback for older clients; the admin guide's policy.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Each subnet is 1/16 of the VPC: public ones take slots 0.., private ones 8..
SUBNET_EXTRA_BITS = 4
PRIVATE_SLOT_OFFSET = 8


@dataclass(frozen=True)
class NetworkingOutputs:
    vpc_id: str
    vpc_cidr: str
    public_subnet_ids: list[str]
    private_subnet_ids: list[str]
    private_subnet_cidrs: list[str]
    alb_arn: str
    alb_arn_suffix: str
    alb_dns_name: str
    alb_security_group_id: str
    target_group_arn: str
    target_group_arn_suffix: str
    # Resources the service must wait for (the target group must be attached to the ALB).
    listener_dependencies: list[LbListener]


def subnet_cidrs(vpc_cidr: str, zone_count: int) -> tuple[list[str], list[str]]:
    """Public and private subnet CIDRs, one of each per AZ."""
    blocks = list(ipaddress.IPv4Network(vpc_cidr).subnets(prefixlen_diff=SUBNET_EXTRA_BITS))
    public = [str(block) for block in blocks[:zone_count]]
    private = [str(block) for block in blocks[PRIVATE_SLOT_OFFSET : PRIVATE_SLOT_OFFSET + zone_count]]
    return public, private


class Networking(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: NetworkSettings,
        edge: EdgeSettings,
        context: StackContext,
        availability_zones: list[str],
        waf_log_group_arn: str | None,
        flow_log_group_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        prefix = context.prefix
        vpc = Vpc(
            self,
            "vpc",
            cidr_block=network.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": f"{prefix}-vpc"},
        )
        # Each attribute read is a round trip to the jsii runtime: read ids once.
        vpc_id = vpc.id
        # The default group would admit anything inside it; nothing uses it, so it allows nothing.
        DefaultSecurityGroup(self, "default-sg", vpc_id=vpc_id, tags={"Name": f"{prefix}-default-deny-all"})
        self._flow_logs(prefix, context, vpc_id, flow_log_group_arn)
        igw = InternetGateway(self, "igw", vpc_id=vpc_id, tags={"Name": f"{prefix}-igw"})

        public_cidrs, private_cidrs = subnet_cidrs(network.vpc_cidr, len(availability_zones))
        public_rt_id = RouteTable(self, "public-rt", vpc_id=vpc_id, tags={"Name": f"{prefix}-public"}).id
        Route(
            self, "public-default", route_table_id=public_rt_id, destination_cidr_block="0.0.0.0/0", gateway_id=igw.id
        )

        public_subnet_ids: list[str] = []
        private_subnet_ids: list[str] = []
        private_route_table_ids: list[str] = []
        nat_gateway_ids: list[str] = []
        for index, zone in enumerate(availability_zones):
            public_id = Subnet(
                self,
                f"public-{index}",
                vpc_id=vpc_id,
                cidr_block=public_cidrs[index],
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": f"{prefix}-public-{zone}", "Tier": "public"},
            ).id
            RouteTableAssociation(self, f"public-{index}-rt", subnet_id=public_id, route_table_id=public_rt_id)
            public_subnet_ids.append(public_id)
            if index == 0 or not network.single_nat_gateway:
                eip = Eip(self, f"nat-eip-{index}", domain="vpc", tags={"Name": f"{prefix}-nat-{zone}"})
                nat_gateway_ids.append(
                    NatGateway(
                        self,
                        f"nat-{index}",
                        allocation_id=eip.id,
                        subnet_id=public_id,
                        tags={"Name": f"{prefix}-nat-{zone}"},
                        depends_on=[igw],
                    ).id
                )

        for index, zone in enumerate(availability_zones):
            private_id = Subnet(
                self,
                f"private-{index}",
                vpc_id=vpc_id,
                cidr_block=private_cidrs[index],
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": f"{prefix}-private-{zone}", "Tier": "private"},
            ).id
            table_id = RouteTable(
                self, f"private-rt-{index}", vpc_id=vpc_id, tags={"Name": f"{prefix}-private-{zone}"}
            ).id
            Route(
                self,
                f"private-{index}-default",
                route_table_id=table_id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat_gateway_ids[0 if network.single_nat_gateway else index],
            )
            RouteTableAssociation(self, f"private-{index}-rt", subnet_id=private_id, route_table_id=table_id)
            private_subnet_ids.append(private_id)
            private_route_table_ids.append(table_id)

        VpcEndpoint(
            self,
            "endpoint-s3",
            vpc_id=vpc_id,
            service_name=f"com.amazonaws.{context.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=private_route_table_ids,
            tags={"Name": f"{prefix}-s3"},
        )
        endpoint_sg_id = SecurityGroup(
            self,
            "endpoint-sg",
            name=f"{prefix}-endpoints",
            description="Interface VPC endpoints: HTTPS from the private subnets",
            vpc_id=vpc_id,
            tags={"Name": f"{prefix}-endpoints"},
        ).id
        allow_cidrs(
            self,
            "endpoints-from-private",
            security_group_id=endpoint_sg_id,
            cidrs=private_cidrs,
            port=443,
            description="HTTPS from private subnets",
        )
        for service in INTERFACE_ENDPOINTS:
            VpcEndpoint(
                self,
                f"endpoint-{service.replace('.', '-')}",
                vpc_id=vpc_id,
                service_name=f"com.amazonaws.{context.region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=private_subnet_ids,
                security_group_ids=[endpoint_sg_id],
                tags={"Name": f"{prefix}-{service}"},
            )

        alb_sg_id = SecurityGroup(
            self,
            "alb-sg",
            name=f"{prefix}-alb",
            description="Internet-facing load balancer: listener ports from allowed CIDRs only",
            vpc_id=vpc_id,
            tags={"Name": f"{prefix}-alb"},
        ).id
        for port in (80, 443) if edge.https else (80,):
            allow_cidrs(
                self,
                f"alb-from-clients-{port}",
                security_group_id=alb_sg_id,
                cidrs=edge.allowed_cidrs,
                port=port,
                description=f"clients on {port}",
            )
        alb = Lb(
            self,
            "alb",
            name=f"{prefix}-alb",
            internal=False,
            load_balancer_type="application",
            security_groups=[alb_sg_id],
            subnets=public_subnet_ids,
            drop_invalid_header_fields=True,
            enable_deletion_protection=context.deletion_protection,
            # LLM responses stream for minutes; the default 60 s would cut them.
            idle_timeout=300,
        )
        target_group = LbTargetGroup(
            self,
            "gateway-tg",
            name=f"{prefix}-gw",
            # The task's entry point is the key proxy, never the gateway itself.
            port=PROXY_PORT,
            protocol="HTTP",
            target_type="ip",
            vpc_id=vpc_id,
            deregistration_delay="60",
            health_check=LbTargetGroupHealthCheck(
                enabled=True,
                # Proxied to the gateway: healthy only when both answer.
                path=HEALTH_PATH,
                port="traffic-port",
                protocol="HTTP",
                matcher="200",
                interval=15,
                timeout=5,
                healthy_threshold=2,
                unhealthy_threshold=3,
            ),
        )
        alb_arn, target_group_arn = alb.arn, target_group.arn
        if edge.https:
            http_action = LbListenerDefaultAction(
                type="redirect",
                redirect=LbListenerDefaultActionRedirect(port="443", protocol="HTTPS", status_code="HTTP_301"),
            )
        else:
            http_action = LbListenerDefaultAction(type="forward", target_group_arn=target_group_arn)
        http_listener = LbListener(
            self, "http-listener", load_balancer_arn=alb_arn, port=80, protocol="HTTP", default_action=[http_action]
        )

        if edge.enable_waf:
            self._web_acl(prefix, edge, alb_arn, waf_log_group_arn)

        self.outputs = NetworkingOutputs(
            vpc_id=vpc_id,
            vpc_cidr=network.vpc_cidr,
            public_subnet_ids=public_subnet_ids,
            private_subnet_ids=private_subnet_ids,
            private_subnet_cidrs=private_cidrs,
            alb_arn=alb_arn,
            alb_arn_suffix=alb.arn_suffix,
            alb_dns_name=alb.dns_name,
            alb_security_group_id=alb_sg_id,
            target_group_arn=target_group_arn,
            target_group_arn_suffix=target_group.arn_suffix,
            listener_dependencies=[http_listener],
        )

    def _flow_logs(self, prefix: str, context: StackContext, vpc_id: str, log_group_arn: str) -> None:
        """Every accepted and rejected flow of the VPC, to its encrypted log group."""
        role = IamRole(
            self,
            "flow-log-role",
            name=f"{prefix}-vpc-flow-logs",
            description="VPC flow logs delivery into the stack's flow log group",
            assume_role_policy=service_trust_policy(
                "vpc-flow-logs.amazonaws.com",
                account_id=context.account_id,
                source_arn=f"arn:{context.partition}:ec2:{context.region}:{context.account_id}:vpc-flow-log/*",
            ),
        )
        IamRolePolicy(
            self,
            "flow-log-policy",
            role=role.id,
            policy=policy_document([grant_log_writes([log_group_arn], sid="FlowLogDelivery")]),
        )
        FlowLog(
            self,
            "flow-log",
            vpc_id=vpc_id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group_arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags={"Name": f"{prefix}-vpc-flow"},
        )

    def _web_acl(self, prefix: str, edge: EdgeSettings, alb_arn: str, log_group_arn: str | None) -> None:
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
                statement={"managed_rule_group_statement": {"name": group, "vendor_name": "AWS"}},
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
        Wafv2WebAclAssociation(self, "web-acl-alb", resource_arn=alb_arn, web_acl_arn=acl.arn)
        if log_group_arn is None:
            raise ValueError("WAF is enabled but observability created no WAF log group")
        Wafv2WebAclLoggingConfiguration(
            self, "web-acl-logging", resource_arn=acl.arn, log_destination_configs=[log_group_arn]
        )
