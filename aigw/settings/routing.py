"""`[routing.<name>]`: named routing configs over the organisation's providers
(fallback, load balancing, retries). The data plane renders each into the
gateway's config, fills every target's credentials at request time, applies
the default to clients that name no provider, and skips a target that keeps
failing for a while. docs/gateway-contract.md has the selection rules."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from aigw.data_plane.policy import MAX_CONFIG_UPSTREAM_CALLS, MODEL_PATTERNS, PROVIDER_SLUGS
from aigw.settings.common import Problem, Section

# Lowercase letters, digits and inner hyphens, 1-32 characters: a header value,
# an SSM parameter name and a metric dimension without escaping.
ROUTE_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$")
# Routes one environment may configure (each is a metric dimension value and an SSM parameter).
MAX_ROUTES = 20
MAX_TARGETS = 8
# The gateway's own default retry codes (1.15.2: 429, 500, 502, 503, 504).
GATEWAY_RETRY_CODES: tuple[int, ...] = (429, 500, 502, 503, 504)
# Codes that may trigger a retry or a fallback: the provider is busy or
# failing. Any other 4xx answers the request itself (a bad body, a model it
# lacks): sending it again, or to the next provider, would repeat it. Not 408
# either: the gateway answers 408 when the client's own x-portkey-request-timeout
# runs out, so a client could make every target look failing, or multiply the
# calls of one request by the retries, with a 1 ms timeout.
TRIGGER_CODES = frozenset({429, *range(500, 600)})
# Bedrock signs with the task role; the others are organisation keys (`gateway.provider_keys`).
BEDROCK = "bedrock"
TargetProvider = Literal["openai", "anthropic", "google", "azure", "bedrock"]


def provider_slug(provider: str) -> str:
    """The gateway's provider slug of a target's provider."""
    return PROVIDER_SLUGS.get(provider, provider)


def _model_pattern(provider: str) -> re.Pattern[str]:
    # The data plane's PCRE patterns end in \z (the real end); Python spells it \Z.
    pattern = MODEL_PATTERNS.get(provider_slug(provider), MODEL_PATTERNS["default"])
    return re.compile(pattern.replace(r"\z", r"\Z"))


def valid_route_name(name: str) -> str:
    if not ROUTE_NAME.match(name):
        raise ValueError(
            f"{name!r} is not a route name: 1-32 lowercase letters, digits and inner hyphens, starting with a "
            "letter (clients send it in the x-aigw-route header; it names an SSM parameter and a metric dimension)"
        )
    return name


RouteName = Annotated[str, AfterValidator(valid_route_name)]


def _trigger_codes(codes: list[int]) -> list[int]:
    if len(set(codes)) != len(codes):
        raise ValueError(f"{codes!r} lists a code twice")
    wrong = [code for code in codes if code not in TRIGGER_CODES]
    if wrong:
        raise ValueError(
            f"{wrong!r}: only 429 and 5xx may trigger a retry or a fallback (another 4xx answers the request itself, "
            "or is a timeout the client chose: the next attempt would fail the same way, and a client could make a "
            "provider look failing)"
        )
    return codes


TriggerCodes = Annotated[list[int], Field(min_length=1, max_length=20), AfterValidator(_trigger_codes)]


class RouteTarget(Section):
    """One provider of a route (`[[routing.<name>.targets]]`)."""

    provider: TargetProvider = Field(
        description="A provider with an organisation key in `gateway.provider_keys`, or `bedrock` (signed with "
        "the task role). The data plane fills in its credentials per request; none is ever written into a "
        "config. Required."
    )
    model: str | None = Field(
        None,
        description="The model this target uses whatever the request names (the gateway's `override_params`). "
        "Default: the request's model.",
    )
    weight: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Share of the requests (`loadbalance` only), relative to the others. Default: 1.",
    )

    def problems(self) -> Iterator[Problem]:
        if self.model is not None and not _model_pattern(self.provider).match(self.model):
            yield Problem(
                "model",
                f"{self.model!r} is not a model name {self.provider} takes (the data plane refuses names that "
                "could change the upstream URL)",
            )


class RouteSettings(Section):
    """A named routing config (`[routing.<name>]`)."""

    strategy: Literal["single", "fallback", "loadbalance"] = Field(
        description="`single`: one target (with its retries); `fallback`: the targets in order, moving on when one "
        "answers a code of `on_status_codes`; `loadbalance`: one target per request, chosen by `weight`. Required."
    )
    default: bool = Field(
        False,
        description="Applies to every request that names no provider (`x-portkey-provider`), config "
        "(`x-portkey-config`) or route (`x-aigw-route`). Exactly one route is the default. Default: false.",
    )
    targets: list[RouteTarget] = Field(
        min_length=1,
        max_length=MAX_TARGETS,
        description="The providers, one `[[routing.<name>.targets]]` table each, in order: one for `single`, "
        "2 to 8 for `fallback` and `loadbalance`. Required.",
    )
    on_status_codes: TriggerCodes | None = Field(
        None,
        description="`fallback` only: the codes that move a request to the next target: 429 and 5xx. "
        "Default: 429, 500, 502, 503, 504.",
    )
    retry_attempts: int = Field(
        0,
        ge=0,
        le=5,
        description="Retries of each target before the route moves on (the gateway's, with backoff), 0 to 5. "
        "Targets times (1 + retries) may be at most 16 upstream calls per request. Default: 0.",
    )
    retry_on_status_codes: TriggerCodes | None = Field(
        None,
        description="The codes that are retried (needs `retry_attempts`): 429 and 5xx. "
        "Default: 429, 500, 502, 503, 504.",
    )
    skip_after_failures: int = Field(
        3,
        ge=1,
        le=100,
        description="`fallback` and `loadbalance`: a target that answers this many requests in a row with 429 or "
        "5xx (no 2xx between them) is skipped for `skip_seconds` (counted per task), then tried again; one more "
        "failure skips it again. When every target is skipped, all are tried. Default: 3.",
    )
    skip_seconds: int = Field(
        30, ge=1, le=3600, description="How long a failing target is skipped, in seconds. Default: 30."
    )

    @property
    def upstream_calls(self) -> int:
        return len(self.targets) * (1 + self.retry_attempts)

    def problems(self) -> Iterator[Problem]:
        count = len(self.targets)
        if self.strategy == "single" and count != 1:
            yield Problem("targets", f"a single route has exactly one target, not {count}")
        if self.strategy != "single" and count < 2:
            yield Problem("targets", f"a {self.strategy} route needs at least two targets")
        if self.strategy != "loadbalance":
            for index, target in enumerate(self.targets):
                if target.weight is not None:
                    yield Problem(
                        f"targets[{index}].weight", f"only loadbalance routes weigh targets, not {self.strategy}"
                    )
        if self.on_status_codes is not None and self.strategy != "fallback":
            yield Problem(
                "on_status_codes", f"only fallback routes move on; a {self.strategy} route has no next target"
            )
        if self.retry_on_status_codes is not None and self.retry_attempts == 0:
            yield Problem("retry_on_status_codes", "set retry_attempts (1 to 5), or remove this key")
        if self.strategy == "single":
            for name in ("skip_after_failures", "skip_seconds"):
                if name in self.model_fields_set:
                    yield Problem(name, "a single route has no other target to use while its one is skipped")
        if self.upstream_calls > MAX_CONFIG_UPSTREAM_CALLS:
            yield Problem(
                "retry_attempts",
                f"{count} targets times (1 + {self.retry_attempts} retries) is {self.upstream_calls} upstream calls "
                f"per request; at most {MAX_CONFIG_UPSTREAM_CALLS}",
            )
        for index, target in enumerate(self.targets):
            for problem in target.problems():
                yield Problem(f"targets[{index}].{problem.field}", problem.message)


def routing_problems(
    routes: dict[str, RouteSettings], provider_keys: Sequence[str], jwt: bool
) -> Iterator[tuple[str, str]]:
    """(field under `routing`, message) of the rules across routes and the gateway's keys."""
    if not routes:
        return
    if not jwt:
        yield (
            "",
            "routes fill in the organisation's provider keys, which the data plane injects only for clients the "
            "load balancer authenticated; turn on edge.enable_jwt_auth or remove the [routing] tables",
        )
        return
    if len(routes) > MAX_ROUTES:
        yield "", f"{len(routes)} routes: at most {MAX_ROUTES}"
    defaults = [name for name, route in routes.items() if route.default]
    if len(defaults) != 1:
        listed = ", ".join(defaults) if defaults else "none"
        yield "", f"exactly one route must have default = true (now: {listed})"
    for name, route in routes.items():
        for index, target in enumerate(route.targets):
            if target.provider != BEDROCK and target.provider not in provider_keys:
                yield (
                    f"{name}.targets[{index}].provider",
                    f"{target.provider} has no organisation key: add it to gateway.provider_keys, or use one of "
                    f"{', '.join([*provider_keys, BEDROCK])}",
                )
