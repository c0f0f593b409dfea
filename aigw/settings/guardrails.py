"""`[guardrails]`: the organisation's Bedrock guardrail, applied by the data
plane to every request's input and, where configured, to every generated
answer (streams included), whatever provider it goes to. A client's own
guardrail config stays refused. docs/gateway-contract.md has the rules."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from aigw.settings.common import Problem, Section

Strength = Literal["NONE", "LOW", "MEDIUM", "HIGH"]
PiiAction = Literal["BLOCK", "ANONYMIZE"]
# The content filters of a Bedrock guardrail, by this file's name -> Bedrock's type.
CONTENT_FILTERS: dict[str, str] = {
    "hate": "HATE",
    "insults": "INSULTS",
    "sexual": "SEXUAL",
    "violence": "VIOLENCE",
    "misconduct": "MISCONDUCT",
    "prompt_attack": "PROMPT_ATTACK",
}
# The sensitive-information types offered, by this file's name -> Bedrock's PII entity type.
PII_TYPES: dict[str, str] = {
    "email": "EMAIL",
    "phone": "PHONE",
    "us_social_security_number": "US_SOCIAL_SECURITY_NUMBER",
    "credit_debit_card_number": "CREDIT_DEBIT_CARD_NUMBER",
}
# Bedrock's limits on a guardrail's parts.
MAX_TOPICS = 30
MAX_TOPIC_EXAMPLES = 5
MAX_WORDS = 1000
MAX_MESSAGE = 500
TOPIC_NAME = re.compile(r"^[0-9A-Za-z_ !?.-]{1,100}$")

FilterName = Literal["hate", "insults", "sexual", "violence", "misconduct", "prompt_attack"]
PiiName = Literal["email", "phone", "us_social_security_number", "credit_debit_card_number"]


def _default_filters() -> dict[FilterName, Strength]:
    return {name: "HIGH" for name in CONTENT_FILTERS}  # type: ignore[misc]


def _default_pii() -> dict[PiiName, PiiAction]:
    return {"email": "ANONYMIZE", "phone": "ANONYMIZE", "us_social_security_number": "BLOCK",
            "credit_debit_card_number": "BLOCK"}  # fmt: skip


def _topic_name(name: str) -> str:
    if not TOPIC_NAME.match(name):
        raise ValueError(f"{name!r}: 1-100 letters, digits, spaces and _ ! ? . - (Bedrock's topic names)")
    return name


def _word(word: str) -> str:
    if word != word.strip() or not word or len(word) > 100 or any(ord(c) < 32 for c in word):
        raise ValueError(f"{word!r}: 1-100 characters, no surrounding whitespace or control characters")
    return word


def _message(text: str) -> str:
    if not text.strip() or len(text) > MAX_MESSAGE or any(ord(c) < 32 for c in text):
        raise ValueError(f"1-{MAX_MESSAGE} characters on one line")
    return text


class DeniedTopic(Section):
    """A topic the guardrail refuses (`[[guardrails.denied_topics]]`)."""

    name: Annotated[str, AfterValidator(_topic_name)] = Field(description="The topic's name (1-100 characters).")
    definition: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="What the topic covers, in a sentence (at most 200 characters)."
    )
    examples: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list,
        max_length=MAX_TOPIC_EXAMPLES,
        description=f"Up to {MAX_TOPIC_EXAMPLES} example prompts of the topic (at most 100 characters each).",
    )


class GuardrailSettings(Section):
    """The organisation's Bedrock guardrail (`aws_bedrock_guardrail` and a published version)."""

    enabled: bool = Field(
        False,
        description="Create the guardrail and a published version of it, let the task role apply exactly that "
        "guardrail, and check every request (and, with `check_output`, every generated answer) in the data plane. "
        "Not on the emulator (moto has no Bedrock guardrails). Default: false.",
    )
    check_input: bool = Field(
        True,
        description="Check each request's text before it reaches the gateway: a blocked one never reaches the "
        "provider (446). Routes whose input is not JSON text (image edits, audio uploads) are refused while this "
        "is on. Default: true.",
    )
    check_output: bool = Field(
        True,
        description="Check each generated answer (chat, completions, messages, responses) before the client gets "
        "it: a blocked one is replaced by a 446 refusal. Default: true.",
    )
    output_streams: Literal["buffer", "refuse"] = Field(
        "buffer",
        description="Streams under `check_output`: `buffer` checks the complete answer before its first event "
        "reaches the client (the events then arrive at once: the time to the first token becomes the whole "
        "answer's), `refuse` refuses `stream: true` with a 400. No stream delivers unchecked content. "
        "Default: buffer.",
    )
    content_filters: dict[FilterName, Strength] = Field(
        default_factory=_default_filters,
        description="Strength of each content filter, applied to inputs and answers: hate, insults, sexual, "
        "violence, misconduct, prompt_attack (inputs only, as Bedrock requires). A filter left out is HIGH; NONE "
        "turns it off. Default: every one HIGH.",
    )
    pii: dict[PiiName, PiiAction] = Field(
        default_factory=_default_pii,
        description="Sensitive information, BLOCK or ANONYMIZE (replaced by `{EMAIL}` and the like): email, "
        "phone, us_social_security_number, credit_debit_card_number. A type left out is not checked. Default: "
        "email and phone ANONYMIZE, the other two BLOCK.",
    )
    denied_topics: list[DeniedTopic] = Field(
        default_factory=list,
        max_length=MAX_TOPICS,
        description=f"Topics refused, each a `[[guardrails.denied_topics]]` table (at most {MAX_TOPICS}). "
        "Default: none.",
    )
    blocked_words: list[Annotated[str, AfterValidator(_word)]] = Field(
        default_factory=list,
        max_length=MAX_WORDS,
        description=f"Words and phrases refused (at most {MAX_WORDS}, 100 characters each). Default: none.",
    )
    managed_profanity: bool = Field(True, description="Refuse the managed profanity list. Default: true.")
    blocked_input_message: Annotated[str, AfterValidator(_message)] = Field(
        "This request was blocked by the organisation's guardrail.",
        description='What a client gets when its request is blocked (at most 500 characters). Default: "This '
        "request was blocked by the organisation's guardrail.\"",
    )
    blocked_output_message: Annotated[str, AfterValidator(_message)] = Field(
        "The answer was blocked by the organisation's guardrail.",
        description='What a client gets when the answer is blocked (at most 500 characters). Default: "The '
        "answer was blocked by the organisation's guardrail.\"",
    )
    timeout_ms: int = Field(
        5000,
        ge=200,
        le=30_000,
        description="How long the data plane waits for one ApplyGuardrail call. A check that fails or times out "
        "refuses the request (503): the guardrail fails closed. Default: 5000.",
    )

    def problems(self) -> Iterator[Problem]:
        if not self.enabled:
            for name in sorted(self.model_fields_set - {"enabled"}):
                yield Problem(name, "guardrails are off: set enabled = true or remove this key")
            return
        if not (self.check_input or self.check_output):
            yield Problem("check_input", "check_input and check_output are both false: nothing would be checked")
        if "output_streams" in self.model_fields_set and not self.check_output:
            yield Problem("output_streams", "applies only with check_output = true")
        seen: set[str] = set()
        for index, topic in enumerate(self.denied_topics):
            if topic.name.lower() in seen:
                yield Problem(f"denied_topics[{index}].name", f"{topic.name!r} is listed twice")
            seen.add(topic.name.lower())
        words = [word.lower() for word in self.blocked_words]
        doubles = sorted({word for word in words if words.count(word) > 1})
        if doubles:
            yield Problem("blocked_words", f"listed twice: {', '.join(doubles)}")
        active = [name for name, strength in self.content_filters.items() if strength != "NONE"]
        if not (active or self.pii or self.denied_topics or self.blocked_words or self.managed_profanity):
            yield Problem("content_filters", "every policy is off: the guardrail would check nothing")

    def strength(self, name: str) -> Strength:
        """A content filter's strength (a filter not listed is HIGH)."""
        return self.content_filters.get(name, "HIGH")  # type: ignore[call-overload, no-any-return]
