"""Byte-compile the virtualenv after ``pipenv sync`` ran with pip's compile
step off: ``python -m tools.compile_venv``.

pip byte-compiles every module it installs, and the AWS provider bindings
are ~2,200 modules (68 MB of source) of which this project imports about
60: compiling them all was most of a fresh clone's install time. Here every
package is compiled as pip would, in parallel on every core, except the
bindings' resource modules that no file of this project names; those few
that something still imports (the stock import path, a one-off script) are
compiled by Python when they are imported, as any uncompiled module is.
"""

from __future__ import annotations

import compileall
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINDINGS = "cdktf_cdktf_provider_aws"
_NAMED = re.compile(rf"\b{BINDINGS}\.([a-z0-9_]+)")
SOURCES = ("main.py", "aigw", "modules", "security", "tools", "tests", "bench")


def named_submodules(root: Path = ROOT) -> set[str]:
    """The bindings' submodules that a Python file of the project names."""
    names: set[str] = set()
    for source in SOURCES:
        path = root / source
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            names.update(_NAMED.findall(file.read_text(encoding="utf-8")))
    return names


def main() -> int:
    (site,) = (ROOT / ".venv" / "lib").glob("python3*/site-packages")
    bindings = site / BINDINGS
    keep = named_submodules()
    skipped = sorted(
        p.name for p in bindings.iterdir() if p.is_dir() and p.name not in keep and not p.name.startswith("_")
    )
    pattern = re.compile(rf"/{BINDINGS}/({'|'.join(map(re.escape, skipped))})/") if skipped else None
    ok = compileall.compile_dir(site, quiet=1, workers=0, rx=pattern)
    print(f"compiled {site} ({len(keep)} of {len(keep) + len(skipped)} provider resource modules)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
