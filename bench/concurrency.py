"""Concurrency benchmark: ``.venv/bin/python -m bench.concurrency``.

How many streaming completions one core holds, through the data plane and
without it. On 127.0.0.1 only:

- the task's processes on core 0: the gateway as tests/gateway_harness.py
  runs it (prod's synthesized task, Node 20, tests/harness/intercept.cjs
  mapping the providers to the mock) and prod's data plane
  (tests.gateway_harness.start_data_plane_process, JWT auth on, org keys
  injected, its bound on requests in flight as prod sets it);
- on core 1: a mock provider (Debian nginx + ngx_lua, one worker) that
  streams a completion of ``--chunks`` events ``--pacing-ms`` apart (OpenAI's
  chat.completion.chunk, or Anthropic's messages events with ``--shape
  anthropic``), then usage and the end; and this process, the load generator
  (asyncio, raw HTTP/1.1): each of N users holds one keep-alive connection and
  starts its next stream as the last one ends.

Steps of N users (``--steps``, default 250, 500, 1,000, 2,000, 4,000) ramp in
over ``--ramp`` seconds and hold for ``--hold``; each step runs against the
mock alone (the generator's own floor: it must not be the bottleneck), the
gateway alone (direct) and the data plane in front of it. Per step and path,
over the hold: streams completed and failed (by cause: a 503 with
Retry-After is the data plane refusing past its bound, explained; resets,
timeouts and refused connections are not), the streams receiving chunks,
time to first byte p50/p99, the delay added between chunks over the mock's
pacing p50/p99/max, each process's CPU (cores busy) and resident memory, and
the CPU per completed stream. Numbers are printed, never asserted (the
suite runs ``--quick`` only to prove it still runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aigw.data_plane.contract import GATEWAY_CONTAINER
from bench import cpu_profile
from bench.dataplane import (
    ROUTE,
    WRK,
    Processes,
    Service,
    cpu_seconds,
    nginx_temp_paths,
    nginx_user,
    parse_wrk,
    start_dataplane,
    synthesize_prod,
    write_wrk_script,
)
from bench.synth import process_tree
from tests.gateway_fixtures import CLIENT_JWT
from tests.gateway_harness import (
    DEBIAN_PRELUDE,
    SYSTEM_PATH,
    TaskDefinition,
    free_port,
    gateway_command,
    system_tools_missing,
    wait_for_gateway,
    wait_until_answering,
)

TASK_CORE, LOAD_CORE = 0, 1
STREAM_TIMEOUT_SECONDS = 30.0  # no byte for this long: the stream counts as timed out
PATHS = ("mock alone", "direct", "data plane")
SHAPES = {
    "openai": ("/v1/chat/completions", "openai", "api.openai.com"),
    "anthropic": ("/v1/messages", "anthropic", "api.anthropic.com"),
}


# ------------------------------------------------------------------ the mock
def _mock_lua(chunks: int, pacing_ms: int) -> str:
    """Two content handlers: OpenAI's chat.completion.chunk stream and Anthropic's messages stream."""
    return f"""
        local chunks, pause = {chunks}, {pacing_ms} / 1000
        local function openai()
            ngx.header["Content-Type"] = "text/event-stream"
            local head = '{{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1767225600,'
                .. '"model":"gpt-4o-mini-2024-07-18","choices":[{{"index":0,"delta":{{"content":"'
            for i = 1, chunks do
                ngx.print("data: ", head, "word", i, ' "}},"finish_reason":null}}]}}\\n\\n')
                ngx.flush(true)
                ngx.sleep(pause)
            end
            ngx.print('data: {{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1767225600,'
                .. '"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{{"prompt_tokens":9,'
                .. '"completion_tokens":' .. chunks .. ',"total_tokens":' .. (9 + chunks) .. '}}}}\\n\\n',
                "data: [DONE]\\n\\n")
        end
        local function anthropic()
            ngx.header["Content-Type"] = "text/event-stream"
            ngx.print('event: message_start\\ndata: {{"type":"message_start","message":{{"id":"msg_bench",'
                .. '"type":"message","role":"assistant","model":"claude-3-5-haiku-20241022","content":[],'
                .. '"stop_reason":null,"usage":{{"input_tokens":9,"output_tokens":1}}}}}}\\n\\n',
                'event: content_block_start\\ndata: {{"type":"content_block_start","index":0,'
                .. '"content_block":{{"type":"text","text":""}}}}\\n\\n')
            for i = 1, chunks do
                ngx.print('event: content_block_delta\\ndata: {{"type":"content_block_delta","index":0,'
                    .. '"delta":{{"type":"text_delta","text":"word', i, ' "}}}}\\n\\n')
                ngx.flush(true)
                ngx.sleep(pause)
            end
            ngx.print('event: content_block_stop\\ndata: {{"type":"content_block_stop","index":0}}\\n\\n',
                'event: message_delta\\ndata: {{"type":"message_delta","delta":{{"stop_reason":"end_turn"}},'
                .. '"usage":{{"output_tokens":' .. chunks .. '}}}}\\n\\n',
                'event: message_stop\\ndata: {{"type":"message_stop"}}\\n\\n')
        end
        ngx.req.read_body()
        if not (ngx.req.get_body_data() or ""):find('"stream":%s*true') then
            -- A non-streamed completion (the --processes comparison's wrk run).
            ngx.header["Content-Type"] = "application/json"
            ngx.print('{{"id":"chatcmpl-bench","object":"chat.completion","created":1767225600,'
                .. '"model":"gpt-4o-mini-2024-07-18","choices":[{{"index":0,"message":{{"role":"assistant",'
                .. '"content":"Hello from the benchmark mock."}},"finish_reason":"stop"}}],'
                .. '"usage":{{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16}}}}')
            return
        end
        if ngx.var.uri == "/v1/messages" then anthropic() else openai() end
    """


def start_mock(
    processes: Processes, home: Path, chunks: int, pacing_ms: int, cores: str = str(LOAD_CORE)
) -> tuple[Service, Service]:
    """The streaming mock and a sink (the data plane's collector), one nginx worker on ``cores``."""
    home.mkdir(parents=True)
    mock_port, sink_port = free_port(), free_port()
    conf = f"""{chr(10).join(DEBIAN_PRELUDE)}
{nginx_user()}
worker_processes 1;
worker_rlimit_nofile 65536;
error_log {home}/error.log warn;
pid {home}/nginx.pid;
events {{
    worker_connections 16384;
}}
http {{
    access_log off;
{nginx_temp_paths(home)}
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{mock_port} backlog=8192;
        location / {{
            content_by_lua_block {{ {_mock_lua(chunks, pacing_ms)} }}
        }}
    }}
    server {{
        listen 127.0.0.1:{sink_port};
        location / {{ return 200 '{{}}'; }}
    }}
}}
"""
    (home / "nginx.conf").write_text(conf)
    log = home / "stderr.log"
    process = processes.popen(
        ["taskset", "-c", cores, "nginx", "-p", f"{home}/", "-c", str(home / "nginx.conf"), "-g",
         "daemon off;"],
        env={"PATH": SYSTEM_PATH}, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )  # fmt: skip
    wait_until_answering(f"http://127.0.0.1:{sink_port}/", process, "the sink (nginx)", log)
    return Service("mock", process, mock_port, log), Service("sink", process, sink_port, log)


PROFILER = Path(__file__).resolve().parent / "gateway_profile.cjs"


def start_gateway(
    processes: Processes, home: Path, task: TaskDefinition, mock: Service, sink: Service, cores: str = str(TASK_CORE),
    profile_dir: Path | None = None,
) -> Service:  # fmt: skip
    """The gateway as the harness runs it (the task definition's command: one process, or a cluster
    primary and its workers), on ``cores``; both providers mapped to the mock."""
    home.mkdir(parents=True)
    port = free_port()
    command, variables = gateway_command(task, port)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        **task.environment(GATEWAY_CONTAINER),
        **variables,
        "AIGW_INTERCEPT_MAP": json.dumps({host: f"http://127.0.0.1:{mock.port}" for _, _, host in SHAPES.values()}),
        "AIGW_INTERCEPT_SINK": f"http://127.0.0.1:{sink.port}",
    }
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        # Beside the task's own Node options, not instead of them.
        node_options = f"--require {PROFILER} {env.get('NODE_OPTIONS', '')}".strip()
        env |= {"NODE_OPTIONS": node_options, "AIGW_PROFILE_DIR": str(profile_dir)}
    log = home / "gateway.log"
    process = processes.popen(
        ["taskset", "-c", cores, *command], cwd=home, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    wait_until_answering(f"http://127.0.0.1:{port}/", process, "the gateway", log)
    wait_for_gateway(log, process)
    return Service("gateway", process, port, log)


def pin(pid: int, cores: int | set[int]) -> None:
    """Every thread of every process under ``pid`` onto ``cores``."""
    allowed = {cores} if isinstance(cores, int) else cores
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for thread in os.listdir(f"/proc/{member}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(thread), allowed)


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mib(pid: int) -> float:
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{member}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


# --------------------------------------------------------- the load generator
@dataclass
class Record:
    """One stream: when it started, its first event, its events' arrival times, how it ended."""

    started: float
    first: float | None = None
    arrivals: list[float] = field(default_factory=list)
    ended: float | None = None
    outcome: str = ""  # "ok" or the failure


class Client(asyncio.Protocol):
    """One user's connection: streams one after the other on it."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.user.received(data, time.monotonic())

    def connection_lost(self, exc: Exception | None) -> None:
        self.user.lost(exc)


class User:
    def __init__(self, load: Load) -> None:
        self.load = load
        self.client: Client | None = None
        self.record: Record | None = None
        self.head = b""
        self.status = 0
        self.tail = b""
        self.waiter: asyncio.Future[str] | None = None
        # A refusal's body still to read (Content-Length), or -1 while chunked.
        self.refusal_left = 0
        self.keep = True  # whether the connection may carry the next request

    def finish(self, outcome: str) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(outcome)

    def received(self, data: bytes, now: float) -> None:
        record = self.record
        if record is None:
            return
        if not self.status:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            self.status = int(self.head[9:12] or b"0")
            headers = self.head[:end].lower()
            data = self.head[end + 4 :]
            if self.status != 200:
                # Read the refusal to its end and keep the connection, as a pooling client (the ALB) does.
                self.keep = b"connection: close" not in headers
                length = next((int(line.split(b":")[1]) for line in headers.split(b"\r\n")
                               if line.startswith(b"content-length:")), None)  # fmt: skip
                self.refusal_left = length if length is not None else -1
        if self.status != 200:
            self.tail = (self.tail + data)[-64:]
            if self.refusal_left >= 0:
                self.refusal_left -= len(data)
            if self.refusal_left == 0 or (self.refusal_left < 0 and b"0\r\n\r\n" in self.tail):
                self.finish(f"HTTP {self.status}")
            return
        events = (self.tail[-5:] + data).count(b"data:")
        if events:
            if record.first is None:
                record.first = now
            record.arrivals.append(now)
        self.tail = (self.tail + data)[-64:]
        if self.load.end_marker in self.tail and b"0\r\n\r\n" in self.tail:
            self.finish("ok")

    def lost(self, exc: Exception | None) -> None:
        self.client = None
        self.finish("reset" if exc else "closed")

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, client = await asyncio.wait_for(
            loop.create_connection(lambda: Client(self), "127.0.0.1", self.load.port), STREAM_TIMEOUT_SECONDS
        )
        self.client = client

    async def run(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        while time.monotonic() < until:
            record = Record(started=time.monotonic())
            self.record, self.head, self.status, self.tail, self.keep = record, b"", 0, b"", True
            self.waiter = loop.create_future()
            try:
                if self.client is None:
                    await self.connect()
                assert self.client is not None and self.client.transport is not None
                self.client.transport.write(self.load.request)
                outcome = await asyncio.wait_for(asyncio.shield(self.waiter), STREAM_TIMEOUT_SECONDS * 4)
            except ConnectionRefusedError:
                outcome = "connection refused"
            except TimeoutError:
                outcome = "timeout"
            except OSError as error:
                outcome = f"connect error ({error.errno})"
            record.ended, record.outcome = time.monotonic(), outcome
            self.load.records.append(record)
            if outcome != "ok":
                refused = outcome.startswith("HTTP ") and self.keep
                if not refused and self.client is not None and self.client.transport is not None:
                    self.client.transport.close()
                if not refused:
                    self.client = None
                # A client honouring Retry-After (the data plane's 503), or backing off after an error.
                await asyncio.sleep(1.0)


class Load:
    def __init__(self, port: int, request: bytes, end_marker: bytes) -> None:
        self.port, self.request, self.end_marker = port, request, end_marker
        self.records: list[Record] = []


def request_bytes(path: str, shape: str) -> bytes:
    route, provider, _ = SHAPES[shape]
    body: dict[str, object] = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    if shape == "anthropic":
        body = {"model": "claude-3-5-haiku-20241022", "max_tokens": 256, "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    payload = json.dumps(body).encode()
    headers = [f"POST {route} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
               f"Content-Length: {len(payload)}"]  # fmt: skip
    if path == "direct":
        headers += [f"x-portkey-provider: {provider}", "Authorization: Bearer sk-bench-direct"]
    elif path == "data plane":
        headers += [f"x-portkey-provider: {provider}", f"Authorization: Bearer {CLIENT_JWT}"]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


@dataclass
class Step:
    path: str
    users: int
    completed: int
    failures: Counter[str]
    streaming: float
    ttfb_ms: tuple[float, float]
    gap_ms: tuple[float, float, float]
    cpu: dict[str, float]
    rss: dict[str, float]
    generator: float  # cores the load generator itself used
    hold: float  # seconds measured


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run_step(load: Load, users: int, ramp: float, hold: float, pacing: float, watched: dict[str, int]) -> Step:
    start = time.monotonic()
    hold_start, hold_end = start + ramp, start + ramp + hold
    pool = [User(load) for _ in range(users)]
    tasks = []
    for index, user in enumerate(pool):
        await asyncio.sleep(max(0.0, start + ramp * index / users - time.monotonic()))
        tasks.append(asyncio.create_task(user.run(hold_end)))
    await asyncio.sleep(max(0.0, hold_start - time.monotonic()))
    cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    load_before = own_cpu_seconds()
    streaming: list[int] = []
    while time.monotonic() < hold_end:
        streaming.append(sum(1 for u in pool if u.record and u.record.first and not u.record.ended))
        await asyncio.sleep(0.5)
    cpu = {name: (cpu_seconds(pid) - cpu_before[name]) / hold for name, pid in watched.items()}
    generator = (own_cpu_seconds() - load_before) / hold
    rss = {name: rss_mib(pid) for name, pid in watched.items()}
    await asyncio.wait(tasks, timeout=STREAM_TIMEOUT_SECONDS * 4 + 5)
    for user in pool:
        user.finish("stopped")
        if user.client is not None and user.client.transport is not None:
            user.client.transport.close()
    in_hold = [r for r in load.records if r.ended is not None and hold_start <= r.ended < hold_end]
    load.records.clear()
    started_in_hold = [r for r in in_hold if r.started >= hold_start and r.first is not None]
    gaps = [
        (later - earlier - pacing) * 1000
        for r in in_hold
        for earlier, later in zip(r.arrivals, r.arrivals[1:], strict=False)
        if later >= hold_start
    ]
    gaps = gaps or [float("nan")]
    ttfb = [((r.first or 0) - r.started) * 1000 for r in started_in_hold]
    return Step(
        path="",
        users=users,
        completed=sum(1 for r in in_hold if r.outcome == "ok"),
        failures=Counter(r.outcome for r in in_hold if r.outcome != "ok"),
        streaming=statistics.mean(streaming) if streaming else 0.0,
        ttfb_ms=(percentile(ttfb, 0.5), percentile(ttfb, 0.99)),
        gap_ms=(percentile(gaps, 0.5), percentile(gaps, 0.99), max(gaps)),
        cpu=cpu,
        rss=rss,
        generator=generator,
        hold=hold,
    )


def print_step(step: Step) -> None:
    failed = ", ".join(f"{count} {cause}" for cause, count in sorted(step.failures.items())) or "0"
    cpu = " + ".join(f"{name} {value:.2f}" for name, value in step.cpu.items()) or "-"
    rss = ", ".join(f"{name} {value:.0f}" for name, value in step.rss.items()) or "-"
    per_stream = ""
    if step.completed and step.cpu:
        per_stream = "; CPU ms per stream: " + ", ".join(
            f"{name} {value * step.hold * 1000 / step.completed:.2f}" for name, value in step.cpu.items()
        )
    print(
        f"  {step.users:>5} {step.path:<11} completed {step.completed:>6}  failed {failed}  streaming "
        f"{step.streaming:7.0f}  TTFB p50/p99 {step.ttfb_ms[0]:7.0f} / {step.ttfb_ms[1]:7.0f} ms  +gap "
        f"p50/p99/max {step.gap_ms[0]:6.1f} / {step.gap_ms[1]:6.1f} / {step.gap_ms[2]:6.1f} ms  cores {cpu}  "
        f"RSS MiB {rss}{per_stream}; load generator {step.generator:.2f} cores",
        flush=True,
    )


# ------------------------------------------- one gateway process per vCPU
@dataclass(frozen=True)
class TaskSize:
    """One task to measure with --compare-processes: its name, its task definition, the cores its processes
    (gateway and data plane) run on, and those of the mock and the load generator."""

    name: str
    task: TaskDefinition
    task_cores: set[int]
    load_cores: set[int]


def synthesize_sizes(outdir: Path, cpus: Sequence[int]) -> dict[int, TaskDefinition]:
    """environments/prod.toml's task at each of ``cpus`` CPU units (memory: 2 MiB per unit, Fargate's least)."""
    import aigw.fast_import

    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    aigw.fast_import.install()
    from aigw.environments import Environment, load_environments
    from modules.stack import synthesize

    (prod,) = [e for e in load_environments() if e.name == "prod"]
    sized = {}
    for cpu in cpus:
        gateway = prod.settings.gateway.model_copy(update={"cpu": cpu, "memory": 2 * cpu})
        sized[cpu] = Environment(f"prod-cpu{cpu}", prod.path, prod.settings.model_copy(update={"gateway": gateway}))
    synthesize(list(sized.values()), outdir)
    stacks = outdir / "stacks"
    return {cpu: TaskDefinition.from_stack(stacks / e.stack_name / "cdk.tf.json") for cpu, e in sized.items()}


def one_process(task: TaskDefinition) -> TaskDefinition:
    """``task`` with the gateway's image command (one process) instead of its cluster primary."""
    containers = copy.deepcopy(task.containers)
    containers[GATEWAY_CONTAINER].pop("command", None)
    containers[GATEWAY_CONTAINER].pop("entryPoint", None)
    return TaskDefinition(containers, task.environment_files)


def run_wrk(port: int, script: Path, seconds: float, watched: dict[str, int]) -> str:
    """Non-streamed completions through the data plane at saturation (wrk -t2 -c128): requests/s,
    latency and the task's CPU per request."""
    before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    command = [str(WRK), "-t2", "-c128", f"-d{seconds:g}s", "--latency", "--timeout=10s", "-s", str(script),
               f"http://127.0.0.1:{port}{ROUTE}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in watched.items()}
    if result.returncode != 0 or result.stderr.strip():
        return f"wrk failed ({result.returncode}): {result.stderr.strip()}"
    requests, elapsed, rps, p50, p99, non_2xx, socket_errors = parse_wrk(result.stdout)
    per_request = ", ".join(f"{name} {value * 1e6 / max(1, requests):.0f}" for name, value in cpu.items())
    cores = " + ".join(f"{name} {value / elapsed:.2f}" for name, value in cpu.items())
    return (
        f"{rps:8.0f} requests/s  p50/p99 {p50:.1f} / {p99:.1f} ms  non-2xx {non_2xx}  socket errors "
        f"{socket_errors}  cores {cores}  CPU us per request: {per_request}"
    )


def measure_size(
    args: argparse.Namespace,
    steps: Sequence[int],
    size: TaskSize,
    processes: Processes,
    home: Path,
    script: Path,
    end_marker: bytes,
) -> None:
    os.sched_setaffinity(0, size.load_cores)
    load_cores = ",".join(map(str, sorted(size.load_cores)))
    task_cores = ",".join(map(str, sorted(size.task_cores)))
    mock, sink = start_mock(processes, home / "mock", args.chunks, args.pacing_ms, load_cores)
    gateway = start_gateway(processes, home / "gateway", size.task, mock, sink, task_cores)
    data_plane = start_dataplane(processes, home / "data-plane", size.task, gateway, sink)
    pin(gateway.process.pid, size.task_cores)
    pin(data_plane.process.pid, size.task_cores)
    workers = len(process_tree(gateway.process.pid)) - 1 or 1
    print(
        f"\n{size.name}: task on cores {task_cores}, load on {load_cores}; {workers} gateway process(es); "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    watched = {"gateway": gateway.process.pid, "nginx": data_plane.process.pid}
    held = 0.0
    for users in steps:
        load = Load(data_plane.port, request_bytes("data plane", args.shape), end_marker)
        step = asyncio.run(run_step(load, users, args.ramp, args.hold, args.pacing_ms / 1000, watched))
        step.path = "data plane"
        print_step(step)
        if not [cause for cause in step.failures if cause != "HTTP 503"]:
            held = max(held, step.streaming)
        time.sleep(2.0)
    print(f"  held: {held:.0f} streams (the most streaming at a step where every failure was a 503)")
    print(f"  wrk: {run_wrk(data_plane.port, script, args.wrk_seconds, watched)}", flush=True)


def compare_processes(args: argparse.Namespace, steps: Sequence[int]) -> int:
    """Streams held per task through the data plane, and its non-streamed throughput, with the task on
    one core (prod's 1 vCPU, the load on the other core) and on both cores (a 2-vCPU task, its data plane
    bounded as one: 2,000 in flight) with one gateway process, then with one per vCPU as deployed."""
    cores = os.cpu_count() or 1
    if cores < 2:
        print("--compare-processes needs two cores", file=sys.stderr)
        return 2
    both = set(range(cores))
    with tempfile.TemporaryDirectory(prefix="aigw-concurrency-") as workdir:
        work = Path(workdir)
        tasks = synthesize_sizes(work / "synth", (1024, 2048))
        sizes = [
            TaskSize("1 vCPU, 1 process", tasks[1024], {TASK_CORE}, {LOAD_CORE}),
            TaskSize("2 vCPUs, 1 process", one_process(tasks[2048]), both, both),
            TaskSize("2 vCPUs, 2 processes", tasks[2048], both, both),
        ]
        script = work / "wrk.lua"
        write_wrk_script(script)
        print(
            f"Gateway processes per task: {args.chunks} {args.shape} chunks {args.pacing_ms} ms apart per "
            f"stream, through the data plane (prod's, its bound on requests in flight as the task's size sets "
            f"it); users ramp in over {args.ramp:g} s, hold {args.hold:g} s; then wrk -t2 -c128 for "
            f"{args.wrk_seconds:g} s of non-streamed completions. Machine: {cores} cores: at 1 vCPU the task "
            f"runs on core {TASK_CORE} and the mock, the load generator and wrk on core {LOAD_CORE}; at 2 vCPUs "
            "all of them share both cores (there is no third). 4 vCPUs cannot be simulated here.",
            flush=True,
        )
        end_marker = b"[DONE]" if args.shape == "openai" else b"message_stop"
        for index, size in enumerate(sizes):
            processes = Processes()
            try:
                measure_size(args, steps, size, processes, work / f"size-{index}", script, end_marker)
            finally:
                processes.stop_all()
            time.sleep(2.0)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--steps", default="250,500,1000,2000,4000")
    parser.add_argument("--ramp", type=float, default=5.0)
    parser.add_argument("--hold", type=float, default=10.0)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--pacing-ms", type=int, default=250)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="openai")
    parser.add_argument("--quick", action="store_true", help="two small steps, short: proves the benchmark runs")
    parser.add_argument(
        "--compare-processes",
        action="store_true",
        help="streams held and non-streamed throughput per task: 1 vCPU, 2 vCPUs with one gateway process, "
        "2 vCPUs with one per vCPU (through the data plane only; default steps 1000,2000,3000)",
    )
    parser.add_argument("--wrk-seconds", type=float, default=10.0)
    parser.add_argument(
        "--profile-gateway",
        type=Path,
        metavar="DIR",
        help="sample the gateway's CPU (bench/gateway_profile.cjs) into DIR and print where its time went",
    )
    args = parser.parse_args(argv)
    if args.compare_processes and args.steps == parser.get_default("steps"):
        args.steps = "1000,2000,3000"
    if args.quick:
        args.steps, args.ramp, args.hold, args.chunks, args.pacing_ms = "10,20", 0.5, 2.0, 4, 100
        args.wrk_seconds = 1.0
    missing = system_tools_missing()
    if missing:
        print(f"missing: {', '.join(missing)} (make system-deps)", file=sys.stderr)
        return 2
    steps = [int(value) for value in args.steps.split(",")]
    if args.compare_processes:
        return compare_processes(args, steps)
    os.sched_setaffinity(0, {LOAD_CORE})
    processes = Processes()
    try:
        with tempfile.TemporaryDirectory(prefix="aigw-concurrency-") as workdir:
            work = Path(workdir)
            prod, _, _ = synthesize_prod(work / "synth")
            mock, sink = start_mock(processes, work / "mock", args.chunks, args.pacing_ms)
            gateway = start_gateway(processes, work / "gateway", prod, mock, sink, profile_dir=args.profile_gateway)
            data_plane = start_dataplane(processes, work / "data-plane", prod, gateway, sink)
            pin(gateway.process.pid, TASK_CORE)
            pin(data_plane.process.pid, TASK_CORE)
            print(
                f"Concurrency: {args.chunks} {args.shape} chunks {args.pacing_ms} ms apart per stream; users ramp "
                f"in over {args.ramp:g} s, hold {args.hold:g} s. Gateway and data plane on core {TASK_CORE}, "
                f"mock and load generator on core {LOAD_CORE}. Machine: {os.cpu_count()} cores, load average "
                f"{os.getloadavg()[0]:.2f} at the start.",
                flush=True,
            )
            targets = {
                "mock alone": (mock.port, {}),
                "direct": (gateway.port, {"gateway": gateway.process.pid}),
                "data plane": (data_plane.port, {"gateway": gateway.process.pid, "nginx": data_plane.process.pid}),
            }
            end_marker = b"[DONE]" if args.shape == "openai" else b"message_stop"
            for users in steps:
                for path in PATHS:
                    port, watched = targets[path]
                    load = Load(port, request_bytes(path, args.shape), end_marker)
                    step = asyncio.run(run_step(load, users, args.ramp, args.hold, args.pacing_ms / 1000, watched))
                    step.path = path
                    print_step(step)
                    time.sleep(2.0)  # connections of the last step close
    finally:
        processes.stop_all()
    if args.profile_gateway is not None:
        print(cpu_profile.report(sorted(args.profile_gateway.glob("gateway-*.cpuprofile"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
