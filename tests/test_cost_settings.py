"""Validation of `[cost_attribution]`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_clients_settings import JWT
from tests.test_settings import VALID
from tests.test_settings import problems as file_problems


def problems(tmp_path: Path, text: str) -> list[str]:
    return [line[line.index("test.toml: ") :] for line in file_problems(tmp_path, text)]


def test_cost_attribution_with_a_team_alarm_is_valid(tmp_path: Path) -> None:
    text = JWT + "[clients.search]\n[cost_attribution]\nenabled = true\nteam_daily_cost_alarm_usd = { search = 20 }\n"
    assert problems(tmp_path, text) == []


def test_the_default_team_may_have_an_alarm_without_clients_tables(tmp_path: Path) -> None:
    text = VALID + "[cost_attribution]\nenabled = true\nteam_daily_cost_alarm_usd = { default = 12.5 }\n"
    assert problems(tmp_path, text) == []


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("enabled = true\nteam_daily_cost_alarm_usd = { nope = 5 }",
         "test.toml: cost_attribution.team_daily_cost_alarm_usd: nope: not a team here (teams: default)"),
        ("enabled = true\nteam_daily_cost_alarm_usd = { default = 0 }",
         "test.toml: cost_attribution.team_daily_cost_alarm_usd.default: input should be greater than 0 (got 0)"),
        ("enabled = true\nreserved_concurrency = 0",
         "test.toml: cost_attribution.reserved_concurrency: input should be greater than or equal to 1 (got 0)"),
        ("reserved_concurrency = 3",
         "test.toml: cost_attribution.reserved_concurrency: cost attribution is off: set enabled = true or remove "
         "this key"),
        ("enabled = true\nbudget = 5",
         "test.toml: cost_attribution.budget: unknown key; allowed: enabled, reserved_concurrency, "
         "team_daily_cost_alarm_usd"),
    ],
)  # fmt: skip
def test_each_bad_value_is_named_by_its_field(tmp_path: Path, table: str, expected: str) -> None:
    assert expected in problems(tmp_path, VALID + "[cost_attribution]\n" + table + "\n")


def test_the_removed_feature_switch_says_what_replaced_it(tmp_path: Path) -> None:
    assert problems(tmp_path, VALID + "[features]\nenable_cost_attribution = true\n") == [
        "test.toml: features.enable_cost_attribution: replaced by [cost_attribution] enabled = true (with its own "
        "settings; see the configuration reference)"
    ]


def test_a_team_alarm_without_cost_attribution_is_named(tmp_path: Path) -> None:
    text = VALID + "[cost_attribution]\nteam_daily_cost_alarm_usd = { default = 5 }\n"
    assert problems(tmp_path, text) == [
        "test.toml: cost_attribution.team_daily_cost_alarm_usd: cost attribution is off: set enabled = true or "
        "remove this key"
    ]
