"""Read-only view of one synthesized stack (cdktf.out/stacks/<stack>/cdk.tf.json),
shared by the security rules and the tests, in the spirit of aws-cdk's
``Template``: resources by type and (partial) properties, ``${type.name.attr}``
references followed to the resource they name, construct paths, outputs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REFERENCE = re.compile(r"\$\{([a-z0-9_]+)\.([^.}]+)\.([a-z0-9_]+)\}")


def matches(actual: Any, expected: Any) -> bool:
    """Partial, recursive match: a dict needs only the expected keys (each
    matching); a list must match element by element (same length); anything
    else by equality."""
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


@dataclass(frozen=True)
class Res:
    type: str
    name: str
    body: dict[str, Any]

    @property
    def construct_path(self) -> str:
        """Path below the stack, e.g. ``edge/alb`` (stable across environments)."""
        path = str(self.body.get("//", {}).get("metadata", {}).get("path", self.name))
        return path.split("/", 1)[1] if "/" in path else path

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"

    def ref(self, attribute: str) -> str:
        """The interpolation another resource uses to point at this one."""
        return f"${{{self.type}.{self.name}.{attribute}}}"

    def __getitem__(self, key: str) -> Any:
        return self.body[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)

    def json(self, key: str) -> Any:
        """A property that holds a JSON document (policies, container definitions)."""
        return json.loads(self.body[key])

    def policy(self, key: str) -> dict[str, Any] | None:
        """A policy document property, or None when it is absent or not an inline document."""
        value = self.body.get(key)
        return json.loads(value) if isinstance(value, str) and value.strip().startswith("{") else None


class StackDoc:
    def __init__(self, document: dict[str, Any], environment: str) -> None:
        self.document = document
        self.environment = environment

    @property
    def name(self) -> str:
        """The stack's name as synthesized (``ai-gateway-<environment>``)."""
        return f"ai-gateway-{self.environment}"

    def data(self, data_type: str) -> list[Res]:
        """Every data source of this type."""
        return [Res(data_type, n, b) for n, b in self.document.get("data", {}).get(data_type, {}).items()]

    @classmethod
    def load(cls, path: Path) -> StackDoc:
        stack = path.parent.name
        return cls(json.loads(path.read_text(encoding="utf-8")), stack.removeprefix("ai-gateway-"))

    # -- resources ---------------------------------------------------------
    def resources(self, resource_type: str | None = None, props: dict[str, Any] | None = None) -> list[Res]:
        """Resources of ``resource_type`` (every type when None) whose body matches ``props`` partially."""
        return [
            Res(rtype, name, body)
            for rtype, bodies in self.document.get("resource", {}).items()
            if resource_type is None or rtype == resource_type
            for name, body in bodies.items()
            if props is None or matches(body, props)
        ]

    def resource(self, resource_type: str, props: dict[str, Any] | None = None) -> Res:
        """The one resource of ``resource_type`` matching ``props``; LookupError unless there is exactly one."""
        found = self.resources(resource_type, props)
        if len(found) != 1:
            raise LookupError(
                f"{self.environment}: expected exactly one {resource_type} matching {props}, found {len(found)}: "
                f"{[r.name for r in found]}"
            )
        return found[0]

    def count(self, resource_type: str, props: dict[str, Any] | None = None) -> int:
        return len(self.resources(resource_type, props))

    def by_name(self, name: str) -> Res | None:
        """The resource with this Terraform name (as checkov reports it), if any."""
        return next((r for r in self.resources() if r.name == name), None)

    # -- references --------------------------------------------------------
    def resolve(self, reference: Any) -> Res | None:
        """The resource a ``${type.name.attr}`` interpolation points at, or None
        when ``reference`` is not one or names nothing in this stack."""
        match = REFERENCE.fullmatch(reference) if isinstance(reference, str) else None
        if not match:
            return None
        body = self.document.get("resource", {}).get(match[1], {}).get(match[2])
        return Res(match[1], match[2], body) if body is not None else None

    def follow(self, reference: Any) -> Res:
        """Like ``resolve``, but a reference that names nothing is a LookupError."""
        found = self.resolve(reference)
        if found is None:
            raise LookupError(f"{self.environment}: {reference!r} is not a reference to a resource of this stack")
        return found

    # -- the rest of the document ------------------------------------------
    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return dict(self.document.get("output", {}))

    @property
    def terraform(self) -> dict[str, Any]:
        return dict(self.document["terraform"])

    @property
    def provider(self) -> dict[str, Any]:
        """The one AWS provider block."""
        (aws,) = self.document["provider"]["aws"]
        return dict(aws)
