"""Validation of `[response_cache]` and `clients.<team>.cache`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_clients_settings import JWT
from tests.test_settings import VALID
from tests.test_settings import problems as file_problems


def problems(tmp_path: Path, text: str) -> list[str]:
    return [line[line.index("test.toml: ") :] for line in file_problems(tmp_path, text)]


CACHE = "[response_cache]\nenabled = true\nttl_seconds = 600\nmax_entry_kib = 64\n"


def test_a_cache_with_shared_and_no_store_teams_is_valid(tmp_path: Path) -> None:
    text = JWT + CACHE + '[clients.search]\ncache = "shared"\n[clients.legal]\ncache = "no-store"\n[clients.default]\n'
    assert problems(tmp_path, text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VALID + CACHE, "test.toml: response_cache.enabled: cached answers are keyed on the team of the token the "
         "load balancer validates; without JWT auth every client would receive the others' answers; turn on "
         "edge.enable_jwt_auth"),
        (JWT + '[emulator]\nendpoint = "http://127.0.0.1:4566"\n' + CACHE,
         "test.toml: response_cache.enabled: the response cache lives in ElastiCache Serverless, which the emulator "
         "(moto) does not emulate; deploy it to AWS (the harness tests it against a real Redis)"),
        (JWT + "[response_cache]\nttl_seconds = 60\n",
         "test.toml: response_cache.ttl_seconds: the response cache is off: set enabled = true or remove this key"),
        (JWT + '[clients.search]\ncache = "shared"\n',
         "test.toml: clients.search.cache: the response cache is off: set response_cache.enabled or remove this key"),
        (JWT + CACHE + '[clients.search]\ncache = "public"\n',
         "test.toml: clients.search.cache: input should be 'private', 'shared' or 'no-store' (got 'public')"),
        (JWT + CACHE.replace("600", "0"),
         "test.toml: response_cache.ttl_seconds: input should be greater than or equal to 1 (got 0)"),
        (JWT + CACHE.replace("64", "20000"),
         "test.toml: response_cache.max_entry_kib: input should be less than or equal to 10240 (got 20000)"),
        (JWT + "[shared_store]\nmax_data_storage_gb = 2\n",
         "test.toml: shared_store: no team has requests_per_minute, max_concurrent_requests or a budget and the "
         "response cache is off, so no store is created; remove this table"),
    ],
)  # fmt: skip
def test_each_bad_setting_is_named_by_its_field(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in problems(tmp_path, text)


def test_the_cache_alone_creates_the_store_and_a_store_table_may_size_it(tmp_path: Path) -> None:
    assert problems(tmp_path, JWT + CACHE + "[shared_store]\nmax_data_storage_gb = 2\n") == []


def test_the_removed_feature_switch_says_what_replaced_it(tmp_path: Path) -> None:
    assert problems(tmp_path, VALID + "[features]\nenable_response_cache = true\n") == [
        "test.toml: features.enable_response_cache: replaced by [response_cache] enabled = true (and "
        "clients.<team>.cache per team; see the configuration reference)"
    ]
