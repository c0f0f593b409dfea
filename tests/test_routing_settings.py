"""Validation of `[routing.<name>]`: each bad value named by its dotted field,
every problem in one run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_clients_settings import JWT
from tests.test_settings import VALID
from tests.test_settings import problems as file_problems


def problems(tmp_path: Path, text: str) -> list[str]:
    """The problem lines, from the file's name on (the directory is the test's)."""
    return [line[line.index("test.toml: ") :] for line in file_problems(tmp_path, text)]


FALLBACK = """
[routing.chat]
strategy = "fallback"
default = true
on_status_codes = [429, 500, 503]
retry_attempts = 1
retry_on_status_codes = [503]
[[routing.chat.targets]]
provider = "openai"
model = "gpt-4o-mini"
[[routing.chat.targets]]
provider = "bedrock"
model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
"""
SPREAD = """
[routing.spread]
strategy = "loadbalance"
skip_after_failures = 5
skip_seconds = 120
[[routing.spread.targets]]
provider = "openai"
weight = 3
[[routing.spread.targets]]
provider = "anthropic"
weight = 1
"""
SINGLE = """
[routing.one]
strategy = "single"
[[routing.one.targets]]
provider = "anthropic"
"""


def test_a_fallback_a_loadbalance_and_a_single_route_are_valid(tmp_path: Path) -> None:
    assert problems(tmp_path, JWT + FALLBACK + SPREAD + SINGLE) == []


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (FALLBACK.replace('"fallback"', '"random"'), "routing.chat.strategy", "'single', 'fallback' or 'loadbalance'"),
        (FALLBACK.replace("[routing.chat]", "[routing.Chat]").replace("routing.chat.", "routing.Chat."),
         "routing.Chat", "not a route name"),
        (SPREAD.replace('provider = "anthropic"', 'provider = "mistral"'), "routing.spread.targets[1].provider",
         "'openai', 'anthropic', 'google', 'azure' or 'bedrock'"),
        (SPREAD.replace("weight = 1", "weight = 0"), "routing.spread.targets[1].weight", "greater than or equal to 1"),
        (SPREAD.replace("weight = 1", "weight = 1.5"), "routing.spread.targets[1].weight", "valid integer"),
        (FALLBACK.replace("[429, 500, 503]", "[400, 500]"), "routing.chat.on_status_codes", "only 429 and 5xx"),
        (FALLBACK.replace("[429, 500, 503]", "[500, 500]"), "routing.chat.on_status_codes", "twice"),
        (FALLBACK.replace("retry_attempts = 1", "retry_attempts = 6"), "routing.chat.retry_attempts", "5"),
        (FALLBACK.replace("retry_on_status_codes = [503]", "retry_on_status_codes = [404]"),
         "routing.chat.retry_on_status_codes", "only 429 and 5xx"),
        (FALLBACK.replace('model = "gpt-4o-mini"', 'model = "gpt/../../x?key=1"').replace(
            'provider = "openai"', 'provider = "google"'), "routing.chat.targets[0].model", "not a model name google"),
        (FALLBACK.replace('model = "anthropic.claude-3-5-sonnet-20240620-v1:0"',
                          'model = "arn:aws:bedrock:us-east-1:1:custom-model/x"'),
         "routing.chat.targets[1].model", "not a model name bedrock"),
        (SINGLE + 'colour = "blue"\n', "routing.one.targets[0].colour",
         "unknown key; allowed: provider, model, weight"),
    ],
)  # fmt: skip
def test_each_bad_value_is_named_by_its_field(tmp_path: Path, text: str, field: str, message: str) -> None:
    lines = problems(tmp_path, JWT + text)
    assert any(line.startswith(f"test.toml: {field}: ") and message in line for line in lines), lines


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (SINGLE + '[[routing.one.targets]]\nprovider = "openai"\n', "routing.one.targets",
         "exactly one target, not 2"),
        (SPREAD.split("[[routing.spread.targets]]\nprovider = \"anthropic\"")[0], "routing.spread.targets",
         "at least two targets"),
        (FALLBACK.replace('model = "gpt-4o-mini"', "weight = 2"), "routing.chat.targets[0].weight",
         "only loadbalance routes weigh targets"),
        (SPREAD.replace("skip_seconds = 120", "skip_seconds = 120\non_status_codes = [500]"),
         "routing.spread.on_status_codes", "only fallback routes move on"),
        (FALLBACK.replace("retry_attempts = 1\n", ""), "routing.chat.retry_on_status_codes", "set retry_attempts"),
        (SINGLE.replace('"single"', '"single"\nskip_seconds = 10'), "routing.one.skip_seconds", "no other target"),
        (FALLBACK.replace("retry_attempts = 1", "retry_attempts = 5") + "".join(
            '[[routing.chat.targets]]\nprovider = "openai"\n' for _ in range(1)),
         "routing.chat.retry_attempts", "3 targets times (1 + 5 retries) is 18 upstream calls per request; at most 16"),
        (FALLBACK.replace("default = true", "default = false"), "routing",
         "exactly one route must have default = true (now: none)"),
        (FALLBACK + SPREAD.replace("[routing.spread]", "[routing.spread]\ndefault = true"), "routing",
         "exactly one route must have default = true (now: chat, spread)"),
        (SPREAD.replace('provider = "anthropic"', 'provider = "google"') + FALLBACK,
         "routing.spread.targets[1].provider",
         "google has no organisation key: add it to gateway.provider_keys, or use one of openai, anthropic, bedrock"),
    ],
)  # fmt: skip
def test_each_rule_across_fields_is_named_by_its_field(tmp_path: Path, text: str, field: str, message: str) -> None:
    lines = problems(tmp_path, JWT + text)
    assert any(line.startswith(f"test.toml: {field}: ") and message in line for line in lines), lines


def test_routes_need_jwt_auth(tmp_path: Path) -> None:
    lines = problems(tmp_path, VALID + FALLBACK)
    assert any(line.startswith("test.toml: routing: routes fill in the organisation's provider keys") for line in lines)


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    text = JWT + FALLBACK.replace("retry_attempts = 1", "retry_attempts = 9") + SINGLE.replace('"anthropic"', '"x"')
    lines = problems(tmp_path, text)
    assert any("routing.chat.retry_attempts" in line for line in lines), lines
    assert any("routing.one.targets[0].provider" in line for line in lines), lines


def test_the_removed_feature_switch_says_what_replaced_it(tmp_path: Path) -> None:
    lines = problems(tmp_path, JWT + "\n[features]\nenable_fallback_routing = true\n")
    assert lines == [
        "test.toml: features.enable_fallback_routing: replaced by [routing.<name>] tables (named routing configs, "
        "one of them the default; see the configuration reference)"
    ]


def test_a_route_may_not_make_more_than_sixteen_upstream_calls_but_may_make_sixteen(tmp_path: Path) -> None:
    eight = "".join('[[routing.wide.targets]]\nprovider = "openai"\n' for _ in range(8))
    ok = f'[routing.wide]\nstrategy = "fallback"\ndefault = true\nretry_attempts = 1\n{eight}'
    assert problems(tmp_path, JWT + ok) == []
    assert problems(tmp_path, JWT + ok.replace("retry_attempts = 1", "retry_attempts = 2")) != []


def test_429_and_5xx_may_trigger_a_fallback_and_a_retry(tmp_path: Path) -> None:
    text = FALLBACK.replace("[429, 500, 503]", "[429, 599]").replace(
        "retry_on_status_codes = [503]", "retry_on_status_codes = [429]"
    )
    assert problems(tmp_path, JWT + text) == []


def test_at_most_twenty_routes(tmp_path: Path) -> None:
    def single(name: str, default: bool = False) -> str:
        return (
            f'[routing.{name}]\nstrategy = "single"\ndefault = {str(default).lower()}\n'
            f'[[routing.{name}.targets]]\nprovider = "openai"\n'
        )

    twenty = single("r0", default=True) + "".join(single(f"r{i}") for i in range(1, 20))
    assert problems(tmp_path, JWT + twenty) == []
    lines = problems(tmp_path, JWT + twenty + single("r20"))
    assert any(line.startswith("test.toml: routing: 21 routes: at most 20") for line in lines), lines


def test_a_route_name_has_at_most_32_characters(tmp_path: Path) -> None:
    assert problems(tmp_path, JWT + FALLBACK.replace("routing.chat", "routing." + "a" * 32)) == []
    long = "a" * 33
    lines = problems(tmp_path, JWT + FALLBACK.replace("routing.chat", f"routing.{long}"))
    assert any(line.startswith(f"test.toml: routing.{long}: ") and "not a route name" in line for line in lines)


def test_a_route_has_at_most_eight_targets(tmp_path: Path) -> None:
    targets = "".join('[[routing.wide.targets]]\nprovider = "openai"\n' for _ in range(9))
    lines = problems(tmp_path, JWT + f'[routing.wide]\nstrategy = "loadbalance"\ndefault = true\n{targets}')
    assert any(line.startswith("test.toml: routing.wide.targets: ") and "at most 8" in line for line in lines), lines
