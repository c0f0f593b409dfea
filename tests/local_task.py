"""The deployed task, running on loopback after `make deploy`.

    python -m tests.local_task start local    # make deploy runs this last
    python -m tests.local_task status
    python -m tests.local_task stop           # make destroy runs this first

The emulator creates AWS objects and runs no containers, so a gateway URL
from the emulator answers nothing. This runs the task the emulator's ECS
holds for the stack's service, read back from its API (not from the
synthesized JSON): the service named in the deploy's outputs file
(`.tools/local-outputs.json`), its current task definition, the environment
file that definition names, fetched from the emulator's S3, and the values
of its secrets, from the emulator's Secrets Manager. Then, as the harness
runs a task (tests/gateway_harness.py):

- the data plane, with its own start command, configuration and code;
- the gateway, with its own environment, at the image's version; provider
  hosts answer from loopback mocks (tests/mock_providers.py), so a call
  returns a completion without a provider account;
- a stand-in for the collector, which appends one line per export it
  receives to `collector.log`.

Everything listens on 127.0.0.1 only. The processes run in a session of
their own, recorded in `<state dir>/pid`; `stop` ends that whole session.
Logs and the access log stay in the state directory until the next start.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aigw.data_plane.contract import DATA_PLANE_CONTAINER
from tests.aws_mocks import OtlpRecorder
from tests.gateway_harness import TaskDefinition, running_gateway
from tests.mock_providers import Reply

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".tools" / "local-task"
OUTPUTS_FILE = ROOT / ".tools" / "local-outputs.json"
READY_SECONDS = 90
STOP_SECONDS = 15
# A call a user can paste: the local environment has JWT auth off and no org keys,
# so a client brings its own provider key (any string: the provider is a mock).
CALL_BODY = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}'


class LocalTaskError(RuntimeError):
    pass


def _client(service: str, endpoint: str, region: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name=region)


def _s3_location(arn: str) -> tuple[str, str]:
    """``arn:aws:s3:::bucket/key`` -> (bucket, key)."""
    prefix = "arn:aws:s3:::"
    if not arn.startswith(prefix) or "/" not in arn[len(prefix) :]:
        raise LocalTaskError(f"environment file {arn!r} is not an S3 object ARN")
    bucket, key = arn[len(prefix) :].split("/", 1)
    return bucket, key


def deployed_task(endpoint: str, region: str, cluster: str, service: str) -> tuple[str, TaskDefinition]:
    """The service's current task definition, as the emulator's ECS holds it,
    with the environment files it names, read from the emulator's S3."""
    ecs = _client("ecs", endpoint, region)
    services = ecs.describe_services(cluster=cluster, services=[service])["services"]
    if not services:
        raise LocalTaskError(f"the emulator has no service {service} in cluster {cluster}: run `make deploy`")
    arn = services[0]["taskDefinition"]
    definition = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    containers = {c["name"]: c for c in definition["containerDefinitions"]}
    s3 = _client("s3", endpoint, region)
    files: dict[str, str] = {}
    for container in containers.values():
        for reference in container.get("environmentFiles", []):
            bucket, key = _s3_location(reference["value"])
            files[key] = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("ascii")
    return arn, TaskDefinition(containers, files)


def secret_value(secretsmanager: Any, value_from: str) -> str:
    """A container secret's value: ``valueFrom`` is a secret's ARN, or
    ``<arn>:<json key>:<version stage>:<version id>`` for one key of a JSON secret."""
    parts = value_from.split(":")
    arn = ":".join(parts[:7])
    json_key, stage, version = [*parts[7:10], "", "", ""][:3]
    request: dict[str, str] = {"SecretId": arn}
    if stage:
        request["VersionStage"] = stage
    if version:
        request["VersionId"] = version
    try:
        value = str(secretsmanager.get_secret_value(**request)["SecretString"])
    except secretsmanager.exceptions.ResourceNotFoundException as error:
        raise LocalTaskError(
            f"secret {arn} has no value in the emulator: put one with "
            f"`aws --endpoint-url <emulator> secretsmanager put-secret-value --secret-id {arn} --secret-string ...`"
        ) from error
    if json_key:
        document = json.loads(value)
        if json_key not in document:
            raise LocalTaskError(f"secret {arn} has no JSON key {json_key!r}")
        value = str(document[json_key])
    return value


def secret_values(task: TaskDefinition, endpoint: str, region: str) -> dict[str, str]:
    """The data plane's secrets, read from the emulator's Secrets Manager.
    The gateway and the collector get none (the gateway never holds a key)."""
    for container in task.containers:
        if container != DATA_PLANE_CONTAINER and task.containers[container].get("secrets"):
            raise LocalTaskError(f"container {container} has secrets; only the data plane's are run locally")
    secretsmanager = _client("secretsmanager", endpoint, region)
    return {
        item["name"]: secret_value(secretsmanager, item["valueFrom"])
        for item in task.containers[DATA_PLANE_CONTAINER].get("secrets", [])
    }


class Collector(OtlpRecorder):
    """The collector's stand-in: records as the tests' receiver does, and
    appends a line per export to a log a user can read."""

    def __init__(self, log: Path) -> None:
        super().__init__()
        self.log = log

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        reply = super().respond(method, path, headers, body)
        with self.log.open("a") as out:
            out.write(f"{time.strftime('%H:%M:%S')} {method} {path} {headers.get('content-type', '')} "
                      f"{len(body)} bytes -> {reply.status}\n")  # fmt: skip
        return reply


def _environment_settings(name: str) -> tuple[str, str]:
    from aigw.environments import ConfigError, environment_named

    try:
        environment = environment_named(name)
    except ConfigError as error:
        raise LocalTaskError("\n".join(error.lines)) from error
    endpoint = environment.settings.emulator.endpoint
    if not endpoint:
        raise LocalTaskError(f"{environment.path}: emulator.endpoint: not set; only an emulator deploy runs locally")
    return endpoint, environment.settings.region


def _outputs(path: Path, stack: str) -> Mapping[str, Any]:
    if not path.exists():
        raise LocalTaskError(f"{path}: no outputs of a deploy: run `make deploy`")
    outputs: Mapping[str, Any] = json.loads(path.read_text())[stack]
    return outputs


def run(name: str, state_dir: Path, outputs_file: Path) -> int:
    """The runner: start everything, write ``ready.json``, serve until SIGTERM."""
    from tests.mock_providers import intercept_map, start_all, stop_all

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    endpoint, region = _environment_settings(name)
    outputs = _outputs(outputs_file, f"ai-gateway-{name}")
    arn, task = deployed_task(endpoint, region, outputs["ecs_cluster_name"], outputs["ecs_service_name"])
    keys = secret_values(task, endpoint, region)
    mocks = start_all()
    collector = Collector(state_dir / "collector.log").start()
    try:
        upstreams, sink = intercept_map(mocks), mocks["sink"].base_url
        with running_gateway(task, upstreams, sink, workdir=state_dir / "run") as harness:
            data_plane = harness.start_data_plane(keys, "task", otlp_port=collector.port)
            ready = {
                "url": data_plane.base_url,
                "task_definition": arn,
                "gateway": harness.gateway_url,
                "collector": collector.base_url,
                "access_log": str(data_plane.access_log),
                "collector_log": str(collector.log),
                "outbound_log": str(harness.interception.log),
            }
            partial = state_dir / "ready.json.partial"  # start() must never read it half-written
            partial.write_text(json.dumps(ready, indent=2))
            os.replace(partial, state_dir / "ready.json")
            harness.wait()
        print("a process of the task exited; stopping", file=sys.stderr)
        return 1
    finally:
        collector.stop()
        stop_all(mocks)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _runner(pid: int) -> bool:
    """Whether ``pid`` is a runner of this module (not a process that reused a stale pid)."""
    try:
        return b"tests.local_task" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def stop(state_dir: Path) -> bool:
    """End every process of the runner's session, the runner's children too
    when the runner itself is gone; True when one was running. A recorded pid
    that now names another program's session is left alone."""
    pidfile = state_dir / "pid"
    if not pidfile.exists():
        return False
    session = int(pidfile.read_text())
    members = session_members(session)
    if members and (not _alive(session) or _runner(session)):
        _signal_all(members, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while session_members(session) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_all(session_members(session), signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    (state_dir / "ready.json").unlink(missing_ok=True)
    return True


def session_members(session: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == session and fields[0] != "Z":  # fields[3]: the session id
                    members.append(int(entry.name))
    return members


def listening_addresses(pids: list[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket on which one of ``pids`` listens."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                found.append((_address(address, width), int(port, 16)))
    return found


def _address(hex_address: str, width: int) -> str:
    """/proc/net/tcp{,6} write addresses as 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.IPv4Address(words) if width == 8 else ipaddress.IPv6Address(words))


def start(name: str, state_dir: Path, outputs_file: Path) -> dict[str, str]:
    """(Re)start the runner in a session of its own; returns ``ready.json``."""
    stop(state_dir)
    if state_dir.exists():
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True)
    log = state_dir / "runner.log"
    command = [sys.executable, "-m", "tests.local_task", "run", name, "--state-dir", str(state_dir),
               "--outputs", str(outputs_file)]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    (state_dir / "pid").write_text(str(process.pid))
    deadline = time.monotonic() + READY_SECONDS
    ready = state_dir / "ready.json"
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(state_dir)
            tail = log.read_text(errors="replace")[-3000:]
            raise LocalTaskError(f"the local task did not start (log: {log}):\n{tail}")
        time.sleep(0.2)
    result: dict[str, str] = json.loads(ready.read_text())
    return result


def call_command(url: str) -> str:
    return (
        f"curl -s {url}/v1/chat/completions -H 'content-type: application/json' "
        f"-H 'x-portkey-provider: openai' -H 'Authorization: Bearer sk-local-any-key' -d '{CALL_BODY}'"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop", "status", "run"))
    parser.add_argument("environment", nargs="?", default="local")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR)
    parser.add_argument("--outputs", type=Path, default=OUTPUTS_FILE)
    args = parser.parse_args(argv)
    try:
        if args.action == "run":
            return run(args.environment, args.state_dir, args.outputs)
        if args.action == "start":
            ready = start(args.environment, args.state_dir, args.outputs)
            print(f"\nthe deployed task runs on loopback: {ready['url']}")
            print(f"  (task definition {ready['task_definition']}, read back from the emulator)")
            print("  providers answer from loopback mocks; a client brings any key (JWT auth is off here)")
            print(f"  try:\n    {call_command(ready['url'])}")
            print(f"  logs: {args.state_dir}/ (access log, collector, outbound requests); `make destroy` stops it")
        elif args.action == "stop":
            print("local task stopped" if stop(args.state_dir) else "no local task running")
        else:
            pidfile = args.state_dir / "pid"
            session = int(pidfile.read_text()) if pidfile.exists() else 0
            ready_file = args.state_dir / "ready.json"
            if session and session_members(session) and ready_file.exists():
                ready = json.loads(ready_file.read_text())
                listening = ", ".join(f"{a}:{p}" for a, p in sorted(listening_addresses(session_members(session))))
                print(f"local task on {ready['url']} (listening: {listening})")
            else:
                print("no local task running")
                return 1
    except LocalTaskError as error:
        print(f"local task: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
