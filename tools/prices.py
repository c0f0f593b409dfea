"""Writes the price list into an environment's pricing table:
``make prices ENV=<env>`` (``python -m tools.prices <env> [--file F] [--check]``).

The list (config/pricing/prices.toml) is validated first: every problem is
reported, nothing is written, exit 2. Then each entry is put into the table
``aigw-<env>-prices`` (the stack creates it with `[cost_attribution]`), keyed
by ``<provider>/<model>`` and the effective date. Idempotent: an entry that is
already there with the same prices is left alone; one whose prices changed is
overwritten and reported; entries the list no longer has are reported, never
deleted (a past request keeps the price it had). AWS credentials come from
the shell; an emulator environment writes to its emulator. ``--check``
validates the list and touches nothing.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from aigw.environments import environment_named_or_report

ROOT = Path(__file__).resolve().parent.parent
PRICE_LIST = ROOT / "config" / "pricing" / "prices.toml"
PER_TOKENS = (1000, 1_000_000)
CURRENCIES = ("USD",)
_PROVIDERS = ("openai", "azure-openai", "anthropic", "google", "bedrock")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$")
_FIELDS = {"provider", "model", "input", "output", "per_tokens", "currency", "effective_date"}


def table_name(environment: str) -> str:
    return f"aigw-{environment}-prices"


@dataclass(frozen=True)
class Entry:
    provider: str
    model: str
    input: Decimal
    output: Decimal
    per_tokens: int
    currency: str
    effective_date: str

    @property
    def item(self) -> dict[str, Any]:
        return {
            "model_key": f"{self.provider}/{self.model}",
            "effective_date": self.effective_date,
            "input_price": self.input,
            "output_price": self.output,
            "per_tokens": self.per_tokens,
            "currency": self.currency,
        }


def _decimal(value: object, where: str, problems: list[str]) -> Decimal:
    if not isinstance(value, str):
        problems.append(f'{where}: a price is a string such as "2.50" (a TOML float would round)')
        return Decimal(0)
    try:
        number = Decimal(value)
    except InvalidOperation:
        problems.append(f"{where}: {value!r} is not a decimal number")
        return Decimal(0)
    if not number.is_finite() or number < 0:
        problems.append(f"{where}: {value!r} must be a price of 0 or more")
    return number


def load(path: Path = PRICE_LIST) -> list[Entry]:
    """The validated entries; raises ValueError with every problem (one per line)."""
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    problems: list[str] = []
    if document.get("version") != 1:
        problems.append(f"{path.name}: version: must be 1")
    entries: list[Entry] = []
    seen: set[tuple[str, str, str]] = set()
    for index, raw in enumerate(document.get("prices", [])):
        where = f"{path.name}: prices[{index}]"
        unknown, missing = set(raw) - _FIELDS, _FIELDS - set(raw)
        if unknown or missing:
            problems.append(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
            continue
        if raw["provider"] not in _PROVIDERS:
            problems.append(f"{where}.provider: {raw['provider']!r} is not one of {', '.join(_PROVIDERS)}")
        if not isinstance(raw["model"], str) or not _MODEL.match(raw["model"]):
            problems.append(f"{where}.model: {raw['model']!r} is not a model name")
        if raw["per_tokens"] not in PER_TOKENS:
            problems.append(f"{where}.per_tokens: must be 1000 or 1000000")
        if raw["currency"] not in CURRENCIES:
            problems.append(f"{where}.currency: {raw['currency']!r}: only USD is priced (EstimatedCostUsd)")
        date = raw["effective_date"]
        if isinstance(date, datetime.date):
            date = date.isoformat()
        if not isinstance(date, str) or not re.match(r"^\d{4}-\d{2}-\d{2}$", date):
            problems.append(f"{where}.effective_date: {date!r} is not a date (YYYY-MM-DD)")
            continue
        key = (str(raw["provider"]), str(raw["model"]), date)
        if key in seen:
            problems.append(f"{where}: {key[0]}/{key[1]} from {date} is listed twice")
        seen.add(key)
        entries.append(
            Entry(
                provider=str(raw["provider"]),
                model=str(raw["model"]),
                input=_decimal(raw["input"], f"{where}.input", problems),
                output=_decimal(raw["output"], f"{where}.output", problems),
                per_tokens=int(raw["per_tokens"]),
                currency=str(raw["currency"]),
                effective_date=date,
            )
        )
    if problems:
        raise ValueError("\n".join(problems))
    return entries


def seed(table: Any, entries: list[Entry]) -> dict[str, list[str]]:
    """Writes the entries into ``table`` (a boto3 DynamoDB Table); returns what was
    written, left alone and found only in the table, by `<provider>/<model>@<date>`."""
    report: dict[str, list[str]] = {"written": [], "unchanged": [], "only_in_table": []}
    listed = set()
    for entry in entries:
        item = entry.item
        name = f"{item['model_key']}@{entry.effective_date}"
        listed.add((item["model_key"], entry.effective_date))
        key = {"model_key": item["model_key"], "effective_date": entry.effective_date}
        current = table.get_item(Key=key).get("Item")
        if current == item:
            report["unchanged"].append(name)
            continue
        table.put_item(Item=item)
        report["written"].append(name)
    scan: dict[str, Any] = {"ProjectionExpression": "model_key, effective_date"}
    while True:
        page = table.scan(**scan)
        for item in page.get("Items", []):
            if (item["model_key"], item["effective_date"]) not in listed:
                report["only_in_table"].append(f"{item['model_key']}@{item['effective_date']}")
        if "LastEvaluatedKey" not in page:
            break
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("environment", nargs="?", help="environment name (environments/<env>.toml)")
    parser.add_argument("--file", type=Path, default=PRICE_LIST, help="the price list (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="validate the price list only")
    args = parser.parse_args(argv)
    try:
        entries = load(args.file)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.file}: {len(entries)} prices, valid")
        return 0
    if not args.environment:
        parser.error("name the environment (or --check)")
    environment = environment_named_or_report(args.environment)
    if environment is None:
        return 2
    settings = environment.settings
    if not settings.cost_attribution.enabled:
        print(f"{args.environment}: [cost_attribution] is not enabled: there is no pricing table", file=sys.stderr)
        return 2
    import boto3

    endpoint = settings.emulator.endpoint or None
    table = boto3.resource("dynamodb", region_name=settings.region, endpoint_url=endpoint).Table(
        table_name(args.environment)
    )
    report = seed(table, entries)
    print(
        f"{table_name(args.environment)}: {len(report['written'])} written, {len(report['unchanged'])} unchanged"
        + (
            f", in the table but not the list (kept): {', '.join(report['only_in_table'])}"
            if report["only_in_table"]
            else ""
        )
    )
    for name in report["written"]:
        print(f"  wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
