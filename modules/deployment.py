"""Deployment: what ECS needs to shift traffic itself, for the blue_green,
canary and linear strategies (`gateway.deployment`): an alternate target
group beside the edge's, the production listener rule ECS moves traffic on
(and, for blue/green, a test listener rule for header-marked test traffic),
the ECS infrastructure role for load balancers limited to these, and the role
that lets ECS invoke the configured lifecycle hooks. Built from the edge's
outputs, so the edge itself does not change.

ECS rewrites the rules' forward weights on every deployment; Terraform
ignores changes to their actions, or it would undo a deployment."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.lb_listener import LbListener
from cdktf_cdktf_provider_aws.lb_listener_rule import (
    LbListenerRule,
    LbListenerRuleAction,
    LbListenerRuleActionForward,
    LbListenerRuleActionForwardTargetGroup,
    LbListenerRuleCondition,
    LbListenerRuleConditionHttpHeader,
    LbListenerRuleConditionPathPattern,
)
from cdktf_cdktf_provider_aws.lb_target_group import LbTargetGroup
from constructs import Construct

from aigw.settings import DeploymentPlan
from aigw.task_entries import TaskEntry
from modules.context import StackContext
from modules.edge import EdgeOutputs, entry_health_check
from modules.grants import grant_ecs_traffic_shifting, grant_lambda_invoke, policy_document, service_trust_policy

# Rules on the production listener, ahead of its default action. Test traffic
# is matched first; everything else falls to the production rule.
TEST_RULE_PRIORITY = 10
PRODUCTION_RULE_PRIORITY = 100
# Requests carrying this header reach the new revision during a blue/green
# deployment's test traffic stage (before any production traffic does).
TEST_TRAFFIC_HEADER = "X-Aigw-Test-Traffic"
TEST_TRAFFIC_VALUE = "green"


@dataclass(frozen=True)
class LifecycleHook:
    function_arn: str
    stages: tuple[str, ...]
    role_arn: str


@dataclass(frozen=True)
class TrafficShifting:
    """What the service needs for an ECS-native deployment with traffic shifting."""

    plan: DeploymentPlan
    alternate_target_group_arn: str
    alternate_target_group_arn_suffix: str
    production_listener_rule_arn: str
    test_listener_rule_arn: str | None
    infrastructure_role_arn: str
    lifecycle_hooks: list[LifecycleHook]
    # The service must wait for these (its target groups must be reachable through a rule).
    listener_rules: list[LbListenerRule]


def production_listener(edge: EdgeOutputs, https: bool) -> LbListener:
    """The listener that forwards client traffic: HTTPS where there is a certificate
    (HTTP then only redirects), else HTTP."""
    port = 443 if https else 80
    return next(
        listener for listener in edge.listeners if isinstance(listener, LbListener) and listener.port_input == port
    )


class DeploymentTraffic(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plan: DeploymentPlan,
        context: StackContext,
        edge: EdgeOutputs,
        listener: LbListener,
        vpc_id: str,
        entry: TaskEntry,
    ) -> None:
        """``entry``: the task's primary entry (aigw/task_entries.py), which the alternate group targets too."""
        super().__init__(scope, construct_id)
        prefix = context.prefix
        # The same target and health check as the edge's group (modules/edge.py).
        alternate = LbTargetGroup(
            self,
            "gateway-tg-alt",
            name=f"{prefix}-gw-alt",
            port=entry.port,
            protocol="HTTP",
            target_type="ip",
            vpc_id=vpc_id,
            deregistration_delay=edge.deregistration_delay,
            health_check=entry_health_check(entry),
        )
        alternate_arn, listener_arn = alternate.arn, listener.arn
        primary_arn = edge.target_group_arn
        every_path = LbListenerRuleCondition(path_pattern=LbListenerRuleConditionPathPattern(values=["/*"]))
        rules = [self._rule("production-rule", listener_arn, PRODUCTION_RULE_PRIORITY, primary_arn, alternate_arn,
                            every_path)]  # fmt: skip
        if plan.test_traffic:
            marked = LbListenerRuleCondition(
                http_header=LbListenerRuleConditionHttpHeader(
                    http_header_name=TEST_TRAFFIC_HEADER, values=[TEST_TRAFFIC_VALUE]
                )
            )
            rules.append(self._rule("test-rule", listener_arn, TEST_RULE_PRIORITY, primary_arn, alternate_arn, marked))
        rule_arns = [rule.arn for rule in rules]

        infrastructure_role = IamRole(
            self,
            "infrastructure-role",
            name=f"{prefix}-ecs-traffic",
            description="ECS shifts the gateway's traffic between its two target groups during deployments",
            assume_role_policy=service_trust_policy("ecs.amazonaws.com", account_id=context.account_id),
        )
        IamRolePolicy(
            self,
            "infrastructure-policy",
            role=infrastructure_role.id,
            policy=policy_document(
                grant_ecs_traffic_shifting(target_group_arns=[primary_arn, alternate_arn], listener_rule_arns=rule_arns)
            ),
        )

        hooks: list[LifecycleHook] = []
        if plan.lifecycle_hooks:
            hook_role = IamRole(
                self,
                "lifecycle-hook-role",
                name=f"{prefix}-deploy-hooks",
                description="ECS invokes the deployment's lifecycle hook functions",
                assume_role_policy=service_trust_policy("ecs.amazonaws.com", account_id=context.account_id),
            )
            functions = sorted({arn for arn, _ in plan.lifecycle_hooks.values()})
            IamRolePolicy(
                self,
                "lifecycle-hook-policy",
                role=hook_role.id,
                policy=policy_document([grant_lambda_invoke(functions, sid="InvokeLifecycleHooks")]),
            )
            hook_role_arn = hook_role.arn
            hooks = [LifecycleHook(arn, stages, hook_role_arn) for arn, stages in plan.lifecycle_hooks.values()]

        self.outputs = TrafficShifting(
            plan=plan,
            alternate_target_group_arn=alternate_arn,
            alternate_target_group_arn_suffix=alternate.arn_suffix,
            production_listener_rule_arn=rule_arns[0],
            test_listener_rule_arn=rule_arns[1] if plan.test_traffic else None,
            infrastructure_role_arn=infrastructure_role.arn,
            lifecycle_hooks=hooks,
            listener_rules=rules,
        )

    def _rule(
        self,
        construct_id: str,
        listener_arn: str,
        priority: int,
        primary_arn: str,
        alternate_arn: str,
        condition: LbListenerRuleCondition,
    ) -> LbListenerRule:
        """A rule forwarding to the primary target group (the alternate at weight 0)
        that ECS re-weights during each deployment."""
        return LbListenerRule(
            self,
            construct_id,
            listener_arn=listener_arn,
            priority=priority,
            condition=[condition],
            action=[
                LbListenerRuleAction(
                    type="forward",
                    forward=LbListenerRuleActionForward(
                        target_group=[
                            LbListenerRuleActionForwardTargetGroup(arn=primary_arn, weight=100),
                            LbListenerRuleActionForwardTargetGroup(arn=alternate_arn, weight=0),
                        ]
                    ),
                )
            ],
            # ECS owns the weights after the first deployment.
            lifecycle=TerraformResourceLifecycle(ignore_changes=["action"]),
        )
