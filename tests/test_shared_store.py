"""The shared store of the teams' counters (modules/shared_store.py) and how
the data plane is told about it and about the teams: synthesized JSON of the
"teams" scenario (tests/scenarios.py), and the pin of the harness's
lua-resty-redis to the image's version."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from aigw.data_plane.contract import DATA_PLANE_CONTAINER, RUNTIME_VARIABLE
from aigw.data_plane.render import STORE_CA_SOURCE
from aigw.settings import GatewaySettings
from security.stackdoc import StackDoc
from tests.gateway_fixtures import stack_file
from tests.gateway_harness import HARNESS_LUA, TaskDefinition


def test_no_store_without_a_counted_team(scenarios: dict[str, StackDoc]) -> None:
    for name in ("base", "secure", "org-keys"):
        assert scenarios[name].count("aws_elasticache_serverless_cache") == 0, name


def test_the_store_is_valkey_in_the_private_subnets_encrypted_with_its_own_key(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["teams"]
    cache = stack.resource("aws_elasticache_serverless_cache")
    assert (cache["engine"], cache["major_engine_version"]) == ("valkey", "8")
    private = sorted(s.ref("id") for s in stack.resources("aws_subnet") if "private" in s.name)
    assert sorted(cache["subnet_ids"]) == private
    key = stack.resource("aws_kms_key", {"description": "aigw-teams: shared store (team counters)"})
    assert cache["kms_key_id"] == key.ref("arn") and key["enable_key_rotation"] is True
    assert cache["cache_usage_limits"] == [
        {"data_storage": [{"maximum": 2, "unit": "GB"}], "ecpu_per_second": [{"maximum": 5000}]}
    ]
    assert (cache["snapshot_retention_limit"], cache["daily_snapshot_time"]) == (7, "04:00")


def test_only_the_tasks_reach_the_store_and_only_on_its_port(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["teams"]
    (group,) = stack.resource("aws_elasticache_serverless_cache")["security_group_ids"]
    tasks = stack.resource("aws_security_group", {"name": "aigw-teams-tasks"}).ref("id")
    ingress = [r for r in stack.resources("aws_vpc_security_group_ingress_rule") if r["security_group_id"] == group]
    assert [(r["referenced_security_group_id"], r["ip_protocol"], r["from_port"], r["to_port"]) for r in ingress] == [
        (tasks, "tcp", 6379, 6379)
    ]
    assert not [r for r in stack.resources("aws_vpc_security_group_egress_rule") if r["security_group_id"] == group]
    egress = [
        r
        for r in stack.resources("aws_vpc_security_group_egress_rule")
        if r.get("referenced_security_group_id") == group
    ]
    assert [(r["security_group_id"], r["from_port"]) for r in egress] == [(tasks, 6379)]


@pytest.fixture(scope="module")
def teams_task(scenarios_outdir: Path) -> TaskDefinition:
    return TaskDefinition.from_stack(stack_file(scenarios_outdir, "teams"))


def test_the_data_plane_gets_each_teams_client_id_and_the_stores_endpoint(
    scenarios: dict[str, StackDoc], teams_task: TaskDefinition
) -> None:
    stack = scenarios["teams"]
    runtime = json.loads(teams_task.environment(DATA_PLANE_CONTAINER)[RUNTIME_VARIABLE])
    clients = {c["name"]: c.ref("id") for c in stack.resources("aws_cognito_user_pool_client")}
    assert runtime["teams"] == {
        clients["aigw-teams-m2m"]: "default",
        clients["aigw-teams-team-search"]: "search",
        clients["aigw-teams-team-batch"]: "batch",
    }
    cache = stack.resource("aws_elasticache_serverless_cache")
    assert runtime["store"] == {
        "host": cache.ref("endpoint[0].address"),
        "port": cache.ref("endpoint[0].port"),
    }


def test_the_bundle_carries_each_teams_limits_and_the_stores_ca(teams_task: TaskDefinition) -> None:
    bundle = teams_task.bundle()
    settings = json.loads(bundle["settings.json"])
    assert settings["team_limits"] == {
        "default": {"counted": False, "cache": "private"},
        "search": {"counted": True, "cache": "private", "requests_per_minute": 3, "max_concurrent_requests": 2},
        "batch": {
            "counted": True,
            "cache": "private",
            "max_tokens": 64,
            "budget": {"tokens": 100, "period": "day", "alert_at_percent": 50, "mode": "shadow",
                       "unknown_usage_tokens": 4096},
        },
    }  # fmt: skip
    assert settings["store"]["tls"] is True
    assert bundle["store-ca.pem"] == STORE_CA_SOURCE.read_text()
    assert "include store-tls.conf;" in bundle["server.conf"]
    assert "lua_ssl_trusted_certificate" in bundle["entrypoint.sh"] and "resolver %s" in bundle["entrypoint.sh"]


def test_a_data_plane_without_a_store_ships_none_of_it(scenarios_outdir: Path) -> None:
    bundle = TaskDefinition.from_stack(stack_file(scenarios_outdir, "org-keys")).bundle()
    assert "store-ca.pem" not in bundle and "store-tls.conf" not in bundle["server.conf"]
    assert json.loads(bundle["settings.json"])["store"] is None


def test_the_store_ca_file_holds_amazons_root_cas_only() -> None:
    text = STORE_CA_SOURCE.read_text()
    assert text.count("-----BEGIN CERTIFICATE-----") == 4
    assert re.findall(r"^# (Amazon Root CA \d)$", text, re.M) == [f"Amazon Root CA {i}" for i in (1, 2, 3, 4)]


def test_the_harness_lua_resty_redis_is_the_one_the_data_plane_image_bundles() -> None:
    # The image is openresty/openresty:<version>-alpine; its lua-resty-redis is the tag that
    # OpenResty release bundles (tests/harness/lua/pins.json says where that is written).
    pins = json.loads((HARNESS_LUA / "pins.json").read_text())
    image = GatewaySettings.model_fields["data_plane_image"].default
    assert image == f"openresty/openresty:{pins['openresty']}-alpine"
    redis = (HARNESS_LUA / "resty" / "redis.lua").read_bytes()
    assert hashlib.sha256(redis).hexdigest() == pins["sha256"]
    assert f"_VERSION = '{pins['lua-resty-redis']}'" in redis.decode()


def test_each_budgeted_team_has_an_alarm_on_its_alert_and_the_store_one_on_failing_open(
    scenarios: dict[str, StackDoc],
) -> None:
    stack = scenarios["teams"]
    topic = stack.resource("aws_sns_topic").ref("arn")
    budget = stack.resource("aws_cloudwatch_metric_alarm", {"alarm_name": "aigw-teams-budget-alert-batch"})
    assert (budget["namespace"], budget["metric_name"], budget["threshold"]) == ("AIGateway", "BudgetAlerts", 0)
    assert budget["dimensions"] == {"provider": "none", "model": "none", "team": "batch", "status": "0"}
    assert budget["alarm_actions"] == [topic]
    assert stack.count("aws_cloudwatch_metric_alarm", {"alarm_name": "aigw-teams-budget-alert-search"}) == 0
    store = stack.resource("aws_cloudwatch_metric_alarm", {"alarm_name": "aigw-teams-limits-unavailable"})
    (query,) = store["metric_query"]
    schema = 'SCHEMA("AIGateway", model, provider, status, team)'
    assert query["expression"] == f"SELECT SUM(LimitsUnavailable) FROM {schema}"
    assert store["alarm_actions"] == [topic]
    for name in ("base", "secure"):
        alarms = [a["alarm_name"] for a in scenarios[name].resources("aws_cloudwatch_metric_alarm")]
        assert not [a for a in alarms if "budget" in a or "limits" in a], alarms


def test_the_response_cache_alone_creates_the_store_and_points_the_gateway_at_it(
    scenarios: dict[str, StackDoc],
) -> None:
    stack = scenarios["cache"]
    cache = stack.resource("aws_elasticache_serverless_cache")
    (definition,) = stack.resources("aws_ecs_task_definition")
    containers = {c["name"]: c for c in json.loads(definition["container_definitions"])}
    gateway = {v["name"]: v["value"] for v in containers["gateway"]["environment"]}
    assert gateway["REDIS_CONNECTION_STRING"] == (
        f"rediss://{cache.ref('endpoint[0].address')}:{cache.ref('endpoint[0].port')}"
    )
    # Without a store, the gateway keeps its in-memory caches.
    (base,) = scenarios["base"].resources("aws_ecs_task_definition")
    base_gateway = next(c for c in json.loads(base["container_definitions"]) if c["name"] == "gateway")
    assert "REDIS_CONNECTION_STRING" not in {v["name"] for v in base_gateway["environment"]}


def test_the_cache_has_an_alarm_on_failing_open_and_no_limits_alarm_without_limits(
    scenarios: dict[str, StackDoc],
) -> None:
    stack = scenarios["cache"]
    alarm = stack.resource("aws_cloudwatch_metric_alarm", {"alarm_name": "aigw-cache-cache-unavailable"})
    (query,) = alarm["metric_query"]
    assert query["expression"] == 'SELECT SUM(CacheUnavailable) FROM SCHEMA("AIGateway", model, provider, status, team)'
    assert alarm["alarm_actions"] == [stack.resource("aws_sns_topic").ref("arn")]
    assert stack.count("aws_cloudwatch_metric_alarm", {"alarm_name": "aigw-cache-limits-unavailable"}) == 0
    assert scenarios["teams"].count("aws_cloudwatch_metric_alarm", {"alarm_name": "aigw-teams-cache-unavailable"}) == 0
