"""The peer a user would pick instead: AWS CDK (Python, aws-cdk-lib) building
an equivalent dev + prod gateway stack, synthesized in-process. Benchmark
only (bench/synth.py runs it in its own virtualenv); not part of the product.

Per stack: VPC with public/private subnets, NAT, S3 + interface endpoints;
KMS keys; log groups; ECR; four secrets; Cognito pool, resource server,
client, domain; ALB with listener and target group; ECS Fargate service with
the gateway and an ADOT sidecar; autoscaling on CPU and requests."""

from __future__ import annotations

import sys
import tempfile

import aws_cdk as cdk
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct


class GatewayStack(cdk.Stack):
    def __init__(self, scope: Construct, name: str, *, env_name: str, num_az: int, nat: int, cpu: int, memory: int,
                 min_tasks: int, max_tasks: int) -> None:  # fmt: skip
        super().__init__(scope, name, env=cdk.Environment(account="123456789012", region="us-east-1"))
        logs_key = kms.Key(self, "LogsKey", enable_key_rotation=True)
        vpc = ec2.Vpc(self, "Vpc", max_azs=num_az, nat_gateways=nat)
        vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        for service_id, service in (
            ("EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR),
            ("EcrDkr", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
            ("Logs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS),
            ("Secrets", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
        ):
            vpc.add_interface_endpoint(service_id, service=service)
        groups = {
            stream: logs.LogGroup(self, f"Logs{stream}", retention=logs.RetentionDays.ONE_YEAR, encryption_key=logs_key)
            for stream in ("Gateway", "Collector", "Otlp", "Metrics")
        }
        repository = ecr.Repository(
            self, "Repo", image_tag_mutability=ecr.TagMutability.IMMUTABLE, image_scan_on_push=True,
            encryption=ecr.RepositoryEncryption.KMS,
        )  # fmt: skip
        repository.add_lifecycle_rule(max_image_count=10)
        secrets_key = kms.Key(self, "SecretsKey", enable_key_rotation=True)
        secrets = [
            secretsmanager.Secret(self, f"Secret{p}", encryption_key=secrets_key)
            for p in ("Openai", "Anthropic", "Google", "Azure")
        ]
        pool = cognito.UserPool(self, "Pool", self_sign_up_enabled=False)
        invoke = cognito.ResourceServerScope(scope_name="invoke", scope_description="invoke")
        admin = cognito.ResourceServerScope(scope_name="admin", scope_description="admin")
        server = pool.add_resource_server("Server", identifier="https://gateway.internal", scopes=[invoke, admin])
        pool.add_client(
            "M2M",
            generate_secret=True,
            access_token_validity=cdk.Duration.hours(1),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(client_credentials=True),
                scopes=[cognito.OAuthScope.resource_server(server, invoke)],
            ),
        )
        pool.add_domain("Domain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=f"aigw-{env_name}"))

        cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights=True, enable_fargate_capacity_providers=True)
        task = ecs.FargateTaskDefinition(self, "Task", cpu=cpu, memory_limit_mib=memory)
        gateway = task.add_container(
            "gateway",
            image=ecs.ContainerImage.from_registry("portkeyai/gateway:1.15.2"),
            port_mappings=[ecs.PortMapping(container_port=8787)],
            logging=ecs.LogDriver.aws_logs(stream_prefix="gateway", log_group=groups["Gateway"]),
            environment={"PORT": "8787"},
        )
        task.add_container(
            "adot-collector",
            image=ecs.ContainerImage.from_registry("amazon/aws-otel-collector:v0.43.3"),
            essential=False,
            logging=ecs.LogDriver.aws_logs(stream_prefix="collector", log_group=groups["Collector"]),
        )
        for secret in secrets:
            secret.grant_read(task.obtain_execution_role())
        service = ecs.FargateService(
            self, "Service", cluster=cluster, task_definition=task, desired_count=min_tasks,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )  # fmt: skip
        alb = elbv2.ApplicationLoadBalancer(self, "Alb", vpc=vpc, internet_facing=True, drop_invalid_header_fields=True)
        listener = alb.add_listener("Http", port=80)
        target_group = listener.add_targets(
            "Gateway",
            port=8787,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[service.load_balancer_target(container_name=gateway.container_name)],
            health_check=elbv2.HealthCheck(path="/", healthy_http_codes="200"),
        )
        scaling = service.auto_scale_task_count(min_capacity=min_tasks, max_capacity=max_tasks)
        scaling.scale_on_cpu_utilization("Cpu", target_utilization_percent=70)
        scaling.scale_on_request_count("Requests", requests_per_target=1000, target_group=target_group)


def main() -> int:
    outdir = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
    app = cdk.App(outdir=outdir)
    sizes = {"dev": (2, 1, 512, 1024, 1, 2), "prod": (3, 3, 1024, 2048, 2, 6)}
    for env_name, (num_az, nat, cpu, memory, min_tasks, max_tasks) in sizes.items():
        GatewayStack(app, f"ai-gateway-{env_name}", env_name=env_name, num_az=num_az, nat=nat, cpu=cpu,
                     memory=memory, min_tasks=min_tasks, max_tasks=max_tasks)  # fmt: skip
    assembly = app.synth()
    for stack in assembly.stacks:
        print(f"{stack.stack_name}: {len(stack.template.get('Resources', {}))} resources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
