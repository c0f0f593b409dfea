"""Validation of `[guardrails]` (aigw/settings/guardrails.py): each bad value
named by its dotted field, the cross-field rules, the emulator's refusal, and
a bad file's exit 2 with every problem and nothing synthesized."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests import processes
from tests.conftest import ROOT
from tests.test_clients_settings import JWT
from tests.test_settings import VALID, own_state
from tests.test_settings import problems as file_problems

ON = "[guardrails]\nenabled = true\n"
EXAMPLE = ROOT / "examples" / "guardrails" / "guardrails.toml"


def problems(tmp_path: Path, text: str) -> list[str]:
    return [line[line.index("test.toml: ") :] for line in file_problems(tmp_path, text)]


def test_the_shipped_example_with_every_key_is_valid(tmp_path: Path) -> None:
    assert problems(tmp_path, EXAMPLE.read_text(encoding="utf-8")) == []


def test_the_defaults_alone_are_a_valid_guardrail(tmp_path: Path) -> None:
    assert problems(tmp_path, JWT + ON) == []


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("check_input = false\ncheck_output = false",
         "test.toml: guardrails.check_input: check_input and check_output are both false: nothing would be checked"),
        ('check_output = false\noutput_streams = "refuse"',
         "test.toml: guardrails.output_streams: applies only with check_output = true"),
        ('blocked_words = ["Falcon", "heron", "falcon"]',
         "test.toml: guardrails.blocked_words: listed twice: falcon"),
        ('[[guardrails.denied_topics]]\nname = "Stocks"\ndefinition = "Shares."\n'
         '[[guardrails.denied_topics]]\nname = "stocks"\ndefinition = "Bonds."',
         "test.toml: guardrails.denied_topics[1].name: 'stocks' is listed twice"),
        ('[[guardrails.denied_topics]]\nname = "stocks"\ndefinition = "Shares."\n'
         '[[guardrails.denied_topics]]\nname = "Stocks"\ndefinition = "Bonds."',
         "test.toml: guardrails.denied_topics[1].name: 'Stocks' is listed twice"),
        ('[[guardrails.denied_topics]]\nname = "Stocks/bonds"\ndefinition = "Shares."',
         "test.toml: guardrails.denied_topics[0].name: 'Stocks/bonds': 1-100 letters, digits, spaces and _ ! ? . - "
         "(Bedrock's topic names)"),
        ('blocked_input_message = "' + "x" * 501 + '"',
         "test.toml: guardrails.blocked_input_message: 1-500 characters on one line"),
        ('blocked_output_message = "  "',
         "test.toml: guardrails.blocked_output_message: 1-500 characters on one line"),
        ('content_filters = { hate = "EXTREME" }',
         "test.toml: guardrails.content_filters.hate: input should be 'NONE', 'LOW', 'MEDIUM' or 'HIGH' (got "
         "'EXTREME')"),
        ('pii = { email = "MASK" }',
         "test.toml: guardrails.pii.email: input should be 'BLOCK' or 'ANONYMIZE' (got 'MASK')"),
        ("timeout_ms = 100",
         "test.toml: guardrails.timeout_ms: input should be greater than or equal to 200 (got 100)"),
        ("timeout_ms = 30001",
         "test.toml: guardrails.timeout_ms: input should be less than or equal to 30000 (got 30001)"),
        ('blocked_words = ["fal\\tcon"]',
         "test.toml: guardrails.blocked_words[0]: 'fal\\tcon': 1-100 characters, no surrounding whitespace or control "
         "characters"),
        ('blocked_output_message = "Withheld.\\nAsk the platform team."',
         "test.toml: guardrails.blocked_output_message: 1-500 characters on one line"),
        ('pii = {}\nmanaged_profanity = false\ncontent_filters = { hate = "NONE", insults = "NONE", sexual = "NONE", '
         'violence = "NONE", misconduct = "NONE", prompt_attack = "NONE" }',
         "test.toml: guardrails.content_filters: every policy is off: the guardrail would check nothing"),
    ],
)  # fmt: skip
def test_each_bad_setting_is_named_by_its_field(tmp_path: Path, table: str, expected: str) -> None:
    assert problems(tmp_path, JWT + ON + table + "\n") == [expected]


def test_values_at_bedrocks_limits_are_accepted(tmp_path: Path) -> None:
    table = (
        f'blocked_input_message = "{"x" * 500}"\nblocked_output_message = "{"y" * 500}"\n'
        f'blocked_words = ["{"w" * 100}"]\ntimeout_ms = 30000\n'
    )
    assert problems(tmp_path, JWT + ON + table) == []


def test_keys_set_while_guardrails_are_off_are_refused_one_by_one(tmp_path: Path) -> None:
    assert problems(tmp_path, VALID + '[guardrails]\ntimeout_ms = 3000\nblocked_words = ["falcon"]\n') == [
        "test.toml: guardrails.blocked_words: guardrails are off: set enabled = true or remove this key",
        "test.toml: guardrails.timeout_ms: guardrails are off: set enabled = true or remove this key",
    ]


def test_the_emulator_refuses_guardrails_it_cannot_emulate(tmp_path: Path) -> None:
    text = JWT + '[emulator]\nendpoint = "http://127.0.0.1:4566"\n' + ON
    assert problems(tmp_path, text) == [
        "test.toml: guardrails.enabled: the emulator (moto) has no Bedrock guardrails; deploy them to AWS (the "
        "harness tests the data plane's checks against a mock ApplyGuardrail that verifies each call's signature)"
    ]


@pytest.mark.cli
def test_every_problem_of_every_bad_file_in_one_run_with_exit_2_and_nothing_written(tmp_path: Path) -> None:
    environments = tmp_path / "environments"
    environments.mkdir()
    # One file with values the fields refuse, one whose values only the table's rules refuse.
    (environments / "typed.toml").write_text(
        own_state(JWT, "typed") + ON + 'timeout_ms = 50\n[[guardrails.denied_topics]]\nname = "Stocks/bonds"\n'
        'definition = "Shares."\n'
    )
    (environments / "ruled.toml").write_text(
        own_state(JWT, "ruled") + ON + 'check_output = false\noutput_streams = "refuse"\nblocked_words = ["a", "A"]\n'
    )
    outdir = tmp_path / "out"
    env = {**os.environ, "AIGW_ENV_DIR": str(environments), "CDKTF_OUTDIR": str(outdir)}
    result = processes.run([sys.executable, ROOT / "main.py"], cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    fields = sorted(
        (file.rsplit("/", 1)[1], field)
        for file, field, _ in (line.split(": ", 2) for line in result.stderr.splitlines() if ".toml: " in line)
    )
    assert fields == [
        ("ruled.toml", "guardrails.blocked_words"), ("ruled.toml", "guardrails.output_streams"),
        ("typed.toml", "guardrails.denied_topics[0].name"), ("typed.toml", "guardrails.timeout_ms"),
    ], result.stderr  # fmt: skip
    assert not outdir.exists()
