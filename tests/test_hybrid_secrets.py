"""`make hybrid-secrets ENV=<env>` (tools/hybrid_secrets.py): the hybrid mode's
secrets under their own rotating KMS key, values from the shell or a prompt
without echo, ARNs (only) on standard output, idempotent. moto's in-process AWS."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.client
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from aigw.settings import HybridSettings
from tests import processes
from tests.conftest import ROOT
from tools import hybrid_secrets

REGION = "us-east-1"  # environments/prod.toml
REGISTRY_NAME = "aigw-prod/hybrid/registry-credentials"
CLIENT_ORG_NAME = "aigw-prod/hybrid/client-org"
ALIAS = "alias/aigw-prod-hybrid-secrets"
VALUES = {
    "AIGW_REGISTRY_USERNAME": "licensee-7f3a",
    "AIGW_REGISTRY_PASSWORD": 'pw-"quoted"-' + "r" * 24,
    "PORTKEY_CLIENT_AUTH": "client-auth-" + "c" * 24,
    "ORGANISATIONS_TO_SYNC": "org-0e1d2c3b",
}


def leaked(text: str) -> list[str]:
    """The variables whose value (as given or JSON-escaped) appears in ``text``."""
    return [name for name, value in VALUES.items() if value in text or json.dumps(value)[1:-1] in text]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in VALUES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(hybrid_secrets, "interactive", lambda: False)
    with mock_aws():
        yield


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def secret_json(name: str, stage: str = "AWSCURRENT") -> Any:
    return json.loads(client("secretsmanager").get_secret_value(SecretId=name, VersionStage=stage)["SecretString"])


def versions(name: str) -> int:
    return len(client("secretsmanager").list_secret_version_ids(SecretId=name)["Versions"])


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = hybrid_secrets.main(["prod", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_creates_a_rotating_key_and_both_secrets_encrypted_with_it(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys)
    assert code == 0, err
    kms = client("kms")
    key = kms.describe_key(KeyId=ALIAS)["KeyMetadata"]
    assert key["KeyManager"] == "CUSTOMER" and key["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    for name in (REGISTRY_NAME, CLIENT_ORG_NAME):
        assert client("secretsmanager").describe_secret(SecretId=name)["KmsKeyId"] == key["Arn"]
    assert secret_json(REGISTRY_NAME) == {
        "username": VALUES["AIGW_REGISTRY_USERNAME"],
        "password": VALUES["AIGW_REGISTRY_PASSWORD"],
    }
    assert secret_json(CLIENT_ORG_NAME) == {
        "PORTKEY_CLIENT_AUTH": VALUES["PORTKEY_CLIENT_AUTH"],
        "ORGANISATIONS_TO_SYNC": VALUES["ORGANISATIONS_TO_SYNC"],
    }


def test_stdout_is_the_arns_as_toml_and_no_value_is_printed(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 0, err
    secretsmanager = client("secretsmanager")
    registry_arn = secretsmanager.describe_secret(SecretId=REGISTRY_NAME)["ARN"]
    client_org_arn = secretsmanager.describe_secret(SecretId=CLIENT_ORG_NAME)["ARN"]
    assert tomllib.loads(out) == {
        "hybrid": {
            "enabled": True,
            "registry_credentials_secret_arn": registry_arn,
            "secrets_kms_key_arn": client("kms").describe_key(KeyId=ALIAS)["KeyMetadata"]["Arn"],
            "gateway": {"secrets": {"PORTKEY_CLIENT_AUTH": client_org_arn, "ORGANISATIONS_TO_SYNC": client_org_arn}},
        }
    }
    assert leaked(out + err) == []
    assert f"{REGISTRY_NAME}: created" in err and f"{CLIENT_ORG_NAME}: created" in err
    # What it prints is what the settings take: pasted as it is, the hybrid table validates.
    pasted = HybridSettings.model_validate(tomllib.loads(out)["hybrid"])
    assert list(pasted.problems()) == []


def test_a_second_run_keeps_the_arns_and_puts_no_new_version(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    _, first, _ = run(capsys)
    code, second, err = run(capsys)
    assert code == 0 and second == first
    assert f"{REGISTRY_NAME}: unchanged" in err and f"{CLIENT_ORG_NAME}: unchanged" in err
    assert versions(REGISTRY_NAME) == versions(CLIENT_ORG_NAME) == 1
    assert len(client("kms").list_keys()["Keys"]) == 1


def test_a_changed_value_puts_a_new_version_of_that_secret_only(
    aws: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, first, _ = run(capsys)
    monkeypatch.setenv("AIGW_REGISTRY_PASSWORD", "rotated-" + "n" * 24)
    code, second, err = run(capsys)
    assert code == 0 and second == first
    assert f"{REGISTRY_NAME}: new version" in err and f"{CLIENT_ORG_NAME}: unchanged" in err
    assert versions(REGISTRY_NAME) == 2 and versions(CLIENT_ORG_NAME) == 1
    assert secret_json(REGISTRY_NAME)["password"] == "rotated-" + "n" * 24
    assert secret_json(REGISTRY_NAME, "AWSPREVIOUS")["password"] == VALUES["AIGW_REGISTRY_PASSWORD"]
    assert "rotated-" not in second + err


def assert_nothing_created() -> None:
    assert client("secretsmanager").list_secrets()["SecretList"] == []
    assert client("kms").list_keys()["Keys"] == []


def test_an_unset_value_without_a_terminal_is_named_and_nothing_is_created(
    aws: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIGW_REGISTRY_PASSWORD")
    monkeypatch.delenv("ORGANISATIONS_TO_SYNC")
    code, out, err = run(capsys)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "AIGW_REGISTRY_PASSWORD: not set, and standard input is not a terminal to ask for it "
        "(the registry password or token of Portkey's licensed image; set AIGW_REGISTRY_PASSWORD)",
        "ORGANISATIONS_TO_SYNC: not set, and standard input is not a terminal to ask for it "
        "(the Portkey organisation id(s) to sync; set ORGANISATIONS_TO_SYNC)",
        "nothing was created",
    ]
    assert leaked(err) == []
    assert_nothing_created()


@pytest.mark.parametrize("empty", ["", "  \t"])
def test_an_empty_value_is_refused(
    aws: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, empty: str
) -> None:
    monkeypatch.setenv("PORTKEY_CLIENT_AUTH", empty)
    code, out, err = run(capsys)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "PORTKEY_CLIENT_AUTH: empty; the Portkey client auth of this gateway is needed",
        "nothing was created",
    ]
    assert_nothing_created()


def test_on_a_terminal_an_unset_value_is_asked_for_without_echo(
    aws: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIGW_REGISTRY_USERNAME")
    monkeypatch.delenv("AIGW_REGISTRY_PASSWORD")
    monkeypatch.setattr(hybrid_secrets, "interactive", lambda: True)
    asked: list[str] = []
    answers = {"AIGW_REGISTRY_USERNAME": "typed-user", "AIGW_REGISTRY_PASSWORD": "typed-" + "p" * 24}

    def getpass(prompt: str = "") -> str:
        asked.append(prompt)
        return answers[prompt.split()[0]]

    monkeypatch.setattr(hybrid_secrets.getpass, "getpass", getpass)
    code, out, err = run(capsys, "--registry")
    assert code == 0, err
    assert asked == [
        "AIGW_REGISTRY_USERNAME (registry user name of Portkey's licensed image, not echoed): ",
        "AIGW_REGISTRY_PASSWORD (registry password or token of Portkey's licensed image, not echoed): ",
    ]
    assert secret_json(REGISTRY_NAME) == {"username": "typed-user", "password": "typed-" + "p" * 24}
    assert "typed-" not in out + err


def test_an_empty_answer_at_the_prompt_is_refused(
    aws: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIGW_REGISTRY_USERNAME")
    monkeypatch.setattr(hybrid_secrets, "interactive", lambda: True)
    monkeypatch.setattr(hybrid_secrets.getpass, "getpass", lambda prompt="": "")
    code, _, err = run(capsys, "--registry")
    assert code == 2
    assert "AIGW_REGISTRY_USERNAME: empty; the registry user name of Portkey's licensed image is needed" in err
    assert_nothing_created()


@pytest.mark.parametrize(
    ("option", "created", "absent", "unset"),
    [
        ("--registry", REGISTRY_NAME, CLIENT_ORG_NAME, ("PORTKEY_CLIENT_AUTH", "ORGANISATIONS_TO_SYNC")),
        ("--client-org", CLIENT_ORG_NAME, REGISTRY_NAME, ("AIGW_REGISTRY_USERNAME", "AIGW_REGISTRY_PASSWORD")),
    ],
)
def test_one_option_makes_only_its_secret_and_needs_only_its_values(
    aws: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    created: str,
    absent: str,
    unset: tuple[str, ...],
) -> None:
    for name in unset:
        monkeypatch.delenv(name)
    code, out, err = run(capsys, option)
    assert code == 0, err
    assert [s["Name"] for s in client("secretsmanager").list_secrets()["SecretList"]] == [created]
    settings = tomllib.loads(out)["hybrid"]
    assert ("gateway" in settings) is (option == "--client-org")
    assert ("registry_credentials_secret_arn" in settings) is (option == "--registry")
    assert absent not in err


def echoing_create_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """CreateSecret fails with a message quoting the request's secret string, as an API may echo parameters."""
    original = botocore.client.BaseClient._make_api_call

    def call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "CreateSecret":
            message = f"Invalid SecretString {params['SecretString']!r}: {params['SecretString']}"
            raise ClientError({"Error": {"Code": "ValidationException", "Message": message}}, operation)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", call)


def test_a_failing_call_is_reported_without_the_values_it_carried(
    aws: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    echoing_create_secret(monkeypatch)
    code, out, err = run(capsys)
    assert code == 1 and out == ""
    assert "hybrid-secrets: An error occurred (ValidationException) when calling the CreateSecret operation" in err
    assert hybrid_secrets.REDACTED in err
    assert leaked(out + err) == []


def test_a_secret_scheduled_for_deletion_is_named_and_left_alone(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys)
    client("secretsmanager").delete_secret(SecretId=CLIENT_ORG_NAME, RecoveryWindowInDays=7)
    code, out, err = run(capsys)
    assert code == 1 and out == ""
    assert f"{CLIENT_ORG_NAME} is scheduled for deletion; restore it (aws secretsmanager restore-secret" in err
    assert leaked(err) == []


def test_a_secret_made_under_another_key_gets_a_version_under_the_hybrid_key(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    secretsmanager = client("secretsmanager")
    secretsmanager.create_secret(Name=REGISTRY_NAME, SecretString="made by hand")  # the AWS-managed key
    code, _, err = run(capsys)
    assert code == 0, err
    assert f"{REGISTRY_NAME}: new version, encrypted with the hybrid key" in err
    key_arn = client("kms").describe_key(KeyId=ALIAS)["KeyMetadata"]["Arn"]
    assert secretsmanager.describe_secret(SecretId=REGISTRY_NAME)["KmsKeyId"] == key_arn
    assert secret_json(REGISTRY_NAME)["username"] == VALUES["AIGW_REGISTRY_USERNAME"]


def test_redact_hides_each_value_as_given_and_escaped() -> None:
    value = 'a"b\\c\n'
    text = f"raw {value} json {json.dumps(value)} repr {value!r}"
    assert value not in hybrid_secrets.redact(text, [value])
    assert json.dumps(value)[1:-1] not in hybrid_secrets.redact(text, [value])
    assert repr(value)[1:-1] not in hybrid_secrets.redact(text, [value])


def test_the_prefix_is_the_stacks() -> None:
    from modules.context import StackContext

    context = StackContext(environment="prod", region=REGION, account_id="1", partition="aws", deletion_protection=True)
    assert hybrid_secrets.prefix("prod") == context.prefix


def test_make_without_env_prints_the_usage_and_exits_2() -> None:
    # -o setup: the prerequisite counts as done, so nothing is installed.
    result = processes.run(["make", "--no-print-directory", "-o", "setup", "hybrid-secrets"], cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: make hybrid-secrets ENV=<environment> [ONLY=registry|client-org]")


def test_a_run_that_loses_the_race_for_the_alias_uses_the_winners_key_and_retires_its_own(aws: None) -> None:
    from tools.state_bootstrap import ensure_key

    kms = client("kms")
    winner = ensure_key(kms, ALIAS, "the first run's")

    class Late:
        """A run that looked before the first made the alias: describe_key finds nothing."""

        def __getattr__(self, name: str) -> Any:
            return getattr(kms, name)

        def describe_key(self, KeyId: str) -> Any:
            if not getattr(self, "looked", False):
                self.looked = True
                raise ClientError({"Error": {"Code": "NotFoundException", "Message": "no alias"}}, "DescribeKey")
            return kms.describe_key(KeyId=KeyId)

    assert ensure_key(Late(), ALIAS, "the second run's") == winner
    keys = [kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"] for k in kms.list_keys()["Keys"]]
    assert sorted(k["KeyState"] for k in keys) == ["Enabled", "PendingDeletion"]
    assert next(k for k in keys if k["KeyState"] == "Enabled")["Arn"] == winner
