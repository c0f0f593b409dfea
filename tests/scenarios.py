"""Settings the module tests synthesize, built in code rather than read from
environments/: a small valid base, and named variants that each turn on what
a group of tests is about. Changing a shipped file never changes these.

Every variant is validated as an environment file would be (field rules and
cross-field rules), so a scenario cannot drift into something a user could
not configure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from aigw.environments import Environment
from aigw.settings import AzureSettings, BackendSettings, EdgeSettings, EnvironmentSettings
from aigw.settings.clients import BudgetSettings, ClientSettings
from aigw.settings.guardrails import DeniedTopic
from aigw.settings.routing import RouteSettings, RouteTarget

CERTIFICATE_ARN = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
DIGEST = "sha256:" + "0" * 64
DATA_PLANE_DIGEST = "sha256:" + "1" * 64
EMULATOR_ENDPOINT = "http://127.0.0.1:4566"
# The Azure deployment of the data-plane scenario ("org-keys"), which the gateway tier runs.
ORG_KEYS_AZURE = AzureSettings(resource_name="example-openai", deployment_id="gpt-4o", api_version="2024-10-21")


def _targets(*targets: str) -> list[RouteTarget]:
    """Targets from ``provider`` or ``provider:weight`` or ``provider=model``."""
    built = []
    for target in targets:
        provider, _, model = target.partition("=")
        provider, _, weight = provider.partition(":")
        fields = {"provider": provider, "model": model or None, "weight": int(weight) if weight else None}
        built.append(RouteTarget.model_validate(fields))
    return built


# The "routing" scenario's routes: one per behaviour a test drives (a
# target's failures count per route, so tests that fail one do not trip another).
ROUTES: dict[str, RouteSettings] = {
    # The default: OpenAI (its model forced), then Anthropic; never skipped in these tests.
    "chat": RouteSettings(
        strategy="fallback", default=True, skip_after_failures=100,
        targets=_targets("openai=gpt-4o-mini", "anthropic=claude-haiku-4-5"),
    ),
    # Fallback on 503 only.
    "on-503": RouteSettings(
        strategy="fallback", on_status_codes=[503], skip_after_failures=100, targets=_targets("openai", "google"),
    ),
    # One target, retried twice on 503 only.
    "retrying": RouteSettings(
        strategy="single", retry_attempts=2, retry_on_status_codes=[503], targets=_targets("openai"),
    ),
    # Three quarters to OpenAI, a quarter to Google.
    "spread": RouteSettings(strategy="loadbalance", targets=_targets("openai:3", "google:1"), skip_after_failures=100),
    # Bedrock (the task role), then Azure (its deployment).
    "aws-first": RouteSettings(
        strategy="fallback", skip_after_failures=100,
        targets=_targets("bedrock=anthropic.claude-3-haiku-20240307-v1:0", "azure"),
    ),
    # Skipped after two failures in a row, for two seconds.
    "skipping": RouteSettings(
        strategy="fallback", skip_after_failures=2, skip_seconds=2, targets=_targets("anthropic", "openai"),
    ),
}  # fmt: skip


def vary(settings: EnvironmentSettings, **changes: Any) -> EnvironmentSettings:
    """``settings`` with ``changes``: a value per top-level key, or for a table
    a dict of its fields (``edge={"enable_waf": True}``). Raises ValueError
    when the result is not a valid environment."""
    updates: dict[str, Any] = {}
    for key, value in changes.items():
        current = getattr(settings, key)
        is_table = isinstance(current, BaseModel) and isinstance(value, dict)
        updates[key] = current.model_copy(update=value) if is_table else value
    changed = settings.model_copy(update=updates)
    # Validate the result the way a file is validated (model_copy checks nothing).
    validated = EnvironmentSettings.model_validate(changed.model_dump(exclude_unset=True))
    problems = [f"{problem.field}: {problem.message}" for problem in validated.problems()]
    if problems:
        raise ValueError(f"not a valid environment: {problems}")
    return validated


def base() -> EnvironmentSettings:
    """The smallest valid environment: us-east-1 (zones a and b), HTTP only, no
    WAF, no JWT auth, one NAT gateway, the upstream image, org key secrets
    created but not injected (JWT auth is off), deletion protection on."""
    return vary(
        EnvironmentSettings(
            region="us-east-1",
            backend=BackendSettings(
                bucket="tfstate-bucket",
                key="ai-gateway/base.tfstate",
                dynamodb_table="tfstate-lock",
                region="us-east-1",
            ),
            edge=EdgeSettings(allowed_cidrs=["203.0.113.0/24"]),
        )
    )


def scenario_settings() -> dict[str, EnvironmentSettings]:
    """Every scenario by name (its environment name too). Built on call, not on
    import, so that a variant a change makes invalid fails the tests that
    synthesize it rather than the collection of every test module."""
    base_settings = base()
    return {
        "base": base_settings,
        # HTTPS with JWT auth and WAF, org keys (Azure among them) injected by the data plane.
        "secure": vary(
            base_settings,
            edge={
                "certificate_arn": CERTIFICATE_ARN,
                "enable_jwt_auth": True,
                "enable_waf": True,
                "allowed_cidrs": ["0.0.0.0/0"],
            },
            gateway={
                "provider_keys": ["openai", "anthropic", "azure"],
                "azure": AzureSettings(
                    resource_name="contoso-openai", deployment_id="gpt-4o", api_version="2024-10-21"
                ),
            },
        ),
        # The data plane the gateway tier runs (tests/gateway_fixtures.py): JWT auth on, every org key.
        "org-keys": vary(
            base_settings,
            edge={"certificate_arn": CERTIFICATE_ARN, "enable_jwt_auth": True, "allowed_cidrs": ["0.0.0.0/0"]},
            gateway={"provider_keys": ["openai", "anthropic", "google", "azure"], "azure": ORG_KEYS_AZURE},
        ),
        # Three teams: the default client kept, one rate- and concurrency-limited, one with a capped, shadowed
        # budget; cost attribution with a daily cost alarm for one of them.
        "teams": vary(
            base_settings,
            edge={"certificate_arn": CERTIFICATE_ARN, "enable_jwt_auth": True, "allowed_cidrs": ["0.0.0.0/0"]},
            gateway={"provider_keys": ["openai", "anthropic", "google", "azure"], "azure": ORG_KEYS_AZURE},
            clients={
                "default": ClientSettings(scopes=["invoke", "admin"]),
                "search": ClientSettings(requests_per_minute=3, max_concurrent_requests=2, token_validity_minutes=15),
                "batch": ClientSettings(
                    max_tokens=64, budget=BudgetSettings(tokens=100, alert_at_percent=50, mode="shadow")
                ),
            },
            shared_store={"max_data_storage_gb": 2, "snapshot_retention_days": 7},
            cost_attribution={
                "enabled": True,
                "reserved_concurrency": 3,
                "team_daily_cost_alarm_usd": {"search": 25.5},
            },
        ),
        # Named routes over the org keys and Bedrock (tests/test_routing.py runs them through the real gateway).
        "routing": vary(
            base_settings,
            edge={"certificate_arn": CERTIFICATE_ARN, "enable_jwt_auth": True, "allowed_cidrs": ["0.0.0.0/0"]},
            gateway={"provider_keys": ["openai", "anthropic", "google", "azure"], "azure": ORG_KEYS_AZURE},
            routing=ROUTES,
        ),
        # The response cache: teams private (default), shared (search, billing) and no-store (secret).
        "cache": vary(
            base_settings,
            edge={"certificate_arn": CERTIFICATE_ARN, "enable_jwt_auth": True, "allowed_cidrs": ["0.0.0.0/0"]},
            gateway={"provider_keys": ["openai", "anthropic", "google", "azure"], "azure": ORG_KEYS_AZURE},
            clients={
                "default": ClientSettings(scopes=["invoke", "admin"]),
                "other": ClientSettings(),
                "search": ClientSettings(cache="shared"),
                "billing": ClientSettings(cache="shared"),
                "secret": ClientSettings(cache="no-store"),
            },
            response_cache={"enabled": True, "ttl_seconds": 600, "max_entry_kib": 64},
            routing={"chat": RouteSettings(strategy="single", default=True, targets=_targets("openai"))},
        ),
        # The organisation's guardrail, every policy in use: one filter lowered, one off, PII blocked and
        # anonymized, two denied topics, blocked words and the profanity list, messages of its own.
        "guardrails": vary(
            base_settings,
            edge={"certificate_arn": CERTIFICATE_ARN, "enable_jwt_auth": True, "allowed_cidrs": ["0.0.0.0/0"]},
            gateway={"provider_keys": ["openai", "anthropic"]},
            guardrails={
                "enabled": True,
                "content_filters": {"insults": "MEDIUM", "misconduct": "NONE"},
                "pii": {"email": "ANONYMIZE", "us_social_security_number": "BLOCK"},
                "denied_topics": [
                    DeniedTopic(
                        name="Investment advice",
                        definition="Recommendations about buying or selling securities.",
                        examples=["Should I buy this stock?", "Which fund will rise?"],
                    ),
                    DeniedTopic(name="Medical diagnosis", definition="Telling someone which illness they have."),
                ],
                "blocked_words": ["project-falcon", "Codename Heron"],
                "blocked_input_message": "Refused by the Example Corp guardrail.",
                "blocked_output_message": "The answer was withheld by the Example Corp guardrail.",
                "output_streams": "refuse",
                "timeout_ms": 3000,
            },
        ),
        # The guardrail as the harness runs it (tests/test_guardrails.py): inputs and answers checked,
        # streams buffered and checked whole, Bedrock offered beside the org keys.
        "guarded": vary(
            base_settings,
            edge={"certificate_arn": CERTIFICATE_ARN, "enable_jwt_auth": True, "allowed_cidrs": ["0.0.0.0/0"]},
            gateway={"provider_keys": ["openai", "anthropic", "google", "azure"], "azure": ORG_KEYS_AZURE},
            guardrails={
                "enabled": True,
                "blocked_input_message": "Refused by the Example Corp guardrail.",
                "blocked_output_message": "Withheld by the Example Corp guardrail.",
            },
        ),
        # A task that takes at most 10 requests in flight (tests/test_in_flight.py).
        "saturating": vary(
            base_settings,
            edge={"certificate_arn": CERTIFICATE_ARN, "enable_jwt_auth": True, "allowed_cidrs": ["0.0.0.0/0"]},
            gateway={
                "provider_keys": ["openai", "anthropic", "google", "azure"],
                "azure": ORG_KEYS_AZURE,
                "max_requests_in_flight": 10,
            },
        ),
        # HTTPS without JWT auth, two client ranges.
        "https": vary(
            base_settings,
            edge={"certificate_arn": CERTIFICATE_ARN, "allowed_cidrs": ["203.0.113.0/24", "198.51.100.0/24"]},
        ),
        "nat-per-zone": vary(
            base_settings,
            network={"availability_zones": ["us-east-1a", "us-east-1b", "us-east-1c"], "single_nat_gateway": False},
        ),
        "spot": vary(base_settings, gateway={"fargate_spot_weight": 3}),
        "ecr-tag": vary(base_settings, gateway={"image_from_ecr": True}),
        "waf-counted": vary(
            base_settings,
            edge={"enable_waf": True, "waf_counted_body_rules": ["CrossSiteScripting_BODY", "GenericLFI_BODY"]},
        ),
        "ecr-digest": vary(
            base_settings,
            gateway={
                "image": f"portkeyai/gateway@{DIGEST}",
                "data_plane_image": f"openresty/openresty@{DATA_PLANE_DIGEST}",
                "image_from_ecr": True,
            },
        ),
        # The smallest VPC allowed, reached from private ranges only.
        "small-vpc": vary(base_settings, network={"vpc_cidr": "10.20.0.0/22"}, edge={"allowed_cidrs": ["10.0.0.0/8"]}),
        # Every number and switch away from its default.
        "tuned": vary(
            base_settings,
            aws_provider_version=">= 6.22, < 7.0",
            deletion_protection=False,
            tags={"CostCenter": "platform"},
            gateway={
                "cpu": 2048,
                "memory": 4096,
                "desired_count": 3,
                "min_capacity": 2,
                "max_capacity": 10,
                "cpu_target_percent": 60,
                "requests_per_target": 500,
            },
            edge={"enable_waf": True, "waf_rate_limit": 500},
            observability={
                "log_retention_days": 400,
                "enable_saved_queries": False,
                "alarm_email": "oncall@example.com",
                "alarm_5xx_percent": 2.5,
                "alarm_p99_latency_seconds": 45.0,
            },
        ),
        # A region without default zones, its zones listed.
        "seoul": vary(
            base_settings,
            region="ap-northeast-2",
            backend={"region": "ap-northeast-2"},
            network={"availability_zones": ["ap-northeast-2a", "ap-northeast-2c"]},
        ),
        "emulator": vary(base_settings, emulator={"endpoint": EMULATOR_ENDPOINT}),
        # Named as "base" plus the suffix of its task role, in the same account and region.
        "base-task": vary(base_settings, backend={"key": "ai-gateway/base-task.tfstate"}),
    }


def scenario_environments() -> list[Environment]:
    return [Environment(name, Path(__file__), settings) for name, settings in scenario_settings().items()]
