"""The stack outputs users rely on, with their descriptions (README table
and `cdktf output` both read from here). Secrets only as sensitive outputs."""

from __future__ import annotations

STACK_OUTPUTS: dict[str, str] = {
    "alb_dns_name": "DNS name of the load balancer (point your CNAME here)",
    "gateway_url": "Base URL clients call (https when a certificate is set)",
    "vpc_id": "ID of the VPC",
    "cognito_user_pool_id": "ID of the Cognito user pool of M2M clients",
    "cognito_client_id": "ID of the M2M app client",
    "cognito_token_endpoint": "OAuth2 token endpoint (client_credentials grant)",
    "cognito_scopes": "OAuth2 scopes of the gateway's resource server",
    "ecr_repository_url": "ECR repository for the gateway image",
    "ecs_cluster_name": "Name of the ECS cluster",
    "ecs_service_name": "Name of the gateway ECS service",
    "provider_secret_arns": "Secrets Manager ARNs of the provider API keys (values set by operators)",
    "dashboard_name": "Name of the CloudWatch dashboard",
}
SENSITIVE_OUTPUTS: dict[str, str] = {
    "cognito_client_secret": "Secret of the M2M app client (sensitive: `cdktf output` hides it)",
}
