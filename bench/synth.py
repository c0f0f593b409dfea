"""Synth benchmark: ``make bench`` (or ``.venv/bin/python -m bench.synth``).

Runs each case in a fresh process on this machine and reports wall time and
peak RSS of the whole process tree (Python plus the jsii Node child), as the
median of ``--runs`` runs:

- stock provider import: ``from cdktf_cdktf_provider_aws.provider import AwsProvider``
  with the fast path off (what every synth used to pay before synthesis);
- full synth of every environment in environments/ (``python main.py``);
- 1 and 10 copies of dev in one process (growth with environments);
- the AWS CDK peer (bench/peer_awscdk, aws-cdk-lib) for dev + prod, when its
  virtualenv exists (``make bench`` creates it);
- the full synth again under the system's Node (``/usr/bin/node``), to
  compare with the Node the project installs (package.json: Node 22).

It then checks the targets of the synth-speed issue and prints PASS/MISS
for each; ``--check`` makes a MISS the exit status.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PEER_PYTHON = ROOT / "bench" / ".venv-peer" / "bin" / "python"
SYSTEM_NODE = Path("/usr/bin/node")
POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Measurement:
    name: str
    seconds: float
    peak_mib: float


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc)."""
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    stack += [int(child) for child in handle.read().split()]
        except OSError:
            continue
    return pids


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure_once(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        peak = max(peak, sum(_rss_kib(pid) for pid in process_tree(process.pid)))
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr}")
    return seconds, peak / 1024


def measure(name: str, command: list[str], runs: int, extra_env: dict[str, str] | None = None) -> Measurement:
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", **(extra_env or {})}
    samples = [measure_once(command, env) for _ in range(runs)]
    result = Measurement(name, statistics.median(s for s, _ in samples), statistics.median(m for _, m in samples))
    print(f"  {name:<44} {result.seconds:7.2f} s  {result.peak_mib:7.0f} MiB", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="aigw-bench-"))
    stock_env = {"AIGW_STOCK_PROVIDER_IMPORT": "1"}

    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"median of {args.runs} runs, wall time and peak RSS of the process tree (Python + Node {node}):")
    stock = measure(
        "stock provider import (no synth)",
        [PYTHON, "-c", "from cdktf_cdktf_provider_aws.provider import AwsProvider"],
        args.runs,
        stock_env,
    )
    environments = sorted(p.stem for p in (ROOT / "environments").glob("*.toml"))
    full = measure(
        f"full synth, fast path ({len(environments)} environments)",
        [PYTHON, "main.py"],
        args.runs,
        {"CDKTF_OUTDIR": str(out / "full")},
    )
    synth_all = [PYTHON, "-m", "bench.synth_all", "--outdir"]
    one = measure("synth 1 environment", [*synth_all, str(out / "one"), "--count", "1"], args.runs)
    ten = measure("synth 10 environments", [*synth_all, str(out / "ten"), "--count", "10"], args.runs)
    peer = None
    if PEER_PYTHON.exists():
        peer_app = [str(PEER_PYTHON), "bench/peer_awscdk/app.py", str(out / "peer")]
        peer = measure("AWS CDK peer, dev + prod (aws-cdk-lib)", peer_app, args.runs)
    else:
        print("  (AWS CDK peer skipped: run `make bench` to create bench/.venv-peer)")
    if SYSTEM_NODE.exists():
        version = subprocess.run([str(SYSTEM_NODE), "--version"], capture_output=True, text=True).stdout.strip()
        measure(
            f"full synth, fast path, system Node {version}",
            [PYTHON, "main.py"],
            args.runs,
            {"CDKTF_OUTDIR": str(out / "system-node"), "JSII_NODE": str(SYSTEM_NODE)},
        )

    wall_ratio, memory_ratio = full.seconds / stock.seconds, full.peak_mib / stock.peak_mib
    growth = ten.seconds / one.seconds
    targets = [
        (f"full synth <= 0.25 x stock import wall ({wall_ratio:.2f} x)", wall_ratio <= 0.25),
        (f"full synth peak RSS <= 60% of stock import ({memory_ratio:.0%})", memory_ratio <= 0.6),
        (f"10 environments <= 2 x 1 environment ({growth:.2f} x)", growth <= 2),
    ]
    if peer is not None:
        versus = f"{full.seconds:.1f} s vs {peer.seconds:.1f} s"
        targets.append((f"full synth faster than the AWS CDK peer ({versus})", full.seconds < peer.seconds))
    print("targets:")
    for text, met in targets:
        print(f"  {'PASS' if met else 'MISS'}  {text}")
    return 1 if args.check and not all(met for _, met in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
