"""Adversarial tests of the response cache (6cde37b): authenticated but
untrusted clients of different teams attack its key, its namespaces, what it
stores and its failure modes. Same harness as tests/test_response_cache.py
(the "cache" scenario: default/other private, search/billing shared, secret
no-store; route "chat" = OpenAI, the default)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.aws_mocks import CredentialsEndpoint
from tests.gateway_fixtures import ORG_KEYS, stack_file
from tests.gateway_harness import GatewayHarness, Response, RunningDataPlane, TaskDefinition, request
from tests.mock_providers import MockProvider, OpenAIMock, RecordedRequest, Reply
from tests.team_fixtures import client_id_of, fake_jwt, references
from tests.test_response_cache import BODY, ask, cache_task, empty_store, tasks  # noqa: F401
from tests.tls_store import Store

pytestmark = pytest.mark.gateway

OPENAI = {"x-portkey-provider": "openai"}


def cached_keys(store: Store) -> list[str]:
    return store.cli("KEYS", "aigw:cache:*").split()


def wait_stored(store: Store, count: int = 1, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(cached_keys(store)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return cached_keys(store)


def ask_raw(
    data_plane: RunningDataPlane,
    raw: bytes,
    team: str = "default",
    headers: dict[str, str] | None = None,
    path: str = "/v1/chat/completions",
) -> tuple[Response, dict[str, Any]]:
    trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    sent = {"Authorization": f"Bearer {fake_jwt(client_id_of(team))}", "x-amzn-trace-id": trace, **(headers or {})}
    response = request(f"{data_plane.base_url}{path}", raw, sent)
    return response, data_plane.access_line(trace)


def ask_header_lines(
    data_plane: RunningDataPlane, lines: list[tuple[str, str]], team: str = "default"
) -> tuple[int, dict[str, Any]]:
    """A request with header lines as given (a name may repeat)."""
    trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    url = urlsplit(data_plane.base_url)
    connection = http.client.HTTPConnection(str(url.hostname), url.port, timeout=30)
    body = json.dumps(BODY).encode()
    connection.putrequest("POST", "/v1/chat/completions")
    for name, value in [
        ("Authorization", f"Bearer {fake_jwt(client_id_of(team))}"),
        ("x-amzn-trace-id", trace),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        *lines,
    ]:
        connection.putheader(name, value)
    connection.endheaders(body)
    status = connection.getresponse().status
    connection.close()
    return status, data_plane.access_line(trace)


@pytest.fixture
def echo(mocks: dict[str, MockProvider], monkeypatch: pytest.MonkeyPatch) -> OpenAIMock:
    """The OpenAI mock answers with the request body it received as the completion's text: an answer that
    depends on every parameter, as a real model's may."""
    mock = mocks["openai"]
    assert isinstance(mock, OpenAIMock)
    original = OpenAIMock.chat_completions

    def answer(received: RecordedRequest) -> Reply:
        mock.reply_text = "echo:" + received.body.decode()
        return original(mock, received)

    monkeypatch.setattr(mock, "chat_completions", answer)
    return mock


def content(response: Response) -> str:
    return str(json.loads(response.body)["choices"][0]["message"]["content"])


# ---------------------------------------------------------------------------- the key: different answers, one key


@pytest.mark.parametrize(
    ("field", "first", "second"),
    [
        ("seed", 1234567890123456, 1234567890123457),  # 16 digits, exact in a double and in JS
        ("seed", 100000000000001, 100000000000002),  # 15 digits
        ("temperature", 0.30000000000000004, 0.3),
        ("top_p", 0.1234567890123451, 0.1234567890123452),
    ],
)
def test_numbers_that_differ_past_the_14th_significant_digit_do_not_share_an_answer(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    echo: OpenAIMock,
    field: str,
    first: float,
    second: float,
) -> None:
    one, _ = ask(tasks[0], body={**BODY, field: first}, headers=OPENAI)
    assert one.status == 200 and echo.requests[-1].json()[field] == first  # the provider saw the first value
    wait_stored(empty_store)
    two, line = ask(tasks[0], body={**BODY, field: second}, headers=OPENAI)
    assert two.status == 200
    # The gateway would send the second value to the provider: the second request must not get the first's answer.
    assert line["cache"] == "miss", (line["cache"], content(two)[:200])
    assert json.loads(content(two)[len("echo:") :])[field] == second


@pytest.mark.parametrize("field", ["metadata", "logit_bias", "stop"])
def test_an_empty_array_and_an_empty_object_do_not_share_an_answer(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    echo: OpenAIMock,
    field: str,
) -> None:
    one, _ = ask(tasks[0], body={**BODY, field: {}}, headers=OPENAI)
    assert one.status == 200 and echo.requests[-1].json()[field] == {}
    wait_stored(empty_store)
    two, line = ask(tasks[0], body={**BODY, field: []}, headers=OPENAI)
    assert two.status == 200
    assert line["cache"] == "miss", (line["cache"], content(two)[:300])


def test_json_schema_property_order_reaches_the_provider_and_is_not_folded_into_one_key(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    echo: OpenAIMock,
) -> None:
    """OpenAI's structured outputs produce the keys in the schema's property order: two schemas that differ only
    in that order get differently ordered answers. (The cache sorts keys at every depth.)"""

    def schema(order: list[str]) -> dict[str, Any]:
        properties = {name: {"type": "string"} for name in order}
        return {
            **BODY,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "strict": True,
                    "schema": {"type": "object", "properties": properties, "required": sorted(order),
                               "additionalProperties": False},
                },
            },
        }  # fmt: skip

    ask(tasks[0], body=schema(["zeta", "alpha"]), headers=OPENAI)
    sent = echo.requests[-1].body.decode()
    assert sent.index('"zeta"') < sent.index('"alpha"')  # the order reached the provider
    wait_stored(empty_store)
    two, line = ask(tasks[0], body=schema(["alpha", "zeta"]), headers=OPENAI)
    assert line["cache"] == "miss", (line["cache"], content(two)[:400])


# ---------------------------------------------------------------------------- the key: one answer, one key (kept)


@pytest.mark.parametrize("spelling", [b"1.0", b"1e0", b"10e-1", b"1.000"])
def test_another_spelling_of_a_number_is_another_key_never_a_wrong_answer(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
    spelling: bytes,
) -> None:
    messages = json.dumps(BODY["messages"]).encode()
    ask_raw(tasks[0], b'{"model":"gpt-4o","temperature":1,"messages":' + messages + b"}", headers=OPENAI)
    wait_stored(empty_store)
    _, line = ask_raw(
        tasks[0], b'{"model":"gpt-4o","temperature":' + spelling + b',"messages":' + messages + b"}", headers=OPENAI
    )
    # The key is the body's bytes (a re-encoding lost digits and [] versus {}): another spelling is a miss.
    assert line["cache"] == "miss" and len(mocks["openai"].requests) == 2


def test_a_duplicate_key_is_read_as_the_gateway_reads_it_the_last_one(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    echo: OpenAIMock,
) -> None:
    messages = json.dumps(BODY["messages"]).encode()
    raw = b'{"model":"gpt-4o","temperature":0.2,"messages":' + messages + b',"temperature":0.9}'
    response, _ = ask_raw(tasks[0], raw, headers=OPENAI)
    assert response.status == 200 and echo.requests[-1].json()["temperature"] == 0.9
    wait_stored(empty_store)
    # The answer computed with 0.9 must not be served to a request for 0.2 ...
    _, line = ask(tasks[0], body={**BODY, "temperature": 0.2}, headers=OPENAI)
    assert line["cache"] == "miss"
    # ... nor to one for 0.9 spelled otherwise (the key is the body's bytes); the same bytes are a hit.
    _, line = ask(tasks[0], body={**BODY, "temperature": 0.9}, headers=OPENAI)
    assert line["cache"] == "miss"
    _, line = ask_raw(tasks[0], raw, headers=OPENAI)
    assert line["cache"] == "hit"


def test_a_duplicate_model_key_cannot_smuggle_another_model_under_a_key(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    echo: OpenAIMock,
) -> None:
    messages = json.dumps(BODY["messages"]).encode()
    raw = b'{"model":"gpt-4o","messages":' + messages + b',"model":"gpt-4o-mini"}'
    response, _ = ask_raw(tasks[0], raw, headers=OPENAI)
    assert response.status == 200 and echo.requests[-1].json()["model"] == "gpt-4o-mini"
    wait_stored(empty_store)
    _, line = ask(tasks[0], body={"model": "gpt-4o", "messages": BODY["messages"]}, headers=OPENAI)
    assert line["cache"] == "miss"


@pytest.mark.parametrize(
    ("raw_text", "escaped"),
    [
        ("caf\u00e9 \u2603 \U0001f600", r"caf\u00e9 \u2603 \ud83d\ude00"),
        ("a/b", r"a\/b"),
        ("tab\there", r"tab\u0009here"),
    ],
)
def test_unicode_escapes_and_raw_utf8_are_other_keys_never_a_wrong_answer(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
    raw_text: str,
    escaped: str,
) -> None:
    def body(text: bytes) -> bytes:
        return b'{"model":"gpt-4o","messages":[{"role":"user","content":"' + text + b'"}]}'

    first, _ = ask_raw(tasks[0], body(json.dumps(raw_text, ensure_ascii=False)[1:-1].encode()), headers=OPENAI)
    assert first.status == 200
    wait_stored(empty_store)
    _, line = ask_raw(tasks[0], body(escaped.encode()), headers=OPENAI)
    assert line["cache"] == "miss"  # the key is the body's bytes
    _, line = ask_raw(tasks[0], body(escaped.encode()), headers=OPENAI)
    assert line["cache"] == "hit"
    # and another text is another key
    _, line = ask_raw(tasks[0], body(b"cafe"), headers=OPENAI)
    assert line["cache"] == "miss"


# ---------------------------------------------------------------------------- the namespace and the bypass header


@pytest.mark.parametrize(
    "headers",
    [
        {"x-team": "default", "x-aigw-team": "default", "x-aigw-namespace": "team:default"},
        {"x-portkey-metadata": json.dumps({"_user": "default", "team": "default"})},
        {"x-portkey-trace-id": "default", "x-portkey-retry-count": "0", "x-portkey-request-timeout": "30000"},
        {"x-client-id": client_id_of("default"), "x-amzn-oidc-identity": client_id_of("default")},
    ],
)
def test_no_header_moves_a_request_into_another_teams_namespace(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
    headers: dict[str, str],
) -> None:
    ask(tasks[0], "default", headers=OPENAI)
    wait_stored(empty_store)
    for team in ("other", "search", "secret"):
        response, line = ask(tasks[1], team, headers={**OPENAI, **headers})
        assert response.status == 200 and line["cache"] in ("miss", ""), (team, line["cache"])
        assert response.headers.get("x-aigw-cache") != "HIT"
    assert len(mocks["openai"].requests) == 4


@pytest.mark.parametrize("value", ["BYPASS", "Bypass", "hit", "miss", "refresh", "", "bypass,bypass", "0", "no"])
def test_every_x_aigw_cache_value_but_bypass_is_refused(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
    value: str,
) -> None:
    status, line = ask_header_lines(tasks[0], [("x-aigw-cache", value)])
    assert status == 400 and line["rule"] == "cache" and line["cache"] == ""
    assert mocks["openai"].requests == []


def test_a_repeated_bypass_or_cache_control_header_is_refused(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
) -> None:
    for lines in (
        [("x-aigw-cache", "bypass"), ("x-aigw-cache", "bypass")],
        [("Cache-Control", "max-age=60"), ("Cache-Control", "no-store")],
    ):
        status, line = ask_header_lines(tasks[0], lines)
        assert status == 400 and line["rule"] == "header", lines
    assert mocks["openai"].requests == []


@pytest.mark.parametrize(
    ("cache_control", "bypassed"),
    [
        ("NO-CACHE", True),
        ("max-age=0,no-store", True),
        ('private, no-cache="x"', True),
        ("no-transform", False),
        ("max-age=60", False),
    ],
)
def test_cache_control_parsing(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    cache_control: str,
    bypassed: bool,
) -> None:
    ask(tasks[0])
    wait_stored(empty_store)
    response, line = ask(tasks[0], headers={"Cache-Control": cache_control})
    assert response.status == 200
    assert line["cache"] == ("bypass" if bypassed else "hit")
    assert response.headers["x-aigw-cache"] == ("BYPASS" if bypassed else "HIT")


def test_a_bypassed_request_does_not_replace_the_stored_answer(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
) -> None:
    first, _ = ask(tasks[0])
    (key,) = wait_stored(empty_store)
    before = empty_store.cli("GET", key)
    mocks["openai"].reply_text = "a different answer"
    ask(tasks[0], headers={"x-aigw-cache": "bypass"})
    time.sleep(0.3)
    assert empty_store.cli("GET", key) == before
    hit, line = ask(tasks[0])
    assert line["cache"] == "hit" and hit.body == first.body


def test_the_access_logs_cache_field_and_the_answers_header_are_the_data_planes_own(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
) -> None:
    # A provider (or the gateway) sending x-aigw-cache: HIT on a MISS is overwritten.
    mocks["openai"].extra_headers = {"x-aigw-cache": "HIT"}
    response, line = ask(tasks[0], headers={"cache": "hit", "x-cache": "hit"})
    assert line["cache"] == "miss" and response.headers["x-aigw-cache"] == "MISS"
    # A client cannot name the field's value in the trace it sends (the field is JSON-escaped apart).
    trace = 'Root=1-00000000-000000000000000000000000","cache":"hit'
    sent = {"Authorization": f"Bearer {fake_jwt(client_id_of('secret'))}", "x-amzn-trace-id": trace}
    request(f"{tasks[0].base_url}/v1/chat/completions", BODY, sent)
    time.sleep(0.3)
    lines = [entry for entry in tasks[0].access_lines() if entry["team"] == "secret"]
    assert lines and lines[-1]["cache"] == ""


def test_a_provider_header_cannot_claim_a_hit_for_an_uncached_team(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    mocks: dict[str, MockProvider],
) -> None:
    mocks["openai"].extra_headers = {"x-aigw-cache": "HIT"}
    response, line = ask(tasks[0], "secret")
    assert line["cache"] == ""
    assert response.headers.get("x-aigw-cache") is None, response.headers.get("x-aigw-cache")


# ---------------------------------------------------------------------------- poisoning: what gets stored


@pytest.mark.parametrize("stream", ["true", 1, "yes"])
def test_a_stream_asked_for_in_a_form_the_data_plane_does_not_read_as_true_is_never_stored(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
    stream: Any,
) -> None:
    for _ in range(2):
        _, line = ask(tasks[0], body={**BODY, "stream": stream}, headers=OPENAI)
        assert line["cache"] == "miss"  # (the gateway answers these with a 500)
    time.sleep(0.3)
    for key in cached_keys(empty_store):
        entry = json.loads(empty_store.cli("GET", key))
        assert "data:" not in entry["body"] and entry["content_type"].startswith("application/json"), entry


def test_an_answer_the_upstream_cuts_off_is_never_stored(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mock = mocks["openai"]
    whole = json.dumps(
        {"id": "chatcmpl-cut", "object": "chat.completion", "created": 1, "model": "gpt-4o",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "y" * 3000}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    ).encode()  # fmt: skip

    def cut(received: RecordedRequest) -> Reply:
        return Reply(200, {"content-type": "application/json"}, b"", [whole[:1500], whole[1500:]])

    def drop(*_: Any) -> None:
        raise ConnectionResetError("cut off")

    monkeypatch.setattr(mock, "chat_completions", cut)
    monkeypatch.setattr(mock, "first_chunk_sent", drop)
    results = [ask(tasks[0], headers=OPENAI) for _ in range(2)]
    time.sleep(0.5)
    assert cached_keys(empty_store) == [], [(r.status, r.body[:200], line["cache"]) for r, line in results]


def test_a_client_gone_before_the_answer_leaves_nothing_stored(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mock = mocks["openai"]
    gate = threading.Event()
    mock.stream_gate = gate
    whole = json.dumps(
        {"id": "chatcmpl-gone", "object": "chat.completion", "created": 1, "model": "gpt-4o",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "z" * 3000}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    ).encode()  # fmt: skip
    monkeypatch.setattr(
        mock, "chat_completions",
        lambda received: Reply(200, {"content-type": "application/json"}, b"", [whole[:1500], whole[1500:]]),
    )  # fmt: skip
    url = urlsplit(tasks[0].base_url)
    body = json.dumps(BODY).encode()
    client = socket.create_connection((str(url.hostname), int(url.port or 80)))
    client.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {fake_jwt(client_id_of('default'))}\r\nx-portkey-provider: openai\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert mock.wait_for_requests(1)
    time.sleep(0.3)
    client.close()  # gone while the provider has sent half its answer
    time.sleep(0.5)
    gate.set()
    time.sleep(1.0)
    keys = cached_keys(empty_store)
    for key in keys:  # whatever is stored must be the whole answer
        assert json.loads(empty_store.cli("GET", key))["body"].encode() == whole
    assert keys == []


def test_a_credential_in_an_answer_is_stored_masked_and_a_hit_is_masked(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
) -> None:
    keys = list(ORG_KEYS.values())
    # Many occurrences at every alignment, spread over more than nginx's buffers and the redactor's hold.
    text = "".join(f"{'x' * n}{keys[n % len(keys)]}" for n in range(0, 1600, 37))
    mocks["openai"].reply_text = text
    first, _ = ask(tasks[0], headers=OPENAI)
    (key,) = wait_stored(empty_store)
    stored_value = empty_store.cli("GET", key)
    hit, line = ask(tasks[1], headers=OPENAI)
    assert first.status == 200 and line["cache"] == "hit"
    for secret in keys:
        assert secret not in first.body.decode()
        assert secret not in stored_value
        assert secret not in hit.body.decode()
    assert hit.body == first.body


def test_the_gateways_own_timeout_answer_is_not_stored(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # x-portkey-request-timeout is forwarded and not in the key: a 50 ms timeout against a provider
    # that takes 300 ms makes the gateway answer 408 (every time: a 1 ms one raced a fast mock).
    answer = mocks["openai"].reply

    def slow(recorded: Any) -> Any:
        time.sleep(0.3)
        return answer(recorded)

    monkeypatch.setattr(mocks["openai"], "reply", slow)
    response, line = ask(tasks[0], headers={**OPENAI, "x-portkey-request-timeout": "50"})
    assert response.status == 408 and line["cache"] == "miss"
    time.sleep(0.5)
    assert cached_keys(empty_store) == []
    monkeypatch.undo()
    response, line = ask(tasks[0], headers=OPENAI)
    assert response.status == 200 and line["cache"] == "miss"


def test_a_client_config_neither_reads_nor_writes_the_cache(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
) -> None:
    ask(tasks[0], headers=OPENAI)
    wait_stored(empty_store)
    config = json.dumps({"provider": "openai", "api_key": "sk-the-clients-own-key-0000"})
    for _ in range(2):
        response, line = ask(tasks[0], headers={"x-portkey-config": config})
        assert response.status == 200 and line["cache"] == "" and "x-aigw-cache" not in response.headers
    assert len(mocks["openai"].requests) == 3
    assert len(cached_keys(empty_store)) == 1


@pytest.mark.parametrize("path", ["/v1/chat/%63ompletions", "//v1//chat/completions", "/v1/chat/completions?a=b"])
def test_another_spelling_of_the_path_is_the_same_request(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
    path: str,
) -> None:
    ask(tasks[0], headers=OPENAI)
    wait_stored(empty_store)
    response, line = ask(tasks[0], headers=OPENAI, path=path)
    assert response.status == 200 and line["cache"] == "hit"
    assert [r.path for r in mocks["openai"].requests] == ["/v1/chat/completions"]


@pytest.mark.parametrize(
    "headers",
    [
        {"anthropic-version": "2023-01-01"},
        {"anthropic-beta": "prompt-caching-2024-07-31"},
        {"x-portkey-anthropic-beta": "prompt-caching-2024-07-31"},
        {"accept": "application/json"},
    ],
)
def test_a_header_that_changes_an_anthropic_answer_is_another_key(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
    headers: dict[str, str],
) -> None:
    body = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    base = {"x-portkey-provider": "anthropic", "anthropic-version": "2023-06-01"}
    first, line = ask(tasks[0], body=body, headers=base, path="/v1/messages")
    assert first.status == 200 and line["cache"] == "miss"
    wait_stored(empty_store)
    assert ask(tasks[0], body=body, headers=base, path="/v1/messages")[1]["cache"] == "hit"
    response, line = ask(tasks[0], body=body, headers={**base, **headers}, path="/v1/messages")
    assert response.status == 200 and line["cache"] == "miss"
    assert len(mocks["anthropic"].requests) == 2


def test_a_shared_team_can_answer_another_shared_teams_seed_with_its_own(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
    echo: OpenAIMock,
) -> None:
    """Cross-team form of the number collision: `search` asks with a seed `billing` will use next, plus one."""
    victim_seed = 4503599627370497  # 2**52 + 1: exact in a double, and in JS
    ask(tasks[0], "search", body={**BODY, "seed": victim_seed + 1}, headers=OPENAI)
    wait_stored(empty_store)
    response, line = ask(tasks[1], "billing", body={**BODY, "seed": victim_seed}, headers=OPENAI)
    assert response.status == 200
    assert line["cache"] == "miss", content(response)[:200]


# ---------------------------------------------------------------------------- limits still apply to hits


@pytest.fixture(scope="module")
def limited_cache_task(tmp_path_factory: pytest.TempPathFactory) -> TaskDefinition:
    """The cache scenario's data plane with teams that are counted: `capped` (2 requests a minute) and
    `budgeted` (an enforced daily budget), both cached privately."""
    from pathlib import Path

    from aigw.environments import Environment
    from aigw.settings.clients import BudgetSettings, ClientSettings
    from aigw.settings.routing import RouteSettings
    from modules.stack import synthesize
    from tests import scenarios

    settings = scenarios.vary(
        scenarios.base(),
        edge={"certificate_arn": scenarios.CERTIFICATE_ARN, "enable_jwt_auth": True, "allowed_cidrs": ["0.0.0.0/0"]},
        gateway={"provider_keys": ["openai", "anthropic", "google", "azure"], "azure": scenarios.ORG_KEYS_AZURE},
        clients={
            "default": ClientSettings(scopes=["invoke", "admin"]),
            "capped": ClientSettings(requests_per_minute=2),
            "budgeted": ClientSettings(budget=BudgetSettings(tokens=1_000_000)),
        },
        response_cache={"enabled": True, "ttl_seconds": 600, "max_entry_kib": 64},
        routing={"chat": RouteSettings(strategy="single", default=True, targets=scenarios._targets("openai"))},
    )
    outdir = tmp_path_factory.mktemp("cache-limits.out")
    synthesize([Environment("cachelim", Path(scenarios.__file__), settings)], outdir)
    return TaskDefinition.from_stack(stack_file(outdir, "cachelim"))


@pytest.fixture(scope="module")
def limited_task(
    harness: GatewayHarness, limited_cache_task: TaskDefinition, store: Store, credentials: CredentialsEndpoint
) -> RunningDataPlane:
    return harness.start_data_plane(
        ORG_KEYS, "cache-limits", task=limited_cache_task, references=references(limited_cache_task, store),
        store_ca=store.ca, credentials_uri=credentials.full_uri,
    )  # fmt: skip


def test_a_hit_passes_the_rate_limit_first(
    limited_task: RunningDataPlane,
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
) -> None:
    body = {**BODY, "messages": [{"role": "user", "content": uuid.uuid4().hex}]}
    assert ask(limited_task, "capped", body)[1]["cache"] == "miss"
    wait_stored(empty_store)
    assert ask(limited_task, "capped", body)[1]["cache"] == "hit"
    response, line = ask(limited_task, "capped", body)
    assert response.status == 429 and line["rule"] == "rate-limit" and line["cache"] == ""
    assert len(mocks["openai"].requests) == 1


def test_a_hit_counts_no_tokens_against_the_budget(
    limited_task: RunningDataPlane,
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
) -> None:
    day = time.strftime("%Y%m%d", time.gmtime())
    budget_key = "aigw:{budgeted}:tokens:" + day

    def used() -> int:
        return int(empty_store.cli("GET", budget_key) or 0)

    body = {**BODY, "max_tokens": 50, "messages": [{"role": "user", "content": uuid.uuid4().hex}]}
    _, line = ask(limited_task, "budgeted", body)
    assert line["cache"] == "miss"
    wait_stored(empty_store)
    deadline = time.monotonic() + 5
    while used() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    after_miss = used()
    assert after_miss == line["input_tokens"] + line["output_tokens"]
    _, line = ask(limited_task, "budgeted", body)
    assert line["cache"] == "hit"
    time.sleep(0.5)
    assert used() == after_miss


def test_a_request_refused_for_its_cache_header_is_not_counted_against_the_rate_limit(
    limited_task: RunningDataPlane,
    empty_store: Store,  # noqa: F811
    mocks: dict[str, MockProvider],
) -> None:
    """The handler's rule: a request refused before the limits stage is not counted. The x-aigw-cache check
    ran in the stage after the limits; it runs with the request's other headers now."""
    for _ in range(2):
        status, line = ask_header_lines(limited_task, [("x-aigw-cache", "refresh")], team="capped")
        assert status == 400 and line["rule"] == "cache"
    response, line = ask(limited_task, "capped", {**BODY, "messages": [{"role": "user", "content": uuid.uuid4().hex}]})
    assert response.status == 200, (response.status, line["rule"])


# ---------------------------------------------------------------------------- failure and cost


def test_a_stalled_store_costs_a_bounded_wait_and_never_the_request(
    tasks: tuple[RunningDataPlane, RunningDataPlane],  # noqa: F811
    empty_store: Store,  # noqa: F811
) -> None:
    ask(tasks[0])  # a pooled connection
    wait_stored(empty_store)
    empty_store.cli("CLIENT", "PAUSE", "3000", "ALL")
    try:
        started = time.monotonic()
        response, line = ask(tasks[0], body={**BODY, "messages": [{"role": "user", "content": uuid.uuid4().hex}]})
        took = time.monotonic() - started
    finally:
        empty_store.cli("CLIENT", "UNPAUSE")
    assert response.status == 200 and line["cache"] == "unavailable"
    assert took < 1.5, took
    time.sleep(0.5)
