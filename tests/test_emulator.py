"""One emulator per checkout: `[emulator] endpoint = "auto"` gives each
checkout a loopback port of its own, recorded once; `tools.emulator start`
never adopts an emulator this checkout did not start, and `stop` ends only
its own. Two clones on one machine then deploy and destroy independently."""

from __future__ import annotations

import http.server
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigw.emulator_endpoint import _derived_port, checkout_endpoint, record_path
from aigw.environments import load_environments
from tests import processes
from tests.gateway_harness import free_port
from tests.project_copy import copy_project
from tools.emulator import Emulator, EmulatorError


def test_each_checkout_records_an_endpoint_of_its_own(tmp_path: Path) -> None:
    first, second = tmp_path / "clone-a", tmp_path / "clone-b"
    assert _derived_port(first) != _derived_port(second)  # holds for these two paths' hashes
    endpoints = {checkout_endpoint(first), checkout_endpoint(second)}
    assert len(endpoints) == 2
    assert checkout_endpoint(first) == record_path(first).read_text().strip()
    assert all(endpoint.startswith("http://127.0.0.1:") for endpoint in endpoints)


def test_a_port_something_listens_on_is_never_chosen(tmp_path: Path) -> None:
    checkout = tmp_path / "clone"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", _derived_port(checkout)))
        taken.listen()
        assert checkout_endpoint(checkout) != f"http://127.0.0.1:{_derived_port(checkout)}"


def test_processes_that_ask_at_once_all_get_the_one_recorded_endpoint(tmp_path: Path) -> None:
    checkout = tmp_path / "clone"
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(checkout_endpoint(checkout))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and set(seen) == {record_path(checkout).read_text().strip()}


def test_a_record_this_project_did_not_write_is_refused(tmp_path: Path) -> None:
    record_path(tmp_path).parent.mkdir(parents=True)
    record_path(tmp_path).write_text("http://10.0.0.1:4566\n")
    with pytest.raises(ValueError, match="not an endpoint this project records"):
        checkout_endpoint(tmp_path)


def test_the_shipped_local_environment_uses_this_checkouts_emulator() -> None:
    (local,) = [env for env in load_environments() if env.name == "local"]
    assert local.settings.emulator.endpoint == checkout_endpoint()
    assert 'endpoint = "auto"' in local.path.read_text()


class _AnsweringLikeMoto(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def foreign_emulator() -> Iterator[str]:
    """Something answering like moto on a loopback port, started by someone else."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _AnsweringLikeMoto)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_emulator_this_checkout_did_not_start_is_never_adopted(foreign_emulator: str, tmp_path: Path) -> None:
    emulator = Emulator(foreign_emulator, state_dir=tmp_path)
    assert emulator.answering()
    with pytest.raises(EmulatorError, match="this checkout did not start that emulator"):
        emulator.start()
    emulator.stop()  # stops nothing it did not start
    assert emulator.answering()


def emulator_command(checkout: Path, action: str) -> str:
    result = processes.run([sys.executable, "-m", "tools.emulator", action, "local"], cwd=checkout, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


@pytest.fixture
def two_clones(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    clones = []
    for name in ("clone-a", "clone-b"):
        (tmp_path / name).mkdir()
        clones.append(copy_project(tmp_path / name))  # tools/ among the project's files
    try:
        yield clones[0], clones[1]
    finally:
        for clone in clones:
            processes.run([sys.executable, "-m", "tools.emulator", "stop", "local"], cwd=clone, timeout=60)


def test_two_clones_run_emulators_of_their_own(two_clones: tuple[Path, Path]) -> None:
    first, second = two_clones
    started = {emulator_command(clone, "start") for clone in (first, second)}
    assert len(started) == 2, started  # two endpoints
    emulator_command(first, "stop")
    assert emulator_command(first, "status").endswith(": not running")
    assert emulator_command(second, "status").endswith(": this checkout's, answering")


def test_a_clone_refuses_an_emulator_answering_on_its_port(two_clones: tuple[Path, Path]) -> None:
    first, second = two_clones
    emulator_command(first, "start")
    shutil.copy(record_path(first), record_path(second).parent.mkdir(parents=True) or record_path(second))
    result = processes.run([sys.executable, "-m", "tools.emulator", "start", "local"], cwd=second, timeout=60)
    assert result.returncode == 1
    assert "local.toml: emulator.endpoint: " in result.stderr and "did not start" in result.stderr
    assert emulator_command(second, "status").endswith("answering, not started by this checkout")
