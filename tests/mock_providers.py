"""Recording mock LLM providers on loopback, in the wire shapes the Portkey
gateway 1.15.2 speaks to its upstreams.

Each mock is an ``http.server.ThreadingHTTPServer`` on ``127.0.0.1:0``
(daemon threads, HTTP/1.1 keep-alive, chunked streaming) that records every
request (method, path with query, lowercased headers, body bytes) in
``requests`` and answers realistically enough that the gateway turns the
answer into a normal 200 for its client:

* :class:`OpenAIMock`: ``/v1/chat/completions`` (JSON, or SSE when the body
  has ``"stream": true``, with a final usage chunk when
  ``stream_options.include_usage``), ``/v1/completions``, ``/v1/embeddings``,
  ``/v1/responses``, ``/v1/images/generations``, ``/v1/audio/transcriptions``
  and ``/translations`` (multipart; ``{"text": ...}``), ``/v1/audio/speech``,
  ``/v1/moderations``, ``GET /v1/models``.
* :class:`AzureOpenAIMock`: the same routes under
  ``/openai/deployments/<deployment>/...?api-version=...``, plus
  ``/openai/<route>?api-version=...`` (the gateway sends ``/responses`` and
  proxied routes such as ``/moderations`` there) and ``/openai/v1/<route>``.
* :class:`AnthropicMock`: ``POST /v1/messages`` (JSON, or the SSE sequence
  message_start, content_block_start, ping, content_block_delta...,
  content_block_stop, message_delta, message_stop) and
  ``/v1/messages/count_tokens``.
* :class:`GoogleMock`: ``POST /{v1,v1beta,v1alpha}/models/<model>:generateContent``,
  ``:streamGenerateContent`` (the gateway 1.15.2 sends no ``alt=sse``: the
  answer is Gemini's streamed JSON array, elements separated by ``\\r\\n``,
  which is what the gateway splits on; with ``alt=sse`` it is SSE),
  ``:embedContent``, ``:batchEmbedContents``, ``:countTokens``.
* :class:`EchoSink` (the attacker's server): answers any method and path with
  200 and a JSON body (chat-completion shaped, so the gateway relays it) whose
  ``echo`` member repeats the request's method, path, headers and body; SSE
  when the body asks for a stream.

Streaming gate: when ``stream_gate`` is an ``Event``, a streaming answer writes
and flushes its first event, then waits (at most ``STREAM_GATE_TIMEOUT``
seconds) for the event before writing the rest; ``gate_results`` records, per
gated stream, whether the event came in time.

``key_of(request)`` extracts the credential where the provider expects it
(OpenAI: ``Authorization: Bearer``; Azure: ``api-key`` or ``Authorization:
Bearer``; Anthropic: ``x-api-key``; Google: ``key=`` query, which is what the
gateway 1.15.2 uses, or ``x-goog-api-key``). With ``expected_key`` set, a
request carrying another key gets the provider's authentication error;
``error_status`` makes every request fail with a provider-shaped error.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import struct
import sys
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self, cast
from urllib.parse import parse_qs, urlsplit

STREAM_GATE_TIMEOUT = 10.0

OPENAI_HOST = "api.openai.com"
ANTHROPIC_HOST = "api.anthropic.com"
GOOGLE_HOST = "generativelanguage.googleapis.com"
AZURE_OPENAI_HOST_SUFFIX = ".openai.azure.com"

# Official upstream hosts the gateway 1.15.2 calls (src/providers/*/api.ts), to the provider name.
UPSTREAM_HOSTS: Mapping[str, str] = {
    OPENAI_HOST: "openai",  # https://api.openai.com/v1
    ANTHROPIC_HOST: "anthropic",  # https://api.anthropic.com/v1
    GOOGLE_HOST: "google",  # https://generativelanguage.googleapis.com
}


def azure_openai_host(resource_name: str) -> str:
    """The Azure OpenAI host of a resource: https://<resource>.openai.azure.com/openai."""
    return f"{resource_name}{AZURE_OPENAI_HOST_SUFFIX}"


def upstream_hosts(azure_resources: tuple[str, ...] = ()) -> dict[str, str]:
    """UPSTREAM_HOSTS plus the Azure host of each resource name, to the provider name."""
    hosts = dict(UPSTREAM_HOSTS)
    hosts.update({azure_openai_host(resource): "azure-openai" for resource in azure_resources})
    return hosts


JsonObject = dict[str, Any]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the mock received it."""

    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lowercased names; repeated headers joined with ", "
    body: bytes

    @property
    def route(self) -> str:
        """The path without its query string."""
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query, keep_blank_values=True)

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def json_object(self) -> JsonObject:
        """The body as a JSON object, or {} when it is not one (multipart, empty, invalid)."""
        try:
            value = self.json()
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass
class Reply:
    """An answer: ``body`` for a plain response, or ``chunks`` for a streamed (chunked) one."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes] | None = None

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, {"content-type": "application/json", **(headers or {})}, json.dumps(payload).encode())

    @classmethod
    def stream(cls, chunks: list[bytes], content_type: str = "text/event-stream") -> Reply:
        return cls(200, {"content-type": content_type, "cache-control": "no-cache"}, b"", chunks)


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; ``data`` is JSON-encoded unless it is already a string."""
    payload = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()


def text_pieces(text: str) -> list[str]:
    """``text`` split into word-sized pieces (at least one) for streamed answers."""
    return re.findall(r"\S+\s*", text) or [text]


def token_estimate(data: bytes | str) -> int:
    return max(1, len(data) // 4)


def fake_vector(seed: str, dimensions: int = 8) -> list[float]:
    digest = uuid.uuid5(uuid.NAMESPACE_OID, seed).bytes
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dimensions)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: LoopbackServer, port: int = 0) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client (the gateway) dropping its connection, or stop() closing it, is not an error worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def owner(self) -> LoopbackServer:
        return cast(_Server, self.server).owner

    def setup(self) -> None:
        super().setup()
        self.owner._track(self.connection, True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.owner._track(self.connection, False)

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            data = bytearray()
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline(65537)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        owner = self.owner
        body = self._read_body()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        try:
            reply = owner.handle(RecordedRequest(self.command, self.path, headers, body))
        except Exception as error:
            reply = owner.failure(error)
        try:
            self._write(reply, owner)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _write(self, reply: Reply, owner: LoopbackServer) -> None:
        self.send_response(reply.status)
        for name, value in {**reply.headers, **owner.extra_headers}.items():
            self.send_header(name, value)
        for name, value in owner.extra_header_lines:
            self.send_header(name, value)
        if reply.chunks is None:
            self.send_header("content-length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
            self.wfile.flush()
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for index, chunk in enumerate(reply.chunks):
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            if index == 0:
                owner.first_chunk_sent()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class LoopbackServer(ABC):
    """A ThreadingHTTPServer on 127.0.0.1 (daemon threads, HTTP/1.1 keep-alive,
    chunked streaming) with ``start()``/``stop()`` and ``with``: the base of every
    mock here and in tests/aws_mocks.py. A subclass answers each request."""

    name: ClassVar[str] = "loopback"

    def __init__(self) -> None:
        # Added to every answer (e.g. a header a compromised upstream could send).
        self.extra_headers: dict[str, str] = {}
        # Likewise, each sent as its own line (a name may repeat).
        self.extra_header_lines: list[tuple[str, str]] = []
        self.port = 0
        self._server: _Server | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    @abstractmethod
    def handle(self, request: RecordedRequest) -> Reply:
        """The answer to one request."""

    def failure(self, error: Exception) -> Reply:
        """The answer when ``handle`` raised."""
        return Reply.json({"message": f"mock {self.name} failed: {error!r}"}, 500)

    def first_chunk_sent(self) -> None:
        """Called in a streamed answer once its first chunk is on the wire."""
        return

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the value to map an upstream host to."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> Self:
        """Start listening (on ``port``, e.g. to come back where the gateway's map points; default: any)."""
        if self._server is None:
            self._server = _Server(self, port)
            self.port = int(self._server.server_address[1])
            threading.Thread(target=self._server.serve_forever, name=f"mock-{self.name}", daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def _track(self, connection: socket.socket, opened: bool) -> None:
        with self._lock:
            if opened:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class MockProvider(LoopbackServer):
    """A recording mock upstream on 127.0.0.1 (``start()``/``stop()``, or ``with``)."""

    name: ClassVar[str] = "mock"

    def __init__(self, reply_text: str | None = None, expected_key: str | None = None) -> None:
        super().__init__()
        self.requests: list[RecordedRequest] = []
        self.stream_gate: threading.Event | None = None
        self.gate_results: list[bool] = []
        self.default_reply_text = reply_text if reply_text is not None else f"Hello from the {self.name} mock."
        self.reply_text = self.default_reply_text
        self.expected_key = expected_key
        self.error_status: int | None = None
        # The message of those errors (default: "<name> mock fails with <status>").
        self.error_message: str | None = None

    def handle(self, request: RecordedRequest) -> Reply:
        self.requests.append(request)
        return self.reply(request)

    def failure(self, error: Exception) -> Reply:
        return Reply.json({"error": {"message": f"mock {self.name} failed: {error!r}"}}, 500)

    def first_chunk_sent(self) -> None:
        # A streaming test holds the rest of the answer until its client has the first chunk.
        if self.stream_gate is not None:
            self.gate_results.append(self.stream_gate.wait(STREAM_GATE_TIMEOUT))

    # -- inspection --------------------------------------------------------------
    def clear(self) -> None:
        self.requests.clear()
        self.gate_results.clear()

    def wait_for_requests(self, count: int = 1, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def key_of(self, request: RecordedRequest) -> str | None:
        """The credential in ``request``, where this provider expects it."""
        return bearer(request)

    def api_keys(self) -> list[str | None]:
        return [self.key_of(request) for request in self.requests]

    # -- answering ---------------------------------------------------------------
    def reply(self, request: RecordedRequest) -> Reply:
        if self.error_status is not None:
            message = self.error_message or f"{self.name} mock fails with {self.error_status}"
            return self.error(self.error_status, message)
        if self.expected_key is not None and self.key_of(request) != self.expected_key:
            return self.auth_error()
        return self.answer(request)

    @abstractmethod
    def answer(self, request: RecordedRequest) -> Reply:
        """The provider's answer to an authorised request."""

    def error(self, status: int, message: str) -> Reply:
        return Reply.json({"error": {"message": message, "type": "server_error", "param": None, "code": None}}, status)

    def auth_error(self) -> Reply:
        return self.error(401, "Incorrect API key provided")


def bearer(request: RecordedRequest) -> str | None:
    value = request.headers.get("authorization")
    if value is None:
        return None
    return value[7:] if value.lower().startswith("bearer ") else value


# --------------------------------------------------------------------------- OpenAI
class OpenAIMock(MockProvider):
    """OpenAI: https://api.openai.com/v1/<route>, ``Authorization: Bearer <key>``."""

    name: ClassVar[str] = "openai"

    def answer(self, request: RecordedRequest) -> Reply:
        route = request.route
        if not route.startswith("/v1/"):
            return self.not_found(route)
        return self.openai_route(route[len("/v1") :], request)

    def not_found(self, route: str) -> Reply:
        return Reply.json(
            {
                "error": {
                    "message": f"Invalid URL ({route})",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            },
            404,
        )

    def error(self, status: int, message: str) -> Reply:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return Reply.json({"error": {"message": message, "type": kind, "param": None, "code": None}}, status)

    def auth_error(self) -> Reply:
        return Reply.json(
            {
                "error": {
                    "message": "Incorrect API key provided.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
            401,
        )

    def openai_route(self, route: str, request: RecordedRequest) -> Reply:
        """Answer ``route`` (the path after ``/v1``), shared with Azure."""
        method = request.method
        if method == "GET" and route == "/models":
            return Reply.json({"object": "list", "data": [self._model_entry("gpt-4o-mini")]})
        if method != "POST":
            return self.not_found(route)
        handlers = {
            "/chat/completions": self.chat_completions,
            "/completions": self.completions,
            "/embeddings": self.embeddings,
            "/responses": self.responses,
            "/images/generations": self.images,
            "/audio/transcriptions": self.transcription,
            "/audio/translations": self.transcription,
            "/audio/speech": self.speech,
            "/moderations": self.moderations,
        }
        handler = handlers.get(route)
        return handler(request) if handler else self.not_found(route)

    @staticmethod
    def _model_entry(model: str) -> JsonObject:
        return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "mock"}

    @staticmethod
    def _usage(request: RecordedRequest, completion: str) -> JsonObject:
        prompt_tokens = token_estimate(request.body)
        completion_tokens = len(text_pieces(completion))
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    def chat_completions(self, request: RecordedRequest) -> Reply:
        body = request.json_object()
        model = str(body.get("model") or "gpt-4o-mini")
        created = int(time.time())
        completion_id = f"chatcmpl-mock{uuid.uuid4().hex[:12]}"
        text = self.reply_text
        if not body.get("stream"):
            return Reply.json(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_mock",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text, "refusal": None},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": self._usage(request, text),
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: JsonObject, finish_reason: str | None) -> JsonObject:
            payload: JsonObject = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_mock",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                payload["usage"] = None
            return payload

        pieces = text_pieces(text)
        chunks = [sse(chunk({"role": "assistant", "content": pieces[0]}, None))]
        chunks += [sse(chunk({"content": piece}, None)) for piece in pieces[1:]]
        chunks.append(sse(chunk({}, "stop")))
        if include_usage:
            usage_chunk = chunk({}, None)
            usage_chunk["choices"] = []
            usage_chunk["usage"] = self._usage(request, text)
            chunks.append(sse(usage_chunk))
        chunks.append(sse("[DONE]"))
        return Reply.stream(chunks)

    def completions(self, request: RecordedRequest) -> Reply:
        body = request.json_object()
        model = str(body.get("model") or "gpt-3.5-turbo-instruct")
        created = int(time.time())
        completion_id = f"cmpl-mock{uuid.uuid4().hex[:12]}"
        text = self.reply_text

        def completion(choice_text: str, finish_reason: str | None) -> JsonObject:
            return {
                "id": completion_id,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [{"text": choice_text, "index": 0, "logprobs": None, "finish_reason": finish_reason}],
            }

        if not body.get("stream"):
            return Reply.json({**completion(text, "stop"), "usage": self._usage(request, text)})
        pieces = text_pieces(text)
        chunks = [sse(completion(piece, None)) for piece in pieces]
        chunks.append(sse(completion("", "stop")))
        chunks.append(sse("[DONE]"))
        return Reply.stream(chunks)

    def embeddings(self, request: RecordedRequest) -> Reply:
        body = request.json_object()
        model = str(body.get("model") or "text-embedding-3-small")
        raw_input = body.get("input", "")
        inputs = raw_input if isinstance(raw_input, list) else [raw_input]
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            vector = fake_vector(json.dumps(item))
            embedding: Any = (
                base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = token_estimate(json.dumps(raw_input))
        return Reply.json(
            {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        )

    def responses(self, request: RecordedRequest) -> Reply:
        body = request.json_object()
        model = str(body.get("model") or "gpt-4o-mini")
        text = self.reply_text
        response_id = f"resp_mock{uuid.uuid4().hex[:12]}"
        message_id = f"msg_mock{uuid.uuid4().hex[:12]}"
        usage = self._usage(request, text)

        def response(status: str, output_text: str | None) -> JsonObject:
            output = []
            if output_text is not None:
                output.append(
                    {
                        "type": "message",
                        "id": message_id,
                        "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": output_text, "annotations": []}],
                    }
                )
            return {
                "id": response_id,
                "object": "response",
                "created_at": int(time.time()),
                "status": status,
                "error": None,
                "incomplete_details": None,
                "model": model,
                "output": output,
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": (
                    {
                        "input_tokens": usage["prompt_tokens"],
                        "output_tokens": usage["completion_tokens"],
                        "total_tokens": usage["total_tokens"],
                    }
                    if status == "completed"
                    else None
                ),
            }

        if not body.get("stream"):
            return Reply.json(response("completed", text))
        chunks = [
            sse(
                {"type": "response.created", "sequence_number": 0, "response": response("in_progress", None)},
                "response.created",
            )
        ]
        sequence = 1
        for piece in text_pieces(text):
            delta = {
                "type": "response.output_text.delta",
                "sequence_number": sequence,
                "item_id": message_id,
                "output_index": 0,
                "content_index": 0,
                "delta": piece,
            }
            chunks.append(sse(delta, "response.output_text.delta"))
            sequence += 1
        done = {
            "type": "response.output_text.done",
            "sequence_number": sequence,
            "item_id": message_id,
            "output_index": 0,
            "content_index": 0,
            "text": text,
        }
        chunks.append(sse(done, "response.output_text.done"))
        completed = {
            "type": "response.completed",
            "sequence_number": sequence + 1,
            "response": response("completed", text),
        }
        chunks.append(sse(completed, "response.completed"))
        return Reply.stream(chunks)

    def images(self, request: RecordedRequest) -> Reply:
        body = request.json_object()
        count = int(body.get("n") or 1)
        if body.get("response_format") == "b64_json":
            # a 1x1 transparent PNG
            png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
            data = [{"b64_json": png, "revised_prompt": body.get("prompt")} for _ in range(count)]
        else:
            data = [
                {"url": f"https://images.mock.invalid/{uuid.uuid4().hex}.png", "revised_prompt": body.get("prompt")}
                for _ in range(count)
            ]
        return Reply.json({"created": int(time.time()), "data": data})

    def transcription(self, request: RecordedRequest) -> Reply:
        return Reply.json({"text": self.reply_text})

    def speech(self, request: RecordedRequest) -> Reply:
        return Reply(200, {"content-type": "audio/mpeg"}, b"ID3mock-audio")

    def moderations(self, request: RecordedRequest) -> Reply:
        body = request.json_object()
        raw_input = body.get("input", "")
        inputs = raw_input if isinstance(raw_input, list) else [raw_input]
        categories = ["harassment", "hate", "self-harm", "sexual", "violence"]
        result = {
            "flagged": False,
            "categories": dict.fromkeys(categories, False),
            "category_scores": dict.fromkeys(categories, 0.0001),
        }
        return Reply.json(
            {
                "id": f"modr-mock{uuid.uuid4().hex[:12]}",
                "model": str(body.get("model") or "omni-moderation-latest"),
                "results": [result for _ in inputs],
            }
        )


# --------------------------------------------------------------------------- Azure OpenAI
_AZURE_DEPLOYMENT = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)(?P<route>/.*)$")


class AzureOpenAIMock(OpenAIMock):
    """Azure OpenAI: https://<resource>.openai.azure.com/openai/deployments/<deployment>/<route>?api-version=...
    (``/openai/<route>?api-version=`` for /responses and proxied routes), ``api-key: <key>``."""

    name: ClassVar[str] = "azure-openai"

    def key_of(self, request: RecordedRequest) -> str | None:
        return request.headers.get("api-key") or bearer(request)

    def error(self, status: int, message: str) -> Reply:
        return Reply.json({"error": {"code": str(status), "message": message}}, status)

    def auth_error(self) -> Reply:
        return Reply.json(
            {
                "error": {
                    "code": "401",
                    "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
                    "provide a valid key for an active subscription and use a correct regional API endpoint for "
                    "your resource.",
                }
            },
            401,
        )

    def not_found(self, route: str) -> Reply:
        return Reply.json({"error": {"code": "404", "message": "Resource not found"}}, 404)

    @staticmethod
    def deployment_of(request: RecordedRequest) -> str | None:
        match = _AZURE_DEPLOYMENT.match(request.route)
        return match.group("deployment") if match else None

    def answer(self, request: RecordedRequest) -> Reply:
        path = request.route
        match = _AZURE_DEPLOYMENT.match(path)
        if path.startswith("/openai/v1/"):
            return self.openai_route(path[len("/openai/v1") :], request)
        if not request.query_value("api-version"):
            return Reply.json(
                {
                    "error": {
                        "code": "404",
                        "message": "Resource not found (the api-version query parameter is missing)",
                    }
                },
                404,
            )
        if match:
            return self.openai_route(match.group("route"), request)
        if path.startswith("/openai/"):
            return self.openai_route(path[len("/openai") :], request)
        return self.not_found(path)


# --------------------------------------------------------------------------- Anthropic
class AnthropicMock(MockProvider):
    """Anthropic: https://api.anthropic.com/v1/messages, ``x-api-key: <key>``, ``anthropic-version``."""

    name: ClassVar[str] = "anthropic"

    def key_of(self, request: RecordedRequest) -> str | None:
        return request.headers.get("x-api-key")

    def _error(self, status: int, kind: str, message: str) -> Reply:
        return Reply.json({"type": "error", "error": {"type": kind, "message": message}}, status)

    def error(self, status: int, message: str) -> Reply:
        kinds = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error"}
        kinds |= {404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}
        return self._error(status, kinds.get(status, "api_error"), message)

    def auth_error(self) -> Reply:
        return self._error(401, "authentication_error", "invalid x-api-key")

    def answer(self, request: RecordedRequest) -> Reply:
        if request.method == "POST" and request.route == "/v1/messages":
            return self.messages(request)
        if request.method == "POST" and request.route == "/v1/messages/count_tokens":
            return Reply.json({"input_tokens": token_estimate(request.body)})
        return self._error(404, "not_found_error", "Not found")

    def messages(self, request: RecordedRequest) -> Reply:
        body = request.json_object()
        model = str(body.get("model") or "claude-3-5-sonnet-20241022")
        message_id = f"msg_mock{uuid.uuid4().hex[:20]}"
        text = self.reply_text
        input_tokens = token_estimate(request.body)
        output_tokens = len(text_pieces(text))
        if not body.get("stream"):
            return Reply.json(
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                }
            )
        start = {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1},
            },
        }
        chunks = [
            sse(start, "message_start"),
            sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            ),
            sse({"type": "ping"}, "ping"),
        ]
        for piece in text_pieces(text):
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
            chunks.append(sse(delta, "content_block_delta"))
        chunks.append(sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        }
        chunks.append(sse(message_delta, "message_delta"))
        chunks.append(sse({"type": "message_stop"}, "message_stop"))
        return Reply.stream(chunks)


# --------------------------------------------------------------------------- Google (Gemini API)
_GOOGLE_METHOD = re.compile(r"^/(?P<version>v1|v1beta|v1alpha)/models/(?P<model>[^:/]+):(?P<method>[A-Za-z]+)$")


class GoogleMock(MockProvider):
    """Gemini API: https://generativelanguage.googleapis.com/v1beta/models/<model>:<method>?key=<key>
    (the gateway 1.15.2 passes the key in the query, not in x-goog-api-key)."""

    name: ClassVar[str] = "google"

    def key_of(self, request: RecordedRequest) -> str | None:
        return request.query_value("key") or request.headers.get("x-goog-api-key")

    def _error(self, code: int, status: str, message: str) -> Reply:
        return Reply.json({"error": {"code": code, "message": message, "status": status}}, code)

    def error(self, status: int, message: str) -> Reply:
        statuses = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}
        return self._error(status, statuses.get(status, "INTERNAL"), message)

    def auth_error(self) -> Reply:
        return self._error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")

    def answer(self, request: RecordedRequest) -> Reply:
        match = _GOOGLE_METHOD.match(request.route)
        if request.method != "POST" or not match:
            return self._error(404, "NOT_FOUND", f"The requested URL {request.route} was not found on this server.")
        model, method = match.group("model"), match.group("method")
        if method == "generateContent":
            return Reply.json(self._generation(request, model, self.reply_text, final=True))
        if method == "streamGenerateContent":
            return self.stream_generate(request, model)
        if method == "embedContent":
            return Reply.json({"embedding": {"values": fake_vector(request.body.decode(errors="replace"))}})
        if method == "batchEmbedContents":
            requests = request.json_object().get("requests") or []
            return Reply.json({"embeddings": [{"values": fake_vector(json.dumps(item))} for item in requests]})
        if method == "countTokens":
            return Reply.json({"totalTokens": token_estimate(request.body)})
        return self._error(404, "NOT_FOUND", f"Method {method} not found for model {model}.")

    def _generation(self, request: RecordedRequest, model: str, text: str, final: bool) -> JsonObject:
        prompt_tokens = token_estimate(request.body)
        candidate: JsonObject = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        usage: JsonObject = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens}
        if final:
            candidate["finishReason"] = "STOP"
            output_tokens = len(text_pieces(self.reply_text))
            usage = {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": prompt_tokens + output_tokens,
            }
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}

    def stream_generate(self, request: RecordedRequest, model: str) -> Reply:
        pieces = text_pieces(self.reply_text)
        elements = [
            json.dumps(self._generation(request, model, piece, final=index == len(pieces) - 1))
            for index, piece in enumerate(pieces)
        ]
        if request.query_value("alt") == "sse":
            return Reply.stream([f"data: {element}\r\n\r\n".encode() for element in elements])
        # Streamed JSON array: "[{e0}\n,\r\n{e1}\n,\r\n{e2}\n]". Each write ends with the "\r\n" the gateway
        # splits on (except the last, flushed at the end of the stream), so the first element is complete alone.
        chunks = []
        for index, element in enumerate(elements):
            opening = "[" if index == 0 else ""
            closing = "\n]" if index == len(elements) - 1 else "\n,\r\n"
            chunks.append(f"{opening}{element}{closing}".encode())
        return Reply.stream(chunks, "application/json; charset=UTF-8")


# --------------------------------------------------------------------------- the attacker
class EchoSink(MockProvider):
    """The attacker's server: every method and path answers 200 with the request echoed back.

    The body is chat-completion shaped (so the gateway relays it to its client) with an ``echo`` member:
    ``{"method", "path", "headers", "body"}``. A request whose JSON body has ``"stream": true`` gets SSE:
    one ``data:`` event carrying the same object, then ``data: [DONE]``."""

    name: ClassVar[str] = "sink"

    def key_of(self, request: RecordedRequest) -> str | None:
        return (
            request.headers.get("api-key")
            or request.headers.get("x-api-key")
            or request.headers.get("x-goog-api-key")
            or request.query_value("key")
            or bearer(request)
        )

    def reply(self, request: RecordedRequest) -> Reply:
        # The attacker takes every request, whatever key (or error setting) the mock has.
        return self.answer(request)

    def answer(self, request: RecordedRequest) -> Reply:
        echo = {
            "method": request.method,
            "path": request.path,
            "headers": request.headers,
            "body": request.body.decode("utf-8", errors="replace"),
        }
        content = f"echo {request.method} {request.path}"
        payload: JsonObject = {
            "id": "chatcmpl-echo",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "echo",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            "echo": echo,
        }
        if request.json_object().get("stream"):
            chunk = {
                **payload,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            }
            return Reply.stream([sse(chunk), sse("[DONE]")])
        return Reply.json(payload)


# --------------------------------------------------------------------------- helpers
PROVIDER_CLASSES: Mapping[str, type[MockProvider]] = {
    "openai": OpenAIMock,
    "azure-openai": AzureOpenAIMock,
    "anthropic": AnthropicMock,
    "google": GoogleMock,
}


def start_all() -> dict[str, MockProvider]:
    """A started mock per provider ("openai", "azure-openai", "anthropic", "google") and the EchoSink ("sink")."""
    mocks: dict[str, MockProvider] = {name: cls() for name, cls in PROVIDER_CLASSES.items()}
    mocks["sink"] = EchoSink()
    for mock in mocks.values():
        mock.start()
    return mocks


def stop_all(mocks: Mapping[str, MockProvider]) -> None:
    for mock in mocks.values():
        mock.stop()


def intercept_map(mocks: Mapping[str, MockProvider], azure_resources: tuple[str, ...] = ()) -> dict[str, str]:
    """The AIGW_INTERCEPT_MAP object: each official upstream host to its mock's base URL."""
    return {host: mocks[provider].base_url for host, provider in upstream_hosts(azure_resources).items()}


def intercept_env(
    mocks: Mapping[str, MockProvider], log_path: str, azure_resources: tuple[str, ...] = ()
) -> dict[str, str]:
    """The three AIGW_INTERCEPT_* variables for tests/harness/intercept.cjs (``mocks`` must have a "sink")."""
    return {
        "AIGW_INTERCEPT_MAP": json.dumps(intercept_map(mocks, azure_resources)),
        "AIGW_INTERCEPT_SINK": mocks["sink"].base_url,
        "AIGW_INTERCEPT_LOG": log_path,
    }
