"""ECS refuses task definitions over 64 KiB: the data plane travels in the
container definitions (configuration and Lua), so it must stay well below."""

from __future__ import annotations

import json

import pytest

from security.stackdoc import StackDoc

# RegisterTaskDefinition's limit is 64 KiB for the whole request; leave room
# for the other fields.
CONTAINER_DEFINITIONS_BUDGET = 56 * 1024


@pytest.mark.parametrize("environment", ["dev", "prod", "local"])
def test_container_definitions_fit_the_ecs_limit(stacks: dict[str, StackDoc], environment: str) -> None:
    task = stacks[environment].resource("aws_ecs_task_definition")
    size = len(json.dumps(json.loads(task.body["container_definitions"].replace("$${", "${"))).encode())
    assert size < CONTAINER_DEFINITIONS_BUDGET, f"{environment}: {size} bytes of container definitions"
