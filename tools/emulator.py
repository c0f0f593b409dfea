"""The local AWS emulator (moto server) for an environment with
``[emulator] endpoint``: ``python -m tools.emulator start|stop|status <env>``.

``start`` runs moto on the endpoint's loopback port in the background
(pidfile and log under .tools/emulator/) and waits until it answers; it is a
no-op when this checkout's emulator already runs there. An emulator this
checkout did not start is never adopted: ``start`` refuses (another
checkout's stack and state live in it). ``stop`` ends only this checkout's.
Loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from aigw.environments import environment_named_or_report

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".tools" / "emulator"
START_TIMEOUT_SECONDS = 30
LOOPBACK = ("127.0.0.1", "localhost")


class EmulatorError(RuntimeError):
    """The emulator cannot be started as asked (the message says why)."""


class Emulator:
    def __init__(self, endpoint: str, state_dir: Path = STATE_DIR) -> None:
        parsed = urlparse(endpoint)
        if parsed.hostname not in LOOPBACK or parsed.port is None:
            raise ValueError(f"{endpoint}: the emulator runs on loopback with an explicit port (http://127.0.0.1:PORT)")
        self.endpoint = endpoint
        self.host, self.port = parsed.hostname, parsed.port
        self.pidfile = state_dir / f"moto-{self.port}.pid"
        self.log = state_dir / f"moto-{self.port}.log"

    def answering(self) -> bool:
        # Its dashboard page: cheap whatever the amount of emulated state.
        url = f"{self.endpoint}/moto-api/"
        with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
        return False

    def pid(self) -> int | None:
        """The process of the emulator this checkout started on this port, if it still runs."""
        try:
            pid = int(self.pidfile.read_text())
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        # The recorded pid may have been reused by another process since.
        if b"tools.moto_launcher" in command and str(self.port).encode() in command:
            return pid
        return None

    def start(self) -> None:
        if self.pid() is not None and self.answering():
            return
        if self.answering():
            raise EmulatorError(
                f"{self.endpoint} answers, but this checkout did not start that emulator (another checkout's?); "
                'it is not adopted: stop it, or give this checkout another port (with endpoint = "auto", delete '
                f"{self.pidfile.parent / 'endpoint'} to choose a new one)"
            )
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tools.moto_launcher", "-H", self.host, "-p", str(self.port)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmulatorError(f"moto exited with {process.returncode} (port {self.port} busy?); see {self.log}")
            if self.answering():
                # Recorded only once it answers, so a failed start never hides a running emulator.
                self.pidfile.write_text(str(process.pid))
                return
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
        raise EmulatorError(f"moto did not answer on {self.endpoint} within {START_TIMEOUT_SECONDS} s; see {self.log}")

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(50):
                if self.pid() is None:
                    break
                time.sleep(0.1)
            else:
                os.killpg(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("environment")
    args = parser.parse_args(argv)
    environment = environment_named_or_report(args.environment)
    if environment is None:
        return 2
    if not environment.settings.emulator.endpoint:
        print(f"{environment.path}: emulator.endpoint: not set; this environment deploys to AWS", file=sys.stderr)
        return 2
    emulator = Emulator(environment.settings.emulator.endpoint)
    if args.action == "start":
        try:
            emulator.start()
        except EmulatorError as error:
            print(f"{environment.path}: emulator.endpoint: {error}", file=sys.stderr)
            return 1
        print(f"emulator answering on {emulator.endpoint}")
    elif args.action == "stop":
        emulator.stop()
        print(f"emulator on {emulator.endpoint} stopped")
    elif emulator.pid() is not None:
        state = "answering" if emulator.answering() else "not answering"
        print(f"emulator on {emulator.endpoint}: this checkout's, {state}")
    else:
        state = "answering, not started by this checkout" if emulator.answering() else "not running"
        print(f"emulator on {emulator.endpoint}: {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
