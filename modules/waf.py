"""The WAFv2 web ACL in front of an application load balancer (`edge.enable_waf`):
AWS's common, IP-reputation and known-bad-inputs rule groups, then a per-IP
rate rule, its association with the load balancer and its logging.

Built into the edge's scope rather than a construct of its own, so that its
resources keep the Terraform addresses they have always had (edge/web-acl...)."""

from __future__ import annotations

from typing import Any

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

from aigw.settings import EdgeSettings

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


def managed_rule_group(group: str, edge: EdgeSettings) -> dict[str, Any]:
    """The statement of an AWS managed rule group; in the common rule set,
    WAF_COUNTED_RULES and the environment's `edge.waf_counted_body_rules` only count."""
    statement: dict[str, Any] = {"name": group, "vendor_name": "AWS"}
    counted = (*WAF_COUNTED_RULES, *edge.waf_counted_body_rules) if group == COMMON_RULE_SET else ()
    if counted:
        statement["rule_action_override"] = [{"name": rule, "action_to_use": {"count": {}}} for rule in counted]
    return statement


def web_acl(scope: Construct, *, prefix: str, edge: EdgeSettings, alb_arn: str, log_group_arn: str) -> None:
    """The web ACL, associated with the ALB ``alb_arn`` and logging to ``log_group_arn``, built in ``scope``."""

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
        scope,
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
    Wafv2WebAclAssociation(scope, "web-acl-alb", resource_arn=alb_arn, web_acl_arn=acl_arn)
    Wafv2WebAclLoggingConfiguration(
        scope, "web-acl-logging", resource_arn=acl_arn, log_destination_configs=[log_group_arn]
    )
