"""The organisation's provider keys in Secrets Manager, under their own KMS
key. Values are set by operators (README); never in code, the synthesized
JSON or the state."""

from __future__ import annotations

from cdktf_cdktf_provider_aws.secretsmanager_secret import SecretsmanagerSecret
from constructs import Construct

from modules.context import StackContext
from modules.kms import customer_managed_key


class ProviderSecrets(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, providers: list[str], context: StackContext) -> None:
        super().__init__(scope, construct_id)
        prefix = context.prefix
        self.key_arn = customer_managed_key(
            self,
            "secrets-key",
            context=context,
            description=f"{prefix}: provider API key secrets",
            alias=f"{prefix}-secrets",
        ).arn
        # Portkey 1.15.2 reads no provider key from its environment: with JWT
        # auth the data plane injects them per request (aigw/data_plane/).
        self.arns: dict[str, str] = {
            provider: SecretsmanagerSecret(
                self,
                f"secret-{provider}",
                name=f"{prefix}/providers/{provider}",
                description=f"{provider} API key for the gateway; value set by operators",
                kms_key_id=self.key_arn,
                recovery_window_in_days=30 if context.deletion_protection else 7,
            ).arn
            for provider in providers
        }
