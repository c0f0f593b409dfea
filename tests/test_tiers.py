"""The `terraform` and `e2e` tiers skip only naming what is missing, and under
AIGW_REQUIRE_ALL_TIERS=1 (.ci/run) such a skip fails the run. Each case runs
one terraform-tier test in a pytest subprocess with a mirror that holds nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import processes
from tests.conftest import PLUGIN_DIR_VARIABLE, REQUIRE_ALL_TIERS_VARIABLE, ROOT

pytestmark = pytest.mark.cli
ONE_TERRAFORM_TEST = "tests/test_terraform_validate.py::test_terraform_validate_accepts_the_stack[dev]"


def run_with_empty_mirror(empty: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != REQUIRE_ALL_TIERS_VARIABLE}
    env.update({PLUGIN_DIR_VARIABLE: str(empty), **extra})
    return processes.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_TERRAFORM_TEST], cwd=ROOT, env=env,
        timeout=300,
    )  # fmt: skip


def test_terraform_tier_skip_names_the_mirror_that_holds_no_provider(tmp_path: Path) -> None:
    result = run_with_empty_mirror(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "SKIPPED [1] tests/test_terraform_validate.py" in result.stdout
    assert f"TF_PLUGIN_DIR ({tmp_path}) holds no hashicorp/aws provider" in result.stdout
    assert "1 skipped" in result.stdout


def test_terraform_tier_skip_fails_when_every_tier_is_required(tmp_path: Path) -> None:
    result = run_with_empty_mirror(tmp_path, **{REQUIRE_ALL_TIERS_VARIABLE: "1"})
    assert result.returncode == 1, result.stdout[-3000:]
    assert (
        f"AIGW_REQUIRE_ALL_TIERS=1 requires the terraform tier to run here, but it was skipped: TF_PLUGIN_DIR "
        f"({tmp_path}) holds no hashicorp/aws provider" in result.stdout
    )
    assert "skipped" not in result.stdout.splitlines()[-1]
