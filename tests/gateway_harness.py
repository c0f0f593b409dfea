"""Run one gateway task on loopback exactly as ECS runs it.

- The container definitions come from a synthesized stack (``cdk.tf.json``
  of a shipped environment), and so does the data plane's bundle: the
  environment file the task definition names in `environmentFiles` is read
  from the stack's assets, as ECS reads it from S3, and its variables join
  the container's environment. The data plane then runs its deployed start
  command (config/data-plane/start.sh: the bundle verified against the
  pinned sha256, unpacked, started) under BusyBox's sh and tools, as in the
  Alpine-based OpenResty image, with Debian's nginx, ngx_lua, LuaJIT and
  lua-resty-core. The gateway runs its deployed command (the image's own, or
  the cluster primary of a task with more than one vCPU: gateway_command)
  with its deployed environment, from the npm package at the image's version, with the image's dependency versions,
  on the image's Node major (tests/gateway_runtime.py).
- Provider hosts are not configured anywhere (production configures none).
  Instead, the gateway process preloads tests/harness/intercept.cjs, which
  records every outbound request (URL, headers) and sends it to a loopback
  mock: the mock of that provider for its official host, the "attacker" sink
  for any other host. DNS answers 127.0.0.1 for every name, so nothing the
  gateway does can leave the machine.
- The only departures from the deployed task: the variables only the
  harness sets (aigw.data_plane.contract.HARNESS_VARIABLES: nginx's home,
  Debian's two load_module lines and worker user, loopback ports for the
  listener, the gateway and the collector), and the credentials endpoint (a
  full URI on loopback instead of ECS's link-local one).

Used by the gateway-tier tests and by ``make gateway-local``. Every process is
bounded in time and stopped on exit.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigw.data_plane.bundle import read_environment_file, unpack
from aigw.data_plane.contract import BUNDLE_VARIABLE, DATA_PLANE_CONTAINER, GATEWAY_CONTAINER
from bench.synth import process_tree
from tests.gateway_runtime import GATEWAY_DIR, GATEWAY_NODE, GATEWAY_SERVER

ROOT = Path(__file__).resolve().parent.parent
HARNESS_DIR = Path(__file__).resolve().parent / "harness"
INTERCEPT = HARNESS_DIR / "intercept.cjs"
# lua-resty-redis as the data plane image bundles it (pinned: tests/harness/lua/pins.json).
HARNESS_LUA = HARNESS_DIR / "lua"
SYSTEM_PATH = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
START_TIMEOUT_SECONDS = 30
REQUEST_TIMEOUT_SECONDS = 20


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TaskDefinition:
    """The task's container definitions as a synthesized stack deploys them,
    with the environment files ECS would read (from the stack's assets)."""

    containers: dict[str, dict[str, Any]]
    environment_files: dict[str, str]  # S3 object ARN as written in the stack -> file text

    @classmethod
    def from_stack(cls, stack_file: Path) -> TaskDefinition:
        document = json.loads(stack_file.read_text(encoding="utf-8"))
        (task,) = document["resource"]["aws_ecs_task_definition"].values()
        # Terraform turns the escaped "$${" / "%%{" back into "${" / "%{" when it
        # registers the task definition; do the same.
        text = task["container_definitions"].replace("$${", "${").replace("%%{", "%{")
        files: dict[str, str] = {}
        for name, obj in document["resource"].get("aws_s3_object", {}).items():
            # The stack names the object as "<bucket arn>/${aws_s3_object.<name>.key}".
            source = stack_file.parent / obj["source"]
            files[f"${{aws_s3_object.{name}.key}}"] = source.read_text(encoding="ascii")
        return cls({c["name"]: c for c in json.loads(text)}, files)

    def environment(self, container: str) -> dict[str, str]:
        """The container's environment as ECS sets it: its environment files
        (in order), then its `environment`, which takes precedence."""
        variables: dict[str, str] = {}
        for reference in self.containers[container].get("environmentFiles", []):
            (text,) = [t for key, t in self.environment_files.items() if reference["value"].endswith("/" + key)]
            variables.update(read_environment_file(text))
        variables.update({item["name"]: item["value"] for item in self.containers[container].get("environment", [])})
        return variables

    def resolved_environment(self, container: str, references: Mapping[str, str]) -> dict[str, str]:
        """The container's environment with the Terraform references in it
        replaced by the values Terraform would write (``references``: a whole
        expression such as ``aws_x.name.endpoint[0].port`` -> its value, or a
        resource type -> the value of the ``id`` of any resource of it, e.g.
        the Cognito app client's id). A reference left unresolved is an error,
        never passed on."""
        environment = self.environment(container)
        for name, value in environment.items():
            for expression in re.findall(r"\$\{([^}]+)\}", value):
                kind = re.fullmatch(r"([a-z0-9_]+)\.[A-Za-z0-9_-]+\.id", expression)
                if expression in references:
                    value = value.replace("${" + expression + "}", references[expression])
                elif kind and kind[1] in references:
                    value = value.replace("${" + expression + "}", references[kind[1]])
            if "${" in value:
                raise RuntimeError(f"{container}: {name} has a Terraform reference the harness cannot resolve: {value}")
            environment[name] = value
        return environment

    def bundle(self) -> dict[str, str]:
        """The files of the data plane's bundle, as its environment file carries them."""
        archive = base64.b64decode(self.environment(DATA_PLANE_CONTAINER)[BUNDLE_VARIABLE])
        return {name: data.decode() for name, data in unpack(archive).items()}

    def secret_variables(self, container: str) -> list[str]:
        return [item["name"] for item in self.containers[container].get("secrets", [])]

    def command(self, container: str) -> list[str]:
        return list(self.containers[container]["command"])


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    body: Mapping[str, Any] | bytes | None = None,
    headers: Mapping[str, str] | None = None,
    method: str | None = None,
) -> Response:
    data = json.dumps(body).encode() if isinstance(body, Mapping) else body
    req = urllib.request.Request(
        url, data=data, headers={"content-type": "application/json", **(headers or {})}, method=method
    )
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_SECONDS) as resp:
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def chat(base: str, headers: Mapping[str, str], **extra: Any) -> Response:
    body = {"model": "mock", "messages": [{"role": "user", "content": "hello"}], **extra}
    return request(f"{base}/v1/chat/completions", body, headers)


def log_tail(log: Path, size: int = 3000) -> str:
    """The last ``size`` characters of a process's log."""
    try:
        return log.read_text(errors="replace")[-size:]
    except OSError:
        return f"({log} unreadable)"


def wait_until_answering(url: str, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    """Wait until ``url`` answers 200; fail with the log's tail if ``process``
    exits first or START_TIMEOUT_SECONDS pass."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log_tail(log)}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {START_TIMEOUT_SECONDS} s:\n{log_tail(log)}")


GATEWAY_READY = "Ready for connections"
# The gateway image's working directory, where its files are (the npm package's here).
GATEWAY_IMAGE_DIR = "/app/"


def gateway_command(task: TaskDefinition, port: int) -> tuple[list[str], dict[str, str]]:
    """The gateway container's command as the task definition runs it, and the
    variables it needs here: Node 20 for the image's `node`, the npm package
    for the image's /app, the interception preloaded (NODE_OPTIONS, which a
    cluster primary's workers inherit) and the port (``--port``, which the
    primary hands on to its workers). Without a command, the image's own:
    `npm run start:node`, i.e. `node build/start-server.js` (no --headless)."""
    container = task.containers[GATEWAY_CONTAINER]
    if "command" not in container:
        return [str(GATEWAY_NODE), "--require", str(INTERCEPT), str(GATEWAY_SERVER), f"--port={port}"], {}
    command = task.command(GATEWAY_CONTAINER)
    if container.get("entryPoint") != [] or command[:2] != ["node", "-e"]:
        raise RuntimeError(f"the gateway's command is no longer `node -e <primary> ...`: {command[:2]}")
    args = [str(GATEWAY_DIR / arg.removeprefix(GATEWAY_IMAGE_DIR)) if arg.startswith(GATEWAY_IMAGE_DIR) else arg
            for arg in command[2:]]  # fmt: skip
    return [str(GATEWAY_NODE), "-e", *args, f"--port={port}"], {"NODE_OPTIONS": f"--require={INTERCEPT}"}


def wait_for_gateway(log: Path, process: subprocess.Popen[bytes], what: str = "the gateway") -> None:
    """Until each of the gateway's processes (a cluster primary's workers, or
    the one process) has printed that it is ready: it answers as soon as it
    listens, but installs its handlers of uncaught errors only after its
    start-up spinner, about a second later; until then one stray error ends it.
    A primary forks its workers before any of them can be ready."""
    wait_for_line(log, GATEWAY_READY, process, what)
    workers = max(1, len(process_tree(process.pid)) - 1)
    wait_for_line(log, GATEWAY_READY, process, what, count=workers)


def wait_for_line(log: Path, text: str, process: subprocess.Popen[bytes], what: str, count: int = 1) -> None:
    """Wait until ``log`` holds ``text`` (``count`` times); fail with its tail if
    ``process`` exits first or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if log.read_text(errors="replace").count(text) >= count:
            return
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log_tail(log)}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not print {text!r} within {START_TIMEOUT_SECONDS} s:\n{log_tail(log)}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a data plane then drains, as in ECS), then after 10 s SIGKILL to
    it and every process below it: a data plane's nginx is its start script's child."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            for pid in reversed(process_tree(process.pid)):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            process.wait(timeout=10)


class Interception:
    """What the gateway process tried to reach (tests/harness/intercept.cjs)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        log.write_text("")

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        lines = self.log.read_text(encoding="utf-8").splitlines()
        events = [json.loads(line) for line in lines if line.strip()]
        return [e for e in events if kind is None or e.get("kind") == kind]

    def outbound(self) -> list[dict[str, Any]]:
        """Every outbound request (fetch or http/https module)."""
        return [e for e in self.events() if e.get("kind") in ("fetch", "http")]

    def reset(self) -> None:
        self.log.write_text("")


@dataclass
class RunningDataPlane:
    """One running data plane (nginx) and where its logs go."""

    port: int
    home: Path
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.home / "stdout.log"

    def access_lines(self) -> list[dict[str, Any]]:
        """Every access-log line, each required to be one JSON object in valid
        UTF-8 (the container's stdout holds nothing else). A line being
        written (no newline yet) is not one yet."""
        data = self.access_log.read_bytes()
        text = data[: data.rfind(b"\n") + 1].decode("utf-8")  # strict: invalid UTF-8 raises
        lines = [json.loads(line) for line in text.splitlines()]
        for line in lines:
            assert isinstance(line, dict), f"an access-log line that is not a JSON object: {line!r}"
        return lines

    def access_line(self, trace: str, timeout: float = 5.0) -> dict[str, Any]:
        """The access-log line of the request that carried ``trace``. nginx writes
        it when the request is finalized, which may be just after the response."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [entry for entry in self.access_lines() if entry["trace"] == trace]
            if lines:
                (line,) = lines
                return line
            time.sleep(0.05)
        raise AssertionError(f"no access-log line with trace {trace}")

    def file(self, name: str) -> str:
        """A file of the running data plane's home (its unpacked bundle)."""
        return (self.home / name).read_text()


# Where Debian's nginx differs from the OpenResty image: ngx_lua (and its
# NDK dependency) are modules to load, and a root master needs a worker user
# that exists here. The start script writes these lines into prelude.conf,
# which the deployed main configuration includes first; nothing else is added.
DEBIAN_PRELUDE = [
    "load_module /usr/lib/nginx/modules/ndk_http_module.so;",
    "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;",
]
BUSYBOX = "/usr/bin/busybox"


def busybox_tools(directory: Path) -> Path:
    """A directory of BusyBox's tools (sh, base64, sha256sum, tar, ...), to put
    first on PATH: the OpenResty image is Alpine, whose tools are BusyBox's."""
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "sh").exists():
        subprocess.run([BUSYBOX, "--install", "-s", str(directory)], check=True, timeout=30)
    return directory


def start_data_plane_process(
    task: TaskDefinition,
    key_values: Mapping[str, str],
    home: Path,
    gateway_port: int,
    *,
    otlp_port: int = 9,
    credentials_uri: str = "",
    credentials_token: str = "",
    references: Mapping[str, str] | None = None,
    store_ca: Path | None = None,
    guardrail_address: str = "",
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the data plane container's command with its environment (the
    environment file included, as ECS sets it); returns the process (which
    may already have exited, e.g. on a refused key) and its port. What only
    the harness sets: nginx's home, the Debian prelude, loopback ports for
    the listener, the gateway and the collector, the credentials endpoint
    (a full URI on loopback, as the AWS SDKs allow, instead of ECS's, and the
    token the SDKs then send with it), the values of the Terraform
    references in its environment (``references``), the CA of a test shared
    store or guardrail mock (``store_ca``), where that mock listens
    (``guardrail_address``: the data plane still verifies Bedrock's name),
    and where the image's lua-resty-redis is (a copy pinned to the image's
    version, tests/harness/lua)."""
    environment = task.resolved_environment(DATA_PLANE_CONTAINER, references or {})
    port = free_port()
    home.mkdir(parents=True)
    missing = set(task.secret_variables(DATA_PLANE_CONTAINER)) - set(key_values)
    if missing:
        raise RuntimeError(f"no test value for the data plane's secrets {sorted(missing)}")
    prelude = [*DEBIAN_PRELUDE, "user root;" if os.geteuid() == 0 else ""]
    tools = busybox_tools(home.parent / "busybox")
    env = {
        "PATH": f"{tools}:{SYSTEM_PATH}",
        **environment,
        **{name: key_values[name] for name in task.secret_variables(DATA_PLANE_CONTAINER)},
        "AIGW_HOME": str(home),
        "AIGW_NGINX_PRELUDE": "\n".join(prelude),
        "AIGW_LISTEN": f"127.0.0.1:{port}",
        "AIGW_GATEWAY_ADDRESS": f"127.0.0.1:{gateway_port}",
        "AIGW_OTLP_ADDRESS": f"127.0.0.1:{otlp_port}",
        "LUA_PATH": f"{HARNESS_LUA}/?.lua;;",
    }
    if store_ca is not None:
        env["AIGW_STORE_CA"] = str(store_ca)
    if guardrail_address:
        env["AIGW_GUARDRAIL_ADDRESS"] = guardrail_address
    if credentials_uri:
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = credentials_uri
    if credentials_token:
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = credentials_token
    command = task.command(DATA_PLANE_CONTAINER)
    if command[0] != "/bin/sh":
        raise RuntimeError(f"the data plane's command no longer starts with /bin/sh: {command[:2]}")
    process = subprocess.Popen(
        [str(tools / "sh"), *command[1:]],
        env=env,
        stdout=(home / "stdout.log").open("wb"),
        stderr=(home / "stderr.log").open("wb"),
    )
    return process, port


class GatewayHarness:
    """The gateway (with interception) plus any number of data planes in front of it."""

    def __init__(
        self,
        workdir: Path,
        task: TaskDefinition,
        upstreams: Mapping[str, str],
        sink: str,
        references: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.references = dict(references or {})
        self.task = task
        self.upstreams = dict(upstreams)
        self.sink = sink
        self.processes: list[subprocess.Popen[bytes]] = []
        self.gateway_process: subprocess.Popen[bytes] | None = None
        self.gateway_port = free_port()
        self.interception = Interception(workdir / "intercept.jsonl")
        # Harness-only variables of the gateway process (the CA of a test shared store).
        self.extra_environment: dict[str, str] = {}

    @property
    def gateway_environment(self) -> dict[str, str]:
        """The gateway container's variables, with the Terraform references' test values."""
        return self.task.resolved_environment(GATEWAY_CONTAINER, self.references)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start_gateway(self) -> None:
        for path in (GATEWAY_SERVER, GATEWAY_NODE):
            if not path.exists():
                raise RuntimeError(f"{path} is missing: run `make setup` (npm ci installs the gateway and Node 20)")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.workdir),
            **self.gateway_environment,
            **self.extra_environment,
            "AIGW_INTERCEPT_MAP": json.dumps(self.upstreams),
            "AIGW_INTERCEPT_SINK": self.sink,
            "AIGW_INTERCEPT_LOG": str(self.interception.log),
        }
        log = self.workdir / "gateway.log"
        # The task definition's command (or the image's); only the port differs.
        command, variables = gateway_command(self.task, self.gateway_port)
        env.update(variables)
        process = subprocess.Popen(command, cwd=self.workdir, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        self.processes.append(process)
        self.gateway_process = process
        wait_until_answering(f"{self.gateway_url}/", process, "the gateway", log)
        wait_for_gateway(log, process)

    def start_data_plane(
        self,
        key_values: Mapping[str, str],
        name: str,
        task: TaskDefinition | None = None,
        *,
        otlp_port: int = 9,
        credentials_uri: str = "",
        references: Mapping[str, str] | None = None,
        store_ca: Path | None = None,
        guardrail_address: str = "",
    ) -> RunningDataPlane:
        """``references``: more (or other) values of Terraform references than the harness's."""
        home = self.workdir / f"data-plane-{name}"
        process, port = start_data_plane_process(
            task or self.task, key_values, home, self.gateway_port, otlp_port=otlp_port,
            credentials_uri=credentials_uri, references={**self.references, **(references or {})},
            store_ca=store_ca, guardrail_address=guardrail_address,
        )  # fmt: skip
        self.processes.append(process)
        wait_until_answering(
            f"http://127.0.0.1:{port}/health", process, f"the data plane ({name})", home / "stderr.log"
        )
        return RunningDataPlane(port, home, process)

    def wait(self) -> None:
        """Until one of its processes (the gateway, a data plane) exits."""
        while all(process.poll() is None for process in self.processes):
            time.sleep(1)

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)


def system_tools_missing() -> list[str]:
    tools = ("nginx", "busybox", "redis-server", "redis-cli", "openssl")
    missing = [tool for tool in tools if shutil.which(tool, path=SYSTEM_PATH) is None]
    lua = [Path("/usr/lib/nginx/modules/ngx_http_lua_module.so"), Path("/usr/share/lua/5.1/resty/core.lua")]
    return missing + [str(path) for path in lua if not path.exists()]


@contextlib.contextmanager
def running_gateway(
    task: TaskDefinition,
    upstreams: Mapping[str, str],
    sink: str,
    references: Mapping[str, str] | None = None,
    workdir: Path | None = None,
    extra_environment: Mapping[str, str] | None = None,
) -> Iterator[GatewayHarness]:
    """The gateway started, stopped on exit with every data plane. Its files go
    to ``workdir`` (created; kept), else to a temporary directory (removed).
    ``extra_environment``: harness-only variables (a test store's CA)."""
    missing = system_tools_missing()
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not installed: run `make system-deps`")
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aigw-harness-")))
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o755)
        harness = GatewayHarness(workdir, task, upstreams, sink, references)
        harness.extra_environment.update(extra_environment or {})
        try:
            harness.start_gateway()
            yield harness
        finally:
            harness.stop()


_SYNTHESIZE = """
import sys
from pathlib import Path
import aigw.fast_import
aigw.fast_import.install()
from aigw.environments import load_environments
from modules.stack import synthesize
synthesize([e for e in load_environments() if e.name == sys.argv[1]], Path(sys.argv[2]))
"""


def main() -> int:
    """`make gateway-local`: environments/prod.toml's task on loopback, with
    mock providers, until Ctrl-C."""
    from aigw.environments import load_environments
    from tests.gateway_fixtures import CLIENT_JWT, ORG_KEYS, REFERENCES
    from tests.mock_providers import intercept_map, start_all, stop_all

    (prod,) = [e for e in load_environments() if e.name == "prod"]
    mocks = start_all()
    try:
        with tempfile.TemporaryDirectory(prefix="aigw-local-synth-") as outdir:
            # In a child process: jsii's Node would get the Ctrl-C too, and this process's
            # exit would then write to its closed pipe (a BrokenPipeError traceback).
            subprocess.run([sys.executable, "-c", _SYNTHESIZE, prod.name, outdir], check=True, stdin=subprocess.DEVNULL)
            task = TaskDefinition.from_stack(Path(outdir) / "stacks" / prod.stack_name / "cdk.tf.json")
        upstreams = intercept_map(
            mocks, (prod.settings.gateway.azure.resource_name,) if prod.settings.gateway.azure else ()
        )
        with running_gateway(task, upstreams, mocks["sink"].base_url, REFERENCES) as harness:
            data_plane = harness.start_data_plane(ORG_KEYS, "local")
            print(f"gateway on {harness.gateway_url}, data plane (prod's task) on {data_plane.base_url}")
            print(f"org keys: {', '.join(f'{k}={v}' for k, v in ORG_KEYS.items())}")
            print("provider hosts go to recording mocks; any other host to the 'attacker' sink\n")
            print("try:")
            print(
                f"  curl -s {data_plane.base_url}/v1/chat/completions -H 'content-type: application/json' \\\n"
                f"    -H 'x-portkey-provider: openai' -H 'Authorization: Bearer {CLIENT_JWT}' \\\n"
                """    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'"""
            )
            print(f"\naccess log: {data_plane.access_log}\noutbound requests: {harness.interception.log}")
            # Announced inside the suppression: a Ctrl-C right after the line must end quietly too.
            with contextlib.suppress(KeyboardInterrupt):
                print("Ctrl-C stops everything.", flush=True)
                harness.wait()
    finally:
        stop_all(mocks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
