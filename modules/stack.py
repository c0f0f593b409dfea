"""The stack of one environment: provider, state backend, and the constructs
in dependency order (observability, network, auth, edge, deployment traffic
shifting where the strategy needs it, the organisation's guardrail where
configured, compute, monitoring), wired only through their typed outputs."""

from __future__ import annotations

import keyword
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cdktf import App, S3Backend, S3BackendEndpointConfig, TerraformOutput, TerraformStack
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags, AwsProviderEndpoints
from constructs import Construct

from aigw.data_plane.config import DataPlaneRuntime
from aigw.environments import Environment
from aigw.task_entries import entry_hosts, task_entries
from modules.auth import Auth
from modules.compute import Compute
from modules.context import PROJECT, StackContext
from modules.cost_attribution import CostAttribution, CostAttributionOutputs
from modules.data_plane import DataPlane, DataPlaneOutputs, data_plane_config
from modules.deployment import DeploymentTraffic, production_listener
from modules.edge import Edge
from modules.grants import grant_apply_guardrail
from modules.guardrails import GuardrailOutputs, Guardrails
from modules.monitoring import MonitoredService, Monitoring
from modules.network import GATEWAY_ENDPOINTS, INTERFACE_ENDPOINTS, Network
from modules.observability import Observability
from modules.outputs import OUTPUTS, Wiring
from modules.routing import RouteDiscovery, RoutingOutputs
from modules.shared_store import SharedStore

# Every service the stack calls, pointed at the emulator when one is configured.
EMULATED_SERVICES: tuple[str, ...] = (
    "appautoscaling", "cloudwatch", "cognitoidp", "dynamodb", "ec2", "ecr", "ecs", "elbv2", "iam",
    "kms", "lambda", "logs", "s3", "secretsmanager", "sns", "sqs", "ssm", "sts", "wafv2",
)  # fmt: skip


# Attempts per API call against the emulator (the provider's max_retries is the
# SDK's maximum attempts). moto's server answers every request with
# "Connection: close", and on a loaded machine the SDK now and then fails to
# read such a response ("read tcp ...: use of closed network connection"), a
# transport error it retries. One attempt turned that into a failed deploy about
# once in seven plans; four give it three retries while a call the emulator
# does not implement still fails within seconds (jittered backoff of at most
# 2 + 4 + 8 s), not after the default 25 attempts. The emulator answers a
# retried call that had succeeded with its first answer (tools/moto_launcher.py),
# so a retried create does not meet the resource it already made.
EMULATOR_MAX_ATTEMPTS = 4


def emulator_provider_arguments(endpoint: str) -> dict[str, Any]:
    """AWS provider arguments for an emulator: its endpoint for every service
    (the account id comes from its STS), path-style S3, no instance metadata,
    and EMULATOR_MAX_ATTEMPTS attempts per call. Credentials stay in the environment."""
    return {
        # The bindings spell Terraform's `lambda` endpoint `lambda_` (a Python keyword).
        "endpoints": [
            AwsProviderEndpoints(**{f"{s}_" if keyword.iskeyword(s) else s: endpoint for s in EMULATED_SERVICES})
        ],
        "max_retries": EMULATOR_MAX_ATTEMPTS,
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
            deletion_protection=settings.deletion_protection,
            plain_http_emulator=emulator.startswith("http://"),
        )
        observability = Observability(
            self,
            "observability",
            settings=settings.observability,
            context=context,
            create_waf_log_group=settings.edge.enable_waf,
            create_flow_log_group=not settings.network.existing_vpc,
            create_exec_log_group=settings.gateway.enable_execute_command,
            # Hybrid mode runs neither the data plane nor its collector.
            create_data_plane_log_groups=not settings.hybrid.enabled,
        ).outputs
        network = Network(
            self,
            "network",
            network=settings.network,
            context=context,
            availability_zones=settings.availability_zones,
            flow_log_group_arn=observability.log_group_arns.get("vpc_flow"),
            # ECS Exec sessions reach Session Manager (ssmmessages) privately where there are endpoints.
            interface_endpoints=INTERFACE_ENDPOINTS
            + (("ssmmessages",) if settings.gateway.enable_execute_command else ()),
            # Cost attribution's function reads its pricing table through a DynamoDB endpoint.
            gateway_endpoints=GATEWAY_ENDPOINTS + (("dynamodb",) if settings.cost_attribution.enabled else ()),
        ).outputs
        hybrid = settings.hybrid
        # Hybrid mode authenticates Portkey API keys in the enterprise gateway and refuses
        # JWT auth: no Cognito pool, whose clients nothing would check (docs/hybrid.md).
        auth = None if hybrid.enabled else Auth(self, "auth", context=context, teams=settings.teams).outputs
        entries = task_entries(settings)
        edge = Edge(
            self,
            "edge",
            edge=settings.edge,
            allowed_cidrs=settings.load_balancer_cidrs,
            context=context,
            network=network,
            jwt=auth.jwt_issuer if auth else None,
            waf_log_group_arn=observability.waf_log_group_arn,
            drain_seconds=settings.gateway.drain_seconds,
            entries=entries,
            hosts=entry_hosts(settings),
            private_link_inbound=hybrid.enabled and hybrid.control_plane.inbound == "privatelink",
        ).outputs
        traffic_shifting = None
        if settings.gateway.deployment.advanced:
            traffic_shifting = DeploymentTraffic(
                self,
                "deployment",
                plan=settings.gateway.deployment.plan,
                context=context,
                edge=edge,
                listener=production_listener(edge, https=settings.edge.https),
                vpc_id=network.vpc_id,
                entry=entries[0],
            ).outputs
        store = (
            SharedStore(self, "shared-store", settings=settings.shared_store, context=context, network=network)
            if settings.needs_shared_store
            else None
        )
        guardrail: GuardrailOutputs | None = None
        if settings.guardrails.enabled:
            guardrail = Guardrails(self, "guardrails", settings=settings.guardrails, context=context).outputs
        routing: RoutingOutputs | None = None
        data_plane: DataPlaneOutputs | None = None
        # Hybrid mode (no pool) runs Portkey's enterprise gateway without the data plane (docs/hybrid.md).
        if auth is not None:
            data_plane_settings = data_plane_config(settings, environment.name)
            if data_plane_settings.default_route is not None:
                routing = RouteDiscovery(
                    self, "routing", routes=dict(data_plane_settings.routing),
                    default=data_plane_settings.default_route, context=context,
                ).outputs  # fmt: skip
            data_plane = DataPlane(
                self,
                "data-plane",
                config=data_plane_settings,
                runtime=DataPlaneRuntime(
                    teams={client_id: team for team, client_id in auth.client_ids.items()},
                    store_host=store.outputs.host if store else None,
                    store_port=store.outputs.port if store else None,
                    guardrail_id=guardrail.guardrail_id if guardrail else None,
                    guardrail_version=guardrail.version if guardrail else None,
                ),
                context=context,
                # The data plane applies the guardrail with the task role's credentials.
                task_statements=[grant_apply_guardrail(guardrail.guardrail_arn)] if guardrail else [],
            ).outputs
        compute = Compute(
            self,
            "compute",
            gateway=settings.gateway,
            autoscaling=settings.autoscaling,
            data_plane=data_plane,
            hybrid=hybrid,
            entries=entries,
            store_endpoint=(store.outputs.host, store.outputs.port) if store else None,
            context=context,
            network=network,
            edge=edge,
            observability=observability,
            traffic_shifting=traffic_shifting,
            wait_for=edge.listeners,
        ).outputs
        if store:
            store.admit(compute.task_security_group_id)
            if compute.hybrid and compute.hybrid.data_service_security_group_id:
                store.admit(compute.hybrid.data_service_security_group_id, name="data-service",
                            what="hybrid data service tasks")  # fmt: skip
        cost: CostAttributionOutputs | None = None
        if settings.cost_attribution.enabled:
            cost = CostAttribution(
                self, "cost-attribution", settings=settings.cost_attribution, context=context, network=network,
                access_log_group_name=observability.log_group_names["access"],
                access_log_group_arn=observability.log_group_arns["access"],
                logs_kms_key_arn=observability.logs_kms_key_arn,
                log_retention_days=settings.observability.log_retention_days,
            ).outputs  # fmt: skip
        monitoring = Monitoring(
            self,
            "monitoring",
            settings=settings.observability,
            context=context,
            observability=observability,
            watched=MonitoredService(
                load_balancer_type=edge.load_balancer_type,
                load_balancer_arn_suffix=edge.load_balancer_arn_suffix,
                target_group_arn_suffix=edge.target_group_arn_suffix,
                alternate_target_group_arn_suffix=(
                    traffic_shifting.alternate_target_group_arn_suffix if traffic_shifting else None
                ),
                cluster_name=compute.cluster_name,
                service_name=compute.service_name,
                min_tasks=settings.gateway.minimum_tasks,
                access_log_group=None if hybrid.enabled else observability.log_group_names["access"],
                budget_teams=tuple(team for team, client in sorted(settings.clients.items()) if client.budget),
                counts_limits=any(client.limited for client in settings.clients.values()),
                caches_answers=settings.response_cache.enabled,
                applies_guardrail=settings.guardrails.enabled,
                cost_attribution=settings.cost_attribution.enabled,
                team_daily_cost_usd=tuple(sorted(settings.cost_attribution.team_daily_cost_alarm_usd.items())),
            ),
        )

        wiring = Wiring(
            network=network, edge=edge, auth=auth, compute=compute, dashboard_name=monitoring.dashboard_name,
            routing=routing, cost=cost, guardrail=guardrail,
        )  # fmt: skip
        for output in OUTPUTS:
            # `sensitive` only where true (None: the key is not written at all).
            TerraformOutput(
                self,
                output.name,
                value=output.value(wiring),
                description=output.description,
                sensitive=True if output.sensitive else None,
            )


def synthesize(environments: Iterable[Environment], outdir: Path | None = None) -> None:
    """One stack per environment in one app, written to ``outdir`` (default:
    cdktf.out, or $CDKTF_OUTDIR as the cdktf CLI sets it)."""
    app = App(outdir=str(outdir)) if outdir is not None else App()
    for environment in environments:
        GatewayStack(app, environment)
    app.synth()
