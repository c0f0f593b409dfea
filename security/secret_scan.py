"""A small, explicit secret scanner for the repository and cdktf.out.

Looks for credentials that must never be committed or synthesized: cloud and
provider API keys, private keys, JWTs, assignments of secret-named settings to
literal values, and placeholder credentials. Deliberately simple and
reviewable; each pattern has a name that findings report.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 2_000_000
PATTERNS: dict[str, re.Pattern[str]] = {
    "aws-access-key-id": re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])"),
    "aws-secret-access-key": re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+]{40}"),
    "private-key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY-----"),
    "openai-key": re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}"),
    "anthropic-key": re.compile(r"\bsk-ant-[A-Za-z0-9_-]{32,}"),
    "google-api-key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "jwt": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    "secret-assignment": re.compile(
        r"(?i)\b(?:password|passwd|client_secret|secret_key|api_key|apikey|secret_string)\s*[=:]\s*['\"][^'\"\s$]{8,}['\"]"
    ),
    "placeholder-credential": re.compile(
        r"(?i)\b(?:replace[_-]?me|change[_-]?me|your[_-]?api[_-]?key|dummy[_-]?secret)\b"
    ),
}


@dataclass(frozen=True)
class SecretFinding:
    path: str
    line: int
    pattern: str


def scan_text(text: str, label: str) -> list[SecretFinding]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for name, pattern in PATTERNS.items():
            if pattern.search(line):
                found.append(SecretFinding(label, number, name))
    return found


def scan_files(paths: Iterable[Path], root: Path) -> list[SecretFinding]:
    found: list[SecretFinding] = []
    for path in paths:
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            continue
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue  # binary
        label = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        found += scan_text(data.decode("utf-8", errors="replace"), label)
    return found


def repository_files(root: Path) -> list[Path]:
    """Tracked and not-ignored untracked files (what a commit could contain)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root, capture_output=True, check=True, timeout=60,
    ).stdout.decode()  # fmt: skip
    return [root / name for name in listed.split("\0") if name]
