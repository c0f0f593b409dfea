"""The security gate over synthesized stacks: ``python -m security.gate
[--outdir cdktf.out]``, or ``--synthesize`` to synthesize every shipped
environment and example into the outdir first (``make security``; the test
suite runs it too).

For every stack it runs our rules (security/rules.py) and checkov, applies
the suppression registry (security/suppressions.toml), scans the stack JSON
and the repository for secrets, and prints passed / failed / suppressed
counts per stack. Exit status 1 on any unsuppressed finding, any suppression
that matches nothing, or any secret.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from security import checkov_runner, secret_scan, suppressions
from security.rules import RULES, Verdict, evaluate
from security.stackdoc import StackDoc

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Finding:
    source: str  # "rules" or "checkov"
    check: str
    environment: str
    construct: str
    address: str
    title: str


@dataclass
class GateReport:
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    unsuppressed: list[Finding] = field(default_factory=list)
    suppressed: list[Finding] = field(default_factory=list)
    stale: list[suppressions.Suppression] = field(default_factory=list)
    secrets: list[secret_scan.SecretFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unsuppressed or self.stale or self.secrets)

    def lines(self) -> list[str]:
        out = ["security gate: passed / failed / suppressed per stack"]
        for environment, counter in sorted(self.counts.items()):
            out.append(
                f"  {environment:<10} rules {counter['rules passed']:>3} / {counter['rules failed']} / "
                f"{counter['rules suppressed']}   checkov {counter['checkov passed']:>3} / "
                f"{counter['checkov failed']} / {counter['checkov suppressed']}"
            )
        out += [
            f"  UNSUPPRESSED {f.check} {f.environment} {f.construct} ({f.address}): {f.title}"
            for f in self.unsuppressed
        ]
        out += [
            f"  STALE suppression {s.check} {s.construct} {list(s.environments)}: matches no finding"
            for s in self.stale
        ]
        out += [f"  SECRET {s.pattern} in {s.path}:{s.line}" for s in self.secrets]
        out.append("  result: " + ("PASS" if self.ok else "FAIL"))
        return out


def run_gate(stack_files: list[Path], *, scan_repository: bool = True, registry: Path | None = None) -> GateReport:
    report = GateReport()
    registry_entries = suppressions.load(registry or suppressions.REGISTRY)
    used: set[suppressions.Suppression] = set()
    findings: list[Finding] = []
    for path in stack_files:
        doc = StackDoc.load(path)
        counter = report.counts.setdefault(doc.environment, Counter())
        for rule, res, verdict in evaluate(doc):
            if verdict is Verdict.COMPLIANT:
                counter["rules passed"] += 1
            elif verdict is Verdict.NON_COMPLIANT:
                findings.append(Finding("rules", rule.id, doc.environment, res.construct_path,
                                        f"{res.type}.{res.name}", rule.cause))  # fmt: skip
    for result in checkov_runner.run(stack_files):
        if result.passed:
            report.counts[result.environment]["checkov passed"] += 1
        else:
            findings.append(Finding("checkov", result.check, result.environment, result.construct, result.address,
                                    result.title))  # fmt: skip
    for finding in findings:
        counter = report.counts[finding.environment]
        match = next(
            (s for s in registry_entries if s.covers(finding.check, finding.construct, finding.environment)), None
        )
        if match:
            used.add(match)
            report.suppressed.append(finding)
            counter[f"{finding.source} suppressed"] += 1
        else:
            report.unsuppressed.append(finding)
            counter[f"{finding.source} failed"] += 1
    report.stale = [s for s in registry_entries if s not in used]
    report.secrets = secret_scan.scan_files(stack_files, stack_files[0].parent.parent if stack_files else ROOT)
    if scan_repository:
        report.secrets += secret_scan.scan_files(secret_scan.repository_files(ROOT), ROOT)
    return report


def stack_files(outdir: Path) -> list[Path]:
    return sorted(outdir.glob("stacks/*/cdk.tf.json"))


def synthesize_shipped(outdir: Path) -> None:
    """Every shipped environment and example (environments/, examples/*/) into ``outdir``,
    replacing what is there: the suppression registry covers them all."""
    from aigw import fast_import
    from aigw.environments import shipped_environments

    fast_import.install()
    from modules.stack import synthesize

    if outdir.exists():
        shutil.rmtree(outdir)
    synthesize(shipped_environments(), outdir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outdir", type=Path, default=ROOT / "cdktf.out")
    parser.add_argument(
        "--synthesize", action="store_true", help="synthesize every shipped environment and example into --outdir first"
    )
    parser.add_argument("--rules", action="store_true", help="print the rule table and exit")
    args = parser.parse_args(argv)
    if args.rules:
        for rule in RULES:
            print(f"{rule.id:<10} {', '.join(rule.resource_types):<40} {rule.cause}\n{'':<10} {rule.explanation}")
        return 0
    if args.synthesize:
        synthesize_shipped(args.outdir)
    files = stack_files(args.outdir)
    if not files:
        print(f"{args.outdir}: no synthesized stacks; run `make synth` first", file=sys.stderr)
        return 2
    report = run_gate(files)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
