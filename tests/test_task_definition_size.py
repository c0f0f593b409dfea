"""The data plane's code and configuration travel in its bundle (an S3
environment file), not in the task definition: the container definitions
of every shipped environment and example stay small, and the task definition
pins the bundle by its sha256. ECS refuses a task definition over 64 KiB."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from aigw.data_plane.bundle import MAX_ENCODED_BYTES, pack, read_environment_file, unpack
from aigw.data_plane.contract import BUNDLE_VARIABLE, DATA_PLANE_CONTAINER, HARNESS_VARIABLES, SHA256_VARIABLE
from aigw.data_plane.render import bundle_files, start_command
from modules.data_plane import data_plane_config
from security.stackdoc import Res, StackDoc
from tests import processes
from tests.conftest import all_environments
from tests.gateway_harness import busybox_tools

CONTAINER_DEFINITIONS_BUDGET = 16 * 1024
ENVIRONMENTS = [env.name for env in all_environments()]
# Hybrid mode runs Portkey's enterprise gateway without the data plane, so without a bundle.
DATA_PLANE_ENVIRONMENTS = [env.name for env in all_environments() if not env.settings.hybrid.enabled]


def container_definitions(stack: StackDoc, family: str = "gateway") -> list[dict[str, object]]:
    task = stack.resource("aws_ecs_task_definition", {"family": f"aigw-{stack.environment}-{family}"})
    return parsed(task)


def parsed(task: Res) -> list[dict[str, object]]:
    return list(json.loads(task.body["container_definitions"].replace("$${", "${")))


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_container_definitions_stay_under_16_kib(stacks: dict[str, StackDoc], environment: str) -> None:
    for task in stacks[environment].resources("aws_ecs_task_definition"):
        size = len(json.dumps(parsed(task)).encode())
        assert size < CONTAINER_DEFINITIONS_BUDGET, f"{environment}: {size} bytes of container definitions"


@pytest.mark.parametrize("environment", DATA_PLANE_ENVIRONMENTS)
def test_the_task_runs_the_bundle_the_environment_renders(
    stacks: dict[str, StackDoc], synth_outdir: Path, environment: str
) -> None:
    # GIVEN the synthesized stack WHEN its bundle object's file is read as ECS reads it
    stack = stacks[environment]
    (data_plane,) = [c for c in container_definitions(stack) if c["name"] == DATA_PLANE_CONTAINER]
    pinned = {e["name"]: e["value"] for e in data_plane["environment"]}[SHA256_VARIABLE]  # type: ignore[index]
    bundle_object = stack.resource("aws_s3_object")
    source = synth_outdir / "stacks" / f"ai-gateway-{environment}" / bundle_object["source"]
    archive = base64.b64decode(read_environment_file(source.read_text())[BUNDLE_VARIABLE])
    # THEN the task definition pins its hash, the object is named by it, and it is what the settings render
    assert hashlib.sha256(archive).hexdigest() == pinned
    assert bundle_object["key"] == f"data-plane/{pinned}.env" and bundle_object["source_hash"] == pinned
    (env,) = [e for e in all_environments() if e.name == environment]
    assert pack(bundle_files(data_plane_config(env.settings, env.name))).sha256 == pinned
    assert "lua/aigw/handler.lua" in unpack(archive)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_no_task_definition_sets_what_only_the_harness_may(stacks: dict[str, StackDoc], environment: str) -> None:
    tasks = stacks[environment].resources("aws_ecs_task_definition")
    for container in [c for task in tasks for c in parsed(task)]:
        names = {e["name"] for e in container.get("environment", [])}  # type: ignore[union-attr]
        assert not names & set(HARNESS_VARIABLES), container["name"]


def test_a_bundle_too_large_for_one_variable_is_refused_at_synth() -> None:
    files = {"padding": random.Random(0).randbytes(MAX_ENCODED_BYTES)}  # random bytes do not compress
    with pytest.raises(ValueError, match="one environment variable carries it"):
        pack(files)


def test_the_same_files_pack_to_the_same_bytes() -> None:
    files = {"b.lua": b"return 2\n", "a/c.lua": b"return 1\n"}
    assert pack(files).archive == pack(dict(reversed(list(files.items())))).archive
    assert unpack(pack(files).archive) == files


def test_one_variable_of_the_largest_bundle_fits_what_linux_passes() -> None:
    # MAX_ARG_STRLEN: one environment string (name=value) is at most 32 pages.
    assert len(BUNDLE_VARIABLE) + 1 + MAX_ENCODED_BYTES < 32 * 4096


def test_a_bundle_carries_no_time_and_fixed_owners_and_modes() -> None:
    files = {"entrypoint.sh": b"exit 0\n", "lua/aigw/handler.lua": b"return {}\n", "server.conf": b"\n"}
    archive = pack(files).archive
    assert archive[4:8] == bytes(4), "the gzip header carries a time"
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        modes = {member.name: (member.mode, member.uid, member.gid, member.mtime) for member in tar.getmembers()}
    assert modes == {
        "lua": (0o755, 0, 0, 0), "lua/aigw": (0o755, 0, 0, 0), "entrypoint.sh": (0o755, 0, 0, 0),
        "lua/aigw/handler.lua": (0o644, 0, 0, 0), "server.conf": (0o644, 0, 0, 0),
    }  # fmt: skip


def test_a_bundle_packs_to_the_same_bytes_in_every_process() -> None:
    # Set iteration follows the string hash seed: an unsorted set would give each synth a new bundle, a new
    # task definition revision and a rollout for nothing.
    program = (
        "from aigw.data_plane.bundle import pack\n"
        "files = {f'd{i}/e{i % 3}/f{i}.lua': b'x' for i in range(12)}\n"
        "print(pack(files).sha256)\n"
    )
    hashes = set()
    for seed in ("1", "2", "3", "4", "5", "6"):
        result = processes.run([sys.executable, "-c", program], env={**os.environ, "PYTHONHASHSEED": seed},
                               timeout=60, check=True)  # fmt: skip
        hashes.add(result.stdout.strip())
    assert len(hashes) == 1, hashes


@pytest.mark.parametrize("pin", ["another", "unset", "empty"])
def test_the_start_command_runs_no_bundle_the_task_definition_does_not_pin(tmp_path: Path, pin: str) -> None:
    # As the container runs it: BusyBox's sh and tools (the OpenResty image is Alpine).
    tools = busybox_tools(tmp_path / "busybox")
    unpinned = pack({"entrypoint.sh": b"echo RAN-UNPINNED; exit 7\n"})
    env = {"PATH": str(tools), "AIGW_HOME": str(tmp_path / uuid.uuid4().hex), BUNDLE_VARIABLE: unpinned.encoded}
    if pin == "another":
        env[SHA256_VARIABLE] = pack({"entrypoint.sh": b"exit 0\n"}).sha256
    elif pin == "empty":
        env[SHA256_VARIABLE] = ""
    result = processes.run([tools / "sh", "-c", start_command()], env=env, timeout=30)
    assert result.returncode not in (0, 7) and "RAN-UNPINNED" not in result.stdout, result
    assert SHA256_VARIABLE in result.stderr or "refusing to start" in result.stderr, result.stderr


def test_the_start_command_runs_the_bundle_it_pins(tmp_path: Path) -> None:
    tools = busybox_tools(tmp_path / "busybox")
    bundle = pack({"entrypoint.sh": b"echo RAN-PINNED\n"})
    env = {"PATH": str(tools), "AIGW_HOME": str(tmp_path / "home"), BUNDLE_VARIABLE: bundle.encoded,
           SHA256_VARIABLE: bundle.sha256}  # fmt: skip
    result = processes.run([tools / "sh", "-c", start_command()], env=env, timeout=30)
    assert (result.returncode, result.stdout) == (0, "RAN-PINNED\n"), result
