"""The security gate on every synthesized stack: our rules + checkov with the
reviewed suppressions, and the secret scanner; plus proof that it fails on a
deliberately insecure variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from security import secret_scan, suppressions
from security.gate import GateReport, run_gate, stack_files
from tests import conftest

pytestmark = pytest.mark.security


@pytest.fixture(scope="module")
def gate(synth_outdir: Path) -> GateReport:
    report = run_gate(stack_files(synth_outdir))
    conftest.TERMINAL_SUMMARY.extend(report.lines())
    return report


def test_every_stack_was_checked_by_rules_and_checkov(gate: GateReport) -> None:
    assert set(gate.counts) == {environment.name for environment in conftest.all_environments()}
    for environment, counter in gate.counts.items():
        assert counter["rules passed"] > 20, environment
        assert counter["checkov passed"] > 100, environment


def test_no_unsuppressed_finding(gate: GateReport) -> None:
    assert gate.unsuppressed == [], "\n".join(gate.lines())


def test_every_suppression_still_matches_a_finding(gate: GateReport) -> None:
    assert gate.stale == [], "remove suppressions that no longer match anything"


def test_no_secret_in_the_repository_or_the_synthesized_stacks(gate: GateReport) -> None:
    assert gate.secrets == []


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


def test_the_registry_in_the_repository_is_valid() -> None:
    assert all(len(s.reason) >= suppressions.MIN_REASON for s in suppressions.load())


# -- planted regression -----------------------------------------------------
@pytest.fixture(scope="module")
def insecure_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dev, plus what a careless change could add: SSH open to the world on the
    tasks, an admin policy, an unencrypted log group, a public bucket and a
    secret value in the code."""
    from cdktf import App
    from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
    from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
    from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
    from cdktf_cdktf_provider_aws.secretsmanager_secret_version import SecretsmanagerSecretVersion
    from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule

    from aigw.environments import load_environments
    from modules.stack import GatewayStack

    (dev,) = [e for e in load_environments(conftest.DEFAULT_ENV_DIR) if e.name == "dev"]
    outdir = tmp_path_factory.mktemp("insecure.out")
    app = App(outdir=str(outdir))
    stack = GatewayStack(app, dev)
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
