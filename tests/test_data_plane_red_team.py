"""The independent red-team run against the data plane (OpenResty + Lua) in front of the real
Portkey gateway 1.15.2, as the "org-keys" scenario synthesizes it (JWT auth on, org keys for
openai, anthropic, google and azure, Bedrock through the task role), kept as a regression suite.

Two kinds of test live here:

* ``FINDING-n`` tests: what the run found, each fixed (the test failed before its fix).
* ``HELD`` tests replay the attack classes that did not get through, so they stay closed.

Everything stays on loopback; the crash finding runs against a gateway of its own so that it
cannot take the session's gateway down with it.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import random
import re
import socket
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.aws_mocks import CredentialsEndpoint, OtlpRecorder, bedrock_runtime_host
from tests.gateway_fixtures import (
    AZURE_RESOURCE,
    CLIENT,
    CLIENT_ID,
    ORG_KEYS,
    REFERENCES,
    REGION,
    assert_no_org_key_leaves_its_provider,
    official_hosts,
)
from tests.gateway_harness import GatewayHarness, RunningDataPlane, TaskDefinition, running_gateway
from tests.mock_providers import MockProvider, intercept_map

pytestmark = pytest.mark.gateway

JWT = CLIENT["Authorization"]
BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
INTERNALS = re.compile(rb"table: 0x|userdata: |function: |builtin: |cdata<|thread: ")


# -- helpers -------------------------------------------------------------------------------------------------
def send(port: int, payload: bytes, timeout: float = 20.0) -> bytes:
    """Bytes exactly as given on a connection of their own; everything until the server closes.
    (No half-close: nginx takes a FIN while it proxies as the client going away, 499.)"""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(payload)
        chunks = []
        try:
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            chunks.append(b"<<client timeout>>")
        return b"".join(chunks)


def post(
    dp: RunningDataPlane,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
    *,
    content_type: str | None = "application/json",
    timeout: float = 20.0,
) -> bytes:
    data = json.dumps(body).encode() if isinstance(body, dict | list) else body
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Connection: close"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append(f"Content-Length: {len(data)}")
    return send(dp.port, "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + data, timeout)


def status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.") else 0


def body_of(reply: bytes) -> bytes:
    head, _, rest = reply.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" not in head.lower():
        return rest
    return dechunk(rest)[1]


def dechunk(rest: bytes) -> tuple[list[int], bytes]:
    """The chunk sizes a client sees, and the body."""
    sizes, data = [], b""
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            break
        sizes.append(size)
        data += rest[:size]
        rest = rest[size + 2 :]
    return sizes, data


def new_trace() -> str:
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"


def rule(reply: bytes) -> str | None:
    try:
        return json.loads(body_of(reply))["error"]["rule"]
    except (ValueError, KeyError, TypeError):
        return None


def task_secrets(credentials: CredentialsEndpoint) -> list[str]:
    return [s for c in credentials.issued for s in (c.secret_access_key, c.session_token)]


def assert_nothing_leaked(harness: GatewayHarness, credentials: CredentialsEndpoint, *texts: bytes) -> None:
    """No org key and no task-role secret in what the client got; org keys only to their official
    host; the task role's session token only to bedrock-runtime."""
    assert_no_org_key_leaves_its_provider(harness, *texts)
    for text in texts:
        for secret in task_secrets(credentials):
            assert secret.encode() not in text, "a task-role secret reached the client"
    for event in harness.interception.outbound():
        carried = json.dumps(event)
        for secret in task_secrets(credentials):
            if secret in carried:
                assert event["host"] == bedrock_runtime_host(REGION), event


def outbound_hosts(harness: GatewayHarness) -> set[str]:
    return {event["host"] for event in harness.interception.outbound()}


ALL_OFFICIAL = (
    official_hosts("openai") | official_hosts("anthropic") | official_hosts("google")
    | official_hosts("azure-openai") | {bedrock_runtime_host(REGION)}
)  # fmt: skip


def worker_rss_mib(dp: RunningDataPlane) -> dict[int, int]:
    """RSS (MiB) of each nginx worker of a data plane (its start command execs into the master)."""
    pids = subprocess.run(["pgrep", "-P", str(dp.process.pid)], capture_output=True, text=True).stdout.split()
    rss = {}
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss[int(pid)] = int(line.split()[1]) // 1024
    return rss


def wait_for_gateway_handlers(workdir: Path, timeout: float = 10.0) -> None:
    """The gateway answers as soon as it listens, but installs its uncaughtException and
    unhandledRejection handlers only after a 1 s start-up spinner; until then any stray rejection
    kills it. Wait for its "Ready for connections" line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Ready for connections" in (workdir / "gateway.log").read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError("the gateway never printed 'Ready for connections'")


@pytest.fixture(scope="module")
def upstreams(mocks: dict[str, MockProvider]) -> dict[str, str]:
    mapped = intercept_map(mocks, (AZURE_RESOURCE,))
    mapped[bedrock_runtime_host(REGION)] = mocks["bedrock"].base_url
    return mapped


# =============================================================================================================
# FINDINGS (each fixed; the test states the invariant)
# =============================================================================================================


# -- FINDING-1 (high): one request with a client config kills the gateway process --------------------------
def test_finding_1_a_client_config_cannot_kill_the_gateway(
    org_task: TaskDefinition, mocks: dict[str, MockProvider], upstreams: dict[str, str],
    credentials: CredentialsEndpoint,
) -> None:  # fmt: skip
    # A gateway of its own: this request takes the whole gateway process down.
    with running_gateway(org_task, upstreams, mocks["sink"].base_url, REFERENCES) as own:
        dp = own.start_data_plane(ORG_KEYS, "crash", credentials_uri=credentials.full_uri)
        wait_for_gateway_handlers(own.workdir)  # not the start-up window: the gateway is fully up
        config = '{"provider":"openai","api_key":"sk-client-own","retry":{"attempts":1e308}}'
        post(dp, "/v1/chat/completions", CHAT, {**CLIENT, "x-portkey-config": config}, timeout=15)
        time.sleep(2)
        gateway = own.processes[0]
        after = post(dp, "/v1/chat/completions", CHAT, {**CLIENT, "x-portkey-provider": "openai"})
        assert gateway.poll() is None, "the gateway process exited (V8 fatal 'invalid size error')"
        assert status(after) == 200


# -- FINDING-2 (low): a config whose weights select no target hangs for proxy_read_timeout (300 s) ---------
@pytest.mark.parametrize("weight", ["0", "-1", "1e999"])
def test_finding_2_a_config_always_gets_an_answer(
    harness: GatewayHarness, org_data_plane: RunningDataPlane, weight: str
) -> None:
    wait_for_gateway_handlers(harness.workdir)  # before that, this very request would kill the gateway
    target = f'{{"provider":"openai","api_key":"k","weight":{weight}}}'
    config = f'{{"strategy":{{"mode":"loadbalance"}},"targets":[{target}]}}'
    reply = post(org_data_plane, "/v1/chat/completions", CHAT, {**CLIENT, "x-portkey-config": config}, timeout=8)
    assert harness.processes[0].poll() is None
    assert status(reply) != 0, reply[:200]


# -- FINDING-3 (medium): usage a client can make disappear -------------------------------------------------
def test_finding_3a_usage_of_a_large_answer_is_logged(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    trace = new_trace()
    body = {"model": "text-embedding-3-small", "input": ["x"] * 9000}
    reply = post(org_data_plane, "/v1/embeddings", body, {**CLIENT, "x-portkey-provider": "openai",
                                                          "x-amzn-trace-id": trace})  # fmt: skip
    assert status(reply) == 200
    usage = json.loads(body_of(reply))["usage"]
    line = org_data_plane.access_line(trace)
    assert line["bytes"] > 1024 * 1024
    assert line["input_tokens"] == usage["prompt_tokens"], line


def test_finding_3b_usage_of_a_streamed_response_is_logged(org_data_plane: RunningDataPlane) -> None:
    trace = new_trace()
    reply = post(org_data_plane, "/v1/responses", {"model": "gpt-4o", "input": "hi", "stream": True},
                 {**CLIENT, "x-portkey-provider": "openai", "x-amzn-trace-id": trace})  # fmt: skip
    events = [json.loads(line[5:]) for line in body_of(reply).decode().splitlines() if line.startswith("data:")]
    (completed,) = [e for e in events if e.get("type") == "response.completed"]
    assert completed["response"]["usage"]["input_tokens"] > 0
    line = org_data_plane.access_line(trace)
    assert line["input_tokens"] == completed["response"]["usage"]["input_tokens"], line


# -- FINDING-4 (medium): references to objects stored at the provider that the body check misses ----------
STORED_REFERENCES = [
    # Gemini: an https image_url becomes fileData.fileUri; a Files API URI is a file stored under the org key.
    ("/v1/chat/completions", "google", {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "summarise"},
        {"type": "image_url", "image_url": {"url": "https://generativelanguage.googleapis.com/v1beta/files/"
                                                   "other-team-file", "mime_type": "application/pdf"}}]}]},
     "generativelanguage.googleapis.com/v1beta/files/other-team-file"),
    # OpenAI Responses: an input item that references an item of a stored (other team's) response.
    ("/v1/responses", "openai", {"model": "gpt-4o", "input": [{"type": "item_reference", "id": "msg_other_team"}]},
     "msg_other_team"),
    # OpenAI chat: a previous audio answer, by id.
    ("/v1/chat/completions", "openai", {"model": "gpt-4o-audio-preview", "messages": [
        {"role": "assistant", "audio": {"id": "audio_other_team"}}, {"role": "user", "content": "again"}]},
     "audio_other_team"),
    # OpenAI speech: a custom voice stored in the organisation.
    ("/v1/audio/speech", "openai", {"model": "gpt-4o-mini-tts", "input": "hi", "voice": {"id": "voice_org_custom"}},
     "voice_org_custom"),
]  # fmt: skip


STORED_REFERENCE_IDS = ["gemini-files-uri", "responses-item-reference", "chat-audio-id", "speech-voice-id"]


@pytest.mark.parametrize(("route", "provider", "body", "marker"), STORED_REFERENCES, ids=STORED_REFERENCE_IDS)
def test_finding_4_stored_object_references_are_refused(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider], route: str, provider: str,
    body: dict[str, Any], marker: str,
) -> None:  # fmt: skip
    reply = post(org_data_plane, route, body, {**CLIENT, "x-portkey-provider": provider})
    forwarded = [r for r in mocks[provider].requests if marker.encode() in r.body]
    assert not forwarded, f"{status(reply)}: {forwarded[0].body[:300]!r}"


# -- FINDING-5 (medium): the masking filter's hold-back is an oracle on org-key prefixes -------------------
def _responses_stream(dp: RunningDataPlane, mocks: dict[str, MockProvider], echoed: str) -> tuple[list[int], bytes]:
    # The mock stands for a model asked to repeat text (or any provider echo of attacker text).
    mocks["openai"].reply_text = echoed
    reply = post(dp, "/v1/responses", {"model": "gpt-4o", "input": "repeat after me", "stream": True},
                 {**CLIENT, "x-portkey-provider": "openai"})  # fmt: skip
    return dechunk(reply.partition(b"\r\n\r\n")[2])


def test_finding_5_chunk_framing_does_not_depend_on_the_org_keys(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    key = ORG_KEYS["OPENAI_API_KEY"]
    right, wrong = key[:-1], "Z" * (len(key) - 1)  # a correct guess of all but the last char, and a wrong one
    # Calibrate: where the echoed text ends in the stream (it appears three times: delta, done, completed),
    # and where nginx's reads cut the stream, for one padding length; then aim each occurrence at each cut.
    start = 1000
    sizes, data = _responses_stream(org_data_plane, mocks, "A" * start + wrong + " tail")
    cuts = list(itertools.accumulate(sizes))[:-1]
    ends = [i + len(wrong) for i in range(len(data)) if data.startswith(wrong.encode(), i)]
    paddings = sorted({start + (cut - end) // k for k, end in enumerate(ends, 1) for cut in cuts
                       if (cut - end) % k == 0 and start + (cut - end) // k > 0})  # fmt: skip
    differing = []
    for padding in paddings:
        for n in range(padding - 2, padding + 3):
            with_right = _responses_stream(org_data_plane, mocks, "A" * n + right + " tail")[0]
            with_wrong = _responses_stream(org_data_plane, mocks, "A" * n + wrong + " tail")[0]
            if with_right != with_wrong:
                differing.append((n, with_right, with_wrong))
    assert paddings
    assert not differing, f"chunk sizes differ for a right vs a wrong key prefix: {differing[:3]}"


# -- FINDING-6 (low): credentials that reach the client in a form or place the filter does not look at -----
@pytest.mark.parametrize("where", ["header-name", "header-101", "base64-body", "percent-encoded-session-token"])
def test_finding_6_no_credential_in_any_form_reaches_the_client(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider], credentials: CredentialsEndpoint, where: str
) -> None:
    key = ORG_KEYS["OPENAI_API_KEY"]
    provider, body, expected = "openai", CHAT, key.encode()
    if where == "header-name":
        mocks["openai"].extra_headers = {f"x-{key}": "1"}
    elif where == "header-101":
        mocks["openai"].extra_headers = {**{f"x-pad-{i:03d}": "v" for i in range(110)}, "x-zz-echo": f"key={key}"}
    elif where == "base64-body":
        expected = base64.b64encode(key.encode())
        mocks["openai"].reply_text = f"echo {expected.decode()}"
    else:
        # Echo a session token percent-encoded. Earlier tests rotate the task role's credentials, so the
        # two workers may hold different sets: only an answer to the worker whose token it echoes counts.
        provider, body = "bedrock", {**CHAT, "model": BEDROCK_MODEL}
        headers = {**CLIENT, "x-portkey-provider": "bedrock"}
        post(org_data_plane, "/v1/chat/completions", body, headers)
        for _ in range(20):
            token = mocks["bedrock"].session_tokens[-1]
            assert token and urllib.parse.quote(token, safe="") != token  # it has '+' and '/'
            expected = urllib.parse.quote(token, safe="").encode()
            mocks["bedrock"].reply_text = f"echo {expected.decode()}"
            reply = post(org_data_plane, "/v1/chat/completions", body, headers)
            if mocks["bedrock"].session_tokens[-1] == token:
                break
        else:
            pytest.fail("no worker answered twice in a row")
        assert status(reply) == 200
        assert expected not in reply
        return
    reply = post(org_data_plane, "/v1/chat/completions", body, {**CLIENT, "x-portkey-provider": provider})
    assert status(reply) == 200
    assert expected not in reply


# -- FINDING-7 (medium): a large JSON body cost a worker hundreds of MiB, retained -------------------------
def test_finding_7_a_large_body_does_not_exhaust_a_worker(
    harness: GatewayHarness, org_data_plane: RunningDataPlane
) -> None:
    # Decoding a 10 MiB body of empty arrays grew a worker by 285 MiB, kept. Now the containers are
    # counted first and such a body is refused before any table exists. (Its time is the benchmark's
    # business, not a test's.)
    dp = harness.start_data_plane(ORG_KEYS, "redteam-memory")  # a data plane of its own: memory stays grown
    before = worker_rss_mib(dp)
    items = 10 * 1024 * 1024 // 3
    body = b'{"model":"gpt-4o","messages":[],"x":[' + b",".join([b"[]"] * items) + b'],"file_id":"x"}'
    reply = post(dp, "/v1/chat/completions", body, {**CLIENT, "x-portkey-provider": "openai"}, timeout=60)
    after = worker_rss_mib(dp)
    grown = max(after[pid] - before.get(pid, 0) for pid in after)
    assert status(reply) == 413 and rule(reply) == "body"  # more objects and arrays than a body may hold
    assert grown < 128, f"a worker grew {grown} MiB"


# -- FINDING-8 (low): a header byte the gateway rejects yields an empty, non-JSON 400 logged as served -----
def test_finding_8_every_refusal_is_json_with_a_rule(org_data_plane: RunningDataPlane) -> None:
    trace = new_trace()
    payload = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               + f"Authorization: {JWT}\r\nx-amzn-trace-id: {trace}\r\n".encode()
               + b"x-portkey-provider: openai\r\nx-portkey-metadata: a\x01b\r\nContent-Type: application/json\r\n"
               + f"Content-Length: {len(json.dumps(CHAT))}\r\n\r\n".encode() + json.dumps(CHAT).encode())  # fmt: skip
    reply = send(org_data_plane.port, payload)
    assert status(reply) == 400
    assert rule(reply) is not None, reply
    assert org_data_plane.access_line(trace)["rule"] != ""


# =============================================================================================================
# The second red-team run (against 7d79892): its findings, each fixed
# -- RUN2-F1 (critical): a long streamed line cost minutes of a worker's CPU (a quadratic line split) ----------
def test_run2_finding_1_a_long_streamed_answer_passes_and_its_usage_is_logged(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    # One 384 KiB word: response.output_text.done and response.completed each carry it on one line, longer
    # than the event limit. Took 139 s at 32 KiB before; the connection's 20 s timeout is the guard here.
    mocks["openai"].reply_text = "y" * (384 * 1024)
    trace = new_trace()
    reply = post(org_data_plane, "/v1/responses", {"model": "gpt-4o", "input": "hi", "stream": True},
                 {**CLIENT, "x-portkey-provider": "openai", "x-amzn-trace-id": trace})  # fmt: skip
    assert status(reply) == 200 and b"response.completed" in reply
    line = org_data_plane.access_line(trace)
    assert isinstance(line["input_tokens"], int) and isinstance(line["output_tokens"], int), line


# -- RUN2-F2 (critical): the Google Files-URI pattern backtracked over one body string --------------------------
def test_run2_finding_2_a_string_repeating_googles_host_is_refused_at_once(
    org_data_plane: RunningDataPlane, harness: GatewayHarness
) -> None:
    # 3,000 repeats took 2.2 s of a worker before; 30,000 (1 MiB) are refused at the first.
    body = {"model": "gemini-2.5-flash",
            "messages": [{"role": "user", "content": "generativelanguage.googleapis.com/" * 30000}]}  # fmt: skip
    reply = post(org_data_plane, "/v1/chat/completions", body, {**CLIENT, "x-portkey-provider": "google"})
    assert (status(reply), rule(reply)) == (403, "stored-object")
    assert harness.interception.outbound() == []


# -- RUN2-F3 (medium): one config made hundreds of upstream calls, which outlived the client -------------------
def test_run2_finding_3_a_config_may_make_at_most_16_upstream_calls(
    org_data_plane: RunningDataPlane, harness: GatewayHarness
) -> None:
    node = '{"provider":"openai","api_key":"k"}'
    for fan in (8, 8, 2):  # 128 leaves
        node = '{"strategy":{"mode":"fallback"},"targets":[' + ",".join([node] * fan) + "]}"
    for config in (node, '{"retry":{"attempts":2},"strategy":{"mode":"fallback"},"targets":['
                   + ",".join(['{"provider":"openai","api_key":"k"}'] * 8) + "]}"):  # fmt: skip
        reply = post(org_data_plane, "/v1/chat/completions", CHAT, {**CLIENT, "x-portkey-config": config})
        assert (status(reply), rule(reply)) == (403, "config"), reply[:300]
    assert harness.interception.outbound() == []


# -- RUN2-L1 (low): the task role's access key id, and lowercase percent-encoding, came back unmasked ----------
@pytest.mark.parametrize("form", ["access-key-id", "lowercase-percent-session-token"])
def test_run2_low_1_every_form_of_the_task_roles_credentials_is_masked(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider], credentials: CredentialsEndpoint, form: str
) -> None:
    def spelled(token: str, key_id: str) -> str:
        if form == "access-key-id":
            return key_id
        return re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), urllib.parse.quote(token, safe=""))

    by_token = {c.session_token: c for c in credentials.issued}
    headers = {**CLIENT, "x-portkey-provider": "bedrock"}
    post(org_data_plane, "/v1/chat/completions", {**CHAT, "model": BEDROCK_MODEL}, headers)
    for _ in range(20):  # only an answer to the worker whose set is echoed counts (see finding 6)
        used = by_token[str(mocks["bedrock"].session_tokens[-1])]
        echoed = spelled(used.session_token, used.access_key_id)
        mocks["bedrock"].reply_text = f"echo {echoed}"
        reply = post(org_data_plane, "/v1/chat/completions", {**CHAT, "model": BEDROCK_MODEL}, headers)
        if mocks["bedrock"].session_tokens[-1] == used.session_token:
            break
    else:
        pytest.fail("no worker answered twice in a row")
    assert status(reply) == 200 and echoed.encode() not in reply and b"echo *****" in reply


# =============================================================================================================
# HELD: attack classes that did not get through
# =============================================================================================================
_BODY = json.dumps(CHAT).encode()
_A = f"Authorization: {JWT}\r\n".encode()
_P = b"x-portkey-provider: openai\r\n"
_CT = b"Content-Type: application/json\r\n"
_CL = f"Content-Length: {len(_BODY)}\r\n".encode()
_CHUNKED = b"%x\r\n" % len(_BODY) + _BODY + b"\r\n0\r\n\r\n"
_SMUGGLED = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + _A + b"x-portkey-provider: anthropic\r\n" + _CT
             + _CL + b"\r\n" + _BODY)  # fmt: skip
_LINE = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
RAW_REQUESTS: dict[str, tuple[bytes, set[int]]] = {
    "cl-and-te": (_LINE + _A + _P + _CT + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + _CHUNKED, {400}),
    "te-then-cl-smuggle": (_LINE + _A + _P + _CT + b"Transfer-Encoding: chunked\r\nContent-Length: 300\r\n\r\n"
                           + _CHUNKED + _SMUGGLED, {400}),
    "two-cl": (_LINE + _A + _P + _CT + _CL + b"Content-Length: 5\r\n\r\n" + _BODY, {400}),
    "te-identity-chunked": (_LINE + _A + _P + _CT + b"Transfer-Encoding: identity, chunked\r\n\r\n" + _CHUNKED, {501}),
    "te-xchunked": (_LINE + _A + _P + _CT + b"Transfer-Encoding: xchunked\r\n\r\n" + _CHUNKED, {501}),
    "te-space-before-colon": (_LINE + _A + _P + _CT + b"Transfer-Encoding : chunked\r\n" + _CL + b"\r\n" + _BODY,
                              {400}),
    "te-tab": (_LINE + _A + _P + _CT + b"Transfer-Encoding:\tchunked\r\n\r\n" + _CHUNKED, {501}),
    "http10-te": (b"POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\n" + _A + _P + _CT
                  + b"Transfer-Encoding: chunked\r\n\r\n" + _CHUNKED, {400}),
    "http10": (b"POST /v1/chat/completions HTTP/1.0\r\n" + _A + _P + _CT + _CL + b"\r\n" + _BODY, {200}),
    "obs-fold-provider": (_LINE + _A + b"x-portkey-provider: openai\r\n anthropic\r\n" + _CT + _CL + b"\r\n" + _BODY,
                          {400}),
    "obs-fold-config": (_LINE + _A + _P + b'x-portkey-config: \r\n {"provider":"openai","custom_host":"http://a"}\r\n'
                        + _CT + _CL + b"\r\n" + _BODY, {400}),
    "underscore-config": (_LINE + _A + _P + b'x_portkey_config: {"provider":"openai","api_key":"k",'
                          b'"custom_host":"http://attacker.example"}\r\n' + _CT + _CL + b"\r\n" + _BODY, {200}),
    "underscore-custom-host": (_LINE + _A + _P + b"x_portkey_custom_host: http://attacker.example\r\n" + _CT + _CL
                               + b"\r\n" + _BODY, {200}),
    "dup-provider-other-case": (_LINE + _A + _P + b"X-Portkey-Provider: anthropic\r\n" + _CT + _CL + b"\r\n" + _BODY,
                                {400}),
    "dup-content-type": (_LINE + _A + _P + _CT + b"content-type: multipart/form-data\r\n" + _CL + b"\r\n" + _BODY,
                         {400}),
    "dup-authorization": (_LINE + _A + b"authorization: Bearer sk-client\r\n" + _P + _CT + _CL + b"\r\n" + _BODY,
                          {400}),
    "bare-lf": (_LINE.replace(b"\r\n", b"\n") + _A.replace(b"\r\n", b"\n") + _P.replace(b"\r\n", b"\n")
                + _CT.replace(b"\r\n", b"\n") + _CL.replace(b"\r\n", b"\n") + b"\n" + _BODY, {200}),
    "nul-in-provider": (_LINE + _A + b"x-portkey-provider: openai\x00anthropic\r\n" + _CT + _CL + b"\r\n" + _BODY,
                        {400}),
    "cr-in-value": (_LINE + _A + b"x-portkey-metadata: a\rb\r\n" + _P + _CT + _CL + b"\r\n" + _BODY, {400}),
    "cl-plus": (_LINE + _A + _P + _CT + f"Content-Length: +{len(_BODY)}\r\n\r\n".encode() + _BODY, {400}),
    "chunk-size-overflow": (_LINE + _A + _P + _CT + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n"
                            + _BODY + b"\r\n0\r\n\r\n", {400}),
    "chunk-ext-with-crlf": (_LINE + _A + _P + _CT + b"Transfer-Encoding: chunked\r\n\r\n" + b'%x;a="b\r\nc"\r\n'
                            % len(_BODY) + _BODY + b"\r\n0\r\n\r\n", {400}),
    "one-byte-chunks": (_LINE + _A + _P + _CT + b"Transfer-Encoding: chunked\r\n\r\n"
                        + b"".join(b"1\r\n%c\r\n" % c for c in _BODY) + b"0\r\n\r\n", {200}),
    "absolute-form-userinfo": (b"POST http://u:p@attacker.example:8443/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                               + _A + _P + _CT + _CL + b"\r\n" + _BODY, {400}),
    "absolute-form-https": (b"POST https://attacker.example/v1/chat/completions HTTP/1.1\r\n" + _A + _P + _CT + _CL
                            + b"\r\n" + _BODY, {400}),
    "absolute-form-http": (b"POST http://attacker.example/v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
                           b"Connection: close\r\n"
                           + _A + _P + _CT + _CL + b"\r\n" + _BODY, {200}),
    "host-official": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.anthropic.com\r\nConnection: close\r\n"
                      + _A + _P + _CT + _CL
                      + b"\r\n" + _BODY, {200}),
    "asterisk": (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n" + _A + b"\r\n", {400}),
    "connect": (b"CONNECT attacker.example:443 HTTP/1.1\r\nHost: attacker.example:443\r\n" + _A + b"\r\n", {400}),
    "http2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {400}),
    "h2c-upgrade": (_LINE + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n"
                    + _A + _P + _CT + _CL + b"\r\n" + _BODY, {400}),
    "lowercase-method": (b"post /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + _A + _P + _CT + _CL + b"\r\n" + _BODY,
                         {400}),
    "header-line-9k": (_LINE + _A + _P + _CT + b"x-portkey-metadata: " + b"a" * 9000 + b"\r\n" + _CL + b"\r\n"
                       + _BODY, {400, 494}),
    "pipelined-refused-then-served": (b"POST /v1/files HTTP/1.1\r\nHost: x\r\n" + _A + _CT
                                      + b"Content-Length: 10\r\n\r\n0123456789" + _LINE
                                      + _A + _P + _CT + _CL + b"\r\n" + _BODY, {404}),
    "request-in-refused-body": (_LINE + _A + b"x-portkey-provider: mistral-ai\r\n" + _CT
                                + f"Content-Length: {len(_SMUGGLED)}\r\n\r\n".encode() + _SMUGGLED, {403}),
    "expect-100": (_LINE + b"Expect: 100-continue\r\n" + _A + _P + _CT + _CL + b"\r\n" + _BODY, {100}),
    "space-in-header-name": (_LINE + _A + _P + b"x-portkey-custom-host : http://attacker.example\r\n" + _CT + _CL
                             + b"\r\n" + _BODY, {400}),
    "trace-high-bytes": (_LINE + _A + _P + _CT + b'x-amzn-trace-id: Root=1-"\\\xff\xfe\xc3\x28' + b"\r\n" + _CL
                         + b"\r\n" + _BODY, {200}),
    # Control bytes pass nginx and the Lua code; Node refuses them with a bare 400 (FINDING-8).
    "trace-control-bytes": (_LINE + _A + _P + _CT + b"x-amzn-trace-id: Root=1-\x7f\x1b[31m\r\n" + _CL + b"\r\n"
                            + _BODY, {400}),
    "trace-nul": (_LINE + _A + _P + _CT + b"x-amzn-trace-id: Root=1-\x00" + b"\r\n" + _CL + b"\r\n" + _BODY, {400}),
    "path-bytes": (b'POST /v1/%22%5C%FF%00x HTTP/1.1\r\nHost: x\r\n' + _A + _CT + _CL + b"\r\n" + _BODY, {400, 404}),
    "method-junk": (b"P\xffST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    "websocket-upgrade": (b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade, close\r\n"
                          b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + _A
                          + b"\r\n", {400}),
}  # fmt: skip


@pytest.mark.parametrize("name", list(RAW_REQUESTS))
def test_held_malformed_and_smuggling_requests(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, credentials: CredentialsEndpoint,
    mocks: dict[str, MockProvider], name: str,
) -> None:  # fmt: skip
    payload, statuses = RAW_REQUESTS[name]
    before = len(org_data_plane.access_lines())
    reply = send(org_data_plane.port, payload, timeout=10)
    assert status(reply) in statuses, reply[:300]
    assert outbound_hosts(harness) <= {"api.openai.com"}
    assert [r for r in mocks["anthropic"].requests] == []  # the smuggled anthropic request never ran
    assert mocks["sink"].requests == []
    assert_nothing_leaked(harness, credentials, reply)
    time.sleep(0.1)
    for line in org_data_plane.access_lines()[before:]:  # strict UTF-8 JSON, parsed by access_lines()
        assert all(not isinstance(v, str) or v.isascii() for v in line.values()), line
    assert not INTERNALS.search(reply)


# Header selectors and host overrides the gateway reads (x-${b}-… in its build), from clients.
SELECTORS = {
    "x-portkey-azure-ad-token": "attacker-token", "x-portkey-azure-auth-mode": "managed",
    "x-portkey-azure-managed-client-id": "x", "x-portkey-azure-entra-scope": "https://attacker.example/.default",
    "x-portkey-azure-model-name": "../../x", "x-portkey-azure-extra-params": "drop",
    "x-portkey-azure-foundry-url": "https://attacker.example", "openai-beta": "assistants=v2",
    "x-portkey-openai-beta": "assistants=v2", "x-portkey-aws-auth-type": "assumedRole",
    "x-portkey-aws-role-arn": "arn:aws:iam::123456789012:role/attacker", "x-portkey-aws-external-id": "x",
    "x-portkey-aws-s3-bucket": "other-team", "x-portkey-provider-model": "arn:aws:bedrock:x",
    "x-portkey-aws-bedrock-model": "x", "x-portkey-vertex-service-account-json": "{}",
    "x-portkey-vertex-project-id": "attacker", "x-portkey-custom-host": "https://attacker.example/v1",
    "x-portkey-forward-headers": "authorization,x-api-key", "x-portkey-api-key": "pk-attacker",
    "x-portkey-virtual-key": "vk", "x-portkey-mode": "proxy", "x-portkey-cache": "simple",
    "x-portkey-default-input-guardrails": '[{"default.webhook":{"webhookURL":"https://attacker.example"}}]',
    "x-forwarded-host": "attacker.example", "forwarded": "host=attacker.example", "x-original-url": "/v1/files",
    "x-rewrite-url": "/v1/files", "x-http-method-override": "GET", "x-api-key": "sk-attacker",
    "api-key": "sk-attacker", "x-goog-api-key": "attacker", "anthropic-dangerous-direct-browser-access": "true",
}  # fmt: skip


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google", "azure-openai", "bedrock"])
def test_held_header_selectors_and_host_overrides(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, credentials: CredentialsEndpoint,
    mocks: dict[str, MockProvider], provider: str,
) -> None:  # fmt: skip
    model = {"google": "gemini-2.5-flash", "bedrock": BEDROCK_MODEL}.get(provider, "gpt-4o")
    reply = post(org_data_plane, "/v1/chat/completions", {**CHAT, "model": model},
                 {**CLIENT, **SELECTORS, "x-portkey-provider": provider})  # fmt: skip
    assert status(reply) == 200, reply[:400]
    expected = official_hosts(provider) if provider != "bedrock" else {bedrock_runtime_host(REGION)}
    assert outbound_hosts(harness) <= expected
    outbound = json.dumps(harness.interception.outbound())
    assert "attacker" not in outbound and "assistants=v2" not in outbound and "other-team" not in outbound
    assert_nothing_leaked(harness, credentials, reply)


PATHS_SERVED = ["/v1/chat/./completions", "/%761/chat/completions", "/v1/chat/completions#x", "/v1/chat/completions?",
                "/v1/chat%2fcompletions", "/v1/%2e%2e/v1/chat/completions", "/v1/files/%2e%2e/chat/completions",
                "/./v1/chat/completions", "/v1/embeddings/../chat/completions", "/v1/proxy/../chat/completions",
                "/v1/chat/completions?key=x&api-version=y&alt=sse"]  # fmt: skip
PATHS_REFUSED = ["/v1/chat/completions%20", "/v1/chat/completions/.", "/v1\\chat/completions",
                 "/v1/chat/completions%2f", "/v1/chat/completions%c0%af", "/v1/chat/completions/..%2f..%2fv1%2ffiles",
                 "/v1/chat/completions/x/..", "/v1/chat/completions;", "/V1/CHAT/COMPLETIONS",
                 "/v1/chat/completions%09", "/../v1/chat/completions", "/_aigw/credentials", "/_aigw/errors/502",
                 "/health/../v1/files", "/v1/messages/batches", "/v1/responses/input_items",
                 "/v1/chat/completions/..;/..;/v1/files"]  # fmt: skip


@pytest.mark.parametrize("target", PATHS_SERVED + PATHS_REFUSED)
def test_held_path_spellings(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, credentials: CredentialsEndpoint, target: str
) -> None:
    reply = post(org_data_plane, target, CHAT, {**CLIENT, "x-portkey-provider": "openai"})
    urls = [event["url"] for event in harness.interception.outbound()]
    if target in PATHS_SERVED:
        assert status(reply) == 200 and urls == ["https://api.openai.com/v1/chat/completions"], (reply[:200], urls)
    else:
        assert status(reply) in (400, 404) and urls == [], (reply[:200], urls)
    assert credentials.current.secret_access_key.encode() not in reply


CONFIGS_REFUSED = [
    '{"provider":"openai","api_key":"k","provider":"vertex-ai"}',
    '{"provider":"openai","api_key":"k","override_params":{"custom_host":"http://attacker.example"}}',
    '{"targets":[[{"provider":"openai","custom_host":"http://attacker.example"}]]}',
    '{"provider":"openai","api_key":"k","__proto__":{"customHost":"http://attacker.example"}}',
    '{"provider":"openai","api_key":"k","customHost":"http://attacker.example"}',
    '{"provider":"openai","api_key":"k","custom_\\u0068ost":"http://attacker.example"}',
    '{"provider":"openai","api_key":"k"} {"custom_host":"x"}',
    '{"provider":"openai\\u0000","api_key":"k"}',
    '{"strategy":{"mode":"conditional","conditions":[]},"targets":[]}',
    '{"provider":"azure-openai","api_key":"k"}',
    '{"provider":"bedrock","api_key":"k"}',
    '{"provider":"openai","api_key":"k","forward_headers":["authorization"]}',
    '{"provider":"openai","api_key":"k","after_request_hooks":[]}',
    '{"provider":"openai","api_key":"k","strategy":{"mode":"fallback","conditions":[]}}',
    '["openai"]',
    '"openai"',
    '{"provider":"openai","api_key":"k","targets":' + "[" * 20 + "]" * 20 + "}",
    '{"provider":"openai","virtual_key":"org-openai"}',
]
CONFIGS_SERVED = [
    '{"provider":"open\\u0061i","api_key":"sk-own"}',
    '{"provider":"vertex-ai","provider":"openai","api_key":"sk-own"}',
    ' \t{"provider":"anthropic","api_key":"sk-own"}',
    '{"provider":"openai"}',
    '{"provider":"openai","api_key":"sk-own","request_timeout":-1}',
    '{"provider":"openai","api_key":"sk-own","cache":{"mode":"simple","max_age":1}}',
    '{"provider":"google","api_key":"own","override_params":{"model":"../../v1beta/files"}}',
    '{"strategy":{"mode":"fallback"},"targets":[{"provider":"google","api_key":"g"},{"provider":"anthropic"}]}',
]


@pytest.mark.parametrize("config", CONFIGS_REFUSED + CONFIGS_SERVED)
def test_held_configs_never_get_a_host_or_an_org_key(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, credentials: CredentialsEndpoint,
    mocks: dict[str, MockProvider], config: str,
) -> None:  # fmt: skip
    reply = post(org_data_plane, "/v1/chat/completions", CHAT, {**CLIENT, "x-portkey-config": config,
                                                                "x-portkey-provider": "openai"})  # fmt: skip
    if config in CONFIGS_REFUSED:
        assert status(reply) == 403 and rule(reply) == "config", reply[:300]
        assert harness.interception.outbound() == []
    outbound = json.dumps(harness.interception.outbound())
    assert outbound_hosts(harness) <= ALL_OFFICIAL and mocks["sink"].requests == []
    assert not any(key in outbound for key in ORG_KEYS.values())  # a config never carries an org key
    assert_nothing_leaked(harness, credentials, reply)


_EVIL_GOOGLE = json.dumps({"model": "../../v1beta/files", "messages": [{"role": "user", "content": "hi"}]}).encode()
BODIES: dict[str, tuple[bytes, str, int]] = {
    "bom": (b"\xef\xbb\xbf" + _EVIL_GOOGLE, "application/json", 400),
    "utf16": (_EVIL_GOOGLE.decode().encode("utf-16"), "application/json; charset=utf-16", 400),
    "utf16le": (_EVIL_GOOGLE.decode().encode("utf-16-le"), "application/json", 400),
    "gzip-without-ce": (gzip.compress(_EVIL_GOOGLE), "application/json", 400),
    "uppercase-ct": (_EVIL_GOOGLE, "APPLICATION/JSON", 400),
    "ct-params": (_EVIL_GOOGLE, "application/json; charset=latin1; boundary=x", 400),
    "ct-space": (_EVIL_GOOGLE, "application/json ; x=y", 400),
    "ct-vtab": (_EVIL_GOOGLE, "application/json\x0b", 400),
    "text-plain": (_EVIL_GOOGLE, "text/plain", 415),
    "json-suffix": (_EVIL_GOOGLE, "application/vnd.api+json", 415),
    "multipart-on-json-route": (_EVIL_GOOGLE, "multipart/form-data; boundary=x", 415),
    "no-content-type": (_EVIL_GOOGLE, "", 415),
    "escaped-duplicate-model-last": (b'{"model":"gemini-2.5-flash","mod\\u0065l":"../../v1beta/files","messages":[]}',
                                     "application/json", 400),
    "trailing-garbage": (b'{"model":"gemini-2.5-flash","messages":[]} x', "application/json", 400),
    "two-documents": (b'{"model":"gemini-2.5-flash","messages":[]}{"model":"../x"}', "application/json", 400),
    "comment": (b'{"model":"gemini-2.5-flash",/*x*/"messages":[]}', "application/json", 400),
    "lone-surrogate": (b'{"model":"gemini-2.5-flash","\\ud800file_id":"x","messages":[]}', "application/json", 400),
    "model-null": (b'{"model":null,"messages":[]}', "application/json", 400),
    "model-with-newline": (b'{"model":"gemini-2.5-flash\\n","messages":[]}', "application/json", 400),
    "model-with-colon-method": (b'{"model":"gemini-2.5-flash:streamGenerateContent","messages":[]}',
                                "application/json", 400),
    "model-unicode-slash": (b'{"model":"gemini\\u2215..\\u2215files","messages":[]}', "application/json", 400),
    "model-fullwidth-dot": (b'{"model":"\\uff0e\\uff0e","messages":[]}', "application/json", 400),
    "deep-1000": (b'{"model":"gemini-2.5-flash","messages":[],"x":' + b"[" * 998 + b"]" * 998 + b"}",
                  "application/json", 403),
    "deep-1100": (b'{"model":"gemini-2.5-flash","messages":[],"x":' + b"[" * 1100 + b"]" * 1100 + b"}",
                  "application/json", 400),
    "empty": (b"", "application/json", 400),
    "array": (b"[]", "application/json", 400),
    "string": (b'"x"', "application/json", 400),
    "file-id-deep": (b'{"model":"gemini-2.5-flash","messages":[{"content":[{"x":{"y":{"file_id":"f"}}}]}]}',
                     "application/json", 403),
    "file-id-escaped": (b'{"model":"gemini-2.5-flash","messages":[],"file\\u005fid":"f"}', "application/json", 403),
    "anthropic-beta-in-array": (b'{"model":"gemini-2.5-flash","messages":[],"x":[{"anthropic_beta":["files"]}]}',
                                "application/json", 403),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BODIES))
def test_held_body_checks_whatever_the_encoding(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, name: str
) -> None:
    data, content_type, expected = BODIES[name]
    reply = post(org_data_plane, "/v1/chat/completions", data, {**CLIENT, "x-portkey-provider": "google"},
                 content_type=content_type or None)  # fmt: skip
    assert status(reply) == expected, reply[:300]
    assert harness.interception.outbound() == []


MULTIPART_JSON = b'{"model":"whisper-1","file_id":"file-org"}'


@pytest.mark.parametrize("content_type", ["MULTIPART/FORM-DATA; boundary=x", "multipart/form-data ; boundary=x",
                                          "multipart/form-data; boundary=x", "Multipart/Form-Data"])  # fmt: skip
def test_held_a_json_body_on_a_multipart_route_never_reaches_a_provider(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, content_type: str
) -> None:
    reply = post(org_data_plane, "/v1/audio/transcriptions", MULTIPART_JSON, {**CLIENT, "x-portkey-provider": "openai"},
                 content_type=content_type)  # fmt: skip
    assert status(reply) in (400, 500), reply[:300]  # the gateway's own content-type validator / formData()
    assert harness.interception.outbound() == []


BEDROCK_MODELS_REFUSED = ["a/b", "anthropic.claude%2fx", "arn:aws:bedrock:us-east-1:1:foundation-model/x",
                          "us.anthropic.claude:abc", "anthropic.claude?x=1", "anthropic.claude#x", ".x.y",
                          "anthropic.claude-3\n", "ANTHROPIC.claude", "anthropic.claude:1234"]  # fmt: skip
GOOGLE_MODELS_REFUSED = ["gemini:batchGenerateContent", "models/gemini", "gemini%2F..", "..", "-gemini",
                         "gemini pro", "gemini\t", "g" * 129, "gemini\u00e9"]  # fmt: skip


@pytest.mark.parametrize(("provider", "model"), [("bedrock", m) for m in BEDROCK_MODELS_REFUSED]
                         + [("google", m) for m in GOOGLE_MODELS_REFUSED])  # fmt: skip
def test_held_models_that_would_steer_a_url(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, credentials: CredentialsEndpoint, provider: str,
    model: str,
) -> None:  # fmt: skip
    reply = post(org_data_plane, "/v1/chat/completions", {**CHAT, "model": model},
                 {**CLIENT, "x-portkey-provider": provider})  # fmt: skip
    assert status(reply) == 400 and rule(reply) == "model", reply[:300]
    assert harness.interception.outbound() == []
    assert_nothing_leaked(harness, credentials, reply)


def _jwt(payload: bytes | dict[str, Any]) -> str:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    header = base64.urlsafe_b64encode(b'{"alg":"RS256"}').decode().rstrip("=")
    return f"{header}.{base64.urlsafe_b64encode(raw).decode().rstrip('=')}.c2ln"


TOKENS_REFUSED = {
    "client-id-number": "Bearer " + _jwt({"client_id": 12345}),
    "client-id-array": "Bearer " + _jwt({"client_id": [CLIENT_ID]}),
    "client-id-nul": "Bearer " + _jwt(('{"client_id":"' + CLIENT_ID + '\\u0000x"}').encode()),
    "client-id-non-ascii": "Bearer " + _jwt({"client_id": "caf\u00e9"}),
    "client-id-129": "Bearer " + _jwt({"client_id": "a" * 129}),
    "sub-username-only": "Bearer " + _jwt({"sub": CLIENT_ID, "username": CLIENT_ID}),
    "standard-base64": "Bearer " + _jwt({"client_id": CLIENT_ID}).replace("-", "+").replace("_", "/") + "+/",
    "two-parts": "Bearer " + ".".join(_jwt({"client_id": CLIENT_ID}).split(".")[:2]),
    "nested": "Bearer " + _jwt({"claims": {"client_id": CLIENT_ID}}),
    "array-payload": "Bearer " + _jwt(json.dumps([{"client_id": CLIENT_ID}]).encode()),
    "basic": "Basic " + base64.b64encode(f"{CLIENT_ID}:x".encode()).decode(),
    "tab-after-bearer": "Bearer\t" + JWT.split(" ", 1)[1],
    "BEARER": "BEARER " + JWT.split(" ", 1)[1],
    "api-key-shaped": "Bearer sk-proj-abc",
}


@pytest.mark.parametrize("name", list(TOKENS_REFUSED))
def test_held_identity_needs_a_readable_client_id(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, name: str
) -> None:
    reply = post(org_data_plane, "/v1/chat/completions", CHAT,
                 {"Authorization": TOKENS_REFUSED[name], "x-portkey-provider": "openai",
                  "x-client-id": CLIENT_ID, "x-amzn-oidc-identity": CLIENT_ID})  # fmt: skip
    assert status(reply) == 401 and rule(reply) == "identity"
    assert harness.interception.outbound() == []


def test_held_team_comes_only_from_the_client_id(org_data_plane: RunningDataPlane) -> None:
    trace = new_trace()
    token = "Bearer " + _jwt({"client_id": "otherclient1", "team": "default", "cognito:groups": ["default"],
                              "custom:team": "default"})  # fmt: skip
    reply = post(org_data_plane, "/v1/chat/completions", CHAT, {"Authorization": token, "x-amzn-trace-id": trace,
                 "x-portkey-provider": "openai", "x-portkey-metadata": '{"team":"default","_user":"x"}'})  # fmt: skip
    assert status(reply) == 403  # a client of no team, whatever its claims and headers say
    line = org_data_plane.access_line(trace)
    assert (line["client_id"], line["team"], line["rule"]) == ("otherclient1", "", "identity")


@pytest.mark.parametrize(("provider", "key"), [("google", "GOOGLE_API_KEY"), ("azure-openai", "AZURE_API_KEY")])
@pytest.mark.parametrize("error", [400, 404, 500])
@pytest.mark.parametrize("stream", [False, True])
def test_held_google_and_azure_errors_that_echo_the_key_are_masked(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, credentials: CredentialsEndpoint,
    mocks: dict[str, MockProvider], provider: str, key: str, error: int, stream: bool,
) -> None:  # fmt: skip
    mocks[provider].error_status = error
    mocks[provider].error_message = f"The requested URL /v1beta/models/x:generateContent?key={ORG_KEYS[key]} failed"
    reply = post(org_data_plane, "/v1/chat/completions", {**CHAT, "model": "gemini-2.5-flash", "stream": stream},
                 {**CLIENT, "x-portkey-provider": provider})  # fmt: skip
    assert status(reply) == error
    assert b"*" * len(ORG_KEYS[key]) in reply
    assert_nothing_leaked(harness, credentials, reply)


def test_held_a_key_split_by_nginx_reads_is_masked(
    org_data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    # text_pieces() streams one word per event: the key at the end of one long word, so that over the
    # paddings swept, nginx's 4 KiB reads cut it at every offset.
    key = ORG_KEYS["OPENAI_API_KEY"]
    for padding in range(3560, 3760, 7):
        mocks["openai"].reply_text = f"{'x' * padding}{key} tail"
        reply = post(org_data_plane, "/v1/chat/completions", {**CHAT, "stream": True},
                     {**CLIENT, "x-portkey-provider": "openai"})  # fmt: skip
        assert key.encode() not in reply and b"*" * len(key) in reply, padding


def test_held_metric_dimensions_stay_bounded(org_data_plane: RunningDataPlane, quiet_otlp: OtlpRecorder) -> None:
    otlp = quiet_otlp
    own = json.dumps({"provider": "openai", "api_key": "sk-own"})
    for model in (f"gpt-4o-{uuid.uuid4().hex[:6]}", "gpt-4o\u2028x", "a" * 300):
        post(org_data_plane, "/v1/chat/completions", {**CHAT, "model": model}, {**CLIENT, "x-portkey-config": own})
        post(
            org_data_plane, "/v1/chat/completions", {**CHAT, "model": model}, {**CLIENT, "x-portkey-provider": "openai"}
        )
    for provider in ("OpenAI", "openai\u00e9", uuid.uuid4().hex):
        post(org_data_plane, "/v1/chat/completions", CHAT, {**CLIENT, "x-portkey-provider": provider})
    assert otlp.wait_for_metric("Requests", timeout=10)
    time.sleep(1.5)
    points = [p for p in otlp.metric_points() if p.name == "Requests"]
    assert {p.attributes["provider"] for p in points} <= {"openai", "config", "none"}
    assert {p.attributes["model"] for p in points} <= {"other", "none", "gpt-4o"}
    assert {p.attributes["team"] for p in points} <= {"default"}


def test_held_fuzzed_requests_never_fail_inside_or_print_internals(
    org_data_plane: RunningDataPlane, harness: GatewayHarness, credentials: CredentialsEndpoint
) -> None:
    rng = random.Random(7)
    values: list[Any] = [None, True, 0, -1, 1e308, "", "x" * 300, "\u00e9", [], {}, [[[]]], {"a": {"b": {}}},
                         "gpt-4o", "s3://x", "\u0000", 12345678901234567890]  # fmt: skip
    keys = [
        "model",
        "messages",
        "tools",
        "stream",
        "stream_options",
        "usage",
        "n",
        "input",
        "prompt",
        "metadata",
        "container",
        "mcp_servers",
        "tool_choice",
        "response_format",
        "file_id",
        "conversation",
        "system",
    ]
    providers = ["openai", "anthropic", "google", "azure-openai", "bedrock", "OPENAI", "", "vertex-ai"]
    routes = [
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/responses",
        "/v1/embeddings",
        "/v1/completions",
        "/v1/moderations",
        "/v1/images/generations",
        "/v1/audio/speech",
    ]
    seen = set()
    for _ in range(120):
        body = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, 6))}
        if rng.random() < 0.5:
            body["model"] = rng.choice(["gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash", BEDROCK_MODEL, "x"])
        headers = {**CLIENT, "x-portkey-provider": rng.choice(providers)}
        if rng.random() < 0.2:
            headers["anthropic-beta"] = rng.choice(["", ",", " , ", "prompt-caching-2024-07-31,"])
        if rng.random() < 0.2:
            headers["x-portkey-config"] = json.dumps(
                rng.choice(
                    [{"provider": "openai", "api_key": "k"}, {"provider": {"a": 1}}, [1, 2], {"targets": [body]}]
                )
            )
        reply = post(org_data_plane, rng.choice(routes), body, headers)
        seen.add(status(reply))
        assert status(reply) != 0 and rule(reply) not in ("http-500", "http-502"), (body, headers, reply[:300])
        assert not INTERNALS.search(reply)
    assert_nothing_leaked(harness, credentials)
    assert {200, 400, 403} <= seen
