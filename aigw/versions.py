"""Terraform version constraints, evaluated the way Terraform evaluates them.

Only what the settings need: parse a constraint string such as ``"~> 6.22"`` or
``">= 5.100, < 7.0"`` and tell whether it admits versions older than a given one
(ALB JWT validation needs hashicorp/aws >= 6.22, so a constraint that lets
Terraform pick 6.21 must be refused before anything is synthesized).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TERM = re.compile(r"^\s*(=|!=|>=|<=|>|<|~>)?\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$")

Version = tuple[int, int, int]


@dataclass(frozen=True)
class Term:
    operator: str
    version: Version
    # How many components were written (``~> 6.22`` behaves unlike ``~> 6.22.0``).
    precision: int

    def admits(self, candidate: Version) -> bool:
        op, v = self.operator, self.version
        if op == "=":
            return candidate == v
        if op == "!=":
            return candidate != v
        if op == ">":
            return candidate > v
        if op == ">=":
            return candidate >= v
        if op == "<":
            return candidate < v
        if op == "<=":
            return candidate <= v
        # "~>": the rightmost written component may grow, the ones before it are fixed.
        if candidate < v:
            return False
        fixed = max(self.precision - 1, 1)
        return candidate[:fixed] == v[:fixed]


def parse_constraint(text: str) -> list[Term]:
    """Parse a Terraform version constraint; raises ValueError with the offending term."""
    if not text.strip():
        raise ValueError('must not be empty; example: "~> 6.22"')
    terms: list[Term] = []
    for raw in text.split(","):
        match = _TERM.match(raw)
        if not match:
            raise ValueError(
                f"{raw.strip()!r} is not a version constraint; use operators "
                '=, !=, >, >=, <, <=, ~> followed by a version, e.g. "~> 6.22"'
            )
        op, major, minor, patch = match.groups()
        parts = [int(major), int(minor or 0), int(patch or 0)]
        precision = 1 + (minor is not None) + (patch is not None)
        terms.append(Term(op or "=", (parts[0], parts[1], parts[2]), precision))
    return terms


def admits(terms: list[Term], candidate: Version) -> bool:
    return all(term.admits(candidate) for term in terms)


def admits_older_than(terms: list[Term], minimum: Version) -> bool:
    """True when some version below ``minimum`` satisfies every term.

    Candidates are the lower bounds the terms themselves name (and the version
    just above an exclusive one), plus the release just below ``minimum``;
    between those points the truth of every term is constant, so checking them
    is exhaustive for the question asked.
    """
    below_minimum: list[Version] = [(0, 0, 0)]
    major, minor, patch = minimum
    if patch:
        below_minimum.append((major, minor, patch - 1))
    elif minor:
        below_minimum.append((major, minor - 1, 10**6))
    elif major:
        below_minimum.append((major - 1, 10**6, 10**6))
    for term in terms:
        v = term.version
        below_minimum += [v, (v[0], v[1], v[2] + 1)]
    return any(c < minimum and admits(terms, c) for c in below_minimum)
