"""Compute: ECR, the provider-key secrets, the ECS cluster, the task (key
proxy, gateway and ADOT collector; see gateway_task.py), its two IAM roles,
the service and autoscaling."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.appautoscaling_policy import (
    AppautoscalingPolicy,
    AppautoscalingPolicyTargetTrackingScalingPolicyConfiguration,
    AppautoscalingPolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecification,
)
from cdktf_cdktf_provider_aws.appautoscaling_target import AppautoscalingTarget
from cdktf_cdktf_provider_aws.ecr_lifecycle_policy import EcrLifecyclePolicy
from cdktf_cdktf_provider_aws.ecr_repository import (
    EcrRepository,
    EcrRepositoryEncryptionConfiguration,
    EcrRepositoryImageScanningConfiguration,
)
from cdktf_cdktf_provider_aws.ecs_cluster import EcsCluster, EcsClusterSetting
from cdktf_cdktf_provider_aws.ecs_cluster_capacity_providers import (
    EcsClusterCapacityProviders,
    EcsClusterCapacityProvidersDefaultCapacityProviderStrategy,
)
from cdktf_cdktf_provider_aws.ecs_service import (
    EcsService,
    EcsServiceCapacityProviderStrategy,
    EcsServiceDeploymentCircuitBreaker,
    EcsServiceLoadBalancer,
    EcsServiceNetworkConfiguration,
)
from cdktf_cdktf_provider_aws.ecs_task_definition import EcsTaskDefinition, EcsTaskDefinitionRuntimePlatform
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from cdktf_cdktf_provider_aws.lb_listener import LbListener
from cdktf_cdktf_provider_aws.secretsmanager_secret import SecretsmanagerSecret
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from constructs import Construct

from aigw.gateway_task import PROXY_CONTAINER, task_containers
from aigw.key_proxy import PROXY_PORT, AzureTarget, ProxyConfig
from aigw.settings import EdgeSettings, GatewaySettings
from modules.context import StackContext
from modules.grants import (
    Statement,
    allow_from,
    grant_log_writes,
    grant_secrets_read,
    policy_document,
    service_trust_policy,
)
from modules.networking import NetworkingOutputs
from modules.observability import METRICS_NAMESPACE, ObservabilityOutputs

COLLECTOR_CONFIG = Path(__file__).resolve().parent.parent / "config" / "adot-collector.yaml"
IMAGES_KEPT = 10
# Actions AWS only authorizes on "*" (no resource-level permissions).
XRAY_ACTIONS = [
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
]


@dataclass(frozen=True)
class ComputeOutputs:
    ecr_repository_url: str
    cluster_name: str
    service_name: str
    provider_secret_arns: dict[str, str]
    # Secrets the task receives (the proxy's org keys); the execution role reads exactly these.
    injected_secret_arns: dict[str, str]
    task_security_group_id: str
    execution_role_arn: str
    task_role_arn: str


# cdktf's own unresolved references look like ${TfToken[TOKEN.12]}; every
# other "${" or "%{" is meant literally and must not reach Terraform's
# template engine (the collector config's ${env:VAR} placeholders, say).
_LITERAL_TEMPLATE = re.compile(r"([$%])\{(?!TfToken\[)")


def terraform_literal(text: str) -> str:
    """Escape template sequences so Terraform passes ``text`` through verbatim."""
    return _LITERAL_TEMPLATE.sub(r"\1\1{", text)


def proxy_config(gateway: GatewaySettings, edge: EdgeSettings) -> ProxyConfig:
    """The key proxy's rules for these settings: org keys only for
    authenticated (JWT) clients, otherwise clients bring their own."""
    azure = gateway.azure
    return ProxyConfig(
        org_keys=tuple(gateway.provider_keys) if edge.enable_jwt_auth else (),
        azure=AzureTarget(azure.resource_name, azure.deployment_id, azure.api_version) if azure else None,
        max_body_mib=gateway.max_request_body_mib,
    )


def collector_config() -> str:
    """The ADOT collector's configuration, passed verbatim to the sidecar."""
    return COLLECTOR_CONFIG.read_text(encoding="utf-8")


class Compute(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        gateway: GatewaySettings,
        edge: EdgeSettings,
        context: StackContext,
        networking: NetworkingOutputs,
        observability: ObservabilityOutputs,
        listeners: list[LbListener],
    ) -> None:
        super().__init__(scope, construct_id)
        prefix = context.prefix
        region = context.region

        ecr_key_arn = self._key("ecr-key", f"{prefix}: ECR image encryption", f"{prefix}-ecr", context).arn
        secrets_key_arn = self._key(
            "secrets-key", f"{prefix}: provider API key secrets", f"{prefix}-secrets", context
        ).arn

        repository = EcrRepository(
            self,
            "ecr",
            name=f"{prefix}/gateway",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=EcrRepositoryImageScanningConfiguration(scan_on_push=True),
            encryption_configuration=[EcrRepositoryEncryptionConfiguration(encryption_type="KMS", kms_key=ecr_key_arn)],
            force_delete=not context.deletion_protection,
        )
        EcrLifecyclePolicy(
            self,
            "ecr-lifecycle",
            repository=repository.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": f"Keep the last {IMAGES_KEPT} images",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": IMAGES_KEPT,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                }
            ),
        )

        # Values are set by operators (README); never in this code or its output.
        # Portkey 1.15.2 reads no provider key from its environment: with JWT
        # auth the key proxy injects them per request (aigw/gateway_task.py).
        secrets = {
            provider: SecretsmanagerSecret(
                self,
                f"secret-{provider}",
                name=f"{prefix}/providers/{provider}",
                description=f"{provider} API key for the gateway; value set by operators",
                kms_key_id=secrets_key_arn,
                recovery_window_in_days=30 if context.deletion_protection else 7,
            )
            for provider in gateway.provider_keys
        }
        secret_arns: dict[str, str] = {provider: secret.arn for provider, secret in secrets.items()}
        # Org keys only for authenticated (JWT) clients; otherwise clients bring their own.
        proxy = proxy_config(gateway, edge)
        injected = {name: secret_arns[name] for name in proxy.org_keys}

        cluster = EcsCluster(
            self,
            "cluster",
            name=f"{prefix}-cluster",
            setting=[EcsClusterSetting(name="containerInsights", value="enabled")],
        )
        cluster_name = cluster.name
        strategy = [
            EcsClusterCapacityProvidersDefaultCapacityProviderStrategy(capacity_provider="FARGATE", base=1, weight=1)
        ]
        if gateway.fargate_spot_weight:
            strategy.append(
                EcsClusterCapacityProvidersDefaultCapacityProviderStrategy(
                    capacity_provider="FARGATE_SPOT", weight=gateway.fargate_spot_weight
                )
            )
        EcsClusterCapacityProviders(
            self,
            "capacity-providers",
            cluster_name=cluster_name,
            capacity_providers=["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategy=strategy,
        )

        logs = observability.log_group_names
        log_arns = observability.log_group_arns
        ecs_source_arn = f"arn:{context.partition}:ecs:{region}:{context.account_id}:*"

        execution_statements: list[Statement] = [
            grant_log_writes([log_arns["access"], log_arns["gateway"], log_arns["collector"]], sid="ContainerLogs"),
        ]
        if injected:
            execution_statements += grant_secrets_read(
                list(injected.values()), kms_key_arn=secrets_key_arn, region=region
            )
        image = gateway.image
        if gateway.image_from_ecr:
            tag = gateway.image.rsplit("@", 1)[-1] if "@" in gateway.image else gateway.image.rsplit(":", 1)[-1]
            image = f"{repository.repository_url}{'@' if '@' in gateway.image else ':'}{tag}"
            execution_statements += [
                # GetAuthorizationToken has no resource-level permissions.
                {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                {
                    "Sid": "PullGatewayImage",
                    "Effect": "Allow",
                    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                    "Resource": repository.arn,
                },
                {
                    "Sid": "DecryptImageLayers",
                    "Effect": "Allow",
                    "Action": "kms:Decrypt",
                    "Resource": ecr_key_arn,
                    "Condition": {"StringEquals": {"kms:ViaService": f"ecr.{region}.amazonaws.com"}},
                },
            ]
        execution_role = IamRole(
            self,
            "execution-role",
            name=f"{prefix}-task-execution",
            description="ECS agent: pull images, write container logs, inject the proxy's provider keys",
            assume_role_policy=service_trust_policy(
                "ecs-tasks.amazonaws.com", account_id=context.account_id, source_arn=ecs_source_arn
            ),
        )
        IamRolePolicy(self, "execution-policy", role=execution_role.id, policy=policy_document(execution_statements))
        execution_role_arn = execution_role.arn

        task_role = IamRole(
            self,
            "task-role",
            name=f"{prefix}-task",
            description="Gateway and collector at run time: Bedrock, X-Ray, metrics and their own logs",
            assume_role_policy=service_trust_policy(
                "ecs-tasks.amazonaws.com", account_id=context.account_id, source_arn=ecs_source_arn
            ),
        )
        task_role_arn = task_role.arn
        IamRolePolicy(
            self,
            "task-policy",
            role=task_role.id,
            policy=policy_document(
                [
                    {
                        "Sid": "InvokeBedrockFoundationModels",
                        "Effect": "Allow",
                        "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                        "Resource": f"arn:{context.partition}:bedrock:{region}::foundation-model/*",
                    },
                    {"Sid": "XRayTraces", "Effect": "Allow", "Action": XRAY_ACTIONS, "Resource": "*"},
                    {
                        "Sid": "MetricsInOwnNamespace",
                        "Effect": "Allow",
                        "Action": "cloudwatch:PutMetricData",
                        "Resource": "*",
                        "Condition": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
                    },
                    grant_log_writes([log_arns["metrics"], log_arns["otlp_logs"]], sid="CollectorLogGroups"),
                ]
            ),
        )

        containers = task_containers(
            gateway_image=image,
            proxy_image=gateway.proxy_image,
            collector_image=gateway.collector_image,
            collector_config=collector_config(),
            region=region,
            log_groups=logs,
            secret_arns=injected,
            proxy=proxy,
            metrics_namespace=METRICS_NAMESPACE,
        )
        task = EcsTaskDefinition(
            self,
            "task",
            family=f"{prefix}-gateway",
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu=str(gateway.cpu),
            memory=str(gateway.memory),
            execution_role_arn=execution_role_arn,
            task_role_arn=task_role_arn,
            runtime_platform=EcsTaskDefinitionRuntimePlatform(
                operating_system_family="LINUX", cpu_architecture="X86_64"
            ),
            container_definitions=terraform_literal(json.dumps(containers)),
        )

        task_sg_id = SecurityGroup(
            self,
            "task-sg",
            name=f"{prefix}-tasks",
            description="Gateway tasks: the key proxy's port from the load balancer only",
            vpc_id=networking.vpc_id,
            tags={"Name": f"{prefix}-tasks"},
        ).id
        allow_from(
            self,
            "tasks-from-alb",
            source_security_group_id=networking.alb_security_group_id,
            target_security_group_id=task_sg_id,
            port=PROXY_PORT,
            description="load balancer to key proxy",
        )
        # Outbound: LLM providers over the NAT and AWS APIs over the endpoints, all HTTPS.
        VpcSecurityGroupEgressRule(
            self,
            "tasks-https-out",
            security_group_id=task_sg_id,
            cidr_ipv4="0.0.0.0/0",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            description="HTTPS to LLM providers and AWS APIs",
        )

        service_strategy = [EcsServiceCapacityProviderStrategy(capacity_provider="FARGATE", base=1, weight=1)]
        if gateway.fargate_spot_weight:
            service_strategy.append(
                EcsServiceCapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=gateway.fargate_spot_weight)
            )
        service = EcsService(
            self,
            "service",
            name=f"{prefix}-gateway",
            cluster=cluster.arn,
            task_definition=task.arn,
            desired_count=gateway.desired_count,
            capacity_provider_strategy=service_strategy,
            network_configuration=EcsServiceNetworkConfiguration(
                subnets=networking.private_subnet_ids, security_groups=[task_sg_id], assign_public_ip=False
            ),
            load_balancer=[
                EcsServiceLoadBalancer(
                    target_group_arn=networking.target_group_arn,
                    container_name=PROXY_CONTAINER,
                    container_port=PROXY_PORT,
                )
            ],
            deployment_circuit_breaker=EcsServiceDeploymentCircuitBreaker(enable=True, rollback=True),
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            health_check_grace_period_seconds=60,
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            wait_for_steady_state=False,
            # Autoscaling owns the task count after the first deploy.
            lifecycle=TerraformResourceLifecycle(ignore_changes=["desired_count"]),
            depends_on=list(listeners),
        )

        service_name = service.name
        scaling_target = AppautoscalingTarget(
            self,
            "scaling-target",
            service_namespace="ecs",
            resource_id=f"service/{cluster_name}/{service_name}",
            scalable_dimension="ecs:service:DesiredCount",
            min_capacity=gateway.min_capacity,
            max_capacity=gateway.max_capacity,
        )
        self._target_tracking(
            "scale-on-cpu",
            f"{prefix}-cpu",
            scaling_target,
            "ECSServiceAverageCPUUtilization",
            gateway.cpu_target_percent,
            None,
        )
        self._target_tracking(
            "scale-on-requests",
            f"{prefix}-requests",
            scaling_target,
            "ALBRequestCountPerTarget",
            gateway.requests_per_target,
            f"{networking.alb_arn_suffix}/{networking.target_group_arn_suffix}",
        )

        self.outputs = ComputeOutputs(
            ecr_repository_url=repository.repository_url,
            cluster_name=cluster_name,
            service_name=service_name,
            provider_secret_arns=secret_arns,
            injected_secret_arns=injected,
            task_security_group_id=task_sg_id,
            execution_role_arn=execution_role_arn,
            task_role_arn=task_role_arn,
        )

    def _key(self, construct_id: str, description: str, alias: str, context: StackContext) -> KmsKey:
        key = KmsKey(
            self,
            construct_id,
            description=description,
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=policy_document([context.key_admin_statement()]),
        )
        KmsAlias(self, f"{construct_id}-alias", name=f"alias/{alias}", target_key_id=key.key_id)
        return key

    def _target_tracking(
        self,
        construct_id: str,
        name: str,
        target: AppautoscalingTarget,
        metric: str,
        value: float,
        resource_label: str | None,
    ) -> None:
        AppautoscalingPolicy(
            self,
            construct_id,
            name=name,
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            resource_id=target.resource_id,
            scalable_dimension=target.scalable_dimension,
            target_tracking_scaling_policy_configuration=AppautoscalingPolicyTargetTrackingScalingPolicyConfiguration(
                target_value=value,
                scale_in_cooldown=120,
                scale_out_cooldown=60,
                predefined_metric_specification=AppautoscalingPolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecification(
                    predefined_metric_type=metric, resource_label=resource_label
                ),
            ),
        )
