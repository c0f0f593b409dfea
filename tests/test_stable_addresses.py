"""Stateful resources keep their Terraform addresses (tests/stable_addresses.py)."""

from __future__ import annotations

import pytest

from security.stackdoc import StackDoc
from tests.stable_addresses import pinned, stateful_addresses

PINNED = pinned()


@pytest.mark.parametrize("environment", sorted(PINNED))
def test_stateful_resources_keep_their_addresses(stacks: dict[str, StackDoc], environment: str) -> None:
    current = set(stateful_addresses(stacks[environment].document))
    expected = set(PINNED[environment])
    gone, new = sorted(expected - current), sorted(current - expected)
    assert not gone and not new, (
        f"{environment}: stateful resource addresses changed; Terraform would destroy and recreate them.\n"
        f"  no longer synthesized: {gone}\n  new: {new}\n"
        "Keep the construct ids, or move each resource (cdktf `move_to` / a `moved` block) and then run "
        "`python -m tests.stable_addresses --write`."
    )


def test_every_shipped_environment_and_example_is_pinned(stacks: dict[str, StackDoc]) -> None:
    assert set(PINNED) == set(stacks)
