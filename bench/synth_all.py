"""Synthesize every scenario (environments/ and each examples/<scenario>/) in
one process: ``python -m bench.synth_all --outdir DIR [--count N]``.

Used by the fast-import equivalence test and the synth benchmark. With
``AIGW_STOCK_PROVIDER_IMPORT=1`` the provider bindings load the stock way.
``--count N`` adds N-1 copies of dev (named dev-2, dev-3, …) to measure how
synth time grows with the number of environments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aigw import fast_import
from aigw.environments import DEFAULT_ENV_DIR, Environment, load_environments

fast_import.install()  # unless AIGW_STOCK_PROVIDER_IMPORT=1

ROOT = Path(__file__).resolve().parent.parent


def scenario_environments() -> list[Environment]:
    directories = [DEFAULT_ENV_DIR, *sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir())]
    return [env for directory in directories for env in load_environments(directory)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outdir", type=Path, required=True)
    parser.add_argument("--count", type=int, default=0, help="synthesize N copies of dev instead of the scenarios")
    args = parser.parse_args(argv)

    if args.count:
        (dev,) = [e for e in load_environments(DEFAULT_ENV_DIR) if e.name == "dev"]
        environments = [dev] + [Environment(f"dev-{i}", dev.path, dev.settings) for i in range(2, args.count + 1)]
    else:
        environments = scenario_environments()

    from modules.stack import synthesize

    synthesize(environments, args.outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
