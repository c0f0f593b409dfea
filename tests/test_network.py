"""Network: VPC, subnets, NAT, route tables, VPC endpoints, flow logs, the
default security group. Stacks come from tests/scenarios.py."""

from __future__ import annotations

import ipaddress

import pytest

from security.stackdoc import Res, StackDoc


def subnets(stack: StackDoc, tier: str) -> list[Res]:
    return stack.resources("aws_subnet", {"tags": {"Tier": tier}})


def route_through(stack: StackDoc, subnet: Res) -> Res:
    """The default route of the route table associated with ``subnet``."""
    (association,) = stack.resources("aws_route_table_association", {"subnet_id": subnet.ref("id")})
    return stack.resource("aws_route", {"route_table_id": association["route_table_id"]})


@pytest.mark.parametrize("tier", ["public", "private"])
def test_each_listed_zone_gets_a_subnet_of_each_tier(scenarios: dict[str, StackDoc], tier: str) -> None:
    # GIVEN zones listed for a region without default zones (seoul: a and c)
    stack = scenarios["seoul"]
    # THEN one subnet of the tier in each, and none elsewhere
    assert sorted(s["availability_zone"] for s in subnets(stack, tier)) == ["ap-northeast-2a", "ap-northeast-2c"]


def test_vpc_cidr_follows_the_setting(scenarios: dict[str, StackDoc]) -> None:
    assert scenarios["small-vpc"].resource("aws_vpc")["cidr_block"] == "10.20.0.0/22"


@pytest.mark.parametrize("name", ["base", "small-vpc", "nat-per-zone"])
def test_subnets_lie_inside_the_vpc(scenarios: dict[str, StackDoc], name: str) -> None:
    stack = scenarios[name]
    vpc = ipaddress.IPv4Network(stack.resource("aws_vpc")["cidr_block"])
    assert all(ipaddress.IPv4Network(s["cidr_block"]).subnet_of(vpc) for s in stack.resources("aws_subnet"))


@pytest.mark.parametrize("name", ["base", "small-vpc", "nat-per-zone"])
def test_subnets_do_not_overlap(scenarios: dict[str, StackDoc], name: str) -> None:
    blocks = [ipaddress.IPv4Network(s["cidr_block"]) for s in scenarios[name].resources("aws_subnet")]
    assert not [(a, b) for i, a in enumerate(blocks) for b in blocks[i + 1 :] if a.overlaps(b)]


def test_public_subnets_route_to_the_internet_gateway(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    gateway = stack.resource("aws_internet_gateway")
    for subnet in subnets(stack, "public"):
        assert route_through(stack, subnet)["gateway_id"] == gateway.ref("id"), subnet.name


def test_no_subnet_assigns_public_ips(scenarios: dict[str, StackDoc]) -> None:
    assert all(s["map_public_ip_on_launch"] is False for s in scenarios["base"].resources("aws_subnet"))


def test_one_shared_nat_gateway_by_default(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    (nat,) = stack.resources("aws_nat_gateway")
    for subnet in subnets(stack, "private"):
        assert route_through(stack, subnet)["nat_gateway_id"] == nat.ref("id"), subnet.name


def test_a_nat_gateway_in_each_zone_when_not_shared(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["nat-per-zone"]
    zones = [stack.follow(nat["subnet_id"])["availability_zone"] for nat in stack.resources("aws_nat_gateway")]
    assert sorted(zones) == ["us-east-1a", "us-east-1b", "us-east-1c"]


def test_nat_gateways_sit_in_public_subnets(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["nat-per-zone"]
    public = {s.ref("id") for s in subnets(stack, "public")}
    assert {nat["subnet_id"] for nat in stack.resources("aws_nat_gateway")} <= public


def test_each_private_subnet_leaves_through_the_nat_of_its_own_zone(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["nat-per-zone"]
    for subnet in subnets(stack, "private"):
        nat = stack.follow(route_through(stack, subnet)["nat_gateway_id"])
        assert stack.follow(nat["subnet_id"])["availability_zone"] == subnet["availability_zone"], subnet.name


def test_s3_gateway_endpoint_is_in_the_stacks_region(scenarios: dict[str, StackDoc]) -> None:
    endpoint = scenarios["seoul"].resource("aws_vpc_endpoint", {"vpc_endpoint_type": "Gateway"})
    assert endpoint["service_name"] == "com.amazonaws.ap-northeast-2.s3"


def test_s3_gateway_endpoint_serves_every_private_route_table(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["nat-per-zone"]
    endpoint = stack.resource("aws_vpc_endpoint", {"vpc_endpoint_type": "Gateway"})
    private_tables = {route_through(stack, s)["route_table_id"] for s in subnets(stack, "private")}
    assert set(endpoint["route_table_ids"]) == private_tables


def test_interface_endpoints_serve_ecr_logs_and_secrets_manager(scenarios: dict[str, StackDoc]) -> None:
    endpoints = scenarios["seoul"].resources("aws_vpc_endpoint", {"vpc_endpoint_type": "Interface"})
    assert sorted(e["service_name"] for e in endpoints) == [
        f"com.amazonaws.ap-northeast-2.{service}" for service in ("ecr.api", "ecr.dkr", "logs", "secretsmanager")
    ]


def test_interface_endpoints_resolve_privately_in_every_private_subnet(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    private = sorted(s.ref("id") for s in subnets(stack, "private"))
    for endpoint in stack.resources("aws_vpc_endpoint", {"vpc_endpoint_type": "Interface"}):
        assert endpoint["private_dns_enabled"] is True, endpoint.name
        assert sorted(endpoint["subnet_ids"]) == private, endpoint.name


def test_interface_endpoints_admit_only_https_from_the_private_subnets(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    groups = {g for e in stack.resources("aws_vpc_endpoint", {"vpc_endpoint_type": "Interface"})
              for g in e["security_group_ids"]}  # fmt: skip
    rules = [
        r for g in groups for r in stack.resources("aws_vpc_security_group_ingress_rule", {"security_group_id": g})
    ]
    assert {(r["cidr_ipv4"], r["ip_protocol"], r["from_port"], r["to_port"]) for r in rules} == {
        (s["cidr_block"], "tcp", 443, 443) for s in subnets(stack, "private")
    }


def test_flow_logs_capture_all_traffic_of_the_vpc(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    stack.resource("aws_flow_log", {"vpc_id": stack.resource("aws_vpc").ref("id"), "traffic_type": "ALL"})


def test_flow_logs_go_to_the_flow_log_group(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    flow = stack.resource("aws_flow_log", {"log_destination_type": "cloud-watch-logs"})
    assert stack.follow(flow["log_destination"])["name"].endswith("/vpc-flow")


def test_flow_log_role_trusts_only_flow_log_delivery_of_this_account(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    role = stack.follow(stack.resource("aws_flow_log")["iam_role_arn"])
    (trust,) = role.json("assume_role_policy")["Statement"]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"].startswith("${data.aws_caller_identity.")
    assert ":vpc-flow-log/*" in trust["Condition"]["ArnLike"]["aws:SourceArn"]


def test_flow_log_role_may_write_only_the_streams_of_its_log_group(scenarios: dict[str, StackDoc]) -> None:
    # Delivery needs the group (to describe it) and its streams (<arn>:log-stream:*).
    stack = scenarios["base"]
    flow = stack.resource("aws_flow_log")
    role = stack.follow(flow["iam_role_arn"])
    group = stack.follow(flow["log_destination"])
    (policy,) = [p for p in stack.resources("aws_iam_role_policy") if p["role"] in (role.ref("id"), role.ref("name"))]
    (statement,) = policy.json("policy")["Statement"]
    assert sorted(statement["Resource"]) == sorted([group.ref("arn"), f"{group.ref('arn')}:log-stream:*"])


def test_default_security_group_allows_nothing(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    default = stack.resource("aws_default_security_group", {"vpc_id": stack.resource("aws_vpc").ref("id")})
    assert "ingress" not in default.body and "egress" not in default.body
