"""The gateway's runtime matches its production image: the dependency versions of
the gateway's own lockfile (tests/gateway_runtime_pins.json) in package.json's
overrides, in package-lock.json and in node_modules, and Node 20 to run it on.

Packages are looked up as Node resolves them: from the requiring package's own
node_modules upwards, starting at node_modules/@portkey-ai/gateway.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tests import processes
from tests.gateway_runtime import GATEWAY_NODE, NODE_MODULES, PINS_FILE, ROOT

PINS: dict[str, Any] = json.loads(PINS_FILE.read_text())
PACKAGES: dict[str, str] = PINS["packages"]
NESTED: dict[str, dict[str, str]] = PINS["nested"]
GATEWAY = "@portkey-ai/gateway"

# A package's place in the tree: the names of the node_modules folders from the
# project's down to it, e.g. ("@portkey-ai/gateway", "hono").
Location = tuple[str, ...]
Lookup = Callable[[Location], Mapping[str, Any] | None]


def _relpath(location: Location) -> str:
    return "/".join(f"node_modules/{name}" for name in location)


def _installed(location: Location) -> Mapping[str, Any] | None:
    manifest = NODE_MODULES.parent / _relpath(location) / "package.json"
    return json.loads(manifest.read_text()) if manifest.is_file() else None


@functools.cache
def _lock_packages() -> dict[str, Mapping[str, Any]]:
    packages: dict[str, Mapping[str, Any]] = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    return packages


def _locked(location: Location) -> Mapping[str, Any] | None:
    return _lock_packages().get(_relpath(location))


def _resolve(name: str, requirer: Location, lookup: Lookup) -> tuple[Location, Mapping[str, Any]] | None:
    for depth in range(len(requirer), -1, -1):
        location = (*requirer[:depth], name)
        manifest = lookup(location)
        if manifest is not None:
            return location, manifest
    return None


def _expected(name: str, scope: str | None) -> str | None:
    if scope is not None and name in NESTED[scope]:
        return NESTED[scope][name]
    return PACKAGES.get(name)


def _closure(lookup: Lookup) -> Iterator[tuple[str, str, str | None, str]]:
    """(name, version found, pinned version, where) for every package the gateway
    loads, directly or not: its dependencies and optional dependencies."""
    start = (GATEWAY,)
    gateway = lookup(start)
    assert gateway is not None, f"{GATEWAY} is not in {_relpath(start)}"
    queue: list[tuple[Location, Mapping[str, Any], str | None]] = [(start, gateway, None)]
    seen: set[tuple[Location, str | None]] = set()
    while queue:
        requirer, manifest, scope = queue.pop()
        for name in sorted({**manifest.get("dependencies", {}), **manifest.get("optionalDependencies", {})}):
            found = _resolve(name, requirer, lookup)
            if found is None:
                if name in manifest.get("optionalDependencies", {}):
                    continue
                yield name, "missing", _expected(name, scope), f"from {_relpath(requirer)}"
                continue
            location, child = found
            yield name, str(child.get("version")), _expected(name, scope), _relpath(location)
            # Like npm's nested overrides, a NESTED entry holds for its owner's own
            # dependencies and for those of the packages it pins, not further down.
            if name in NESTED:
                child_scope: str | None = name
            elif scope is not None and name in NESTED[scope]:
                child_scope = scope
            else:
                child_scope = None
            if (location, child_scope) not in seen:
                seen.add((location, child_scope))
                queue.append((location, child, child_scope))


def _pin_problems(lookup: Lookup) -> list[str]:
    problems = []
    reached = set()
    for name, version, pinned, where in _closure(lookup):
        reached.add(name)
        if pinned is None:
            problems.append(f"{name}@{version} ({where}) is not pinned")
        elif version != pinned:
            problems.append(f"{name}@{version} ({where}), pinned {pinned}")
    pinned_names = set(PACKAGES) | {name for names in NESTED.values() for name in names}
    problems += [f"{name} is pinned but the gateway does not load it" for name in sorted(pinned_names - reached)]
    return problems


def test_installed_gateway_dependencies_have_the_pinned_versions() -> None:
    assert _pin_problems(_installed) == []


def test_package_json_overrides_agree_with_the_pins() -> None:
    overrides = json.loads((ROOT / "package.json").read_text())["overrides"][GATEWAY]
    expected = {
        name: {".": version, **NESTED[name]} if name in NESTED else version for name, version in PACKAGES.items()
    }
    assert overrides == expected


def test_package_lock_resolves_gateway_dependencies_to_the_pins() -> None:
    assert _pin_problems(_locked) == []


def test_gateway_node_has_the_image_major() -> None:
    version = processes.run([GATEWAY_NODE, "--version"], timeout=30, check=True).stdout.strip()
    assert version.split(".")[0] == f"v{PINS['node_major']}", f"{GATEWAY_NODE} is {version}"


def test_bin_node_stays_the_node_package() -> None:
    # The Node 20 package declares the same bin; .bin/node must stay Node 22 (cdktf, jsii).
    expected = json.loads((NODE_MODULES / "node" / "package.json").read_text())["version"]
    version = processes.run([NODE_MODULES / ".bin" / "node", "--version"], timeout=30, check=True).stdout.strip()
    assert version == f"v{expected}"


def test_async_retry_passes_its_operation_to_the_retried_function() -> None:
    # The image's patches/async-retry+1.3.3.patch, applied by tools/patch_async_retry.cjs.
    found = _resolve("async-retry", (GATEWAY,), _installed)
    assert found is not None
    source = (NODE_MODULES.parent / _relpath(found[0]) / "lib" / "index.js").read_text()
    assert "val = fn(bail, num, op);" in source
