"""The load balancer options of the edge, on synthesized stacks: the scheme
(internet-facing or internal) with the CIDRs each admits by default, host
routing, the network load balancer with what changes around it (autoscaling,
alarms, dashboard), and access logs to a given or a created bucket.

Every stack here is built from settings written in this file (not from the
shipped environment files) and validated as an environment file would be,
so a variant cannot drift into something a user could not configure. One
behaviour per test, GIVEN a variant, WHEN synthesized, THEN a partial match."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aigw.environments import Environment
from aigw.settings import EnvironmentSettings
from security.stackdoc import Res as Resource
from security.stackdoc import StackDoc as Template

REQUIRED: dict[str, Any] = {
    "region": "us-east-1",
    "backend": {"bucket": "tfstate-bucket", "key": "edge.tfstate", "dynamodb_table": "tfstate-lock",
                "region": "us-east-1"},
}  # fmt: skip
CLIENTS = ["203.0.113.0/24"]
CERTIFICATE_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
HOST = "gateway.example.com"
TLS13_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
VPC_CIDR = "10.0.0.0/16"

# name -> the tables that differ from REQUIRED (each table given whole).
VARIANTS: dict[str, dict[str, Any]] = {
    "public-alb": {"edge": {"allowed_cidrs": CLIENTS}},
    "internal-alb": {"edge": {"internal": True}},
    "internal-narrow": {"edge": {"internal": True, "allowed_cidrs": ["10.0.8.0/24"]}},
    "host-http": {"edge": {"allowed_cidrs": CLIENTS, "gateway_host": HOST}},
    "host-https-jwt": {"edge": {"certificate_arn": CERTIFICATE_ARN, "enable_jwt_auth": True, "gateway_host": HOST}},
    "nlb-tcp": {"edge": {"load_balancer_type": "network", "allowed_cidrs": CLIENTS}},
    "nlb-tls": {"edge": {"load_balancer_type": "network", "internal": True, "certificate_arn": CERTIFICATE_ARN}},
    "alb-logs": {"edge": {"allowed_cidrs": CLIENTS, "access_logs": {"enabled": True, "expiration_days": 30}}},
    "alb-logs-eu": {
        "region": "eu-south-2",
        "backend": {**REQUIRED["backend"], "region": "eu-south-2"},
        "network": {"availability_zones": ["eu-south-2a", "eu-south-2b"]},
        "edge": {"allowed_cidrs": CLIENTS, "access_logs": {"enabled": True, "prefix": "gateway/alb"}},
    },
    "alb-given-bucket": {
        "edge": {"allowed_cidrs": CLIENTS, "access_logs": {"enabled": True, "bucket": "org-lb-logs", "prefix": "aigw"}}
    },
    "nlb-logs": {
        "edge": {
            "load_balancer_type": "network",
            "internal": True,
            "certificate_arn": CERTIFICATE_ARN,
            "access_logs": {"enabled": True},
        }
    },
}


def settings(tables: dict[str, Any]) -> EnvironmentSettings:
    """Validate like a file: field rules, then the rules across fields."""
    validated = EnvironmentSettings.model_validate({**REQUIRED, **tables})
    problems = [f"{problem.field}: {problem.message}" for problem in validated.problems()]
    assert not problems, problems
    return validated


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    """Every variant, synthesized once in one app."""
    from modules.stack import synthesize

    environments = [Environment(name, Path(__file__), settings(tables)) for name, tables in VARIANTS.items()]
    outdir = tmp_path_factory.mktemp("edge-options.out")
    synthesize(environments, outdir)
    return {e.name: Template.load(outdir / "stacks" / e.stack_name / "cdk.tf.json") for e in environments}


def subnets(stack: Template, tier: str) -> list[str]:
    return sorted(s.ref("id") for s in stack.resources("aws_subnet", {"tags": {"Tier": tier}}))


def actions(listener_or_rule: Any, key: str) -> list[dict[str, Any]]:
    return sorted(listener_or_rule[key], key=lambda action: action.get("order", 0))


def listener_cidrs(stack: Template) -> dict[int, list[str]]:
    """Port -> the CIDRs the load balancer's security group admits on it."""
    (group,) = stack.resource("aws_lb")["security_groups"]
    admitted: dict[int, list[str]] = {}
    for rule in stack.resources("aws_vpc_security_group_ingress_rule", {"security_group_id": group}):
        admitted.setdefault(rule["from_port"], []).append(rule["cidr_ipv4"])
    return {port: sorted(cidrs) for port, cidrs in admitted.items()}


# -- scheme -------------------------------------------------------------------
def test_internet_facing_load_balancer_sits_in_the_public_subnets(stacks: dict[str, Template]) -> None:
    stack = stacks["public-alb"]
    lb = stack.resource("aws_lb", {"internal": False})
    assert sorted(lb["subnets"]) == subnets(stack, "public")


def test_internal_load_balancer_sits_in_the_private_subnets(stacks: dict[str, Template]) -> None:
    stack = stacks["internal-alb"]
    lb = stack.resource("aws_lb", {"internal": True, "load_balancer_type": "application"})
    assert sorted(lb["subnets"]) == subnets(stack, "private")


def test_internal_load_balancer_admits_the_vpc_by_default(stacks: dict[str, Template]) -> None:
    assert listener_cidrs(stacks["internal-alb"]) == {80: [VPC_CIDR]}


def test_internal_load_balancer_admits_the_allowed_cidrs_when_set(stacks: dict[str, Template]) -> None:
    assert listener_cidrs(stacks["internal-narrow"]) == {80: ["10.0.8.0/24"]}


def test_internal_load_balancer_group_says_it_is_internal(stacks: dict[str, Template]) -> None:
    (group,) = stacks["internal-alb"].resource("aws_lb")["security_groups"]
    assert stacks["internal-alb"].follow(group)["description"].startswith("Internal load balancer:")


# -- host routing -------------------------------------------------------------
# JWT validation on a listener rule is a hashicorp/aws 6.22 feature: the local
# provider mirror (5.100) validates host-routed stacks with JWT off
# (test_terraform_validate.py), so the JWT rule is checked here, through the
# typed 6.25 bindings and the synthesized JSON.
def test_host_routing_answers_other_hosts_with_a_fixed_404(stacks: dict[str, Template]) -> None:
    listener = stacks["host-http"].resource("aws_lb_listener", {"port": 80})
    (action,) = listener["default_action"]
    assert action["type"] == "fixed-response"
    assert action["fixed_response"]["status_code"] == "404"
    assert action["fixed_response"]["content_type"] == "application/json"
    assert json.loads(action["fixed_response"]["message_body"])["error"]["rule"] == "host"


def test_host_routing_forwards_only_the_gateway_host(stacks: dict[str, Template]) -> None:
    stack = stacks["host-http"]
    rule = stack.resource("aws_lb_listener_rule", {"condition": [{"host_header": {"values": [HOST]}}]})
    assert stack.follow(rule["listener_arn"]).get("port") == 80
    assert actions(rule, "action") == [
        {"type": "forward", "target_group_arn": stack.resource("aws_lb_target_group").ref("arn")}
    ]


def test_host_routing_with_https_routes_on_the_https_listener(stacks: dict[str, Template]) -> None:
    stack = stacks["host-https-jwt"]
    rule = stack.resource("aws_lb_listener_rule")
    assert stack.follow(rule["listener_arn"]).get("port") == 443
    (default,) = stack.resource("aws_lb_listener", {"port": 443})["default_action"]
    assert default["type"] == "fixed-response"


def test_host_routing_with_https_still_redirects_http(stacks: dict[str, Template]) -> None:
    (action,) = stacks["host-https-jwt"].resource("aws_lb_listener", {"port": 80})["default_action"]
    assert action["type"] == "redirect" and action["redirect"]["protocol"] == "HTTPS"


def test_host_routing_with_jwt_auth_validates_before_forwarding(stacks: dict[str, Template]) -> None:
    rule = stacks["host-https-jwt"].resource("aws_lb_listener_rule")
    assert [action["type"] for action in actions(rule, "action")] == ["jwt-validation", "forward"]


def test_gateway_url_uses_the_gateway_host(stacks: dict[str, Template]) -> None:
    assert stacks["host-http"].outputs["gateway_url"]["value"] == f"http://{HOST}"
    assert stacks["host-https-jwt"].outputs["gateway_url"]["value"] == f"https://{HOST}"


def test_without_host_routing_there_are_no_listener_rules(stacks: dict[str, Template]) -> None:
    assert stacks["public-alb"].count("aws_lb_listener_rule") == 0


# -- network load balancer -------------------------------------------------------
def test_network_load_balancer_has_a_security_group(stacks: dict[str, Template]) -> None:
    stack = stacks["nlb-tcp"]
    lb = stack.resource("aws_lb", {"load_balancer_type": "network"})
    (group,) = lb["security_groups"]
    assert stack.follow(group).type == "aws_security_group"


def test_network_load_balancer_balances_across_zones(stacks: dict[str, Template]) -> None:
    stacks["nlb-tcp"].resource("aws_lb", {"enable_cross_zone_load_balancing": True})


def test_network_load_balancer_is_a_new_resource_beside_the_albs_address(stacks: dict[str, Template]) -> None:
    # Switching type replaces the load balancer; the ALB's address stays the ALB's.
    assert stacks["nlb-tcp"].resource("aws_lb").name.startswith("edge_nlb_")
    assert stacks["public-alb"].resource("aws_lb").name.startswith("edge_alb_")


def test_internal_network_load_balancer_sits_in_the_private_subnets(stacks: dict[str, Template]) -> None:
    stack = stacks["nlb-tls"]
    assert sorted(stack.resource("aws_lb", {"internal": True})["subnets"]) == subnets(stack, "private")


def test_network_load_balancer_with_a_certificate_has_one_tls13_listener(stacks: dict[str, Template]) -> None:
    stack = stacks["nlb-tls"]
    tls = {"port": 443, "protocol": "TLS", "ssl_policy": TLS13_POLICY, "certificate_arn": CERTIFICATE_ARN}
    listener = stack.resource("aws_lb_listener", tls)
    assert stack.count("aws_lb_listener") == 1
    # No ALPN: the data plane speaks HTTP/1.1, so clients must not negotiate h2.
    assert "alpn_policy" not in listener.body


def test_network_load_balancer_without_a_certificate_has_one_tcp_listener_on_80(stacks: dict[str, Template]) -> None:
    (listener,) = stacks["nlb-tcp"].resources("aws_lb_listener")
    assert (listener["port"], listener["protocol"]) == (80, "TCP")


def test_network_load_balancer_listener_forwards_to_the_tcp_target_group(stacks: dict[str, Template]) -> None:
    stack = stacks["nlb-tls"]
    (action,) = stack.resource("aws_lb_listener")["default_action"]
    assert action["type"] == "forward"
    assert stack.follow(action["target_group_arn"])["protocol"] == "TCP"


def test_network_load_balancer_admits_clients_only_on_its_listener_port(stacks: dict[str, Template]) -> None:
    assert listener_cidrs(stacks["nlb-tls"]) == {443: [VPC_CIDR]}
    assert listener_cidrs(stacks["nlb-tcp"]) == {80: CLIENTS}


def test_network_target_group_reaches_the_data_plane_over_tcp(stacks: dict[str, Template]) -> None:
    stacks["nlb-tcp"].resource(
        "aws_lb_target_group",
        {"port": 8080, "protocol": "TCP", "target_type": "ip", "preserve_client_ip": "false"},
    )


def test_network_target_group_health_checks_the_data_plane_over_http(stacks: dict[str, Template]) -> None:
    health = {"protocol": "HTTP", "path": "/health", "port": "traffic-port", "matcher": "200"}
    stacks["nlb-tcp"].resource("aws_lb_target_group", {"protocol": "TCP", "health_check": health})


def test_tasks_admit_only_the_network_load_balancers_group(stacks: dict[str, Template]) -> None:
    stack = stacks["nlb-tcp"]
    (lb_group,) = stack.resource("aws_lb")["security_groups"]
    (task_group,) = stack.resource("aws_ecs_service")["network_configuration"]["security_groups"]
    rules = stack.resources("aws_vpc_security_group_ingress_rule", {"security_group_id": task_group})
    assert [(r.get("referenced_security_group_id"), r.get("cidr_ipv4"), r["from_port"]) for r in rules] == [
        (lb_group, None, 8080)
    ]


def test_service_behind_a_network_load_balancer_scales_on_cpu_alone(stacks: dict[str, Template]) -> None:
    policies = stacks["nlb-tcp"].resources("aws_appautoscaling_policy")
    metrics = [
        p["target_tracking_scaling_policy_configuration"]["predefined_metric_specification"]["predefined_metric_type"]
        for p in policies
    ]
    assert metrics == ["ECSServiceAverageCPUUtilization"]


def test_network_load_balancer_has_no_http_metric_alarms(stacks: dict[str, Template]) -> None:
    names = sorted(a["alarm_name"] for a in stacks["nlb-tcp"].resources("aws_cloudwatch_metric_alarm"))
    assert names == ["aigw-nlb-tcp-running-tasks-below-minimum", "aigw-nlb-tcp-unhealthy-targets"]


def test_unhealthy_target_alarm_reads_the_network_load_balancer_metrics(stacks: dict[str, Template]) -> None:
    stacks["nlb-tcp"].resource(
        "aws_cloudwatch_metric_alarm", {"namespace": "AWS/NetworkELB", "metric_name": "UnHealthyHostCount"}
    )


def test_dashboard_shows_network_load_balancer_metrics_only(stacks: dict[str, Template]) -> None:
    body = stacks["nlb-tcp"].resource("aws_cloudwatch_dashboard")["dashboard_body"]
    assert "AWS/NetworkELB" in body and "AWS/ApplicationELB" not in body


def test_network_load_balancer_builds_no_listener_rules_and_no_web_acl(stacks: dict[str, Template]) -> None:
    stack = stacks["nlb-tls"]
    assert stack.count("aws_lb_listener_rule") == 0 and stack.count("aws_wafv2_web_acl") == 0


def test_gateway_url_of_a_network_load_balancer_with_tls_is_https(stacks: dict[str, Template]) -> None:
    stack = stacks["nlb-tls"]
    assert stack.outputs["gateway_url"]["value"] == f"https://{stack.resource('aws_lb').ref('dns_name')}"


# -- access logs ------------------------------------------------------------------
def log_buckets(stack: Template) -> list[Resource]:
    """The access-log buckets the stack creates (aigw-<env>-lb-logs-…; the data plane has a bucket of its own)."""
    return [bucket for bucket in stack.resources("aws_s3_bucket") if "-lb-logs-" in bucket["bucket"]]


def log_bucket(stack: Template) -> Resource:
    (bucket,) = log_buckets(stack)
    return bucket


def for_bucket(stack: Template, resource_type: str) -> Resource:
    return stack.resource(resource_type, {"bucket": log_bucket(stack).ref("id")})


def bucket_policy(stack: Template) -> list[dict[str, Any]]:
    return list(for_bucket(stack, "aws_s3_bucket_policy").json("policy")["Statement"])


def statement(stack: Template, sid: str) -> dict[str, Any]:
    (found,) = [s for s in bucket_policy(stack) if s.get("Sid") == sid]
    return found


def test_without_access_logs_nothing_is_logged_and_no_bucket_is_built(stacks: dict[str, Template]) -> None:
    stack = stacks["public-alb"]
    assert "access_logs" not in stack.resource("aws_lb").body and log_buckets(stack) == []
    assert stack.outputs["access_logs_bucket"]["value"] == ""


def test_alb_logs_to_the_created_bucket(stacks: dict[str, Template]) -> None:
    stack = stacks["alb-logs"]
    assert stack.resource("aws_lb")["access_logs"] == {"bucket": log_bucket(stack).ref("bucket"), "enabled": True}


def test_load_balancer_waits_for_the_bucket_policy(stacks: dict[str, Template]) -> None:
    # ELB checks that it may write when access logging is turned on.
    stack = stacks["alb-logs"]
    assert stack.resource("aws_lb")["depends_on"] == [for_bucket(stack, "aws_s3_bucket_policy").address]


def test_created_bucket_is_named_after_environment_account_and_region(stacks: dict[str, Template]) -> None:
    name = log_bucket(stacks["alb-logs"])["bucket"]
    assert name == "aigw-alb-logs-lb-logs-${data.aws_caller_identity.caller.account_id}-us-east-1"


def test_access_logs_bucket_output_names_the_bucket(stacks: dict[str, Template]) -> None:
    stack = stacks["alb-logs"]
    assert stack.outputs["access_logs_bucket"]["value"] == log_bucket(stack).ref("bucket")


def test_alb_log_bucket_uses_sse_s3_the_only_encryption_alb_delivery_supports(stacks: dict[str, Template]) -> None:
    (rule,) = for_bucket(stacks["alb-logs"], "aws_s3_bucket_server_side_encryption_configuration")["rule"]
    assert rule == {"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}


@pytest.mark.parametrize("name", ["alb-logs", "nlb-logs"])
def test_created_bucket_blocks_public_access(stacks: dict[str, Template], name: str) -> None:
    block = for_bucket(stacks[name], "aws_s3_bucket_public_access_block")
    flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    assert all(block[flag] is True for flag in flags)


def test_created_bucket_disables_acls(stacks: dict[str, Template]) -> None:
    ownership = for_bucket(stacks["alb-logs"], "aws_s3_bucket_ownership_controls")
    assert ownership["rule"] == {"object_ownership": "BucketOwnerEnforced"}


def test_created_bucket_is_versioned(stacks: dict[str, Template]) -> None:
    versioning = for_bucket(stacks["alb-logs"], "aws_s3_bucket_versioning")
    assert versioning["versioning_configuration"] == {"status": "Enabled"}


def test_created_bucket_expires_logs_after_the_configured_days(stacks: dict[str, Template]) -> None:
    (rule,) = for_bucket(stacks["alb-logs"], "aws_s3_bucket_lifecycle_configuration")["rule"]
    assert (rule["status"], rule["expiration"], rule["noncurrent_version_expiration"]) == (
        "Enabled",
        [{"days": 30}],
        [{"noncurrent_days": 30}],
    )


def test_created_bucket_expires_logs_after_90_days_by_default(stacks: dict[str, Template]) -> None:
    (rule,) = for_bucket(stacks["nlb-logs"], "aws_s3_bucket_lifecycle_configuration")["rule"]
    assert rule["expiration"] == [{"days": 90}]


@pytest.mark.parametrize("name", ["alb-logs", "nlb-logs"])
def test_created_bucket_denies_requests_without_tls(stacks: dict[str, Template], name: str) -> None:
    deny = statement(stacks[name], "DenyInsecureTransport")
    assert (deny["Effect"], deny["Principal"], deny["Condition"]) == (
        "Deny",
        "*",
        {"Bool": {"aws:SecureTransport": "false"}},
    )


def test_alb_delivery_in_an_older_region_is_granted_to_the_regional_elb_account(stacks: dict[str, Template]) -> None:
    stack = stacks["alb-logs"]
    grant = statement(stack, "AlbLogDelivery")
    assert grant == {
        "Sid": "AlbLogDelivery",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:${data.aws_partition.partition.partition}:iam::127311923021:root"},
        "Action": "s3:PutObject",
        "Resource": f"{log_bucket(stack).ref('arn')}/AWSLogs/${{data.aws_caller_identity.caller.account_id}}/*",
    }


def test_alb_delivery_in_a_newer_region_is_granted_to_the_service_principal(stacks: dict[str, Template]) -> None:
    stack = stacks["alb-logs-eu"]
    grant = statement(stack, "AlbLogDelivery")
    assert grant["Principal"] == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}
    assert grant["Resource"].endswith("/gateway/alb/AWSLogs/${data.aws_caller_identity.caller.account_id}/*")


def test_alb_logs_carry_the_prefix(stacks: dict[str, Template]) -> None:
    assert stacks["alb-logs-eu"].resource("aws_lb")["access_logs"]["prefix"] == "gateway/alb"


def test_alb_logs_to_a_given_bucket_build_no_bucket(stacks: dict[str, Template]) -> None:
    stack = stacks["alb-given-bucket"]
    lb = stack.resource("aws_lb")
    assert lb["access_logs"] == {"bucket": "org-lb-logs", "prefix": "aigw", "enabled": True}
    assert "depends_on" not in lb.body and log_buckets(stack) == []
    assert stack.outputs["access_logs_bucket"]["value"] == "org-lb-logs"


def test_nlb_logs_to_the_created_bucket(stacks: dict[str, Template]) -> None:
    stack = stacks["nlb-logs"]
    assert stack.resource("aws_lb", {"load_balancer_type": "network"})["access_logs"]["bucket"] == log_bucket(
        stack
    ).ref("bucket")


def test_nlb_log_bucket_is_encrypted_with_its_own_customer_key(stacks: dict[str, Template]) -> None:
    stack = stacks["nlb-logs"]
    (rule,) = for_bucket(stack, "aws_s3_bucket_server_side_encryption_configuration")["rule"]
    by_default = rule["apply_server_side_encryption_by_default"]
    assert by_default["sse_algorithm"] == "aws:kms" and rule["bucket_key_enabled"] is True
    key = stack.follow(by_default["kms_master_key_id"])
    assert key["enable_key_rotation"] is True and key.address.startswith("aws_kms_key.edge_access-logs_key")


def test_nlb_log_key_lets_only_log_delivery_of_this_account_and_region_use_it(stacks: dict[str, Template]) -> None:
    stack = stacks["nlb-logs"]
    (rule,) = for_bucket(stack, "aws_s3_bucket_server_side_encryption_configuration")["rule"]
    key = stack.follow(rule["apply_server_side_encryption_by_default"]["kms_master_key_id"])
    (grant,) = [s for s in key.json("policy")["Statement"] if s["Sid"] == "LogDeliveryEncryptsAccessLogs"]
    assert grant["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
    assert grant["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "${data.aws_caller_identity.caller.account_id}"},
        "ArnLike": {
            "aws:SourceArn": "arn:${data.aws_partition.partition.partition}:logs:us-east-1:"
            "${data.aws_caller_identity.caller.account_id}:*"
        },
    }


def test_nlb_delivery_is_granted_to_the_log_delivery_service(stacks: dict[str, Template]) -> None:
    stack = stacks["nlb-logs"]
    acl_check, write = statement(stack, "NlbLogDeliveryAclCheck"), statement(stack, "NlbLogDeliveryWrite")
    assert (acl_check["Action"], acl_check["Resource"]) == ("s3:GetBucketAcl", log_bucket(stack).ref("arn"))
    assert write["Action"] == "s3:PutObject"
    assert write["Principal"] == acl_check["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
    assert write["Condition"]["StringEquals"]["s3:x-amz-acl"] == "bucket-owner-full-control"
    assert write["Condition"]["ArnLike"] == acl_check["Condition"]["ArnLike"]


@pytest.mark.parametrize(
    ("region", "principal"),
    [
        ("eu-west-1", {"AWS": "arn:aws:iam::156460612806:root"}),
        ("eu-central-1", {"AWS": "arn:aws:iam::054676820928:root"}),
        ("ap-southeast-3", {"AWS": "arn:aws:iam::589379963580:root"}),
        ("eu-central-2", {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}),
        ("il-central-1", {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}),
    ],
)
def test_alb_log_delivery_principal_per_region(region: str, principal: dict[str, str]) -> None:
    from modules.access_logs import alb_log_delivery_principal

    assert alb_log_delivery_principal(region, "aws") == principal
