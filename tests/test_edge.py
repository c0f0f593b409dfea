"""Edge: the internet-facing load balancer, its security group, target group
and listeners (JWT validation on HTTPS), and the WAF web ACL. Stacks come
from tests/scenarios.py."""

from __future__ import annotations

import pytest

from aigw.settings import EdgeSettings
from aigw.task_entries import task_entries
from modules.edge import forward_actions
from security.stackdoc import StackDoc
from tests.scenarios import CERTIFICATE_ARN, base, vary

TLS13_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
MANAGED_RULE_GROUPS = [
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesKnownBadInputsRuleSet",
]


def load_balancer_group(stack: StackDoc) -> str:
    (group,) = stack.resource("aws_lb")["security_groups"]
    return group


def default_actions(stack: StackDoc, port: int) -> list[dict]:
    listener = stack.resource("aws_lb_listener", {"port": port})
    return sorted(listener["default_action"], key=lambda action: action.get("order", 0))


def rate_rule(stack: StackDoc) -> dict:
    (rule,) = [r for r in stack.resource("aws_wafv2_web_acl")["rule"] if "rate_based_statement" in r["statement"]]
    return rule


# -- load balancer ------------------------------------------------------------
def test_load_balancer_is_an_internet_facing_alb(scenarios: dict[str, StackDoc]) -> None:
    scenarios["base"].resource("aws_lb", {"internal": False, "load_balancer_type": "application"})


def test_load_balancer_sits_in_the_public_subnets(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["nat-per-zone"]
    public = sorted(s.ref("id") for s in stack.resources("aws_subnet", {"tags": {"Tier": "public"}}))
    assert sorted(stack.resource("aws_lb")["subnets"]) == public


def test_load_balancer_drops_invalid_header_fields(scenarios: dict[str, StackDoc]) -> None:
    scenarios["base"].resource("aws_lb", {"drop_invalid_header_fields": True})


@pytest.mark.parametrize(("name", "protected"), [("base", True), ("tuned", False)])
def test_load_balancer_deletion_protection_follows_the_setting(
    scenarios: dict[str, StackDoc], name: str, protected: bool
) -> None:
    scenarios[name].resource("aws_lb", {"enable_deletion_protection": protected})


def test_load_balancer_admits_each_allowed_cidr_on_each_listener_port(scenarios: dict[str, StackDoc]) -> None:
    # GIVEN HTTPS (listeners on 80 and 443) and two client ranges
    stack = scenarios["https"]
    rules = stack.resources("aws_vpc_security_group_ingress_rule", {"security_group_id": load_balancer_group(stack)})
    # THEN one rule per range and port, each for that port alone
    assert sorted((r["cidr_ipv4"], r["ip_protocol"], r["from_port"], r["to_port"]) for r in rules) == sorted(
        (cidr, "tcp", port, port) for cidr in ("203.0.113.0/24", "198.51.100.0/24") for port in (80, 443)
    )


def test_load_balancer_without_a_certificate_admits_only_port_80(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    rules = stack.resources("aws_vpc_security_group_ingress_rule", {"security_group_id": load_balancer_group(stack)})
    assert {(r["from_port"], r["to_port"]) for r in rules} == {(80, 80)}


def test_load_balancer_reaches_only_the_tasks_on_the_data_plane_port(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    (task_group,) = stack.resource("aws_ecs_service")["network_configuration"]["security_groups"]
    egress = stack.resources("aws_vpc_security_group_egress_rule", {"security_group_id": load_balancer_group(stack)})
    assert [
        (r.get("referenced_security_group_id"), r["ip_protocol"], r["from_port"], r["to_port"]) for r in egress
    ] == [(task_group, "tcp", 8080, 8080)]


# -- target group -------------------------------------------------------------
def test_target_group_sends_traffic_to_the_data_plane_port_of_each_task(scenarios: dict[str, StackDoc]) -> None:
    scenarios["base"].resource("aws_lb_target_group", {"target_type": "ip", "port": 8080, "protocol": "HTTP"})


def test_target_group_health_check_passes_through_the_data_plane_to_the_gateway(scenarios: dict[str, StackDoc]) -> None:
    # /health is the data plane's route to the gateway's "/": a target is healthy only when both answer.
    scenarios["base"].resource(
        "aws_lb_target_group", {"health_check": {"enabled": True, "path": "/health", "matcher": "200"}}
    )


# -- listeners ----------------------------------------------------------------
def test_http_listener_forwards_to_the_target_group_without_a_certificate(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    (action,) = default_actions(stack, 80)
    assert action["type"] == "forward"
    assert action["target_group_arn"] == stack.resource("aws_lb_target_group").ref("arn")


def test_http_listener_redirects_to_https_with_a_certificate(scenarios: dict[str, StackDoc]) -> None:
    (action,) = default_actions(scenarios["https"], 80)
    assert action == {"type": "redirect", "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}}


def test_no_https_listener_without_a_certificate(scenarios: dict[str, StackDoc]) -> None:
    assert scenarios["base"].count("aws_lb_listener", {"port": 443}) == 0


def test_https_listener_serves_the_certificate_with_tls13(scenarios: dict[str, StackDoc]) -> None:
    scenarios["https"].resource(
        "aws_lb_listener",
        {"port": 443, "protocol": "HTTPS", "ssl_policy": TLS13_POLICY, "certificate_arn": CERTIFICATE_ARN},
    )


def test_https_listener_without_jwt_auth_forwards_directly(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["https"]
    (action,) = default_actions(stack, 443)
    assert action["type"] == "forward"
    assert action["target_group_arn"] == stack.resource("aws_lb_target_group").ref("arn")


def test_https_listener_with_jwt_auth_validates_the_token_before_forwarding(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["secure"]
    validate, forward = default_actions(stack, 443)
    assert (validate["type"], forward["type"]) == ("jwt-validation", "forward")
    assert forward["target_group_arn"] == stack.resource("aws_lb_target_group").ref("arn")


def test_jwt_auth_without_the_stacks_pool_is_an_error_not_a_listener_that_forwards_everyone() -> None:
    # Only hybrid mode has no pool, and it refuses JWT auth; were that rule lost, synth must fail, not open up.
    with pytest.raises(ValueError, match="Cognito pool"):
        forward_actions(EdgeSettings.model_validate({"enable_jwt_auth": True}), "target-group", None)


def test_jwt_validation_trusts_only_the_stacks_user_pool(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["secure"]
    validate, _ = default_actions(stack, 443)
    issuer = f"https://cognito-idp.us-east-1.amazonaws.com/{stack.resource('aws_cognito_user_pool').ref('id')}"
    assert (validate["jwt_validation"]["issuer"], validate["jwt_validation"]["jwks_endpoint"]) == (
        issuer,
        f"{issuer}/.well-known/jwks.json",
    )


def test_jwt_validation_requires_the_invoke_scope(scenarios: dict[str, StackDoc]) -> None:
    validate, _ = default_actions(scenarios["secure"], 443)
    assert validate["jwt_validation"]["additional_claim"][0] == (
        {"name": "scope", "format": "space-separated-values", "values": ["https://gateway.internal/invoke"]}
    )


@pytest.mark.parametrize("name", ["secure", "teams"])
def test_jwt_validation_admits_only_the_stacks_app_clients(scenarios: dict[str, StackDoc], name: str) -> None:
    # Another app client of the same pool (a token it gets for the invoke scope) is refused at the edge.
    stack = scenarios[name]
    validate, _ = default_actions(stack, 443)
    clients = sorted(client.ref("id") for client in stack.resources("aws_cognito_user_pool_client"))
    (claim,) = [c for c in validate["jwt_validation"]["additional_claim"] if c["name"] == "client_id"]
    assert claim["format"] == "single-string"
    assert sorted(claim["values"]) == clients and len(clients) == (3 if name == "teams" else 1)


# -- WAF ----------------------------------------------------------------------
def test_no_web_acl_without_waf(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    assert stack.count("aws_wafv2_web_acl") == stack.count("aws_wafv2_web_acl_association") == 0


def test_web_acl_guards_the_load_balancer(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["secure"]
    association = stack.resource("aws_wafv2_web_acl_association")
    assert association["web_acl_arn"] == stack.resource("aws_wafv2_web_acl", {"scope": "REGIONAL"}).ref("arn")
    assert association["resource_arn"] == stack.resource("aws_lb").ref("arn")


def test_web_acl_allows_what_no_rule_blocks(scenarios: dict[str, StackDoc]) -> None:
    scenarios["secure"].resource("aws_wafv2_web_acl", {"default_action": {"allow": {}}})


def test_web_acl_applies_the_aws_managed_rule_groups_first(scenarios: dict[str, StackDoc]) -> None:
    rules = sorted(scenarios["secure"].resource("aws_wafv2_web_acl")["rule"], key=lambda r: r["priority"])
    groups = [r["statement"]["managed_rule_group_statement"] for r in rules[:3]]
    assert [(g["name"], g["vendor_name"]) for g in groups] == [(group, "AWS") for group in MANAGED_RULE_GROUPS]
    assert all(r["override_action"] == {"none": {}} for r in rules[:3])


def test_web_acl_lets_a_long_prompt_through_and_keeps_every_other_managed_rule_blocking(
    scenarios: dict[str, StackDoc],
) -> None:
    # The common rule set's SizeRestrictions_BODY blocks any body over 8 KB: a chat
    # request with a long prompt. It only counts; the data plane limits body size.
    # Nothing else in any managed group is overridden.
    overrides = {
        rule["name"]: rule["statement"]["managed_rule_group_statement"].get("rule_action_override")
        for rule in scenarios["secure"].resource("aws_wafv2_web_acl")["rule"]
        if "managed_rule_group_statement" in rule["statement"]
    }
    assert overrides == {
        "AWSManagedRulesCommonRuleSet": [{"name": "SizeRestrictions_BODY", "action_to_use": {"count": {}}}],
        "AWSManagedRulesAmazonIpReputationList": None,
        "AWSManagedRulesKnownBadInputsRuleSet": None,
    }


def test_listed_body_rules_only_count_and_the_rest_of_the_common_rule_set_still_blocks(
    scenarios: dict[str, StackDoc],
) -> None:
    (common,) = [
        rule["statement"]["managed_rule_group_statement"]
        for rule in scenarios["waf-counted"].resource("aws_wafv2_web_acl")["rule"]
        if rule["name"] == "AWSManagedRulesCommonRuleSet"
    ]
    assert common["rule_action_override"] == [
        {"name": name, "action_to_use": {"count": {}}}
        for name in ("SizeRestrictions_BODY", "CrossSiteScripting_BODY", "GenericLFI_BODY")
    ]


def test_web_acl_blocks_a_client_ip_over_the_rate_limit(scenarios: dict[str, StackDoc]) -> None:
    rule = rate_rule(scenarios["tuned"])
    assert rule["action"] == {"block": {}}
    assert rule["statement"]["rate_based_statement"] == {
        "limit": 500,
        "aggregate_key_type": "IP",
        "evaluation_window_sec": 300,
    }


def test_web_acl_rules_have_distinct_priorities(scenarios: dict[str, StackDoc]) -> None:
    priorities = [r["priority"] for r in scenarios["secure"].resource("aws_wafv2_web_acl")["rule"]]
    assert len(set(priorities)) == len(priorities)


def test_web_acl_rules_publish_metrics(scenarios: dict[str, StackDoc]) -> None:
    for rule in scenarios["secure"].resource("aws_wafv2_web_acl")["rule"]:
        assert rule["visibility_config"]["cloudwatch_metrics_enabled"] is True, rule["name"]


def test_web_acl_logs_to_a_log_group_named_for_waf_delivery(scenarios: dict[str, StackDoc]) -> None:
    # WAF delivers only into log groups whose name starts with aws-waf-logs-.
    stack = scenarios["secure"]
    logging = stack.resource(
        "aws_wafv2_web_acl_logging_configuration", {"resource_arn": stack.resource("aws_wafv2_web_acl").ref("arn")}
    )
    (destination,) = logging["log_destination_configs"]
    assert stack.follow(destination)["name"].startswith("aws-waf-logs-")


def test_waf_without_a_waf_log_group_is_refused() -> None:
    # GIVEN WAF on, but no WAF log group from observability
    from cdktf import App, TerraformStack

    from modules.context import StackContext
    from modules.edge import Edge, JwtIssuer
    from modules.network import NetworkOutputs

    stack = TerraformStack(App(), "waf-without-log-group")
    network = NetworkOutputs(
        vpc_id="vpc-1", vpc_cidr="10.0.0.0/16", public_subnet_ids=["subnet-1", "subnet-2"],
        private_subnet_ids=["subnet-3", "subnet-4"], private_subnet_cidrs=["10.0.128.0/20", "10.0.144.0/20"],
    )  # fmt: skip
    context = StackContext(
        environment="waf", region="us-east-1", account_id="123456789012", partition="aws", deletion_protection=True
    )
    jwt = JwtIssuer(
        issuer="https://issuer", jwks_endpoint="https://issuer/jwks", required_scope="invoke", client_ids=["c1"]
    )
    # WHEN the edge is built THEN it refuses, naming the missing log group
    with pytest.raises(ValueError, match=r"^WAF is enabled but observability created no WAF log group$"):
        Edge(
            stack,
            "edge",
            edge=vary(base(), edge={"enable_waf": True}).edge,
            allowed_cidrs=["10.0.0.0/8"],
            context=context,
            network=network,
            jwt=jwt,
            waf_log_group_arn=None,
            drain_seconds=300,
            entries=task_entries(base()),
            hosts={},
        )
