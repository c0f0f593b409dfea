"""`[clients.<team>]`: the consuming teams, one Cognito app client each, with
their scopes, token validity and limits (`[clients.<team>.budget]`), and
`[shared_store]`: the ElastiCache Serverless cache that holds the limits'
counters for every task."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from aigw.settings.common import Problem, Section

# The resource server's scopes (modules/auth.py creates them); the load
# balancer admits only tokens carrying `invoke`.
SCOPES: dict[str, str] = {
    "invoke": "Call the gateway's model APIs",
    "admin": "Administrative operations on the gateway",
}
Scope = Literal["invoke", "admin"]
INVOKE: Scope = "invoke"
ALL_SCOPES: list[Scope] = ["invoke", "admin"]

# Lowercase letters, digits and inner hyphens, 1-32 characters: usable in a
# Cognito client name, a Terraform construct id, a metric dimension and a
# Redis key without escaping.
TEAM_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$")
# The team of the stack's one app client when no [clients] table is written;
# a [clients.default] table keeps that client (and its Terraform address).
DEFAULT_TEAM = "default"
# An ALB jwt-validation claim takes at most 10 values: the client ids it admits.
MAX_TEAMS = 10

# Cognito: an access token lives 5 minutes to 1 day.
MIN_TOKEN_MINUTES, MAX_TOKEN_MINUTES = 5, 1440
DEFAULT_TOKEN_MINUTES = 60


class BudgetSettings(Section):
    """A team's token budget per day or month (`[clients.<team>.budget]`)."""

    tokens: int = Field(
        ge=1,
        le=10**12,
        description="Tokens (input + output, as the provider reports them) the team may use per period. Checked "
        "before each request: once the period's total reaches it, requests are refused with 429 until the "
        "period resets. A request already running completes, so the total can pass the budget by the tokens "
        "of the requests in flight: their output (bounded by `max_tokens`) and their input (bounded only by the "
        "body limit); see docs/data-plane.md. A request whose usage stays unknown counts its bound, never "
        "zero. Required.",
    )
    period: Literal["day", "month"] = Field(
        "day", description="When the total resets: `day` (00:00 UTC) or `month` (the 1st, 00:00 UTC). Default: `day`."
    )
    alert_at_percent: int = Field(
        80,
        ge=1,
        le=100,
        description="The request that takes the total past this share of the budget logs a `budget_alert` line "
        "and counts in the `BudgetAlerts` metric, which an alarm per team watches (exactly one request crosses "
        "it: the store adds atomically). Default: 80.",
    )
    mode: Literal["enforce", "shadow"] = Field(
        "enforce",
        description="`enforce` refuses requests over the budget; `shadow` lets them through and logs each one it "
        "would have refused (`budget_shadow` in the access line's `limit` field), to roll a new budget out "
        "safely. Default: `enforce`.",
    )
    unknown_usage_tokens: int = Field(
        4096,
        ge=1,
        le=10**7,
        description="The output a request whose usage cannot be known (an answer cut off, a client gone, a "
        "provider that reported none) counts against the budget when it named no `max_tokens` (plus its input, "
        "estimated from its body): never zero. Default: 4096.",
    )


class ClientSettings(Section):
    """One consuming team (`[clients.<team>]`): its Cognito app client and its limits."""

    scopes: list[Scope] = Field(
        default_factory=lambda: [INVOKE],
        min_length=1,
        description="Scopes of the resource server the client may request: `invoke` (required: the load balancer "
        'admits only tokens with it) and `admin`. Default: `["invoke"]`.',
    )
    token_validity_minutes: int = Field(
        DEFAULT_TOKEN_MINUTES,
        ge=MIN_TOKEN_MINUTES,
        le=MAX_TOKEN_MINUTES,
        description="How long the team's access tokens are valid, 5 to 1440 minutes. Default: 60.",
    )
    requests_per_minute: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Requests per minute across every task (a sliding minute, counted in the shared store). "
        "Over it: 429 with `Retry-After`. Default: none (no limit).",
    )
    max_concurrent_requests: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Requests of the team in flight at once across every task (a stream counts until it ends). "
        "Over it: 429. Default: none (no limit).",
    )
    max_tokens: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="The most output tokens one request may ask for: on the generating routes (chat "
        "completions, completions, messages, responses) a request must name `max_tokens`, "
        "`max_completion_tokens` or `max_output_tokens` so that it times the answers asked for (`n`, "
        "`best_of`) is at most this, or it is refused with 400 (no provider default stands in: they differ by "
        "provider and model). With `budget`, the hard bound on how far one "
        "request can pass it. Default: none.",
    )
    budget: BudgetSettings | None = Field(None, description="The team's token budget. Default: none.")
    cache: Literal["private", "shared", "no-store"] = Field(
        "private",
        description="With `[response_cache]`: `private` (the team's answers are cached for the team alone), "
        "`shared` (one namespace with the other `shared` teams: they receive each other's cached answers) or "
        "`no-store` (nothing of the team's is ever cached or served from the cache). Default: `private`.",
    )

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"{value!r} lists a scope twice")
        if INVOKE not in value:
            raise ValueError(
                f"{value!r} lacks invoke: the load balancer admits only tokens with the invoke scope, so this "
                "team could not call the gateway"
            )
        return value

    @property
    def limited(self) -> bool:
        """Whether the team's requests are counted in the shared store."""
        return any(limit is not None for limit in (self.requests_per_minute, self.max_concurrent_requests, self.budget))


class ResponseCacheSettings(Section):
    """Answers cached in the data plane, in the shared store: every task serves what any task stored."""

    enabled: bool = Field(
        False,
        description="Cache successful, non-streamed answers of chat completions, completions, messages and "
        "embeddings in the shared store, keyed on the team (`clients.<team>.cache`), the path, the provider or "
        "route and the whole request body; a hit is answered by the data plane, byte for byte, without the "
        "provider. Needs `edge.enable_jwt_auth` (the team comes from the validated token). Default: false.",
    )
    ttl_seconds: int = Field(
        3600,
        ge=1,
        le=604_800,
        description="How long an answer stays cached, in seconds (at most 7 days). Default: 3600.",
    )
    max_entry_kib: int = Field(
        256,
        ge=1,
        le=10_240,
        description="Answers larger than this (KiB) are not cached. Default: 256.",
    )


class SharedStoreSettings(Section):
    """The ElastiCache Serverless (Valkey) cache of team counters and cached answers, when either is configured."""

    max_data_storage_gb: int = Field(
        1, ge=1, le=5000, description="Usage limit: the most data the cache may hold, in GB. Default: 1."
    )
    max_ecpu_per_second: int = Field(
        5000,
        ge=1000,
        le=15_000_000,
        description="Usage limit: the most ElastiCache Processing Units per second (one simple command is about "
        "one; the data plane sends two scripts per request). Default: 5000.",
    )
    snapshot_retention_days: int = Field(
        0,
        ge=0,
        le=35,
        description="Keep a daily snapshot this many days (0: none). Counters are rebuilt by traffic, so "
        "snapshots matter once the response cache shares the store. Default: 0.",
    )


def valid_team_name(name: str) -> str:
    if not TEAM_NAME.match(name):
        raise ValueError(
            f"{name!r} is not a team name: 1-32 lowercase letters, digits and inner hyphens, starting with a "
            "letter (it names a Cognito client, a metric dimension and the team in every log line)"
        )
    return name


TeamName = Annotated[str, AfterValidator(valid_team_name)]


def team_count_problems(clients: dict[str, ClientSettings]) -> Iterator[Problem]:
    if len(clients) > MAX_TEAMS:
        yield Problem(
            "",
            f"{len(clients)} teams: at most {MAX_TEAMS}, the number of client ids the load balancer's JWT "
            "validation can admit in one claim",
        )
