"""Networking module: VPC, subnets, NAT, endpoints, ALB, target group, WAF."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from aigw.environments import load_environments
from modules.stack import synthesize
from tests.template import Template


def test_vpc_spans_the_listed_zones_with_public_and_private_subnets(dev: Template, prod: Template) -> None:
    for stack, zones in ((dev, ["us-east-1a", "us-east-1b"]), (prod, ["us-east-1a", "us-east-1b", "us-east-1c"])):
        public = stack.resources("aws_subnet", {"tags": {"Tier": "public"}})
        private = stack.resources("aws_subnet", {"tags": {"Tier": "private"}})
        assert sorted(s["availability_zone"] for s in public) == zones
        assert sorted(s["availability_zone"] for s in private) == zones


SEOUL = """
region = "ap-northeast-2"
[backend]
bucket = "tfstate-bucket"
key = "seoul.tfstate"
dynamodb_table = "tfstate-lock"
region = "ap-northeast-2"
[network]
availability_zones = ["ap-northeast-2a", "ap-northeast-2c"]
[edge]
allowed_cidrs = ["203.0.113.0/24"]
"""


def test_region_outside_the_default_table_builds_subnets_in_its_listed_zones(tmp_path: Path) -> None:
    (tmp_path / "seoul.toml").write_text(SEOUL)
    synthesize(load_environments(tmp_path), tmp_path / "out")
    stack = Template.load(tmp_path / "out" / "stacks" / "ai-gateway-seoul" / "cdk.tf.json")
    for tier in ("public", "private"):
        subnets = stack.resources("aws_subnet", {"tags": {"Tier": tier}})
        assert sorted(s["availability_zone"] for s in subnets) == ["ap-northeast-2a", "ap-northeast-2c"]
    assert stack.resource("aws_vpc_endpoint", {"vpc_endpoint_type": "Gateway"})["service_name"] == (
        "com.amazonaws.ap-northeast-2.s3"
    )


def test_subnets_are_disjoint_and_inside_the_vpc(env_stack: Template) -> None:
    vpc = ipaddress.IPv4Network(env_stack.resource("aws_vpc")["cidr_block"])
    blocks = [ipaddress.IPv4Network(s["cidr_block"]) for s in env_stack.resources("aws_subnet")]
    assert all(block.subnet_of(vpc) for block in blocks)
    assert all(not a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])


def test_public_subnets_route_to_the_internet_gateway(env_stack: Template) -> None:
    igw = env_stack.resource("aws_internet_gateway")
    route = env_stack.resource("aws_route", {"gateway_id": igw.ref("id")})
    table = env_stack.follow(route["route_table_id"])
    associated = {
        a["subnet_id"] for a in env_stack.resources("aws_route_table_association", {"route_table_id": table.ref("id")})
    }
    public = {s.ref("id") for s in env_stack.resources("aws_subnet", {"tags": {"Tier": "public"}})}
    assert associated == public
    assert all(s["map_public_ip_on_launch"] is False for s in env_stack.resources("aws_subnet"))


def test_dev_has_one_nat_gateway_and_prod_one_per_az(dev: Template, prod: Template) -> None:
    assert dev.count("aws_nat_gateway") == 1
    assert prod.count("aws_nat_gateway") == 3
    nat_subnets = {prod.follow(n["subnet_id"])["availability_zone"] for n in prod.resources("aws_nat_gateway")}
    assert nat_subnets == {"us-east-1a", "us-east-1b", "us-east-1c"}


def test_each_private_subnet_routes_through_a_nat_in_its_own_az_in_prod(prod: Template) -> None:
    for subnet in prod.resources("aws_subnet", {"tags": {"Tier": "private"}}):
        (association,) = prod.resources("aws_route_table_association", {"subnet_id": subnet.ref("id")})
        (route,) = prod.resources("aws_route", {"route_table_id": association["route_table_id"]})
        nat = prod.follow(route["nat_gateway_id"])
        assert prod.follow(nat["subnet_id"])["availability_zone"] == subnet["availability_zone"]


def test_s3_gateway_endpoint_on_private_route_tables(env_stack: Template) -> None:
    endpoint = env_stack.resource("aws_vpc_endpoint", {"vpc_endpoint_type": "Gateway"})
    assert endpoint["service_name"] == "com.amazonaws.us-east-1.s3"
    private_tables = {
        a["route_table_id"]
        for s in env_stack.resources("aws_subnet", {"tags": {"Tier": "private"}})
        for a in env_stack.resources("aws_route_table_association", {"subnet_id": s.ref("id")})
    }
    assert set(endpoint["route_table_ids"]) == private_tables


def test_interface_endpoints_with_private_dns_behind_a_443_from_private_subnets_group(env_stack: Template) -> None:
    endpoints = env_stack.resources("aws_vpc_endpoint", {"vpc_endpoint_type": "Interface"})
    services = sorted(e["service_name"].rsplit(".", 2 if "ecr" in e["service_name"] else 1)[-1] for e in endpoints)
    assert sorted(e["service_name"] for e in endpoints) == [
        f"com.amazonaws.us-east-1.{s}" for s in ("ecr.api", "ecr.dkr", "logs", "secretsmanager")
    ], services
    private_ids = sorted(s.ref("id") for s in env_stack.resources("aws_subnet", {"tags": {"Tier": "private"}}))
    (group_ref,) = {e["security_group_ids"][0] for e in endpoints}
    for endpoint in endpoints:
        assert endpoint["private_dns_enabled"] is True
        assert sorted(endpoint["subnet_ids"]) == private_ids
    group = env_stack.follow(group_ref)
    rules = env_stack.resources("aws_vpc_security_group_ingress_rule", {"security_group_id": group.ref("id")})
    private_cidrs = sorted(s["cidr_block"] for s in env_stack.resources("aws_subnet", {"tags": {"Tier": "private"}}))
    assert sorted(r["cidr_ipv4"] for r in rules) == private_cidrs
    assert {(r["from_port"], r["to_port"], r["ip_protocol"]) for r in rules} == {(443, 443, "tcp")}


def test_alb_is_internet_facing_in_public_subnets_and_drops_invalid_headers(env_stack: Template) -> None:
    alb = env_stack.resource("aws_lb")
    assert alb["internal"] is False and alb["load_balancer_type"] == "application"
    assert alb["drop_invalid_header_fields"] is True
    public = sorted(s.ref("id") for s in env_stack.resources("aws_subnet", {"tags": {"Tier": "public"}}))
    assert sorted(alb["subnets"]) == public


def alb_group(stack: Template) -> str:
    (group,) = stack.resource("aws_lb")["security_groups"]
    return group


def test_alb_accepts_only_listener_ports_from_allowed_cidrs(dev: Template, prod: Template, staging: Template) -> None:
    for stack, ports, cidrs in (
        (dev, {80}, {"203.0.113.0/24"}),
        (prod, {80, 443}, {"0.0.0.0/0"}),
        (staging, {80, 443}, {"203.0.113.0/24", "198.51.100.0/24"}),
    ):
        rules = stack.resources("aws_vpc_security_group_ingress_rule", {"security_group_id": alb_group(stack)})
        assert {r["from_port"] for r in rules} == ports
        assert all(r["from_port"] == r["to_port"] for r in rules)
        assert {r["cidr_ipv4"] for r in rules} == cidrs
        assert len(rules) == len(ports) * len(cidrs)


def test_alb_egress_only_to_the_tasks_on_the_proxy_port(env_stack: Template) -> None:
    (egress,) = env_stack.resources("aws_vpc_security_group_egress_rule", {"security_group_id": alb_group(env_stack)})
    assert (egress["from_port"], egress["to_port"], egress["ip_protocol"]) == (8080, 8080, "tcp")
    task_group = env_stack.follow(egress["referenced_security_group_id"])
    assert task_group["name"].endswith("-tasks")


def test_target_group_is_the_key_proxy_with_a_health_check_through_to_the_gateway(env_stack: Template) -> None:
    # The ALB reaches the task only through the key proxy (8080); /health is
    # proxied to the gateway's "/", so a target is healthy only when both answer.
    target_group = env_stack.resource("aws_lb_target_group")
    assert (target_group["target_type"], target_group["port"], target_group["protocol"]) == ("ip", 8080, "HTTP")
    health = target_group["health_check"]
    assert health["path"] == "/health" and health["matcher"] == "200" and health["enabled"] is True


def test_http_listener_forwards_in_dev_and_redirects_to_https_in_prod(dev: Template, prod: Template) -> None:
    (dev_action,) = dev.resource("aws_lb_listener", {"port": 80})["default_action"]
    assert dev_action["type"] == "forward"
    assert dev.follow(dev_action["target_group_arn"]).type == "aws_lb_target_group"
    (prod_action,) = prod.resource("aws_lb_listener", {"port": 80})["default_action"]
    assert prod_action == {
        "type": "redirect",
        "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"},
    }
    assert dev.count("aws_lb_listener", {"port": 443}) == 0


def test_https_listener_uses_tls13_policy_and_the_certificate(prod: Template, staging: Template) -> None:
    for stack, certificate in (
        (prod, "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"),
        (staging, "arn:aws:acm:eu-central-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"),
    ):
        listener = stack.resource("aws_lb_listener", {"port": 443})
        assert listener["protocol"] == "HTTPS"
        assert listener["ssl_policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
        assert listener["certificate_arn"] == certificate


def test_waf_only_in_prod(dev: Template, prod: Template) -> None:
    assert dev.count("aws_wafv2_web_acl") == 0 and dev.count("aws_wafv2_web_acl_association") == 0
    assert prod.count("aws_wafv2_web_acl") == 1


def test_web_acl_has_three_managed_groups_and_a_per_ip_rate_rule(prod: Template) -> None:
    acl = prod.resource("aws_wafv2_web_acl")
    assert acl["scope"] == "REGIONAL" and acl["default_action"] == {"allow": {}}
    rules = sorted(acl["rule"], key=lambda r: r["priority"])
    managed = [
        r["statement"]["managed_rule_group_statement"]
        for r in rules
        if "managed_rule_group_statement" in r["statement"]
    ]
    assert managed == [
        {"name": "AWSManagedRulesCommonRuleSet", "vendor_name": "AWS"},
        {"name": "AWSManagedRulesAmazonIpReputationList", "vendor_name": "AWS"},
        {"name": "AWSManagedRulesKnownBadInputsRuleSet", "vendor_name": "AWS"},
    ]
    assert all(r["override_action"] == {"none": {}} for r in rules[:3])
    rate = rules[3]
    assert rate["action"] == {"block": {}}
    assert rate["statement"]["rate_based_statement"] == {
        "limit": 2000,
        "aggregate_key_type": "IP",
        "evaluation_window_sec": 300,
    }
    assert len({r["priority"] for r in rules}) == len(rules)
    assert all(r["visibility_config"]["cloudwatch_metrics_enabled"] is True for r in rules)


def test_web_acl_is_associated_with_the_alb_and_logs_to_its_group(prod: Template, staging: Template) -> None:
    acl = prod.resource("aws_wafv2_web_acl")
    association = prod.resource("aws_wafv2_web_acl_association")
    assert association["web_acl_arn"] == acl.ref("arn")
    assert prod.follow(association["resource_arn"]).type == "aws_lb"
    logging = prod.resource("aws_wafv2_web_acl_logging_configuration")
    assert logging["resource_arn"] == acl.ref("arn")
    (destination,) = logging["log_destination_configs"]
    assert prod.follow(destination)["name"].startswith("aws-waf-logs-")
    rate_rule = next(
        r for r in staging.resource("aws_wafv2_web_acl")["rule"] if "rate_based_statement" in r["statement"]
    )
    assert rate_rule["statement"]["rate_based_statement"]["limit"] == 500


@pytest.mark.parametrize("name", ["minimal", "staging"])
def test_example_vpcs_follow_their_settings(stacks: dict[str, Template], name: str) -> None:
    stack = stacks[name]
    expected = {"minimal": ("10.0.0.0/16", 2), "staging": ("10.20.0.0/20", 3)}[name]
    assert stack.resource("aws_vpc")["cidr_block"] == expected[0]
    assert stack.count("aws_subnet", {"tags": {"Tier": "private"}}) == expected[1]


def test_vpc_flow_logs_go_to_the_encrypted_flow_log_group(env_stack: Template) -> None:
    flow = env_stack.resource("aws_flow_log")
    assert flow["traffic_type"] == "ALL" and flow["log_destination_type"] == "cloud-watch-logs"
    assert flow["vpc_id"] == env_stack.resource("aws_vpc").ref("id")
    group = env_stack.follow(flow["log_destination"])
    assert group["name"].endswith("/vpc-flow") and group["kms_key_id"]
    role = env_stack.follow(flow["iam_role_arn"])
    (trust,) = role.json("assume_role_policy")["Statement"]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert ":vpc-flow-log/*" in trust["Condition"]["ArnLike"]["aws:SourceArn"]
    (policy,) = env_stack.resources("aws_iam_role_policy", {"role": role.ref("id")})
    (statement,) = policy.json("policy")["Statement"]
    assert {r.removesuffix(":log-stream:*") for r in statement["Resource"]} == {group.ref("arn")}


def test_default_security_group_allows_nothing(env_stack: Template) -> None:
    default = env_stack.resource("aws_default_security_group")
    assert default["vpc_id"] == env_stack.resource("aws_vpc").ref("id")
    assert "ingress" not in default.props and "egress" not in default.props
