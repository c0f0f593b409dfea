"""Create an environment's Terraform state bucket and lock table, as code:
``python -m tools.state_bootstrap <env>`` (``make bootstrap ENV=<env>``).

Idempotent; safe to run again. Uses the environment file's ``[backend]``
(and ``[emulator] endpoint`` when set, for the local emulator). Creates:

- a customer-managed KMS key (rotation on) with alias ``alias/<bucket>``;
- the bucket: versioning, default SSE-KMS with that key (bucket key on),
  all public access blocked, a policy denying requests without TLS (left out
  only for a plain-HTTP emulator endpoint, which that policy would lock out);
- the lock table: hash key ``LockID`` (string), on-demand, SSE with the key,
  point-in-time recovery.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from aigw.environments import Environment, environment_named_or_report


@dataclass(frozen=True)
class StateBackend:
    bucket: str
    table: str
    key_arn: str


def _client(service: str, region: str, endpoint: str | None) -> Any:
    return boto3.client(service, region_name=region, endpoint_url=endpoint or None)


def ensure_key(kms: Any, alias: str, description: str) -> str:
    """The ARN of the customer-managed key behind ``alias``; when there is none, a
    new symmetric key with rotation on and that alias (also tools/hybrid_secrets.py)."""
    try:
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
    except ClientError as error:
        if error.response["Error"]["Code"] != "NotFoundException":
            raise
    key = kms.create_key(Description=description, KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    kms.enable_key_rotation(KeyId=key["KeyId"])
    try:
        kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    except ClientError as error:
        if error.response["Error"]["Code"] != "AlreadyExistsException":
            raise
        # Another run made the alias since this one looked: use its key, and retire ours (the shortest
        # waiting period KMS allows) rather than leave an unused key behind.
        kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
    return str(key["Arn"])


def _bucket(s3: Any, bucket: str, region: str, key_arn: str, *, tls_only: bool) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
        arguments: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**arguments)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    if tls_only:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tls_only_policy(bucket)))


def tls_only_policy(bucket: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyRequestsWithoutTls",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def _lock_table(dynamodb: Any, table: str, key_arn: str) -> None:
    try:
        dynamodb.describe_table(TableName=table)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        dynamodb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key_arn},
        )
        dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    dynamodb.update_continuous_backups(
        TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )


def bootstrap(environment: Environment) -> StateBackend:
    backend = environment.settings.backend
    endpoint = environment.settings.emulator.endpoint or None
    alias = f"alias/{backend.bucket}"
    key_arn = ensure_key(_client("kms", backend.region, endpoint), alias, f"Terraform state ({alias})")
    # A plain-HTTP emulator would be locked out by a TLS-only policy (moto enforces
    # bucket policies); AWS itself is always reached over TLS.
    tls_only = endpoint is None or endpoint.startswith("https://")
    if not tls_only:
        print(f"note: {endpoint} is plain HTTP; the TLS-only bucket policy is left out there", file=sys.stderr)
    _bucket(_client("s3", backend.region, endpoint), backend.bucket, backend.region, key_arn, tls_only=tls_only)
    _lock_table(_client("dynamodb", backend.region, endpoint), backend.dynamodb_table, key_arn)
    return StateBackend(backend.bucket, backend.dynamodb_table, key_arn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("environment", help="environment name (file stem in the environments directory)")
    args = parser.parse_args(argv)
    environment = environment_named_or_report(args.environment)
    if environment is None:
        return 2
    state = bootstrap(environment)
    print(f"state bucket {state.bucket} and lock table {state.table} ready (KMS key {state.key_arn})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
