"""Validation of the service options (autoscaling, existing VPC, ECS Exec): every invalid combination
is refused as `<file>: <dotted.field>: <message>`, naming the field to change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aigw import settings as settings_module
from tests.option_stacks import EXISTING_VPC, PUBLIC_SUBNET_IDS, option_problems, option_settings


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
    # Only Application Load Balancers publish ALBRequestCountPerTarget; another kind must refuse the key.
    monkeypatch.setattr(settings_module, "load_balancer_type", lambda env: "network")
    refused(tmp_path, {"gateway": {"requests_per_target": 500}}, "gateway.requests_per_target",
            "needs an Application Load Balancer")  # fmt: skip


def test_without_request_counts_the_default_adds_no_request_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "load_balancer_type", lambda env: "network")
    plan = option_settings({}).autoscaling
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
