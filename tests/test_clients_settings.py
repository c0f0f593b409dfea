"""Validation of `[clients.<team>]` and `[shared_store]`: each bad value named
by its dotted field, every problem in one run, nothing synthesized."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests import processes
from tests.conftest import ROOT
from tests.test_settings import REQUIRED_ONLY, problems

# JWT auth on (HTTPS, a recent provider): what teams need.
JWT = f"""{REQUIRED_ONLY}
[edge]
certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
enable_jwt_auth = true
allowed_cidrs = ["0.0.0.0/0"]
"""


def test_three_teams_with_limits_are_valid(tmp_path: Path) -> None:
    text = (
        JWT
        + """
[clients.search]
requests_per_minute = 600
max_concurrent_requests = 20
[clients.batch]
scopes = ["invoke", "admin"]
token_validity_minutes = 15
max_tokens = 4096
[clients.batch.budget]
tokens = 5000000
period = "month"
mode = "shadow"
[clients.default]
"""
    )
    assert problems(tmp_path, text) == []


@pytest.mark.parametrize(
    ("table", "field", "message"),
    [
        ('[clients.search]\nscopes = ["invoke", "write"]', "clients.search.scopes[1]", "'invoke' or 'admin'"),
        ('[clients.search]\nscopes = ["admin"]', "clients.search.scopes", "lacks invoke"),
        ('[clients.search]\nscopes = ["invoke", "invoke"]', "clients.search.scopes", "twice"),
        ("[clients.search]\nscopes = []", "clients.search.scopes", "at least 1"),
        ("[clients.Search]", "clients.Search", "not a team name"),
        ("[clients.search-]", "clients.search-", "not a team name"),
        (f"[clients.{'a' * 33}]", f"clients.{'a' * 33}", "not a team name"),
        ("[clients.search]\ntoken_validity_minutes = 4", "clients.search.token_validity_minutes", "5"),
        ("[clients.search]\ntoken_validity_minutes = 1441", "clients.search.token_validity_minutes", "1440"),
        ("[clients.search]\nrequests_per_minute = 0", "clients.search.requests_per_minute", "1"),
        ("[clients.search]\nmax_concurrent_requests = -1", "clients.search.max_concurrent_requests", "1"),
        ("[clients.search]\nmax_tokens = 0", "clients.search.max_tokens", "1"),
        ("[clients.search.budget]\ntokens = 0", "clients.search.budget.tokens", "1"),
        ('[clients.search.budget]\ntokens = 10\nperiod = "week"', "clients.search.budget.period", "'day' or 'month'"),
        (
            "[clients.search.budget]\ntokens = 10\nalert_at_percent = 101",
            "clients.search.budget.alert_at_percent",
            "100",
        ),
        ('[clients.search.budget]\ntokens = 10\nmode = "log"', "clients.search.budget.mode", "'enforce' or 'shadow'"),
        ('[clients.search.budget]\nperiod = "day"', "clients.search.budget.tokens", "required"),
        ("[clients.search]\nrate = 5", "clients.search.rate", "unknown key"),
    ],
)
def test_a_bad_team_setting_is_named_by_its_field(tmp_path: Path, table: str, field: str, message: str) -> None:
    lines = problems(tmp_path, JWT + "\n" + table + "\n")
    assert any(f"test.toml: {field}: " in line and message in line for line in lines), lines


def test_teams_without_jwt_auth_are_refused(tmp_path: Path) -> None:
    text = REQUIRED_ONLY + '\n[edge]\nallowed_cidrs = ["203.0.113.0/24"]\n\n[clients.search]\n'
    lines = problems(tmp_path, text)
    assert any("test.toml: clients: " in line and "edge.enable_jwt_auth" in line for line in lines), lines


def test_more_teams_than_the_load_balancer_can_admit_are_refused(tmp_path: Path) -> None:
    text = JWT + "".join(f"\n[clients.team{i}]\n" for i in range(11))
    lines = problems(tmp_path, text)
    assert any("test.toml: clients: 11 teams: at most 10" in line for line in lines), lines
    assert problems(tmp_path, JWT + "".join(f"\n[clients.team{i}]\n" for i in range(10))) == []


def test_a_team_named_twice_is_a_file_error(tmp_path: Path) -> None:
    lines = problems(tmp_path, JWT + "\n[clients.search]\n\n[clients.search]\n")
    assert len(lines) == 1 and "test.toml" in lines[0] and "search" in lines[0], lines


def test_a_shared_store_table_without_any_counted_team_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, JWT + "\n[clients.search]\nmax_tokens = 10\n\n[shared_store]\nmax_data_storage_gb = 2\n")
    assert any("test.toml: shared_store: no team has" in line for line in lines), lines


def test_limits_on_the_emulator_are_refused_because_it_has_no_serverless_cache(tmp_path: Path) -> None:
    text = JWT + '\n[emulator]\nendpoint = "http://127.0.0.1:4566"\n\n[clients.search]\nrequests_per_minute = 5\n'
    lines = problems(tmp_path, text)
    assert any("test.toml: clients: " in line and "ElastiCache Serverless" in line for line in lines), lines


def test_the_removed_multi_client_switch_points_at_the_clients_tables(tmp_path: Path) -> None:
    lines = problems(tmp_path, JWT + "\n[features]\nenable_multi_client = true\n")
    assert [line.rsplit("/", 1)[1] for line in lines] == [
        "test.toml: features.enable_multi_client: replaced by one [clients.<team>] table per consuming team (each "
        "gets its own Cognito app client, scopes and limits; see the configuration reference)"
    ]


def test_every_problem_of_a_bad_file_in_one_run_with_exit_2_and_nothing_written(tmp_path: Path) -> None:
    environments = tmp_path / "environments"
    environments.mkdir()
    (environments / "bad.toml").write_text(
        JWT + '\n[clients.Search]\n[clients.chat]\nrequests_per_minute = 0\nscopes = ["admin"]\n'
    )
    outdir = tmp_path / "out"
    env = {**os.environ, "AIGW_ENV_DIR": str(environments), "CDKTF_OUTDIR": str(outdir)}
    result = processes.run([sys.executable, ROOT / "main.py"], cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    fields = {
        line.split(": ")[1]
        for line in result.stderr.splitlines()
        if line.endswith(("bad.toml", "")) and "bad.toml: " in line
    }
    assert fields == {"clients.Search", "clients.chat.requests_per_minute", "clients.chat.scopes"}, result.stderr
    assert not outdir.exists()


def test_jwt_auth_without_any_provider_key_is_refused_before_synthesis(tmp_path: Path) -> None:
    # Found by the attack run: it passed validation and then failed inside synthesis.
    lines = problems(tmp_path, JWT.replace("[edge]", "[gateway]\nprovider_keys = []\n\n[edge]"))
    assert any("test.toml: gateway.provider_keys: empty while edge.enable_jwt_auth is on" in line for line in lines)
