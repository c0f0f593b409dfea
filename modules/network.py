"""Network: the VPC and what hangs off it. Either the stack creates it
(public and private subnets per zone, internet gateway, NAT, route tables,
flow logs, a default security group that allows nothing, VPC endpoints), or
it deploys into an existing VPC given by id with its subnets, creating only
what is asked for there (a NAT gateway, endpoints). What faces clients (load
balancer, listeners, WAF) is modules/edge.py.

An existing VPC's flow logs, internet gateway and default security group
belong to its owner and are left alone. Its subnets are read at plan time
and must lie in that VPC, and the private ones must not assign public IPs;
a plan fails naming the subnet otherwise."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cdktf import Postcondition, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.data_aws_subnet import DataAwsSubnet
from cdktf_cdktf_provider_aws.data_aws_vpc import DataAwsVpc
from cdktf_cdktf_provider_aws.default_security_group import DefaultSecurityGroup
from cdktf_cdktf_provider_aws.eip import Eip
from cdktf_cdktf_provider_aws.flow_log import FlowLog
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.internet_gateway import InternetGateway
from cdktf_cdktf_provider_aws.nat_gateway import NatGateway
from cdktf_cdktf_provider_aws.route import Route
from cdktf_cdktf_provider_aws.route_table import RouteTable
from cdktf_cdktf_provider_aws.route_table_association import RouteTableAssociation
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.subnet import Subnet
from cdktf_cdktf_provider_aws.vpc import Vpc
from cdktf_cdktf_provider_aws.vpc_endpoint import VpcEndpoint
from constructs import Construct

from aigw.settings import NetworkSettings
from modules.context import StackContext
from modules.grants import allow_cidrs, allow_subnets, grant_log_writes, policy_document, service_trust_policy

INTERFACE_ENDPOINTS: tuple[str, ...] = ("ecr.api", "ecr.dkr", "logs", "secretsmanager")
# Gateway endpoints (free, in the private route tables): S3 for image layers and the data plane's bundle;
# DynamoDB joins for cost attribution's pricing table.
GATEWAY_ENDPOINTS: tuple[str, ...] = ("s3",)
# Each subnet is 1/16 of the VPC: public ones take slots 0.., private ones 8..
SUBNET_EXTRA_BITS = 4
PRIVATE_SLOT_OFFSET = 8


@dataclass(frozen=True)
class NetworkOutputs:
    vpc_id: str
    vpc_cidr: str
    public_subnet_ids: list[str]
    private_subnet_ids: list[str]
    private_subnet_cidrs: list[str]


def subnet_cidrs(vpc_cidr: str, zone_count: int) -> tuple[list[str], list[str]]:
    """Public and private subnet CIDRs, one of each per AZ."""
    blocks = list(ipaddress.IPv4Network(vpc_cidr).subnets(prefixlen_diff=SUBNET_EXTRA_BITS))
    public = [str(block) for block in blocks[:zone_count]]
    private = [str(block) for block in blocks[PRIVATE_SLOT_OFFSET : PRIVATE_SLOT_OFFSET + zone_count]]
    return public, private


class Network(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: NetworkSettings,
        context: StackContext,
        availability_zones: list[str],
        flow_log_group_arn: str | None,
        interface_endpoints: Sequence[str] = INTERFACE_ENDPOINTS,
        gateway_endpoints: Sequence[str] = GATEWAY_ENDPOINTS,
    ) -> None:
        super().__init__(scope, construct_id)
        self._interface_endpoints = tuple(interface_endpoints)
        self._gateway_endpoints = tuple(gateway_endpoints)
        if network.vpc_id is None:
            if flow_log_group_arn is None:
                raise ValueError("a created VPC logs its flows, but observability created no flow log group")
            self.outputs = self._created_vpc(network, context, availability_zones, flow_log_group_arn)
        else:
            self.outputs = self._existing_vpc(network, network.vpc_id, context)

    def _created_vpc(
        self, network: NetworkSettings, context: StackContext, availability_zones: list[str], flow_log_group_arn: str
    ) -> NetworkOutputs:
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
                nat_gateway_ids.append(self._nat_gateway(index, zone, public_id, prefix, depends_on=[igw]))

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
            nat_id = nat_gateway_ids[0 if network.single_nat_gateway else index]
            private_route_table_ids.append(self._private_route_table(index, zone, private_id, nat_id, vpc_id, prefix))
            private_subnet_ids.append(private_id)

        if network.vpc_endpoints:
            allow_cidrs(
                self,
                "endpoints-from-private",
                security_group_id=self._endpoints(context, vpc_id, private_route_table_ids, private_subnet_ids),
                cidrs=private_cidrs,
                port=443,
                description="HTTPS from private subnets",
            )
        return NetworkOutputs(
            vpc_id=vpc_id,
            vpc_cidr=network.vpc_cidr,
            public_subnet_ids=public_subnet_ids,
            private_subnet_ids=private_subnet_ids,
            private_subnet_cidrs=private_cidrs,
        )

    def _existing_vpc(self, network: NetworkSettings, vpc_id: str, context: StackContext) -> NetworkOutputs:
        """Read the given VPC and subnets (checked at plan time), and add only
        the NAT gateway (with a route table per private subnet) and the endpoints
        when asked for; the S3 gateway endpoint only into route tables of its own."""
        prefix = context.prefix
        vpc_cidr = DataAwsVpc(self, "existing-vpc", id=vpc_id).cidr_block

        def in_vpc(subnet_id: str) -> Postcondition:
            return Postcondition(
                condition=f'${{self.vpc_id == "{vpc_id}"}}',
                error_message=f"subnet {subnet_id} is not in network.vpc_id {vpc_id}",
            )

        def no_public_ips(subnet_id: str) -> Postcondition:
            # security/rules.py (AIGW-NET3) looks for exactly this condition.
            return Postcondition(
                condition="${!self.map_public_ip_on_launch}",
                error_message=f"subnet {subnet_id} of network.private_subnet_ids assigns public IPs on launch; the "
                "tasks run in subnets that assign none",
            )

        public = [
            DataAwsSubnet(
                self, f"existing-public-{index}", id=subnet_id,
                lifecycle=TerraformResourceLifecycle(postcondition=[in_vpc(subnet_id)]),
            )
            for index, subnet_id in enumerate(network.public_subnet_ids or ())
        ]  # fmt: skip
        private = [
            DataAwsSubnet(
                self, f"existing-private-{index}", id=subnet_id,
                lifecycle=TerraformResourceLifecycle(postcondition=[in_vpc(subnet_id), no_public_ips(subnet_id)]),
            )
            for index, subnet_id in enumerate(network.private_subnet_ids or ())
        ]  # fmt: skip
        private_subnet_ids = [subnet.id for subnet in private]
        private_cidrs = {
            subnet_id: subnet.cidr_block
            for subnet_id, subnet in zip(network.private_subnet_ids or (), private, strict=True)
        }

        private_route_table_ids: list[str] = []
        if network.nat_gateway:
            nat_id = self._nat_gateway(0, public[0].availability_zone, public[0].id, prefix, depends_on=[])
            for index, (subnet, subnet_id) in enumerate(zip(private, private_subnet_ids, strict=True)):
                private_route_table_ids.append(
                    self._private_route_table(index, subnet.availability_zone, subnet_id, nat_id, vpc_id, prefix)
                )
        if network.vpc_endpoints:
            allow_subnets(
                self,
                "endpoints-from-private",
                security_group_id=self._endpoints(context, vpc_id, private_route_table_ids, private_subnet_ids),
                subnet_cidrs=private_cidrs,
                port=443,
                description="HTTPS from private subnets",
            )
        return NetworkOutputs(
            vpc_id=vpc_id,
            vpc_cidr=vpc_cidr,
            public_subnet_ids=[subnet.id for subnet in public],
            private_subnet_ids=private_subnet_ids,
            private_subnet_cidrs=list(private_cidrs.values()),
        )

    def _nat_gateway(
        self, index: int, zone: str, public_subnet_id: str, prefix: str, depends_on: Sequence[InternetGateway]
    ) -> str:
        eip = Eip(self, f"nat-eip-{index}", domain="vpc", tags={"Name": f"{prefix}-nat-{zone}"})
        return NatGateway(
            self,
            f"nat-{index}",
            allocation_id=eip.id,
            subnet_id=public_subnet_id,
            tags={"Name": f"{prefix}-nat-{zone}"},
            depends_on=list(depends_on) or None,
        ).id

    def _private_route_table(
        self, index: int, zone: str, subnet_id: str, nat_gateway_id: str, vpc_id: str, prefix: str
    ) -> str:
        """A private subnet's own route table: everything outside the VPC through the NAT gateway."""
        table_id = RouteTable(self, f"private-rt-{index}", vpc_id=vpc_id, tags={"Name": f"{prefix}-private-{zone}"}).id
        Route(
            self,
            f"private-{index}-default",
            route_table_id=table_id,
            destination_cidr_block="0.0.0.0/0",
            nat_gateway_id=nat_gateway_id,
        )
        RouteTableAssociation(self, f"private-{index}-rt", subnet_id=subnet_id, route_table_id=table_id)
        return table_id

    def _endpoints(
        self, context: StackContext, vpc_id: str, private_route_table_ids: list[str], private_subnet_ids: list[str]
    ) -> str:
        """The gateway endpoints (S3, and DynamoDB with cost attribution) in the
        private route tables (where the stack has any: an existing VPC's own
        route tables are its owner's, and a gateway endpoint there would reroute
        S3 for every subnet sharing them) and the
        interface endpoints with private DNS in the private subnets; returns the
        endpoints' security group, to which the caller admits the private subnets."""
        prefix = context.prefix
        for service in self._gateway_endpoints if private_route_table_ids else ():
            VpcEndpoint(
                self,
                f"endpoint-{service}",
                vpc_id=vpc_id,
                service_name=f"com.amazonaws.{context.region}.{service}",
                vpc_endpoint_type="Gateway",
                route_table_ids=private_route_table_ids,
                tags={"Name": f"{prefix}-{service}"},
            )
        endpoint_sg_id = SecurityGroup(
            self,
            "endpoint-sg",
            name=f"{prefix}-endpoints",
            description="Interface VPC endpoints: HTTPS from the private subnets",
            vpc_id=vpc_id,
            tags={"Name": f"{prefix}-endpoints"},
        ).id
        for service in self._interface_endpoints:
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
        return endpoint_sg_id

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
