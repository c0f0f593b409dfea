"""The gateway service: the ECS cluster and its capacity providers, the
tasks' security group (the data plane's port from the load balancer only,
HTTPS out), the service in the private subnets behind the target group
(rolling, or an ECS-native blue/green, canary or linear deployment over the
target groups and listener rules of modules/deployment.py), and
target-tracking autoscaling on CPU and, where configured, memory and
requests per task (behind an ALB only: an NLB publishes no request count)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cdktf import ITerraformDependable, TerraformResource, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws import appautoscaling_policy as scaling
from cdktf_cdktf_provider_aws.appautoscaling_policy import (
    AppautoscalingPolicy,
    AppautoscalingPolicyTargetTrackingScalingPolicyConfiguration,
)
from cdktf_cdktf_provider_aws.appautoscaling_target import AppautoscalingTarget
from cdktf_cdktf_provider_aws.ecs_cluster import (
    EcsCluster,
    EcsClusterConfiguration,
    EcsClusterConfigurationExecuteCommandConfiguration,
    EcsClusterConfigurationExecuteCommandConfigurationLogConfiguration,
    EcsClusterSetting,
)
from cdktf_cdktf_provider_aws.ecs_cluster_capacity_providers import (
    EcsClusterCapacityProviders,
    EcsClusterCapacityProvidersDefaultCapacityProviderStrategy,
)
from cdktf_cdktf_provider_aws.ecs_service import (
    EcsService,
    EcsServiceCapacityProviderStrategy,
    EcsServiceDeploymentCircuitBreaker,
    EcsServiceDeploymentConfiguration,
    EcsServiceDeploymentConfigurationCanaryConfiguration,
    EcsServiceDeploymentConfigurationLifecycleHook,
    EcsServiceDeploymentConfigurationLinearConfiguration,
    EcsServiceLoadBalancer,
    EcsServiceLoadBalancerAdvancedConfiguration,
    EcsServiceNetworkConfiguration,
    EcsServiceServiceConnectConfiguration,
)
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from constructs import Construct

from aigw.data_plane.contract import IN_FLIGHT_DIMENSION, STREAMS_IN_FLIGHT_METRIC
from aigw.settings import AutoscalingPlan, GatewaySettings
from aigw.task_entries import TaskEntry
from modules.compute.exec_sessions import ExecSessionLogging
from modules.context import StackContext
from modules.deployment import TrafficShifting
from modules.edge import EdgeOutputs
from modules.grants import allow_from, allow_https_egress
from modules.network import NetworkOutputs
from modules.observability import METRICS_NAMESPACE

# Immutable in EC2: changing it replaces the tasks' security group, which fails
# (or cuts traffic) while tasks use it. Kept as first deployed.
TASK_SECURITY_GROUP_DESCRIPTION = "Gateway tasks: the key proxy's port from the load balancer only"


@dataclass(frozen=True)
class CapacityShare:
    provider: str
    weight: int
    base: int | None = None


def capacity_strategy(fargate_spot_weight: int) -> list[CapacityShare]:
    """One task always on FARGATE (base 1, weight 1); FARGATE_SPOT takes
    ``fargate_spot_weight`` shares of the rest when it is above 0."""
    shares = [CapacityShare("FARGATE", weight=1, base=1)]
    if fargate_spot_weight:
        shares.append(CapacityShare("FARGATE_SPOT", weight=fargate_spot_weight))
    return shares


def exec_session_configuration(sessions: ExecSessionLogging) -> EcsClusterConfiguration:
    """Every ECS Exec session of the cluster logged to its log group (encrypted
    there with the logs key) and its data channel encrypted with its own key."""
    return EcsClusterConfiguration(
        execute_command_configuration=EcsClusterConfigurationExecuteCommandConfiguration(
            kms_key_id=sessions.kms_key_arn,
            logging="OVERRIDE",
            log_configuration=EcsClusterConfigurationExecuteCommandConfigurationLogConfiguration(
                cloud_watch_log_group_name=sessions.log_group_name, cloud_watch_encryption_enabled=True
            ),
        )
    )


def advanced_configuration(traffic: TrafficShifting) -> EcsServiceLoadBalancerAdvancedConfiguration:
    """The alternate target group and the listener rules ECS shifts traffic on, and the role it does it with."""
    return EcsServiceLoadBalancerAdvancedConfiguration(
        alternate_target_group_arn=traffic.alternate_target_group_arn,
        production_listener_rule=traffic.production_listener_rule_arn,
        test_listener_rule=traffic.test_listener_rule_arn,
        role_arn=traffic.infrastructure_role_arn,
    )


def deployment_configuration(traffic: TrafficShifting) -> EcsServiceDeploymentConfiguration:
    """The ECS-native strategy (hashicorp/aws >= 6.4; canary and linear >= 6.21).
    Nested blocks are built from the binding's struct classes: a plain dict
    inside a list of blocks would synthesize as an empty block."""
    plan = traffic.plan
    return EcsServiceDeploymentConfiguration(
        strategy=plan.strategy.upper(),
        # The provider types these minute counts as strings.
        bake_time_in_minutes=str(plan.bake_time_minutes),
        canary_configuration=EcsServiceDeploymentConfigurationCanaryConfiguration(
            canary_percent=plan.canary.percent, canary_bake_time_in_minutes=str(plan.canary.bake_time_minutes)
        )
        if plan.canary
        else None,
        linear_configuration=EcsServiceDeploymentConfigurationLinearConfiguration(
            step_percent=plan.linear.percent, step_bake_time_in_minutes=str(plan.linear.bake_time_minutes)
        )
        if plan.linear
        else None,
        lifecycle_hook=[
            EcsServiceDeploymentConfigurationLifecycleHook(
                hook_target_arn=hook.function_arn, lifecycle_stages=list(hook.stages), role_arn=hook.role_arn
            )
            for hook in traffic.lifecycle_hooks
        ]
        or None,
    )


class GatewayService(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        gateway: GatewaySettings,
        autoscaling: AutoscalingPlan | None,
        context: StackContext,
        network: NetworkOutputs,
        edge: EdgeOutputs,
        task_definition_arn: str,
        exec_sessions: ExecSessionLogging | None,
        traffic_shifting: TrafficShifting | None,
        depends_on: Sequence[ITerraformDependable],
        entries: list[TaskEntry],
        service_connect: EcsServiceServiceConnectConfiguration | None = None,
        health_check_grace_seconds: int = 60,
    ) -> None:
        """``entries``: the task's ports the load balancer reaches, each in the edge's
        target group of its role; ``service_connect``: hybrid mode's Service Connect."""
        super().__init__(scope, construct_id)
        prefix = context.prefix
        strategy = capacity_strategy(gateway.fargate_spot_weight)
        cluster = EcsCluster(
            self,
            "cluster",
            name=f"{prefix}-cluster",
            setting=[EcsClusterSetting(name="containerInsights", value="enabled")],
            configuration=exec_session_configuration(exec_sessions) if exec_sessions else None,
        )
        cluster_name = cluster.name
        EcsClusterCapacityProviders(
            self,
            "capacity-providers",
            cluster_name=cluster_name,
            capacity_providers=["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategy=[
                EcsClusterCapacityProvidersDefaultCapacityProviderStrategy(
                    capacity_provider=share.provider, weight=share.weight, base=share.base
                )
                for share in strategy
            ],
        )

        self.security_group_id = SecurityGroup(
            self,
            "task-sg",
            name=f"{prefix}-tasks",
            # A security group's description cannot change without replacing the group under the running
            # tasks, so it keeps the data plane's former name (TASK_SECURITY_GROUP_DESCRIPTION).
            description=TASK_SECURITY_GROUP_DESCRIPTION,
            vpc_id=network.vpc_id,
            tags={"Name": f"{prefix}-tasks"},
        ).id
        for index, entry in enumerate(entries):
            allow_from(
                self,
                # The first keeps the construct id the data plane's rule always had.
                "tasks-from-alb" if index == 0 else f"tasks-from-alb-{entry.role}",
                source_security_group_id=edge.load_balancer_security_group_id,
                target_security_group_id=self.security_group_id,
                port=entry.port,
                description=f"load balancer to {entry.reached}",
            )
        allow_https_egress(
            self, "tasks-https-out", security_group_id=self.security_group_id,
            description="HTTPS to LLM providers and AWS APIs",
        )  # fmt: skip

        service = EcsService(
            self,
            "service",
            name=f"{prefix}-gateway",
            cluster=cluster.arn,
            task_definition=task_definition_arn,
            desired_count=gateway.desired_count,
            capacity_provider_strategy=[
                EcsServiceCapacityProviderStrategy(
                    capacity_provider=share.provider, weight=share.weight, base=share.base
                )
                for share in strategy
            ],
            network_configuration=EcsServiceNetworkConfiguration(
                subnets=network.private_subnet_ids, security_groups=[self.security_group_id], assign_public_ip=False
            ),
            load_balancer=[
                EcsServiceLoadBalancer(
                    target_group_arn=edge.target_group_arns[entry.role],
                    container_name=entry.container,
                    container_port=entry.port,
                    # Traffic shifting is for the primary (validation refuses it with a second entry).
                    advanced_configuration=advanced_configuration(traffic_shifting)
                    if traffic_shifting and index == 0
                    else None,
                )
                for index, entry in enumerate(entries)
            ],
            service_connect_configuration=service_connect,
            # A rolling deployment is ECS's default: no deployment_configuration block at all.
            deployment_configuration=deployment_configuration(traffic_shifting) if traffic_shifting else None,
            # The circuit breaker watches rolling and blue/green-family deployments alike.
            deployment_circuit_breaker=EcsServiceDeploymentCircuitBreaker(enable=True, rollback=True),
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            health_check_grace_period_seconds=health_check_grace_seconds,
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            # True only where gateway.enable_execute_command says so (the gate reports it: AIGW-ECS1).
            enable_execute_command=True if exec_sessions else None,
            wait_for_steady_state=False,
            # With autoscaling on, it owns the task count after the first deploy.
            lifecycle=TerraformResourceLifecycle(ignore_changes=["desired_count"]) if autoscaling else None,
            depends_on=[*depends_on, *(traffic_shifting.listener_rules if traffic_shifting else ())],
        )
        self.service = service
        self.cluster_name = cluster_name
        self.cluster_arn = cluster.arn
        self.service_name = service.name
        if autoscaling:
            self._autoscaling(prefix, autoscaling, edge, context.environment)

    def wait_for(self, resources: Sequence[TerraformResource]) -> None:
        """Start the service only after these exist (written as the constructor writes `depends_on`)."""
        references = [f"{r.terraform_resource_type}.{r.friendly_unique_id}" for r in resources]
        self.service.depends_on = [*(self.service.depends_on or []), *references]

    def _autoscaling(self, prefix: str, plan: AutoscalingPlan, edge: EdgeOutputs, environment: str) -> None:
        """Target tracking between the plan's bounds: CPU always, memory,
        requests and streams in flight per task where the plan has a target
        for them."""
        target = AppautoscalingTarget(
            self,
            "scaling-target",
            service_namespace="ecs",
            resource_id=f"service/{self.cluster_name}/{self.service_name}",
            scalable_dimension="ecs:service:DesiredCount",
            min_capacity=plan.min_capacity,
            max_capacity=plan.max_capacity,
        )

        predefined_spec = (
            scaling.AppautoscalingPolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecification
        )
        customized_spec = (
            scaling.AppautoscalingPolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecification
        )
        dimension = (
            scaling.AppautoscalingPolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationDimensions
        )

        def predefined(metric: str, resource_label: str | None = None) -> dict[str, Any]:
            spec = predefined_spec(predefined_metric_type=metric, resource_label=resource_label)
            return {"predefined_metric_specification": spec}

        # The data plane's gauge of each task (StreamsInFlight), averaged over the tasks reporting.
        streams = {
            "customized_metric_specification": customized_spec(
                metric_name=STREAMS_IN_FLIGHT_METRIC,
                namespace=METRICS_NAMESPACE,
                statistic="Average",
                dimensions=[dimension(name=IN_FLIGHT_DIMENSION, value=environment)],
            )
        }
        policies: list[tuple[str, int | None, dict[str, Any]]] = [
            ("cpu", plan.cpu_target_percent, predefined("ECSServiceAverageCPUUtilization")),
            ("memory", plan.memory_target_percent, predefined("ECSServiceAverageMemoryUtilization")),
            ("requests", plan.requests_per_target, predefined(
                "ALBRequestCountPerTarget", f"{edge.load_balancer_arn_suffix}/{edge.target_group_arn_suffix}")),
            ("streams", plan.streams_per_task, streams),
        ]  # fmt: skip
        for name, value, metric in policies:
            if value is None:
                continue
            AppautoscalingPolicy(
                self,
                f"scale-on-{name}",
                name=f"{prefix}-{name}",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                resource_id=target.resource_id,
                scalable_dimension=target.scalable_dimension,
                target_tracking_scaling_policy_configuration=AppautoscalingPolicyTargetTrackingScalingPolicyConfiguration(
                    target_value=value,
                    scale_in_cooldown=plan.scale_in_cooldown_seconds,
                    scale_out_cooldown=plan.scale_out_cooldown_seconds,
                    **metric,
                ),
            )
