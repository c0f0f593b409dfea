"""Hybrid mode's compute (``[hybrid]``; docs/hybrid.md): the enterprise
gateway's task, and beside its service the data service, the built-in Redis,
the rule that lets the tasks reach an existing ElastiCache, and the PrivateLink
endpoints to and from Portkey's control plane. Every IAM and security-group
edge is written by a named grant (modules/grants.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.appautoscaling_policy import (
    AppautoscalingPolicy,
    AppautoscalingPolicyTargetTrackingScalingPolicyConfiguration,
    AppautoscalingPolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecification,
)
from cdktf_cdktf_provider_aws.appautoscaling_target import AppautoscalingTarget
from cdktf_cdktf_provider_aws.ecs_service import (
    EcsService,
    EcsServiceDeploymentCircuitBreaker,
    EcsServiceNetworkConfiguration,
    EcsServiceServiceConnectConfiguration,
    EcsServiceServiceConnectConfigurationService,
    EcsServiceServiceConnectConfigurationServiceClientAlias,
)
from cdktf_cdktf_provider_aws.ecs_task_definition import EcsTaskDefinition, EcsTaskDefinitionRuntimePlatform
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_endpoint import VpcEndpoint
from cdktf_cdktf_provider_aws.vpc_endpoint_service import VpcEndpointService
from constructs import Construct

from aigw.hybrid_task import (
    DATA_SERVICE_ALIAS,
    REDIS_ALIAS,
    REDIS_PORT,
    CacheEndpoint,
    data_service_container,
    gateway_container,
    redis_container,
    secrets_read,
)
from aigw.settings import GatewaySettings, HybridSettings
from aigw.settings.hybrid import ENTERPRISE_GATEWAY_PORT
from modules.compute.task import terraform_literal
from modules.context import StackContext
from modules.grants import (
    LOG_STORE_DATA_SERVICE_ACTIONS,
    LOG_STORE_GATEWAY_ACTIONS,
    Statement,
    allow_from,
    allow_https_egress,
    grant_assume_role,
    grant_hybrid_secrets_read,
    grant_log_store,
    grant_log_writes,
    policy_document,
    service_trust_policy,
)
from modules.network import NetworkOutputs
from modules.observability import ObservabilityOutputs

HTTPS_PORT = 443
# How long ECS ignores the load balancer's health checks of a new task (Portkey's module: 150 s).
HYBRID_HEALTH_CHECK_GRACE_SECONDS = 150


def cache_endpoint(hybrid: HybridSettings, *, store_host: str | None, store_port: str | None) -> CacheEndpoint:
    """Where both services find Redis, by ``hybrid.cache.backend``."""
    cache = hybrid.cache
    if cache.backend == "builtin":
        return CacheEndpoint(f"redis://{REDIS_ALIAS}:{REDIS_PORT}", tls=False, mode="standalone", store="redis")
    if cache.backend == "elasticache":
        return CacheEndpoint(cache.endpoint or "", tls=cache.tls, mode=cache.mode, store="aws-elastic-cache")
    if store_host is None or store_port is None:
        raise ValueError("hybrid.cache.backend = 'serverless' without the shared store")
    # ElastiCache Serverless speaks TLS only.
    return CacheEndpoint(f"{store_host}:{store_port}", tls=True, mode=cache.mode, store="aws-elastic-cache")


def connect_service(name: str, port: int) -> EcsServiceServiceConnectConfigurationService:
    """A port of a service in the namespace: named (the port mapping's name), found and called as `name:port`."""
    return EcsServiceServiceConnectConfigurationService(
        port_name=name,
        discovery_name=name,
        client_alias=EcsServiceServiceConnectConfigurationServiceClientAlias(port=port, dns_name=name),
    )


def _service_roles(
    scope: Construct,
    name: str,
    *,
    context: StackContext,
    execution_statements: list[Statement],
    task_statements: list[Statement],
    what: str,
) -> tuple[IamRole, IamRole]:
    """An execution role (the ECS agent: pull, logs, secrets) and a task role (the service at run time)."""
    prefix = context.prefix
    trust = service_trust_policy(
        "ecs-tasks.amazonaws.com",
        account_id=context.account_id,
        source_arn=f"arn:{context.partition}:ecs:{context.region}:{context.account_id}:*",
    )
    execution = IamRole(scope, f"{name}-execution-role", name=f"{prefix}-{name}-execution",
                        description=f"ECS agent for the {what}: pull with the registry credentials, logs, secrets",
                        assume_role_policy=trust)  # fmt: skip
    IamRolePolicy(scope, f"{name}-execution-policy", role=execution.id, policy=policy_document(execution_statements))
    task = IamRole(scope, f"{name}-task-role", name=f"{prefix}-{name}-task",
                   description=f"The {what} at run time", assume_role_policy=trust)  # fmt: skip
    if task_statements:
        IamRolePolicy(scope, f"{name}-task-policy", role=task.id, policy=policy_document(task_statements))
    return execution, task


def _task_definition(
    scope: Construct, name: str, *, family: str, cpu: int, memory: int, execution: IamRole, task: IamRole,
    containers: list[dict[str, Any]],
) -> str:  # fmt: skip
    return EcsTaskDefinition(
        scope,
        name,
        family=family,
        requires_compatibilities=["FARGATE"],
        network_mode="awsvpc",
        cpu=str(cpu),
        memory=str(memory),
        execution_role_arn=execution.arn,
        task_role_arn=task.arn,
        runtime_platform=EcsTaskDefinitionRuntimePlatform(operating_system_family="LINUX", cpu_architecture="X86_64"),
        # A variable's value is the operator's text: no Terraform template may hide in it.
        container_definitions=terraform_literal(json.dumps(containers)),
    ).arn


class HybridGatewayTask(Construct):
    """The enterprise gateway's roles and task definition (one container:
    no data plane in front, no collector, which only the data plane feeds)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        gateway: GatewaySettings,
        hybrid: HybridSettings,
        cache: CacheEndpoint,
        context: StackContext,
        observability: ObservabilityOutputs,
        extra_task_statements: list[Statement],
    ) -> None:
        super().__init__(scope, construct_id)
        region = context.region
        container = gateway_container(
            hybrid, gateway.server_mode, cache, region=region, log_group=observability.log_group_names["gateway"]
        )
        # The execution role reads exactly what the container is started with.
        execution_statements = [
            grant_log_writes([observability.log_group_arns["gateway"]], sid="ContainerLogs"),
            *grant_hybrid_secrets_read(secrets_read([container]), kms_key_arn=hybrid.secrets_kms_key_arn,
                                       region=region),
        ]  # fmt: skip
        task_statements = list(extra_task_statements)
        if hybrid.log_store is not None:
            store = hybrid.log_store
            task_statements += grant_log_store(
                store.buckets, LOG_STORE_GATEWAY_ACTIONS, partition=context.partition,
                kms_key_arn=store.kms_key_arn, bucket_region=store.region or region,
            )  # fmt: skip
        if hybrid.bedrock.cross_account_role_arn:
            task_statements.append(grant_assume_role(hybrid.bedrock.cross_account_role_arn))
        execution, task = _service_roles(
            self, "gateway", context=context, execution_statements=execution_statements,
            task_statements=task_statements, what="enterprise gateway",
        )  # fmt: skip
        for index, policy_arn in enumerate(hybrid.bedrock.policy_arns):
            IamRolePolicyAttachment(self, f"bedrock-policy-{index}", role=task.name, policy_arn=policy_arn)
        self.arn = _task_definition(
            self, "task", family=f"{context.prefix}-gateway", cpu=gateway.cpu, memory=gateway.memory,
            execution=execution, task=task, containers=[container],
        )  # fmt: skip
        self.execution_role_arn = execution.arn
        self.task_role_arn = task.arn
        self.task_role_name = task.name


@dataclass(frozen=True)
class HybridOutputs:
    # The endpoint service the control plane connects to (inbound PrivateLink), else empty.
    endpoint_service_name: str
    # The interface endpoint to the control plane (outbound PrivateLink), else empty.
    control_plane_endpoint_id: str
    data_service_name: str
    # The data service's tasks' security group (empty without the data service).
    data_service_security_group_id: str


class HybridServices(Construct):
    """What runs beside the enterprise gateway's service, each service with its
    own roles and security group, reached only through Service Connect."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        hybrid: HybridSettings,
        cache: CacheEndpoint,
        context: StackContext,
        network: NetworkOutputs,
        observability: ObservabilityOutputs,
        cluster_arn: str,
        namespace_arn: str | None,
        gateway_security_group_id: str,
        load_balancer_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self._context, self._network, self._observability = context, network, observability
        self._cluster_arn, self._namespace_arn = cluster_arn, namespace_arn
        # The services the gateway's calls go to, Redis first: a task gets the Service Connect
        # endpoints that exist when it starts, so each caller starts after what it calls.
        self.services: list[EcsService] = []
        redis_group = self._redis(hybrid) if hybrid.cache.backend == "builtin" else None
        data_service_name = data_service_group = ""
        if hybrid.data_service.enabled:
            data_service_name, data_service_group = self._data_service(hybrid, cache)
            allow_from(self, "gateway-to-data-service", source_security_group_id=gateway_security_group_id,
                       target_security_group_id=data_service_group, port=hybrid.data_service.port,
                       description="enterprise gateway to data service")  # fmt: skip
            allow_from(self, "data-service-to-gateway", source_security_group_id=data_service_group,
                       target_security_group_id=gateway_security_group_id, port=ENTERPRISE_GATEWAY_PORT,
                       description="data service to enterprise gateway")  # fmt: skip
        # The hybrid tasks that call Redis and the control plane, by name.
        clients = {"gateway": gateway_security_group_id}
        if data_service_group:
            clients["data-service"] = data_service_group
        if redis_group is not None:
            for name, client in clients.items():
                allow_from(self, f"redis-from-{name}", source_security_group_id=client,
                           target_security_group_id=redis_group, port=REDIS_PORT,
                           description="Redis (built-in) from the hybrid tasks")  # fmt: skip
        elif hybrid.cache.backend == "elasticache":
            for name, client in clients.items():
                allow_from(self, f"elasticache-from-{name}", source_security_group_id=client,
                           target_security_group_id=hybrid.cache.security_group_id or "",
                           port=hybrid.cache.port, description="ElastiCache from the hybrid tasks")  # fmt: skip
        endpoint_id = ""
        control = hybrid.control_plane
        if control.outbound == "privatelink":
            endpoint_id = self._control_plane_endpoint(control.privatelink_service_name or "", clients)
        service_name = ""
        if control.inbound == "privatelink":
            service_name = VpcEndpointService(
                self,
                "control-plane-inbound",
                acceptance_required=True,
                network_load_balancer_arns=[load_balancer_arn],
                allowed_principals=list(control.allowed_principals),
                tags={"Name": f"{context.prefix}-control-plane-inbound"},
            ).service_name
        self.outputs = HybridOutputs(
            endpoint_service_name=service_name,
            control_plane_endpoint_id=endpoint_id,
            data_service_name=data_service_name,
            data_service_security_group_id=data_service_group,
        )

    def _security_group(self, name: str, description: str) -> str:
        prefix = self._context.prefix
        return SecurityGroup(self, f"{name}-sg", name=f"{prefix}-{name}", description=description,
                             vpc_id=self._network.vpc_id, tags={"Name": f"{prefix}-{name}"}).id  # fmt: skip

    def _service(
        self, name: str, *, task_definition_arn: str, desired_count: int, security_group_id: str,
        connect: EcsServiceServiceConnectConfigurationService, circuit_breaker: bool, scaled: bool,
        after: list[EcsService] | None = None,
    ) -> EcsService:  # fmt: skip
        return EcsService(
            self,
            f"{name}-service",
            name=f"{self._context.prefix}-{name}",
            cluster=self._cluster_arn,
            task_definition=task_definition_arn,
            desired_count=desired_count,
            launch_type="FARGATE",
            network_configuration=EcsServiceNetworkConfiguration(
                subnets=self._network.private_subnet_ids, security_groups=[security_group_id], assign_public_ip=False
            ),
            service_connect_configuration=EcsServiceServiceConnectConfiguration(
                enabled=True, namespace=self._namespace_arn, service=[connect]
            ),
            deployment_circuit_breaker=EcsServiceDeploymentCircuitBreaker(enable=circuit_breaker,
                                                                          rollback=circuit_breaker),
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            wait_for_steady_state=False,
            lifecycle={"ignore_changes": ["desired_count"]} if scaled else None,
            depends_on=after or None,
        )  # fmt: skip

    def _data_service(self, hybrid: HybridSettings, cache: CacheEndpoint) -> tuple[str, str]:
        context, settings = self._context, hybrid.data_service
        region = context.region
        container = data_service_container(
            hybrid, cache, region=region, log_group=self._observability.log_group_names["gateway"]
        )
        store = hybrid.log_store
        if store is None:
            raise ValueError("the data service needs a log store; validation should have refused this")
        execution, task = _service_roles(
            self, "data-service", context=context,
            execution_statements=[
                grant_log_writes([self._observability.log_group_arns["gateway"]], sid="ContainerLogs"),
                *grant_hybrid_secrets_read(secrets_read([container]), kms_key_arn=hybrid.secrets_kms_key_arn,
                                           region=region),
            ],
            task_statements=grant_log_store(
                store.buckets, LOG_STORE_DATA_SERVICE_ACTIONS, partition=context.partition,
                kms_key_arn=store.kms_key_arn, bucket_region=store.region or region,
            ),
            what="data service",
        )  # fmt: skip
        task_definition = _task_definition(
            self, "data-service-task", family=f"{context.prefix}-data-service", cpu=settings.cpu,
            memory=settings.memory, execution=execution, task=task, containers=[container],
        )  # fmt: skip
        group = self._security_group("data-service", "Portkey data service: its port from the gateway tasks only")
        allow_https_egress(self, "data-service-https-out", security_group_id=group,
                           description="HTTPS to the control plane, S3 and AWS APIs")  # fmt: skip
        connect = connect_service(DATA_SERVICE_ALIAS, settings.port)
        service = self._service(
            "data-service", task_definition_arn=task_definition, desired_count=settings.desired_count,
            security_group_id=group, connect=connect, circuit_breaker=settings.enable_circuit_breaker,
            scaled=settings.enable_autoscaling, after=list(self.services),
        )  # fmt: skip
        self.services.append(service)
        if settings.enable_autoscaling:
            target = AppautoscalingTarget(
                self,
                "data-service-scaling-target",
                service_namespace="ecs",
                resource_id=f"service/{context.prefix}-cluster/{service.name}",
                scalable_dimension="ecs:service:DesiredCount",
                min_capacity=settings.min_capacity,
                max_capacity=settings.max_capacity,
            )
            AppautoscalingPolicy(
                self,
                "data-service-scale-on-cpu",
                name=f"{context.prefix}-data-service-cpu",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                resource_id=target.resource_id,
                scalable_dimension=target.scalable_dimension,
                target_tracking_scaling_policy_configuration=AppautoscalingPolicyTargetTrackingScalingPolicyConfiguration(
                    target_value=settings.cpu_target_percent,
                    predefined_metric_specification=AppautoscalingPolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecification(
                        predefined_metric_type="ECSServiceAverageCPUUtilization"
                    ),
                ),
            )
        return service.name, group

    def _redis(self, hybrid: HybridSettings) -> str:
        context, cache = self._context, hybrid.cache
        execution, task = _service_roles(
            self, "redis", context=context,
            execution_statements=[
                grant_log_writes([self._observability.log_group_arns["gateway"]], sid="ContainerLogs")
            ],
            task_statements=[], what="built-in Redis",
        )  # fmt: skip
        container = redis_container(hybrid, region=context.region,
                                    log_group=self._observability.log_group_names["gateway"])  # fmt: skip
        task_definition = _task_definition(
            self, "redis-task", family=f"{context.prefix}-redis", cpu=cache.cpu, memory=cache.memory,
            execution=execution, task=task, containers=[container],
        )  # fmt: skip
        group = self._security_group("redis", "Built-in Redis: 6379 from the hybrid tasks only")
        # Fargate pulls the image, writes its logs and runs the Service Connect agent through the task's interface.
        allow_https_egress(self, "redis-https-out", security_group_id=group,
                           description="HTTPS to the image registry, CloudWatch Logs and ECS")  # fmt: skip
        connect = connect_service(REDIS_ALIAS, REDIS_PORT)
        self.services.append(self._service(
            "redis", task_definition_arn=task_definition, desired_count=1, security_group_id=group,
            connect=connect, circuit_breaker=True, scaled=False,
        ))  # fmt: skip
        return group

    def _control_plane_endpoint(self, service_name: str, clients: dict[str, str]) -> str:
        """An interface endpoint to Portkey's control plane, private DNS on, 443 from the hybrid tasks only."""
        group = self._security_group("control-plane-endpoint", "Portkey control plane endpoint: 443 from the tasks")
        for name, client in clients.items():
            allow_from(self, f"control-plane-from-{name}",
                       source_security_group_id=client, target_security_group_id=group, port=HTTPS_PORT,
                       description="Portkey control plane over PrivateLink")  # fmt: skip
        return VpcEndpoint(
            self,
            "control-plane-endpoint",
            vpc_id=self._network.vpc_id,
            service_name=service_name,
            vpc_endpoint_type="Interface",
            private_dns_enabled=True,
            subnet_ids=self._network.private_subnet_ids,
            security_group_ids=[group],
            tags={"Name": f"{self._context.prefix}-control-plane"},
        ).id
