"""`make deploy` and `make destroy` print what a user needs and keep the
full output in a log file (tools/quiet.py): the plan's summary, the result,
errors; on failure the last lines of the log."""

from __future__ import annotations

import sys
from pathlib import Path

from tests import processes
from tests.conftest import ROOT

NOISY = r"""
import sys
print("\x1b[33m[WARN]\x1b[39m starting")
for frame in "\u280b\u2819\u2839\u2838" * 200:
    print(frame + "  Synthesizing")
print("\x1b[2K\x1b[1A\x1b[Gai-gateway-local  \x1b[1maws_s3_bucket.x: Creation complete after 1s\x1b[0m")
print("  + resource \"aws_s3_bucket\" \"x\" {" + " " * 50000 + "}")
print("ai-gateway-local  Plan: 82 to add, 0 to change, 0 to destroy.")
print("ai-gateway-local  Plan: 82 to add, 0 to change, 0 to destroy.")
print("ai-gateway-local  \x1b[32mApply complete! Resources: 82 added, 0 changed, 0 destroyed.\x1b[0m")
sys.exit(int(sys.argv[1]))
"""


def quiet(tmp_path: Path, status: int) -> tuple[processes.subprocess.CompletedProcess[str], Path]:
    log = tmp_path / "logs" / "deploy.log"
    result = processes.run([sys.executable, "-m", "tools.quiet", log, "--", sys.executable, "-c", NOISY, str(status)],
                           cwd=ROOT, timeout=60)  # fmt: skip
    return result, log


def test_a_user_sees_the_summary_and_where_the_full_log_is(tmp_path: Path) -> None:
    result, log = quiet(tmp_path, 0)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        f"{Path(sys.executable).name} -c ...: full output in {log}",
        "  ai-gateway-local  Plan: 82 to add, 0 to change, 0 to destroy.",
        "  ai-gateway-local  Apply complete! Resources: 82 added, 0 changed, 0 destroyed.",
    ]
    text = log.read_text()
    assert len(text) > 50_000 and text.count("Synthesizing") == 800 and "Creation complete" in text


def test_a_failure_shows_the_end_of_the_log_and_keeps_the_status(tmp_path: Path) -> None:
    result, log = quiet(tmp_path, 3)
    assert result.returncode == 3
    assert f"failed with exit status 3; the last lines of {log}:" in result.stderr
    assert "Creation complete after 1s" in result.stderr and "Synthesizing" not in result.stderr
    assert "\x1b[" not in result.stderr + result.stdout
