"""The one way the tests run a command: ``run`` is ``subprocess.run`` with the
output captured as text, but a timeout ends the command's whole process tree.

``subprocess.run(..., capture_output=True, timeout=...)`` kills only the
direct child on a timeout, then waits without a limit for the output pipes to
close. The commands the tests run start trees (``cdktf`` starts Terraform,
which starts the provider; ``main.py`` starts jsii's Node), and a grandchild
that holds the pipes keeps that wait, and the test run, going for ever: a
Terraform stuck on an emulator that stopped answering outlives its ``cdktf``.
Here each command leads a session of its own, and a timeout kills that
session's process group before the output is collected. Standard input is
/dev/null, so no command can wait for an answer that nobody will type.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

# How long to wait for the pipes once the group is dead (a process that left the
# group could still hold them; then what was read so far is reported).
DRAIN_SECONDS = 10


def run(
    args: Sequence[str | Path],
    *,
    timeout: float,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``args``; raise ``subprocess.TimeoutExpired`` (with the output so far)
    after ``timeout`` seconds, once the command and everything it started are
    killed; with ``check``, raise ``CalledProcessError`` on a non-zero exit."""
    command = [str(arg) for arg in args]
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            try:
                stdout, stderr = process.communicate(timeout=DRAIN_SECONDS)
            except subprocess.TimeoutExpired:
                stdout, stderr = "", f"(output lost: a process outside the group held the pipes for {DRAIN_SECONDS} s)"
                process.kill()
            raise subprocess.TimeoutExpired(command, timeout, stdout, stderr) from None
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if check:
        result.check_returncode()
    return result
