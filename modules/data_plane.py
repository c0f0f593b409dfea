"""The data plane's delivery: its bundle (code and the environment's rendered
configuration, aigw/data_plane/) as a content-addressed object in a bucket of
its own, which ECS reads into the data plane container at start
(`environmentFiles`), and the runtime joins other constructs supply.

Each bundle is an object named by its sha256, and the task definition pins
that hash: a change to the data plane's code or settings is a new object, a
new task definition revision, and a deployment (rolling, blue/green, canary
or linear) like any other; the start command refuses a bundle whose hash is
not the pinned one. The object is replaced create-before-destroy, so the new
one exists before the task definition names it. docs/data-plane.md has the
choice, the alternatives and what rolls back.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cdktf import AssetType, ITerraformDependable, TerraformAsset, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
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
from cdktf_cdktf_provider_aws.s3_object import S3Object
from constructs import Construct

from aigw.data_plane.bundle import Bundle, pack
from aigw.data_plane.config import (
    AzureTarget,
    DataPlaneConfig,
    DataPlaneRuntime,
    Guardrail,
    ResponseCache,
    Route,
    RouteTarget,
    TeamBudget,
    TeamLimits,
)
from aigw.data_plane.contract import BUNDLE_KEY_PREFIX
from aigw.data_plane.render import bundle_files
from aigw.settings import EnvironmentSettings
from aigw.settings.clients import ClientSettings
from aigw.settings.routing import RouteSettings, provider_slug
from modules.context import StackContext
from modules.grants import Statement, deny_insecure_transport, grant_object_read, policy_document
from modules.kms import customer_managed_key

# Replaced versions of a bundle (there are none: keys are content-addressed)
# and abandoned uploads are cleaned up after these many days.
NONCURRENT_DAYS = 30
ABORT_INCOMPLETE_UPLOAD_DAYS = 7


def data_plane_config(settings: EnvironmentSettings, environment: str) -> DataPlaneConfig:
    """The data plane's rules for an environment: org keys (and Bedrock with
    the task role) only for authenticated (JWT) clients."""
    gateway, jwt = settings.gateway, settings.edge.enable_jwt_auth
    azure = gateway.azure
    teams = {team: team_limits(client) for team, client in settings.teams.items()}
    return DataPlaneConfig(
        org_keys=tuple(gateway.provider_keys) if jwt else (),
        azure=AzureTarget(azure.resource_name, azure.deployment_id, azure.api_version) if azure else None,
        max_body_mib=gateway.max_request_body_mib,
        bedrock_region=settings.region if jwt else None,
        environment=environment,
        teams=teams,
        routing={name: route_config(route) for name, route in settings.routing.items()},
        default_route=next((name for name, route in settings.routing.items() if route.default), None),
        cache=(
            ResponseCache(settings.response_cache.ttl_seconds, settings.response_cache.max_entry_kib * 1024)
            if settings.response_cache.enabled
            else None
        ),
        guardrail=guardrail_config(settings),
        max_in_flight=gateway.requests_in_flight_cap,
    )


def guardrail_config(settings: EnvironmentSettings) -> Guardrail | None:
    guardrails = settings.guardrails
    if not guardrails.enabled:
        return None
    return Guardrail(
        region=settings.region,
        check_input=guardrails.check_input,
        check_output=guardrails.check_output,
        output_streams=guardrails.output_streams,
        blocked_input_message=guardrails.blocked_input_message,
        blocked_output_message=guardrails.blocked_output_message,
        timeout_ms=guardrails.timeout_ms,
    )


def route_config(route: RouteSettings) -> Route:
    codes = route.on_status_codes
    retry_codes = route.retry_on_status_codes
    return Route(
        strategy=route.strategy,
        targets=tuple(RouteTarget(provider_slug(t.provider), t.model, t.weight) for t in route.targets),
        on_status_codes=tuple(codes) if codes is not None else None,
        retry_attempts=route.retry_attempts,
        retry_on_status_codes=tuple(retry_codes) if retry_codes is not None else None,
        skip_after_failures=route.skip_after_failures,
        skip_seconds=route.skip_seconds,
    )


def team_limits(client: ClientSettings) -> TeamLimits:
    budget = client.budget
    return TeamLimits(
        requests_per_minute=client.requests_per_minute,
        max_concurrent_requests=client.max_concurrent_requests,
        max_tokens=client.max_tokens,
        cache=client.cache,
        budget=TeamBudget(
            tokens=budget.tokens,
            period=budget.period,
            alert_at_percent=budget.alert_at_percent,
            mode=budget.mode,
            unknown_usage_tokens=budget.unknown_usage_tokens,
        )
        if budget
        else None,
    )


def bucket_name(context: StackContext) -> str:
    """``aigw-<env>-data-plane-<account>-<region>``: unique across accounts and regions, at most 61 characters."""
    return f"{context.prefix}-data-plane-{context.account_id}-{context.region}"


def bundle_file(bundle: Bundle) -> Path:
    """The bundle's environment file on disk, for cdktf to copy into the
    stack's assets: named by its hash, written once, atomically."""
    directory = Path(tempfile.gettempdir()) / "aigw-data-plane-bundles"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{bundle.sha256}.env"
    if not path.exists():
        partial = directory / f".{bundle.sha256}.{os.getpid()}"
        partial.write_text(bundle.environment_file, encoding="ascii")
        partial.replace(path)
    return path


@dataclass(frozen=True)
class DataPlaneOutputs:
    config: DataPlaneConfig
    runtime: DataPlaneRuntime
    bundle_sha256: str
    bundle_object_arn: str
    bucket_name: str
    # What the task's execution role needs to read the bundle.
    read_statements: list[Statement]
    # What the task role needs for the data plane's own calls at run time
    # (ApplyGuardrail on the organisation's guardrail; modules/stack.py decides).
    task_statements: list[Statement] = field(default_factory=list)


class DataPlane(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DataPlaneConfig,
        runtime: DataPlaneRuntime,
        context: StackContext,
        task_statements: Sequence[Statement] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        bundle = pack(bundle_files(config))
        key = customer_managed_key(
            self, "key", context=context, description=f"{context.prefix}: data plane bundles",
            alias=f"{context.prefix}-data-plane",
        )  # fmt: skip
        bucket = S3Bucket(self, "bucket", bucket=bucket_name(context), force_destroy=not context.deletion_protection)
        bucket_id, bucket_arn = bucket.id, bucket.arn
        S3BucketOwnershipControls(
            self, "ownership", bucket=bucket_id,
            rule=S3BucketOwnershipControlsRule(object_ownership="BucketOwnerEnforced"),
        )  # fmt: skip
        S3BucketPublicAccessBlock(
            self, "public-access-block", bucket=bucket_id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True,
        )  # fmt: skip
        S3BucketVersioningA(
            self, "versioning", bucket=bucket_id,
            versioning_configuration=S3BucketVersioningVersioningConfiguration(status="Enabled"),
        )  # fmt: skip
        encryption = S3BucketServerSideEncryptionConfigurationA(
            self,
            "encryption",
            bucket=bucket_id,
            rule=[
                S3BucketServerSideEncryptionConfigurationRuleA(
                    apply_server_side_encryption_by_default=(
                        S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                            sse_algorithm="aws:kms", kms_master_key_id=key.arn
                        )
                    ),
                    bucket_key_enabled=True,
                )
            ],
        )
        S3BucketLifecycleConfiguration(
            self,
            "lifecycle",
            bucket=bucket_id,
            rule=[
                S3BucketLifecycleConfigurationRule(
                    id="clean-up",
                    status="Enabled",
                    filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                    noncurrent_version_expiration=[
                        S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(noncurrent_days=NONCURRENT_DAYS)
                    ],
                    abort_incomplete_multipart_upload=[
                        S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(
                            days_after_initiation=ABORT_INCOMPLETE_UPLOAD_DAYS
                        )
                    ],
                )
            ],
        )
        ready: list[ITerraformDependable] = [encryption]
        if not context.plain_http_emulator:
            ready.append(
                S3BucketPolicy(
                    self, "policy", bucket=bucket_id, policy=policy_document([deny_insecure_transport(bucket_arn)])
                )
            )
        asset = TerraformAsset(self, "bundle-file", path=str(bundle_file(bundle)), type=AssetType.FILE)
        bundle_object = S3Object(
            self,
            "bundle",
            bucket=bucket_id,
            key=bundle.object_key,
            source=asset.path,
            source_hash=bundle.sha256,
            content_type="text/plain",
            server_side_encryption="aws:kms",
            kms_key_id=key.arn,
            # The new bundle exists before the task definition names it; the
            # old one goes only after the service has moved to the new revision.
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
            depends_on=ready,
        )
        self.outputs = DataPlaneOutputs(
            config=config,
            runtime=runtime,
            bundle_sha256=bundle.sha256,
            bundle_object_arn=f"{bucket_arn}/{bundle_object.key}",
            bucket_name=bucket.bucket,
            read_statements=grant_object_read(
                bucket_arn, BUNDLE_KEY_PREFIX, kms_key_arn=key.arn, region=context.region
            ),
            task_statements=list(task_statements),
        )
