"""AWS-side mocks on loopback for gateway tests: the ECS container credentials
endpoint, Bedrock Runtime (with real SigV4 verification) and an OTLP/HTTP
collector that records what it receives.

* :class:`CredentialsEndpoint`: what ``AWS_CONTAINER_CREDENTIALS_FULL_URI``
  points at in an ECS task. ``GET <relative_uri>`` answers the ECS agent's JSON
  (``AccessKeyId``, ``SecretAccessKey``, ``Token``, ``Expiration``,
  ``RoleArn``) for :attr:`~CredentialsEndpoint.current`; ``issue()`` rotates to
  a new random set (all kept in ``issued``); any other path is 404.
* :class:`BedrockRuntimeMock`: a :class:`~tests.mock_providers.MockProvider`
  for ``https://bedrock-runtime.<region>.amazonaws.com``. The gateway 1.15.2
  (``src/providers/bedrock/api.ts``) sends chat completions to
  ``POST /model/<urlencoded model id>/converse`` and, with ``"stream": true``,
  to ``/converse-stream``, signed with SigV4 (``@smithy/signature-v4``, service
  ``bedrock``) from the per-request ``x-portkey-aws-*`` headers. Every request
  is verified with botocore's ``SigV4Auth`` against the accepted credential
  sets (``accept()``, ``accept_from()``, ``signing_credentials``); a request
  that fails gets Bedrock's 403 (see :meth:`BedrockRuntimeMock.denial`). The
  stream is AWS event-stream binary framing (``application/vnd.amazon.eventstream``):
  messageStart, contentBlockDelta..., contentBlockStop, messageStop, metadata.
* :class:`OtlpRecorder`: ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs``;
  JSON bodies are parsed (``spans()``, ``metric_points()``, ``log_records()``),
  protobuf bodies are recorded as raw bytes only.

Behind the gateway, the mock sees the gateway's request through
``tests/harness/intercept.cjs``: the original URL is in ``x-intercepted-url``,
and that URL (host ``bedrock-runtime.<region>.amazonaws.com``) is what the
signature covers. A request without that header (a client talking to the mock
directly, e.g. boto3 with ``endpoint_url``) is verified against
``http://<Host header><path>``.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import hmac
import json
import re
import secrets
import string
import struct
import time
import uuid
import zlib
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit
from urllib.request import ProxyHandler, build_opener

from tests.mock_providers import (
    STREAM_GATE_TIMEOUT,
    JsonObject,
    LoopbackServer,
    MockProvider,
    RecordedRequest,
    Reply,
    text_pieces,
    token_estimate,
)

__all__ = [
    "BEDROCK_EVENTSTREAM_CONTENT_TYPE",
    "STREAM_GATE_TIMEOUT",
    "BedrockRuntimeMock",
    "Credentials",
    "CredentialsEndpoint",
    "CredentialsRequest",
    "EventMessage",
    "MetricPoint",
    "OtlpLogRecord",
    "OtlpPayload",
    "OtlpRecorder",
    "SignatureCheck",
    "SpanRecord",
    "bedrock_runtime_host",
    "decode_event_stream",
    "encode_event",
    "fetch_credentials",
    "new_credentials",
    "otlp_value",
    "verify_sigv4",
]

ISO8601 = "%Y-%m-%dT%H:%M:%SZ"
AMZ_DATE = "%Y%m%dT%H%M%SZ"
DEFAULT_ROLE_ARN = "arn:aws:iam::123456789012:role/aigw-mock-task-role"
BEDROCK_EVENTSTREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"
BEDROCK_SERVICE = "bedrock"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def bedrock_runtime_host(region: str = "us-east-1") -> str:
    """The Bedrock Runtime host the gateway 1.15.2 calls for a region (the key of AIGW_INTERCEPT_MAP)."""
    return f"bedrock-runtime.{region}.amazonaws.com"


# =========================================================================== credentials
@dataclass(frozen=True)
class Credentials:
    """One set of temporary AWS credentials (what the ECS endpoint hands out)."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime  # timezone-aware UTC, whole seconds

    @property
    def expiration_text(self) -> str:
        """``Expiration`` as the ECS endpoint writes it: ``2026-11-29T06:00:00Z``."""
        return self.expiration.astimezone(UTC).strftime(ISO8601)

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expiration

    def ecs_json(self, role_arn: str = DEFAULT_ROLE_ARN) -> JsonObject:
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": self.expiration_text,
            "RoleArn": role_arn,
        }

    @classmethod
    def from_ecs_json(cls, payload: Mapping[str, Any]) -> Credentials:
        expiration = datetime.strptime(str(payload["Expiration"]), ISO8601).replace(tzinfo=UTC)
        return cls(str(payload["AccessKeyId"]), str(payload["SecretAccessKey"]), str(payload["Token"]), expiration)

    def portkey_headers(self, region: str = "us-east-1") -> dict[str, str]:
        """The gateway's per-request Bedrock headers carrying these credentials."""
        return {
            "x-portkey-aws-access-key-id": self.access_key_id,
            "x-portkey-aws-secret-access-key": self.secret_access_key,
            "x-portkey-aws-session-token": self.session_token,
            "x-portkey-aws-region": region,
        }


def new_credentials(valid_for_seconds: int = 3600) -> Credentials:
    """A random set: ``ASIAMOCK`` + 12 uppercase letters, a 40-character secret, a long token."""
    access_key_id = "ASIAMOCK" + "".join(secrets.choice(string.ascii_uppercase) for _ in range(12))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    token = "IQoJb3JpZ2luX2VjEMOCK" + base64.b64encode(secrets.token_bytes(192)).decode()
    now = datetime.now(UTC).replace(microsecond=0)
    return Credentials(access_key_id, secret, token, now + timedelta(seconds=valid_for_seconds))


def fetch_credentials(full_uri: str, timeout: float = 5.0) -> Credentials:
    """GET an ECS-style credentials URI (loopback; no proxy from the environment) and parse the answer."""
    with build_opener(ProxyHandler({})).open(full_uri, timeout=timeout) as response:
        return Credentials.from_ecs_json(json.loads(response.read()))


# =========================================================================== small loopback servers
class _LoopbackServer(LoopbackServer):
    """A loopback server that answers with plain bodies, from ``respond``."""

    def handle(self, request: RecordedRequest) -> Reply:
        return self.respond(request.method, request.path, request.headers, request.body)

    @abstractmethod
    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        """The answer (plain body only) to one request."""


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


# =========================================================================== ECS credentials endpoint
@dataclass(frozen=True)
class CredentialsRequest:
    """One request to the credentials endpoint."""

    method: str
    path: str
    headers: dict[str, str]
    time: float  # time.time() when it arrived
    status: int
    served: Credentials | None  # the set in the answer (None unless 200)


class CredentialsEndpoint(_LoopbackServer):
    """The ECS container credentials endpoint (``AWS_CONTAINER_CREDENTIALS_FULL_URI``) on 127.0.0.1.

    One set of credentials is issued at construction; ``issue()`` rotates. ``error_status`` makes the
    endpoint fail (the credentials path answers that status with a JSON message)."""

    name: ClassVar[str] = "ecs-credentials"

    def __init__(self, valid_for_seconds: int = 3600, role_arn: str = DEFAULT_ROLE_ARN) -> None:
        super().__init__()
        self.relative_uri = f"/v2/credentials/{uuid.uuid4()}"
        self.role_arn = role_arn
        self.requests: list[CredentialsRequest] = []
        self.issued: list[Credentials] = []
        self.error_status: int | None = None
        # When set, only requests whose Authorization is this token are answered (else 401), as an
        # endpoint given with AWS_CONTAINER_AUTHORIZATION_TOKEN requires.
        self.required_token: str | None = None
        self.issue(valid_for_seconds)

    @property
    def full_uri(self) -> str:
        """``http://127.0.0.1:<port>/v2/credentials/<uuid>``: the AWS_CONTAINER_CREDENTIALS_FULL_URI value."""
        return f"{self.base_url}{self.relative_uri}"

    @property
    def current(self) -> Credentials:
        with self._lock:
            return self.issued[-1]

    def issue(self, valid_for_seconds: int = 3600) -> Credentials:
        """A new random set, distinct from every earlier one, valid for ``valid_for_seconds`` from now
        (negative: already expired); it becomes the endpoint's answer."""
        with self._lock:
            known = {credentials.access_key_id for credentials in self.issued}
            credentials = new_credentials(valid_for_seconds)
            while credentials.access_key_id in known:
                credentials = new_credentials(valid_for_seconds)
            self.issued.append(credentials)
            return credentials

    def environment(self) -> dict[str, str]:
        return {"AWS_CONTAINER_CREDENTIALS_FULL_URI": self.full_uri}

    def clear(self) -> None:
        """Forget the recorded requests (the issued sets stay)."""
        self.requests.clear()

    def wait_for_requests(self, count: int = 1, timeout: float = 5.0) -> bool:
        return _wait(lambda: len(self.requests) >= count, timeout)

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        served: Credentials | None = None
        if urlsplit(path).path != self.relative_uri:
            reply = Reply.json({"message": "Not Found"}, 404)
        elif method not in ("GET", "HEAD"):
            reply = Reply.json({"message": "Method Not Allowed"}, 405)
        elif self.required_token is not None and headers.get("authorization") != self.required_token:
            reply = Reply.json({"message": "Unauthorized"}, 401)
        elif self.error_status is not None:
            reply = Reply.json({"message": f"credentials endpoint fails with {self.error_status}"}, self.error_status)
        else:
            served = self.current
            reply = Reply.json(served.ecs_json(self.role_arn))
        self.requests.append(CredentialsRequest(method, path, headers, time.time(), reply.status, served))
        return reply


# =========================================================================== AWS event stream
_HEADER_STRING = 7


def encode_event(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude (total length, headers length, prelude CRC32), string headers
    (type 7), payload, message CRC32 (all big-endian)."""
    encoded = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack(">B", len(raw_name)) + raw_name
        encoded += struct.pack(">BH", _HEADER_STRING, len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + bytes(encoded) + payload
    return message + struct.pack(">I", binascii.crc32(message))


def bedrock_event(event_type: str, payload: Mapping[str, Any]) -> bytes:
    """A converse-stream event as Bedrock frames it (``:message-type event``, JSON payload)."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_event(headers, json.dumps(payload, separators=(",", ":")).encode())


def bedrock_exception(exception_type: str, message: str) -> bytes:
    """An in-stream error as Bedrock frames it (``:message-type exception``, payload ``{"message": ...}``)."""
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return encode_event(headers, json.dumps({"message": message}).encode())


@dataclass(frozen=True)
class EventMessage:
    headers: dict[str, object]
    payload: bytes

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


def decode_event_stream(data: bytes) -> list[EventMessage]:
    """Split ``data`` into event-stream messages, checking both CRCs (raises ValueError)."""
    messages: list[EventMessage] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 16:
            raise ValueError(f"truncated message at {offset}")
        total, headers_length, prelude_crc = struct.unpack_from(">III", data, offset)
        if binascii.crc32(data[offset : offset + 8]) != prelude_crc:
            raise ValueError(f"prelude CRC mismatch at {offset}")
        end = offset + total
        if end > len(data) or binascii.crc32(data[offset : end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            raise ValueError(f"message CRC mismatch (or truncated) at {offset}")
        headers: dict[str, object] = {}
        position, headers_end = offset + 12, offset + 12 + headers_length
        while position < headers_end:
            name_length = data[position]
            name = data[position + 1 : position + 1 + name_length].decode()
            position += 1 + name_length
            kind = data[position]
            position += 1
            if kind in (6, 7):  # bytes, string
                (length,) = struct.unpack_from(">H", data, position)
                raw = data[position + 2 : position + 2 + length]
                headers[name] = raw.decode() if kind == 7 else raw
                position += 2 + length
            elif kind in (0, 1):
                headers[name] = kind == 0
            else:
                sizes = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}
                if kind == 9:
                    headers[name] = str(uuid.UUID(bytes=data[position : position + 16]))
                    position += 16
                    continue
                fmt = sizes[kind]
                headers[name] = struct.unpack_from(fmt, data, position)[0]
                position += struct.calcsize(fmt)
        messages.append(EventMessage(headers, data[headers_end : end - 4]))
        offset = end
    return messages


# =========================================================================== SigV4 verification
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-fA-F]+)\s*$"
)
_BEDROCK_HOST = re.compile(r"^bedrock(?:-runtime)?(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
_CONVERSE = re.compile(r"^/model/(?P<model>[^/]+)/(?P<operation>converse|converse-stream)$")
_MODEL_PATH = re.compile(r"^/model/(?P<model>[^/]+)/")


@dataclass(frozen=True)
class SignatureCheck:
    """The SigV4 verdict on one request.

    ``reason`` is "ok" or one of: "missing authorization", "malformed authorization", "missing x-amz-date",
    "clock skew", "wrong service", "wrong region", "signed header missing", "payload hash mismatch",
    "unknown access key", "session token mismatch", "expired", "signed headers differ", "signature mismatch"."""

    request: RecordedRequest
    verified: bool
    reason: str
    url: str  # the URL the signature covers (x-intercepted-url, or http://<Host><path>)
    access_key_id: str | None  # from Credential=<id>/<date>/<region>/<service>/aws4_request
    session_token: str | None  # the x-amz-security-token header
    region: str | None
    service: str | None
    signed_headers: tuple[str, ...]
    amz_date: str | None
    credentials: Credentials | None = None  # the accepted set the request verified with
    expected_signature: str | None = None  # botocore's signature with the set matching the access key id


def _signature_with_botocore(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    service: str,
    amz_date: str,
) -> tuple[str, str]:
    """botocore's (signature, SignedHeaders) for the request as given, dated ``amz_date``."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotocoreCredentials

    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(
        BotocoreCredentials(credentials.access_key_id, credentials.secret_access_key, credentials.session_token),
        service,
        region,
    )
    canonical_request = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical_request)
    signature = str(signer.signature(string_to_sign, request))
    signed = str(signer.signed_headers(signer.headers_to_sign(request)))
    return signature, signed


def verify_sigv4(
    request: RecordedRequest,
    accepted: Iterable[Credentials],
    service: str = BEDROCK_SERVICE,
    now: datetime | None = None,
    max_clock_skew: float | None = 300.0,
    enforce_expiry: bool = True,
) -> SignatureCheck:
    """Rebuild the request its client signed and check its SigV4 ``Authorization`` with botocore.

    The URL is the original one (``x-intercepted-url``; without it ``http://<Host header><path>``), the
    headers are those named in SignedHeaders (``host`` from that URL), the body as received, the date the
    request's own ``x-amz-date``, region and service from the credential scope."""
    headers = request.headers
    url = headers.get("x-intercepted-url") or f"http://{headers.get('host', '')}{request.path}"
    token = headers.get("x-amz-security-token")
    amz_date = headers.get("x-amz-date")
    authorization = headers.get("authorization")

    def verdict(reason: str, **more: Any) -> SignatureCheck:
        values: dict[str, Any] = {
            "access_key_id": None,
            "region": None,
            "service": None,
            "signed_headers": (),
        }
        values.update(more)
        return SignatureCheck(request, reason == "ok", reason, url, session_token=token, amz_date=amz_date, **values)

    if not authorization:
        return verdict("missing authorization")
    match = _AUTHORIZATION.match(authorization.strip())
    scope = match.group("credential").split("/") if match else []
    if match is None or len(scope) != 5 or scope[4] != "aws4_request":
        return verdict("malformed authorization")
    access_key_id, scope_date, region, scope_service, _ = scope
    signed_names = tuple(match.group("signed").split(";"))
    known: dict[str, Any] = {
        "access_key_id": access_key_id,
        "region": region,
        "service": scope_service,
        "signed_headers": signed_names,
    }
    if not amz_date:
        return verdict("missing x-amz-date", **known)
    try:
        signed_at = datetime.strptime(amz_date, AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        return verdict("missing x-amz-date", **known)
    current = now or datetime.now(UTC)
    if scope_date != amz_date[:8] or (
        max_clock_skew is not None and abs((current - signed_at).total_seconds()) > max_clock_skew
    ):
        return verdict("clock skew", **known)
    if scope_service != service:
        return verdict("wrong service", **known)
    host = urlsplit(url).netloc
    host_match = _BEDROCK_HOST.match(urlsplit(url).hostname or "")
    if host_match and host_match.group("region") != region:
        return verdict("wrong region", **known)
    to_sign: dict[str, str] = {}
    for name in signed_names:
        if name == "host":
            to_sign[name] = host
        elif name in headers:
            to_sign[name] = headers[name]
        else:
            return verdict("signed header missing", **known)
    content_sha = headers.get("x-amz-content-sha256")
    if content_sha not in (None, UNSIGNED_PAYLOAD) and content_sha != hashlib.sha256(request.body).hexdigest():
        return verdict("payload hash mismatch", **known)
    candidates = [credentials for credentials in accepted if credentials.access_key_id == access_key_id]
    if not candidates:
        return verdict("unknown access key", **known)
    expected: str | None = None
    for credentials in candidates:
        signature, signed = _signature_with_botocore(
            request.method, url, to_sign, request.body, credentials, region, scope_service, amz_date
        )
        expected = expected or signature
        if (token or "") != credentials.session_token:
            return verdict("session token mismatch", credentials=credentials, expected_signature=signature, **known)
        if enforce_expiry and credentials.expired(current):
            return verdict("expired", credentials=credentials, expected_signature=signature, **known)
        if signed != match.group("signed").lower():
            return verdict("signed headers differ", expected_signature=signature, **known)
        if hmac.compare_digest(signature, match.group("signature").lower()):
            return verdict("ok", credentials=credentials, expected_signature=signature, **known)
    return verdict("signature mismatch", expected_signature=expected, **known)


# =========================================================================== Bedrock Runtime
class BedrockRuntimeMock(MockProvider):
    """Bedrock Runtime: ``POST /model/<model id>/converse`` and ``/converse-stream``, SigV4-verified.

    Accepted credentials: ``accepted`` (``accept(...)``, a snapshot) plus whatever ``signing_credentials()``
    returns at request time (``accept_from(endpoint)`` makes it the endpoint's live ``issued`` list). With no
    accepted credentials every request is refused. ``checks`` holds one :class:`SignatureCheck` per request.
    ``input_tokens`` / ``output_tokens`` fix the reported usage (default: estimates from the body and the
    reply text); ``stream_error`` = (exception type, message) ends a stream, after the first delta, with an
    in-stream exception instead of the rest."""

    name: ClassVar[str] = "bedrock"

    INVALID_TOKEN = ("UnrecognizedClientException", "The security token included in the request is invalid.")
    EXPIRED_TOKEN = ("ExpiredTokenException", "The security token included in the request is expired")
    BAD_SIGNATURE = (
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
        "Access Key and signing method. Consult the service documentation for details.",
    )
    MISSING_AUTH = ("MissingAuthenticationTokenException", "Missing Authentication Token")
    _ERROR_TYPES: ClassVar[Mapping[int, str]] = {
        400: "ValidationException",
        403: "AccessDeniedException",
        404: "ResourceNotFoundException",
        408: "ModelTimeoutException",
        424: "ModelErrorException",
        429: "ThrottlingException",
        500: "InternalServerException",
        503: "ServiceUnavailableException",
    }

    def __init__(
        self,
        reply_text: str | None = None,
        expected_key: str | None = None,
        accept: Iterable[Credentials] = (),
    ) -> None:
        super().__init__(reply_text, expected_key)
        self.accepted: list[Credentials] = list(accept)
        self.signing_credentials: Callable[[], Iterable[Credentials]] | None = None
        self.checks: list[SignatureCheck] = []
        self.max_clock_skew: float | None = 300.0
        self.enforce_expiry = True
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.stop_reason = "end_turn"
        self.stream_error: tuple[str, str] | None = None

    # -- credentials -------------------------------------------------------------
    def accept(self, credentials: Credentials | Iterable[Credentials]) -> None:
        """Accept these sets (a snapshot: later ``endpoint.issue()`` calls are not included)."""
        self.accepted.extend([credentials] if isinstance(credentials, Credentials) else credentials)

    def accept_from(self, endpoint: CredentialsEndpoint) -> None:
        """Accept every set ``endpoint`` has issued or will issue."""
        self.signing_credentials = lambda: list(endpoint.issued)

    def accepted_credentials(self) -> list[Credentials]:
        live = list(self.signing_credentials()) if self.signing_credentials is not None else []
        return [*self.accepted, *live]

    # -- inspection --------------------------------------------------------------
    def clear(self) -> None:
        super().clear()
        self.checks.clear()

    @property
    def verifications(self) -> list[bool]:
        return [check.verified for check in self.checks]

    @property
    def access_keys(self) -> list[str | None]:
        return [check.access_key_id for check in self.checks]

    @property
    def session_tokens(self) -> list[str | None]:
        return [check.session_token for check in self.checks]

    @property
    def model_ids(self) -> list[str | None]:
        return [self.model_id_of(request) for request in self.requests]

    @staticmethod
    def model_id_of(request: RecordedRequest) -> str | None:
        """The model id in ``/model/<id>/...``, URL-decoded (``anthropic.claude-3-haiku-20240307-v1:0``)."""
        match = _MODEL_PATH.match(request.route)
        return unquote(match.group("model")) if match else None

    def key_of(self, request: RecordedRequest) -> str | None:
        """The access key id in the Authorization header's credential scope."""
        match = _AUTHORIZATION.match((request.headers.get("authorization") or "").strip())
        return match.group("credential").split("/", 1)[0] if match else None

    # -- answering ---------------------------------------------------------------
    def verify(self, request: RecordedRequest) -> SignatureCheck:
        return verify_sigv4(
            request,
            self.accepted_credentials(),
            max_clock_skew=self.max_clock_skew,
            enforce_expiry=self.enforce_expiry,
        )

    def reply(self, request: RecordedRequest) -> Reply:
        check = self.verify(request)
        self.checks.append(check)
        if not check.verified:
            return self.denial(check)
        if self.expected_key is not None and check.access_key_id != self.expected_key:
            return self.auth_error()
        if self.error_status is not None:
            return self.error(self.error_status, f"{self.name} mock fails with {self.error_status}")
        return self.answer(request)

    def _aws_error(self, status: int, kind: str, message: str) -> Reply:
        headers = {"x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        headers["x-amzn-requestid"] = str(uuid.uuid4())
        return Reply.json({"message": message}, status, headers)

    def denial(self, check: SignatureCheck) -> Reply:
        """Bedrock's 403 for a request that fails authentication, by ``check.reason``: an unknown access key or
        a token not matching it is UnrecognizedClientException "The security token included in the request is
        invalid."; an expired set ExpiredTokenException; no Authorization MissingAuthenticationTokenException;
        anything else (wrong secret, tampered request, clock skew, wrong scope) InvalidSignatureException."""
        if check.reason in ("unknown access key", "session token mismatch"):
            kind, message = self.INVALID_TOKEN
        elif check.reason == "expired":
            kind, message = self.EXPIRED_TOKEN
        elif check.reason == "missing authorization":
            kind, message = self.MISSING_AUTH
        else:
            kind, message = self.BAD_SIGNATURE
        return self._aws_error(403, kind, message)

    def error(self, status: int, message: str) -> Reply:
        return self._aws_error(status, self._ERROR_TYPES.get(status, "InternalServerException"), message)

    def auth_error(self) -> Reply:
        return self._aws_error(403, *self.INVALID_TOKEN)

    def answer(self, request: RecordedRequest) -> Reply:
        match = _CONVERSE.match(request.route)
        if request.method != "POST" or match is None:
            return self._aws_error(404, "UnknownOperationException", f"Unknown operation {request.route}")
        body = request.json_object()
        if not isinstance(body.get("messages"), list):
            return self.error(400, "Malformed input request: messages is required, please reformat your input.")
        if match.group("operation") == "converse":
            return self.converse(request)
        return self.converse_stream(request)

    def usage(self, request: RecordedRequest) -> JsonObject:
        input_tokens = self.input_tokens if self.input_tokens is not None else token_estimate(request.body)
        output_tokens = self.output_tokens if self.output_tokens is not None else len(text_pieces(self.reply_text))
        return {"inputTokens": input_tokens, "outputTokens": output_tokens, "totalTokens": input_tokens + output_tokens}

    def converse(self, request: RecordedRequest) -> Reply:
        payload = {
            "output": {"message": {"role": "assistant", "content": [{"text": self.reply_text}]}},
            "stopReason": self.stop_reason,
            "usage": self.usage(request),
            "metrics": {"latencyMs": 42},
        }
        return Reply.json(payload, headers={"x-amzn-requestid": str(uuid.uuid4())})

    def converse_stream(self, request: RecordedRequest) -> Reply:
        pieces = text_pieces(self.reply_text)
        frames = [bedrock_event("messageStart", {"p": "abcdefgh", "role": "assistant"})]
        for index, piece in enumerate(pieces):
            frames.append(
                bedrock_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}, "p": "ab"})
            )
            if index == 0 and self.stream_error is not None:
                frames.append(bedrock_exception(*self.stream_error))
                return self._event_stream(frames)
        frames.append(bedrock_event("contentBlockStop", {"contentBlockIndex": 0, "p": "abcd"}))
        frames.append(bedrock_event("messageStop", {"p": "abcdef", "stopReason": self.stop_reason}))
        metadata = {"metrics": {"latencyMs": 42}, "p": "abc", "usage": self.usage(request)}
        frames.append(bedrock_event("metadata", metadata))
        return self._event_stream(frames)

    def _event_stream(self, frames: list[bytes]) -> Reply:
        reply = Reply.stream(frames, BEDROCK_EVENTSTREAM_CONTENT_TYPE)
        reply.headers["x-amzn-requestid"] = str(uuid.uuid4())
        return reply


# =========================================================================== OTLP/HTTP recorder
@dataclass(frozen=True)
class OtlpPayload:
    """One export as received."""

    signal: str  # "traces", "metrics" or "logs"
    path: str
    content_type: str
    headers: dict[str, str]
    raw: bytes  # as sent (compressed when content-encoding says so)
    data: bytes  # decompressed
    json: Any | None  # the parsed JSON body (None for protobuf or unparsable bodies)
    time: float

    @property
    def is_json(self) -> bool:
        return "json" in self.content_type.lower()

    @property
    def is_protobuf(self) -> bool:
        return "protobuf" in self.content_type.lower()


@dataclass(frozen=True)
class SpanRecord:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None  # None for a root span (absent or empty parentSpanId)
    attributes: dict[str, object]
    kind: object = None
    start_time_unix_nano: int = 0
    end_time_unix_nano: int = 0
    status: dict[str, object] = field(default_factory=dict)
    resource_attributes: dict[str, object] = field(default_factory=dict)
    scope_name: str | None = None


@dataclass(frozen=True)
class MetricPoint:
    """One data point. ``value``: asInt (int) / asDouble (float) for sum and gauge; the ``sum`` for histograms
    (``count`` and ``sum`` set too)."""

    name: str
    kind: str  # "sum", "gauge", "histogram", "exponentialHistogram" or "summary"
    value: int | float | None
    attributes: dict[str, object]
    count: int | None = None
    sum: float | None = None
    unit: str | None = None
    time_unix_nano: int | None = None
    resource_attributes: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class OtlpLogRecord:
    body: object
    severity_text: str | None
    severity_number: int | None
    attributes: dict[str, object]
    trace_id: str | None
    span_id: str | None
    time_unix_nano: int | None = None
    resource_attributes: dict[str, object] = field(default_factory=dict)


def otlp_value(value: Any) -> object:
    """An OTLP JSON AnyValue as Python: stringValue str, intValue int (JSON carries int64 as a string),
    doubleValue float, boolValue bool, arrayValue list, kvlistValue dict, bytesValue bytes (base64)."""
    if not isinstance(value, Mapping):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [otlp_value(item) for item in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return otlp_attributes((value["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in value:
        return base64.b64decode(value["bytesValue"])
    return None


def otlp_attributes(attributes: Any) -> dict[str, object]:
    """``[{key, value: AnyValue}]`` flattened to ``{key: python value}``."""
    if not isinstance(attributes, list):
        return {}
    return {str(item.get("key")): otlp_value(item.get("value")) for item in attributes if isinstance(item, Mapping)}


def _int_or_none(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _items(container: Any, *names: str) -> list[Any]:
    """The first list found under one of ``names`` (OTLP JSON and its pre-1.0 spellings)."""
    if isinstance(container, Mapping):
        for name in names:
            value = container.get(name)
            if isinstance(value, list):
                return value
    return []


class OtlpRecorder(_LoopbackServer):
    """An OTLP/HTTP receiver on 127.0.0.1: ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs``.

    JSON bodies (``application/json``, gzip/deflate content-encoding allowed) are parsed and answered 200
    ``{}`` (400 when unparsable); protobuf bodies are recorded unparsed and answered 200 with an empty
    ``application/x-protobuf`` body. ``error_status`` makes every export fail (still recorded)."""

    name: ClassVar[str] = "otlp"
    SIGNALS: ClassVar[Mapping[str, str]] = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}

    def __init__(self) -> None:
        super().__init__()
        self.payloads: list[OtlpPayload] = []
        self.error_status: int | None = None

    def environment(self, protocol: str = "http/json") -> dict[str, str]:
        """OTEL_EXPORTER_OTLP_* for an SDK exporting here."""
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": self.base_url, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}

    def clear(self) -> None:
        self.payloads.clear()

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        signal = self.SIGNALS.get(urlsplit(path).path)
        if signal is None:
            return Reply.json({"code": 5, "message": f"{path} not found"}, 404)
        if method != "POST":
            return Reply.json({"code": 12, "message": "method not allowed"}, 405)
        content_type = headers.get("content-type", "")
        encoding = headers.get("content-encoding", "").lower()
        data, parsed, problem = body, None, None
        try:
            if encoding == "gzip":
                data = gzip.decompress(body)
            elif encoding == "deflate":
                data = zlib.decompress(body)
            if "json" in content_type.lower():
                parsed = json.loads(data)
        except (OSError, ValueError, zlib.error) as error:
            problem = str(error)
        self.payloads.append(OtlpPayload(signal, path, content_type, headers, body, data, parsed, time.time()))
        if self.error_status is not None:
            return Reply.json(
                {"code": 14, "message": f"mock collector fails with {self.error_status}"}, self.error_status
            )
        if problem is not None:
            return Reply.json({"code": 3, "message": problem}, 400)
        if "protobuf" in content_type.lower():
            return Reply(200, {"content-type": "application/x-protobuf"}, b"")
        return Reply.json({})

    def _json_payloads(self, signal: str) -> list[Any]:
        return [payload.json for payload in list(self.payloads) if payload.signal == signal and payload.json]

    def spans(self) -> list[SpanRecord]:
        records: list[SpanRecord] = []
        for body in self._json_payloads("traces"):
            for resource_spans in _items(body, "resourceSpans", "resource_spans"):
                resource = otlp_attributes((resource_spans.get("resource") or {}).get("attributes"))
                for scope_spans in _items(resource_spans, "scopeSpans", "instrumentationLibrarySpans"):
                    scope = scope_spans.get("scope") or scope_spans.get("instrumentationLibrary") or {}
                    for span in _items(scope_spans, "spans"):
                        records.append(
                            SpanRecord(
                                name=str(span.get("name", "")),
                                trace_id=str(span.get("traceId", "")),
                                span_id=str(span.get("spanId", "")),
                                parent_span_id=span.get("parentSpanId") or None,
                                attributes=otlp_attributes(span.get("attributes")),
                                kind=span.get("kind"),
                                start_time_unix_nano=_int_or_none(span.get("startTimeUnixNano")) or 0,
                                end_time_unix_nano=_int_or_none(span.get("endTimeUnixNano")) or 0,
                                status=dict(span.get("status") or {}),
                                resource_attributes=resource,
                                scope_name=scope.get("name"),
                            )
                        )
        return records

    def metric_points(self) -> list[MetricPoint]:
        points: list[MetricPoint] = []
        for body in self._json_payloads("metrics"):
            for resource_metrics in _items(body, "resourceMetrics", "resource_metrics"):
                resource = otlp_attributes((resource_metrics.get("resource") or {}).get("attributes"))
                for scope_metrics in _items(resource_metrics, "scopeMetrics", "instrumentationLibraryMetrics"):
                    for metric in _items(scope_metrics, "metrics"):
                        points.extend(self._points(metric, resource))
        return points

    @staticmethod
    def _points(metric: Mapping[str, Any], resource: dict[str, object]) -> list[MetricPoint]:
        points: list[MetricPoint] = []
        name, unit = str(metric.get("name", "")), metric.get("unit")
        for kind in ("sum", "gauge", "histogram", "exponentialHistogram", "summary"):
            for point in _items(metric.get(kind), "dataPoints"):
                count = _int_or_none(point.get("count"))
                total = float(point["sum"]) if point.get("sum") is not None else None
                value: int | float | None
                if "asInt" in point:
                    value = int(point["asInt"])
                elif "asDouble" in point:
                    value = float(point["asDouble"])
                else:
                    value = total
                points.append(
                    MetricPoint(
                        name=name,
                        kind=kind,
                        value=value,
                        attributes=otlp_attributes(point.get("attributes")),
                        count=count,
                        sum=total,
                        unit=unit,
                        time_unix_nano=_int_or_none(point.get("timeUnixNano")),
                        resource_attributes=resource,
                    )
                )
        return points

    def log_records(self) -> list[OtlpLogRecord]:
        records: list[OtlpLogRecord] = []
        for body in self._json_payloads("logs"):
            for resource_logs in _items(body, "resourceLogs", "resource_logs"):
                resource = otlp_attributes((resource_logs.get("resource") or {}).get("attributes"))
                for scope_logs in _items(resource_logs, "scopeLogs", "instrumentationLibraryLogs"):
                    for log in _items(scope_logs, "logRecords", "log_records"):
                        records.append(
                            OtlpLogRecord(
                                body=otlp_value(log.get("body")),
                                severity_text=log.get("severityText"),
                                severity_number=_int_or_none(log.get("severityNumber")),
                                attributes=otlp_attributes(log.get("attributes")),
                                trace_id=log.get("traceId") or None,
                                span_id=log.get("spanId") or None,
                                time_unix_nano=_int_or_none(log.get("timeUnixNano")),
                                resource_attributes=resource,
                            )
                        )
        return records

    def wait_for_payloads(self, count: int = 1, timeout: float = 5.0) -> bool:
        return _wait(lambda: len(self.payloads) >= count, timeout)

    def wait_for_spans(self, count: int = 1, timeout: float = 5.0) -> bool:
        return _wait(lambda: len(self.spans()) >= count, timeout)

    def wait_for_metric(self, name: str, timeout: float = 5.0) -> bool:
        return _wait(lambda: any(point.name == name for point in self.metric_points()), timeout)
