"""`[observability]`: log retention, saved queries, the alarm topic and the alarms' thresholds."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from aigw.settings.common import Section

# Retention values CloudWatch Logs accepts (PutRetentionPolicy).
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip


class ObservabilitySettings(Section):
    """Logs, dashboard and alarms."""

    log_retention_days: int = Field(365, description="Retention of every log group, in days. Default: 365.")
    enable_saved_queries: bool = Field(
        True,
        description="Create the four saved Logs Insights queries over the data plane's access log. Turn off only "
        "where CloudWatch Logs query definitions are unavailable (the local emulator); the dashboard keeps its query "
        "widgets. Hybrid mode writes no access log and has neither (the key is refused there). Default: true.",
    )
    alarm_email: str = Field(
        "",
        description="Address subscribed to the alarm topic (confirmation mail required); empty: none. Default: empty.",
    )
    alarm_5xx_percent: float = Field(
        5.0,
        gt=0,
        le=100,
        description="ALB 5xx responses, % of requests over 5 minutes, that raise the alarm. Application load "
        "balancer only (an NLB has no HTTP metrics). Default: 5.",
    )
    alarm_p99_latency_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="p99 target response time (seconds) that raises the alarm; LLM calls are slow. Application "
        "load balancer only (an NLB has no response-time metric). Default: 30.",
    )

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"{value} is not a CloudWatch Logs retention; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}"
            )
        return value

    @field_validator("alarm_email")
    @classmethod
    def _email(cls, value: str) -> str:
        if value and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value
