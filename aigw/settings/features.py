"""`[features]`: opt-in features, refused until they are built."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from aigw.settings.common import Problem, Section


class FeatureSettings(Section):
    """Opt-in features (B-series). Each is refused until it is built, never silently ignored."""

    enable_guardrails: bool = Field(False, description="Bedrock guardrails. Not built yet.")

    def problems(self) -> Iterator[Problem]:
        for name in type(self).model_fields:
            if getattr(self, name):
                yield Problem(name, "this feature is not built in this release yet; set it to false")
