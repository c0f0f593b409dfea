"""The README's configuration reference is generated from the code."""

from __future__ import annotations

from pathlib import Path

from aigw.docs import BEGIN, END, reference
from aigw.settings import SECTION_NAMES, EnvironmentSettings

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
