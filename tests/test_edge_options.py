"""The load balancer options of the edge, on synthesized stacks: the scheme
(internet-facing or internal), with the CIDRs each admits by default.

Every stack here is built from settings written in this file (not from the
shipped environment files) and validated as an environment file would be,
so a variant cannot drift into something a user could not configure. One
behaviour per test, GIVEN a variant, WHEN synthesized, THEN a partial match."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aigw.environments import Environment
from aigw.settings import EnvironmentSettings
from tests.template import Template

REQUIRED: dict[str, Any] = {
    "region": "us-east-1",
    "backend": {"bucket": "tfstate-bucket", "key": "edge.tfstate", "dynamodb_table": "tfstate-lock",
                "region": "us-east-1"},
}  # fmt: skip
CLIENTS = ["203.0.113.0/24"]
VPC_CIDR = "10.0.0.0/16"

# name -> the tables that differ from REQUIRED (each table given whole).
VARIANTS: dict[str, dict[str, Any]] = {
    "public-alb": {"edge": {"allowed_cidrs": CLIENTS}},
    "internal-alb": {"edge": {"internal": True}},
    "internal-narrow": {"edge": {"internal": True, "allowed_cidrs": ["10.0.8.0/24"]}},
}


def settings(tables: dict[str, Any]) -> EnvironmentSettings:
    """Validate like a file: field rules, then the rules across fields."""
    validated = EnvironmentSettings.model_validate({**REQUIRED, **tables})
    problems = [f"{problem.field}: {problem.message}" for problem in validated.problems()]
    assert not problems, problems
    return validated


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    """Every variant, synthesized once in one app."""
    from modules.stack import synthesize

    environments = [Environment(name, Path(__file__), settings(tables)) for name, tables in VARIANTS.items()]
    outdir = tmp_path_factory.mktemp("edge-options.out")
    synthesize(environments, outdir)
    return {e.name: Template.load(outdir / "stacks" / e.stack_name / "cdk.tf.json") for e in environments}


def subnets(stack: Template, tier: str) -> list[str]:
    return sorted(s.ref("id") for s in stack.resources("aws_subnet", {"tags": {"Tier": tier}}))


def listener_cidrs(stack: Template) -> dict[int, list[str]]:
    """Port -> the CIDRs the load balancer's security group admits on it."""
    (group,) = stack.resource("aws_lb")["security_groups"]
    admitted: dict[int, list[str]] = {}
    for rule in stack.resources("aws_vpc_security_group_ingress_rule", {"security_group_id": group}):
        admitted.setdefault(rule["from_port"], []).append(rule["cidr_ipv4"])
    return {port: sorted(cidrs) for port, cidrs in admitted.items()}


# -- scheme -------------------------------------------------------------------
def test_internet_facing_load_balancer_sits_in_the_public_subnets(stacks: dict[str, Template]) -> None:
    stack = stacks["public-alb"]
    lb = stack.resource("aws_lb", {"internal": False})
    assert sorted(lb["subnets"]) == subnets(stack, "public")


def test_internal_load_balancer_sits_in_the_private_subnets(stacks: dict[str, Template]) -> None:
    stack = stacks["internal-alb"]
    lb = stack.resource("aws_lb", {"internal": True, "load_balancer_type": "application"})
    assert sorted(lb["subnets"]) == subnets(stack, "private")


def test_internal_load_balancer_admits_the_vpc_by_default(stacks: dict[str, Template]) -> None:
    assert listener_cidrs(stacks["internal-alb"]) == {80: [VPC_CIDR]}


def test_internal_load_balancer_admits_the_allowed_cidrs_when_set(stacks: dict[str, Template]) -> None:
    assert listener_cidrs(stacks["internal-narrow"]) == {80: ["10.0.8.0/24"]}


def test_internal_load_balancer_group_says_it_is_internal(stacks: dict[str, Template]) -> None:
    (group,) = stacks["internal-alb"].resource("aws_lb")["security_groups"]
    assert stacks["internal-alb"].follow(group)["description"].startswith("Internal load balancer:")
