"""A stand-in for the shared store (ElastiCache Serverless, Valkey): a
redis-server on loopback that speaks TLS only, its certificate issued by a
test CA for 127.0.0.1, as the data plane verifies the real one. For the
harness (tests/test_team_limits.py) and the benchmark (bench/dataplane.py)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.gateway_harness import free_port


@dataclass
class Store:
    """A redis-server with TLS only, its certificate from a test CA."""

    port: int
    ca: Path
    process: subprocess.Popen[bytes]
    workdir: Path

    def cli(self, *args: str) -> str:
        command = ["redis-cli", "--tls", "--cacert", str(self.ca), "-h", "127.0.0.1", "-p", str(self.port), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=10, check=True).stdout.strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def start_again(self) -> None:
        self.process = redis_process(self.workdir, self.port)
        wait_for(self)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def certificates(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=aigw test store CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=directory)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
             "-out", "server.csr", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=DNS:127.0.0.1,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=directory)  # fmt: skip


def redis_process(directory: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(directory / "server.pem"), "--tls-key-file", str(directory / "server.key"),
         "--tls-ca-cert-file", str(directory / "ca.pem"), "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=(directory / "redis.log").open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_for(store: Store) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if store.cli("PING") == "PONG":
                return
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"redis-server did not answer: {(store.workdir / 'redis.log').read_text()[-2000:]}")


def start(directory: Path) -> Store:
    """A running store with its certificates in ``directory`` (created)."""
    certificates(directory)
    port = free_port()
    store = Store(port, directory / "ca.pem", redis_process(directory, port), directory)
    wait_for(store)
    return store
