"""The gateway's config of a route (`[routing.<name>]`): what the data plane
fills in per request (each target's credentials) and what is published for
clients (SSM). Never holds a credential: the data plane adds them to its own
copy at request time (config/data-plane/lua/aigw/routing.lua)."""

from __future__ import annotations

from typing import Any

from aigw.data_plane.config import Route

# The gateway's own retry and fallback codes (1.15.2): written out, so that a
# config means the same whatever the gateway's defaults become.
DEFAULT_TRIGGER_CODES: tuple[int, ...] = (429, 500, 502, 503, 504)


def portkey_config(route: Route) -> dict[str, Any]:
    """The gateway's config of ``route`` without credentials: the strategy,
    and per target its provider, forced model, weight and retries."""
    strategy: dict[str, Any] = {"mode": route.strategy}
    if route.strategy == "fallback":
        strategy["on_status_codes"] = list(route.on_status_codes or DEFAULT_TRIGGER_CODES)
    targets = []
    for target in route.targets:
        rendered: dict[str, Any] = {"provider": target.provider}
        if route.strategy == "loadbalance":
            rendered["weight"] = target.weight or 1
        if route.retry_attempts:
            rendered["retry"] = {
                "attempts": route.retry_attempts,
                "on_status_codes": list(route.retry_on_status_codes or DEFAULT_TRIGGER_CODES),
            }
        if target.model is not None:
            rendered["override_params"] = {"model": target.model}
        targets.append(rendered)
    return {"strategy": strategy, "targets": targets}
