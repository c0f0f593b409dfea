"""Generate the README's configuration reference and outputs table from the
code (like terraform-docs): ``python -m aigw.docs --write README.md``.
A test fails when README.md and this output disagree."""

from __future__ import annotations

import argparse
import sys
from enum import StrEnum
from pathlib import Path
from types import UnionType
from typing import Annotated, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from aigw.settings import SECTION_NAMES, EnvironmentSettings
from modules.outputs import OUTPUTS

BEGIN = "<!-- BEGIN GENERATED: configuration reference (python -m aigw.docs --write README.md) -->"
END = "<!-- END GENERATED: configuration reference -->"


_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _type_name(annotation: object) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is UnionType and type(None) in args:
        # Optional: TOML has no null, so the key is either set or left out.
        (annotation,) = (arg for arg in args if arg is not type(None))
        origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        # A kind with behaviour (LoadBalancerType): the file gives one of its values.
        return "one of " + ", ".join(member.value for member in annotation)
    if origin is list:
        item = _type_name(args[0])
        return f"list, each {item}" if item.startswith("one of") else f"list of {item}s"
    if origin is dict:
        value = _type_name(args[1])
        return f"table, each {value}" if value.startswith("one of") else f"table of {value}s"
    if origin is Annotated:
        return _type_name(args[0])
    return str(_SCALARS.get(annotation, getattr(annotation, "__name__", annotation)))  # type: ignore[call-overload]


def _default(field: object) -> str:
    default = getattr(field, "default", PydanticUndefined)
    if default is PydanticUndefined:
        factory = getattr(field, "default_factory", None)
        if factory is None:
            return "required"
        default = factory()
        if isinstance(default, BaseModel):
            return "(table)"
    if default is None:
        return "see description"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, str):
        return f'`"{default}"`'
    if isinstance(default, list | dict):
        return f"`{default!r}`".replace("'", '"')
    return f"`{default}`"


def _is_model(candidate: object) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _nested_table(annotation: object) -> type[BaseModel] | None:
    """The model of a sub-table (``X`` or ``X | None``), if that is what this is."""
    candidates = [annotation, *get_args(annotation)]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)


def _keyed_tables(annotation: object) -> type[BaseModel] | None:
    """The model of a table of named sub-tables (``dict[str, X]``), if that is what this is."""
    args = get_args(annotation)
    if get_origin(annotation) is dict and len(args) == 2 and _is_model(args[1]):
        model: type[BaseModel] = args[1]
        return model
    return None


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    nested: list[tuple[str, type[BaseModel], str, str, str]] = []
    for name, field in model.model_fields.items():
        if prefix == "" and name in SECTION_NAMES:
            continue
        description = (field.description or "").replace("|", "\\|")
        keyed = _keyed_tables(field.annotation)
        if keyed is not None:
            nested.append((f"{prefix}{name}", keyed, description, "table of tables", "none"))
            continue
        table = _nested_table(field.annotation)
        if table is not None:
            default = "none" if field.default is None else "see below"
            nested.append((f"{prefix}{name}", table, description, "table", default))
            continue
        rows.append(f"| `{prefix}{name}` | {_type_name(field.annotation)} | {_default(field)} | {description} |")
    for path, table, description, kind, default in nested:
        rows.append(f"| `{path}` | {kind} | {default} | {description} |")
        rows += _rows(table, f"{path}.<name>." if kind == "table of tables" else f"{path}.")
    return rows


def reference() -> str:
    lines = [BEGIN, "", "### Settings", ""]
    lines += ["| key | type | default | description |", "|---|---|---|---|"]
    lines += _rows(EnvironmentSettings, "")
    for section in SECTION_NAMES:
        model = EnvironmentSettings.model_fields[section].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        lines += [f"| **`[{section}]`** | | | {model.__doc__.strip() if model.__doc__ else ''} |"]
        lines += _rows(model, f"{section}.")
    lines += ["", "### Outputs", "", "| output | description |", "|---|---|"]
    lines += [f"| `{o.name}`{' (sensitive)' if o.sensitive else ''} | {o.description} |" for o in OUTPUTS]
    lines += ["", END]
    return "\n".join(lines)


def replace_reference(readme: str) -> str:
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[:start] + reference() + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="rewrite the generated block of this file in place")
    args = parser.parse_args(argv)
    if args.write:
        args.write.write_text(replace_reference(args.write.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        sys.stdout.write(reference() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
