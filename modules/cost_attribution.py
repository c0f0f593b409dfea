"""Cost attribution (`[cost_attribution]`): the pricing table, and the
function that prices every line of the data plane's access log
(lambdas/cost_attribution/handler.py), subscribed to the `access` log group.

- The pricing table: DynamoDB on demand, point-in-time recovery, its own
  customer-managed key; filled by `make prices ENV=<env>` (tools/prices.py),
  so a price changes without a deploy.
- The function: arm64, Python 3.12, its package built deterministically
  (aigw/lambda_package.py), reserved concurrency, retried twice by Lambda and
  then sent to an encrypted dead-letter queue. It runs in the private
  subnets with a security group whose only egress is HTTPS to DynamoDB's
  addresses (the gateway endpoint in a created VPC); it writes its metrics
  as EMF into its own log group (Lambda delivers logs without the network).
- Its role (assumable by Lambda for this function only): write its own log
  group, read the pricing table, send to its queue, use its key through
  those services, and the network interfaces Lambda needs in the private
  subnets; nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import AssetType, TerraformAsset
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_log_subscription_filter import CloudwatchLogSubscriptionFilter
from cdktf_cdktf_provider_aws.data_aws_ec2_managed_prefix_list import DataAwsEc2ManagedPrefixList
from cdktf_cdktf_provider_aws.dynamodb_table import (
    DynamodbTable,
    DynamodbTableAttribute,
    DynamodbTablePointInTimeRecovery,
    DynamodbTableServerSideEncryption,
)
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.lambda_function import (
    LambdaFunction,
    LambdaFunctionDeadLetterConfig,
    LambdaFunctionEnvironment,
    LambdaFunctionLoggingConfig,
    LambdaFunctionVpcConfig,
)
from cdktf_cdktf_provider_aws.lambda_function_event_invoke_config import LambdaFunctionEventInvokeConfig
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from constructs import Construct

from aigw.lambda_package import LAMBDAS_DIR, package, package_file
from aigw.settings.cost import CostAttributionSettings
from modules.context import StackContext
from modules.grants import Statement, grant_log_writes, policy_document, service_trust_policy
from modules.kms import customer_managed_key
from modules.network import NetworkOutputs

FUNCTION_DIR = LAMBDAS_DIR / "cost_attribution"
RUNTIME = "python3.12"
ARCHITECTURE = "arm64"
MEMORY_MB = 256
TIMEOUT_SECONDS = 60
# Lambda retries a failed asynchronous batch twice, then sends it to the queue.
RETRY_ATTEMPTS = 2
MAX_EVENT_AGE_SECONDS = 6 * 3600
DLQ_RETENTION_SECONDS = 14 * 86400
# The access-log lines (one JSON object each, `status` a number); nginx's own error lines are not JSON.
SUBSCRIPTION_FILTER = "{ $.status >= 100 }"


def function_name(context: StackContext) -> str:
    return f"{context.prefix}-cost-attribution"


def table_name(context: StackContext) -> str:
    return f"{context.prefix}-prices"


@dataclass(frozen=True)
class CostAttributionOutputs:
    function_name: str
    table_name: str
    dead_letter_queue_arn: str


class CostAttribution(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: CostAttributionSettings,
        context: StackContext,
        network: NetworkOutputs,
        access_log_group_name: str,
        access_log_group_arn: str,
        logs_kms_key_arn: str,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        prefix, name = context.prefix, function_name(context)
        key = customer_managed_key(
            self, "key", context=context, description=f"{prefix}: cost attribution (pricing table, dead letters)",
            alias=f"{prefix}-cost-attribution",
        )  # fmt: skip
        table = DynamodbTable(
            self,
            "prices",
            name=table_name(context),
            billing_mode="PAY_PER_REQUEST",
            hash_key="model_key",
            range_key="effective_date",
            attribute=[
                DynamodbTableAttribute(name="model_key", type="S"),
                DynamodbTableAttribute(name="effective_date", type="S"),
            ],
            point_in_time_recovery=DynamodbTablePointInTimeRecovery(enabled=True),
            server_side_encryption=DynamodbTableServerSideEncryption(enabled=True, kms_key_arn=key.arn),
            deletion_protection_enabled=context.deletion_protection,
        )
        queue = SqsQueue(
            self, "dead-letters", name=f"{name}-dead-letters", kms_master_key_id=key.arn,
            message_retention_seconds=DLQ_RETENTION_SECONDS,
        )  # fmt: skip
        log_group = CloudwatchLogGroup(
            self, "log-group", name=f"/aws/lambda/{name}", retention_in_days=log_retention_days,
            kms_key_id=logs_kms_key_arn,
        )  # fmt: skip
        security_group = SecurityGroup(
            self, "sg", name=f"{name}", vpc_id=network.vpc_id,
            description="Cost attribution function: HTTPS to DynamoDB only", tags={"Name": name},
        )  # fmt: skip
        dynamodb_addresses = DataAwsEc2ManagedPrefixList(
            self, "dynamodb-prefix-list", name=f"com.amazonaws.{context.region}.dynamodb"
        )
        VpcSecurityGroupEgressRule(
            self, "egress-dynamodb", security_group_id=security_group.id, ip_protocol="tcp", from_port=443,
            to_port=443, prefix_list_id=dynamodb_addresses.id, description="HTTPS to DynamoDB (the pricing table)",
        )  # fmt: skip
        ec2 = f"arn:{context.partition}:ec2:{context.region}:{context.account_id}"
        # Lambda assumes the role for functions of this account only (its requests carry no aws:SourceArn).
        trust = service_trust_policy("lambda.amazonaws.com", account_id=context.account_id)
        role = IamRole(self, "role", name=name, assume_role_policy=trust)
        statements: list[Statement] = [
            grant_log_writes([log_group.arn], sid="WriteOwnLogs"),
            {
                "Sid": "ReadPrices",
                "Effect": "Allow",
                "Action": ["dynamodb:Query", "dynamodb:GetItem"],
                "Resource": [table.arn],
            },
            {
                "Sid": "SendDeadLetters",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage"],
                "Resource": [queue.arn],
            },
            {
                "Sid": "UseOwnKeyThroughItsServices",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": [key.arn],
                "Condition": {
                    "StringEquals": {
                        "kms:ViaService": [
                            f"dynamodb.{context.region}.amazonaws.com",
                            f"sqs.{context.region}.amazonaws.com",
                            f"lambda.{context.region}.amazonaws.com",
                        ]
                    }
                },
            },
            # What Lambda needs to attach the function to the private subnets: interfaces of this
            # account and region, in these subnets, with this group (Describe has no resource scope).
            {
                "Sid": "CreateInterfacesInPrivateSubnets",
                "Effect": "Allow",
                "Action": ["ec2:CreateNetworkInterface"],
                "Resource": [
                    f"{ec2}:network-interface/*", f"{ec2}:security-group/{security_group.id}",
                    *(f"{ec2}:subnet/{subnet}" for subnet in network.private_subnet_ids),
                ],
            },
            {
                "Sid": "ManageOwnInterfaces",
                "Effect": "Allow",
                "Action": [
                    "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
                ],
                "Resource": [f"{ec2}:network-interface/*"],
            },
            {"Sid": "DescribeInterfaces", "Effect": "Allow", "Action": ["ec2:DescribeNetworkInterfaces"],
             "Resource": "*"},
        ]  # fmt: skip
        policy = IamRolePolicy(
            self, "role-policy", role=role.id, name="cost-attribution", policy=policy_document(statements)
        )
        built = package(FUNCTION_DIR)
        asset = TerraformAsset(self, "package", path=str(package_file("cost-attribution", built)), type=AssetType.FILE)
        function = LambdaFunction(
            self,
            "function",
            function_name=name,
            description="Prices each access-log line of the data plane; tokens, cost and latency as EMF metrics",
            role=role.arn,
            runtime=RUNTIME,
            architectures=[ARCHITECTURE],
            handler="handler.handler",
            filename=asset.path,
            source_code_hash=built.sha256_base64,
            memory_size=MEMORY_MB,
            timeout=TIMEOUT_SECONDS,
            reserved_concurrent_executions=settings.reserved_concurrency,
            environment=LambdaFunctionEnvironment(variables={"PRICES_TABLE": table.name}),
            kms_key_arn=key.arn,
            dead_letter_config=LambdaFunctionDeadLetterConfig(target_arn=queue.arn),
            vpc_config=LambdaFunctionVpcConfig(
                subnet_ids=network.private_subnet_ids, security_group_ids=[security_group.id]
            ),
            logging_config=LambdaFunctionLoggingConfig(log_format="Text", log_group=log_group.name),
            depends_on=[policy, log_group],
        )
        LambdaFunctionEventInvokeConfig(
            self, "invoke-config", function_name=function.function_name, maximum_retry_attempts=RETRY_ATTEMPTS,
            maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
        )  # fmt: skip
        permission = LambdaPermission(
            self, "invoke-from-logs", statement_id="InvokeFromAccessLog", action="lambda:InvokeFunction",
            function_name=function.function_name, principal="logs.amazonaws.com",
            source_arn=f"{access_log_group_arn}:*", source_account=context.account_id,
        )  # fmt: skip
        CloudwatchLogSubscriptionFilter(
            self, "subscription", name=f"{name}", log_group_name=access_log_group_name,
            filter_pattern=SUBSCRIPTION_FILTER, destination_arn=function.arn, depends_on=[permission],
        )  # fmt: skip
        self.outputs = CostAttributionOutputs(
            function_name=function.function_name, table_name=table.name, dead_letter_queue_arn=queue.arn
        )
