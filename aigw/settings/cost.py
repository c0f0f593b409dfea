"""`[cost_attribution]`: a Lambda that prices every request of the data
plane's access log from a DynamoDB pricing table and publishes tokens, cost
and latency by provider, model and team (lambdas/cost_attribution/)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from aigw.settings.clients import TeamName
from aigw.settings.common import Section

CostFigure = Annotated[float, Field(gt=0, le=10_000_000)]


class CostAttributionSettings(Section):
    """Cost attribution per provider, model and team: a Lambda subscribed to the access log, a pricing table."""

    enabled: bool = Field(
        False,
        description="Create the pricing table (`make prices ENV=<env>` fills it from config/pricing/prices.toml), "
        "the function subscribed to the access log, its dead-letter queue and the dashboard's cost widgets. "
        "Default: false.",
    )
    reserved_concurrency: int = Field(
        5,
        ge=1,
        le=1000,
        description="Concurrent executions reserved for the function (and its ceiling): one batch of log lines "
        "takes well under a second. Default: 5.",
    )
    team_daily_cost_alarm_usd: dict[TeamName, CostFigure] = Field(
        default_factory=dict,
        description="An alarm per team when its estimated cost in one UTC day passes this many USD, e.g. "
        "`{ search = 200 }`. Teams as in `[clients]` (`default` without them). Default: none.",
    )
