"""AIGW-S3-3 (buckets use a customer key) and its one exception: the
access-log bucket of an application load balancer uses SSE-S3, the only
encryption ALB log delivery supports. Compliant and non-compliant cases on
small hand-written stack documents, as in tests/test_security_rules.py."""

from __future__ import annotations

from typing import Any

import pytest

from security.rules import RULES, Verdict
from security.stackdoc import Res, StackDoc

BUCKET = "${aws_s3_bucket.logs.bucket}"


def stack(encryption: dict[str, Any], load_balancer: dict[str, Any] | None) -> StackDoc:
    resources: dict[str, dict[str, Any]] = {
        "aws_s3_bucket": {"logs": {"bucket": "aigw-dev-lb-logs"}},
        "aws_s3_bucket_server_side_encryption_configuration": {
            "e": {
                "bucket": "${aws_s3_bucket.logs.id}",
                "rule": [{"apply_server_side_encryption_by_default": encryption}],
            }
        },
    }
    if load_balancer is not None:
        resources["aws_lb"] = {"lb": load_balancer}
    return StackDoc({"resource": resources}, "test")


def s3_3(document: StackDoc) -> Verdict:
    (rule,) = [r for r in RULES if r.id == "AIGW-S3-3"]
    body = document.document["resource"]["aws_s3_bucket"]["logs"]
    return rule.check(Res("aws_s3_bucket", "logs", body), document)


SSE_S3 = {"sse_algorithm": "AES256"}
SSE_KMS = {"sse_algorithm": "aws:kms", "kms_master_key_id": "${aws_kms_key.k.arn}"}
ALB_LOGS = {"load_balancer_type": "application", "access_logs": {"bucket": BUCKET, "enabled": True}}


def test_sse_s3_bucket_receiving_alb_access_logs_is_compliant() -> None:
    assert s3_3(stack(SSE_S3, ALB_LOGS)) is Verdict.COMPLIANT


def test_sse_s3_bucket_receiving_logs_of_an_alb_of_default_type_is_compliant() -> None:
    # aws_lb's load_balancer_type defaults to application.
    assert s3_3(stack(SSE_S3, {"access_logs": {"bucket": BUCKET, "enabled": True}})) is Verdict.COMPLIANT


def test_customer_key_bucket_is_compliant_whatever_writes_to_it() -> None:
    assert s3_3(stack(SSE_KMS, None)) is Verdict.COMPLIANT


@pytest.mark.parametrize(
    "load_balancer",
    [
        None,
        {"load_balancer_type": "network", "access_logs": {"bucket": BUCKET, "enabled": True}},
        {"load_balancer_type": "application", "access_logs": {"bucket": BUCKET, "enabled": False}},
        {"load_balancer_type": "application", "access_logs": {"bucket": "another-bucket", "enabled": True}},
        {"load_balancer_type": "gateway", "access_logs": {"bucket": BUCKET, "enabled": True}},
    ],
    ids=["no-load-balancer", "nlb-logs-support-kms", "alb-logging-off", "alb-logs-elsewhere", "not-an-alb-or-nlb"],
)
def test_sse_s3_bucket_is_non_compliant_unless_an_alb_logs_into_it(load_balancer: dict[str, Any] | None) -> None:
    assert s3_3(stack(SSE_S3, load_balancer)) is Verdict.NON_COMPLIANT


def test_rule_explanation_names_the_exception() -> None:
    (rule,) = [r for r in RULES if r.id == "AIGW-S3-3"]
    assert "application load balancer" in rule.explanation and "SSE-S3" in rule.explanation
