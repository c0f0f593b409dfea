"""Where the load balancer writes its access logs (``[edge.access_logs]``): a
given bucket, or the bucket the stack creates without one: versioned, public
access blocked, ACLs disabled, TLS-only, delivery granted exactly as AWS
documents for the load balancer type and the region, objects expiring after
``expiration_days``.

Encryption follows what each type's log delivery supports:

- ALB: SSE-S3 only. "The only server-side encryption option that's supported
  is Amazon S3-managed keys (SSE-S3)"
  (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/enable-access-logging.html).
  The security rule AIGW-S3-3 accepts SSE-S3 for exactly such a bucket.
- NLB: SSE-KMS with a customer-managed key of its own, whose policy lets the
  delivery service (``delivery.logs.amazonaws.com``, CloudWatch Logs' vended
  logs) use it for this account and region
  (https://docs.aws.amazon.com/elasticloadbalancing/latest/network/enable-access-logs.html,
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/AWS-logs-infrastructure-S3.html).
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_aws.lb import LbAccessLogs
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleExpiration,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
)
from cdktf_cdktf_provider_aws.s3_bucket_ownership_controls import (
    S3BucketOwnershipControls,
    S3BucketOwnershipControlsRule,
)
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import (
    S3BucketVersioningA,
    S3BucketVersioningVersioningConfiguration,
)
from constructs import Construct

from aigw.settings import AccessLogSettings, LoadBalancerType
from modules.context import StackContext
from modules.grants import (
    deny_insecure_transport,
    grant_alb_log_delivery,
    grant_log_delivery_key_use,
    grant_nlb_log_delivery,
    policy_document,
)
from modules.kms import customer_managed_key

# The Elastic Load Balancing account that delivers ALB access logs, for the
# regions of the aws partition available before August 2022, from the ALB
# guide's bucket policy step (link above). ALB log delivery in every other
# region is granted to the service principal ALB_LOG_DELIVERY_SERVICE. The
# same table as the AWS provider's aws_elb_service_account and aws-cdk's
# ELBV2_ACCOUNTS region facts.
ELB_ACCOUNT_BY_REGION: dict[str, str] = {
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
    "af-south-1": "098369216593",
    "ap-east-1": "754344448648",
    "ap-southeast-3": "589379963580",
    "ap-south-1": "718504428378",
    "ap-northeast-3": "383597477331",
    "ap-northeast-2": "600734575887",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "ap-northeast-1": "582318560864",
    "ca-central-1": "985666609251",
    "eu-central-1": "054676820928",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-south-1": "635631232127",
    "eu-west-3": "009996457667",
    "eu-north-1": "897822967062",
    "me-south-1": "076674570225",
    "sa-east-1": "507241528517",
}
ALB_LOG_DELIVERY_SERVICE = "logdelivery.elasticloadbalancing.amazonaws.com"
# Uploads ELB abandoned half-way are cleaned up after this many days.
ABORT_INCOMPLETE_UPLOAD_DAYS = 7


def alb_log_delivery_principal(region: str, partition: str) -> dict[str, str]:
    """Who delivers ALB access logs in ``region``: the regional Elastic Load
    Balancing account where AWS documents one, else the log delivery service."""
    account = ELB_ACCOUNT_BY_REGION.get(region)
    return {"AWS": f"arn:{partition}:iam::{account}:root"} if account else {"Service": ALB_LOG_DELIVERY_SERVICE}


def log_objects_arn(bucket_arn: str, prefix: str, account_id: str) -> str:
    """Where ELB writes: ``<bucket>/<prefix>/AWSLogs/<account>/*`` (no prefix: from the root)."""
    return f"{bucket_arn}/{prefix + '/' if prefix else ''}AWSLogs/{account_id}/*"


def access_log_bucket_name(context: StackContext) -> str:
    """``aigw-<env>-lb-logs-<account>-<region>``: unique across accounts and regions, at most 57 characters."""
    return f"{context.prefix}-lb-logs-{context.account_id}-{context.region}"


class AccessLogBucket(Construct):
    """The created bucket; ``name`` to give the load balancer, ``policy`` to wait for
    (ELB checks that it may write when access logging is turned on)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        load_balancer_type: LoadBalancerType,
        prefix: str,
        expiration_days: int,
        context: StackContext,
    ) -> None:
        super().__init__(scope, construct_id)
        bucket = S3Bucket(self, "bucket", bucket=access_log_bucket_name(context))
        bucket_id, bucket_arn = bucket.id, bucket.arn
        self.name = bucket.bucket
        # ACLs off: the bucket owner owns every object, whoever delivered it.
        S3BucketOwnershipControls(
            self,
            "ownership",
            bucket=bucket_id,
            rule=S3BucketOwnershipControlsRule(object_ownership="BucketOwnerEnforced"),
        )
        S3BucketPublicAccessBlock(
            self, "public-access-block", bucket=bucket_id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True,
        )  # fmt: skip
        S3BucketVersioningA(
            self, "versioning", bucket=bucket_id,
            versioning_configuration=S3BucketVersioningVersioningConfiguration(status="Enabled"),
        )  # fmt: skip
        S3BucketServerSideEncryptionConfigurationA(
            self,
            "encryption",
            bucket=bucket_id,
            rule=[self._encryption(load_balancer_type, context)],
        )
        S3BucketLifecycleConfiguration(
            self,
            "lifecycle",
            bucket=bucket_id,
            rule=[
                S3BucketLifecycleConfigurationRule(
                    id="expire-access-logs",
                    status="Enabled",
                    filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                    expiration=[S3BucketLifecycleConfigurationRuleExpiration(days=expiration_days)],
                    noncurrent_version_expiration=[
                        S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(noncurrent_days=expiration_days)
                    ],
                    abort_incomplete_multipart_upload=[
                        S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(
                            days_after_initiation=ABORT_INCOMPLETE_UPLOAD_DAYS
                        )
                    ],
                )
            ],
        )
        objects = log_objects_arn(bucket_arn, prefix, context.account_id)
        if load_balancer_type.access_logs_through_log_delivery:
            delivery = grant_nlb_log_delivery(
                bucket_arn, objects, account_id=context.account_id, region=context.region, partition=context.partition
            )
        else:
            principal = alb_log_delivery_principal(context.region, context.partition)
            delivery = [grant_alb_log_delivery(objects, delivery_principal=principal)]
        self.policy = S3BucketPolicy(
            self, "policy", bucket=bucket_id, policy=policy_document([deny_insecure_transport(bucket_arn), *delivery])
        )

    def _encryption(
        self, load_balancer_type: LoadBalancerType, context: StackContext
    ) -> S3BucketServerSideEncryptionConfigurationRuleA:
        if load_balancer_type.access_logs_sse_s3_only:
            return S3BucketServerSideEncryptionConfigurationRuleA(
                apply_server_side_encryption_by_default=(
                    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                        sse_algorithm="AES256"
                    )
                )
            )
        key = customer_managed_key(
            self,
            "key",
            context=context,
            description="Load balancer access logs in S3",
            alias=f"{context.prefix}-lb-access-logs",
            statements=[
                grant_log_delivery_key_use(
                    account_id=context.account_id, region=context.region, partition=context.partition
                )
            ],
        )
        return S3BucketServerSideEncryptionConfigurationRuleA(
            apply_server_side_encryption_by_default=(
                S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                    sse_algorithm="aws:kms", kms_master_key_id=key.arn
                )
            ),
            # One data key per bucket instead of a KMS call per log object.
            bucket_key_enabled=True,
        )


@dataclass(frozen=True)
class AccessLogDestination:
    """Where the load balancer writes its access logs (``config`` None: nowhere)."""

    config: LbAccessLogs | None
    bucket_name: str
    # ELB checks that it may write when logging is turned on: the created bucket's policy comes first.
    wait_for: list[ITerraformDependable]


def access_log_destination(
    scope: Construct, settings: AccessLogSettings, *, load_balancer_type: LoadBalancerType, context: StackContext
) -> AccessLogDestination:
    """The given bucket, or one this stack creates in ``scope`` (the edge, whose
    construct path its resources' addresses keep)."""
    if not settings.enabled:
        return AccessLogDestination(None, "", [])
    wait_for: list[ITerraformDependable] = []
    bucket_name = settings.bucket
    if not bucket_name:
        bucket = AccessLogBucket(
            scope,
            "access-logs",
            load_balancer_type=load_balancer_type,
            prefix=settings.prefix,
            expiration_days=settings.expiration_days,
            context=context,
        )
        bucket_name, wait_for = bucket.name, [bucket.policy]
    config = LbAccessLogs(bucket=bucket_name, prefix=settings.prefix or None, enabled=True)
    return AccessLogDestination(config, bucket_name, wait_for)
