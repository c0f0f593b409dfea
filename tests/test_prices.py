"""The price list (config/pricing/prices.toml) and `make prices`
(tools/prices.py): every problem of a bad list at once and nothing written,
and an idempotent write into the pricing table (moto's DynamoDB)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tools import prices

GOOD = """version = 1
[[prices]]
provider = "openai"
model = "gpt-4o"
input = "2.50"
output = "10.00"
per_tokens = 1000000
currency = "USD"
effective_date = "2025-01-01"
"""


def test_the_shipped_price_list_is_valid() -> None:
    entries = prices.load()
    assert len(entries) >= 10
    assert {entry.provider for entry in entries} == {"openai", "azure-openai", "anthropic", "google", "bedrock"}


def test_a_bad_price_list_names_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "prices.toml"
    bad.write_text(
        GOOD.replace('"2.50"', "2.5").replace('"USD"', '"EUR"').replace("1000000", "1000001")
        + GOOD.split("\n", 1)[1].replace('"10.00"', '"-1"').replace('"gpt-4o"', '"gpt-4o mini"')
        + GOOD.split("\n", 1)[1]
    )
    with pytest.raises(ValueError) as raised:
        prices.load(bad)
    lines = str(raised.value).splitlines()
    expected = [
        "prices.toml: prices[0].per_tokens: must be 1000 or 1000000",
        "prices.toml: prices[0].currency: 'EUR': only USD is priced (EstimatedCostUsd)",
        'prices.toml: prices[0].input: a price is a string such as "2.50" (a TOML float would round)',
        "prices.toml: prices[1].model: 'gpt-4o mini' is not a model name",
        "prices.toml: prices[1].output: '-1' must be a price of 0 or more",
        "prices.toml: prices[2]: openai/gpt-4o from 2025-01-01 is listed twice",
    ]
    assert sorted(lines) == sorted(expected)


def test_a_bad_price_list_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "prices.toml"
    bad.write_text(GOOD.replace("version = 1", "version = 2"))
    assert prices.main(["prod", "--file", str(bad)]) == 2
    assert "version: must be 1" in capsys.readouterr().err


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        yield boto3.resource("dynamodb", region_name="us-east-1").create_table(
            TableName="aigw-test-prices",
            KeySchema=[
                {"AttributeName": "model_key", "KeyType": "HASH"},
                {"AttributeName": "effective_date", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "model_key", "AttributeType": "S"},
                {"AttributeName": "effective_date", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )


def test_writing_the_list_twice_changes_nothing_the_second_time(table: Any) -> None:
    entries = prices.load()
    first = prices.seed(table, entries)
    assert len(first["written"]) == len(entries) and first["unchanged"] == []
    second = prices.seed(table, entries)
    assert second["written"] == [] and len(second["unchanged"]) == len(entries)
    assert table.scan()["Count"] == len(entries)


def test_a_changed_price_is_rewritten_and_an_entry_the_list_lost_is_kept_and_named(table: Any, tmp_path: Path) -> None:
    listed = tmp_path / "prices.toml"
    listed.write_text(GOOD)
    prices.seed(table, prices.load(listed))
    table.put_item(Item={"model_key": "openai/old", "effective_date": "2024-01-01", "input_price": 1,
                         "output_price": 1, "per_tokens": 1000, "currency": "USD"})  # fmt: skip
    listed.write_text(GOOD.replace('"2.50"', '"2.00"'))
    report = prices.seed(table, prices.load(listed))
    assert report["written"] == ["openai/gpt-4o@2025-01-01"]
    assert report["only_in_table"] == ["openai/old@2024-01-01"]
    item = table.get_item(Key={"model_key": "openai/gpt-4o", "effective_date": "2025-01-01"})["Item"]
    assert str(item["input_price"]) == "2.00"


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('"2025-01-01"', '"Jan 2025"', "prices.toml: prices[0].effective_date: 'Jan 2025' is not a date (YYYY-MM-DD)"),
        ('"openai"', '"mistral"',
         "prices.toml: prices[0].provider: 'mistral' is not one of openai, azure-openai, anthropic, google, bedrock"),
    ],
)  # fmt: skip
def test_an_entry_of_an_unknown_provider_or_date_is_refused(tmp_path: Path, old: str, new: str, problem: str) -> None:
    bad = tmp_path / "prices.toml"
    bad.write_text(GOOD.replace(old, new))
    with pytest.raises(ValueError) as raised:
        prices.load(bad)
    assert str(raised.value).splitlines() == [problem]
