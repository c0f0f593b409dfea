"""The one way the tests run a command to completion: ``run`` is
``subprocess.run`` with the output captured as text, but a timeout, or
anything else that ends the wait (pytest-timeout failing the test, Ctrl-C),
ends the command's whole process group.

``subprocess.run(..., capture_output=True, timeout=...)`` kills only the
direct child on a timeout, then waits without a limit for the output pipes to
close. The commands the tests run start trees (``main.py`` starts jsii's
Node; ``pytest`` starts the gateway harness), and a grandchild that holds the
pipes keeps that wait, and the test run, going for ever. Here each command
leads a session of its own, and the group is killed before the output is
collected. (``cdktf`` runs Terraform in a pseudo-terminal, a session of its
own: Terraform and the provider end with the hangup when ``cdktf`` dies.)
Standard input is /dev/null, so no command can wait for an answer that nobody
will type.
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


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


# How much of a timed-out command's output its error message ends with.
TAIL_CHARS = 4000


class CommandTimedOut(subprocess.TimeoutExpired):
    """``subprocess.TimeoutExpired`` whose message ends with the tail of what
    the command printed, so a report shows where it was stuck (for example
    Terraform's "Still destroying... [id=...]"), not only that it was."""

    def __str__(self) -> str:
        output = (_text(self.stdout) + _text(self.stderr))[-TAIL_CHARS:]
        return f"{super().__str__()}; its output ended with:\n{output}"


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def run(
    args: Sequence[str | Path],
    *,
    timeout: float,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``args``; raise ``CommandTimedOut`` (with the output so far)
    after ``timeout`` seconds, once the command and everything it started are
    killed; with ``check``, raise ``CalledProcessError`` on a non-zero exit."""
    command = [str(arg) for arg in args]
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            try:
                stdout, stderr = process.communicate(timeout=DRAIN_SECONDS)
            except subprocess.TimeoutExpired as held:
                # A process outside the group still holds the pipes: report what was read.
                stdout, stderr = _text(held.stdout), _text(held.stderr) + "\n(output cut: the pipes stayed open)"
            raise CommandTimedOut(command, timeout, stdout, stderr) from None
    except BaseException:
        # The timeout above, pytest-timeout's failure, Ctrl-C: nothing the command started outlives the wait.
        _kill_group(process)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        process.wait()
        raise
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if check:
        result.check_returncode()
    return result
