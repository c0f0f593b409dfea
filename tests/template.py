"""Assertions over a synthesized stack (``cdk.tf.json``), in the spirit of
Terratest / aws-cdk's ``Template``: find resources by type and (partial)
properties, follow ``${type.name.attr}`` references, read outputs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_REFERENCE = re.compile(r"^\$\{([a-z0-9_]+)\.([^.}]+)\.([a-z0-9_]+)\}$")
_ANY_REFERENCE = re.compile(r"\$\{([a-z0-9_]+)\.([^.}]+)\.([a-z0-9_.\[\]*]+)\}")


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    props: dict[str, Any]

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"

    def ref(self, attribute: str) -> str:
        """The interpolation another resource uses to point at this one."""
        return f"${{{self.type}.{self.name}.{attribute}}}"

    def __getitem__(self, key: str) -> Any:
        return self.props[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.props.get(key, default)

    def json(self, key: str) -> Any:
        """A property that holds a JSON document (policies, container definitions)."""
        return json.loads(self.props[key])


def matches(actual: Any, expected: Any) -> bool:
    """Partial, recursive match: dicts need only the expected keys; lists must
    match element-wise (same length); everything else by equality."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and matches(actual[key], value) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(matches(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(actual == expected)


class Template:
    def __init__(self, document: dict[str, Any], name: str = "") -> None:
        self.document = document
        self.name = name

    @classmethod
    def load(cls, path: Path) -> Template:
        return cls(json.loads(path.read_text(encoding="utf-8")), path.parent.name)

    # -- resources ---------------------------------------------------------
    def resources(self, resource_type: str, props: dict[str, Any] | None = None) -> list[Resource]:
        found = [
            Resource(resource_type, name, body)
            for name, body in self.document.get("resource", {}).get(resource_type, {}).items()
        ]
        return [r for r in found if props is None or matches(r.props, props)]

    def resource(self, resource_type: str, props: dict[str, Any] | None = None) -> Resource:
        """Exactly one resource of this type matching ``props``."""
        found = self.resources(resource_type, props)
        assert len(found) == 1, (
            f"{self.name}: expected exactly one {resource_type} matching {props}, found {len(found)}: "
            f"{[r.name for r in found]}"
        )
        return found[0]

    def count(self, resource_type: str, props: dict[str, Any] | None = None) -> int:
        return len(self.resources(resource_type, props))

    def all_resources(self) -> Iterator[Resource]:
        for resource_type, bodies in self.document.get("resource", {}).items():
            for name, body in bodies.items():
                yield Resource(resource_type, name, body)

    def resource_types(self) -> set[str]:
        return set(self.document.get("resource", {}))

    def data(self, data_type: str) -> list[Resource]:
        return [Resource(data_type, n, b) for n, b in self.document.get("data", {}).get(data_type, {}).items()]

    # -- references --------------------------------------------------------
    def follow(self, reference: str) -> Resource:
        """The resource a ``${type.name.attr}`` interpolation points at."""
        match = _REFERENCE.match(reference)
        assert match, f"{reference!r} is not a single resource reference"
        resource_type, name, _ = match.groups()
        body = self.document.get("resource", {}).get(resource_type, {}).get(name)
        assert body is not None, f"{reference} points at a resource that does not exist"
        return Resource(resource_type, name, body)

    def references_in(self, value: Any) -> set[str]:
        """Every ``type.name`` address referenced anywhere inside ``value``."""
        text = json.dumps(value)
        return {f"{t}.{n}" for t, n, _ in _ANY_REFERENCE.findall(text)}

    # -- outputs -----------------------------------------------------------
    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return dict(self.document.get("output", {}))

    @property
    def terraform(self) -> dict[str, Any]:
        return dict(self.document["terraform"])

    @property
    def provider(self) -> dict[str, Any]:
        (aws,) = self.document["provider"]["aws"]
        return dict(aws)
