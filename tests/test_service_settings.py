"""Validation of the service options (deployment strategy, autoscaling,
existing VPC, ECS Exec): every invalid combination is refused as
`<file>: <dotted.field>: <message>`, naming the field to change."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import processes
from tests.conftest import ROOT
from tests.option_stacks import CERTIFICATE_ARN, EXISTING_VPC, PUBLIC_SUBNET_IDS, option_problems, option_settings


def refused(tmp_path: Path, changes: dict[str, Any], field: str, text: str) -> None:
    """GIVEN the base file with ``changes`` WHEN loaded THEN one line names ``field`` and says ``text``."""
    lines = option_problems(tmp_path, changes)
    assert any(f": {field}: " in line and text in line for line in lines), lines


# -- autoscaling ------------------------------------------------------------------
def test_autoscaling_defaults_resolve_to_cpu_70_and_1000_requests() -> None:
    plan = option_settings({}).autoscaling
    assert plan is not None
    assert (plan.min_capacity, plan.max_capacity, plan.cpu_target_percent) == (1, 3, 70)
    assert (plan.memory_target_percent, plan.requests_per_target) == (None, 1000)
    assert (plan.scale_in_cooldown_seconds, plan.scale_out_cooldown_seconds) == (120, 60)


def test_autoscaling_off_has_no_plan_and_keeps_desired_count_as_the_minimum() -> None:
    settings = option_settings({"gateway": {"enable_autoscaling": False, "desired_count": 5}})
    assert settings.autoscaling is None
    assert settings.gateway.minimum_tasks == 5


@pytest.mark.parametrize(
    ("key", "value"),
    [("min_capacity", 1), ("max_capacity", 4), ("cpu_target_percent", 60), ("memory_target_percent", 80),
     ("requests_per_target", 500), ("scale_in_cooldown_seconds", 60), ("scale_out_cooldown_seconds", 30)],
)  # fmt: skip
def test_scaling_keys_are_refused_when_autoscaling_is_off(tmp_path: Path, key: str, value: int) -> None:
    refused(tmp_path, {"gateway": {"enable_autoscaling": False, key: value}}, f"gateway.{key}", "autoscaling is off")


def test_max_below_min_is_refused_naming_max_capacity(tmp_path: Path) -> None:
    refused(tmp_path, {"gateway": {"min_capacity": 4, "max_capacity": 3, "desired_count": 4}},
            "gateway.max_capacity", "below min_capacity (4)")  # fmt: skip


@pytest.mark.parametrize(("minimum", "desired", "maximum"), [(3, 2, 20), (3, 21, 20)])
def test_desired_count_outside_the_bounds_is_refused(tmp_path: Path, minimum: int, desired: int, maximum: int) -> None:
    changes = {"gateway": {"min_capacity": minimum, "desired_count": desired, "max_capacity": maximum}}
    refused(
        tmp_path, changes, "gateway.desired_count", f"between min_capacity ({minimum}) and max_capacity ({maximum})"
    )


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [("memory_target_percent", 9, "greater than or equal to 10"),
     ("memory_target_percent", 96, "less than or equal to 95"),
     ("cpu_target_percent", 100, "less than or equal to 95"),
     ("scale_in_cooldown_seconds", -1, "greater than or equal to 0"),
     ("scale_out_cooldown_seconds", 3601, "less than or equal to 3600"),
     ("requests_per_target", 0, "greater than or equal to 1")],
)  # fmt: skip
def test_scaling_targets_and_cooldowns_out_of_range_are_refused(
    tmp_path: Path, key: str, value: int, text: str
) -> None:
    refused(tmp_path, {"gateway": {key: value}}, f"gateway.{key}", text)


def test_requests_target_needs_a_load_balancer_that_counts_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only Application Load Balancers publish ALBRequestCountPerTarget; an NLB must refuse the key.
    refused(tmp_path, {"edge": {"load_balancer_type": "network"}, "gateway": {"requests_per_target": 500}},
            "gateway.requests_per_target", "which a network load balancer does not publish")  # fmt: skip


def test_without_request_counts_the_default_adds_no_request_policy() -> None:
    plan = option_settings({"edge": {"load_balancer_type": "network"}}).autoscaling
    assert plan is not None and plan.requests_per_target is None


# -- existing VPC -----------------------------------------------------------------
def test_existing_vpc_loads_without_zones_and_creates_no_nat_or_endpoints_by_default() -> None:
    # ap-northeast-2 has no default zones: an existing VPC needs none.
    changes = {"region": "ap-northeast-2", "backend": {"region": "ap-northeast-2"}, "network": EXISTING_VPC}
    network = option_settings(changes).network
    assert network.existing_vpc and not network.nat_gateway and not network.vpc_endpoints
    assert option_settings(changes).availability_zones == []


def test_created_vpc_keeps_its_nat_gateway_and_endpoints_by_default() -> None:
    network = option_settings({}).network
    assert not network.existing_vpc and network.nat_gateway and network.vpc_endpoints


@pytest.mark.parametrize("given", [("vpc_id",), ("public_subnet_ids", "private_subnet_ids"), ("private_subnet_ids",)])
def test_existing_vpc_keys_are_all_or_nothing(tmp_path: Path, given: tuple[str, ...]) -> None:
    lines = option_problems(tmp_path, {"network": {key: EXISTING_VPC[key] for key in given}})
    missing = [key for key in EXISTING_VPC if key not in given]
    for key in missing:
        assert any(f": network.{key}: required with {' and '.join(given)}" in line for line in lines), lines
    assert len(lines) == len(missing), lines


@pytest.mark.parametrize("vpc_id", ["vpc-123", "vpc-0A1B2C3D", "vpc-0a1b2c3d4e5f6071", "subnet-0a1b2c3d", "0a1b2c3d"])
def test_malformed_vpc_id_is_refused(tmp_path: Path, vpc_id: str) -> None:
    refused(tmp_path, {"network": {**EXISTING_VPC, "vpc_id": vpc_id}}, "network.vpc_id", "is not a VPC id")


@pytest.mark.parametrize("tier", ["public_subnet_ids", "private_subnet_ids"])
@pytest.mark.parametrize(
    ("subnets", "text"),
    [(["subnet-0aa00000000000009", "sg-0aa00000000000001"], "not subnet ids"),
     (["subnet-0aa00000000000009", "subnet-XYZ"], "not subnet ids"),
     (["subnet-0aa00000000000009"], "at least 2 are needed"),
     (["subnet-0aa00000000000009", "subnet-0aa00000000000009"], "more than once")],
)  # fmt: skip
def test_malformed_or_too_few_subnets_are_refused(tmp_path: Path, tier: str, subnets: list[str], text: str) -> None:
    refused(tmp_path, {"network": {**EXISTING_VPC, tier: subnets}}, f"network.{tier}", text)


def test_a_subnet_in_both_tiers_is_refused(tmp_path: Path) -> None:
    private = [PUBLIC_SUBNET_IDS[0], "subnet-0bb00000000000009"]
    refused(tmp_path, {"network": {**EXISTING_VPC, "private_subnet_ids": private}}, "network.private_subnet_ids",
            "is also in public_subnet_ids")  # fmt: skip


@pytest.mark.parametrize(
    ("key", "value"),
    [("vpc_cidr", "10.5.0.0/16"), ("availability_zones", ["us-east-1a", "us-east-1b"]), ("single_nat_gateway", True)],
)
def test_keys_of_a_created_vpc_are_refused_with_an_existing_one(tmp_path: Path, key: str, value: object) -> None:
    refused(tmp_path, {"network": {**EXISTING_VPC, key: value}}, f"network.{key}", "describes a VPC this stack creates")


def test_a_created_vpc_cannot_go_without_its_nat_gateway(tmp_path: Path) -> None:
    refused(tmp_path, {"network": {"create_nat_gateway": False}}, "network.create_nat_gateway",
            "always gets its NAT gateway")  # fmt: skip


def test_existing_vpc_with_a_nat_gateway_and_endpoints_loads() -> None:
    network = option_settings({"network": {**EXISTING_VPC, "create_nat_gateway": True,
                                           "create_vpc_endpoints": True}}).network  # fmt: skip
    assert network.nat_gateway and network.vpc_endpoints


# -- ECS Exec ---------------------------------------------------------------------
def test_exec_is_off_by_default() -> None:
    assert option_settings({}).gateway.enable_execute_command is False


def test_exec_must_be_a_boolean(tmp_path: Path) -> None:
    refused(tmp_path, {"gateway": {"enable_execute_command": "yes"}}, "gateway.enable_execute_command",
            "valid boolean")  # fmt: skip


# -- deployment strategy ----------------------------------------------------------
HOOK = {"function_arn": "arn:aws:lambda:us-east-1:123456789012:function:smoke", "stages": ["POST_SCALE_UP"]}


def deployment(**keys: object) -> dict[str, Any]:
    return {"gateway": {"deployment": keys}}


def test_rolling_is_the_default_strategy() -> None:
    plan = option_settings({}).gateway.deployment.plan
    assert (plan.strategy, plan.canary, plan.linear, plan.lifecycle_hooks) == ("rolling", None, None, {})


@pytest.mark.parametrize(
    ("keys", "expected"),
    [({"strategy": "canary"}, (10, 5.0, 10, None)),
     ({"strategy": "canary", "canary_percent": 12.5, "canary_bake_time_minutes": 0, "bake_time_minutes": 30},
      (30, 12.5, 0, None)),
     ({"strategy": "linear"}, (10, None, None, (10.0, 6))),
     ({"strategy": "linear", "linear_step_percent": 25, "linear_step_bake_time_minutes": 3},
      (10, None, None, (25, 3)))],
)  # fmt: skip
def test_strategy_defaults_resolve_to_ecs_defaults(keys: dict[str, Any], expected: tuple[object, ...]) -> None:
    plan = option_settings(deployment(**keys)).gateway.deployment.plan
    canary = (plan.canary.percent, plan.canary.bake_time_minutes) if plan.canary else (None, None)
    linear = (plan.linear.percent, plan.linear.bake_time_minutes) if plan.linear else None
    assert (plan.bake_time_minutes, *canary, linear) == expected


@pytest.mark.parametrize(
    ("strategy", "key", "value"),
    [("rolling", "bake_time_minutes", 5), ("rolling", "canary_percent", 10),
     ("rolling", "lifecycle_hooks", {"a": HOOK}),
     ("blue_green", "canary_percent", 10), ("blue_green", "linear_step_percent", 10),
     ("canary", "linear_step_percent", 10), ("canary", "linear_step_bake_time_minutes", 5),
     ("linear", "canary_percent", 10), ("linear", "canary_bake_time_minutes", 5)],
)  # fmt: skip
def test_keys_of_another_strategy_are_refused(tmp_path: Path, strategy: str, key: str, value: object) -> None:
    refused(tmp_path, deployment(strategy=strategy, **{key: value}), f"gateway.deployment.{key}",
            f"but strategy is '{strategy}'; one strategy is configured at a time")  # fmt: skip


def test_canary_and_linear_keys_together_are_refused_even_without_a_strategy(tmp_path: Path) -> None:
    # The guide's module takes several strategies at once; here each stray key is named.
    lines = option_problems(tmp_path, deployment(canary_percent=10, linear_step_percent=10))
    assert sum("belongs to strategy" in line for line in lines) == 2, lines


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [("strategy", "all_at_once", "'rolling', 'blue_green', 'canary' or 'linear'"),
     ("bake_time_minutes", 1441, "less than or equal to 1440"), ("bake_time_minutes", -1, "greater than or equal to 0"),
     ("canary_percent", 0.05, "greater than or equal to 0.1"), ("canary_percent", 100.5, "less than or equal to 100"),
     ("canary_percent", 10.25, "not a multiple of 0.1"),
     ("canary_bake_time_minutes", 1441, "less than or equal to 1440"),
     ("linear_step_percent", 2.9, "greater than or equal to 3"),
     ("linear_step_percent", 33.33, "not a multiple of 0.1"),
     ("linear_step_bake_time_minutes", -5, "greater than or equal to 0")],
)  # fmt: skip
def test_strategy_values_out_of_range_are_refused(tmp_path: Path, key: str, value: object, text: str) -> None:
    strategy = "canary" if key.startswith("canary") else "linear"
    keys = {key: value} if key == "strategy" else {"strategy": strategy, key: value}
    refused(tmp_path, deployment(**keys), f"gateway.deployment.{key}", text)


@pytest.mark.parametrize(
    ("strategy", "constraint"),
    [("blue_green", "~> 6.0"), ("blue_green", ">= 5.100"), ("blue_green", "~> 5.100"),
     ("canary", "~> 6.4"), ("canary", ">= 6.20, < 7.0"), ("linear", "6.20.1")],
)  # fmt: skip
def test_strategy_with_a_provider_constraint_admitting_older_versions_is_refused(
    tmp_path: Path, strategy: str, constraint: str
) -> None:
    minimum = "6.4" if strategy == "blue_green" else "6.21"
    refused(tmp_path, {"aws_provider_version": constraint, **deployment(strategy=strategy)}, "aws_provider_version",
            f"older than {minimum}, which lack the ECS {strategy} deployment strategy")  # fmt: skip


@pytest.mark.parametrize(
    ("strategy", "constraint"),
    [("blue_green", "~> 6.4"), ("blue_green", ">= 6.5, < 7.0"), ("canary", ">= 6.21, < 7.0")],
)
def test_strategy_with_a_new_enough_provider_loads(strategy: str, constraint: str) -> None:
    option_settings({"aws_provider_version": constraint, **deployment(strategy=strategy)})


@pytest.mark.parametrize("strategy", ["blue_green", "canary", "linear"])
def test_strategies_that_shift_traffic_are_refused_with_jwt_auth(tmp_path: Path, strategy: str) -> None:
    changes = {"edge": {"certificate_arn": CERTIFICATE_ARN, "enable_jwt_auth": True}, **deployment(strategy=strategy)}
    refused(tmp_path, changes, "gateway.deployment.strategy", "ECS shifts traffic only on rules that just forward")


def test_strategies_that_shift_traffic_need_an_application_load_balancer(tmp_path: Path) -> None:
    changes = {"edge": {"load_balancer_type": "network"}, **deployment(strategy="canary")}
    refused(tmp_path, changes, "gateway.deployment.strategy",
            "needs a load balancer that supports it: ECS shifts canary traffic on an Application Load Balancer's "
            "listener rules, and this environment's load balancer is a network one")  # fmt: skip


def test_rolling_works_with_any_load_balancer_and_with_jwt_auth() -> None:
    option_settings({"edge": {"certificate_arn": CERTIFICATE_ARN, "enable_jwt_auth": True}})


@pytest.mark.parametrize("strategy", ["blue_green", "canary", "linear"])
def test_request_target_is_refused_where_the_target_group_alternates(tmp_path: Path, strategy: str) -> None:
    refused(tmp_path, {"gateway": {"requests_per_target": 500, "deployment": {"strategy": strategy}}},
            "gateway.requests_per_target", "moves production traffic between two target groups")  # fmt: skip


def test_strategies_that_shift_traffic_add_no_request_policy_by_default() -> None:
    plan = option_settings(deployment(strategy="blue_green")).autoscaling
    assert plan is not None and plan.requests_per_target is None and plan.cpu_target_percent == 70


def test_lifecycle_hooks_resolve_sorted_by_name() -> None:
    hooks = {"zeta": HOOK, "alpha": {**HOOK, "stages": ["PRE_SCALE_UP", "POST_PRODUCTION_TRAFFIC_SHIFT"]}}
    plan = option_settings(deployment(strategy="blue_green", lifecycle_hooks=hooks)).gateway.deployment.plan
    assert list(plan.lifecycle_hooks) == ["alpha", "zeta"]
    assert plan.lifecycle_hooks["alpha"] == (HOOK["function_arn"], ("PRE_SCALE_UP", "POST_PRODUCTION_TRAFFIC_SHIFT"))


@pytest.mark.parametrize(
    ("hook", "field", "text"),
    [({**HOOK, "function_arn": "arn:aws:lambda:us-east-1:123456789012:layer:x"}, "function_arn",
      "not a Lambda function"),
     ({**HOOK, "stages": []}, "stages", "at least 1 item"),
     ({**HOOK, "stages": ["POST_SCALE_UP", "POST_SCALE_UP"]}, "stages", "lists a stage twice"),
     ({**HOOK, "stages": ["AFTER_DEPLOY"]}, "stages[0]", "'RECONCILE_SERVICE'"),
     ({"stages": ["POST_SCALE_UP"]}, "function_arn", "required key is missing"),
     ({**HOOK, "function_arn": "arn:aws:lambda:eu-west-1:123456789012:function:smoke"}, "function_arn",
      "the function is in eu-west-1 but the service is in us-east-1")],
)  # fmt: skip
def test_bad_lifecycle_hooks_are_refused(tmp_path: Path, hook: dict[str, Any], field: str, text: str) -> None:
    refused(tmp_path, deployment(strategy="blue_green", lifecycle_hooks={"smoke": hook}),
            f"gateway.deployment.lifecycle_hooks.smoke.{field}", text)  # fmt: skip


def test_hook_names_must_be_lowercase_words(tmp_path: Path) -> None:
    refused(tmp_path, deployment(strategy="blue_green", lifecycle_hooks={"Smoke Test": HOOK}),
            "gateway.deployment.lifecycle_hooks", "1-32 lowercase letters")  # fmt: skip


@pytest.mark.parametrize("strategy", ["canary", "linear"])
def test_test_traffic_stages_are_refused_where_there_is_no_test_traffic(tmp_path: Path, strategy: str) -> None:
    hook = {**HOOK, "stages": ["POST_SCALE_UP", "POST_TEST_TRAFFIC_SHIFT"]}
    refused(tmp_path, deployment(strategy=strategy, lifecycle_hooks={"smoke": hook}),
            "gateway.deployment.lifecycle_hooks.smoke.stages", "only blue_green routes test traffic")  # fmt: skip


def test_a_misspelled_hook_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    refused(tmp_path, deployment(strategy="blue_green", lifecycle_hooks={"smoke": {**HOOK, "stage": ["PRE_SCALE_UP"]}}),
            "gateway.deployment.lifecycle_hooks.smoke.stage", "did you mean 'stages'?")  # fmt: skip


# -- main.py: every invalid combination in one run, nothing written ----------------
INVALID_FILES: dict[str, tuple[dict[str, Any], str]] = {
    "two-strategies": (deployment(strategy="canary", linear_step_percent=10), "gateway.deployment.linear_step_percent"),
    "old-provider": ({"aws_provider_version": "~> 5.100", **deployment(strategy="blue_green")}, "aws_provider_version"),
    "jwt-blue-green": ({"edge": {"certificate_arn": CERTIFICATE_ARN, "enable_jwt_auth": True},
                        **deployment(strategy="blue_green")}, "gateway.deployment.strategy"),
    "canary-range": (deployment(strategy="canary", canary_percent=0), "gateway.deployment.canary_percent"),
    "scaling-bounds": ({"gateway": {"min_capacity": 3, "max_capacity": 20, "desired_count": 2}},
                       "gateway.desired_count"),
    "scaling-off": ({"gateway": {"enable_autoscaling": False, "memory_target_percent": 80}},
                    "gateway.memory_target_percent"),
    "requests-bg": ({"gateway": {"requests_per_target": 500, "deployment": {"strategy": "linear"}}},
                    "gateway.requests_per_target"),
    "vpc-partial": ({"network": {"vpc_id": EXISTING_VPC["vpc_id"]}}, "network.private_subnet_ids"),
    "vpc-bad-id": ({"network": {**EXISTING_VPC, "vpc_id": "vpc-12"}}, "network.vpc_id"),
    "vpc-one-subnet": ({"network": {**EXISTING_VPC, "public_subnet_ids": PUBLIC_SUBNET_IDS[:1]}},
                       "network.public_subnet_ids"),
    "exec-not-bool": ({"gateway": {"enable_execute_command": 1}}, "gateway.enable_execute_command"),
}  # fmt: skip


@pytest.mark.cli
def test_main_reports_every_invalid_option_file_and_writes_nothing(tmp_path: Path) -> None:
    env_dir = tmp_path / "envs"
    for name, (changes, _) in INVALID_FILES.items():
        option_problems(env_dir, {**changes, "backend": {"key": f"ai-gateway/{name}.tfstate"}}, name=name)
    outdir = tmp_path / "cdktf.out"
    outdir.mkdir()
    (outdir / "previous-synth.json").write_text("{}")
    result = processes.run(
        [sys.executable, ROOT / "main.py"],
        cwd=tmp_path, env={**os.environ, "AIGW_ENV_DIR": str(env_dir), "CDKTF_OUTDIR": str(outdir)}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    for name, (_, field) in INVALID_FILES.items():
        assert f"{name}.toml: {field}: " in result.stderr, (name, result.stderr)
    assert sorted(p.name for p in outdir.iterdir()) == ["previous-synth.json"]
