"""The data plane's code and configuration travel in its bundle (an S3
environment file), not in the task definition: the container definitions
of every shipped environment and example stay small, and the task definition
pins the bundle by its sha256. ECS refuses a task definition over 64 KiB."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from pathlib import Path

import pytest

from aigw.data_plane.bundle import MAX_ENCODED_BYTES, pack, read_environment_file, unpack
from aigw.data_plane.contract import BUNDLE_VARIABLE, DATA_PLANE_CONTAINER, HARNESS_VARIABLES, SHA256_VARIABLE
from aigw.data_plane.render import bundle_files
from modules.data_plane import data_plane_config
from security.stackdoc import StackDoc
from tests.conftest import all_environments

CONTAINER_DEFINITIONS_BUDGET = 16 * 1024
ENVIRONMENTS = [env.name for env in all_environments()]


def container_definitions(stack: StackDoc) -> list[dict[str, object]]:
    task = stack.resource("aws_ecs_task_definition")
    return list(json.loads(task.body["container_definitions"].replace("$${", "${")))


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_container_definitions_stay_under_16_kib(stacks: dict[str, StackDoc], environment: str) -> None:
    size = len(json.dumps(container_definitions(stacks[environment])).encode())
    assert size < CONTAINER_DEFINITIONS_BUDGET, f"{environment}: {size} bytes of container definitions"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
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
    for container in container_definitions(stacks[environment]):
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
