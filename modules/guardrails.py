"""The organisation's Bedrock guardrail (`[guardrails]`) and a published
version of it, which the data plane applies to every request (and, with
`check_output`, every answer) with the task role's `bedrock:ApplyGuardrail`
on exactly this guardrail (modules/grants.py `grant_apply_guardrail`).

- The guardrail: one content filter per filter of the settings that is not
  NONE (prompt attacks on inputs only, as Bedrock requires), the sensitive
  information types with their action, the denied topics, the blocked words
  and the managed profanity list; a policy with nothing in it is left out
  (Bedrock refuses an empty one). Encrypted with Bedrock's default key: it
  holds configuration, not data, and neither the gate's rules nor checkov
  ask for a customer key (one would need kms:Decrypt for every applier).
- Its version: a published, immutable snapshot. The data plane names it, so
  every task applies exactly what was reviewed, never the working draft.

Only attributes hashicorp/aws 5.100 and the 6.x bindings share are used (no
per-direction actions, no tiers): Terraform validate runs against 5.100.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.bedrock_guardrail import (
    BedrockGuardrail,
    BedrockGuardrailContentPolicyConfig,
    BedrockGuardrailContentPolicyConfigFiltersConfig,
    BedrockGuardrailSensitiveInformationPolicyConfig,
    BedrockGuardrailSensitiveInformationPolicyConfigPiiEntitiesConfig,
    BedrockGuardrailTopicPolicyConfig,
    BedrockGuardrailTopicPolicyConfigTopicsConfig,
    BedrockGuardrailWordPolicyConfig,
    BedrockGuardrailWordPolicyConfigManagedWordListsConfig,
    BedrockGuardrailWordPolicyConfigWordsConfig,
)
from cdktf_cdktf_provider_aws.bedrock_guardrail_version import BedrockGuardrailVersion
from constructs import Construct

from aigw.settings.guardrails import CONTENT_FILTERS, PII_TYPES, GuardrailSettings
from modules.context import StackContext

# Bedrock applies the prompt-attack filter to inputs only: its output strength must be NONE.
INPUT_ONLY_FILTERS = frozenset({"PROMPT_ATTACK"})


def guardrail_name(context: StackContext) -> str:
    return f"{context.prefix}-guardrail"


@dataclass(frozen=True)
class GuardrailOutputs:
    guardrail_id: str
    guardrail_arn: str
    # The published version the data plane applies ("1", "2", ...).
    version: str


def content_filters(settings: GuardrailSettings) -> list[BedrockGuardrailContentPolicyConfigFiltersConfig]:
    """One filter per content filter that is on, in CONTENT_FILTERS' order."""
    filters = []
    for name, bedrock_type in CONTENT_FILTERS.items():
        strength = settings.strength(name)
        if strength == "NONE":
            continue
        filters.append(
            BedrockGuardrailContentPolicyConfigFiltersConfig(
                type=bedrock_type,
                input_strength=strength,
                output_strength="NONE" if bedrock_type in INPUT_ONLY_FILTERS else strength,
            )
        )
    return filters


class Guardrails(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: GuardrailSettings, context: StackContext
    ) -> None:
        super().__init__(scope, construct_id)
        filters = content_filters(settings)
        pii = [
            BedrockGuardrailSensitiveInformationPolicyConfigPiiEntitiesConfig(type=PII_TYPES[name], action=action)
            for name, action in settings.pii.items()
        ]
        topics = [
            BedrockGuardrailTopicPolicyConfigTopicsConfig(
                type="DENY", name=topic.name, definition=topic.definition, examples=list(topic.examples) or None
            )
            for topic in settings.denied_topics
        ]
        words = [BedrockGuardrailWordPolicyConfigWordsConfig(text=word) for word in settings.blocked_words]
        managed = [BedrockGuardrailWordPolicyConfigManagedWordListsConfig(type="PROFANITY")]
        guardrail = BedrockGuardrail(
            self,
            "guardrail",
            name=guardrail_name(context),
            description=f"{context.prefix}: the organisation's guardrail, applied by the data plane to every request",
            blocked_input_messaging=settings.blocked_input_message,
            blocked_outputs_messaging=settings.blocked_output_message,
            # Bedrock refuses a policy with nothing in it: a policy that is off is left out.
            content_policy_config=[BedrockGuardrailContentPolicyConfig(filters_config=filters)] if filters else None,
            sensitive_information_policy_config=(
                [BedrockGuardrailSensitiveInformationPolicyConfig(pii_entities_config=pii)] if pii else None
            ),
            topic_policy_config=[BedrockGuardrailTopicPolicyConfig(topics_config=topics)] if topics else None,
            word_policy_config=(
                [
                    BedrockGuardrailWordPolicyConfig(
                        words_config=words or None,
                        managed_word_lists_config=managed if settings.managed_profanity else None,
                    )
                ]
                if words or settings.managed_profanity
                else None
            ),
        )
        # A version is an immutable snapshot of the guardrail; its resource
        # only names the guardrail's ARN, which an update keeps. So:
        # - replace_triggered_by: any change to the guardrail publishes a new
        #   version (the data plane's runtime names it, hence a new task
        #   definition and a deployment);
        # - create_before_destroy: the new version exists before the old one goes;
        # - skip_destroy: the old one does not go at all. A rolling (or blue/green,
        #   canary, linear) deployment keeps old tasks serving after Terraform has
        #   moved on, and those tasks name the old version: deleting it would make
        #   every check of theirs fail, and the data plane fails closed (503).
        #   Old versions go with the guardrail (DeleteGuardrail without a version
        #   deletes them all); versions count against Bedrock's per-guardrail
        #   quota, so an operator prunes old ones that no task uses any more.
        version = BedrockGuardrailVersion(
            self,
            "version",
            guardrail_arn=guardrail.guardrail_arn,
            description=f"{context.prefix}: published by Terraform for the data plane",
            skip_destroy=True,
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
        )
        # cdktf writes a replace_triggered_by resource as "${type.name}", which
        # Terraform refuses there (hashicorp/terraform-cdk#3196): the bare address.
        version.add_override(
            "lifecycle.replace_triggered_by", [f"{guardrail.terraform_resource_type}.{guardrail.friendly_unique_id}"]
        )
        self.outputs = GuardrailOutputs(
            guardrail_id=guardrail.guardrail_id, guardrail_arn=guardrail.guardrail_arn, version=version.version
        )
