"""Run one gateway task's wiring on loopback: the real Portkey gateway
(``@portkey-ai/gateway@1.15.2`` from package.json), the key proxy (Debian's
nginx, configured from the *same* container definitions the compute module
deploys) and mock OpenAI-compatible upstreams that record what they receive.

Used by tests/test_gateway_contract.py and by ``make gateway-local`` (which
runs ``python -m tests.gateway_harness`` and prints curl examples). Every
process is bounded in time and stopped on exit; all traffic stays on
127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from modules.gateway_task import (
    GATEWAY_CONTAINER,
    GATEWAY_PORT,
    PROXY_CONTAINER,
    PROXY_PORT,
    PROXY_TEMPLATE_VARIABLE,
    ProxyConfig,
    container,
    environment_of,
    task_containers,
)

ROOT = Path(__file__).resolve().parent.parent
GATEWAY_SERVER = ROOT / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
NODE = ROOT / "node_modules" / ".bin" / "node"
SYSTEM_PATH = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
START_TIMEOUT_SECONDS = 30
REQUEST_TIMEOUT_SECONDS = 20
HARNESS_LOG_GROUPS = {name: f"/harness/{name}" for name in ("access", "gateway", "collector", "metrics", "otlp_logs")}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MockUpstream:
    """An OpenAI-compatible endpoint answering ``status`` and recording requests."""

    name: str
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                upstream.requests.append(
                    {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                )
                if upstream.status == 200:
                    payload = {
                        "id": f"chatcmpl-{upstream.name}",
                        "object": "chat.completion",
                        "created": 1,
                        "model": "mock",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": f"answer from {upstream.name}"},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                else:
                    payload = {"error": {"message": f"{upstream.name} fails", "type": "server_error"}}
                data = json.dumps(payload).encode()
                self.send_response(upstream.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, name=f"mock-{self.name}", daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def authorizations(self) -> list[str | None]:
        return [r["headers"].get("authorization") for r in self.requests]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(url: str, body: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> Response:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_SECONDS) as resp:
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def chat(base: str, headers: Mapping[str, str]) -> Response:
    body = {"model": "mock", "messages": [{"role": "user", "content": "hello"}]}
    return request(f"{base}/v1/chat/completions", body, headers)


def _wait_for(url: str, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {START_TIMEOUT_SECONDS} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class Proxy:
    """One running key proxy (nginx) and where its access log goes."""

    port: int
    access_log: Path
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.access_log.read_text().splitlines() if line.startswith("{")]


class GatewayHarness:
    """The gateway plus any number of proxies in front of it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.gateway_port = free_port()
        self.gateway_env: dict[str, str] = {}

    def start_gateway(self) -> None:
        if not GATEWAY_SERVER.exists():
            raise RuntimeError(f"{GATEWAY_SERVER} is missing: run `make setup` (npm ci installs the gateway)")
        # The gateway container's environment exactly as deployed.
        definitions = self._definitions(ProxyConfig())
        self.gateway_env = environment_of(container(definitions, GATEWAY_CONTAINER))
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.workdir), **self.gateway_env}
        log = self.workdir / "gateway.log"
        node = str(NODE) if NODE.exists() else "node"
        process = subprocess.Popen(
            [node, str(GATEWAY_SERVER), f"--port={self.gateway_port}", "--headless"],
            cwd=self.workdir,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        _wait_for(f"http://127.0.0.1:{self.gateway_port}/", process, "the gateway", log)

    def _definitions(self, proxy: ProxyConfig) -> list[dict[str, Any]]:
        return task_containers(
            gateway_image="portkeyai/gateway:1.15.2",
            proxy_image="nginx:1.28.0-alpine",
            collector_image="amazon/aws-otel-collector:v0.43.3",
            collector_config="",
            region="us-east-1",
            log_groups=HARNESS_LOG_GROUPS,
            secret_arns={name: f"arn:harness:{name}" for name in proxy.org_keys},
            proxy=proxy,
            metrics_namespace="AIGateway",
        )

    def start_proxy(self, proxy: ProxyConfig, org_key_values: Mapping[str, str], name: str) -> Proxy:
        """Run the proxy container's configuration under Debian's nginx, with
        envsubst filling the secrets the way the official image's entrypoint
        does (only variables defined in the container's environment)."""
        definition = container(self._definitions(proxy), PROXY_CONTAINER)
        template = environment_of(definition)[PROXY_TEMPLATE_VARIABLE]
        port = free_port()
        # The only departures from the deployed text: loopback ports chosen here.
        listen, upstream = f"listen {PROXY_PORT};", f"http://127.0.0.1:{GATEWAY_PORT}"
        if template.count(listen) != 1 or upstream not in template:
            raise RuntimeError("the proxy template no longer has the expected listen/upstream lines")
        template = template.replace(listen, f"listen 127.0.0.1:{port};")
        template = template.replace(upstream, f"http://127.0.0.1:{self.gateway_port}")
        secret_env = {item["name"]: org_key_values[item["name"]] for item in definition["secrets"]}
        home = self.workdir / f"proxy-{name}"
        (home / "conf.d").mkdir(parents=True)
        names = " ".join(f"${{{variable}}}" for variable in secret_env)
        rendered = subprocess.run(
            ["envsubst", names], input=template, env=secret_env, capture_output=True, text=True, check=True, timeout=10
        ).stdout
        (home / "conf.d" / "gateway.conf").write_text(rendered)
        (home / "nginx.conf").write_text(
            "\n".join(
                [
                    "user root;" if os.geteuid() == 0 else "",
                    "worker_processes 1;",
                    f"pid {home}/nginx.pid;",
                    f"error_log {home}/error.log warn;",
                    "events { worker_connections 256; }",
                    "http {",
                    f"  client_body_temp_path {home}/body;",
                    f"  proxy_temp_path {home}/proxy;",
                    f"  fastcgi_temp_path {home}/fastcgi;",
                    f"  uwsgi_temp_path {home}/uwsgi;",
                    f"  scgi_temp_path {home}/scgi;",
                    f"  include {home}/conf.d/*.conf;",
                    "}",
                ]
            )
        )
        access_log = home / "stdout.log"
        process = subprocess.Popen(
            [
                str(shutil.which("nginx", path=SYSTEM_PATH)),
                "-p",
                str(home),
                "-c",
                str(home / "nginx.conf"),
                "-g",
                "daemon off;",
            ],
            stdout=access_log.open("wb"),
            stderr=(home / "stderr.log").open("wb"),
        )
        self.processes.append(process)
        _wait_for(f"http://127.0.0.1:{port}/health", process, f"nginx ({name})", home / "error.log")
        return Proxy(port, access_log, process)

    def stop(self) -> None:
        for process in reversed(self.processes):
            _stop(process)


@contextlib.contextmanager
def running_gateway() -> Iterator[GatewayHarness]:
    missing = [tool for tool in ("nginx", "envsubst") if shutil.which(tool, path=SYSTEM_PATH) is None]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not installed: run `make system-deps`")
    with tempfile.TemporaryDirectory(prefix="aigw-harness-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        harness = GatewayHarness(workdir)
        try:
            harness.start_gateway()
            yield harness
        finally:
            harness.stop()


def main() -> int:
    """`make gateway-local`: the deployed wiring on loopback, until Ctrl-C."""
    openai = MockUpstream("mock-openai")
    openai.start()
    try:
        with running_gateway() as harness:
            proxy = harness.start_proxy(
                ProxyConfig(org_keys=("openai",), provider_hosts={"openai": openai.base_url}),
                {"OPENAI_API_KEY": "org-openai-key"},
                "local",
            )
            print(f"gateway on 127.0.0.1:{harness.gateway_port}, key proxy on {proxy.base_url}")
            print(f"mock OpenAI upstream on {openai.base_url} (org key 'org-openai-key')\n")
            print("try:")
            print(
                f"  curl -s {proxy.base_url}/v1/chat/completions -H 'content-type: application/json' \\\n"
                "    -H 'x-portkey-provider: openai' -H 'Authorization: Bearer <client JWT>' \\\n"
                """    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'"""
            )
            print(f"\naccess log: {proxy.access_log}\nCtrl-C stops everything.")
            with contextlib.suppress(KeyboardInterrupt):
                while all(p.poll() is None for p in harness.processes):
                    time.sleep(1)
    finally:
        openai.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
