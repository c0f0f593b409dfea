"""Shared fixtures. Every stack (environments/ and each examples/ scenario) is
synthesized once per test session, in one cdktf App: the provider bindings
are the slow part, so they are loaded once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import modules  # noqa: F401  (installs the provider fast-import path first)
from modules.environments import DEFAULT_ENV_DIR, Environment, load_environments
from tests.template import Template

pytest_plugins = ["tests.gateway_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "examples"

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def scenario_dirs() -> list[Path]:
    """environments/ plus every examples/<scenario>/ folder."""
    return [DEFAULT_ENV_DIR, *sorted(p for p in EXAMPLES_DIR.iterdir() if p.is_dir())]


def all_environments() -> list[Environment]:
    return [env for directory in scenario_dirs() for env in load_environments(directory)]


@pytest.fixture(scope="session")
def synth_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cdktf.out of every environment and example, synthesized once per session."""
    from modules.stack import synthesize

    outdir = tmp_path_factory.mktemp("cdktf.out")
    synthesize(all_environments(), outdir)
    return outdir


@pytest.fixture(scope="session")
def stacks(synth_outdir: Path) -> dict[str, Template]:
    return {
        env.name: Template.load(synth_outdir / "stacks" / env.stack_name / "cdk.tf.json") for env in all_environments()
    }


@pytest.fixture(scope="session")
def dev(stacks: dict[str, Template]) -> Template:
    return stacks["dev"]


@pytest.fixture(scope="session")
def prod(stacks: dict[str, Template]) -> Template:
    return stacks["prod"]


@pytest.fixture(scope="session")
def minimal(stacks: dict[str, Template]) -> Template:
    return stacks["minimal"]


@pytest.fixture(scope="session")
def staging(stacks: dict[str, Template]) -> Template:
    return stacks["staging"]


@pytest.fixture(params=["dev", "prod"])
def env_stack(request: pytest.FixtureRequest, stacks: dict[str, Template]) -> Template:
    """Runs a test once for dev and once for prod."""
    return stacks[request.param]


# Lines the security gate wants shown at the end of the run (counts per stack).
TERMINAL_SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in TERMINAL_SUMMARY:
        terminalreporter.write_line(line)
