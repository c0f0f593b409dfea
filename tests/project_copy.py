"""A private copy of the project files the cdktf CLI needs, so a test's
cdktf.out and Terraform working directories never touch the checkout's."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = (
    "main.py", "cdktf.json", "Pipfile", "Pipfile.lock", "aigw", "modules", "config", "environments", "lambdas", "tools",
)  # fmt: skip


def copy_project(destination: Path) -> Path:
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, destination / name)
    (destination / ".venv").symlink_to(ROOT / ".venv")
    return destination
