"""The routes as the stack synthesizes them: one read-only SSM parameter per
route with its config and no credential, a policy that reads exactly those,
the outputs, and nothing of it without routes ("routing" and "base" scenarios,
tests/scenarios.py)."""

from __future__ import annotations

import json

from aigw.data_plane.config import Route, RouteTarget
from aigw.data_plane.routing import portkey_config
from security.stackdoc import StackDoc
from tests.scenarios import ROUTES


def test_each_route_is_one_ssm_parameter_holding_its_config(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["routing"]
    parameters = {p["name"]: p for p in stack.resources("aws_ssm_parameter")}
    assert sorted(parameters) == sorted(f"/aigw-routing/routing/{name}" for name in ROUTES)
    chat = parameters["/aigw-routing/routing/chat"]
    assert chat["type"] == "String" and chat["tier"] == "Standard"
    assert json.loads(chat["value"]) == {
        "route": "chat",
        "default": True,
        "config": {
            "strategy": {"mode": "fallback", "on_status_codes": [429, 500, 502, 503, 504]},
            "targets": [
                {"provider": "openai", "override_params": {"model": "gpt-4o-mini"}},
                {"provider": "anthropic", "override_params": {"model": "claude-haiku-4-5"}},
            ],
        },
    }
    spread = json.loads(parameters["/aigw-routing/routing/spread"]["value"])
    assert spread["default"] is False
    assert spread["config"] == {
        "strategy": {"mode": "loadbalance"},
        "targets": [{"provider": "openai", "weight": 3}, {"provider": "google", "weight": 1}],
    }
    retrying = json.loads(parameters["/aigw-routing/routing/retrying"]["value"])
    assert retrying["config"]["targets"] == [{"provider": "openai", "retry": {"attempts": 2, "on_status_codes": [503]}}]


def test_no_credential_is_written_into_a_config(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["routing"]
    for parameter in stack.resources("aws_ssm_parameter"):
        for target in json.loads(parameter["value"])["config"]["targets"]:
            assert set(target) <= {"provider", "weight", "retry", "override_params"}, target


def test_the_read_policy_reads_exactly_the_route_parameters(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["routing"]
    policy = stack.resource("aws_iam_policy", {"name": "aigw-routing-routing-read"})
    (statement,) = policy.policy("policy")["Statement"]  # type: ignore[index]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == ["ssm:GetParameter", "ssm:GetParameters"]
    assert sorted(statement["Resource"]) == sorted(p.ref("arn") for p in stack.resources("aws_ssm_parameter"))


def test_the_outputs_name_the_parameters_and_the_policy(scenarios: dict[str, StackDoc]) -> None:
    outputs = scenarios["routing"].outputs
    assert set(outputs["routing_config_parameters"]["value"]) == set(ROUTES)
    assert outputs["routing_read_policy_arn"]["value"].endswith(".arn}")
    assert "sensitive" not in outputs["routing_config_parameters"]


def test_without_routes_there_is_no_parameter_and_no_policy(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["secure"]
    assert stack.resources("aws_ssm_parameter") == []
    assert not [p for p in stack.resources("aws_iam_policy") if p["name"].endswith("-routing-read")]
    assert stack.outputs["routing_config_parameters"]["value"] == {}


def test_a_loadbalance_target_without_a_weight_weighs_one() -> None:
    route = Route(strategy="loadbalance", targets=(RouteTarget("openai"), RouteTarget("google", weight=3)))
    assert [target["weight"] for target in portkey_config(route)["targets"]] == [1, 3]
