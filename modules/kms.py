"""The one way this stack builds a customer-managed KMS key: rotation on,
30-day deletion window, administered through IAM of the account, an alias."""

from __future__ import annotations

from collections.abc import Sequence

from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from constructs import Construct

from modules.context import StackContext
from modules.grants import Statement, policy_document

DELETION_WINDOW_DAYS = 30


def customer_managed_key(
    scope: Construct,
    construct_id: str,
    *,
    context: StackContext,
    description: str,
    alias: str,
    statements: Sequence[Statement] = (),
) -> KmsKey:
    """A rotating key whose policy lets the account administer it through IAM,
    plus ``statements`` (service principals that use it), and ``alias/<alias>``."""
    key = KmsKey(
        scope,
        construct_id,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=DELETION_WINDOW_DAYS,
        policy=policy_document([context.key_admin_statement(), *statements]),
    )
    KmsAlias(scope, f"{construct_id}-alias", name=f"alias/{alias}", target_key_id=key.key_id)
    return key
