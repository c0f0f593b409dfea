"""`[features]`: the opt-in switches of the B-series. Every feature they
gated is built and has a table of its own now ([clients], [routing],
[cost_attribution], [response_cache], [guardrails]); a switch still written
here is refused with where it went (REMOVED_KEYS)."""

from __future__ import annotations

from aigw.settings.common import Section


class FeatureSettings(Section):
    """Kept for the messages: every key it had moved to a table of its own (see above)."""
