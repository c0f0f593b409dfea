"""The service options as synthesized: autoscaling (on or off; CPU, memory
and requests targets; cooldowns). Each environment is the small valid base
plus the option under test (tests/option_stacks.py), synthesized once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.option_stacks import option_environment
from tests.template import Resource, Template

OPTIONS: dict[str, dict[str, Any]] = {
    "base": {},
    "memory": {"gateway": {"memory_target_percent": 80}},
    "cooldowns": {
        "gateway": {"scale_in_cooldown_seconds": 300, "scale_out_cooldown_seconds": 30, "requests_per_target": 250}
    },
    "fixed": {"gateway": {"enable_autoscaling": False, "desired_count": 4}},
}


@pytest.fixture(scope="module")
def options(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    from modules.stack import synthesize

    environments = [option_environment(name, changes) for name, changes in OPTIONS.items()]
    outdir: Path = tmp_path_factory.mktemp("options.out")
    synthesize(environments, outdir)
    return {e.name: Template.load(outdir / "stacks" / e.stack_name / "cdk.tf.json") for e in environments}


def policies(stack: Template) -> dict[str, dict[str, Any]]:
    """Target-tracking configurations by predefined metric."""
    found = {}
    for policy in stack.resources("aws_appautoscaling_policy"):
        configuration = policy["target_tracking_scaling_policy_configuration"]
        found[configuration["predefined_metric_specification"]["predefined_metric_type"]] = configuration
    return found


def service(stack: Template) -> Resource:
    return stack.resource("aws_ecs_service")


# -- autoscaling ------------------------------------------------------------------
def test_default_scaling_tracks_cpu_70_and_1000_requests_with_cooldowns_120_and_60(
    options: dict[str, Template],
) -> None:
    found = policies(options["base"])
    assert sorted(found) == ["ALBRequestCountPerTarget", "ECSServiceAverageCPUUtilization"]
    assert found["ECSServiceAverageCPUUtilization"]["target_value"] == 70
    assert found["ALBRequestCountPerTarget"]["target_value"] == 1000
    assert {(c["scale_in_cooldown"], c["scale_out_cooldown"]) for c in found.values()} == {(120, 60)}


def test_memory_target_adds_a_memory_policy(options: dict[str, Template]) -> None:
    memory = policies(options["memory"])["ECSServiceAverageMemoryUtilization"]
    assert memory["target_value"] == 80
    assert "resource_label" not in memory["predefined_metric_specification"]
    policy = options["memory"].resource("aws_appautoscaling_policy", {"name": "aigw-memory-memory"})
    target = options["memory"].resource("aws_appautoscaling_target")
    assert policy["resource_id"] == target.ref("resource_id")


def test_request_policy_counts_requests_of_the_target_group_on_the_load_balancer(
    options: dict[str, Template],
) -> None:
    stack = options["cooldowns"]
    requests = policies(stack)["ALBRequestCountPerTarget"]
    assert requests["target_value"] == 250
    balancer, group = stack.resource("aws_lb"), stack.resource("aws_lb_target_group")
    assert requests["predefined_metric_specification"]["resource_label"] == (
        f"{balancer.ref('arn_suffix')}/{group.ref('arn_suffix')}"
    )


def test_cooldowns_apply_to_every_policy(options: dict[str, Template]) -> None:
    found = policies(options["cooldowns"])
    assert {(c["scale_in_cooldown"], c["scale_out_cooldown"]) for c in found.values()} == {(300, 30)}


def test_autoscaling_on_leaves_the_task_count_to_the_scaler(options: dict[str, Template]) -> None:
    assert service(options["base"])["lifecycle"] == {"ignore_changes": ["desired_count"]}
    target = options["base"].resource("aws_appautoscaling_target")
    assert (target["min_capacity"], target["max_capacity"]) == (1, 3)


def test_autoscaling_off_runs_desired_count_tasks_without_a_scaler(options: dict[str, Template]) -> None:
    stack = options["fixed"]
    assert stack.count("aws_appautoscaling_target") == 0 and stack.count("aws_appautoscaling_policy") == 0
    assert service(stack)["desired_count"] == 4
    # Terraform owns the count now: a change to desired_count must be applied, not ignored.
    assert "lifecycle" not in service(stack).props


def test_running_tasks_alarm_uses_the_fixed_count_when_autoscaling_is_off(options: dict[str, Template]) -> None:
    for name, minimum in (("base", 1), ("fixed", 4)):
        alarm = options[name].resource(
            "aws_cloudwatch_metric_alarm", {"alarm_name": f"aigw-{name}-running-tasks-below-minimum"}
        )
        assert alarm["threshold"] == minimum
