"""Compute: the gateway's images and provider secrets, its task and its
service, wired through named grants. One construct per part:

- images.py: the ECR repositories (gateway, data plane) and their key;
- secrets.py: the provider-key secrets and their key;
- task.py: the execution and task roles and the task definition;
- service.py: the cluster, the tasks' security group, the service, autoscaling;
- exec_sessions.py: with ECS Exec on, the key of its sessions;
- hybrid.py: in hybrid mode, the enterprise gateway's task instead of task.py's,
  and the data service, the built-in Redis and the PrivateLink endpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_aws.ecs_service import EcsServiceServiceConnectConfiguration
from cdktf_cdktf_provider_aws.service_discovery_http_namespace import ServiceDiscoveryHttpNamespace
from constructs import Construct

from aigw.settings import AutoscalingPlan, GatewaySettings, HybridSettings
from aigw.task_entries import TaskEntry
from modules.compute.exec_sessions import ExecSessions
from modules.compute.hybrid import (
    HYBRID_HEALTH_CHECK_GRACE_SECONDS,
    HybridGatewayTask,
    HybridOutputs,
    HybridServices,
    cache_endpoint,
    connect_service,
)
from modules.compute.images import GatewayImages
from modules.compute.secrets import ProviderSecrets
from modules.compute.service import GatewayService
from modules.compute.task import GatewayTask
from modules.context import StackContext
from modules.data_plane import DataPlaneOutputs
from modules.deployment import TrafficShifting
from modules.edge import EdgeOutputs
from modules.grants import grant_ecs_exec_sessions
from modules.network import NetworkOutputs
from modules.observability import ObservabilityOutputs


@dataclass(frozen=True)
class ComputeOutputs:
    ecr_repository_url: str
    data_plane_ecr_repository_url: str
    cluster_name: str
    service_name: str
    provider_secret_arns: dict[str, str]
    # Secrets the task receives (the data plane's org keys); the execution role reads exactly these.
    injected_secret_arns: dict[str, str]
    task_security_group_id: str
    execution_role_arn: str
    task_role_arn: str
    # Hybrid mode's services and endpoints (None outside hybrid mode).
    hybrid: HybridOutputs | None = None


class Compute(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        gateway: GatewaySettings,
        autoscaling: AutoscalingPlan | None,
        data_plane: DataPlaneOutputs | None,
        hybrid: HybridSettings,
        entries: list[TaskEntry],
        store_endpoint: tuple[str, str] | None,
        context: StackContext,
        network: NetworkOutputs,
        edge: EdgeOutputs,
        observability: ObservabilityOutputs,
        traffic_shifting: TrafficShifting | None,
        wait_for: Sequence[ITerraformDependable],
    ) -> None:
        super().__init__(scope, construct_id)
        # Hybrid mode pulls Portkey's image and keeps provider credentials in its control
        # plane: no repositories, no provider secrets, and no keys for either.
        images: GatewayImages | None = None
        secrets: ProviderSecrets | None = None
        if not hybrid.enabled:
            images = GatewayImages(self, "images", context=context)
            secrets = ProviderSecrets(self, "secrets", providers=list(gateway.provider_keys), context=context)
        exec_sessions = None
        if gateway.enable_execute_command:
            exec_sessions = ExecSessions(
                self,
                "exec-sessions",
                context=context,
                log_group_name=observability.log_group_names["ecs_exec"],
                log_group_arn=observability.log_group_arns["ecs_exec"],
            ).outputs
        task: GatewayTask | HybridGatewayTask
        namespace: ServiceDiscoveryHttpNamespace | None = None
        cache = None
        if hybrid.enabled:
            store_host, store_port = store_endpoint or (None, None)
            cache = cache_endpoint(hybrid, store_host=store_host, store_port=store_port)
            task = HybridGatewayTask(
                self, "task", gateway=gateway, hybrid=hybrid, cache=cache, context=context,
                observability=observability,
                extra_task_statements=grant_ecs_exec_sessions(
                    log_group_arn=exec_sessions.log_group_arn, kms_key_arn=exec_sessions.kms_key_arn
                ) if exec_sessions else [],
            )  # fmt: skip
            # The gateway reaches the data service and the built-in Redis by name, and the data service it.
            namespace = ServiceDiscoveryHttpNamespace(
                self, "namespace", name=context.prefix, description="Hybrid mode's services (Service Connect)"
            )
        elif data_plane is None or images is None or secrets is None:
            raise ValueError("the OSS gateway runs behind the data plane; none was given")
        else:
            task = GatewayTask(
                self,
                "task",
                gateway=gateway,
                data_plane=data_plane,
                context=context,
                images=images,
                secrets=secrets,
                observability=observability,
                exec_sessions=exec_sessions,
            )
        service = GatewayService(
            self,
            "service",
            gateway=gateway,
            autoscaling=autoscaling,
            context=context,
            network=network,
            edge=edge,
            task_definition_arn=task.arn,
            exec_sessions=exec_sessions,
            traffic_shifting=traffic_shifting,
            depends_on=wait_for,
            entries=entries,
            service_connect=gateway_service_connect(entries, namespace.arn) if namespace else None,
            # The enterprise gateway syncs with the control plane before it answers (the guide's module: 150 s).
            health_check_grace_seconds=HYBRID_HEALTH_CHECK_GRACE_SECONDS if hybrid.enabled else 60,
        )
        hybrid_outputs = None
        if hybrid.enabled and cache is not None and namespace is not None:
            hybrid_services = HybridServices(
                self, "hybrid", hybrid=hybrid, cache=cache, context=context, network=network,
                observability=observability, cluster_arn=service.cluster_arn, namespace_arn=namespace.arn,
                gateway_security_group_id=service.security_group_id, load_balancer_arn=edge.load_balancer_arn,
            )  # fmt: skip
            # The gateway starts after the services it calls (their Service Connect names exist for it).
            service.wait_for(hybrid_services.services)
            hybrid_outputs = hybrid_services.outputs
        self.outputs = ComputeOutputs(
            ecr_repository_url=images.gateway.url if images else "",
            data_plane_ecr_repository_url=images.data_plane.url if images else "",
            cluster_name=service.cluster_name,
            service_name=service.service_name,
            provider_secret_arns=secrets.arns if secrets else {},
            injected_secret_arns=task.injected_secret_arns if isinstance(task, GatewayTask) else {},
            task_security_group_id=service.security_group_id,
            execution_role_arn=task.execution_role_arn,
            task_role_arn=task.task_role_arn,
            hybrid=hybrid_outputs,
        )


def gateway_service_connect(entries: list[TaskEntry], namespace_arn: str) -> EcsServiceServiceConnectConfiguration:
    """The enterprise gateway in the namespace: a client of the data service and the
    built-in Redis, and the data service's way back to it (`gateway:8787`)."""
    return EcsServiceServiceConnectConfiguration(
        enabled=True, namespace=namespace_arn, service=[connect_service(entry.role, entry.port) for entry in entries]
    )
