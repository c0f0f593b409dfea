"""The one reviewed place where a finding may be accepted.

Each entry in security/suppressions.toml names one check (checkov `CKV…` or
our `AIGW-…`), one construct path (as in cdktf metadata, e.g.
`edge/alb`), optionally the environments it applies to, and a reason
of at least 10 characters (as cdk-nag requires). Blanket skips are refused.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

REGISTRY = Path(__file__).resolve().with_name("suppressions.toml")
_CHECK_ID = re.compile(r"^(CKV2?_AWS_\d+|AIGW-[A-Z0-9-]+)$")
_CONSTRUCT = re.compile(r"^[a-z][a-z0-9-]*(/[A-Za-z0-9_.-]+)+$")
MIN_REASON = 10


@dataclass(frozen=True)
class Suppression:
    check: str
    construct: str
    reason: str
    environments: tuple[str, ...] = ()

    def covers(self, check: str, construct: str, environment: str) -> bool:
        return (
            self.check == check
            and self.construct == construct
            and (not self.environments or environment in self.environments)
        )


class SuppressionError(ValueError):
    pass


def load(path: Path = REGISTRY) -> list[Suppression]:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = set(raw) - {"suppression"}
    if unknown:
        raise SuppressionError(f"{path}: unknown top-level keys {sorted(unknown)}")
    entries: list[Suppression] = []
    problems: list[str] = []
    for index, entry in enumerate(raw.get("suppression", [])):
        where = f"{path}: suppression[{index}]"
        extra = set(entry) - {"check", "construct", "reason", "environments"}
        if extra:
            problems.append(f"{where}: unknown keys {sorted(extra)}")
        check, construct = str(entry.get("check", "")), str(entry.get("construct", ""))
        reason = str(entry.get("reason", "")).strip()
        if not _CHECK_ID.match(check):
            problems.append(f"{where}.check: {check!r} is not a checkov (CKV_AWS_n) or AIGW- rule id")
        if not _CONSTRUCT.match(construct):
            problems.append(f"{where}.construct: {construct!r} must be one construct path like 'edge/alb'")
        if len(reason) < MIN_REASON:
            problems.append(f"{where}.reason: give a real reason (at least {MIN_REASON} characters)")
        environments = entry.get("environments", [])
        if not isinstance(environments, list) or not all(isinstance(e, str) for e in environments):
            problems.append(f"{where}.environments: a list of environment names")
        entries.append(Suppression(check, construct, reason, tuple(environments)))
    if problems:
        raise SuppressionError("\n".join(problems))
    return entries
