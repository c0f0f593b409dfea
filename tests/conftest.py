"""Shared fixtures. The shipped stacks (environments/ and each examples/
folder) are synthesized once per test session in one cdktf App, and the
module tests' scenarios (tests/scenarios.py, settings built in code) in
another: the provider bindings are the slow part, so they are loaded once.

The `terraform` and `e2e` tiers need Terraform and its AWS provider; the
``provider_mirror`` fixture finds them as `make deploy` does, or skips naming
exactly what is missing. With AIGW_REQUIRE_ALL_TIERS=1 (.ci/run) a skip in
those tiers is a failure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aigw import fast_import
from aigw.environments import DEFAULT_ENV_DIR, Environment, load_environments, shipped_environments
from security.stackdoc import StackDoc
from tests import processes

# Before any test imports a provider binding (AIGW_STOCK_PROVIDER_IMPORT=1 turns it off).
fast_import.install()

pytest_plugins = ["tests.gateway_fixtures", "tests.team_fixtures"]

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def all_environments() -> list[Environment]:
    """Every shipped environment and example (aigw.environments.shipped_environments)."""
    return shipped_environments()


@pytest.fixture(scope="session")
def synth_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cdktf.out of every environment and example, synthesized once per session."""
    from modules.stack import synthesize

    outdir = tmp_path_factory.mktemp("cdktf.out")
    synthesize(all_environments(), outdir)
    return outdir


@pytest.fixture(scope="session")
def stacks(synth_outdir: Path) -> dict[str, StackDoc]:
    """The shipped stacks by environment name; for tests about the shipped files."""
    return {
        env.name: StackDoc.load(synth_outdir / "stacks" / env.stack_name / "cdk.tf.json") for env in all_environments()
    }


@pytest.fixture(scope="session")
def dev(stacks: dict[str, StackDoc]) -> StackDoc:
    return stacks["dev"]


@pytest.fixture(scope="session")
def prod(stacks: dict[str, StackDoc]) -> StackDoc:
    return stacks["prod"]


@pytest.fixture(params=["dev", "prod"])
def env_stack(request: pytest.FixtureRequest, stacks: dict[str, StackDoc]) -> StackDoc:
    """Runs a test once for the shipped dev and once for prod (the output tests in test_stack.py)."""
    return stacks[request.param]


@pytest.fixture(scope="session")
def scenarios_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cdktf.out of every scenario of tests/scenarios.py, synthesized once per session in one App."""
    from modules.stack import synthesize
    from tests.scenarios import scenario_environments

    outdir = tmp_path_factory.mktemp("scenarios.out")
    synthesize(scenario_environments(), outdir)
    return outdir


@pytest.fixture(scope="session")
def scenarios(scenarios_outdir: Path) -> dict[str, StackDoc]:
    """Every scenario of tests/scenarios.py, by name."""
    from tests.scenarios import scenario_environments

    return {
        env.name: StackDoc.load(scenarios_outdir / "stacks" / env.stack_name / "cdk.tf.json")
        for env in scenario_environments()
    }


# Lines the security gate wants shown at the end of the run (counts per stack).
TERMINAL_SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in TERMINAL_SUMMARY:
        terminalreporter.write_line(line)


# Under pytest-xdist (`make test` runs workers) a worker's lines reach the
# controller, which prints the summary, through the worker's output dict.
_SUMMARY_KEY = "aigw_terminal_summary"


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_SUMMARY_KEY] = list(TERMINAL_SUMMARY)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    for line in getattr(node, "workeroutput", {}).get(_SUMMARY_KEY, []):
        if line not in TERMINAL_SUMMARY:
            TERMINAL_SUMMARY.append(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The e2e tier first: its deployments take minutes but little CPU, so
    under xdist's `--dist loadfile` each of its files starts on a worker of
    its own while the other workers take the rest."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


# --- Terraform and its AWS provider, for the `terraform` and `e2e` tiers ------
PLUGIN_DIR_VARIABLE = "TF_PLUGIN_DIR"
REQUIRE_ALL_TIERS_VARIABLE = "AIGW_REQUIRE_ALL_TIERS"
PROVIDER_TIERS = ("terraform", "e2e")
# The environment the e2e tier deploys; a mirror built from the registry holds
# a provider version its constraint admits.
E2E_ENVIRONMENT = "local"
REGISTRY_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class ProviderMirror:
    """A local directory of hashicorp/aws builds (`terraform init -plugin-dir`)."""

    directory: Path
    version: str  # the newest hashicorp/aws version in it
    origin: str  # where it came from, for skip messages and the run's summary


def provider_versions(directory: Path) -> list[str]:
    """hashicorp/aws versions in a mirror (<dir>/<host>/hashicorp/aws/<version>/<os_arch>/), oldest first."""
    found = {p.parent.parent.name for p in directory.glob("*/hashicorp/aws/*/*/terraform-provider-aws_*")}
    return sorted(found, key=lambda v: tuple(int(part) if part.isdigit() else 0 for part in v.split(".")))


def _mirror(directory: Path, origin: str) -> ProviderMirror:
    versions = provider_versions(directory)
    if not versions:
        pytest.skip(
            f"{origin} ({directory}) holds no hashicorp/aws provider (expected "
            f"{directory}/<host>/hashicorp/aws/<version>/<os_arch>/terraform-provider-aws_*)"
        )
    return ProviderMirror(directory, versions[-1], origin)


def _mirror_from_registry(directory: Path) -> ProviderMirror:
    """Let `terraform init` download the provider once into a plugin cache, which
    has the mirror layout; skip, quoting Terraform, when the registry cannot be reached."""
    constraint = next(
        env.settings.aws_provider_version for env in load_environments(DEFAULT_ENV_DIR) if env.name == E2E_ENVIRONMENT
    )
    config = directory / "config"
    config.mkdir()
    document = {"terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": constraint}}}}
    (config / "main.tf.json").write_text(json.dumps(document))
    cache = directory / "mirror"
    cache.mkdir()
    env = {**os.environ, "TF_PLUGIN_CACHE_DIR": str(cache), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    missing = (
        f"no Terraform provider for the {' and '.join(PROVIDER_TIERS)} tiers: {PLUGIN_DIR_VARIABLE} is not set, "
        "tools/provider_mirror.sh found no mirror on this machine, and `terraform init` could not download "
        f"hashicorp/aws {constraint} from the registry"
    )
    try:
        init = processes.run(
            ["terraform", "init", "-backend=false", "-input=false", "-no-color"],
            cwd=config, env=env, timeout=REGISTRY_TIMEOUT_SECONDS,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.skip(f"{missing} within {REGISTRY_TIMEOUT_SECONDS} s")
    if init.returncode != 0:
        pytest.skip(f"{missing}: {_first_error(init.stderr)}")
    return _mirror(cache, "the plugin cache `terraform init` filled from the registry")


def _first_error(stderr: str) -> str:
    """Terraform's first error and the paragraph explaining it, on one line."""
    start = stderr.find("Error:")
    paragraphs = [p for p in stderr[max(start, 0) :].split("\n\n") if p.strip()]
    return " ".join(" ".join(paragraphs[:2]).split())


@pytest.fixture(scope="session")
def provider_mirror(tmp_path_factory: pytest.TempPathFactory) -> ProviderMirror:
    """The AWS provider for Terraform, found the way `make deploy` finds it:
    ``$TF_PLUGIN_DIR``, else the machine's mirror (tools/provider_mirror.sh),
    else a download from the registry. Skips naming what is missing."""
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on PATH (the terraform and e2e tiers need Terraform >= 1.5)")
    configured = os.environ.get(PLUGIN_DIR_VARIABLE)
    if configured:
        mirror = _mirror(Path(configured), PLUGIN_DIR_VARIABLE)
    else:
        found = processes.run([ROOT / "tools" / "provider_mirror.sh"], timeout=300).stdout.strip()
        if found:
            mirror = _mirror(Path(found), "the mirror that tools/provider_mirror.sh found")
        else:
            mirror = _mirror_from_registry(tmp_path_factory.mktemp("registry-provider"))
    TERMINAL_SUMMARY.append(
        f"terraform provider: hashicorp/aws {mirror.version} from {mirror.directory} ({mirror.origin})"
    )
    return mirror


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    """With AIGW_REQUIRE_ALL_TIERS=1, a skipped test of the terraform or e2e tier fails instead."""
    report = yield
    assert isinstance(report, pytest.TestReport)
    tiers = [tier for tier in PROVIDER_TIERS if item.get_closest_marker(tier)]
    if (
        report.skipped
        and tiers
        and os.environ.get(REQUIRE_ALL_TIERS_VARIABLE) == "1"
        and not hasattr(report, "wasxfail")
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = (
            f"{REQUIRE_ALL_TIERS_VARIABLE}=1 requires the {tiers[0]} tier to run here, but it was skipped: {reason}"
        )
    return report
