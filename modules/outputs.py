"""The stack's outputs, each in one place: name, description and where its
value comes from. `cdktf output`, the README's table (aigw/docs.py) and the
stack (modules/stack.py) all read this tuple. Secrets only as sensitive
outputs. No cdktf import at run time, so the docs generator stays fast."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modules.auth import AuthOutputs
    from modules.compute import ComputeOutputs
    from modules.cost_attribution import CostAttributionOutputs
    from modules.edge import EdgeOutputs
    from modules.guardrails import GuardrailOutputs
    from modules.network import NetworkOutputs
    from modules.routing import RoutingOutputs


@dataclass(frozen=True)
class Wiring:
    """The typed outputs of the constructs the stack outputs come from."""

    network: NetworkOutputs
    edge: EdgeOutputs
    auth: AuthOutputs | None  # None in hybrid mode
    compute: ComputeOutputs
    dashboard_name: str
    routing: RoutingOutputs | None = None
    cost: CostAttributionOutputs | None = None
    guardrail: GuardrailOutputs | None = None


@dataclass(frozen=True)
class StackOutput:
    name: str
    description: str
    value: Callable[[Wiring], object]
    sensitive: bool = False


OUTPUTS: tuple[StackOutput, ...] = (
    StackOutput("alb_dns_name", "DNS name of the load balancer, ALB or NLB (point your CNAME here)",
                lambda w: w.edge.load_balancer_dns_name),
    StackOutput("gateway_url", "Base URL clients call: the load balancer's listener, which forwards to the data "
                "plane of each task, or in hybrid mode to the enterprise gateway (https when a certificate is set; "
                "the host is edge.gateway_host when set, else "
                "the load balancer's DNS name). On the emulator nothing answers there: `make deploy` runs the task "
                "on loopback and prints that URL", lambda w: w.edge.base_url),
    StackOutput("access_logs_bucket", "S3 bucket of the load balancer's access logs (empty when "
                "edge.access_logs is off)", lambda w: w.edge.access_logs_bucket),
    StackOutput("vpc_id", "ID of the VPC", lambda w: w.network.vpc_id),
    StackOutput("cognito_user_pool_id", "ID of the Cognito user pool of M2M clients (empty in hybrid mode, which "
                "has none)", lambda w: w.auth.user_pool_id if w.auth else ""),
    StackOutput("cognito_client_ids", "App client id of each team (`[clients.<team>]`; `default` without them; "
                "empty in hybrid mode)", lambda w: w.auth.client_ids if w.auth else {}),
    StackOutput("cognito_token_endpoint", "OAuth2 token endpoint (client_credentials grant; empty in hybrid mode)",
                lambda w: w.auth.token_endpoint if w.auth else ""),
    StackOutput("cognito_scopes", "OAuth2 scopes of the gateway's resource server (empty in hybrid mode)",
                lambda w: w.auth.scopes if w.auth else []),
    StackOutput("ecr_repository_url", "ECR repository for the gateway image (empty in hybrid mode, which pulls "
                "Portkey's)", lambda w: w.compute.ecr_repository_url),
    StackOutput("data_plane_ecr_repository_url", "ECR repository for the data plane image (empty in hybrid mode, "
                "which has no data plane)", lambda w: w.compute.data_plane_ecr_repository_url),
    StackOutput("ecs_cluster_name", "Name of the ECS cluster", lambda w: w.compute.cluster_name),
    StackOutput("ecs_service_name", "Name of the gateway ECS service", lambda w: w.compute.service_name),
    StackOutput("provider_secret_arns", "Secrets Manager ARNs of the provider API keys (values set by operators; "
                "empty in hybrid mode, where the control plane holds them)", lambda w: w.compute.provider_secret_arns),
    StackOutput("dashboard_name", "Name of the CloudWatch dashboard", lambda w: w.dashboard_name),
    StackOutput("routing_config_parameters", "SSM parameter of each route's config, without credentials "
                "(`[routing.<name>]`; empty without routes)", lambda w: w.routing.parameters if w.routing else {}),
    StackOutput("routing_read_policy_arn", "Managed policy that reads exactly those parameters, to attach to "
                "clients' roles (empty without routes)", lambda w: w.routing.read_policy_arn if w.routing else ""),
    StackOutput("pricing_table_name", "DynamoDB table cost attribution prices requests from (`make prices ENV=<env>` "
                "fills it; empty when `[cost_attribution]` is off)", lambda w: w.cost.table_name if w.cost else ""),
    StackOutput("cost_dead_letter_queue_arn", "SQS queue of the log batches cost attribution failed to price after "
                "its retries (empty when off)", lambda w: w.cost.dead_letter_queue_arn if w.cost else ""),
    StackOutput("guardrail_id", "ID of the organisation's Bedrock guardrail the data plane applies (empty when "
                "`[guardrails]` is off)", lambda w: w.guardrail.guardrail_id if w.guardrail else ""),
    StackOutput("guardrail_version", "Its published version the tasks apply (a new one with every change to the "
                "guardrail; empty when off)", lambda w: w.guardrail.version if w.guardrail else ""),
    StackOutput("gateway_task_role_arn", "Role of the gateway tasks: in hybrid mode the principal that a Bedrock "
                "account's role trusts for cross-account access (docs/hybrid.md)", lambda w: w.compute.task_role_arn),
    StackOutput("control_plane_endpoint_service_name", "VPC endpoint service Portkey's control plane connects "
                "to (hybrid.control_plane.inbound = privatelink; empty otherwise): give it to Portkey, then accept "
                "its connection request", lambda w: w.compute.hybrid.endpoint_service_name if w.compute.hybrid
                else ""),
    StackOutput("cognito_client_secrets", "App client secret of each team (sensitive: `cdktf output` hides it; "
                "`make token TEAM=<team>` reads it; empty in hybrid mode)", lambda w: w.auth.client_secrets if w.auth
                else {}, sensitive=True),
)  # fmt: skip
