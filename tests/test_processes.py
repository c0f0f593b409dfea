"""tests/processes.run: a timed-out command's whole tree ends, and the run ends with it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

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


def test_a_timeout_reports_where_the_command_was_stuck() -> None:
    # The report of a stuck `cdktf destroy` must show Terraform's last lines, not only the command
    # (printed through printf, so the command line itself does not contain them).
    script = "printf 'Still destroying... [id=%s]\\n' sg-0123; printf 'on %s\\n' stderr >&2; sleep 120"
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        processes.run(["sh", "-c", script], timeout=1)
    assert "Still destroying... [id=sg-0123]" in str(raised.value) and "on stderr" in str(raised.value)


def test_an_interrupted_wait_ends_the_group_too(tmp_path: Path) -> None:
    # pytest-timeout's failure or Ctrl-C arrives as an exception inside the wait:
    # the command and what it started must not outlive it (here SIGALRM stands in).
    pid_file = tmp_path / "grandchild"

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(1)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            processes.run(["sh", "-c", f"sleep 120 & echo $! > {pid_file}; wait"], timeout=600)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 30
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild), f"sleep {grandchild} outlived the interrupted wait"


def test_a_command_reads_an_empty_standard_input() -> None:
    # With the test run's standard input a pipe that nobody writes to, `cat` would
    # wait for ever if it inherited it; it must read /dev/null instead.
    reader, writer = os.pipe()
    saved = os.dup(0)
    os.dup2(reader, 0)
    try:
        assert processes.run(["cat"], timeout=10).stdout == ""
    finally:
        os.dup2(saved, 0)
        for fd in (saved, reader, writer):
            os.close(fd)


def test_output_status_and_check() -> None:
    result = processes.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10, env=dict(os.environ))
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    with pytest.raises(subprocess.CalledProcessError):
        processes.run(["false"], timeout=10, check=True)
