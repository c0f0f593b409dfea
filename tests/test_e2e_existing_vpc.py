"""End to end on the local AWS emulator, into an existing VPC: a fixture
creates a VPC with an internet gateway and two public and two private
subnets through boto3 (as another team would own them), writes an
environment file pointing at them, and deploys it with the real `cdktf
deploy`. Then: the load balancer, the service and the security groups are in
that VPC and its subnets, the stack created no VPC, subnet, NAT gateway,
flow log or endpoint, a second plan is empty, the destroy leaves the VPC
as it was, and a private subnet that assigns public IPs fails the plan
naming it. Loopback only; the emulator always stops. About two minutes.

Needs Terraform and the hashicorp/aws provider from a local mirror (the
``provider_mirror`` fixture, as the other emulator tier)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from aigw.environments import load_environments
from tests import processes
from tests.conftest import ProviderMirror
from tests.gateway_harness import free_port
from tests.project_copy import ROOT, copy_project
from tests.test_e2e_emulator import CREDENTIALS, DEPLOY_TIMEOUT_SECONDS, cli_environment, running_emulator
from tools.state_bootstrap import bootstrap

pytestmark = pytest.mark.e2e
NAME = "vpcuse"
STACK = f"ai-gateway-{NAME}"
REGION = "us-east-1"
# The VPC's own CIDR: outside 10.9.0.0/16 (environments/local.toml), so the two never meet.
VPC_CIDR = "10.42.0.0/16"
ENVIRONMENT = """
# Written by tests/test_e2e_existing_vpc.py: the emulator's existing VPC.
region = "{region}"
aws_provider_version = "~> 5.100"
deletion_protection = false

[backend]
bucket = "ai-gateway-tfstate-{name}"
key = "ai-gateway/{name}.tfstate"
dynamodb_table = "ai-gateway-tfstate-lock-{name}"
region = "{region}"

[emulator]
endpoint = "{endpoint}"

[network]
vpc_id = "{vpc_id}"
public_subnet_ids = {public}
private_subnet_ids = {private}

[gateway]
desired_count = 1
min_capacity = 1
max_capacity = 2

[edge]
allowed_cidrs = ["203.0.113.0/24"]

[observability]
enable_saved_queries = false   # moto: no CloudWatch Logs query definitions
"""


@dataclass
class ExistingVpc:
    vpc_id: str
    public_subnet_ids: list[str]
    private_subnet_ids: list[str]


@dataclass
class Deployment:
    project: Path
    env: dict[str, str]
    endpoint: str
    network: ExistingVpc
    vpcs_before: set[str]

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def cdktf(self, *args: str) -> subprocess.CompletedProcess[str]:
        return processes.run([ROOT / "node_modules" / ".bin" / "cdktf", *args], cwd=self.project, env=self.env,
                             timeout=DEPLOY_TIMEOUT_SECONDS)  # fmt: skip

    def terraform(self, *args: str) -> subprocess.CompletedProcess[str]:
        return processes.run(["terraform", *args, "-no-color", "-input=false"],
                             cwd=self.project / "cdktf.out" / "stacks" / STACK, env=self.env,
                             timeout=DEPLOY_TIMEOUT_SECONDS)  # fmt: skip


def create_vpc(ec2: Any) -> ExistingVpc:
    """What another team's VPC looks like: an internet gateway, public subnets
    routed to it, private subnets on the main route table; none assigns public IPs."""
    vpc_id = ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    gateway_id = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    public_table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_table, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway_id)
    public, private = [], []
    for index, zone in enumerate(("a", "b")):
        for tier, subnets, third in (("public", public, index), ("private", private, 100 + index)):
            subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.42.{third}.0/24",
                                          AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]  # fmt: skip
            ec2.create_tags(Resources=[subnet_id], Tags=[{"Key": "Tier", "Value": tier}])
            subnets.append(subnet_id)
    for subnet_id in public:
        ec2.associate_route_table(RouteTableId=public_table, SubnetId=subnet_id)
    return ExistingVpc(vpc_id, public, private)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, provider_mirror: ProviderMirror) -> Iterator[Deployment]:
    mirror = provider_mirror.directory
    endpoint = f"http://127.0.0.1:{free_port()}"
    project = copy_project(tmp_path_factory.mktemp("e2e-vpc-project"))
    env_dir = project / "environments"
    for other in env_dir.glob("*.toml"):
        other.unlink()
    env = cli_environment(env_dir, mirror)
    with running_emulator(endpoint, tmp_path_factory.mktemp("emulator-vpc")):
        ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=REGION)
        network = create_vpc(ec2)
        vpcs_before = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}
        (env_dir / f"{NAME}.toml").write_text(
            ENVIRONMENT.format(
                region=REGION, name=NAME, endpoint=endpoint, vpc_id=network.vpc_id,
                public=_toml_list(network.public_subnet_ids), private=_toml_list(network.private_subnet_ids),
            )
        )  # fmt: skip
        (environment,) = load_environments(env_dir)
        bootstrap(environment)
        deployment = Deployment(project, env, endpoint, network, vpcs_before)
        deployed = deployment.cdktf("deploy", STACK, "--auto-approve")
        assert deployed.returncode == 0, (deployed.stdout + deployed.stderr)[-6000:]
        yield deployment


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{value}"' for value in values) + "]"


def test_the_stack_creates_no_vpc_subnet_nat_gateway_flow_log_or_endpoint(deployment: Deployment) -> None:
    ec2 = deployment.client("ec2")
    assert {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]} == deployment.vpcs_before
    in_vpc = [{"Name": "vpc-id", "Values": [deployment.network.vpc_id]}]
    network = deployment.network
    assert sorted(s["SubnetId"] for s in ec2.describe_subnets(Filters=in_vpc)["Subnets"]) == sorted(
        network.public_subnet_ids + network.private_subnet_ids
    )
    assert [n for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] != "deleted"] == []
    assert ec2.describe_vpc_endpoints(Filters=in_vpc)["VpcEndpoints"] == []
    assert ec2.describe_flow_logs()["FlowLogs"] == []
    groups = deployment.client("logs").describe_log_groups(logGroupNamePrefix=f"/aigw-{NAME}/")["logGroups"]
    assert sorted(g["logGroupName"].rsplit("/", 1)[1] for g in groups) == [
        "access", "collector", "gateway", "metrics", "otlp-logs"]  # fmt: skip


def test_load_balancer_and_its_security_group_are_in_the_public_subnets_of_that_vpc(deployment: Deployment) -> None:
    (alb,) = deployment.client("elbv2").describe_load_balancers(Names=[f"aigw-{NAME}-alb"])["LoadBalancers"]
    assert alb["VpcId"] == deployment.network.vpc_id
    assert sorted(zone["SubnetId"] for zone in alb["AvailabilityZones"]) == sorted(deployment.network.public_subnet_ids)
    (group,) = deployment.client("ec2").describe_security_groups(GroupIds=alb["SecurityGroups"])["SecurityGroups"]
    assert group["VpcId"] == deployment.network.vpc_id


def test_service_runs_in_the_private_subnets_with_its_security_group_in_that_vpc(deployment: Deployment) -> None:
    ecs = deployment.client("ecs")
    (service,) = ecs.describe_services(cluster=f"aigw-{NAME}-cluster", services=[f"aigw-{NAME}-gateway"])["services"]
    awsvpc = service["networkConfiguration"]["awsvpcConfiguration"]
    assert sorted(awsvpc["subnets"]) == sorted(deployment.network.private_subnet_ids)
    assert awsvpc["assignPublicIp"] == "DISABLED"
    groups = deployment.client("ec2").describe_security_groups(GroupIds=awsvpc["securityGroups"])["SecurityGroups"]
    assert [(g["GroupName"], g["VpcId"]) for g in groups] == [(f"aigw-{NAME}-tasks", deployment.network.vpc_id)]


def test_second_plan_is_empty(deployment: Deployment) -> None:
    plan = deployment.terraform("plan", "-detailed-exitcode", "-lock-timeout=60s")
    assert plan.returncode == 0, plan.stdout[-4000:] + plan.stderr[-2000:]


def test_destroy_leaves_the_vpc_and_its_subnets_as_they_were(deployment: Deployment) -> None:
    destroyed = deployment.cdktf("destroy", STACK, "--auto-approve")
    assert destroyed.returncode == 0, (destroyed.stdout + destroyed.stderr)[-6000:]
    ec2 = deployment.client("ec2")
    in_vpc = [{"Name": "vpc-id", "Values": [deployment.network.vpc_id]}]
    assert len(ec2.describe_subnets(Filters=in_vpc)["Subnets"]) == 4
    assert {g["GroupName"] for g in ec2.describe_security_groups(Filters=in_vpc)["SecurityGroups"]} == {"default"}
    assert deployment.client("elbv2").describe_load_balancers()["LoadBalancers"] == []


def test_a_private_subnet_that_assigns_public_ips_fails_the_plan_naming_it(deployment: Deployment) -> None:
    # After the destroy: only the data sources are read, against the changed subnet.
    subnet_id = deployment.network.private_subnet_ids[1]
    deployment.client("ec2").modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})
    plan = deployment.terraform("plan", "-lock-timeout=60s")
    assert plan.returncode == 1, plan.stdout[-3000:]
    output = " ".join(plan.stderr.split())
    assert "Resource postcondition failed" in output and "assigns public IPs on launch" in output, output[-3000:]
    assert f"subnet {subnet_id} of network.private_subnet_ids" in output, output[-3000:]
