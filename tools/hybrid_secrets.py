"""Create the secrets of an environment's Portkey hybrid mode, outside Terraform:
``python -m tools.hybrid_secrets <env> [--registry] [--client-org]``
(``make hybrid-secrets ENV=<env> [ONLY=registry|client-org]``).

A command and not a stack: a value that Terraform writes is kept in its state
(and a value in the code, in the synthesized JSON); these values reach only
Secrets Manager. Idempotent; safe to run again. AWS credentials come from the
shell; the region (and ``[emulator] endpoint``, when set) from the
environment file. Creates:

- a customer-managed KMS key (rotation on) with alias
  ``alias/aigw-<env>-hybrid-secrets``;
- ``aigw-<env>/hybrid/registry-credentials`` (``--registry``): the licensed
  image's registry credentials as ECS ``repositoryCredentials`` reads them,
  ``{"username": …, "password": …}``, from ``AIGW_REGISTRY_USERNAME`` and
  ``AIGW_REGISTRY_PASSWORD``;
- ``aigw-<env>/hybrid/client-org`` (``--client-org``): ``{"PORTKEY_CLIENT_AUTH":
  …, "ORGANISATIONS_TO_SYNC": …}`` from the variables of those names, each
  key injected into the gateway as ``valueFrom = "<arn>:<KEY>::"``.

Both secrets are encrypted with the key. Without either option, both. A value
whose variable is unset is asked for without echo when standard input is a
terminal; otherwise, or when a value is empty, every such problem is named,
nothing is created, exit 2. A secret that exists gets a new version only when
its value differs ("unchanged" otherwise). Standard output has only the ARNs,
as TOML for the environment file; progress goes to standard error. No value is
ever printed, not even in an AWS error message (exit 1).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from aigw.environments import Environment, environment_named_or_report
from tools.state_bootstrap import ensure_key

REDACTED = "<redacted>"


@dataclass(frozen=True)
class Value:
    """One key of a secret's JSON document and the environment variable that gives it."""

    key: str
    variable: str
    what: str


@dataclass(frozen=True)
class SecretSpec:
    option: str
    suffix: str
    description: str
    values: tuple[Value, ...]


REGISTRY = SecretSpec(
    option="registry",
    suffix="registry-credentials",
    description="Portkey hybrid mode: registry credentials of the licensed gateway image (ECS repositoryCredentials)",
    values=(
        Value("username", "AIGW_REGISTRY_USERNAME", "registry user name of Portkey's licensed image"),
        Value("password", "AIGW_REGISTRY_PASSWORD", "registry password or token of Portkey's licensed image"),
    ),
)
# The JSON keys are the gateway's variable names: ECS injects each with valueFrom "<arn>:<KEY>::".
CLIENT_ORG = SecretSpec(
    option="client-org",
    suffix="client-org",
    description="Portkey hybrid mode: the gateway's client auth and the organisations it syncs",
    values=(
        Value("PORTKEY_CLIENT_AUTH", "PORTKEY_CLIENT_AUTH", "Portkey client auth of this gateway"),
        Value("ORGANISATIONS_TO_SYNC", "ORGANISATIONS_TO_SYNC", "Portkey organisation id(s) to sync"),
    ),
)
SPECS = (REGISTRY, CLIENT_ORG)


def prefix(environment: str) -> str:
    """The environment's name prefix: ``modules.context.StackContext.prefix`` (a test holds them
    equal), not imported, as that would load the provider bindings into this command."""
    return f"aigw-{environment}"


def key_alias(environment: str) -> str:
    return f"alias/{prefix(environment)}-hybrid-secrets"


def secret_name(environment: str, spec: SecretSpec) -> str:
    return f"{prefix(environment)}/hybrid/{spec.suffix}"


@dataclass(frozen=True)
class HybridArns:
    key: str
    registry_credentials: str | None = None
    client_org: str | None = None


def settings_snippet(arns: HybridArns) -> str:
    """The environment file's hybrid settings for these ARNs (TOML; ARNs only, never a value)."""
    lines = ["[hybrid]", "enabled = true"]
    if arns.registry_credentials:
        lines.append(f"registry_credentials_secret_arn = {json.dumps(arns.registry_credentials)}")
    lines.append(f"secrets_kms_key_arn = {json.dumps(arns.key)}")
    if arns.client_org:
        lines.append("[hybrid.gateway.secrets]")
        lines += [f"{value.key} = {json.dumps(arns.client_org)}" for value in CLIENT_ORG.values]
    return "\n".join(lines)


def interactive() -> bool:
    """Whether values may be asked for: standard input is a terminal."""
    return sys.stdin.isatty()


def read_values(
    specs: Sequence[SecretSpec],
    environ: Mapping[str, str],
    *,
    ask: Callable[[str], str] | None,
) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Each secret's JSON document by option, and every problem (one line each, naming the
    variable, never holding a value). ``ask`` prompts without echo; None: no terminal."""
    documents: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for spec in specs:
        document: dict[str, str] = {}
        for value in spec.values:
            given = environ.get(value.variable)
            if given is None:
                if ask is None:
                    problems.append(
                        f"{value.variable}: not set, and standard input is not a terminal to ask for it "
                        f"(the {value.what}; set {value.variable})"
                    )
                    continue
                given = ask(f"{value.variable} ({value.what}, not echoed): ")
            if not given.strip():
                problems.append(f"{value.variable}: empty; the {value.what} is needed")
                continue
            document[value.key] = given
        documents[spec.option] = document
    return documents, problems


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret value in it (as given, JSON-escaped or repr-escaped) replaced."""
    forms = {form for secret in secrets for form in (secret, json.dumps(secret)[1:-1], repr(secret)[1:-1])}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


class HybridSecretsError(RuntimeError):
    pass


def ensure_secret(
    secretsmanager: Any, name: str, key_arn: str, description: str, document: dict[str, str]
) -> tuple[str, str]:
    """The secret's ARN and what was done ("created", "new version", "unchanged",
    "new version, encrypted with the hybrid key")."""
    body = json.dumps(document)
    try:
        current = secretsmanager.describe_secret(SecretId=name)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        created = secretsmanager.create_secret(Name=name, Description=description, KmsKeyId=key_arn, SecretString=body)
        return str(created["ARN"]), "created"
    arn = str(current["ARN"])
    if current.get("DeletedDate"):
        raise HybridSecretsError(
            f"{name} is scheduled for deletion; restore it (aws secretsmanager restore-secret --secret-id {name}) "
            "and run this again"
        )
    if current.get("KmsKeyId") not in (key_arn, key_arn.rsplit("/", 1)[-1]):
        secretsmanager.update_secret(SecretId=arn, KmsKeyId=key_arn, SecretString=body)
        return arn, "new version, encrypted with the hybrid key"
    if _current_document(secretsmanager, arn) == document:
        return arn, "unchanged"
    secretsmanager.put_secret_value(SecretId=arn, SecretString=body)
    return arn, "new version"


def _current_document(secretsmanager: Any, arn: str) -> object:
    """The current version's JSON (None when it has no value or is not JSON); never printed."""
    try:
        current = secretsmanager.get_secret_value(SecretId=arn).get("SecretString")
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        return None
    try:
        return json.loads(current) if current else None
    except ValueError:
        return None


def create(environment: Environment, documents: dict[str, dict[str, str]]) -> HybridArns:
    """The key and the secrets of ``documents`` (by option); progress on standard error."""
    settings = environment.settings
    endpoint = settings.emulator.endpoint or None
    alias = key_alias(environment.name)
    kms = boto3.client("kms", region_name=settings.region, endpoint_url=endpoint)
    key_arn = ensure_key(kms, alias, f"{prefix(environment.name)}: Portkey hybrid mode secrets")
    print(f"KMS key {alias}: {key_arn}", file=sys.stderr)
    secretsmanager = boto3.client("secretsmanager", region_name=settings.region, endpoint_url=endpoint)
    arns: dict[str, str] = {}
    for spec in SPECS:
        if spec.option in documents:
            name = secret_name(environment.name, spec)
            document = documents[spec.option]
            arns[spec.option], done = ensure_secret(secretsmanager, name, key_arn, spec.description, document)
            print(f"{name}: {done}", file=sys.stderr)
    return HybridArns(
        key=key_arn, registry_credentials=arns.get(REGISTRY.option), client_org=arns.get(CLIENT_ORG.option)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("environment", help="environment name (file stem in the environments directory)")
    for spec in SPECS:
        parser.add_argument(f"--{spec.option}", action="store_true", help=f"only {secret_name('<env>', spec)}")
    args = parser.parse_args(argv)
    environment = environment_named_or_report(args.environment)
    if environment is None:
        return 2
    chosen = [spec for spec in SPECS if getattr(args, spec.option.replace("-", "_"))] or list(SPECS)
    documents, problems = read_values(chosen, os.environ, ask=getpass.getpass if interactive() else None)
    if problems:
        print("\n".join([*problems, "nothing was created"]), file=sys.stderr)
        return 2
    try:
        arns = create(environment, documents)
    except (ClientError, BotoCoreError, HybridSecretsError) as error:
        # An AWS error message may quote the request's parameters, the secret string among them.
        values = [value for document in documents.values() for value in document.values()]
        print(f"hybrid-secrets: {redact(str(error), values)}", file=sys.stderr)
        return 1
    print(f"paste into {environment.path} (ARNs only):", file=sys.stderr)
    print(settings_snippet(arns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
