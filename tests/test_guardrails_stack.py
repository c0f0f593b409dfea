"""The organisation's guardrail as the stack synthesizes it (modules/guardrails.py):
the "guardrails" scenario (tests/scenarios.py, every policy in use), a bare
variant built here (policies left out), and "secure" (guardrails off).

The guardrail and its version are built through the typed 6.x bindings and
checked here as synthesized JSON; tests/test_terraform_validate.py runs
`terraform validate` on the shipped example (examples/guardrails/) against
the machine's hashicorp/aws 5.100, so only attributes both know are used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aigw.data_plane.contract import DATA_PLANE_CONTAINER, RUNTIME_VARIABLE
from aigw.data_plane.render import bundle_files
from aigw.environments import Environment
from aigw.settings import EnvironmentSettings
from modules.data_plane import data_plane_config
from security.stackdoc import StackDoc
from tests.scenarios import base, scenario_settings, vary

GUARDRAIL_TYPES = ("aws_bedrock_guardrail", "aws_bedrock_guardrail_version")


@pytest.fixture(scope="module")
def guarded(scenarios: dict[str, StackDoc]) -> StackDoc:
    return scenarios["guardrails"]


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> StackDoc:
    """A guardrail of sensitive information alone: every content filter NONE, no
    topics, no words, no profanity list."""
    from modules.stack import synthesize

    settings = vary(
        base(),
        guardrails={
            "enabled": True,
            "content_filters": dict.fromkeys(
                ("hate", "insults", "sexual", "violence", "misconduct", "prompt_attack"), "NONE"
            ),
            "pii": {"credit_debit_card_number": "BLOCK"},
            "managed_profanity": False,
        },
    )
    environment = Environment("guardrails-bare", Path(__file__), settings)
    outdir = tmp_path_factory.mktemp("guardrails-bare.out")
    synthesize([environment], outdir)
    return StackDoc.load(outdir / "stacks" / environment.stack_name / "cdk.tf.json")


@pytest.fixture(scope="module")
def words_only(tmp_path_factory: pytest.TempPathFactory) -> StackDoc:
    """A guardrail of blocked words alone, the managed profanity list turned off."""
    from modules.stack import synthesize

    settings = vary(
        base(),
        guardrails={
            "enabled": True,
            "content_filters": dict.fromkeys(
                ("hate", "insults", "sexual", "violence", "misconduct", "prompt_attack"), "NONE"
            ),
            "pii": {},
            "blocked_words": ["project-falcon"],
            "managed_profanity": False,
        },
    )
    environment = Environment("guardrails-words", Path(__file__), settings)
    outdir = tmp_path_factory.mktemp("guardrails-words.out")
    synthesize([environment], outdir)
    return StackDoc.load(outdir / "stacks" / environment.stack_name / "cdk.tf.json")


def bundle_settings(settings: EnvironmentSettings, environment: str) -> dict[str, Any]:
    """The settings.json of the data plane's bundle the stack ships for ``settings``."""
    files = bundle_files(data_plane_config(settings, environment))
    return json.loads(files["settings.json"])  # type: ignore[no-any-return]


def task_role_statements(stack: StackDoc) -> list[dict[str, Any]]:
    role = stack.resource("aws_iam_role", {"name": f"aigw-{stack.environment}-task"})
    (policy,) = [p for p in stack.resources("aws_iam_role_policy") if p["role"] == role.ref("id")]
    document = policy.policy("policy")
    assert document is not None
    return list(document["Statement"])


def test_each_content_filter_has_its_strength_prompt_attacks_are_checked_on_input_only_and_none_is_left_out(
    guarded: StackDoc,
) -> None:
    guardrail = guarded.resource("aws_bedrock_guardrail")
    (content,) = guardrail["content_policy_config"]
    filters = {f["type"]: (f["input_strength"], f["output_strength"]) for f in content["filters_config"]}
    assert filters == {
        "HATE": ("HIGH", "HIGH"),
        "INSULTS": ("MEDIUM", "MEDIUM"),  # lowered
        "SEXUAL": ("HIGH", "HIGH"),
        "VIOLENCE": ("HIGH", "HIGH"),
        "PROMPT_ATTACK": ("HIGH", "NONE"),  # Bedrock refuses an output strength for prompt attacks
    }  # MISCONDUCT is NONE: not written at all
    assert len(content["filters_config"]) == len(filters)


def test_sensitive_information_is_blocked_or_anonymized_as_configured(guarded: StackDoc) -> None:
    (policy,) = guarded.resource("aws_bedrock_guardrail")["sensitive_information_policy_config"]
    assert policy["pii_entities_config"] == [
        {"type": "EMAIL", "action": "ANONYMIZE"},
        {"type": "US_SOCIAL_SECURITY_NUMBER", "action": "BLOCK"},
    ]
    assert "regexes_config" not in policy


def test_each_denied_topic_is_a_deny_topic_with_its_definition_and_examples(guarded: StackDoc) -> None:
    (policy,) = guarded.resource("aws_bedrock_guardrail")["topic_policy_config"]
    assert policy["topics_config"] == [
        {"type": "DENY", "name": "Investment advice",
         "definition": "Recommendations about buying or selling securities.",
         "examples": ["Should I buy this stock?", "Which fund will rise?"]},
        {"type": "DENY", "name": "Medical diagnosis", "definition": "Telling someone which illness they have."},
    ]  # fmt: skip


def test_blocked_words_and_the_managed_profanity_list_are_refused(guarded: StackDoc) -> None:
    (policy,) = guarded.resource("aws_bedrock_guardrail")["word_policy_config"]
    assert policy["words_config"] == [{"text": "project-falcon"}, {"text": "Codename Heron"}]
    assert policy["managed_word_lists_config"] == [{"type": "PROFANITY"}]


def test_the_guardrail_is_named_for_the_environment_and_answers_with_the_configured_messages(
    guarded: StackDoc,
) -> None:
    guardrail = guarded.resource("aws_bedrock_guardrail")
    assert guardrail["name"] == "aigw-guardrails-guardrail"
    assert guardrail["blocked_input_messaging"] == "Refused by the Example Corp guardrail."
    assert guardrail["blocked_outputs_messaging"] == "The answer was withheld by the Example Corp guardrail."


def test_blocked_words_without_the_profanity_list_leave_the_list_out(words_only: StackDoc) -> None:
    (policy,) = words_only.resource("aws_bedrock_guardrail")["word_policy_config"]
    assert policy["words_config"] == [{"text": "project-falcon"}]
    assert "managed_word_lists_config" not in policy


def test_a_policy_with_nothing_in_it_is_left_out(bare: StackDoc) -> None:
    guardrail = bare.resource("aws_bedrock_guardrail")
    for policy in ("content_policy_config", "topic_policy_config", "word_policy_config"):
        assert policy not in guardrail.body, policy
    assert guardrail["sensitive_information_policy_config"] == [
        {"pii_entities_config": [{"type": "CREDIT_DEBIT_CARD_NUMBER", "action": "BLOCK"}]}
    ]
    # The defaults' messages when none are configured.
    assert guardrail["blocked_input_messaging"] == "This request was blocked by the organisation's guardrail."


def test_the_version_publishes_this_guardrail_anew_on_every_change_and_keeps_the_old_ones(guarded: StackDoc) -> None:
    guardrail = guarded.resource("aws_bedrock_guardrail")
    version = guarded.resource("aws_bedrock_guardrail_version")
    assert version["guardrail_arn"] == guardrail.ref("guardrail_arn")
    assert version["description"] == "aigw-guardrails: published by Terraform for the data plane"
    # Old tasks name the old version until a deployment has replaced them: it is kept.
    assert version["skip_destroy"] is True
    assert version["lifecycle"] == {
        "create_before_destroy": True,
        # A bare address: Terraform refuses "${...}" here.
        "replace_triggered_by": [guardrail.address],
    }


def test_the_task_role_may_apply_exactly_this_guardrail(guarded: StackDoc) -> None:
    guardrail = guarded.resource("aws_bedrock_guardrail")
    applying = [s for s in task_role_statements(guarded) if "bedrock:ApplyGuardrail" in json.dumps(s["Action"])]
    assert applying == [
        {
            "Sid": "ApplyOrganisationGuardrail",
            "Effect": "Allow",
            "Action": "bedrock:ApplyGuardrail",
            "Resource": guardrail.ref("guardrail_arn"),
        }
    ]


def test_without_guardrails_there_is_no_guardrail_and_no_grant_to_apply_one(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["secure"]
    for kind in GUARDRAIL_TYPES:
        assert stack.resources(kind) == [], kind
    assert not [s for s in task_role_statements(stack) if "ApplyGuardrail" in json.dumps(s)]
    runtime = json.loads(data_plane_environment(stack)[RUNTIME_VARIABLE])
    assert "guardrail" not in runtime
    assert (stack.outputs["guardrail_id"]["value"], stack.outputs["guardrail_version"]["value"]) == ("", "")
    alarms = [a["alarm_name"] for a in stack.resources("aws_cloudwatch_metric_alarm")]
    assert not [a for a in alarms if "guardrail" in a], alarms


def data_plane_environment(stack: StackDoc) -> dict[str, str]:
    (definition,) = stack.resources("aws_ecs_task_definition")
    containers = {c["name"]: c for c in json.loads(definition["container_definitions"])}
    return {v["name"]: v["value"] for v in containers[DATA_PLANE_CONTAINER]["environment"]}


def test_the_data_plane_is_told_the_guardrail_and_the_published_version(guarded: StackDoc) -> None:
    runtime = json.loads(data_plane_environment(guarded)[RUNTIME_VARIABLE])
    guardrail = guarded.resource("aws_bedrock_guardrail")
    version = guarded.resource("aws_bedrock_guardrail_version")
    # The published version, never the working draft.
    assert runtime["guardrail"] == {"id": guardrail.ref("guardrail_id"), "version": version.ref("version")}


def test_the_outputs_name_the_guardrail_and_its_published_version(guarded: StackDoc) -> None:
    outputs = guarded.outputs
    assert outputs["guardrail_id"]["value"] == guarded.resource("aws_bedrock_guardrail").ref("guardrail_id")
    assert outputs["guardrail_version"]["value"] == guarded.resource("aws_bedrock_guardrail_version").ref("version")


def test_an_alarm_fires_when_the_guardrail_could_not_check_requests(guarded: StackDoc) -> None:
    alarm = guarded.resource("aws_cloudwatch_metric_alarm", {"alarm_name": "aigw-guardrails-guardrail-unavailable"})
    (query,) = alarm["metric_query"]
    assert query["expression"] == (
        'SELECT SUM(GuardrailUnavailable) FROM SCHEMA("AIGateway", model, provider, status, team)'
    )
    assert (alarm["threshold"], alarm["comparison_operator"], alarm["treat_missing_data"]) == (
        0, "GreaterThanThreshold", "notBreaching",
    )  # fmt: skip
    topic = guarded.resource("aws_sns_topic").ref("arn")
    assert alarm["alarm_actions"] == [topic] and alarm["ok_actions"] == [topic]


def test_the_dashboard_shows_what_the_guardrail_blocked(guarded: StackDoc, scenarios: dict[str, StackDoc]) -> None:
    body = json.loads(guarded.resource("aws_cloudwatch_dashboard")["dashboard_body"])
    (panel,) = [w for w in body["widgets"] if w["properties"]["title"].startswith("Guardrail")]
    expressions = [m[0]["expression"] for m in panel["properties"]["metrics"]]
    schema = 'SCHEMA("AIGateway", model, provider, status, team)'
    assert expressions == [
        f"SELECT SUM({metric}) FROM {schema}"
        for metric in ("GuardrailBlockedInputs", "GuardrailBlockedOutputs", "GuardrailUnavailable")
    ]
    secure = json.loads(scenarios["secure"].resource("aws_cloudwatch_dashboard")["dashboard_body"])
    assert not [w for w in secure["widgets"] if w["properties"]["title"].startswith("Guardrail")]


def test_the_data_plane_applies_the_guardrail_at_bedrocks_regional_endpoint_over_tls_with_each_check_as_set() -> None:
    settings = vary(scenario_settings()["guardrails"], guardrails={"check_input": False})
    guardrail = bundle_settings(settings, "guardrails")["guardrail"]
    # TLS (443) to the region's bedrock-runtime endpoint, whose name the certificate is verified against.
    assert (guardrail["host"], guardrail["connect_host"], guardrail["connect_port"], guardrail["region"]) == (
        "bedrock-runtime.us-east-1.amazonaws.com", "bedrock-runtime.us-east-1.amazonaws.com", 443, "us-east-1",
    )  # fmt: skip
    assert (guardrail["check_input"], guardrail["check_output"], guardrail["output_streams"]) == (
        False, True, "refuse",
    )  # fmt: skip
    assert guardrail["timeout_ms"] == 3000


def test_only_a_data_plane_that_applies_a_guardrail_reports_guardrail_metrics() -> None:
    guardrail_metrics = {"GuardrailBlockedInputs", "GuardrailBlockedOutputs", "GuardrailUnavailable"}
    guarded = bundle_settings(scenario_settings()["guardrails"], "guardrails")["telemetry"]["metric_names"]
    assert guardrail_metrics <= set(guarded.values())
    secure = bundle_settings(scenario_settings()["secure"], "secure")["telemetry"]["metric_names"]
    assert not [name for name in secure.values() if name.startswith("Guardrail")], secure
