"""Data plane benchmark: ``.venv/bin/python -m bench.dataplane``.

What the data plane (OpenResty + Lua, config/data-plane/) adds in front of the
gateway, measured against the gateway alone and against the data plane it
replaced. One run starts, on 127.0.0.1 only:

- a mock OpenAI: a tiny Debian nginx that answers POST /v1/chat/completions at
  once with a fixed chat.completion (with usage), plus a sink answering 200 to
  anything (the data plane's OTLP collector, the interceptor's sink);
- one gateway as tests/gateway_harness.py runs it (environments/prod.toml's
  synthesized task: Node 20, the npm package, tests/harness/intercept.cjs
  mapping api.openai.com to the mock, nothing recorded);
- the baseline: the data plane of commit f7726d2 (one Lua file carried in the
  task definition's environment, before the modules, the bundle and the
  attack run's fixes), loaded from git at run time: its aigw/key_proxy.py
  renders prod's container environment as that commit did, and its start
  command runs under Debian's nginx as that commit's harness ran it;
- the data plane: prod's synthesized task with its bundle, started with
  tests.gateway_harness.start_data_plane_process (JWT auth on, org keys injected);
- the data plane with limits: prod with one team whose requests per minute,
  requests in flight and token budget are all counted (limits too high to
  trip), its counters in a TLS-only redis-server on loopback standing in for
  ElastiCache Serverless (tests/tls_store.py);
- the data plane with the response cache: prod with the same team, its
  answers cached in the same store; every measured request is a hit.

Five paths, each POST /v1/chat/completions with x-portkey-provider: openai and
the fixture client JWT: direct (wrk -> gateway -> mock), baseline (wrk -> the
previous data plane -> gateway -> mock), data plane (wrk -> data plane ->
gateway -> mock), limits (the same, with two store scripts per request) and
cached (wrk -> data plane -> store: a hit never reaches the gateway).
Per round and scenario the paths run one after the other (A B C, the order
rotated each round) to spread machine noise; reported values are medians over
rounds, added latencies and throughput ratios are paired within a round.

Scenarios: latency at concurrency 1 (wrk -t1 -c1) and 64 (-t2 -c64), each run
long enough for at least MIN_REQUESTS requests (raised after the warm-up when
needed); saturation throughput (-t2 -c128). Every response must be 200: wrk's
"Non-2xx or 3xx responses" and socket errors, and the proxies' access logs,
are checked; any failure is printed loudly and the exit status is 2.

Targets: the data plane adds at most 1 ms at p50 and 3 ms at p99 at both
concurrencies, and keeps at least 90 % of the direct gateway's saturation
throughput; a response cache hit takes at most 2 ms at p50 at c=1. ``--check`` makes a MISS the exit status (1).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from aigw.data_plane.contract import (
    DATA_PLANE_CONTAINER,
    DATA_PLANE_PORT,
    GATEWAY_CONTAINER,
    GATEWAY_PORT,
    RUNTIME_VARIABLE,
)
from aigw.data_plane.render import STORE_OPTIONS
from bench.synth import process_tree
from tests import tls_store
from tests.gateway_fixtures import CLIENT_JWT, ORG_KEYS, REFERENCES
from tests.gateway_harness import (
    INTERCEPT,
    SYSTEM_PATH,
    TaskDefinition,
    free_port,
    log_tail,
    request,
    start_data_plane_process,
    stop_process,
    system_tools_missing,
    wait_until_answering,
)
from tests.gateway_runtime import GATEWAY_NODE, GATEWAY_SERVER

ROOT = Path(__file__).resolve().parent.parent
WRK = Path("/usr/bin/wrk")
NGINX = "nginx"
# The last commit whose data plane was one Lua file in the task definition
# (git log -- config/data-plane/aigw_dataplane.lua).
BASELINE_COMMIT = "f7726d2"
BASELINE_FILES = (
    "aigw/key_proxy.py",
    "config/data-plane/aigw_dataplane.lua",
    "config/data-plane/entrypoint.sh",
    "config/data-plane/gateway.conf.j2",
    "config/data-plane/nginx.conf.j2",
)
BASELINE_ORG_KEYS = ("openai", "anthropic", "google", "azure")  # environments/prod.toml gateway.provider_keys
BASELINE_AZURE = ("example-openai", "gpt-4o", "2024-10-21")  # prod.toml [gateway.azure]
# That commit's harness put these before the main configuration (Debian's ngx_lua is a module).
BASELINE_PRELUDE = (
    "load_module /usr/lib/nginx/modules/ndk_http_module.so;",
    "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;",
)

ROUTE = "/v1/chat/completions"
REQUEST_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
REQUEST_HEADERS = {
    "content-type": "application/json",
    "x-portkey-provider": "openai",
    "Authorization": f"Bearer {CLIENT_JWT}",
}
MOCK_PROMPT_TOKENS = 9
MOCK_COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1767225600,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_bench",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello from the benchmark mock.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": MOCK_PROMPT_TOKENS, "completion_tokens": 7, "total_tokens": 16},
}

MIN_REQUESTS = 2000  # per latency run, for a p99 that rests on at least 20 requests
EMPTY_RUN_RETRIES = 3  # longer runs when a busy machine completed no request in one
MAX_LATENCY_SECONDS = 10.0  # the duration is raised up to this for MIN_REQUESTS (runtime stays < 5 min)
# wrk leaves a request slower than this out of the latency histogram and counts it as a
# socket error (timeout): generous, so a slow answer under overload still counts in p99.
WRK_TIMEOUT = "60s"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

LIMITS_KEY, CACHED_KEY = "limits", "cached"
# How a run in which the store answered nothing is reported.
FAILED_OPEN = "it failed open"
TARGET_ADDED_P50_MS = 1.0
# A response cache hit, on loopback, at concurrency 1: its whole latency.
TARGET_CACHE_HIT_P50_MS = 2.0
TARGET_ADDED_P99_MS = 3.0
TARGET_THROUGHPUT_RATIO = 0.90
# The data plane's CPU per request with today's features (the plain nginx proxy it
# replaced cost 130-150 us), and what each feature may add on top of it: the budget
# a change to that feature is held to. Judged on the median over the concurrency
# levels (each the median of its rounds): CPU per request is steadier than latency
# on a shared machine, and the saturation run alone is the noisiest.
TARGET_DATA_PLANE_CPU_US = 150.0
FEATURE_CPU_BUDGETS_US: dict[str, float] = {
    # two store scripts per request (requests per minute, in flight, tokens) and their settling
    LIMITS_KEY: 150.0,
    # a whole request answered from the store: key, lookup, the stored answer
    CACHED_KEY: 150.0,
}
OTHER_LOAD_WARNING = 0.2  # cores used by processes not part of the benchmark


@dataclass(frozen=True)
class Chain:
    key: str
    label: str


DIRECT = Chain("direct", "direct (wrk -> gateway)")
BASELINE = Chain("baseline", f"baseline (the data plane of {BASELINE_COMMIT})")
DATAPLANE = Chain("dataplane", "data plane (nginx + ngx_lua)")
LIMITS = Chain(LIMITS_KEY, "data plane, team limits in the store")
CACHED = Chain(CACHED_KEY, "data plane, response cache hits")
PATHS = (DIRECT, BASELINE, DATAPLANE, LIMITS, CACHED)
# The team of the limits path: everything counted, nothing ever tripped.
LIMITS_TEAM = "bench"


@dataclass(frozen=True)
class Scenario:
    key: str
    threads: int
    connections: int
    seconds: float
    latency: bool  # p50/p99 targets apply (else: throughput)

    @property
    def title(self) -> str:
        kind = "latency" if self.latency else "saturation"
        return f"{kind} at c={self.connections} (wrk -t{self.threads} -c{self.connections}, {self.seconds:g} s per run)"


@dataclass
class Run:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    cpu: dict[str, float]  # CPU seconds during the run, per process group
    problems: list[str] = field(default_factory=list)

    def cpu_us_per_request(self, group: str) -> float:
        return self.cpu.get(group, 0.0) / max(self.requests, 1) * 1e6


# --------------------------------------------------------------- processes


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (nginx: master and workers)."""
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def _rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    access_log: Path | None = None  # JSON access lines (the proxies)
    access_offset: int = 0
    # Requests the limits path let through uncounted (the store answered slower than its timeouts), and in all.
    uncounted: int = 0
    logged: int = 0


class Processes:
    """Everything started here; stopped in reverse order."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def popen(self, command: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        process: subprocess.Popen[bytes] = subprocess.Popen(list(command), **kwargs)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            with contextlib.suppress(Exception):
                stop_process(process)


def nginx_user() -> str:
    # A root master needs a worker user that exists here (as the harness does).
    return "user root;" if os.geteuid() == 0 else ""


def nginx_temp_paths(home: Path) -> str:
    return "\n".join(
        f"    {kind}_temp_path {home}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )


def start_mock(processes: Processes, home: Path) -> tuple[Service, Service]:
    """The mock OpenAI and the sink, one nginx worker: answering must cost next to nothing."""
    home.mkdir(parents=True)
    mock_port, sink_port = free_port(), free_port()
    completion = json.dumps(MOCK_COMPLETION, separators=(",", ":"))
    if "'" in completion or "$" in completion or "\\" in completion:
        raise RuntimeError("the mock completion cannot be an nginx single-quoted string")
    conf = f"""{nginx_user()}
worker_processes 1;
error_log {home}/error.log warn;
pid {home}/nginx.pid;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
{nginx_temp_paths(home)}
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    default_type application/json;
    server {{
        listen 127.0.0.1:{mock_port};
        location = {ROUTE} {{
            return 200 '{completion}';
        }}
        location / {{
            return 404 '{{"error":{{"message":"not mocked","type":"invalid_request_error"}}}}';
        }}
    }}
    server {{
        listen 127.0.0.1:{sink_port};
        location / {{
            return 200 '{{}}';
        }}
    }}
}}
"""
    (home / "nginx.conf").write_text(conf)
    log = home / "stderr.log"
    process = processes.popen(
        [NGINX, "-p", f"{home}/", "-c", str(home / "nginx.conf"), "-g", "daemon off;"],
        env={"PATH": SYSTEM_PATH},
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    wait_until_answering(f"http://127.0.0.1:{mock_port}{ROUTE}", process, "the mock OpenAI (nginx)", log)
    wait_until_answering(f"http://127.0.0.1:{sink_port}/", process, "the sink (nginx)", log)
    return Service("mock", process, mock_port, log), Service("sink", process, sink_port, log)


def start_gateway(processes: Processes, home: Path, task: TaskDefinition, mock: Service, sink: Service) -> Service:
    """The gateway as tests/gateway_harness.py runs it, without the interception log."""
    for path in (GATEWAY_SERVER, GATEWAY_NODE, INTERCEPT):
        if not path.exists():
            raise RuntimeError(f"{path} is missing: run `make setup` (npm ci installs the gateway and Node 20)")
    home.mkdir(parents=True)
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        **task.environment(GATEWAY_CONTAINER),
        "AIGW_INTERCEPT_MAP": json.dumps({"api.openai.com": f"http://127.0.0.1:{mock.port}"}),
        "AIGW_INTERCEPT_SINK": f"http://127.0.0.1:{sink.port}",
        # AIGW_INTERCEPT_LOG unset: intercept.cjs records nothing (no synchronous write per request).
    }
    log = home / "gateway.log"
    command = [str(GATEWAY_NODE), "--require", str(INTERCEPT), str(GATEWAY_SERVER), f"--port={port}"]
    process = processes.popen(command, cwd=home, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    wait_until_answering(f"http://127.0.0.1:{port}/", process, "the gateway", log)
    return Service("gateway", process, port, log)


def _git_show(commit: str, path: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:{path}"], capture_output=True, text=True, timeout=30
    )
    if result.returncode != 0:
        raise RuntimeError(f"git show {commit}:{path} failed: {result.stderr.strip()}")
    return result.stdout


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class body runs
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def baseline_environment(workdir: Path) -> tuple[dict[str, str], str]:
    """The previous data plane's container environment for prod (as of
    BASELINE_COMMIT) and its start command, loaded from git into workdir with
    their relative layout."""
    for path in BASELINE_FILES:
        target = workdir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_git_show(BASELINE_COMMIT, path))
    # aigw/key_proxy.py finds its templates and Lua at ../config/data-plane/: the layout above.
    old: Any = _load_module("bench_baseline_key_proxy", workdir / "aigw" / "key_proxy.py")
    config = old.ProxyConfig(
        org_keys=BASELINE_ORG_KEYS, azure=old.AzureTarget(*BASELINE_AZURE), bedrock_region="us-east-1",
        environment="prod",
    )  # fmt: skip
    environment: dict[str, str] = old.proxy_environment(config)
    return environment, (workdir / "config" / "data-plane" / "entrypoint.sh").read_text()


def start_baseline(processes: Processes, home: Path, gateway: Service, sink: Service) -> Service:
    """The previous data plane, started as that commit's harness started it
    (its listen, upstream and OTLP ports replaced in its configuration text)."""
    environment, entrypoint = baseline_environment(home / "git")
    port = free_port()
    server = environment["AIGW_NGINX_SERVER"]
    listen, upstream = f"listen {DATA_PLANE_PORT};", f"server 127.0.0.1:{GATEWAY_PORT};"
    if server.count(listen) != 1 or server.count(upstream) != 1:
        raise RuntimeError("the baseline configuration does not have exactly one listen and one upstream line")
    environment["AIGW_NGINX_SERVER"] = server.replace(listen, f"listen 127.0.0.1:{port};").replace(
        upstream, f"server 127.0.0.1:{gateway.port};"
    )
    settings = json.loads(environment["AIGW_DATAPLANE_CONFIG"])
    settings["otlp_port"] = sink.port
    environment["AIGW_DATAPLANE_CONFIG"] = json.dumps(settings)
    run = home / "run"
    run.mkdir(parents=True)
    env = {
        "PATH": SYSTEM_PATH,
        **environment,
        **{name: ORG_KEYS[name] for name in environment["AIGW_KEY_VARIABLES"].split()},
        "AIGW_HOME": str(run),
        "AIGW_NGINX_PRELUDE": "\n".join([*BASELINE_PRELUDE, nginx_user()]),
    }
    log = run / "stderr.log"
    process = processes.popen(
        ["/bin/sh", "-c", entrypoint], env=env, stdout=(run / "stdout.log").open("wb"), stderr=log.open("wb")
    )
    wait_until_answering(f"http://127.0.0.1:{port}/health", process, "the baseline data plane", log)
    return Service("baseline", process, port, log, access_log=run / "stdout.log")


def start_dataplane(
    processes: Processes,
    home: Path,
    task: TaskDefinition,
    gateway: Service,
    sink: Service,
    store: tls_store.Store | None = None,
    name: str = DATAPLANE.key,
) -> Service:
    """The data plane of ``task`` (the path ``name``); with ``store``, its counters and cache go there."""
    references = dict(REFERENCES)
    if store is not None:
        runtime = json.loads(task.environment(DATA_PLANE_CONTAINER)[RUNTIME_VARIABLE])
        references[runtime["store"]["host"][2:-1]] = "127.0.0.1"
        references[runtime["store"]["port"][2:-1]] = str(store.port)
    process, port = start_data_plane_process(
        task, ORG_KEYS, home, gateway.port, otlp_port=sink.port, references=references,
        store_ca=store.ca if store else None,
    )  # fmt: skip
    processes.started.append(process)
    wait_until_answering(f"http://127.0.0.1:{port}/health", process, "the data plane", home / "stderr.log")
    return Service(name, process, port, home / "stderr.log", access_log=home / "stdout.log")


def synthesize_prod(outdir: Path) -> tuple[TaskDefinition, TaskDefinition, TaskDefinition]:
    """environments/prod.toml's task definition, synthesized as the tests do,
    prod's with one team whose limits are all counted (never tripped), and
    prod's with the response cache (the same team, its answers cached)."""
    import aigw.fast_import

    # Before cdktf is imported: its jsii runtime starts then (bench/synth.py sets the same).
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    aigw.fast_import.install()
    from aigw.environments import Environment, load_environments
    from aigw.settings.clients import BudgetSettings, ClientSettings, ResponseCacheSettings
    from modules.stack import synthesize

    (prod,) = [e for e in load_environments() if e.name == "prod"]
    team = ClientSettings(
        requests_per_minute=1_000_000, max_concurrent_requests=100_000, budget=BudgetSettings(tokens=10**12)
    )
    counted = prod.settings.model_copy(update={"clients": {LIMITS_TEAM: team}})
    limited = Environment("prod-limits", prod.path, counted)
    caching = prod.settings.model_copy(
        update={"clients": {LIMITS_TEAM: ClientSettings()}, "response_cache": ResponseCacheSettings(enabled=True)}
    )
    cached = Environment("prod-cache", prod.path, caching)
    synthesize([prod, limited, cached], outdir)
    return tuple(  # type: ignore[return-value]
        TaskDefinition.from_stack(outdir / "stacks" / e.stack_name / "cdk.tf.json") for e in (prod, limited, cached)
    )


# --------------------------------------------------------------------- wrk


def _lua_long_string(text: str) -> str:
    if "]==]" in text:
        raise ValueError("cannot quote this text as a Lua long string")
    return f"[==[{text}]==]"


def write_wrk_script(path: Path) -> None:
    lines = [
        "-- Generated by bench/dataplane.py: one POST per request, no per-response Lua (wrk stays cheap).",
        'wrk.method = "POST"',
        f"wrk.body = {_lua_long_string(json.dumps(REQUEST_BODY, separators=(',', ':')))}",
        # The spaces matter: "[[" would open a long string.
        *(f"wrk.headers[ {_lua_long_string(k)} ] = {_lua_long_string(v)}" for k, v in REQUEST_HEADERS.items()),
    ]
    path.write_text("\n".join(lines) + "\n")


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(output: str) -> tuple[int, float, float, float, float, int, int]:
    """requests, seconds, requests/s, p50 ms, p99 ms, non-2xx/3xx responses, socket errors."""
    percentiles = {m[1]: float(m[2]) * _UNITS_MS[m[3]] for m in _PERCENTILE.finditer(output)}
    count, rps = _REQUESTS.search(output), _RPS.search(output)
    if count is None or rps is None or set(percentiles) != {"50", "99"}:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    sockets = _SOCKET.search(output)
    return (
        int(count[1]),
        float(count[2]) * _UNITS_MS[count[3]] / 1e3,
        float(rps[1]),
        percentiles["50"],
        percentiles["99"],
        int(non_2xx[1]) if non_2xx else 0,
        sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used (/proc/stat)."""
    with open("/proc/stat") as handle:
        fields = [int(n) for n in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


@dataclass
class Bench:
    """The running services and how to measure one wrk run against one of them."""

    services: dict[str, Service]
    script: Path

    def cpu_readers(self, chain: Chain) -> dict[str, Callable[[], float]]:
        gateway, mock = self.services[DIRECT.key].process.pid, self.services["mock"].process.pid
        readers: dict[str, Callable[[], float]] = {
            "gateway": lambda: cpu_seconds(gateway),
            "mock": lambda: cpu_seconds(mock),
        }
        if chain is not DIRECT:
            front = self.services[chain.key].process.pid
            readers["data_plane"] = lambda: cpu_seconds(front)
        if chain in (LIMITS, CACHED):
            store = self.services["store"].process.pid
            readers["store"] = lambda: cpu_seconds(store)
        return readers

    def run_completing(self, chain: Chain, threads: int, connections: int, seconds: float) -> Run:
        """A run in which at least one request completed: on a machine busy
        enough that wrk cut every request at the end of a run, the run
        measured nothing and is made again, longer (and says so). A path that
        answers badly completes requests, and its problems are reported."""
        run = self.run(chain, threads, connections, seconds)
        for _ in range(EMPTY_RUN_RETRIES):
            if run.requests:
                break
            seconds *= 4
            print(f"  {chain.key} c={connections}: no request completed; running again for {seconds:g} s", flush=True)
            run = self.run(chain, threads, connections, seconds)
        return run

    def run(self, chain: Chain, threads: int, connections: int, seconds: float) -> Run:
        service = self.services[chain.key]
        url = f"http://127.0.0.1:{service.port}{ROUTE}"
        command = [str(WRK), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
        command += [f"--timeout={WRK_TIMEOUT}", "-s", str(self.script), url]
        readers = self.cpu_readers(chain)
        before = {name: read() for name, read in readers.items()}
        wrk_before, machine_before = _children_cpu(), _machine_busy_seconds()
        result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, check=False)
        cpu = {name: read() - before[name] for name, read in readers.items()}
        cpu["wrk"] = _children_cpu() - wrk_before
        cpu["other"] = max(0.0, _machine_busy_seconds() - machine_before - sum(cpu.values()))
        if result.returncode != 0 or result.stderr.strip():
            # wrk reports an error in its Lua script on stderr, then runs anyway (GET, no body).
            raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr}\n{result.stdout}")
        requests, elapsed, rps, p50, p99, non_2xx, socket_errors = parse_wrk(result.stdout)
        run = Run(requests, elapsed, rps, p50, p99, non_2xx, socket_errors, cpu)
        if non_2xx:
            run.problems.append(f"{non_2xx} responses were not 2xx/3xx (wrk)")
        if socket_errors:
            errors = _SOCKET.search(result.stdout)
            run.problems.append(f"{errors[0] if errors else 'socket errors'} (wrk)")
        run.problems += check_access_log(service)
        return run


def check_access_log(service: Service) -> list[str]:
    """Statuses in the data plane's JSON access log since the last check: anything
    but 200 is a problem, except 499 (wrk closing its connections at the end
    of a run, with requests in flight). The data plane's lines must also carry
    the token usage it read out of the answer."""
    if service.access_log is None:
        return []
    time.sleep(0.2)  # let nginx log the requests wrk cut off
    with service.access_log.open("rb") as handle:
        handle.seek(service.access_offset)
        data = handle.read()
    complete = data[: data.rfind(b"\n") + 1]
    service.access_offset += len(complete)
    statuses: dict[int, int] = {}
    no_usage = uncounted = 0
    for line in complete.splitlines():
        if not line.startswith(b"{"):
            continue
        entry = json.loads(line)
        statuses[entry["status"]] = statuses.get(entry["status"], 0) + 1
        if service.name in ("dataplane", "limits") and entry["status"] == 200:
            no_usage += entry.get("input_tokens") != MOCK_PROMPT_TOKENS
        # The limits path is meant to measure counting: a request the store did not count is reported;
        # the cache path, hits: a request answered otherwise (a miss, the store too slow) likewise.
        uncounted += service.name == "limits" and entry.get("limit") != ""
        uncounted += service.name == "cached" and entry.get("cache") != "hit"
    service.uncounted += uncounted
    service.logged += sum(statuses.values())
    problems = []
    bad = {status: n for status, n in statuses.items() if status not in (200, 499)}
    if bad:
        problems.append(f"access log statuses other than 200: {bad}")
    if not statuses.get(200):
        problems.append("no 200 in the access log")
    if no_usage:
        problems.append(f"{no_usage} access lines without the answer's token usage")
    if uncounted and uncounted == sum(statuses.values()):
        # None counted: the store is not reached at all, so the path measures nothing of the limits.
        problems.append(f"none of {uncounted} requests was counted or answered by the store ({FAILED_OPEN})")
    return problems


def preflight(services: Mapping[str, Service]) -> None:
    """One request per path before measuring: 200 and the mock's completion."""
    body = json.dumps(REQUEST_BODY).encode()
    for name, service in services.items():
        if name == CACHED.key:  # the first request stores the answer every later one is a hit of
            request(f"http://127.0.0.1:{service.port}{ROUTE}", body, REQUEST_HEADERS)
            time.sleep(0.3)
            check_access_log(service)  # its line, a miss, is not a measured request
            service.uncounted = service.logged = 0
        response = request(f"http://127.0.0.1:{service.port}{ROUTE}", body, REQUEST_HEADERS)
        if response.status != 200:
            raise RuntimeError(f"{name}: preflight request answered {response.status}: {response.body[:500]!r}")
        answer = response.json()
        if (
            answer.get("object") != "chat.completion"
            or answer.get("usage", {}).get("prompt_tokens") != MOCK_PROMPT_TOKENS
        ):
            raise RuntimeError(f"{name}: preflight answer is not the mock's completion: {answer}")
        problems = check_access_log(service)
        if problems:
            raise RuntimeError(f"{name}: preflight access log: {'; '.join(problems)}")


# ------------------------------------------------------------------ report


def _median(values: Iterator[float] | list[float]) -> float:
    return float(statistics.median(list(values)))


@dataclass
class Results:
    runs: dict[tuple[str, str], list[Run]] = field(default_factory=dict)

    def add(self, scenario: Scenario, chain: Chain, run: Run) -> None:
        self.runs.setdefault((scenario.key, chain.key), []).append(run)

    def of(self, scenario: Scenario, chain: Chain) -> list[Run]:
        return self.runs.get((scenario.key, chain.key), [])

    def added(self, scenario: Scenario, chain: Chain, metric: str) -> float:
        """Median over rounds of (path - direct), paired within a round (ms)."""
        pairs = zip(self.of(scenario, chain), self.of(scenario, DIRECT), strict=True)
        return _median([getattr(run, metric) - getattr(direct, metric) for run, direct in pairs])

    def ratio(self, scenario: Scenario, chain: Chain) -> float:
        pairs = zip(self.of(scenario, chain), self.of(scenario, DIRECT), strict=True)
        # A direct run that completed nothing even when run longer has no ratio (its problem is reported).
        return _median([run.rps / direct.rps if direct.rps else math.nan for run, direct in pairs])


CPU_GROUPS = ("gateway", "data_plane", "store", "mock", "wrk")


def print_scenario(results: Results, scenario: Scenario, rounds: int) -> None:
    print(f"\n{scenario.title}; median of {rounds} round(s)")
    header = f"  {'path':<34} {'p50 ms':>7} {'p99 ms':>7} {'req/s':>6} {'requests':>9}"
    header += f" {'+p50 ms':>8} {'+p99 ms':>8} {'vs direct':>9}  CPU us/req: gateway d.plane mock  wrk   busy other"
    print(header)
    for chain in PATHS:
        runs = results.of(scenario, chain)
        if not runs:
            continue
        p50, p99 = _median([r.p50_ms for r in runs]), _median([r.p99_ms for r in runs])
        rps, fewest = _median([r.rps for r in runs]), min(r.requests for r in runs)
        short = "!" if scenario.latency and fewest < MIN_REQUESTS else " "
        row = f"  {chain.label:<34} {p50:>7.2f} {p99:>7.2f} {rps:>6.0f} {fewest:>8d}{short}"
        if chain is DIRECT:
            row += f" {'-':>8} {'-':>8} {'100 %':>9}"
        else:
            added_p50, added_p99 = results.added(scenario, chain, "p50_ms"), results.added(scenario, chain, "p99_ms")
            ratio = f"{results.ratio(scenario, chain) * 100:.1f} %"
            row += f" {added_p50:>+8.2f} {added_p99:>+8.2f} {ratio:>9}"
        cpu = " ".join(f"{_median([r.cpu_us_per_request(g) for r in runs]):>5.0f}" for g in CPU_GROUPS)
        ours = _median([sum(v for k, v in r.cpu.items() if k != "other") / r.seconds for r in runs])
        other = _median([r.cpu.get("other", 0.0) / r.seconds for r in runs])
        print(f"{row}               {cpu:>23} {ours:>6.2f} {other:>5.2f}")


def targets(results: Results, scenarios: Sequence[Scenario]) -> list[tuple[str, bool]]:
    checks: list[tuple[str, bool]] = []
    for scenario in scenarios:
        label = f"c={scenario.connections}"
        if scenario.latency:
            for metric, limit in (("p50_ms", TARGET_ADDED_P50_MS), ("p99_ms", TARGET_ADDED_P99_MS)):
                added = results.added(scenario, DATAPLANE, metric)
                reference = results.added(scenario, BASELINE, metric)
                name = metric.removesuffix("_ms")
                text = (
                    f"{label}: data plane adds {added:+.2f} ms at {name} (<= {limit:g} ms; baseline {reference:+.2f})"
                )
                checks.append((text, added <= limit))
            if scenario.connections == 1:
                hit = _median([r.p50_ms for r in results.of(scenario, CACHED)])
                text = f"{label}: a response cache hit takes {hit:.2f} ms at p50 (<= {TARGET_CACHE_HIT_P50_MS:g} ms)"
                checks.append((text, hit <= TARGET_CACHE_HIT_P50_MS))
        else:
            ratio, reference = results.ratio(scenario, DATAPLANE), results.ratio(scenario, BASELINE)
            text = (
                f"{label}: data plane keeps {ratio * 100:.1f} % of the direct throughput "
                f"(>= {TARGET_THROUGHPUT_RATIO * 100:.0f} %; baseline {reference * 100:.1f} %)"
            )
            checks.append((text, ratio >= TARGET_THROUGHPUT_RATIO))
    checks += cpu_targets(results, scenarios)
    return checks


def cpu_targets(results: Results, scenarios: Sequence[Scenario]) -> list[tuple[str, bool]]:
    """The data plane's CPU per request against its target, and each feature's against its budget."""

    def per_request(chain: Chain) -> float:
        return _median([_median([r.cpu_us_per_request("data_plane") for r in results.of(s, chain)])
                        for s in scenarios])  # fmt: skip

    ours, reference = per_request(DATAPLANE), per_request(BASELINE)
    checks = [(f"data plane CPU: {ours:.0f} us per request (<= {TARGET_DATA_PLANE_CPU_US:g} us; "
               f"baseline {reference:.0f} us)", ours <= TARGET_DATA_PLANE_CPU_US)]  # fmt: skip
    limits = per_request(LIMITS) - ours
    checks.append(
        (
            f"budget: team limits add {limits:.0f} us of data-plane CPU per request "
            f"(<= {FEATURE_CPU_BUDGETS_US[LIMITS_KEY]:g} us)",
            limits <= FEATURE_CPU_BUDGETS_US[LIMITS_KEY],
        )
    )
    hit = per_request(CACHED)
    checks.append(
        (
            f"budget: a response cache hit costs {hit:.0f} us of data-plane CPU "
            f"(<= {FEATURE_CPU_BUDGETS_US[CACHED_KEY]:g} us)",
            hit <= FEATURE_CPU_BUDGETS_US[CACHED_KEY],
        )
    )
    return checks


# -------------------------------------------------------------------- main


def start_services(processes: Processes, workdir: Path) -> Bench:
    print("synthesizing environments/prod.toml ...", flush=True)
    task, limited_task, cached_task = synthesize_prod(workdir / "synth")
    mock, sink = start_mock(processes, workdir / "mock")
    gateway = start_gateway(processes, workdir / "gateway", task, mock, sink)
    baseline = start_baseline(processes, workdir / "baseline", gateway, sink)
    dataplane = start_dataplane(processes, workdir / "dataplane", task, gateway, sink)
    store = tls_store.start(workdir / "store")
    processes.started.append(store.process)
    limits = start_dataplane(processes, workdir / "limits", limited_task, gateway, sink, store, LIMITS.key)
    cached = start_dataplane(processes, workdir / "cached", cached_task, gateway, sink, store, CACHED.key)
    services = {
        DIRECT.key: gateway, BASELINE.key: baseline, DATAPLANE.key: dataplane, LIMITS.key: limits, CACHED.key: cached,
    }  # fmt: skip
    preflight(services)
    script = workdir / "request.lua"
    write_wrk_script(script)
    store_service = Service("store", store.process, store.port, store.workdir / "redis.log")
    return Bench({**services, "mock": mock, "store": store_service}, script)


def warm_up(bench: Bench, args: argparse.Namespace, failures: list[str]) -> tuple[Scenario, ...]:
    """Warm-up runs (not reported): first the cold gateway (JIT), then every
    path at c=64 and c=1 (connection pools). The slowest path's rate at c=1
    and c=64 sets how long a latency run must be for MIN_REQUESTS."""
    seconds = 1.0 if args.quick else 3.0
    print(f"warm-up: {seconds:g} s for the cold gateway, then {seconds:g} s per path at c=64 and c=1 ...", flush=True)
    bench.run(DIRECT, 2, 64, seconds)
    slowest = {1: float("inf"), 64: float("inf")}
    for chain in PATHS:
        for connections, threads in ((64, 2), (1, 1)):
            run = bench.run_completing(chain, threads, connections, seconds)
            if chain in (LIMITS, CACHED) and any(FAILED_OPEN in problem for problem in run.problems):
                # The store's first TLS handshakes, all at once on a busy machine, can outlast the data plane's
                # timeouts; three failures open each worker's breaker for breaker_seconds, longer than the warm-up.
                # Once the breakers have closed, the warm-up runs again; a store still not reached then is a failure.
                print(f"  {chain.label} c={connections}: the store was not reached; warming up again", flush=True)
                time.sleep(STORE_OPTIONS["breaker_seconds"] + 1)
                run = bench.run_completing(chain, threads, connections, seconds)
            if run.problems:
                problems = "; ".join(run.problems)
                failures.append(f"warm-up {chain.label} c={connections} ({run.requests} requests): {problems}")
            slowest[connections] = min(slowest[connections], run.rps)
    durations = {}
    for connections, rate in slowest.items():
        needed = MIN_REQUESTS / rate * 1.25 if rate > 0 else MAX_LATENCY_SECONDS
        durations[connections] = args.seconds
        if needed > args.seconds and not args.quick:
            durations[connections] = min(float(int(needed) + 1), MAX_LATENCY_SECONDS)
            print(
                f"  c={connections}: the slowest path did {rate:.0f} req/s in the warm-up: runs raised to "
                f"{durations[connections]:g} s for >= {MIN_REQUESTS} requests"
            )
    return (
        Scenario("c1", 1, 1, durations[1], latency=True),
        Scenario("c64", 2, 64, durations[64], latency=True),
        Scenario("saturation", 2, 128, args.saturation_seconds, latency=False),
    )


def measure(bench: Bench, scenarios: Sequence[Scenario], rounds: int, failures: list[str]) -> Results:
    """Per round and scenario, every path once; the order rotates each round."""
    results = Results()
    started = time.monotonic()
    for index in range(rounds):
        order = PATHS[index % len(PATHS) :] + PATHS[: index % len(PATHS)]
        print(f"round {index + 1}/{rounds} ({time.monotonic() - started:.0f} s into the rounds) ...", flush=True)
        for scenario in scenarios:
            for chain in order:
                run = bench.run_completing(chain, scenario.threads, scenario.connections, scenario.seconds)
                results.add(scenario, chain, run)
                status = f"{run.requests:6d} requests, p50 {run.p50_ms:7.2f} ms, p99 {run.p99_ms:7.2f} ms"
                print(f"  {scenario.key:<10} {chain.key:<9} {run.rps:6.0f} req/s  {status}", flush=True)
                if run.problems:
                    problems = "; ".join(run.problems)
                    failures.append(f"round {index + 1} {scenario.key} {chain.label}: {problems}")
                    print(f"  !!! NOT ALL 200: {problems}", flush=True)
    for name, service in bench.services.items():
        if service.process.poll() is not None:
            failures.append(f"{name} exited during the benchmark:\n{log_tail(service.log)}")
    return results


def print_cpu_bound_estimate(results: Results, saturation: Scenario) -> None:
    """What the data planes' CPU per request means when the gateway and the data plane
    share the CPU (an ECS task's vCPUs are shared by all its containers): the
    direct throughput times gateway / (gateway + data plane), CPU per request, paired
    per round. Less exposed to scheduling noise than the measured ratio."""
    direct = results.of(saturation, DIRECT)
    costs, shares = [f"gateway {_median([r.cpu_us_per_request('gateway') for r in direct]):.0f} us"], []
    for chain in (BASELINE, DATAPLANE, LIMITS):
        runs = results.of(saturation, chain)
        costs.append(f"{chain.key} {_median([r.cpu_us_per_request('data_plane') for r in runs]):.0f} us")
        share = _median(
            [
                d.cpu_us_per_request("gateway") / (d.cpu_us_per_request("gateway") + r.cpu_us_per_request("data_plane"))
                for r, d in zip(runs, direct, strict=True)
            ]
        )
        shares.append(f"{chain.key} {share * 100:.1f} %")
    print(f"CPU-bound estimate. CPU per request at saturation: {', '.join(costs)}.")
    print("  On one fully busy CPU shared by gateway and data plane (a task's vCPUs are shared by its containers),")
    print(f"  the data plane would leave {', '.join(shares)} of the direct throughput (OTLP collector not counted).")


def report(results: Results, scenarios: Sequence[Scenario], rounds: int, seconds: float) -> list[tuple[str, bool]]:
    cores = os.cpu_count()
    print(f"\nresults ({seconds:.0f} s in all)")
    print(f"  This machine has {cores} cores, shared by wrk, the data plane's nginx workers, the gateway (Node, one")
    print("  event loop) and the mock: the figures compare the paths, they are not what a task does alone.")
    print("  +p50/+p99: latency added vs direct; vs direct: throughput ratio (both paired within a round);")
    print("  requests: fewest in a round ('!': below MIN_REQUESTS); CPU us/req: CPU time of each process")
    print("  group per completed request; busy: cores those used; other: cores used by other processes.")
    for scenario in scenarios:
        print_scenario(results, scenario, rounds)
    short = [
        f"{s.key} {c.key}"
        for s in scenarios
        for c in PATHS
        if s.latency and min(r.requests for r in results.of(s, c)) < MIN_REQUESTS
    ]
    if short:
        print(f"\nfewer than {MIN_REQUESTS} requests in a latency run ({', '.join(short)}): raise --seconds")
    else:
        print(f"\nevery latency run made at least {MIN_REQUESTS} requests")
    other = _median([r.cpu.get("other", 0.0) / r.seconds for runs in results.runs.values() for r in runs])
    if other > OTHER_LOAD_WARNING:
        print(f"WARNING: other processes kept {other:.2f} cores busy during the runs (median): the figures are noisy")
    print_cpu_bound_estimate(results, scenarios[-1])
    print("what the team's limits add to the data plane (two store scripts per request, median paired by round):")
    for scenario in scenarios:
        pairs = list(zip(results.of(scenario, LIMITS), results.of(scenario, DATAPLANE), strict=True))
        p50 = _median([a.p50_ms - b.p50_ms for a, b in pairs])
        p99 = _median([a.p99_ms - b.p99_ms for a, b in pairs])
        cpu = _median([a.cpu_us_per_request("data_plane") - b.cpu_us_per_request("data_plane") for a, b in pairs])
        store = _median([a.cpu_us_per_request("store") for a, _ in pairs])
        print(
            f"  c={scenario.connections}: {p50:+.2f} ms p50, {p99:+.2f} ms p99, {cpu:+.0f} us data-plane CPU and "
            f"{store:.0f} us store CPU per request"
        )
    print("what a response cache hit costs (the whole request, answered by the data plane from the store):")
    for scenario in scenarios:
        runs = results.of(scenario, CACHED)
        hit_p50, hit_p99 = _median([r.p50_ms for r in runs]), _median([r.p99_ms for r in runs])
        speedup = _median([r.rps for r in runs]) / max(_median([r.rps for r in results.of(scenario, DIRECT)]), 1e-9)
        cpu = _median([r.cpu_us_per_request("data_plane") for r in runs])
        store = _median([r.cpu_us_per_request("store") for r in runs])
        print(
            f"  c={scenario.connections}: p50 {hit_p50:.2f} ms, p99 {hit_p99:.2f} ms, {speedup:.2f}x the direct "
            f"gateway's requests per second; {cpu:.0f} us data-plane CPU and {store:.0f} us store CPU per request"
        )
    checks = targets(results, scenarios)
    print("targets (data plane vs direct gateway; a cache hit alone):")
    for text, met in checks:
        print(f"  {'PASS' if met else 'MISS'}  {text}")
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of A B C runs per scenario (median reported)")
    parser.add_argument("--seconds", type=float, default=6.0, help="latency run duration (raised for MIN_REQUESTS)")
    parser.add_argument("--saturation-seconds", type=float, default=10.0, help="saturation run duration")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, runs of at most 2 s")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, configurations)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 1
        args.seconds, args.saturation_seconds = min(args.seconds, 2.0), min(args.saturation_seconds, 3.0)
    missing = system_tools_missing() + ([] if WRK.exists() else [str(WRK)])
    if missing:
        raise SystemExit(f"{', '.join(missing)} not installed: run `make system-deps`")

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="aigw-bench-dataplane-"))
    os.chmod(workdir, 0o755)
    try:
        failures: list[str] = []
        processes = Processes()
        try:
            bench = start_services(processes, workdir)
            gateway_pid = bench.services[DIRECT.key].process.pid
            rss_started = _rss_mib(gateway_pid)
            scenarios = warm_up(bench, args, failures)
            results = measure(bench, scenarios, args.rounds, failures)
            rss_ended = _rss_mib(gateway_pid)
        finally:
            processes.stop_all()
        checks = report(results, scenarios, args.rounds, time.monotonic() - started)
        print(f"gateway (Node) resident memory: {rss_started:.0f} MiB after start-up, {rss_ended:.0f} MiB at the end")
        # On this machine the store shares the cores with everything else: under saturation it can answer
        # slower than the data plane's timeouts (250 ms); limits and cache then fail open, as designed.
        for chain, what in ((LIMITS, "let through uncounted"), (CACHED, "not answered from the cache")):
            service = bench.services[chain.key]
            if service.uncounted:
                share = 100 * service.uncounted / max(service.logged, 1)
                print(f"{chain.label}: {service.uncounted} of {service.logged} requests {what} ({share:.1f} %)")
        for chain in (BASELINE, DATAPLANE, LIMITS, CACHED):
            lines = log_tail(bench.services[chain.key].log, 1_000_000).splitlines()
            warnings = [line for line in lines if re.search(r"\[(warn|error|crit|alert|emerg)\]", line)]
            if warnings:
                print(f"{chain.label}: {len(warnings)} warnings/errors in its nginx log, the last: {warnings[-1]}")
        if failures:
            print_failures(failures, bench.services)
            return 2
        return 1 if args.check and not all(met for _, met in checks) else 0
    finally:
        if args.keep:
            print(f"logs and configurations kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def print_failures(failures: Sequence[str], services: Mapping[str, Service]) -> None:
    print("\n" + "!" * 78)
    print("BENCHMARK FAILED: not every response was 200")
    for failure in failures:
        print(f"  {failure}")
    for name, service in services.items():
        lines = log_tail(service.log, 50_000).splitlines()
        errors = [line for line in lines if "[error]" in line or "[crit]" in line or "[alert]" in line]
        if errors:
            print(f"  last errors in the log of {name}:", *errors[-5:], sep="\n    ")
    print("!" * 78)


if __name__ == "__main__":
    sys.exit(main())
