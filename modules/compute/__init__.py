"""Compute: the gateway's images and provider secrets, its task and its
service, wired through named grants. One construct per part:

- images.py: the ECR repositories (gateway, data plane) and their key;
- secrets.py: the provider-key secrets and their key;
- task.py: the execution and task roles and the task definition;
- service.py: the cluster, the tasks' security group, the service, autoscaling;
- exec_sessions.py: with ECS Exec on, the key of its sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cdktf import ITerraformDependable
from constructs import Construct

from aigw.settings import AutoscalingPlan, GatewaySettings
from modules.compute.exec_sessions import ExecSessions
from modules.compute.images import GatewayImages
from modules.compute.secrets import ProviderSecrets
from modules.compute.service import GatewayService
from modules.compute.task import GatewayTask
from modules.context import StackContext
from modules.data_plane import DataPlaneOutputs
from modules.deployment import TrafficShifting
from modules.edge import EdgeOutputs
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


class Compute(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        gateway: GatewaySettings,
        autoscaling: AutoscalingPlan | None,
        data_plane: DataPlaneOutputs,
        context: StackContext,
        network: NetworkOutputs,
        edge: EdgeOutputs,
        observability: ObservabilityOutputs,
        traffic_shifting: TrafficShifting | None,
        wait_for: Sequence[ITerraformDependable],
    ) -> None:
        super().__init__(scope, construct_id)
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
        )
        self.outputs = ComputeOutputs(
            ecr_repository_url=images.gateway.url,
            data_plane_ecr_repository_url=images.data_plane.url,
            cluster_name=service.cluster_name,
            service_name=service.service_name,
            provider_secret_arns=secrets.arns,
            injected_secret_arns=task.injected_secret_arns,
            task_security_group_id=service.security_group_id,
            execution_role_arn=task.execution_role_arn,
            task_role_arn=task.task_role_arn,
        )
