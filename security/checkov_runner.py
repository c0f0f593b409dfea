"""Run checkov on synthesized stacks, from its own virtualenv, offline."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from security.stackdoc import StackDoc

ROOT = Path(__file__).resolve().parent.parent
CHECKOV = Path(os.environ.get("AIGW_CHECKOV", ROOT / ".tools" / "checkov" / "bin" / "checkov"))
TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class CheckovResult:
    environment: str
    check: str
    construct: str
    address: str
    passed: bool
    title: str


def run(stack_files: list[Path]) -> list[CheckovResult]:
    """Every passed and failed check of every stack file (one checkov run)."""
    if not CHECKOV.exists():
        raise FileNotFoundError(f"{CHECKOV} not found: run `make setup` (it creates .tools/checkov)")
    command = [str(CHECKOV), "--framework", "terraform_json", "--skip-download", "--compact", "-o", "json"]
    for path in stack_files:
        command += ["-f", str(path)]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, env=env, check=False)
    if completed.returncode not in (0, 1):  # 1 = some check failed
        raise RuntimeError(f"checkov failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    reports = json.loads(completed.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    docs = {path.resolve(): StackDoc.load(path) for path in stack_files}
    results: list[CheckovResult] = []
    for report in reports:
        for outcome, passed in (("passed_checks", True), ("failed_checks", False)):
            for item in report.get("results", {}).get(outcome, []):
                doc = _doc_for(item, docs)
                name = str(item["resource"]).split(".", 1)[-1]
                res = doc.by_name(name)
                construct = res.construct_path if res else name
                address = f"{res.type}.{res.name}" if res else str(item["resource"])
                results.append(CheckovResult(doc.environment, item["check_id"], construct, address, passed,
                                             item.get("check_name", "")))  # fmt: skip
    return results


def _doc_for(item: dict[str, object], docs: dict[Path, StackDoc]) -> StackDoc:
    reported = str(item.get("file_abs_path") or item.get("file_path"))
    for path, doc in docs.items():
        if reported.endswith(f"{path.parent.name}/{path.name}"):
            return doc
    raise RuntimeError(f"checkov reported an unknown file {reported}")
