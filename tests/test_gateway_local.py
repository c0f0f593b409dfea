"""`make gateway-local` (python -m tests.gateway_harness): prod's task on
loopback with mock providers until Ctrl-C, which ends it quietly: status 0,
no traceback, nothing left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.gateway

READY = "Ctrl-C stops everything."


def test_ctrl_c_ends_gateway_local_quietly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.gateway_harness"], cwd=ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        printed = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and (line := process.stdout.readline()):
            printed.append(line)
            if line.strip() == READY:
                break
        assert printed and printed[-1].strip() == READY, "".join(printed)
        # A terminal's Ctrl-C goes to the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    with_group = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True)
    assert with_group.stdout.strip() == "", "processes of gateway-local still run"
