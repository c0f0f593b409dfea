"""main.py and the real cdktf CLI as a user runs them (subprocesses)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import processes
from tests.project_copy import copy_project

ROOT = Path(__file__).resolve().parent.parent
BAD_DEV = """
region = "us-east-1"
[backend]
bucket = "b"
key = ""
dynamodb_table = "tfstate-lock"
region = "us-east-1"
[network]
vpc_cidr = "10.0.0.0/33"
single_nat_gatway = true
[gateway]
cpu = 512
memory = 512
"""
BAD_PROD = """
region = "us-east-1"
aws_provider_version = "~> 6.0"
[backend]
bucket = "tfstate-bucket"
key = "prod.tfstate"
dynamodb_table = "tfstate-lock"
region = "us-east-1"
[edge]
certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
enable_jwt_auth = true
"""

# A valid file with its own state object per name.
VALID = """
region = "us-east-1"
[backend]
bucket = "tfstate-bucket"
key = "ai-gateway/{name}.tfstate"
dynamodb_table = "tfstate-lock"
region = "us-east-1"
[edge]
allowed_cidrs = ["203.0.113.0/24"]
"""

pytestmark = pytest.mark.cli


def plain_shell_path() -> str:
    """PATH as a user's shell has it after `make setup`: without the project's
    own .bootstrap/bin (pipenv) and node_modules/.bin, which only make adds."""
    own = (str(ROOT / ".bootstrap" / "bin"), str(ROOT / "node_modules" / ".bin"))
    return ":".join(entry for entry in os.environ.get("PATH", "").split(":") if entry not in own)


def run(args: list[str], env_dir: Path | None, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = plain_shell_path()
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env["CHECKPOINT_DISABLE"] = "1"
    if env_dir is not None:
        env["AIGW_ENV_DIR"] = str(env_dir)
    return processes.run(args, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture
def bad_env_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "envs"
    directory.mkdir()
    (directory / "dev.toml").write_text(BAD_DEV)
    (directory / "prod.toml").write_text(BAD_PROD)
    return directory


def test_bad_files_exit_2_with_every_problem_and_write_nothing(bad_env_dir: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    outdir = workdir / "cdktf.out"
    outdir.mkdir()
    (outdir / "previous-synth.json").write_text("{}")
    env = dict(os.environ, CDKTF_OUTDIR=str(outdir))
    result = processes.run(
        [sys.executable, ROOT / "main.py"], cwd=workdir, env={**env, "AIGW_ENV_DIR": str(bad_env_dir)}, timeout=60
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(str(bad_env_dir))]
    fields = {line.split(": ")[1] for line in lines}
    assert {
        "backend.bucket",
        "backend.key",
        "network.vpc_cidr",
        "network.single_nat_gatway",
        "gateway.memory",
    } <= fields
    assert "aws_provider_version" in fields
    assert any(line.startswith(f"{bad_env_dir}/dev.toml: ") for line in lines)
    assert any(line.startswith(f"{bad_env_dir}/prod.toml: ") for line in lines)
    assert sorted(p.name for p in outdir.iterdir()) == ["previous-synth.json"]
    assert result.stdout == ""


def test_main_synthesizes_one_stack_per_environment_file(tmp_path: Path) -> None:
    env_dir = tmp_path / "envs"
    env_dir.mkdir()
    for name in ("dev", "qa-2"):
        (env_dir / f"{name}.toml").write_text(VALID.format(name=name))
    outdir = tmp_path / "out"
    env = {**os.environ, "AIGW_ENV_DIR": str(env_dir), "CDKTF_OUTDIR": str(outdir)}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    result = processes.run([sys.executable, ROOT / "main.py"], cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (outdir / "stacks").iterdir()) == ["ai-gateway-dev", "ai-gateway-qa-2"]


def test_environment_copied_without_its_own_backend_key_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    env_dir = tmp_path / "envs"
    env_dir.mkdir()
    (env_dir / "dev.toml").write_text(VALID.format(name="dev"))
    shutil.copy(env_dir / "dev.toml", env_dir / "qa.toml")
    outdir = tmp_path / "out"
    env = {**os.environ, "AIGW_ENV_DIR": str(env_dir), "CDKTF_OUTDIR": str(outdir)}
    result = processes.run([sys.executable, ROOT / "main.py"], cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    # Paths relative to the working directory, as a user sees them.
    assert result.stderr.startswith("envs/qa.toml: backend.key: bucket 'tfstate-bucket' ")
    assert "already the state of envs/dev.toml" in result.stderr
    assert not outdir.exists()


@pytest.fixture(scope="module")
def cli_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project files the CLI needs, so its cdktf.out is private."""
    return copy_project(tmp_path_factory.mktemp("project"))


def cdktf_cli() -> str:
    binary = ROOT / "node_modules" / ".bin" / "cdktf"
    if not binary.exists():
        pytest.fail("cdktf-cli is not installed: run `make setup` (the README's test command does)")
    return str(binary)


def test_cdktf_cli_synth_matches_main_py_byte_for_byte(cli_project: Path, tmp_path: Path) -> None:
    # `cdktf synth` as a user runs it from a plain shell after `make setup` (cdktf.json runs .venv's Python).
    cli = run([cdktf_cli(), "synth", "--output", "cli.out"], env_dir=None, cwd=cli_project)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    direct_env = {**os.environ, "CDKTF_OUTDIR": str(tmp_path / "direct.out")}
    direct_env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    direct = processes.run([sys.executable, "main.py"], cwd=cli_project, env=direct_env, timeout=300)
    assert direct.returncode == 0, direct.stderr
    cli_stacks = sorted(p.name for p in (cli_project / "cli.out" / "stacks").iterdir())
    assert cli_stacks == sorted(f"ai-gateway-{p.stem}" for p in (ROOT / "environments").glob("*.toml"))
    assert {"ai-gateway-dev", "ai-gateway-prod"} <= set(cli_stacks)
    for stack in cli_stacks:
        cli_json = (cli_project / "cli.out" / "stacks" / stack / "cdk.tf.json").read_bytes()
        direct_json = (tmp_path / "direct.out" / "stacks" / stack / "cdk.tf.json").read_bytes()
        assert cli_json == direct_json, stack


def test_cdktf_cli_synth_fails_on_bad_files_and_keeps_previous_output(cli_project: Path, bad_env_dir: Path) -> None:
    previous = cli_project / "kept.out"
    (previous / "stacks").mkdir(parents=True)
    (previous / "stacks" / "marker").write_text("from an earlier synth")
    result = run([cdktf_cli(), "synth", "--output", "kept.out"], env_dir=bad_env_dir, cwd=cli_project)
    assert result.returncode != 0
    assert "network.vpc_cidr" in result.stdout + result.stderr
    assert (previous / "stacks" / "marker").read_text() == "from an earlier synth"
    assert sorted(p.name for p in (previous / "stacks").iterdir()) == ["marker"]


def makefile_export(name: str) -> str:
    """The value the Makefile exports to every command it runs."""
    (value,) = re.findall(rf"^export {name} := (.*)$", (ROOT / "Makefile").read_text(), re.M)
    return value.strip()


def test_cdktf_under_make_prints_no_node_options_warning(cli_project: Path, bad_env_dir: Path) -> None:
    # cdktf warns on every command when NODE_OPTIONS lacks --max-old-space-size (it would set it itself).
    env = {**os.environ, "NODE_OPTIONS": makefile_export("NODE_OPTIONS"), "AIGW_ENV_DIR": str(bad_env_dir),
           "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CHECKPOINT_DISABLE": "1"}  # fmt: skip
    result = processes.run([cdktf_cli(), "synth", "--output", "warn.out"], cwd=cli_project, env=env, timeout=300)
    assert "network.vpc_cidr" in result.stdout + result.stderr  # it ran the app
    assert "NODE_OPTIONS" not in result.stdout + result.stderr


def test_the_venv_compile_keeps_every_provider_module_the_project_names() -> None:
    from tools.compile_venv import named_submodules

    named = named_submodules()
    # What every stack builds on, and a module only a test names (tests/ is scanned too).
    assert {"ecs_service", "ecs_task_definition", "lb_listener", "iam_role", "s3_bucket"} <= named
    assert "vpc_security_group_ingress_rule" in named
    assert all(name.isidentifier() for name in named)
