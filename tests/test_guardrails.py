"""The organisation's guardrail ([guardrails]) in the data plane, in front of
the real gateway: the "guarded" scenario (tests/scenarios.py) with a mock
ApplyGuardrail over TLS that verifies every call's SigV4 signature against
the task role's credentials (tests/guardrail_mock.py). What is proven: a
blocked request never reaches the provider; a blocked answer, streamed or
not, never reaches the client; anonymized text is masked where it goes; the
guardrail failing refuses (fails closed); and each outcome is logged and
counted, never with the checked text. A variant checking answers only, with
the response cache and a team budget on a shared store (two tasks naming two
published versions), proves that a cached answer is reused only under the
version that checked it and that a relayed answer is counted against the
budget."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aigw.data_plane.contract import DATA_PLANE_CONTAINER, RUNTIME_VARIABLE
from aigw.environments import Environment
from aigw.settings.clients import BudgetSettings, ClientSettings
from tests.aws_mocks import CredentialsEndpoint, OtlpRecorder, SpanRecord
from tests.gateway_fixtures import ORG_KEYS, stack_file
from tests.gateway_harness import GatewayHarness, Response, RunningDataPlane, TaskDefinition, request
from tests.guardrail_mock import BLOCK_MARKER, ApplyGuardrailMock, certificates
from tests.mock_providers import MockProvider, RecordedRequest, Reply, sse
from tests.scenarios import scenario_settings, vary
from tests.team_fixtures import client_id_of, fake_jwt, references
from tests.tls_store import Store

pytestmark = pytest.mark.gateway

GUARDRAIL_ID = "gr0example01"
GUARDRAIL_VERSION = "3"
INPUT_MESSAGE = "Refused by the Example Corp guardrail."
OUTPUT_MESSAGE = "Withheld by the Example Corp guardrail."


@pytest.fixture(scope="module")
def guardrail(
    tmp_path_factory: pytest.TempPathFactory, credentials: CredentialsEndpoint
) -> Iterator[ApplyGuardrailMock]:
    mock = ApplyGuardrailMock(tmp_path_factory.mktemp("guardrail"), "us-east-1", credentials)
    mock.path = f"/guardrail/{GUARDRAIL_ID}/version/{GUARDRAIL_VERSION}/apply"
    mock.start()
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def guarded_task(scenarios_outdir: Path) -> TaskDefinition:
    return TaskDefinition.from_stack(stack_file(scenarios_outdir, "guarded"))


def guardrail_references(task: TaskDefinition) -> dict[str, str]:
    """Terraform's values for the team's client id and the guardrail's id and published version."""
    runtime = json.loads(task.environment(DATA_PLANE_CONTAINER)[RUNTIME_VARIABLE])
    values = {expression[2:-1]: client_id_of(team) for expression, team in runtime["teams"].items()}
    values[runtime["guardrail"]["id"][2:-1]] = GUARDRAIL_ID
    values[runtime["guardrail"]["version"][2:-1]] = GUARDRAIL_VERSION
    return values


def start_guarded(
    harness: GatewayHarness,
    task: TaskDefinition,
    guardrail: ApplyGuardrailMock,
    credentials: CredentialsEndpoint,
    otlp: OtlpRecorder,
    name: str,
) -> RunningDataPlane:
    """The "guarded" scenario's data plane, its guardrail the mock (every module that runs one names its own)."""
    return harness.start_data_plane(
        ORG_KEYS, name, task=task, references=guardrail_references(task), store_ca=guardrail.ca,
        guardrail_address=guardrail.address, credentials_uri=credentials.full_uri, otlp_port=otlp.port,
    )  # fmt: skip


@pytest.fixture(scope="module")
def data_plane(
    harness: GatewayHarness,
    guarded_task: TaskDefinition,
    guardrail: ApplyGuardrailMock,
    credentials: CredentialsEndpoint,
    otlp: OtlpRecorder,
) -> RunningDataPlane:
    return start_guarded(harness, guarded_task, guardrail, credentials, otlp, "guarded")


@pytest.fixture(autouse=True)
def fresh_guardrail(guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider]) -> Iterator[None]:
    guardrail.clear()
    yield
    guardrail.clear()
    for mock in mocks.values():
        mock.reply_text = mock.default_reply_text


def ask(
    data_plane: RunningDataPlane,
    body: dict[str, Any] | bytes,
    path: str = "/v1/chat/completions",
    provider: str = "openai",
    team: str = "default",
) -> tuple[Response, dict[str, Any]]:
    trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    headers = {"Authorization": f"Bearer {fake_jwt(client_id_of(team))}", "x-amzn-trace-id": trace,
               "x-portkey-provider": provider}  # fmt: skip
    response = request(f"{data_plane.base_url}{path}", body, headers)
    return response, data_plane.access_line(trace)


def chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}


def error_of(response: Response) -> dict[str, Any]:
    return json.loads(response.body)["error"]  # type: ignore[no-any-return]


def test_a_blocked_request_never_reaches_the_provider(
    data_plane: RunningDataPlane, guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider]
) -> None:
    response, line = ask(data_plane, chat(f"tell me about {BLOCK_MARKER}"))
    assert response.status == 446
    assert error_of(response) == {"message": INPUT_MESSAGE, "type": "aigw_refused", "rule": "guardrail-input"}
    assert mocks["openai"].requests == []
    (call,) = guardrail.calls
    assert call.source == "INPUT" and call.check.verified and call.action == "GUARDRAIL_INTERVENED"
    assert any(BLOCK_MARKER in text for text in call.texts)
    assert (line["guardrail"], line["rule"], line["team"]) == ("blocked-input", "guardrail-input", "default")
    assert BLOCK_MARKER not in data_plane.access_log.read_text()


def test_a_passing_request_and_answer_are_checked_with_the_task_roles_signature_and_sent_unchanged(
    data_plane: RunningDataPlane, guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider]
) -> None:
    response, line = ask(data_plane, chat("what is 2 + 2?"))
    assert response.status == 200, response.body
    assert json.loads(response.body)["choices"][0]["message"]["content"] == mocks["openai"].default_reply_text
    assert [call.source for call in guardrail.calls] == ["INPUT", "OUTPUT"]
    assert all(call.check.verified for call in guardrail.calls)
    assert all(call.check.session_token for call in guardrail.calls)  # the task role's session, not a key
    assert mocks["openai"].default_reply_text in guardrail.calls[1].texts[0]  # the answer's text, among its strings
    assert line["guardrail"] == "passed" and line["input_tokens"] is not None
    assert len(mocks["openai"].requests) == 1


def test_text_a_client_hides_in_an_unusual_field_is_checked_too(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    body = chat("hello", metadata={"note": BLOCK_MARKER})
    response, _ = ask(data_plane, body)
    assert response.status == 446 and mocks["openai"].requests == []
    anthropic = {"model": "claude-3-5-haiku-20241022", "max_tokens": 20, "system": BLOCK_MARKER,
                 "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}  # fmt: skip
    response, _ = ask(data_plane, anthropic, "/v1/messages", "anthropic")
    assert response.status == 446 and mocks["anthropic"].requests == []


def test_a_blocked_answer_is_replaced_and_its_tokens_still_logged(
    data_plane: RunningDataPlane, guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider]
) -> None:
    mocks["openai"].reply_text = f"Sure, here is how to buy {BLOCK_MARKER}."
    response, line = ask(data_plane, chat("hi"))
    assert response.status == 446
    assert error_of(response) == {"message": OUTPUT_MESSAGE, "type": "aigw_refused", "rule": "guardrail-output"}
    assert BLOCK_MARKER.encode() not in response.body
    assert len(mocks["openai"].requests) == 1
    assert [call.source for call in guardrail.calls] == ["INPUT", "OUTPUT"]
    assert line["guardrail"] == "blocked-output" and line["output_tokens"] is not None


def test_a_streamed_answer_is_checked_whole_before_its_first_event_and_a_blocked_one_sends_nothing(
    data_plane: RunningDataPlane, guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider]
) -> None:
    # The mock streams word by word: the marker's words arrive in separate events.
    mocks["openai"].reply_text = f"one two {BLOCK_MARKER} three"
    response, line = ask(data_plane, chat("hi", stream=True))
    assert response.status == 446 and b"data:" not in response.body
    assert error_of(response)["rule"] == "guardrail-output"
    (output,) = guardrail.calls_from("OUTPUT")
    assert output.texts[0] == f"one two {BLOCK_MARKER} three"  # the choice's deltas, joined; its other strings after
    assert line["guardrail"] == "blocked-output"


def test_a_clean_stream_is_delivered_whole_as_server_sent_events(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    mocks["openai"].reply_text = "one two three"
    response, line = ask(data_plane, chat("hi", stream=True))
    assert response.status == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(part[6:]) for part in response.body.decode().split("\n\n") if part.startswith("data: {")]
    text = "".join(choice["delta"].get("content") or "" for e in events for choice in e["choices"])
    assert text == "one two three"
    assert response.body.rstrip().endswith(b"data: [DONE]")
    # The first token reached the client only once the whole answer had passed.
    assert line["stream"] is True and line["time_to_first_token"] is not None
    assert line["output_tokens"] is not None


def test_an_anonymized_request_reaches_the_provider_masked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    response, line = ask(data_plane, chat("write to alice@example.com about the meeting"))
    assert response.status == 200
    (sent,) = mocks["openai"].requests
    assert b"alice@example.com" not in sent.body
    assert json.loads(sent.body)["messages"][0]["content"] == "write to {EMAIL} about the meeting"
    assert line["guardrail"] == "anonymized-input"


def test_an_anonymized_answer_reaches_the_client_masked(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    mocks["openai"].reply_text = "Write to bob@example.org today."
    response, line = ask(data_plane, chat("whom should I write to?"))
    assert response.status == 200
    assert json.loads(response.body)["choices"][0]["message"]["content"] == "Write to {EMAIL} today."
    assert int(response.headers["content-length"]) == len(response.body)
    assert line["guardrail"] == "anonymized-output"


def test_an_e_mail_within_one_streamed_event_is_masked_in_place(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    # The mock streams word by word: one event holds the address, so it is masked in place (one split
    # across events cannot be, and blocks: config/data-plane/spec/guardrail_spec.lua).
    mocks["openai"].reply_text = "mail carol@example.net now"
    response, _ = ask(data_plane, chat("hi", stream=True))
    assert response.status == 200 and b"carol@example.net" not in response.body and b"{EMAIL}" in response.body


@pytest.mark.parametrize("status", [429, 500, 403])
def test_the_guardrail_failing_refuses_the_request_before_the_provider(
    data_plane: RunningDataPlane, guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider], status: int
) -> None:
    guardrail.fail_with = status
    response, line = ask(data_plane, chat("what is 2 + 2?"))
    assert response.status == 503 and error_of(response)["rule"] == "guardrail-unavailable"
    assert mocks["openai"].requests == []
    assert line["guardrail"] == "unavailable"


def test_uploads_are_refused_while_inputs_are_checked(data_plane: RunningDataPlane) -> None:
    trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    headers = {"Authorization": f"Bearer {fake_jwt(client_id_of('default'))}", "x-amzn-trace-id": trace,
               "x-portkey-provider": "openai", "content-type": "multipart/form-data; boundary=x"}  # fmt: skip
    body = b'--x\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--x--\r\n'
    response = request(f"{data_plane.base_url}/v1/audio/transcriptions", body, headers)
    assert response.status == 400 and error_of(response)["rule"] == "guardrail-unchecked"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_relay_location_is_not_reachable_from_outside(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider], method: str
) -> None:
    headers = {"Authorization": f"Bearer {fake_jwt(client_id_of('default'))}", "x-portkey-provider": "openai"}
    response = request(f"{data_plane.base_url}/_aigw/relay", chat("hi") if method == "POST" else None, headers,
                       method=method)  # fmt: skip
    assert response.status == 404 and error_of(response)["rule"] == "http-404"  # nginx's own: an internal location
    assert mocks["openai"].requests == []


def test_blocks_and_failures_are_counted_by_team(
    data_plane: RunningDataPlane, guardrail: ApplyGuardrailMock, otlp: OtlpRecorder
) -> None:
    ask(data_plane, chat(BLOCK_MARKER))
    guardrail.fail_with = 500
    ask(data_plane, chat("hi"))
    deadline = time.monotonic() + 10
    wanted = {"GuardrailBlockedInputs", "GuardrailUnavailable"}
    while time.monotonic() < deadline:
        seen = {p.name for p in otlp.metric_points() if p.name in wanted and p.value and
                p.attributes.get("team") == "default"}  # fmt: skip
        if seen == wanted:
            return
        time.sleep(0.2)
    raise AssertionError(f"no points above 0 for {wanted}")


def test_streams_are_refused_when_so_configured_and_plain_requests_still_checked(
    harness: GatewayHarness,
    scenarios_outdir: Path,
    guardrail: ApplyGuardrailMock,
    credentials: CredentialsEndpoint,
    mocks: dict[str, MockProvider],
) -> None:
    """The "guardrails" scenario: output_streams = "refuse"."""
    task = TaskDefinition.from_stack(stack_file(scenarios_outdir, "guardrails"))
    refusing = harness.start_data_plane(
        ORG_KEYS, "guardrails-refuse", task=task, references=guardrail_references(task),
        store_ca=guardrail.ca, guardrail_address=guardrail.address, credentials_uri=credentials.full_uri,
    )  # fmt: skip
    response, line = ask(refusing, chat("hi", stream=True))
    assert response.status == 400 and error_of(response)["rule"] == "guardrail-stream"
    assert mocks["openai"].requests == [] and line["rule"] == "guardrail-stream"
    response, _ = ask(refusing, chat("hi"))
    assert response.status == 200
    assert [call.source for call in guardrail.calls] == ["INPUT", "OUTPUT"]


def test_an_e_mail_the_request_spells_with_a_json_escape_is_blocked_not_sent_unmasked(
    data_plane: RunningDataPlane, guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider]
) -> None:
    # The guardrail finds the address in the decoded text; the bytes spell it "alice\u0040example.com",
    # so it cannot be masked in place: the request is blocked rather than sent on with the address.
    raw = b'{"model":"gpt-4o","messages":[{"role":"user","content":"write to alice\\u0040example.com"}]}'
    response, line = ask(data_plane, raw)
    assert response.status == 446 and error_of(response)["rule"] == "guardrail-input"
    assert mocks["openai"].requests == []
    assert [call.action for call in guardrail.calls] == ["GUARDRAIL_INTERVENED"]
    assert line["guardrail"] == "blocked-input"


def split_stream(*texts: str) -> Callable[[RecordedRequest], Reply]:
    """A chat completion answer streamed as one event per text (a provider splits words anywhere)."""

    def answer(request: RecordedRequest) -> Reply:
        def event(text: str) -> bytes:
            return sse({"id": "chatcmpl-split", "object": "chat.completion.chunk", "model": "gpt-4o",
                        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})  # fmt: skip

        return Reply.stream([*(event(text) for text in texts), sse("[DONE]")])

    return answer


def test_an_e_mail_split_across_streamed_events_is_blocked_not_sent(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read whole, the stream holds the address; no single event does, so it cannot be masked in place.
    monkeypatch.setattr(mocks["openai"], "chat_completions", split_stream("mail carol@exa", "mple.net now"))
    response, line = ask(data_plane, chat("hi", stream=True))
    assert response.status == 446 and error_of(response)["rule"] == "guardrail-output"
    assert b"carol@exa" not in response.body and b"data:" not in response.body
    assert line["guardrail"] == "blocked-output"


def deep_answer(request: RecordedRequest) -> Reply:
    """A chat completion with a field nested deeper than the guardrail reads."""
    nested = json.loads("[" * 150 + '"deep text"' + "]" * 150)
    return Reply.json({"id": "chatcmpl-deep", "object": "chat.completion", "model": "gpt-4o", "extra": nested,
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                    "finish_reason": "stop"}]})  # fmt: skip


def unreadable_stream(request: RecordedRequest) -> Reply:
    return Reply.stream([b"data: {not json\n\n", sse("[DONE]")])


@pytest.mark.parametrize(
    ("answer", "stream"), [(deep_answer, False), (unreadable_stream, True)], ids=["deep", "stream"]
)
def test_an_answer_that_cannot_be_read_to_check_it_is_refused_not_sent_unchecked(
    data_plane: RunningDataPlane,
    guardrail: ApplyGuardrailMock,
    mocks: dict[str, MockProvider],
    monkeypatch: pytest.MonkeyPatch,
    answer: Callable[[RecordedRequest], Reply],
    stream: bool,
) -> None:
    monkeypatch.setattr(mocks["openai"], "chat_completions", answer)
    response, _ = ask(data_plane, chat("hi", stream=stream))
    assert response.status == 502 and error_of(response)["rule"] == "guardrail-output"
    assert b"deep text" not in response.body and b"not json" not in response.body
    assert guardrail.calls_from("OUTPUT") == []


def test_an_answer_with_an_empty_message_is_still_checked_and_sent(
    data_plane: RunningDataPlane, guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider]
) -> None:
    # Its strings and keys are checked all the same (a model chooses a tool call's keys, say): never a 502.
    mocks["openai"].reply_text = ""
    response, line = ask(data_plane, chat("hi"))
    assert response.status == 200
    assert json.loads(response.body)["choices"][0]["message"]["content"] == ""
    assert [call.source for call in guardrail.calls] == ["INPUT", "OUTPUT"]
    assert line["guardrail"] == "passed"


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/v1/audio/speech", {"model": "tts-1", "input": "hello there", "voice": "alloy"}, "audio/mpeg"),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hello there"}, "application/json"),
    ],
)
def test_only_generated_answers_are_held_for_the_output_check(
    data_plane: RunningDataPlane,
    guardrail: ApplyGuardrailMock,
    path: str,
    body: dict[str, Any],
    content_type: str,
) -> None:
    # Their input is checked; their answers (audio, vectors) are not text to check and go on as they come.
    response, line = ask(data_plane, body, path)
    assert response.status == 200 and response.headers["content-type"].startswith(content_type)
    assert [call.source for call in guardrail.calls] == ["INPUT"]
    assert line["guardrail"] == "passed"


def test_an_anonymized_streamed_request_still_reports_its_usage(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider]
) -> None:
    # The data plane asks the provider for the stream's usage (stream_options) and masks that body.
    response, line = ask(data_plane, chat("write to alice@example.com", stream=True))
    assert response.status == 200
    (sent,) = mocks["openai"].requests
    assert b"alice@example.com" not in sent.body
    assert json.loads(sent.body)["messages"][0]["content"] == "write to {EMAIL}"
    assert line["guardrail"] == "anonymized-input"
    assert line["input_tokens"] is not None and line["output_tokens"] is not None


def test_blocked_answers_are_counted_apart_and_each_span_names_what_the_guardrail_did(
    data_plane: RunningDataPlane, mocks: dict[str, MockProvider], otlp: OtlpRecorder
) -> None:
    otlp.clear()
    mocks["openai"].reply_text = f"Sure: {BLOCK_MARKER}."
    response, line = ask(data_plane, chat("hi"))
    assert response.status == 446 and line["guardrail"] == "blocked-output"
    trace_id = line["trace"].split("-", 1)[1].replace("-", "")
    deadline = time.monotonic() + 10
    counted, spans = False, list[SpanRecord]()
    while not (counted and spans) and time.monotonic() < deadline:
        counted = any(p.name == "GuardrailBlockedOutputs" and p.value and p.attributes.get("team") == "default"
                      for p in otlp.metric_points())  # fmt: skip
        spans = [span for span in otlp.spans() if span.trace_id == trace_id]
        time.sleep(0.2)
    assert counted, "no GuardrailBlockedOutputs point above 0"
    (span,) = spans
    assert span.attributes["aigw.guardrail"] == "blocked-output"


def test_a_guardrail_endpoint_whose_certificate_is_not_trusted_is_never_sent_a_request(
    harness: GatewayHarness,
    guarded_task: TaskDefinition,
    guardrail: ApplyGuardrailMock,
    credentials: CredentialsEndpoint,
    mocks: dict[str, MockProvider],
    tmp_path: Path,
) -> None:
    # The mock's certificate names Bedrock's host but was issued by a CA this data plane does not trust.
    untrusted = harness.start_data_plane(
        ORG_KEYS, "guarded-other-ca", task=guarded_task, references=guardrail_references(guarded_task),
        store_ca=certificates(tmp_path / "other-ca", guardrail.host), guardrail_address=guardrail.address,
        credentials_uri=credentials.full_uri,
    )  # fmt: skip
    for _ in range(5):  # the handshake's failure can raise inside lua-resty-core (#499): every time, a 503
        response, line = ask(untrusted, chat("what is 2 + 2?"))
        assert response.status == 503 and error_of(response)["rule"] == "guardrail-unavailable", response.body
        assert line["guardrail"] == "unavailable"  # logged, so counted in GuardrailUnavailable
    assert guardrail.calls == [] and mocks["openai"].requests == []


# ----------------------------------------------------------------- answers checked, cached and counted

BUDGETED_TEAM = "batch"


@pytest.fixture(scope="module")
def answers_task(tmp_path_factory: pytest.TempPathFactory) -> TaskDefinition:
    """The "guarded" scenario checking answers only, with the response cache and a team with a budget."""
    from modules.stack import synthesize

    settings = vary(
        scenario_settings()["guarded"],
        guardrails={"check_input": False},
        clients={"default": ClientSettings(scopes=["invoke", "admin"]),
                 BUDGETED_TEAM: ClientSettings(budget=BudgetSettings(tokens=1_000_000))},
        response_cache={"enabled": True, "ttl_seconds": 600, "max_entry_kib": 64},
    )  # fmt: skip
    environment = Environment("guarded-answers", Path(__file__), settings)
    outdir = tmp_path_factory.mktemp("guarded-answers.out")
    synthesize([environment], outdir)
    return TaskDefinition.from_stack(outdir / "stacks" / environment.stack_name / "cdk.tf.json")


def version_path(version: str) -> str:
    return f"/guardrail/{GUARDRAIL_ID}/version/{version}/apply"


@pytest.fixture(scope="module")
def answers_data_planes(
    harness: GatewayHarness,
    answers_task: TaskDefinition,
    store: Store,
    guardrail: ApplyGuardrailMock,
    credentials: CredentialsEndpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, RunningDataPlane]:
    """Two tasks of that stack sharing one store, naming two published versions of the guardrail (a
    deployment's old and new tasks), by version."""
    # The data plane trusts one CA file: the store's and the guardrail mock's test CAs together.
    cas = tmp_path_factory.mktemp("guarded-answers-ca") / "cas.pem"
    cas.write_bytes(store.ca.read_bytes() + guardrail.ca.read_bytes())
    runtime = json.loads(answers_task.environment(DATA_PLANE_CONTAINER)[RUNTIME_VARIABLE])
    planes = {}
    for version in ("3", "4"):
        values = {**guardrail_references(answers_task), **references(answers_task, store),
                  runtime["guardrail"]["version"][2:-1]: version}  # fmt: skip
        planes[version] = harness.start_data_plane(
            ORG_KEYS, f"guarded-answers-v{version}", task=answers_task, references=values, store_ca=cas,
            guardrail_address=guardrail.address, credentials_uri=credentials.full_uri,
        )  # fmt: skip
    return planes


@pytest.fixture
def any_version(guardrail: ApplyGuardrailMock) -> Iterator[None]:
    """The mock answers every version of the guardrail."""
    path, guardrail.path = guardrail.path, None
    yield
    guardrail.path = path


@pytest.fixture
def empty_store(store: Store) -> Store:
    if store.process.poll() is not None:
        store.start_again()
    store.cli("FLUSHALL")
    return store


def wait_for_keys(store: Store, pattern: str) -> list[str]:
    deadline = time.monotonic() + 5
    keys = store.cli("KEYS", pattern).split()
    while not keys and time.monotonic() < deadline:
        time.sleep(0.05)
        keys = store.cli("KEYS", pattern).split()
    return keys


def test_a_cached_answer_is_served_again_only_under_the_guardrail_version_that_checked_it(
    answers_data_planes: dict[str, RunningDataPlane],
    empty_store: Store,
    guardrail: ApplyGuardrailMock,
    mocks: dict[str, MockProvider],
    any_version: None,
) -> None:
    body = chat("what is 2 + 2?", temperature=0.2)
    first, line = ask(answers_data_planes["3"], body)
    assert first.status == 200 and line["cache"] == "miss" and line["guardrail"] == "passed"
    assert wait_for_keys(empty_store, "aigw:cache:*")
    again, line = ask(answers_data_planes["3"], body)
    assert again.status == 200 and line["cache"] == "hit" and again.body == first.body
    # The task of the new version checks the answer itself: the provider is asked again.
    fresh, line = ask(answers_data_planes["4"], body)
    assert fresh.status == 200 and line["cache"] == "miss" and line["guardrail"] == "passed"
    assert len(mocks["openai"].requests) == 2
    assert [call.path for call in guardrail.calls_from("OUTPUT")] == [version_path("3"), version_path("4")]


def test_a_relayed_answer_without_usage_counts_the_requests_bound_against_the_teams_budget(
    answers_data_planes: dict[str, RunningDataPlane],
    empty_store: Store,
    mocks: dict[str, MockProvider],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The gateway was called and the provider failed after it may have worked: no usage, so the
    # request's bound (its max_tokens and its body's bytes / 4) counts.
    monkeypatch.setattr(mocks["openai"], "error_status", 500)
    body = json.dumps(chat("hi", max_tokens=50)).encode()
    response, line = ask(answers_data_planes["3"], body, team=BUDGETED_TEAM)
    assert response.status >= 500 and line["output_tokens"] is None
    (key,) = wait_for_keys(empty_store, f"aigw:{{{BUDGETED_TEAM}}}:tokens:*")
    assert int(empty_store.cli("GET", key)) == 50 + math.ceil(len(body) / 4)


def test_uploads_are_let_through_when_only_answers_are_checked(
    answers_data_planes: dict[str, RunningDataPlane], guardrail: ApplyGuardrailMock, mocks: dict[str, MockProvider]
) -> None:
    headers = {"Authorization": f"Bearer {fake_jwt(client_id_of('default'))}", "x-portkey-provider": "openai",
               "content-type": "multipart/form-data; boundary=x"}  # fmt: skip
    body = (b'--x\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\nRIFF\r\n--x--\r\n")  # fmt: skip
    response = request(f"{answers_data_planes['3'].base_url}/v1/audio/transcriptions", body, headers)
    assert response.status == 200, response.body
    assert len(mocks["openai"].requests) == 1 and guardrail.calls == []
