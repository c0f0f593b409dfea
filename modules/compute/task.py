"""The gateway task: its execution role (what the ECS agent does for it), its
task role (what its containers do at run time) and the task definition of the
three containers (aigw/data_plane/task.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cdktf_cdktf_provider_aws.ecs_task_definition import EcsTaskDefinition, EcsTaskDefinitionRuntimePlatform
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from constructs import Construct

from aigw.data_plane.task import DataPlaneTaskInputs, task_containers
from aigw.settings import GatewaySettings
from modules.compute.exec_sessions import ExecSessionLogging
from modules.compute.images import GatewayImages
from modules.compute.secrets import ProviderSecrets
from modules.context import StackContext
from modules.data_plane import DataPlaneOutputs
from modules.grants import (
    Statement,
    grant_bedrock_invoke,
    grant_ecr_pull,
    grant_ecs_exec_sessions,
    grant_log_writes,
    grant_metrics_in_namespace,
    grant_secrets_read,
    grant_xray_write,
    policy_document,
    service_trust_policy,
)
from modules.observability import METRICS_NAMESPACE, ObservabilityOutputs

COLLECTOR_CONFIG = Path(__file__).resolve().parent.parent.parent / "config" / "adot-collector.yaml"
# cdktf's own unresolved references look like ${TfToken[TOKEN.12]}; every
# other "${" or "%{" is meant literally and must not reach Terraform's
# template engine (the collector config's ${env:VAR} placeholders, say).
_LITERAL_TEMPLATE = re.compile(r"([$%])\{(?!TfToken\[)")


def terraform_literal(text: str) -> str:
    """Escape template sequences so Terraform passes ``text`` through verbatim."""
    return _LITERAL_TEMPLATE.sub(r"\1\1{", text)


def collector_config() -> str:
    """The ADOT collector's configuration, passed verbatim to the sidecar."""
    return COLLECTOR_CONFIG.read_text(encoding="utf-8")


class GatewayTask(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        gateway: GatewaySettings,
        data_plane: DataPlaneOutputs,
        context: StackContext,
        images: GatewayImages,
        secrets: ProviderSecrets,
        observability: ObservabilityOutputs,
        exec_sessions: ExecSessionLogging | None,
    ) -> None:
        super().__init__(scope, construct_id)
        prefix, region = context.prefix, context.region
        log_arns = observability.log_group_arns
        ecs_source_arn = f"arn:{context.partition}:ecs:{region}:{context.account_id}:*"
        # Org keys go to the data plane container only; the execution role reads exactly these.
        self.injected_secret_arns = {name: secrets.arns[name] for name in data_plane.config.org_keys}

        execution_statements: list[Statement] = [
            grant_log_writes([log_arns["access"], log_arns["gateway"], log_arns["collector"]], sid="ContainerLogs"),
            *data_plane.read_statements,
        ]
        if self.injected_secret_arns:
            execution_statements += grant_secrets_read(
                list(self.injected_secret_arns.values()), kms_key_arn=secrets.key_arn, region=region
            )
        gateway_image, data_plane_image = gateway.image, gateway.data_plane_image
        if gateway.image_from_ecr:
            gateway_image = images.gateway.same_image_here(gateway.image)
            data_plane_image = images.data_plane.same_image_here(gateway.data_plane_image)
            execution_statements += grant_ecr_pull(
                [images.gateway.arn, images.data_plane.arn], kms_key_arn=images.key_arn, region=region
            )
        execution_role = IamRole(
            self,
            "execution-role",
            name=f"{prefix}-task-execution",
            description="ECS agent: pull images, write container logs, read the data plane's bundle and keys",
            assume_role_policy=service_trust_policy(
                "ecs-tasks.amazonaws.com", account_id=context.account_id, source_arn=ecs_source_arn
            ),
        )
        IamRolePolicy(self, "execution-policy", role=execution_role.id, policy=policy_document(execution_statements))

        task_role = IamRole(
            self,
            "task-role",
            name=f"{prefix}-task",
            description="Gateway and collector at run time: Bedrock, X-Ray, metrics and their own logs",
            assume_role_policy=service_trust_policy(
                "ecs-tasks.amazonaws.com", account_id=context.account_id, source_arn=ecs_source_arn
            ),
        )
        task_statements: list[Statement] = [
            grant_bedrock_invoke(partition=context.partition, region=region),
            grant_xray_write(),
            grant_metrics_in_namespace(METRICS_NAMESPACE),
            grant_log_writes([log_arns["metrics"], log_arns["otlp_logs"]], sid="CollectorLogGroups"),
            *data_plane.task_statements,
        ]
        if exec_sessions is not None:
            task_statements += grant_ecs_exec_sessions(
                log_group_arn=exec_sessions.log_group_arn, kms_key_arn=exec_sessions.kms_key_arn
            )
        IamRolePolicy(self, "task-policy", role=task_role.id, policy=policy_document(task_statements))
        self.execution_role_arn = execution_role.arn
        self.task_role_arn = task_role.arn

        containers = task_containers(
            gateway_image=gateway_image,
            data_plane=DataPlaneTaskInputs(
                image=data_plane_image,
                bundle_object_arn=data_plane.bundle_object_arn,
                bundle_sha256=data_plane.bundle_sha256,
                runtime=data_plane.runtime,
                org_key_secret_arns=self.injected_secret_arns,
            ),
            collector_image=gateway.collector_image,
            collector_config=collector_config(),
            region=region,
            log_groups=observability.log_group_names,
            metrics_namespace=METRICS_NAMESPACE,
            cpu=gateway.cpu,
        )
        self.arn = EcsTaskDefinition(
            self,
            "task",
            family=f"{prefix}-gateway",
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu=str(gateway.cpu),
            memory=str(gateway.memory),
            execution_role_arn=self.execution_role_arn,
            task_role_arn=self.task_role_arn,
            runtime_platform=EcsTaskDefinitionRuntimePlatform(
                operating_system_family="LINUX", cpu_architecture="X86_64"
            ),
            container_definitions=terraform_literal(json.dumps(containers)),
        ).arn
