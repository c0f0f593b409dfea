"""`terraform validate` on the synthesized JSON, with the AWS provider from a
local mirror (the ``provider_mirror`` fixture: ``TF_PLUGIN_DIR``, else the
machine's mirror, else one filled from the registry).

The mirror on this machine image holds hashicorp/aws 5.100.0 only, while the
stacks target 6.x. Each stack is validated against the mirror's version when
it uses nothing newer: stacks with ALB JWT validation (a 6.22 feature, on
the HTTPS listener or, with host routing, on the host rule) are validated as
the same stack with JWT off, and the JWT action itself is covered by the
typed 6.25 bindings and JSON assertions (test_auth.py, test_edge_options.py).
Everything else the edge builds (NLB security groups, TLS listeners, listener
rules, the access-log bucket's resources) exists in 5.100 and is validated.

Likewise ECS-native blue/green (6.4) and canary/linear (6.21) deployments:
5.100 has neither the service's `deployment_configuration` block nor
`load_balancer.advanced_configuration`, so those two blocks are taken out of
such a stack before validating it against an older mirror (its alternate
target group, listener rules and roles are validated); the blocks themselves
are built through the typed 6.25 bindings and checked as JSON
(tests/test_service_options.py).

Every environment and every example is validated: the list is derived from
the files, so a new example is validated without touching this file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from aigw.environments import Environment
from tests import processes
from tests.conftest import ProviderMirror, all_environments

pytestmark = pytest.mark.terraform
# Every shipped environment and example, by the name of its validated variant.
VALIDATED = ["dev", "prod-nojwt", "local", "minimal", "staging", "shared", "qa", "portkey-prod", "canary"]
# The provider release that brought aws_ecs_service's deployment_configuration and
# load_balancer.advanced_configuration (blue/green; canary and linear came in 6.21).
ECS_NATIVE_DEPLOYMENTS_PROVIDER = (6, 4, 0)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3])


def without_ecs_native_deployment(document: dict[str, Any]) -> dict[str, Any]:
    """The stack without the two service blocks a pre-6.4 provider does not know."""
    for service in document["resource"].get("aws_ecs_service", {}).values():
        service.pop("deployment_configuration", None)
        for load_balancer in service.get("load_balancer", []):
            load_balancer.pop("advanced_configuration", None)
    return document


def without_jwt(environment: Environment) -> Environment:
    """The environment without JWT auth (provider 5.100 has no ALB JWT validation), and so without the
    routes, which fill in the organisation's keys only for authenticated clients."""
    edge = environment.settings.edge.model_copy(update={"enable_jwt_auth": False})
    settings = environment.settings.model_copy(update={"edge": edge, "routing": {}})
    return Environment(f"{environment.name}-nojwt", environment.path, settings)


@pytest.fixture(scope="module")
def validatable(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthesized JSON of every environment the mirror's provider can check."""
    from modules.stack import synthesize

    outdir = tmp_path_factory.mktemp("validate.out")
    environments = [without_jwt(e) if e.settings.edge.enable_jwt_auth else e for e in all_environments()]
    synthesize(environments, outdir)
    return {e.name: outdir / "stacks" / e.stack_name / "cdk.tf.json" for e in environments}


def validated_name(environment: Environment) -> str:
    return f"{environment.name}-nojwt" if environment.settings.edge.enable_jwt_auth else environment.name


# Every environment and example, by the name its validatable variant has.
VALIDATED: list[str] = [validated_name(e) for e in all_environments()]


def test_every_environment_has_a_validatable_variant(validatable: dict[str, Path]) -> None:
    assert {"dev", "prod-nojwt", "local", "minimal", "staging"} <= set(VALIDATED)
    assert set(VALIDATED) == set(validatable)


@pytest.mark.parametrize("name", VALIDATED)
def test_terraform_validate_accepts_the_stack(
    validatable: dict[str, Path], tmp_path: Path, name: str, provider_mirror: ProviderMirror
) -> None:
    document = json.loads(validatable[name].read_text())
    if version_tuple(provider_mirror.version) < ECS_NATIVE_DEPLOYMENTS_PROVIDER:
        document = without_ecs_native_deployment(document)
    # Same stack, pinned to the provider the mirror has.
    document["terraform"]["required_providers"]["aws"]["version"] = provider_mirror.version
    (tmp_path / "main.tf.json").write_text(json.dumps(document))
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    plugin_dir = provider_mirror.directory
    init = processes.run(
        ["terraform", "init", "-backend=false", "-input=false", "-no-color", f"-plugin-dir={plugin_dir}"],
        cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr
    validate = processes.run(["terraform", "validate", "-json", "-no-color"], cwd=tmp_path, env=env, timeout=300)
    result = json.loads(validate.stdout)
    errors = [d for d in result["diagnostics"] if d["severity"] == "error"]
    assert result["valid"] is True and not errors, json.dumps(errors, indent=1)[:4000]
