"""The emulator path under load: ``make deploy`` then ``make destroy``, N times
in a row, while one busy loop per core keeps every core of the machine busy.

    python -m bench.emulator_soak [--cycles 5]

Each cycle must deploy from nothing and destroy to nothing: the deploy's
plan must add resources (never "No changes", which would mean a foreign or
left-over stack), and the destroy must report "Destroy complete!". Any
failure stops the soak with the log's path and exit 1. Prints one line per
step with its wall time, and the load average while it ran.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / ".tools" / "logs"


def _burn(stop_at: float) -> None:
    value = 0
    while time.monotonic() < stop_at:
        value = (value * 31 + 7) % 1_000_003


def _step(target: str, cycle: int) -> tuple[float, str]:
    started = time.monotonic()
    log = LOGS / f"soak-{cycle}-{target}.log"
    with log.open("w") as out:
        result = subprocess.run(["make", "--no-print-directory", target], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)  # fmt: skip
    elapsed = time.monotonic() - started
    text = log.read_text()
    if result.returncode != 0:
        raise SystemExit(f"cycle {cycle}: make {target} exited {result.returncode}; see {log}")
    if target == "deploy" and not re.search(r"Plan: [1-9]\d* to add", text):
        raise SystemExit(f"cycle {cycle}: make deploy created nothing (a left-over or foreign stack?); see {log}")
    if target == "destroy" and "Destroy complete!" not in text:
        raise SystemExit(f"cycle {cycle}: make destroy did not report 'Destroy complete!'; see {log}")
    return elapsed, str(log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args(argv)
    LOGS.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    burners = [
        multiprocessing.Process(target=_burn, args=(time.monotonic() + 24 * 3600,), daemon=True) for _ in range(cores)
    ]
    for burner in burners:
        burner.start()
    print(f"{cores} busy loops running; {args.cycles} cycles of make deploy + make destroy", flush=True)
    try:
        for cycle in range(1, args.cycles + 1):
            for target in ("deploy", "destroy"):
                elapsed, log = _step(target, cycle)
                load = os.getloadavg()[0]
                print(f"cycle {cycle}: make {target} ok in {elapsed:.0f} s (load {load:.1f}; {log})", flush=True)
    finally:
        for burner in burners:
            burner.terminate()
    print(f"soak passed: {args.cycles} deploys and destroys under full load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
