"""The one view of a synthesized stack (security/stackdoc.py) that the rules
and the tests share: partial matching, exactly-one lookups, references."""

from __future__ import annotations

import re

import pytest

from security.stackdoc import StackDoc, matches

STACK = StackDoc(
    {
        "resource": {
            "aws_lb": {"alb": {"internal": False, "subnets": ["${aws_subnet.a.id}", "${aws_subnet.b.id}"]}},
            "aws_subnet": {"a": {"tags": {"Tier": "public", "Name": "a"}}, "b": {"tags": {"Tier": "public"}}},
        }
    },
    "test",
)


@pytest.mark.parametrize(
    ("expected", "result"),
    [({"tags": {"Tier": "public"}}, True), ({"tags": {"Tier": "private"}}, False), ({"missing": None}, False),
     ({"subnets": ["${aws_subnet.a.id}"]}, False), ({"subnets": ["${aws_subnet.a.id}", "${aws_subnet.b.id}"]}, True)],
    ids=["nested-subset", "nested-mismatch", "absent-key", "shorter-list", "same-list"],
)  # fmt: skip
def test_dicts_match_on_the_expected_keys_and_lists_element_by_element(expected: dict, result: bool) -> None:
    actual = {"tags": {"Tier": "public", "Name": "a"}, "subnets": ["${aws_subnet.a.id}", "${aws_subnet.b.id}"]}
    assert matches(actual, expected) is result


def test_resources_filter_by_partial_properties() -> None:
    assert [r.name for r in STACK.resources("aws_subnet", {"tags": {"Name": "a"}})] == ["a"]


def test_resource_is_the_only_match() -> None:
    assert STACK.resource("aws_subnet", {"tags": {"Name": "a"}}).name == "a"


@pytest.mark.parametrize(
    ("props", "found"), [({"tags": {"Tier": "public"}}, "['a', 'b']"), ({"tags": {"Tier": "private"}}, "[]")]
)
def test_resource_refuses_anything_but_exactly_one_match(props: dict, found: str) -> None:
    with pytest.raises(
        LookupError, match=rf"^test: expected exactly one aws_subnet matching .*, found \d+: {re.escape(found)}$"
    ):
        STACK.resource("aws_subnet", props)


def test_follow_returns_the_resource_a_reference_names() -> None:
    (first, _) = STACK.resource("aws_lb")["subnets"]
    assert STACK.follow(first).address == "aws_subnet.a"


@pytest.mark.parametrize("reference", ["${aws_subnet.c.id}", "subnet-123", None])
def test_follow_refuses_what_names_no_resource_of_the_stack(reference: object) -> None:
    assert STACK.resolve(reference) is None
    with pytest.raises(LookupError, match=r"^test: .* is not a reference to a resource of this stack$"):
        STACK.follow(reference)
