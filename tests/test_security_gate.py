"""The security gate on every synthesized stack: our rules + checkov with the
reviewed suppressions, and the secret scanner; plus proof that it fails on a
deliberately insecure variant."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from security import secret_scan, suppressions
from security.gate import main as gate_main
from security.gate import run_gate, stack_files
from tests import conftest, processes

pytestmark = pytest.mark.security


@dataclass(frozen=True)
class GateRun:
    """`make security` as a user runs it: its exit status, and its report's lines."""

    returncode: int
    lines: list[str]

    def counts(self) -> dict[str, dict[str, int]]:
        """passed counts per stack, from the lines ``  <env> rules P / F / S   checkov P / F / S``."""
        counts: dict[str, dict[str, int]] = {}
        for line in self.lines:
            match = re.match(r"^  (\S+) +rules +(\d+) / \d+ / \d+ +checkov +(\d+) / \d+ / \d+$", line)
            if match:
                counts[match[1]] = {"rules passed": int(match[2]), "checkov passed": int(match[3])}
        return counts

    def marked(self, kind: str) -> list[str]:
        return [line for line in self.lines if line.startswith(f"  {kind} ")]


@pytest.fixture(scope="module")
def gate() -> GateRun:
    # The target synthesizes every shipped environment and example itself: a registry entry for an example
    # must not be reported stale because only environments/ was synthesized. One run serves every test
    # below (checkov over every stack is the slow part).
    result = processes.run(["make", "--no-print-directory", "security"], cwd=conftest.ROOT, timeout=900)
    start = result.stdout.find("security gate: passed / failed / suppressed per stack")
    assert start >= 0, result.stdout[-4000:] + result.stderr[-2000:]
    run = GateRun(result.returncode, result.stdout[start:].rstrip().splitlines())
    conftest.TERMINAL_SUMMARY.extend(run.lines)
    return run


def test_make_security_passes_on_a_checkout_as_a_user_runs_it(gate: GateRun) -> None:
    assert gate.returncode == 0, "\n".join(gate.lines)
    assert gate.lines[-1] == "  result: PASS"


def test_every_stack_was_checked_by_rules_and_checkov(gate: GateRun) -> None:
    counts = gate.counts()
    assert set(counts) == {environment.name for environment in conftest.all_environments()}
    for environment, counter in counts.items():
        assert counter["rules passed"] > 20, environment
        assert counter["checkov passed"] > 100, environment


def test_no_unsuppressed_finding(gate: GateRun) -> None:
    assert gate.marked("UNSUPPRESSED") == []


def test_every_suppression_still_matches_a_finding(gate: GateRun) -> None:
    assert gate.marked("STALE") == [], "remove suppressions that no longer match anything"


def test_no_secret_in_the_repository_or_the_synthesized_stacks(gate: GateRun) -> None:
    assert gate.marked("SECRET") == []


def test_suppressions_need_a_real_reason_and_a_single_construct(tmp_path: Path) -> None:
    registry = tmp_path / "suppressions.toml"
    registry.write_text(
        '[[suppression]]\ncheck = "CKV_AWS_91"\nconstruct = "networking/alb"\nreason = "ok"\n'
        '[[suppression]]\ncheck = "*"\nconstruct = "*"\nreason = "blanket skip of everything"\n'
    )
    with pytest.raises(suppressions.SuppressionError) as raised:
        suppressions.load(registry)
    message = str(raised.value)
    assert "suppression[0].reason" in message
    assert "suppression[1].check" in message and "suppression[1].construct" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[suppresion]]\ncheck = "CKV_AWS_91"\n', "unknown top-level keys ['suppresion']"),
        ('[[suppression]]\ncheck = "CKV_AWS_91"\nconstruct = "edge/alb"\nreason = "a reason long enough"\n'
         'environment = ["dev"]\n', "suppression[0]: unknown keys ['environment']"),
        ('[[suppression]]\ncheck = "CKV_AWS_91"\nconstruct = "edge/alb"\nreason = "a reason long enough"\n'
         'environments = "dev"\n', "suppression[0].environments: a list of environment names"),
    ],
    ids=["top-level-key", "entry-key", "environments-not-a-list"],
)  # fmt: skip
def test_registry_with_a_key_it_does_not_know_is_refused(tmp_path: Path, text: str, message: str) -> None:
    registry = tmp_path / "suppressions.toml"
    registry.write_text(text)
    with pytest.raises(suppressions.SuppressionError, match=re.escape(f"{registry}: {message}")):
        suppressions.load(registry)


def test_gate_without_synthesized_stacks_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gate_main(["--outdir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"{tmp_path}: no synthesized stacks; run `make synth` first\n"


def test_the_registry_in_the_repository_is_valid() -> None:
    assert all(len(s.reason) >= suppressions.MIN_REASON for s in suppressions.load())


# -- planted regression -----------------------------------------------------
@pytest.fixture(scope="module")
def insecure_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base scenario (tests/scenarios.py, named dev here), plus what a
    careless change could add: SSH open to the world on the tasks, an admin
    policy, an unencrypted log group, a public bucket and a secret value in
    the code."""
    from cdktf import App
    from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
    from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
    from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
    from cdktf_cdktf_provider_aws.secretsmanager_secret_version import SecretsmanagerSecretVersion
    from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule

    from aigw.environments import Environment
    from modules.stack import GatewayStack
    from tests.scenarios import base

    outdir = tmp_path_factory.mktemp("insecure.out")
    app = App(outdir=str(outdir))
    stack = GatewayStack(app, Environment("dev", Path(__file__), base()))
    compute = stack.node.find_child("compute")
    task_sg = compute.node.find_child("service").node.find_child("task-sg")
    execution_role = compute.node.find_child("task").node.find_child("execution-role")
    secret = compute.node.find_child("secrets").node.find_child("secret-openai")
    VpcSecurityGroupIngressRule(compute, "ssh-from-anywhere", security_group_id=task_sg.id, cidr_ipv4="0.0.0.0/0",
                                ip_protocol="tcp", from_port=22, to_port=22)  # fmt: skip
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    IamRolePolicy(compute, "admin", role=execution_role.id, policy=json.dumps(admin))
    CloudwatchLogGroup(compute, "plain-logs", name="/aigw-dev/plain", retention_in_days=1)
    S3Bucket(compute, "public-bucket", bucket="aigw-dev-planted")
    planted = "sk-" + "proj-" + "A1b2C3d4" * 6  # built here: the repository itself stays clean
    SecretsmanagerSecretVersion(compute, "literal", secret_id=secret.id, secret_string=planted)
    app.synth()
    return outdir


def test_planted_regression_fails_the_gate(insecure_outdir: Path) -> None:
    report = run_gate(stack_files(insecure_outdir), scan_repository=False)
    assert not report.ok
    failed = {(f.check, f.construct) for f in report.unsuppressed}
    assert ("AIGW-NET1", "compute/ssh-from-anywhere") in failed
    assert ("AIGW-NET2", "compute/ssh-from-anywhere") in failed
    assert ("AIGW-IAM1", "compute/admin") in failed and ("AIGW-IAM2", "compute/admin") in failed
    assert ("AIGW-ENC1", "compute/plain-logs") in failed
    assert {("AIGW-S3-1", "compute/public-bucket"), ("AIGW-S3-2", "compute/public-bucket")} <= failed
    assert any(f.source == "checkov" and f.construct == "compute/ssh-from-anywhere" for f in report.unsuppressed)
    assert [s.pattern for s in report.secrets] == ["openai-key"]


def test_secret_scanner_finds_each_kind_of_credential() -> None:
    samples = {
        "aws-access-key-id": "AKIA" + "ABCDEFGHIJKLMNOP",
        "private-key": "-----BEGIN RSA " + "PRIVATE KEY-----",
        "anthropic-key": "sk-ant-" + "x" * 40,
        "google-api-key": "AIza" + "B" * 35,
        "jwt": "eyJ" + "a" * 10 + ".eyJ" + "b" * 10 + "." + "c" * 10,
        "secret-assignment": "client_secret = " + '"' + "s3cr3tvalue" + '"',
        "placeholder-credential": "api key: " + "REPLACE" + "_ME",
    }
    for name, text in samples.items():
        assert name in {f.pattern for f in secret_scan.scan_text(text, "sample")}, name
    clean = 'secret_string = "${var.value}"\nkms_key_id = "${aws_kms_key.key.arn}"\n'
    assert secret_scan.scan_text(clean, "clean") == []
