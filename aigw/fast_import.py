"""Load only the AWS provider submodules a stack uses.

``cdktf_cdktf_provider_aws/__init__.py`` ends with ~2,200 ``from . import X``
statements, one per resource type, so the first import of anything from the
package costs ~15 s of Python imports and hundreds of MB before synthesis even
starts. Each submodule is self-contained (it registers the jsii assembly via
``from .._jsii import *``), so the package body can run without those lines.

``install()`` adds a meta-path finder that, for that one package, executes the
package's own ``__init__.py`` minus the trailing submodule imports, and gives
the package a module ``__getattr__`` so ``cdktf_cdktf_provider_aws.vpc`` still
works without an explicit import. Nothing in site-packages is modified.

Safety: if the installed package does not have the expected shape (the body
is not "preamble, then only ``from . import <subpackage>``"), the finder steps
aside, the stock import runs, and one line on stderr says so. Setting
``AIGW_STOCK_PROVIDER_IMPORT=1`` disables the fast path (used by the
equivalence test and the benchmark).

The jsii runtime's Node process has the same problem one level down: the
bindings' ``lib/index.js`` requires all ~2,200 JavaScript modules when the
assembly loads (~3.5 s). ``install()`` therefore also preloads
``jsii_lazy_require.js`` into that Node process (through ``NODE_OPTIONS``,
inherited when jsii starts Node), which serves that file as lazy getters,
with the same shape check and fallback.

Third, the generated bindings type-check every constructor call with
``typing.get_type_hints(<stub>)``, which re-evaluates the stub's string
annotations each time (about half of the per-resource Python cost).
``install()`` memoizes that one function for objects defined in the cdktf,
constructs and provider packages, called with default arguments: their
annotations are generated code and never change. The checks still run.
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

PACKAGE = "cdktf_cdktf_provider_aws"
DISABLE_VARIABLE = "AIGW_STOCK_PROVIDER_IMPORT"
# Fewer submodule imports than this means the package changed shape.
MIN_SUBMODULES = 100
NODE_HOOK = Path(__file__).resolve().with_name("jsii_lazy_require.js")
GENERATED_PACKAGES: tuple[str, ...] = (PACKAGE, "cdktf", "constructs")


def _is_submodule_import(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and node.module is None and node.level == 1


def trimmed_package_code(origin: Path) -> tuple[Any, list[str]] | None:
    """The package body without its submodule imports, compiled; or None when
    the file does not look like the generated bindings we know."""
    try:
        tree = ast.parse(origin.read_text(encoding="utf-8"), filename=str(origin))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    body = tree.body
    first = next((i for i, node in enumerate(body) if _is_submodule_import(node)), None)
    if first is None:
        return None
    tail = body[first:]
    if not all(_is_submodule_import(node) for node in tail):
        return None
    names = [alias.name for node in tail for alias in node.names]  # type: ignore[attr-defined]
    package_dir = origin.parent
    if len(names) < MIN_SUBMODULES or not all((package_dir / name / "__init__.py").is_file() for name in names):
        return None
    if not (package_dir / "_jsii" / "__init__.py").is_file():
        return None
    tree.body = body[:first]
    return compile(tree, str(origin), "exec"), names


class _TrimmedPackageLoader(importlib.abc.Loader):
    def __init__(self, code: Any, submodules: list[str]) -> None:
        self._code = code
        self._submodules = frozenset(submodules)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        submodules = self._submodules
        name = module.__name__

        def __getattr__(attribute: str) -> ModuleType:
            if attribute in submodules:
                return importlib.import_module(f"{name}.{attribute}")
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}")

        exec(self._code, module.__dict__)
        # The body ends with publication.publish(), which swaps a "public"
        # module into sys.modules; the lazy attribute hook goes on that one.
        sys.modules[name].__dict__["__getattr__"] = __getattr__


class _ProviderFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != PACKAGE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None:
            return None
        trimmed = trimmed_package_code(Path(spec.origin))
        if trimmed is None:
            print(
                f"note: {PACKAGE} at {spec.origin} has an unexpected shape; using the stock (slow) import",
                file=sys.stderr,
            )
            return None
        spec.loader = _TrimmedPackageLoader(*trimmed)
        return spec


def install() -> bool:
    """Install the fast path once; returns whether it is active."""
    if os.environ.get(DISABLE_VARIABLE) == "1":
        return False
    if any(isinstance(finder, _ProviderFinder) for finder in sys.meta_path):
        return True
    if PACKAGE in sys.modules:
        return False  # already imported the stock way; nothing left to save
    sys.meta_path.insert(0, _ProviderFinder())
    _preload_node_hook()
    _memoize_binding_type_hints()
    return True


def memoized_type_hints(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (typing.get_type_hints) with a memo for the generated
    bindings' stubs, called the way the bindings call it: with the object
    alone. Every other call, whatever its arguments (Python 3.14 added
    ``format``), goes to ``original`` unchanged."""
    cache: dict[Any, Any] = {}

    def get_type_hints(obj: Any, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs:
            package = (getattr(obj, "__module__", None) or "").split(".", 1)[0]
            if package in GENERATED_PACKAGES:
                try:
                    return cache[obj]
                except KeyError:
                    hints = cache[obj] = original(obj)
                    return hints
                except TypeError:  # unhashable: not a generated stub
                    pass
        return original(obj, *args, **kwargs)

    get_type_hints.memoizes_bindings = True  # type: ignore[attr-defined]
    get_type_hints.__doc__ = original.__doc__
    return get_type_hints


def _memoize_binding_type_hints() -> None:
    if getattr(typing.get_type_hints, "memoizes_bindings", False):
        return
    typing.__dict__["get_type_hints"] = memoized_type_hints(typing.get_type_hints)


def _preload_node_hook() -> None:
    """Have the jsii runtime's Node process (started later, inheriting our
    environment) preload the lazy-require hook."""
    quoted = '"' + str(NODE_HOOK).replace("\\", "\\\\").replace('"', '\\"') + '"'
    option = f"--require {quoted}"
    current = os.environ.get("NODE_OPTIONS", "")
    if option not in current:
        os.environ["NODE_OPTIONS"] = f"{current} {option}".strip()
