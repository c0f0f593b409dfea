"""Read-only view of one synthesized stack (cdktf.out/stacks/<stack>/cdk.tf.json)
for the security rules: resources by type, references, construct paths."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REFERENCE = re.compile(r"\$\{([a-z0-9_]+)\.([^.}]+)\.([a-z0-9_]+)\}")


@dataclass(frozen=True)
class Res:
    type: str
    name: str
    body: dict[str, Any]

    @property
    def construct_path(self) -> str:
        """Path below the stack, e.g. ``networking/alb`` (stable across environments)."""
        path = str(self.body.get("//", {}).get("metadata", {}).get("path", self.name))
        return path.split("/", 1)[1] if "/" in path else path

    def ref(self, attribute: str) -> str:
        return f"${{{self.type}.{self.name}.{attribute}}}"

    def policy(self, key: str) -> dict[str, Any] | None:
        value = self.body.get(key)
        return json.loads(value) if isinstance(value, str) and value.strip().startswith("{") else None


class StackDoc:
    def __init__(self, document: dict[str, Any], environment: str) -> None:
        self.document = document
        self.environment = environment

    @classmethod
    def load(cls, path: Path) -> StackDoc:
        stack = path.parent.name
        return cls(json.loads(path.read_text(encoding="utf-8")), stack.removeprefix("ai-gateway-"))

    def resources(self, resource_type: str | None = None) -> Iterator[Res]:
        for rtype, bodies in self.document.get("resource", {}).items():
            if resource_type is None or rtype == resource_type:
                for name, body in bodies.items():
                    yield Res(rtype, name, body)

    def by_name(self, name: str) -> Res | None:
        return next((r for r in self.resources() if r.name == name), None)

    def follow(self, reference: str) -> Res | None:
        match = REFERENCE.fullmatch(reference) if isinstance(reference, str) else None
        if not match:
            return None
        body = self.document.get("resource", {}).get(match[1], {}).get(match[2])
        return Res(match[1], match[2], body) if body is not None else None
