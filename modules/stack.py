"""The stack of one environment: provider, state backend, and the modules in
the admin guide's dependency order, wired only through their typed outputs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cdktf import App, S3Backend, S3BackendEndpointConfig, TerraformOutput, TerraformStack
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags, AwsProviderEndpoints
from constructs import Construct

from aigw.environments import Environment
from modules.auth import Auth
from modules.compute import Compute
from modules.context import PROJECT, StackContext
from modules.networking import Networking
from modules.observability import MonitoredService, Monitoring, Observability
from modules.outputs import SENSITIVE_OUTPUTS, STACK_OUTPUTS

# Every service the stack calls, pointed at the emulator when one is configured.
EMULATED_SERVICES: tuple[str, ...] = (
    "appautoscaling", "cloudwatch", "cognitoidp", "dynamodb", "ec2", "ecr", "ecs", "elbv2", "iam",
    "kms", "logs", "s3", "secretsmanager", "sns", "sts", "wafv2",
)  # fmt: skip


def emulator_provider_arguments(endpoint: str) -> dict[str, Any]:
    """AWS provider arguments for an emulator: its endpoint for every service
    (the account id comes from its STS), path-style S3, no instance metadata,
    and one retry, so a call the emulator does not implement fails fast
    instead of backing off for many minutes. Credentials stay in the environment."""
    return {
        "endpoints": [AwsProviderEndpoints(**dict.fromkeys(EMULATED_SERVICES, endpoint))],
        "max_retries": 1,
        "skip_credentials_validation": True,
        "skip_metadata_api_check": "true",
        "s3_use_path_style": True,
    }


def emulator_backend_arguments(endpoint: str) -> dict[str, Any]:
    return {
        "endpoints": S3BackendEndpointConfig(s3=endpoint, dynamodb=endpoint, iam=endpoint, sts=endpoint),
        "use_path_style": True,
        "skip_credentials_validation": True,
        "skip_requesting_account_id": True,
        "skip_metadata_api_check": True,
        "skip_region_validation": True,
    }


class GatewayStack(TerraformStack):
    def __init__(self, scope: Construct, environment: Environment) -> None:
        super().__init__(scope, environment.stack_name)
        settings = environment.settings

        emulator = settings.emulator.endpoint
        AwsProvider(
            self,
            "aws",
            region=settings.region,
            **(emulator_provider_arguments(emulator) if emulator else {}),
            default_tags=[
                AwsProviderDefaultTags(
                    tags={
                        **settings.tags,
                        "Project": PROJECT,
                        "Environment": environment.name,
                        "ManagedBy": "cdktf",
                    }
                )
            ],
        )
        # The prebuilt bindings pin the exact provider they were generated from;
        # the environment decides which versions Terraform may install.
        self.add_override("terraform.required_providers.aws.version", settings.aws_provider_version)
        S3Backend(
            self,
            bucket=settings.backend.bucket,
            key=settings.backend.key,
            region=settings.backend.region,
            dynamodb_table=settings.backend.dynamodb_table,
            encrypt=True,
            **(emulator_backend_arguments(emulator) if emulator else {}),
        )

        context = StackContext(
            environment=environment.name,
            region=settings.region,
            account_id=DataAwsCallerIdentity(self, "caller").account_id,
            partition=DataAwsPartition(self, "partition").partition,
            waf_enabled=settings.edge.enable_waf,
            deletion_protection=settings.deletion_protection,
        )
        observability = Observability(self, "observability", settings=settings.observability, context=context).outputs
        networking = Networking(
            self,
            "networking",
            network=settings.network,
            edge=settings.edge,
            context=context,
            availability_zones=settings.availability_zones,
            waf_log_group_arn=observability.waf_log_group_arn,
            flow_log_group_arn=observability.log_group_arns["vpc_flow"],
        ).outputs
        auth = Auth(self, "auth", edge=settings.edge, context=context, networking=networking).outputs
        listeners = [*networking.listener_dependencies, *([auth.https_listener] if auth.https_listener else [])]
        compute = Compute(
            self,
            "compute",
            gateway=settings.gateway,
            edge=settings.edge,
            context=context,
            networking=networking,
            observability=observability,
            listeners=listeners,
        ).outputs
        monitoring = Monitoring(
            self,
            "monitoring",
            settings=settings.observability,
            context=context,
            observability=observability,
            watched=MonitoredService(
                load_balancer_arn_suffix=networking.alb_arn_suffix,
                target_group_arn_suffix=networking.target_group_arn_suffix,
                cluster_name=compute.cluster_name,
                service_name=compute.service_name,
                min_tasks=settings.gateway.min_capacity,
            ),
        )

        scheme = "https" if settings.edge.https else "http"
        values: dict[str, object] = {
            "alb_dns_name": networking.alb_dns_name,
            "gateway_url": f"{scheme}://{networking.alb_dns_name}",
            "vpc_id": networking.vpc_id,
            "cognito_user_pool_id": auth.user_pool_id,
            "cognito_client_id": auth.client_id,
            "cognito_token_endpoint": auth.token_endpoint,
            "cognito_scopes": auth.scopes,
            "ecr_repository_url": compute.ecr_repository_url,
            "ecs_cluster_name": compute.cluster_name,
            "ecs_service_name": compute.service_name,
            "provider_secret_arns": compute.provider_secret_arns,
            "dashboard_name": monitoring.dashboard_name,
        }
        if set(values) != set(STACK_OUTPUTS):
            raise ValueError(f"outputs and their descriptions disagree: {set(values) ^ set(STACK_OUTPUTS)}")
        for name, description in STACK_OUTPUTS.items():
            TerraformOutput(self, name, value=values[name], description=description)
        secret_values = {"cognito_client_secret": auth.client_secret}
        for name, description in SENSITIVE_OUTPUTS.items():
            TerraformOutput(self, name, value=secret_values[name], description=description, sensitive=True)


def synthesize(environments: Iterable[Environment], outdir: Path | None = None) -> None:
    """One stack per environment in one app, written to ``outdir`` (default:
    cdktf.out, or $CDKTF_OUTDIR as the cdktf CLI sets it)."""
    app = App(outdir=str(outdir)) if outdir is not None else App()
    for environment in environments:
        GatewayStack(app, environment)
    app.synth()
