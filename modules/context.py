"""Facts every module needs about the stack it is in (names, account, region)."""

from __future__ import annotations

from dataclasses import dataclass

from modules.grants import Statement

PROJECT = "ai-gateway"


@dataclass(frozen=True)
class StackContext:
    environment: str
    region: str
    # Terraform references (data sources), resolved at plan time.
    account_id: str
    partition: str
    deletion_protection: bool
    # A local emulator reached over plain HTTP (moto): it enforces bucket
    # policies, so a TLS-only policy would lock the stack out of its own
    # buckets. AWS itself is always reached over TLS.
    plain_http_emulator: bool = False

    @property
    def prefix(self) -> str:
        """Name prefix of every resource of this environment, e.g. ``aigw-dev``."""
        return f"aigw-{self.environment}"

    def key_admin_statement(self) -> Statement:
        """Key policy statement keeping the key manageable through IAM of this account."""
        return {
            "Sid": "AccountAdministersKeyThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{self.partition}:iam::{self.account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
