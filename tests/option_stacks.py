"""Environments for the service-option tests (deployment strategy,
autoscaling, existing VPC, ECS Exec), built in the test from a small valid
base rather than read from environments/: each names only what it is about.

``option_settings`` validates a variant the way a file is validated (field
rules, then cross-field rules), so no test can synthesize a configuration a
user could not write; ``option_problems`` returns the problem lines a file
with that content gets, exactly as ``main.py`` prints them."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

from aigw.environments import ConfigError, Environment, load_environments
from aigw.settings import EnvironmentSettings

# The smallest valid environment file: HTTP only, no JWT auth, two zones.
BASE_TOML = """
region = "us-east-1"

[backend]
bucket = "tfstate-bucket"
key = "ai-gateway/options.tfstate"
dynamodb_table = "tfstate-lock"
region = "us-east-1"

[edge]
allowed_cidrs = ["203.0.113.0/24"]
"""
CERTIFICATE_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
VPC_ID = "vpc-0a1b2c3d4e5f60718"
PUBLIC_SUBNET_IDS = ["subnet-0aa00000000000001", "subnet-0aa00000000000002"]
PRIVATE_SUBNET_IDS = ["subnet-0bb00000000000001", "subnet-0bb00000000000002"]
EXISTING_VPC = {"vpc_id": VPC_ID, "public_subnet_ids": PUBLIC_SUBNET_IDS, "private_subnet_ids": PRIVATE_SUBNET_IDS}


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied table by table (nested tables merge, values replace)."""
    result = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def option_document(changes: dict[str, Any]) -> dict[str, Any]:
    return merged(tomllib.loads(BASE_TOML), changes)


def option_settings(changes: dict[str, Any]) -> EnvironmentSettings:
    """The base environment with ``changes``; raises ValueError naming every problem."""
    settings = EnvironmentSettings.model_validate(option_document(changes))
    problems = [f"{p.field}: {p.message}" for p in settings.problems()]
    if problems:
        raise ValueError(f"not a valid environment: {problems}")
    return settings


def to_toml(document: dict[str, Any]) -> str:
    """A TOML file holding ``document`` (tables of scalars, lists and tables, as environment files have)."""

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, str):
            return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(item, list):
            return "[" + ", ".join(value(v) for v in item) + "]"
        return repr(item)

    def key_of(key: str) -> str:
        return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else value(key)

    def table(path: str, body: dict[str, Any]) -> list[str]:
        lines = [f"[{path}]"] if path else []
        lines += [f"{key_of(key)} = {value(item)}" for key, item in body.items() if not isinstance(item, dict)]
        for key, item in body.items():
            if isinstance(item, dict):
                lines += ["", *table(f"{path}.{key_of(key)}" if path else key_of(key), item)]
        return lines

    return "\n".join(table("", document)) + "\n"


def option_problems(directory: Path, changes: dict[str, Any], name: str = "options") -> list[str]:
    """The problem lines of an environment file holding the base with ``changes`` (empty when valid)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.toml").write_text(to_toml(option_document(changes)), encoding="utf-8")
    try:
        load_environments(directory)
    except ConfigError as error:
        return error.lines
    return []


def option_environment(name: str, changes: dict[str, Any]) -> Environment:
    return Environment(name, Path(__file__), option_settings(changes))
