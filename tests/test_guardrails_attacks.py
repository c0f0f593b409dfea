# ruff: noqa: F811  (the fixtures imported from tests/test_guardrails.py are parameters here)
"""Attacks on the data plane's guardrail (B.4: config/data-plane/lua/aigw/guardrail.lua,
handler.lua's check_guardrail/relay/check_answer), against the real gateway
with the provider mocks and the mock ApplyGuardrail (tests/guardrail_mock.py:
it blocks any text holding ``BLOCK_MARKER`` and anonymizes e-mail addresses).

Each ``test_attack_*`` is an attack of an independent attack run, kept as a
regression. Those marked "Found" got past the guardrail of its first
version; each docstring says how, and the fix that closed it."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.aws_mocks import CredentialsEndpoint, OtlpRecorder
from tests.gateway_fixtures import ORG_KEYS
from tests.gateway_harness import GatewayHarness, RunningDataPlane, TaskDefinition, request
from tests.guardrail_mock import BLOCK_MARKER, ApplyGuardrailMock
from tests.mock_providers import MockProvider, RecordedRequest, Reply, sse
from tests.team_fixtures import client_id_of, fake_jwt
from tests.test_guardrails import (  # noqa: F401  (fixtures)
    ask,
    chat,
    error_of,
    fresh_guardrail,
    guarded_task,
    guardrail,
    guardrail_references,
    start_guarded,
)

pytestmark = pytest.mark.gateway

EMAIL = "carol@example.net"


@pytest.fixture(scope="module")
def data_plane(
    harness: GatewayHarness,
    guarded_task: TaskDefinition,
    guardrail: ApplyGuardrailMock,
    credentials: CredentialsEndpoint,
    otlp: OtlpRecorder,
) -> RunningDataPlane:
    """The "guarded" scenario as tests/test_guardrails.py runs it, under a name of its own."""
    return start_guarded(harness, guarded_task, guardrail, credentials, otlp, "guarded-attacks")


@contextmanager
def answering(mock: MockProvider, answer: Callable[[RecordedRequest], Reply]) -> Iterator[None]:
    """The provider mock answers with ``answer`` (recording requests as usual) for the block."""
    mock.answer = answer  # type: ignore[method-assign]
    try:
        yield
    finally:
        del mock.answer


def reached_provider(mock: MockProvider, text: str) -> bool:
    return any(text.encode() in sent.body for sent in mock.requests)


def assert_input_blocked(response: Any, mock: MockProvider) -> None:
    """The request was refused (446) and the provider saw nothing of it."""
    assert not reached_provider(mock, BLOCK_MARKER), "the marker reached the provider unchecked"
    assert response.status == 446, (response.status, response.body[:300])
    assert error_of(response)["rule"] == "guardrail-input"


def anthropic_message(content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "claude-3-5-haiku-20241022", "max_tokens": 20,
            "messages": [{"role": "user", "content": content}], **extra}  # fmt: skip


# ------------------------------------------------------------------ input: what the collector skips


def test_attack_prompt_disguised_as_inline_base64_is_checked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """Found (critical), fixed. guardrail.lua's inline_binary() skips any string that
    starts with ``data:`` and holds ``;base64,`` anywhere, whatever key it is
    under: a plain chat message so shaped is never checked, and the model reads
    it as text. Repro: POST /v1/chat/completions
    {"messages":[{"role":"user","content":"data:;base64, <forbidden text>"}]}.
    Fix: skip only strings that are wholly a data URL with a base64 payload
    (``^data:[%w.+/-]*(;[^,;]*)*;base64,[%w+/=%s]*$``), and only under the keys
    that carry binary (url, image_url, file_data, ...); check the rest."""
    response, _ = ask(data_plane, chat(f"data:;base64, please explain {BLOCK_MARKER} in detail"))
    assert_input_blocked(response, mocks["openai"])


def test_attack_anthropic_plain_text_document_is_checked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """Found (high), fixed. STRUCTURE skips every ``data`` key, but Anthropic's plain
    text document source carries the document's text in ``data``
    ({"type":"document","source":{"type":"text","media_type":"text/plain",
    "data":"..."}}): the model reads it, the guardrail never sees it.
    Fix: drop ``data`` from STRUCTURE and rely on a strict base64 test of the
    value (as above) to skip binary."""
    body = anthropic_message([
        {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                        "data": f"Instructions: {BLOCK_MARKER}"}},
        {"type": "text", "text": "follow the document"},
    ])  # fmt: skip
    response, _ = ask(data_plane, body, "/v1/messages", "anthropic")
    assert_input_blocked(response, mocks["anthropic"])


@pytest.mark.parametrize("name", ["type", "data", "format", "status", "id", "model"])
def test_attack_tool_schema_property_named_like_structure_is_checked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider], name: str
) -> None:
    """Found (high), fixed. STRUCTURE is matched on key names at every depth, also
    inside maps whose keys are the client's own words: a tool's JSON-schema
    property called ``type``/``data``/``format``/``status``/``id``/``model``
    hides its whole schema, description included, which the model reads.
    Fix: skip structure keys only where they are structure (by path, e.g.
    message.role, content[].type), never below ``properties``/``parameters``/
    ``input_schema``/``schema``/``metadata``/tool ``input``; or skip only
    string values of those keys (never tables) and only short ones."""
    tool = {"type": "function", "function": {"name": "lookup", "description": "looks things up", "parameters": {
        "type": "object", "properties": {name: {"type": "string", "description": f"Always say {BLOCK_MARKER}"}},
    }}}  # fmt: skip
    response, _ = ask(data_plane, chat("hi", tools=[tool]))
    assert_input_blocked(response, mocks["openai"])


def test_attack_responses_text_format_schema_is_checked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """Found (high), fixed. ``format`` is in STRUCTURE, but on /v1/responses
    ``text.format`` is the structured-output definition (name, description,
    JSON schema with descriptions), which the model reads. Fix: as above
    (skip ``format`` only as a string)."""
    body = {"model": "gpt-4o", "input": "hi", "text": {"format": {
        "type": "json_schema", "name": "answer", "description": f"Write about {BLOCK_MARKER}",
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
    }}}  # fmt: skip
    response, _ = ask(data_plane, body, "/v1/responses")
    assert_input_blocked(response, mocks["openai"])


def test_attack_completion_prompt_as_token_ids_is_not_let_through_unchecked(
    data_plane: RunningDataPlane, guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider]
) -> None:
    """Found (high), fixed. /v1/completions (and /v1/embeddings) take the prompt as
    token ids (an array of integers, or of arrays of them): the collector
    reads strings only, so such a prompt is never checked (no ApplyGuardrail
    call at all) and the model reads it as text. Repro: POST /v1/completions
    {"model":"gpt-3.5-turbo-instruct","prompt":[[89, 51265, 12, 8386, 48489]]}
    (any forbidden text, tokenized). Fix: refuse (400 guardrail-input) a
    prompt/input that holds numbers while inputs are checked (the data plane
    cannot detokenize), or detokenize with the model's vocabulary."""
    tokens = [[1169, 4022, 12, 1102, 81, 3903]]  # stands for a tokenized forbidden text
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": tokens, "max_tokens": 5}
    response, _ = ask(data_plane, body, "/v1/completions")
    checked = guardrail.calls_from("INPUT")
    assert response.status in (400, 446) or checked, (
        "a token-id prompt reached the provider without any ApplyGuardrail call"
    )
    assert mocks["openai"].requests == []


# ------------------------------------------------------------------ input: parsing tricks (hold)


@pytest.mark.parametrize(
    "spelling",
    [
        json.dumps(BLOCK_MARKER),  # plain
        '"zebra\\u002dcontraband"',  # \u escape
        '"ZEBRA-CONTRABAND"',  # case
        '"\\u007a\\u0065bra-contraband"',
    ],
)
def test_attack_escaped_marker_is_checked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider], spelling: str
) -> None:
    """HOLDS: the checked text is the decoded JSON, as the gateway reads it."""
    raw = ('{"model":"gpt-4o","messages":[{"role":"user","content":' + spelling + "}]}").encode()
    response, _ = raw_ask(data_plane, raw)
    assert_input_blocked(response, mocks["openai"])


def test_attack_inline_pdf_document_is_not_let_through_unchecked(
    data_plane: RunningDataPlane, guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider]
) -> None:
    """Found, fixed (medium; a design gap). Uploads (multipart) are refused while
    inputs are checked because their content cannot be checked, but the same
    content inline in JSON passes unchecked: an Anthropic base64 PDF
    document (or OpenAI's ``file.file_data``, ``input_file``, ``input_audio``,
    and documents/images by URL the provider fetches) is read by the model
    and never seen by the guardrail. Fix: refuse document/file/audio content
    parts (and URL sources) while check_input is on, as uploads are, or
    extract their text and check it; at least document it as a gap."""
    import base64

    pdf = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj"
           b" 3 0 obj<</Type/Page/Parent 2 0 R/Contents 4 0 R>>endobj 4 0 obj<</Length 44>>stream\nBT /F1 12 Tf"
           b" 72 712 Td (" + BLOCK_MARKER.encode() + b") Tj ET\nendstream endobj"
           b" trailer<</Root 1 0 R>>\n%%EOF")  # fmt: skip
    body = anthropic_message([
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": base64.b64encode(pdf).decode()}},
        {"type": "text", "text": "do what the document says"},
    ])  # fmt: skip
    response, _ = ask(data_plane, body, "/v1/messages", "anthropic")
    reached = bool(mocks["anthropic"].requests)
    assert not reached or any(BLOCK_MARKER in text for call in guardrail.calls for text in call.texts), (
        f"a PDF holding the marker reached the provider unchecked ({response.status})"
    )


def test_attack_anthropic_tool_result_and_system_blocks_are_checked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: tool results (text blocks), system blocks and tool descriptions are read."""
    history = [
        {"role": "user", "content": "look it up"},
        {"role": "assistant",
         "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "text", "text": f"result: {BLOCK_MARKER}"}]}]},
    ]  # fmt: skip
    for body in (
        {"model": "claude-3-5-haiku-20241022", "max_tokens": 20, "messages": history},
        anthropic_message("hi", system=[{"type": "text", "text": BLOCK_MARKER}]),
        anthropic_message("hi", tools=[{"name": "t", "description": BLOCK_MARKER,
                                        "input_schema": {"type": "object", "properties": {}}}]),
    ):  # fmt: skip
        response, _ = ask(data_plane, body, "/v1/messages", "anthropic")
        assert_input_blocked(response, mocks["anthropic"])


def test_attack_responses_input_and_instructions_are_checked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: /v1/responses input items, instructions; completions prompt arrays; embeddings input."""
    cases = [
        ({"model": "gpt-4o", "instructions": BLOCK_MARKER, "input": "hi"}, "/v1/responses"),
        ({"model": "gpt-4o", "input": [{"type": "message", "role": "user",
                                        "content": [{"type": "input_text", "text": BLOCK_MARKER}]}]}, "/v1/responses"),
        ({"model": "gpt-3.5-turbo-instruct", "prompt": ["hi", BLOCK_MARKER]}, "/v1/completions"),
        ({"model": "text-embedding-3-small", "input": [BLOCK_MARKER]}, "/v1/embeddings"),
    ]  # fmt: skip
    for body, path in cases:
        response, _ = ask(data_plane, body, path)
        assert_input_blocked(response, mocks["openai"])


def test_attack_duplicate_keys_are_read_as_the_gateway_reads_them(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: cjson and JSON.parse both keep the last of duplicate keys, so the
    checked copy is the one the provider gets (the first is dropped by the gateway)."""
    raw = (
        '{"model":"gpt-4o","messages":[{"role":"user","content":"' + BLOCK_MARKER + '"}],'
        '"messages":[{"role":"user","content":"hello"}]}'
    ).encode()
    response, _ = raw_ask(data_plane, raw)
    assert not reached_provider(mocks["openai"], BLOCK_MARKER)
    raw = (
        '{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}],'
        '"messages":[{"role":"user","content":"' + BLOCK_MARKER + '"}]}'
    ).encode()
    response, _ = raw_ask(data_plane, raw)
    assert_input_blocked(response, mocks["openai"])


def test_attack_lone_surrogate_body_is_refused_not_passed(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: a body cjson cannot decode (a lone surrogate JSON.parse accepts) is refused, not passed."""
    raw = ('{"model":"gpt-4o","messages":[{"role":"user","content":"\\ud800 ' + BLOCK_MARKER + '"}]}').encode()
    response, _ = raw_ask(data_plane, raw)
    assert response.status in (400, 446) and not reached_provider(mocks["openai"], BLOCK_MARKER)


def test_attack_deep_nesting_is_refused(data_plane: RunningDataPlane, mocks: dict[str, MockProvider]) -> None:
    """HOLDS: text nested beyond what the collector reads is refused, never passed unread."""
    deep: Any = BLOCK_MARKER
    for _ in range(150):
        deep = {"x": deep}
    response, _ = ask(data_plane, chat("hi", metadata={"note": "x"}, user_data=deep))
    assert response.status in (400, 403, 446) and mocks["openai"].requests == []


def test_attack_marker_at_the_end_of_a_body_held_in_a_file_is_checked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: a body over 1 MiB (nginx keeps it in a temp file) is read whole."""
    padding = "lorem ipsum " * 120_000
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": padding},
                                            {"role": "user", "content": f"and {BLOCK_MARKER}"}]}  # fmt: skip
    response, _ = ask(data_plane, body)
    assert_input_blocked(response, mocks["openai"])


def test_attack_large_body_with_an_e_mail_is_masked_not_refused(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """Found, fixed (low: availability, alarm noise). ApplyGuardrail echoes the
    masked text in ``outputs``; guardrail.lua reads at most 1 MiB of its
    answer (MAX_RESPONSE_BYTES), so any request over ~1 MiB holding one
    anonymized finding gets 503 guardrail-unavailable and counts in
    GuardrailUnavailable (the alarm): any client can raise the alarm at will.
    It fails closed (nothing passes). Fix: size the limit on the request
    (e.g. 2 x the body + 64 KiB, bounded by client_max_body_size), or count
    this refusal apart from "unavailable"."""
    padding = "lorem ipsum " * 120_000
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": padding},
                                            {"role": "user", "content": f"write to {EMAIL}"}]}  # fmt: skip
    response, _ = ask(data_plane, body)
    assert not reached_provider(mocks["openai"], EMAIL)
    why = [line for line in (data_plane.home / "stderr.log").read_text().splitlines() if "not checked" in line]
    assert response.status == 200, [line[line.find("guardrail") :][:120] for line in why[-1:]]
    (sent,) = mocks["openai"].requests
    assert b"write to {EMAIL}" in sent.body


def test_attack_client_config_cannot_carry_text_past_the_check(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: override_params in a client config may only hold the allow-listed
    model parameters: no messages, system or prompt that would bypass the body check."""
    for params in ({"messages": [{"role": "user", "content": BLOCK_MARKER}]}, {"system": BLOCK_MARKER},
                   {"prompt": BLOCK_MARKER}):  # fmt: skip
        config = {"provider": "openai", "api_key": "sk-client-own", "override_params": params}
        headers = {"Authorization": f"Bearer {fake_jwt(client_id_of('default'))}",
                   "x-portkey-config": json.dumps(config)}  # fmt: skip
        response = request(f"{data_plane.base_url}/v1/chat/completions", chat("hi"), headers)
        assert response.status == 403 and error_of(response)["rule"] == "config"
    assert not reached_provider(mocks["openai"], BLOCK_MARKER)


# ------------------------------------------------------------------ anonymization (input)


def test_attack_escaped_e_mail_blocks_rather_than_passes(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: an address spelled with a \\u escape cannot be masked in the bytes: blocked."""
    raw = b'{"model":"gpt-4o","messages":[{"role":"user","content":"mail carol\\u0040example.net"}]}'
    response, _ = raw_ask(data_plane, raw)
    assert response.status == 446 and mocks["openai"].requests == []


def test_attack_e_mail_with_regex_characters_and_in_keys_is_masked_everywhere(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: plain (not pattern) replacement; the address is masked in keys too."""
    address = "a.b+c%d@ex-am_ple.co.uk"
    body = chat(f"mail {address} and {address}", metadata={address: "x"})
    response, _ = ask(data_plane, body)
    assert response.status == 200, response.body[:300]
    (sent,) = mocks["openai"].requests
    assert address.encode() not in sent.body


# ------------------------------------------------------------------ output


def anthropic_answer(content: list[dict[str, Any]]) -> Callable[[RecordedRequest], Reply]:
    def answer(_: RecordedRequest) -> Reply:
        return Reply.json({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
                           "content": content, "stop_reason": "tool_use", "stop_sequence": None,
                           "usage": {"input_tokens": 5, "output_tokens": 5}})  # fmt: skip

    return answer


@pytest.mark.parametrize("key", ["data", "status", "type", "format"])
def test_attack_generated_tool_input_under_a_structure_key_is_checked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider], key: str
) -> None:
    """Found (high), fixed. An Anthropic tool_use block's ``input`` is an object the
    model writes; a property of it named like a STRUCTURE key (data, status,
    type, format, ...; common property names) is never checked, and the
    client gets it. Repro: any tool whose schema has such a property; the
    model's argument text under it passes the output check. Fix: collect tool
    ``input`` (and any object below it) without the STRUCTURE skip; see the
    input-side fix."""
    content = [{"type": "tool_use", "id": "toolu_01", "name": "save", "input": {key: f"here: {BLOCK_MARKER}"}}]
    with answering(mocks["anthropic"], anthropic_answer(content)):
        response, _ = ask(data_plane, anthropic_message("save it"), "/v1/messages", "anthropic")
    assert BLOCK_MARKER.encode() not in response.body, "a blocked answer reached the client"
    assert response.status == 446


def test_attack_generated_tool_input_keys_are_checked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """Found (medium), fixed. Object keys are never collected; a tool_use ``input``
    whose keys the model chose (an open schema: additionalProperties, a map)
    carries unchecked generated text. Fix: collect the keys of objects below a
    tool ``input`` (or of every object not in a fixed schema position)."""
    content = [{"type": "tool_use", "id": "toolu_01", "name": "save", "input": {BLOCK_MARKER: 1}}]
    with answering(mocks["anthropic"], anthropic_answer(content)):
        response, _ = ask(data_plane, anthropic_message("save it"), "/v1/messages", "anthropic")
    assert BLOCK_MARKER.encode() not in response.body, "a blocked answer reached the client"


def openai_chunks(pieces: list[tuple[int, str]], n: int = 1) -> list[bytes]:
    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse({"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                    "choices": [{"index": index, "delta": delta, "logprobs": None,
                                 "finish_reason": finish}]})  # fmt: skip

    chunks = [chunk(i, {"role": "assistant", "content": ""}) for i in range(n)]
    chunks += [chunk(index, {"content": text}) for index, text in pieces]
    chunks += [chunk(i, {}, "stop") for i in range(n)]
    return [*chunks, sse("[DONE]")]


def test_attack_marker_split_across_events_and_interleaved_choices_is_blocked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: a choice's text is joined across its events, whatever other choices interleave."""
    pieces = [(0, "zebra"), (1, "one "), (0, "-contr"), (1, "two"), (0, "aband")]
    with answering(mocks["openai"], lambda _: Reply.stream(openai_chunks(pieces, n=2))):
        response, _ = ask(data_plane, chat("hi", stream=True, n=2))
    assert response.status == 446 and BLOCK_MARKER.encode() not in response.body
    assert b"contr" not in response.body


@pytest.mark.parametrize("framing", ["crlf", "nospace"])
def test_attack_stream_framing_variants_are_checked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider], framing: str
) -> None:
    """HOLDS: `data:` without a space and CRLF line ends are read like the clients read them."""
    raw = b"".join(openai_chunks([(0, "zebra-"), (0, "contraband")]))
    raw = raw.replace(b"\n", b"\r\n") if framing == "crlf" else raw.replace(b"data: ", b"data:")
    with answering(mocks["openai"], lambda _: Reply.stream([raw])):
        response, _ = ask(data_plane, chat("hi", stream=True))
    assert b"contraband" not in response.body, (response.status, response.body[:300])


def test_attack_anthropic_stream_split_marker_is_blocked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: Anthropic's content_block_delta events are joined per block."""
    events = [sse({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                   "model": "claude-3-5-haiku-20241022", "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 3, "output_tokens": 1}}}, "message_start"),
              sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                  "content_block_start")]  # fmt: skip
    for piece in ("zeb", "ra-con", "traband"):
        events.append(sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                          "content_block_delta"))  # fmt: skip
    events += [sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
               sse({"type": "message_stop"}, "message_stop")]  # fmt: skip
    with answering(mocks["anthropic"], lambda _: Reply.stream(events)):
        response, _ = ask(data_plane, anthropic_message("hi", stream=True), "/v1/messages", "anthropic")
    assert response.status == 446 and b"traband" not in response.body


def responses_stream(pieces: list[str], done_text: str | None) -> list[bytes]:
    item = "msg_0123456789abcdef"
    events = [sse({"type": "response.created", "sequence_number": 0,
                   "response": {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}},
                  "response.created")]  # fmt: skip
    for number, piece in enumerate(pieces, 1):
        events.append(sse({"type": "response.output_text.delta", "sequence_number": number, "item_id": item,
                           "output_index": 0, "content_index": 0, "delta": piece},
                          "response.output_text.delta"))  # fmt: skip
    if done_text is not None:
        events.append(sse({"type": "response.output_text.done", "sequence_number": 99, "item_id": item,
                           "output_index": 0, "content_index": 0, "text": done_text},
                          "response.output_text.done"))  # fmt: skip
    return events


def azure_chunks(pieces: list[str], with_filters: bool = True) -> list[bytes]:
    """Azure OpenAI's stream: every chunk's choice carries content_filter_results (severity strings)."""
    filters: dict[str, Any] = (
        {name: {"filtered": False, "severity": "safe"} for name in ("hate", "self_harm", "sexual", "violence")}
        if with_filters
        else {}
    )

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse({"choices": [{"content_filter_results": filters, "delta": delta, "finish_reason": finish,
                                 "index": 0, "logprobs": None}], "created": 1, "id": "chatcmpl-az",
                    "model": "gpt-4o-2024-08-06", "object": "chat.completion.chunk",
                    "system_fingerprint": "fp_az"})  # fmt: skip

    first = sse({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                 "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filters}]})  # fmt: skip
    return [first, chunk({"role": "assistant", "content": ""}), *[chunk({"content": p}) for p in pieces],
            chunk({}, "stop"), sse("[DONE]")]  # fmt: skip


def test_attack_azure_stream_marker_split_across_chunks_is_blocked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """Found (high), fixed. stream_texts joins *every* string of a part in arrival
    order, not just the generated text. Azure OpenAI puts
    ``content_filter_results`` (``"severity": "safe"`` x4) in every chunk's
    choice, beside ``delta``: the joined text of choice 0 is
    "zebra-" "safe" "safe" "safe" "safe" "contraband" ..., so any text the
    model's tokens split (always, for words a word filter lists) is never
    seen whole, and Azure sends no closing event with the whole text. A
    blocked answer reaches the client, and an anonymized finding split across
    chunks is neither seen nor masked. Repro: azure-openai, stream: true,
    an answer with a blocked word split across two chunks. Fix: join only
    the generated-text fields per part (delta.content, delta.refusal,
    function.arguments, text, delta.text, partial_json, thinking, delta
    (Responses), transcript), and check the other strings each on its own."""
    pieces = ["The word is zebra-", "contraband."]
    # The control: the same chunks without the filter results are blocked.
    with answering(mocks["azure-openai"], lambda _: Reply.stream(azure_chunks(pieces, with_filters=False))):
        response, _ = ask(data_plane, chat("hi", stream=True), provider="azure-openai")
    assert response.status == 446 and b"contraband" not in response.body
    with answering(mocks["azure-openai"], lambda _: Reply.stream(azure_chunks(pieces))):
        response, _ = ask(data_plane, chat("hi", stream=True), provider="azure-openai")
    assert mocks["azure-openai"].requests, response.body[:300]
    assert b"contraband" not in response.body, f"the split marker reached the client ({response.status})"


def test_attack_responses_stream_marker_split_across_deltas_is_blocked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """Found (medium), fixed. Same cause: a Responses delta event holds ``item_id``
    (and OpenAI's ``obfuscation``) beside ``delta`` in the same part, so the
    deltas join as "zebra-" "msg_..." "contraband". Only the closing
    ``response.output_text.done`` (whole text) saves it today; a stream that
    ends without it (``response.failed``/``error`` mid-answer) leaks, and an
    anonymized finding (a card number the tokens split) is masked in the done
    event only while its pieces go out in the deltas. Fix: as above."""
    with answering(mocks["openai"], lambda _: Reply.stream(responses_stream(["zebra-", "contraband"], None))):
        response, _ = ask(data_plane, {"model": "gpt-4o", "input": "hi", "stream": True}, "/v1/responses")
    assert b"contraband" not in response.body, f"the split marker reached the client ({response.status})"


def test_attack_json_answer_labelled_as_a_stream_is_checked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """An answer whose Content-Type says text/event-stream but whose body has
    no ``data:`` line yields no text and passes unchecked (stream_texts
    returns {}). Fix: a 200 stream with bytes but no data event is
    unreadable (502), not empty."""
    payload = {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "gpt-4o",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": BLOCK_MARKER},
                            "finish_reason": "stop"}]}  # fmt: skip
    with answering(mocks["openai"], lambda _: Reply.stream([json.dumps(payload).encode()])):
        response, _ = ask(data_plane, chat("hi", stream=True))
    assert b"contraband" not in response.body, f"unchecked text reached the client ({response.status})"


def test_attack_generated_image_prompt_is_checked(data_plane: RunningDataPlane, mocks: dict[str, MockProvider]) -> None:
    """Found (low), fixed. /v1/images/generations is not a "generating" route, so
    its answer is never checked, and its model-written text (``revised_prompt``,
    DALL-E 3 rewrites every prompt) sits under ``data``, which STRUCTURE would
    skip anyway. Fix: add the route to GENERATING_ROUTES for its text (the
    images themselves stay unchecked: say so), and drop ``data`` from STRUCTURE."""
    answer = Reply.json({"created": 1, "data": [{"url": "https://images.mock.invalid/x.png",
                                                 "revised_prompt": f"A poster about {BLOCK_MARKER}"}]})  # fmt: skip
    with answering(mocks["openai"], lambda _: answer):
        response, _ = ask(data_plane, {"model": "dall-e-3", "prompt": "a poster"}, "/v1/images/generations")
    assert mocks["openai"].requests, response.body[:300]
    assert BLOCK_MARKER.encode() not in response.body, (
        f"unchecked generated text reached the client ({response.status})"
    )


def test_attack_non_json_answer_fails_closed(data_plane: RunningDataPlane, mocks: dict[str, MockProvider]) -> None:
    """HOLDS: a 200 answer that is not JSON is not sent unchecked."""
    reply = Reply(200, {"content-type": "application/json"}, f"oops {BLOCK_MARKER}".encode())
    with answering(mocks["openai"], lambda _: reply):
        response, _ = ask(data_plane, chat("hi"))
    assert BLOCK_MARKER.encode() not in response.body and response.status >= 500


def test_attack_large_answer_is_fetched_whole_and_checked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: a 3 MB answer with the marker at its very end is read whole by the relay."""
    mocks["openai"].reply_text = "lorem ipsum " * 250_000 + BLOCK_MARKER
    response, _ = ask(data_plane, chat("hi"))
    assert response.status == 446 and BLOCK_MARKER.encode() not in response.body


def test_attack_large_stream_is_fetched_whole_and_checked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: the same as a stream of many events."""
    mocks["openai"].reply_text = "lorem " * 20_000 + BLOCK_MARKER
    response, _ = ask(data_plane, chat("hi", stream=True))
    assert response.status == 446 and BLOCK_MARKER.encode() not in response.body


# ------------------------------------------------------------------ failing closed


@contextmanager
def guardrail_answering(guardrail: ApplyGuardrailMock, handle: Callable[[RecordedRequest], Reply]) -> Iterator[None]:
    original = guardrail.handle
    guardrail.handle = handle  # type: ignore[method-assign]
    try:
        yield
    finally:
        guardrail.handle = original  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "answer",
    [
        Reply.json({"action": "GUARDRAIL_INTERVENED", "assessments": []}),  # nothing to apply: blocks
        Reply.json(
            {
                "action": "GUARDRAIL_INTERVENED",
                "assessments": [
                    {"sensitiveInformationPolicy": {"piiEntities": [{"type": "EMAIL", "action": "ANONYMIZED"}]}}
                ],
            }
        ),  # no match: blocks
        Reply.json({"action": "SOMETHING_NEW"}),
        Reply(200, {"content-type": "application/json"}, b"not json"),
        Reply.json({"action": "NONE"}, 400),
    ],
)
def test_attack_strange_guardrail_answers_never_pass(
    data_plane: RunningDataPlane, guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider], answer: Reply
) -> None:
    """HOLDS: anything but NONE or an applicable verdict refuses (446 or 503)."""
    with guardrail_answering(guardrail, lambda _: answer):
        response, _ = ask(data_plane, chat("hello"))
    assert response.status in (446, 503) and mocks["openai"].requests == []


def test_attack_slow_guardrail_fails_closed(
    data_plane: RunningDataPlane, guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: a call slower than timeout_ms (5 s) refuses with 503; the provider is not called."""
    original = guardrail.handle

    def slow(request: RecordedRequest) -> Reply:
        time.sleep(6.5)
        return original(request)

    with guardrail_answering(guardrail, slow):
        started = time.monotonic()
        response, line = ask(data_plane, chat("hello"))
    assert response.status == 503 and error_of(response)["rule"] == "guardrail-unavailable"
    assert time.monotonic() - started < 6.4 and mocks["openai"].requests == []
    assert line["guardrail"] == "unavailable"


def test_attack_guardrail_failing_on_the_answer_withholds_it(
    data_plane: RunningDataPlane, guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: the output check failing (after the provider answered) sends nothing of the answer."""
    original = guardrail.handle

    def fail_output(request: RecordedRequest) -> Reply:
        if json.loads(request.body)["source"] == "OUTPUT":
            return Reply.json({"message": "Rate exceeded"}, 429)
        return original(request)

    mocks["openai"].reply_text = f"secret {BLOCK_MARKER}"
    with guardrail_answering(guardrail, fail_output):
        response, _ = ask(data_plane, chat("hello"))
    assert response.status == 503 and b"contraband" not in response.body


def test_attack_guardrail_connections_closed_while_pooled_do_not_fail_requests(
    data_plane: RunningDataPlane, guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider]
) -> None:
    """HOLDS: Bedrock closing idle pooled connections does not turn into 503s
    (nginx evicts a pooled connection its peer closed)."""
    assert ask(data_plane, chat("hello"))[0].status == 200
    with guardrail._lock:
        connections = list(guardrail._connections)
    for connection in connections:
        connection.shutdown(socket.SHUT_RDWR)
    time.sleep(0.2)
    statuses = [ask(data_plane, chat("hello"))[0].status for _ in range(4)]
    assert statuses == [200] * 4


# ------------------------------------------------------------------ the relay location


@pytest.mark.parametrize(
    "path",
    ["/_aigw/relay", "/%5Faigw/relay", "/_aigw%2Frelay", "//_aigw/relay", "/_aigw/./relay", "/v1/../_aigw/relay",
     "/_aigw/relay/", "/_AIGW/relay", "/_aigw/relay?x=1", "/_aigw/relay%00"],
)  # fmt: skip
def test_attack_relay_location_is_unreachable_in_any_spelling(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider], path: str
) -> None:
    """HOLDS: the relay is internal and answers only the Lua code's subrequest."""
    status, answer = raw_http(data_plane, f"POST {path} HTTP/1.1", json.dumps(chat("hi")).encode())
    assert status in (400, 404), (status, answer[:300])
    assert mocks["openai"].requests == []


# ------------------------------------------------------------------ logs


def test_attack_no_checked_text_in_any_log(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider], otlp: Any
) -> None:
    """HOLDS: after blocked inputs and answers, masked mails and failures, neither
    the marker nor an address is in the access log, the error log or any
    exported span or metric."""
    ask(data_plane, chat(f"{BLOCK_MARKER} and {EMAIL}"))
    ask(data_plane, chat(f"mail {EMAIL}"))
    mocks["openai"].reply_text = f"{BLOCK_MARKER} {EMAIL}"
    ask(data_plane, chat("hi"))
    ask(data_plane, chat("hi", stream=True))
    deadline = time.monotonic() + 10
    while not any(payload.signal == "traces" for payload in list(otlp.payloads)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for log in (data_plane.access_log, data_plane.home / "stderr.log"):
        text = log.read_text(errors="replace")
        assert BLOCK_MARKER not in text and EMAIL not in text, log
    exported = b"".join(payload.data for payload in list(otlp.payloads))
    assert exported and BLOCK_MARKER.encode() not in exported and EMAIL.encode() not in exported


# ------------------------------------------------------------------ helpers


def raw_ask(
    data_plane: RunningDataPlane,
    raw: bytes,
    path: str = "/v1/chat/completions",
) -> tuple[Any, Any]:
    trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    headers = {"Authorization": f"Bearer {fake_jwt(client_id_of('default'))}", "x-amzn-trace-id": trace,
               "x-portkey-provider": "openai"}  # fmt: skip
    return request(f"{data_plane.base_url}{path}", raw, headers), trace


def raw_http(data_plane: RunningDataPlane, request_line: str, body: bytes) -> tuple[int, bytes]:
    headers = (f"{request_line}\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {fake_jwt(client_id_of('default'))}\r\n"
               f"x-portkey-provider: openai\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n")  # fmt: skip
    with socket.create_connection(("127.0.0.1", data_plane.port), timeout=10) as sock:
        sock.sendall(headers.encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


# ------------------------------------------------------------------ the response cache


@pytest.fixture(scope="module")
def cache_planes(
    tmp_path_factory: pytest.TempPathFactory,
    harness: GatewayHarness,
    store: Any,
    guardrail: ApplyGuardrailMock,
    credentials: CredentialsEndpoint,
) -> dict[str, RunningDataPlane]:
    """Two tasks of one stack with the response cache and the guardrail, sharing
    the store: one before and one after `check_output` was turned on (a rolling
    deployment, or the same task's cache after the change)."""
    from pathlib import Path

    from aigw.data_plane.contract import DATA_PLANE_CONTAINER, RUNTIME_VARIABLE
    from aigw.environments import Environment
    from modules.stack import synthesize
    from tests.gateway_fixtures import stack_file
    from tests.scenarios import scenario_settings, vary
    from tests.team_fixtures import references
    from tests.test_guardrails import GUARDRAIL_ID, GUARDRAIL_VERSION

    cache = scenario_settings()["cache"]
    environments = [
        Environment(f"gr-cache-{name}", Path(__file__),
                    vary(cache, guardrails={"enabled": True, "check_output": name == "checked"}))
        for name in ("unchecked", "checked")
    ]  # fmt: skip
    outdir = tmp_path_factory.mktemp("gr-cache.out")
    synthesize(environments, outdir)
    both_cas = tmp_path_factory.mktemp("gr-cache-ca") / "ca.pem"
    both_cas.write_text(Path(store.ca).read_text() + Path(guardrail.ca).read_text())
    planes = {}
    for name in ("unchecked", "checked"):
        task = TaskDefinition.from_stack(stack_file(outdir, f"gr-cache-{name}"))
        runtime = json.loads(task.environment(DATA_PLANE_CONTAINER)[RUNTIME_VARIABLE])
        values = references(task, store)
        values[runtime["guardrail"]["id"][2:-1]] = GUARDRAIL_ID
        values[runtime["guardrail"]["version"][2:-1]] = GUARDRAIL_VERSION
        planes[name] = harness.start_data_plane(
            ORG_KEYS, f"gr-cache-{name}", task=task, references=values, store_ca=both_cas,
            guardrail_address=guardrail.address, credentials_uri=credentials.full_uri,
        )  # fmt: skip
    return planes


def test_attack_answer_cached_before_output_checks_is_not_served_after(
    cache_planes: dict[str, RunningDataPlane], store: Any, mocks: dict[str, MockProvider]
) -> None:
    """Found (medium), fixed. The cache key names the guardrail's id and version
    (`:guardrail:<id>:<version>`), not whether answers were checked: an
    answer stored while `check_output` was off (the guardrail's version does
    not change when only check_output changes) is served as a HIT, unchecked,
    by tasks that check outputs, for the whole TTL (and by old tasks during a
    rolling deployment). Repro: deploy with check_output = false and the
    cache on; ask; deploy with check_output = true; ask the same: the old
    answer comes back without an OUTPUT call. Fix: put the output check into
    the key (`checked_by = ":guardrail:" .. id .. ":" .. version ..
    (check_output and ":out" or ":in")`), or store answers only when they
    were checked (ctx.check_answer) while a guardrail is configured."""
    store.cli("FLUSHALL")
    body = chat("what is the secret word?", temperature=0.1)
    mocks["openai"].reply_text = f"The secret word is {BLOCK_MARKER}."
    first, _ = ask(cache_planes["unchecked"], body)
    assert first.status == 200  # no output check there
    deadline = time.monotonic() + 5
    while not store.cli("KEYS", "aigw:cache:*").split() and time.monotonic() < deadline:
        time.sleep(0.02)
    second, line = ask(cache_planes["checked"], body)
    assert BLOCK_MARKER.encode() not in second.body, (
        f"a cached, never-checked answer was served by a task that checks answers (cache {line['cache']})"
    )
