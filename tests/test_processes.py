"""tests/processes.run: a timed-out command's whole tree ends, and the run ends with it."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests import processes

# A parent that starts a grandchild holding stdout and stderr, then waits: what
# `cdktf deploy` does with Terraform. subprocess.run(timeout=1) kills the parent
# and then waits for the pipes, i.e. as long as the grandchild lives.
TREE = "sleep 120 & echo $!; wait"


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_timeout_ends_the_grandchild_holding_the_pipes_and_returns_promptly() -> None:
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        processes.run(["sh", "-c", TREE], timeout=1)
    assert time.monotonic() - started < 30
    output = raised.value.stdout
    assert isinstance(output, str)
    grandchild = int(output.split()[0])
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild), f"sleep {grandchild} outlived the timeout"


def test_a_command_reads_an_empty_standard_input() -> None:
    # `cat` would wait for ever on an inherited terminal or pipe.
    assert processes.run(["cat"], timeout=10).stdout == ""


def test_output_status_and_check() -> None:
    result = processes.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10, env=dict(os.environ))
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    with pytest.raises(subprocess.CalledProcessError):
        processes.run(["false"], timeout=10, check=True)
