"""Upgrading a deployed environment must replace nothing in use: the local
environment of the previous release (UPGRADE_FROM, taken from git) is
deployed on the emulator with the real `cdktf deploy`, then the current code
is planned against that state. Only what a deployment replaces anyway (the
task definition, the data plane's bundle object) may be replaced; a change
to an immutable field (a security group's description, a load balancer's
name) shows up here as a replacement of something running tasks use.

UPGRADE_FROM is the main commit the current work started from; move it to
the last landed commit when a change lands."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigw.environments import load_environments
from tests import processes
from tests.conftest import ProviderMirror
from tests.gateway_harness import free_port
from tests.project_copy import ROOT, copy_project
from tests.test_e2e_emulator import DEPLOY_TIMEOUT_SECONDS, STACK, Deployment, cli_environment, running_emulator
from tools.state_bootstrap import bootstrap

pytestmark = pytest.mark.e2e
UPGRADE_FROM = "f7726d2"
# What a deployment replaces by design: a new task-definition revision, a new bundle object.
REPLACED_BY_DESIGN = ("aws_ecs_task_definition", "aws_s3_object")


def export_commit(commit: str, destination: Path) -> Path:
    """The project files of ``commit`` (git archive), with this checkout's installed .venv."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, timeout=60, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(destination, filter="data")
    (destination / ".venv").symlink_to(ROOT / ".venv")
    return destination


def local_environment(project: Path, endpoint: str) -> Path:
    env_dir = project / "environments"
    for other in env_dir.glob("*.toml"):
        if other.stem != "local":
            other.unlink()
    local_toml = env_dir / "local.toml"
    # The previous release named a fixed port, this one "auto": either way, the test's own emulator.
    text, replaced = re.subn(r'(?m)^endpoint = "[^"]*"', f'endpoint = "{endpoint}"', local_toml.read_text())
    assert replaced == 1
    local_toml.write_text(text)
    return env_dir


@pytest.fixture(scope="module")
def upgrade_plan(
    tmp_path_factory: pytest.TempPathFactory, provider_mirror: ProviderMirror
) -> Iterator[dict[str, list[str]]]:
    endpoint = f"http://127.0.0.1:{free_port()}"
    old = export_commit(UPGRADE_FROM, tmp_path_factory.mktemp("previous-release"))
    new = copy_project(tmp_path_factory.mktemp("current"))
    old_envs, new_envs = local_environment(old, endpoint), local_environment(new, endpoint)
    (environment,) = load_environments(new_envs)
    backend = environment.settings.backend
    with running_emulator(endpoint, tmp_path_factory.mktemp("emulator")):
        bootstrap(environment)
        previous = Deployment(old, cli_environment(old_envs, provider_mirror.directory), endpoint, backend.bucket,
                              backend.key, backend.dynamodb_table)  # fmt: skip
        deployed = previous.run(ROOT / "node_modules" / ".bin" / "cdktf", "deploy", STACK, "--auto-approve")
        assert deployed.returncode == 0, (deployed.stdout + deployed.stderr)[-6000:]
        current = Deployment(new, cli_environment(new_envs, provider_mirror.directory), endpoint, backend.bucket,
                             backend.key, backend.dynamodb_table)  # fmt: skip
        synth = current.run(".venv/bin/python", "main.py")
        assert synth.returncode == 0, synth.stderr[-3000:]
        for step in (["init", "-input=false", "-no-color"], ["plan", "-input=false", "-no-color", "-out=up.plan"]):
            result = processes.run(["terraform", *step], cwd=current.stack_dir, env=current.env,
                                   timeout=DEPLOY_TIMEOUT_SECONDS)  # fmt: skip
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        shown = processes.run(["terraform", "show", "-json", "up.plan"], cwd=current.stack_dir, env=current.env,
                              timeout=DEPLOY_TIMEOUT_SECONDS)  # fmt: skip
        assert shown.returncode == 0, shown.stderr[-2000:]
        yield {c["address"]: c["change"]["actions"] for c in json.loads(shown.stdout)["resource_changes"]}


def test_the_upgrade_replaces_nothing_in_use(upgrade_plan: dict[str, list[str]]) -> None:
    replaced = {address for address, actions in upgrade_plan.items() if "delete" in actions}
    assert {address for address in replaced if not address.startswith(REPLACED_BY_DESIGN)} == set()


def test_the_upgrade_updates_the_service_in_place(upgrade_plan: dict[str, list[str]]) -> None:
    (service,) = [actions for address, actions in upgrade_plan.items() if address.startswith("aws_ecs_service.")]
    assert service in (["update"], ["no-op"])
