"""Find, parse and validate every environment file before anything is built.

``load_environments`` either returns one validated ``Environment`` per
``*.toml`` file or raises ``ConfigError`` carrying every problem of every file,
each as ``<file>: <dotted.field>: <what is wrong>``. Besides each file's own
rules, no two files may keep their state in the same S3 object (bucket and key).
An emulator endpoint of `auto` is resolved to this checkout's own
(aigw/emulator_endpoint.py).
"""

from __future__ import annotations

import difflib
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from aigw.emulator_endpoint import AUTO, checkout_endpoint
from aigw.settings import ENVIRONMENT_NAME, REMOVED_KEYS, EnvironmentSettings, Problem

ENV_DIR_VARIABLE = "AIGW_ENV_DIR"
DEFAULT_ENV_DIR = Path(__file__).resolve().parent.parent / "environments"
# One folder per example deployment, each with its own environment files.
EXAMPLES_DIR = DEFAULT_ENV_DIR.parent / "examples"
STACK_PREFIX = "ai-gateway-"


@dataclass(frozen=True)
class Environment:
    """A validated environment: its name (the file stem), file and settings."""

    name: str
    path: Path
    settings: EnvironmentSettings

    @property
    def stack_name(self) -> str:
        return f"{STACK_PREFIX}{self.name}"


class ConfigError(Exception):
    """Every problem found in the environment files, one line each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def environment_dir() -> Path:
    """The directory of environment files: ``$AIGW_ENV_DIR`` or ``environments/``."""
    configured = os.environ.get(ENV_DIR_VARIABLE)
    return Path(configured) if configured else DEFAULT_ENV_DIR


def shipped_dirs() -> list[Path]:
    """Every directory of environment files this repository ships:
    environments/ and each examples/<name>/ folder."""
    return [DEFAULT_ENV_DIR, *sorted(p for p in EXAMPLES_DIR.iterdir() if p.is_dir())]


def shipped_environments() -> list[Environment]:
    """The environments of every shipped directory (what the tests and the security gate cover)."""
    return [env for directory in shipped_dirs() for env in load_environments(directory)]


def load_environments(directory: Path | None = None) -> list[Environment]:
    directory = directory if directory is not None else environment_dir()
    if not directory.is_dir():
        raise ConfigError([f"{directory}: {ENV_DIR_VARIABLE}: not a directory of environment files"])
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise ConfigError([f"{directory}: (directory): no *.toml environment files found"])
    environments: list[Environment] = []
    lines: list[str] = []
    # Which file first claimed each state object (bucket, key).
    state_objects: dict[tuple[str, str], str] = {}
    for path in files:
        environment, problems, raw = _load(path)
        label = _display(path)
        lines += [f"{label}: {problem.field}: {problem.message}" for problem in problems]
        state_object = _state_object(raw)
        if state_object is not None:
            owner = state_objects.setdefault(state_object, label)
            if owner != label:
                lines.append(f"{label}: backend.key: {_shared_state_message(state_object, owner)}")
        if environment is not None:
            environments.append(environment)
    if lines:
        raise ConfigError(lines)
    return environments


def _state_object(raw: dict[str, Any]) -> tuple[str, str] | None:
    """The S3 object (bucket, key) a file's state lives in, read even when
    another part of the file is invalid, so that one run reports everything."""
    backend = raw.get("backend")
    if not isinstance(backend, dict):
        return None
    bucket, key = backend.get("bucket"), backend.get("key")
    if isinstance(bucket, str) and isinstance(key, str) and bucket and key:
        return bucket, key
    return None


def _shared_state_message(state_object: tuple[str, str], owner: str) -> str:
    bucket, key = state_object
    return (
        f"bucket {bucket!r} with key {key!r} is already the state of {owner}; two environments on one state "
        "object overwrite each other's state on deploy. Give this environment its own backend.key "
        "(sharing the bucket or the lock table is fine)"
    )


def environment_named(name: str, directory: Path | None = None) -> Environment:
    """The environment called ``name``; ``ConfigError`` with every problem of
    every file, or naming the environments there are when none is called so."""
    environments = {environment.name: environment for environment in load_environments(directory)}
    if name not in environments:
        raise ConfigError([f"unknown environment {name!r}; known: {', '.join(sorted(environments))}"])
    return environments[name]


def environment_named_or_report(name: str) -> Environment | None:
    """For a command: the environment called ``name``, or None once every
    problem is printed to standard error (the command then exits 2)."""
    try:
        return environment_named(name)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return None


def load_environment(path: Path) -> tuple[Environment | None, list[Problem]]:
    """Validate one file; returns the environment only when there is no problem.
    Rules across files (one state object per environment) need ``load_environments``."""
    environment, problems, _ = _load(path)
    return environment, problems


def _load(path: Path) -> tuple[Environment | None, list[Problem], dict[str, Any]]:
    """Validate one file: the environment (when valid), its problems, and its parsed TOML."""
    problems: list[Problem] = []
    if not ENVIRONMENT_NAME.match(path.stem):
        problems.append(
            Problem(
                "(file name)",
                f"environment name {path.stem!r} must be 1-16 characters of lowercase a-z, 0-9 and '-', "
                "starting with a letter (it becomes part of resource names)",
            )
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        return None, [*problems, Problem("(syntax)", f"not valid TOML: {error}")], {}
    except (OSError, UnicodeDecodeError) as error:
        return None, [*problems, Problem("(file)", f"cannot be read: {error}")], {}

    try:
        settings = EnvironmentSettings.model_validate(raw)
    except ValidationError as error:
        problems += _from_pydantic(error)
        failed = {str(detail["loc"][0]) for detail in error.errors() if detail["loc"]}
        problems += _problems_of_valid_parts(raw, failed)
        return None, problems, raw
    problems += settings.problems()
    if problems:
        return None, problems, raw
    if settings.emulator.endpoint == AUTO:
        emulator = settings.emulator.model_copy(update={"endpoint": checkout_endpoint()})
        settings = settings.model_copy(update={"emulator": emulator})
    return Environment(path.stem, path, settings), [], raw


# Stand-ins for required keys whose own value was invalid, so that the rules
# not reading them can still run; problems from rules that do read them are dropped.
_STAND_INS: dict[str, Any] = {
    "region": "us-east-1",
    "backend": {"bucket": "stand-in", "key": "stand-in", "dynamodb_table": "stand-in", "region": "us-east-1"},
}


def _problems_of_valid_parts(raw: dict[str, Any], failed: set[str]) -> list[Problem]:
    """Cross-field rules over the keys that did validate, so one run shows everything."""
    partial = {key: value for key, value in raw.items() if key not in failed}
    partial.update({key: value for key, value in _STAND_INS.items() if key not in partial})
    try:
        settings = EnvironmentSettings.model_validate(partial)
    except ValidationError:
        return []
    return [problem for problem in settings.problems() if not problem.inputs & failed]


def _from_pydantic(error: ValidationError) -> list[Problem]:
    problems = []
    for detail in error.errors():
        loc = detail["loc"]
        field = _dotted(loc)
        kind = detail["type"]
        if kind == "extra_forbidden":
            message = REMOVED_KEYS.get(field) or _unknown_key_message(loc)
        elif kind == "missing":
            message = "required key is missing"
        elif kind == "value_error":
            message = str(detail["ctx"]["error"])
        else:
            message = f"{detail['msg'][0].lower()}{detail['msg'][1:]} (got {detail['input']!r})"
        problems.append(Problem(field, message))
    return problems


def _unknown_key_message(loc: tuple[int | str, ...]) -> str:
    model: type[BaseModel] | None = EnvironmentSettings
    keyed = False
    for part in loc[:-1]:
        if isinstance(part, int):  # an item of a list of tables (``list[X]``): same model
            continue
        if keyed:  # the name of one table in a table of named tables (``dict[str, X]``): same model
            keyed = False
            continue
        annotation = model.model_fields[str(part)].annotation if model and str(part) in model.model_fields else None
        keyed = get_origin(annotation) is dict
        # A table may be optional (``X | None``) or a table of named tables: look through the union or the dict.
        candidates = [annotation, *get_args(annotation)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    if model is None:
        return "unknown key"
    allowed = list(model.model_fields)
    key = str(loc[-1])
    # A truncated key ("enable_jwt") is likelier a prefix of the intended one
    # than the closest string overall ("enable_waf").
    prefixed = [name for name in allowed if name.startswith(key)]
    guess = prefixed[:1] if len(prefixed) == 1 else difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean {guess[0]!r}? " if guess else ""
    return f"unknown key; {hint}allowed: {', '.join(allowed)}"


def _dotted(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker of a bad name in a table of named tables: the name is the field
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
