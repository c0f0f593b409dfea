"""Where a V8 CPU profile's time went (``.cpuprofile``, as the inspector or
``node --cpu-prof`` writes it): self time by where the code lives (the
gateway's own build, each npm package, Node's internals, the garbage
collector, idle) and the functions that took the most. ``python -m
bench.cpu_profile FILE...``; ``bench.concurrency --profile-gateway DIR``
prints it for the gateway's profiles."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_PACKAGE = re.compile(r"node_modules/((?:@[^/]+/)?[^/]+)/")


def place(url: str, function: str) -> str:
    """Where a frame's code lives."""
    if not url:
        return function if function.startswith("(") else "(native)"
    package = _PACKAGE.search(url)
    if package:
        return f"package {package[1]}"
    if url.startswith("node:"):
        parts = url.removeprefix("node:").split("/")
        # node:internal/<area>/...: the area (webstreams, deps/undici, streams, ...) says what the time was for.
        return "node:" + "/".join(parts[:3] if parts[:2] == ["internal", "deps"] else parts[:2])
    if "/build/" in url:
        return "gateway build"
    return "other"


def self_times(profile: dict[str, Any]) -> tuple[Counter[str], Counter[str], float]:
    """Self time (seconds) by place and by function, and the profile's total."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    by_place: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    samples, deltas = profile.get("samples", []), profile.get("timeDeltas", [])
    for sample, delta in zip(samples, deltas, strict=False):
        frame = nodes[sample]["callFrame"]
        seconds = max(delta, 0) / 1e6
        name = frame["functionName"] or "(anonymous)"
        where = place(frame["url"], name)
        by_place[where] += seconds
        short = frame["url"].rsplit("/", 1)[-1]
        by_function[f"{name} ({short}:{frame['lineNumber'] + 1})" if short else name] += seconds
    return by_place, by_function, sum(by_place.values())


def report(paths: Iterable[Path], top: int = 12) -> str:
    places: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0.0
    for path in paths:
        by_place, by_function, seconds = self_times(json.loads(path.read_text()))
        places.update(by_place)
        functions.update(by_function)
        total += seconds
    busy = total - places.get("(idle)", 0.0)
    lines = [f"gateway CPU profile: {total:.1f} s sampled, {busy:.1f} s busy (idle left out of the shares)"]
    lines.append("  by where the code lives (self time, share of busy):")
    for where, seconds in places.most_common():
        if where != "(idle)" and seconds / max(busy, 1e-9) >= 0.005:
            lines.append(f"    {seconds / max(busy, 1e-9) * 100:5.1f} %  {where}")
    lines.append(f"  the {top} functions with the most self time:")
    for name, seconds in [(n, s) for n, s in functions.most_common() if n != "(idle)"][:top]:
        lines.append(f"    {seconds / max(busy, 1e-9) * 100:5.1f} %  {name}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(argument) for argument in sys.argv[1:]))
