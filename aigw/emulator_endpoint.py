"""`[emulator] endpoint = "auto"`: an emulator of this checkout's own.

Two checkouts on one machine must never share an emulator (one's `make
destroy` would remove the other's stack, and both would lock one state
object). "auto" gives each checkout a loopback port of its own: derived from
the checkout's path, moved on while something listens there, and recorded in
`.tools/emulator/endpoint` the first time it is needed, so that synth, the
state bootstrap and the emulator itself agree on it from then on.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import tempfile
from pathlib import Path

AUTO = "auto"
CHECKOUT = Path(__file__).resolve().parent.parent
RECORD = Path(".tools") / "emulator" / "endpoint"
FIRST_PORT, PORTS = 20000, 20000  # 20000-39999: below Linux's ephemeral range (32768+ is shared, but probed)
_RECORDED = re.compile(r"^http://127\.0\.0\.1:(\d{4,5})$")


def _in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _derived_port(checkout: Path) -> int:
    digest = hashlib.sha256(str(checkout).encode()).digest()
    return FIRST_PORT + int.from_bytes(digest[:4], "big") % PORTS


def record_path(checkout: Path = CHECKOUT) -> Path:
    return checkout / RECORD


def checkout_endpoint(checkout: Path = CHECKOUT) -> str:
    """This checkout's emulator endpoint: the recorded one, or a new one, recorded."""
    record = record_path(checkout)
    with contextlib.suppress(FileNotFoundError):
        recorded = record.read_text(encoding="utf-8").strip()
        if _RECORDED.match(recorded):
            return recorded
        raise ValueError(f"{record}: {recorded!r} is not an endpoint this project records; delete the file")
    port = _derived_port(checkout)
    for _ in range(PORTS):
        if not _in_use(port):
            break
        port = FIRST_PORT + (port - FIRST_PORT + 1) % PORTS
    else:
        raise RuntimeError("no free loopback port for the emulator")
    endpoint = f"http://127.0.0.1:{port}"
    record.parent.mkdir(parents=True, exist_ok=True)
    # Written whole, then linked into place: the first process to record wins, and
    # no process ever reads a half-written record.
    descriptor, name = tempfile.mkstemp(dir=record.parent, prefix=f"{record.name}.")
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(endpoint + "\n")
    written = Path(name)
    try:
        os.link(written, record)
    except FileExistsError:
        return checkout_endpoint(checkout)
    finally:
        written.unlink()
    return endpoint
