"""The README's configuration reference is generated from the code."""

from __future__ import annotations

import itertools
import os
import re
import sys
from pathlib import Path

import pytest

from aigw.docs import BEGIN, END, reference
from aigw.settings import SECTION_NAMES, EnvironmentSettings
from tests import processes

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_reference_is_up_to_date() -> None:
    text = README.read_text(encoding="utf-8")
    block = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert block == reference(), "README.md is stale: run `make docs`"


def test_reference_lists_every_setting() -> None:
    generated = reference()
    for name in EnvironmentSettings.model_fields:
        if name in SECTION_NAMES:
            model = EnvironmentSettings.model_fields[name].annotation
            for field in model.model_fields:  # type: ignore[union-attr]
                assert f"`{name}.{field}`" in generated
        else:
            assert f"`{name}`" in generated


def test_every_setting_is_documented_with_its_default() -> None:
    for name, field in EnvironmentSettings.model_fields.items():
        models = [EnvironmentSettings.model_fields[name].annotation] if name in SECTION_NAMES else []
        for model in models:
            for sub_name, sub in model.model_fields.items():  # type: ignore[union-attr]
                assert sub.description, f"{name}.{sub_name} has no description"
                assert (
                    "Default" in sub.description or "Required" in sub.description or "Not built" in sub.description
                ), f"{name}.{sub_name}: say the default"
        if name not in SECTION_NAMES:
            assert field.description, name


# -- what the README says is true ------------------------------------------------------------------------------------
ROOT = README.parent
DOCS = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "README.md"]
# Top-level entries of the repository a path in the docs can start with.
REPOSITORY_ROOTS = ("aigw/", "modules/", "tests/", "config/", "docs/", "security/", "tools/", "bench/",
                    "environments/", "examples/", ".ci/")  # fmt: skip


def mentioned_paths(text: str) -> set[str]:
    """Repository paths in backticks: `aigw/data_plane/render.py`, `config/data-plane/spec/` (placeholders
    like <env>, globs and ellipses are not paths)."""
    found = set()
    for token in re.findall(r"`([^`\s]+)`", text):
        token = token.split(":")[0].rstrip(".,;")
        if token.startswith(REPOSITORY_ROOTS) and not re.search(r"[<>*{}…$]", token):
            found.add(token)
    return found


@pytest.mark.parametrize("document", DOCS, ids=lambda p: p.name)
def test_every_repository_path_the_docs_name_exists(document: Path) -> None:
    missing = sorted(
        path for path in mentioned_paths(document.read_text(encoding="utf-8")) if not (ROOT / path).exists()
    )
    assert missing == []


@pytest.mark.parametrize("document", DOCS, ids=lambda p: p.name)
def test_no_heading_is_empty(document: Path) -> None:
    lines = [line for line in document.read_text(encoding="utf-8").splitlines() if line.strip()]
    inside_code = False
    empty = []
    for line, following in itertools.pairwise(lines):
        if line.startswith("```"):
            inside_code = not inside_code
        if not inside_code and line.startswith("#") and following.startswith("#"):
            level, next_level = len(line) - len(line.lstrip("#")), len(following) - len(following.lstrip("#"))
            if next_level <= level:
                empty.append(line)
    assert empty == []


def test_the_readme_lists_exactly_the_make_targets() -> None:
    result = processes.run(["make", "--no-print-directory", "help"], cwd=ROOT, timeout=60)
    targets = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    (listed,) = re.findall(r"`make help` lists the other targets \(([^)]*)\)", README.read_text(encoding="utf-8"))
    named = {name.strip(" `") for name in listed.split(",")}
    assert named == targets - {"help", "deploy", "test"}


def test_the_readmes_bad_file_example_is_what_main_py_prints(tmp_path: Path) -> None:
    # The README's example of a bad file, produced by running main.py on such a file beside dev.toml.
    (block,) = re.findall(r"```\n(environments/qa\.toml: .*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    expected = block.strip().splitlines()
    env_dir = tmp_path / "environments"
    env_dir.mkdir()
    dev = (ROOT / "environments" / "dev.toml").read_text()
    (env_dir / "dev.toml").write_text(dev)
    qa = (dev.replace("single_nat_gateway", "single_nat_gatway")
          .replace("memory = 1024", "memory = 512", 1)
          .replace("enable_jwt_auth = false", "enable_jwt_auth = true", 1))  # fmt: skip
    (env_dir / "qa.toml").write_text(qa)
    result = processes.run([sys.executable, ROOT / "main.py"], cwd=tmp_path, timeout=120,
                           env={**os.environ, "AIGW_ENV_DIR": str(env_dir)})  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.splitlines()[:-1] == expected
