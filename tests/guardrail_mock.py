"""A stand-in for Bedrock's ApplyGuardrail (``POST
/guardrail/<id>/version/<version>/apply`` on ``bedrock-runtime.<region>.amazonaws.com``)
on loopback, over TLS: its certificate names Bedrock's host and is issued by
a test CA, which the data plane is given instead of Amazon's roots
(AIGW_STORE_CA); the data plane connects to the mock (AIGW_GUARDRAIL_ADDRESS)
and still verifies Bedrock's name. Every call's SigV4 signature is verified
with botocore against the task role's credentials (tests/aws_mocks.py); a call
that fails gets Bedrock's 403.

Its guardrail: a text holding ``BLOCK_MARKER`` is BLOCKED (a custom word);
an e-mail address is ANONYMIZED (``{EMAIL}``); anything else passes. The
answers have Bedrock's shape (action, outputs, assessments, usage)."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from tests.aws_mocks import CredentialsEndpoint, SignatureCheck, verify_sigv4
from tests.mock_providers import LoopbackServer, RecordedRequest, Reply, _Server

BLOCK_MARKER = "zebra-contraband"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def certificates(directory: Path, host: str) -> Path:
    """A test CA and a certificate for ``host`` it issued; returns the CA's file."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=aigw test Bedrock CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=directory)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout", "server.key",
             "-out", "server.csr", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text(f"subjectAltName=DNS:{host}\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=directory)  # fmt: skip
    return directory / "ca.pem"


@dataclass(frozen=True)
class GuardrailCall:
    """One ApplyGuardrail call as the mock received it."""

    path: str
    source: str
    texts: tuple[str, ...]
    check: SignatureCheck
    action: str


class ApplyGuardrailMock(LoopbackServer):
    """ApplyGuardrail over TLS, SigV4-verified against the task role's credentials."""

    name = "apply-guardrail"

    def __init__(self, directory: Path, region: str, credentials: CredentialsEndpoint) -> None:
        super().__init__()
        self.host = f"bedrock-runtime.{region}.amazonaws.com"
        self.ca = certificates(directory, self.host)
        self.directory = directory
        self.credentials = credentials
        self.calls: list[GuardrailCall] = []
        self.path: str | None = None  # the one path answered (/guardrail/<id>/version/<v>/apply)
        self.fail_with: int | None = None  # answer every call with this status (Bedrock's error shape)
        self.lock = threading.Lock()

    def start(self, port: int = 0) -> Self:
        if self._server is None:
            server = _Server(self, port)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.directory / "server.pem", self.directory / "server.key")
            server.socket = context.wrap_socket(server.socket, server_side=True)
            self._server = server
            self.port = int(server.server_address[1])
            threading.Thread(target=server.serve_forever, name=f"mock-{self.name}", daemon=True).start()
        return self

    @property
    def address(self) -> str:
        """AIGW_GUARDRAIL_ADDRESS: where the data plane connects instead of Bedrock's host."""
        return f"127.0.0.1:{self.port}"

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()
        self.fail_with = None

    def calls_from(self, source: str) -> list[GuardrailCall]:
        with self.lock:
            return [call for call in self.calls if call.source == source]

    @staticmethod
    def _verdict(texts: list[str]) -> tuple[str, dict[str, Any], list[str]]:
        joined = "\n".join(texts)
        if BLOCK_MARKER in joined.lower():
            assessment = {"wordPolicy": {"customWords": [{"match": BLOCK_MARKER, "action": "BLOCKED"}]}}
            return "GUARDRAIL_INTERVENED", assessment, ["(the guardrail's blocked message)"]
        emails = sorted(set(EMAIL.findall(joined)))
        if emails:
            entities = [{"match": email, "type": "EMAIL", "action": "ANONYMIZED"} for email in emails]
            masked = [EMAIL.sub("{EMAIL}", text) for text in texts]
            return "GUARDRAIL_INTERVENED", {"sensitiveInformationPolicy": {"piiEntities": entities}}, masked
        return "NONE", {}, []

    def handle(self, request: RecordedRequest) -> Reply:
        check = verify_sigv4(request, list(self.credentials.issued))
        if not check.verified:
            return Reply.json({"message": f"signature: {check.reason}"}, 403,
                              {"x-amzn-errortype": "InvalidSignatureException"})  # fmt: skip
        if request.method != "POST" or (self.path is not None and request.route != self.path):
            return Reply.json({"message": "The guardrail does not exist"}, 404,
                              {"x-amzn-errortype": "ResourceNotFoundException"})  # fmt: skip
        document = json.loads(request.body)
        texts = [block["text"]["text"] for block in document["content"]]
        action, assessment, outputs = self._verdict(texts)
        with self.lock:
            self.calls.append(GuardrailCall(request.route, document["source"], tuple(texts), check, action))
        if self.fail_with is not None:
            return Reply.json({"message": "Rate exceeded"}, self.fail_with,
                              {"x-amzn-errortype": "ThrottlingException"})  # fmt: skip
        return Reply.json({
            "usage": {"topicPolicyUnits": 1, "contentPolicyUnits": 1, "wordPolicyUnits": 1,
                      "sensitiveInformationPolicyUnits": 1, "sensitiveInformationPolicyFreeUnits": 0},
            "action": action,
            "outputs": [{"text": text} for text in outputs],
            "assessments": [assessment] if assessment else [],
        })  # fmt: skip
