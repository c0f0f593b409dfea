"""The independent attack run on the per-team limits and stream usage: each
finding, reproduced as the attacker wrote it and kept as a test of its fix.

Harness: the "teams" scenario (tests/scenarios.py) on two data planes and one
TLS redis-server, as tests/test_team_limits.py (its fixtures are reused)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from typing import Any

import pytest

from tests.gateway_harness import RunningDataPlane
from tests.mock_providers import MockProvider
from tests.team_fixtures import CHAT, call, client_id_of, fake_jwt
from tests.tls_store import Store

pytestmark = pytest.mark.gateway

INFLIGHT = "aigw:{search}:inflight"


def _raw(data_plane: RunningDataPlane, head: bytes, body: bytes = b"", read: bool = True, hold: float = 0.0) -> bytes:
    """Sends raw bytes; returns what came back (or b"" when not read)."""
    with socket.create_connection(("127.0.0.1", data_plane.port), timeout=30) as sock:
        sock.sendall(head + body)
        if hold:
            time.sleep(hold)
        if not read:
            return b""
        chunks = []
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            chunks.append(piece)
        return b"".join(chunks)


def _head(path: str, team: str, headers: dict[str, str]) -> bytes:
    trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    lines = [f"POST {path} HTTP/1.1", "Host: gw", f"Authorization: Bearer {fake_jwt(client_id_of(team))}",
             "x-portkey-provider: openai", "Connection: close", f"x-amzn-trace-id: {trace}"]  # fmt: skip
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _settled(store: Store, key: str, want: str, timeout: float = 3.0) -> str:
    deadline = time.monotonic() + timeout
    value = store.cli("ZCARD", key) if key.endswith("inflight") else store.cli("GET", key)
    while value != want and time.monotonic() < deadline:
        time.sleep(0.05)
        value = store.cli("ZCARD", key) if key.endswith("inflight") else store.cli("GET", key)
    return value


# --------------------------------------------------------------------------- in-flight slots
@pytest.mark.parametrize("kind", ["invalid-chunk", "chunked-over-max-body"])
def test_an_admitted_upload_whose_body_nginx_refuses_gives_its_in_flight_slot_back(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store, kind: str
) -> None:
    """Multipart routes read their body after admit (content phase). nginx's own
    400/413 then goes through error_page: an internal redirect that clears ngx.ctx
    and leaves location / (whose log_by_lua settles), so the slot is never freed."""
    task = two_tasks[0]
    head = _head("/v1/audio/transcriptions", "search",
                 {"Content-Type": "multipart/form-data; boundary=x", "Transfer-Encoding": "chunked"})  # fmt: skip
    if kind == "invalid-chunk":
        answer = _raw(task, head, b"zz\r\nhello\r\n0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    else:
        # Past client_max_body_size (the gateway's max_request_body_mib), sent chunked: nginx finds out while
        # reading, after the Lua access phase admitted the request.
        chunk = b"a" * (1 << 20)
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(120)) + b"0\r\n\r\n"
        try:
            answer = _raw(task, head, body)
        except OSError:
            answer = b"(reset)"
        assert answer.startswith((b"HTTP/1.1 413", b"(reset)")), answer[:200]
    time.sleep(1.0)
    assert _settled(fresh_store, INFLIGHT, "0") == "0", "in-flight slot leaked (held for 360 s)"


def test_two_leaked_slots_lock_the_team_out(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store
) -> None:
    task = two_tasks[0]
    head = _head("/v1/audio/transcriptions", "search",
                 {"Content-Type": "multipart/form-data; boundary=x", "Transfer-Encoding": "chunked"})  # fmt: skip
    for _ in range(2):
        _raw(task, head, b"zz\r\n")
    time.sleep(1.0)
    status, _, body, _ = call(two_tasks[1], "search")
    assert status == 200, f"team search locked out by two bad uploads: {status} {body}"


# --------------------------------------------------------------------------- budget
def test_a_request_abandoned_before_the_answer_still_counts_tokens(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store,
    mocks: dict[str, MockProvider], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """docs: 'A request whose usage is unknown (cut off ...) counts its max_tokens
    ... never zero'. A client that hangs up before the answer's headers (499)
    has its request reach the provider, and counts nothing."""
    openai = mocks["openai"]
    original = openai.handle
    finished = threading.Event()

    def slow(request: Any) -> Any:
        time.sleep(2.0)
        try:
            return original(request)
        finally:
            finished.set()

    monkeypatch.setattr(openai, "handle", slow)
    task = two_tasks[0]
    prompt = "x" * 40_000  # ~10,000 prompt tokens at the provider
    payload = json.dumps({**CHAT, "messages": [{"role": "user", "content": prompt}], "max_tokens": 64}).encode()
    head = _head("/v1/chat/completions", "batch", {"Content-Type": "application/json",
                                                   "Content-Length": str(len(payload))})  # fmt: skip
    _raw(task, head, payload, read=False, hold=0.5)  # closes without reading: 499
    assert finished.wait(10), "the provider never got the request"
    time.sleep(1.0)
    day_key = f"aigw:{{batch}}:tokens:{time.strftime('%Y%m%d', time.gmtime())}"
    counted = fresh_store.cli("GET", day_key)
    assert counted not in ("", "0"), f"provider answered ~10064 tokens; team batch was counted {counted!r}"


def test_abandoned_requests_free_their_slot_while_the_provider_still_works(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store,
    mocks: dict[str, MockProvider], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """search may have 2 requests in flight. A client that hangs up right after
    sending frees its slot at once (log phase), but the gateway goes on calling
    the provider: 3 provider calls run at once for a team limited to 2."""
    openai = mocks["openai"]
    original = openai.handle
    lock = threading.Lock()
    running = [0, 0]  # now, most at once

    def slow(request: Any) -> Any:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        try:
            time.sleep(3.0)
            return original(request)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(openai, "handle", slow)
    payload = json.dumps(CHAT).encode()
    for task in (two_tasks[0], two_tasks[1], two_tasks[0]):  # search: 3 a minute, 2 in flight
        head = _head("/v1/chat/completions", "search", {"Content-Type": "application/json",
                                                        "Content-Length": str(len(payload))})  # fmt: skip
        _raw(task, head, payload, read=False, hold=0.4)
    time.sleep(0.3)
    assert running[1] <= 2, f"{running[1]} provider calls at once for a team limited to 2 in flight"


# --------------------------------------------------------------------------- caps and the documented overshoot
def test_the_output_cap_is_per_request_not_per_choice(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store, mocks: dict[str, MockProvider]
) -> None:
    """batch may ask for 64 output tokens per request; n=128 asks the provider for 128 x 64."""
    status, _, _, _ = call(two_tasks[0], "batch", {**CHAT, "max_tokens": 64, "n": 128})
    sent = [r.json_object() for r in mocks["openai"].requests]
    assert not (status == 200 and sent and sent[-1].get("n") == 128), "n=128 x max_tokens=64 reached the provider"


# --------------------------------------------------------------------------- fail open
def test_a_short_store_stall_does_not_lock_a_team_out(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store, mocks: dict[str, MockProvider]
) -> None:
    """Limits fail open: a store that stalls for a second must not refuse anything
    afterwards. But the settles that fail (or are skipped by the breaker) while it
    stalls leave their slots behind for 360 s: the team is refused once it is back."""
    gate = threading.Event()
    mocks["openai"].stream_gate = gate
    first, second = two_tasks
    stream = {**CHAT, "stream": True}
    threads = [threading.Thread(target=lambda t=t: call(t, "search", stream)) for t in (first, second)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while fresh_store.cli("ZCARD", INFLIGHT) != "2" and time.monotonic() < deadline:
        time.sleep(0.05)
    fresh_store.cli("CLIENT", "PAUSE", "1500", "WRITE")  # a 1.5 s stall, nothing lost
    gate.set()  # both streams end during the stall
    for thread in threads:
        thread.join(timeout=30)
    time.sleep(7)  # the stall over, the breakers closed again
    status, _, body, _ = call(first, "search")
    assert status == 200, f"after a 1.5 s stall: {status} {body}; in flight {fresh_store.cli('ZCARD', INFLIGHT)}"


def test_a_request_the_gateway_times_out_on_the_clients_word_still_counts(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store,
    mocks: dict[str, MockProvider], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """x-portkey-request-timeout (forwarded) makes the gateway give up on the provider
    and answer 408: an error answer counts nothing, though the provider did the work
    (and, with x-portkey-retry-count, may do it again per counted request)."""
    openai = mocks["openai"]
    original = openai.handle
    calls: list[float] = []

    def slow(request: Any) -> Any:
        calls.append(time.monotonic())
        time.sleep(1.5)
        return original(request)

    monkeypatch.setattr(openai, "handle", slow)
    body = {**CHAT, "messages": [{"role": "user", "content": "x" * 40_000}], "max_tokens": 64}
    payload = json.dumps(body).encode()
    head = _head("/v1/chat/completions", "batch", {"Content-Type": "application/json",
                                                   "x-portkey-request-timeout": "300",
                                                   "x-portkey-retry-count": "5",
                                                   "Content-Length": str(len(payload))})  # fmt: skip
    answer = _raw(two_tasks[0], head, payload)
    time.sleep(2.0)
    day_key = f"aigw:{{batch}}:tokens:{time.strftime('%Y%m%d', time.gmtime())}"
    counted = fresh_store.cli("GET", day_key)
    assert counted not in ("", "0"), (
        f"answer {answer.split(chr(13).encode())[0]!r}; provider called {len(calls)} time(s); counted {counted!r}"
    )


# --------------------------------------------------------------------------- usage a client cannot hide
@pytest.mark.parametrize(
    ("provider", "route"),
    [("openai", "/v1/chat/completions"), ("openai", "/v1/completions"), ("azure-openai", "/v1/chat/completions")],
)
def test_every_stream_the_data_plane_asks_usage_for_reaches_the_provider_asking(
    two_tasks: tuple[RunningDataPlane, RunningDataPlane], fresh_store: Store,
    mocks: dict[str, MockProvider], provider: str, route: str,
) -> None:  # fmt: skip
    """Each (route, provider) the data plane asks for usage on must reach the provider asking: the
    gateway 1.15.2 keeps only the params of its provider config (Azure's `complete` config has no
    stream_options, so Azure completions are not in the list, and count their bound instead)."""
    from tests.gateway_harness import request

    body: dict[str, Any] = {"model": "gpt-4o", "max_tokens": 64, "stream": True}
    if route == "/v1/completions":
        body["prompt"] = "x" * 4000
    else:
        body["messages"] = CHAT["messages"]
    headers = {"Authorization": f"Bearer {fake_jwt(client_id_of('batch'))}", "x-portkey-provider": provider}
    response = request(f"{two_tasks[0].base_url}{route}", body, headers)
    assert response.status == 200, response.body[:300]
    sent = mocks[provider].requests[-1].json_object()
    asked = (sent.get("stream_options") or {}).get("include_usage")
    assert asked is True, f"{provider} {route}: the provider got {sorted(sent)}"
    assert '"usage"' not in response.body.decode()  # and this client, which did not ask, sees none of it
