"""The Terraform addresses of the stateful resources of every shipped
environment and example, pinned in tests/stable_addresses.json.

A refactor that renames a construct changes its resource's address, and
Terraform then destroys the resource and creates a new one: a new load
balancer DNS name, a new Cognito pool (every client credential gone), a key
scheduled for deletion, lost logs and secrets. tests/test_stable_addresses.py
fails on any such change. Write the file anew only together with a move
(`resource.move_to(...)` in cdktf, or a `moved` block) for every address
that changed: ``python -m tests.stable_addresses --write``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

PIN_FILE = Path(__file__).resolve().with_name("stable_addresses.json")
STATEFUL_TYPES: tuple[str, ...] = (
    "aws_lb",
    "aws_lb_target_group",
    "aws_cognito_user_pool",
    "aws_cognito_user_pool_client",
    "aws_cognito_user_pool_domain",
    "aws_kms_key",
    "aws_ecr_repository",
    "aws_secretsmanager_secret",
    "aws_cloudwatch_log_group",
    "aws_s3_bucket",
    "aws_elasticache_serverless_cache",
    # Recreated, it gets a new id and takes every published version with it,
    # while tasks still running name the old ones (and fail closed).
    "aws_bedrock_guardrail",
)


def stateful_addresses(document: dict[str, Any]) -> list[str]:
    resources = document.get("resource", {})
    return sorted(f"{kind}.{name}" for kind in STATEFUL_TYPES for name in resources.get(kind, {}))


def pinned() -> dict[str, list[str]]:
    return dict(json.loads(PIN_FILE.read_text(encoding="utf-8")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite tests/stable_addresses.json")
    args = parser.parse_args()
    from aigw import fast_import

    fast_import.install()
    from modules.stack import synthesize
    from tests.conftest import all_environments

    environments = all_environments()
    with tempfile.TemporaryDirectory() as outdir:
        synthesize(environments, Path(outdir))
        current = {
            env.name: stateful_addresses(
                json.loads((Path(outdir) / "stacks" / env.stack_name / "cdk.tf.json").read_text())
            )
            for env in environments
        }
    text = json.dumps(current, indent=2, sort_keys=True) + "\n"
    if args.write:
        PIN_FILE.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
