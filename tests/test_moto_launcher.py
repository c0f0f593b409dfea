"""tools/moto_launcher: the emulator's server handles one request at a time,
and answers a repeated attempt of a call that succeeded with its first answer.

moto's backends have no locks, and its server runs each connection in a thread
of its own; a call that iterates a dict while another changes it answers 500
("dictionary changed size during iteration"). And on a loaded machine the
provider's SDK now and then fails to read an answer and sends the call again:
a create met the resource it had made (AlreadyExists), the state lock met
itself (ConditionalCheckFailed).
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from tests.project_copy import ROOT
from tools import moto_launcher
from tools.moto_launcher import one_at_a_time, replaying_retries

THREADS = 6


class SlowApp:
    """A WSGI application that takes a while both to answer and to produce its
    body (as moto's lazily rendered answers may), and records how many
    requests were inside it at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self._count = threading.Lock()

    def _enter(self) -> None:
        with self._count:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)

    def _leave(self) -> None:
        with self._count:
            self.inside -= 1

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        self._enter()
        time.sleep(0.02)
        start_response("200 OK", [("Content-Type", "text/plain")])
        self._leave()
        return self._body()

    def _body(self) -> Iterator[bytes]:
        self._enter()
        try:
            time.sleep(0.02)
            yield b"answer"
        finally:
            self._leave()


def call_at_once(handler: Callable[..., Any], *leading: Any) -> list[bytes]:
    bodies: list[bytes] = []
    start = threading.Barrier(THREADS)

    def request() -> None:
        start.wait()
        bodies.append(b"".join(handler(*leading, {}, lambda status, headers, exc_info=None: None)))

    threads = [threading.Thread(target=request) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(bodies) == THREADS, "a request failed (its thread printed why)"
    return bodies


def test_an_unserialized_app_is_entered_by_several_requests_at_once() -> None:
    # The measure itself can see overlap: without the wrapper, requests overlap.
    app = SlowApp()
    assert call_at_once(app) == [b"answer"] * THREADS
    assert app.most_inside > 1


def test_requests_and_their_bodies_are_handled_one_at_a_time() -> None:
    app = SlowApp()
    assert call_at_once(one_at_a_time(app)) == [b"answer"] * THREADS
    assert app.most_inside == 1


class CreatingApp:
    """A create that succeeds once, then answers AlreadyExists (as moto's
    CreateAlias does); ``fail_first`` makes its first call a 500 that made nothing."""

    def __init__(self, fail_first: bool = False) -> None:
        self.calls = 0
        self.created = False
        self.fail_first = fail_first

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.calls += 1
        if self.fail_first and self.calls == 1:
            start_response("500 INTERNAL SERVER ERROR", [])
            return [b"dictionary changed size during iteration"]
        if self.created:
            start_response("400 BAD REQUEST", [("Content-Type", "application/json")])
            return [b'{"__type": "AlreadyExistsException"}']
        self.created = True
        start_response("200 OK", [("Content-Type", "application/json"), ("x-amzn-RequestId", "first")])
        return [b'{"KeyId": "made"}']


def attempt(handler: Callable[..., list[bytes]], invocation: str | None, number: int | None) -> tuple[str, bytes]:
    """One attempt of a call as AWS's SDKs send it: the call's invocation id and the attempt's number."""
    environ = {}
    if invocation is not None:
        environ["HTTP_AMZ_SDK_INVOCATION_ID"] = invocation
    if number is not None:
        environ["HTTP_AMZ_SDK_REQUEST"] = f"attempt={number}; max=4"
    statuses: list[str] = []
    body = b"".join(handler(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    return statuses[-1], body


def test_a_repeated_attempt_of_a_call_that_succeeded_gets_its_answer_without_running_again() -> None:
    app = CreatingApp()
    handler = replaying_retries(app)
    assert attempt(handler, "call-1", 1) == ("200 OK", b'{"KeyId": "made"}')
    # The SDK lost that answer and tries again: the same answer, and the create is not run a second time.
    assert attempt(handler, "call-1", 2) == ("200 OK", b'{"KeyId": "made"}')
    assert attempt(handler, "call-1", 3) == ("200 OK", b'{"KeyId": "made"}')
    assert app.calls == 1


def test_another_call_runs_and_meets_what_the_first_made() -> None:
    app = CreatingApp()
    handler = replaying_retries(app)
    attempt(handler, "call-1", 1)
    assert attempt(handler, "call-2", 1) == ("400 BAD REQUEST", b'{"__type": "AlreadyExistsException"}')
    # A retry of a call whose earlier attempt failed runs again too.
    assert attempt(handler, "call-2", 2)[0] == "400 BAD REQUEST"
    assert app.calls == 3


def test_a_call_whose_first_attempt_failed_runs_again() -> None:
    app = CreatingApp(fail_first=True)
    handler = replaying_retries(app)
    assert attempt(handler, "call-1", 1)[0].startswith("500")
    assert attempt(handler, "call-1", 2) == ("200 OK", b'{"KeyId": "made"}')
    assert app.calls == 2


def test_requests_without_the_sdks_headers_always_run() -> None:
    app = CreatingApp()
    handler = replaying_retries(app)
    attempt(handler, None, None)
    assert attempt(handler, None, None)[0] == "400 BAD REQUEST"
    assert app.calls == 2


def test_a_first_attempt_is_never_answered_from_the_record() -> None:
    # Only a retry is replayed, even if a client reused an id seen before for a new call.
    app = CreatingApp()
    handler = replaying_retries(app)
    assert attempt(handler, "call-1", 1)[0] == "200 OK"
    assert attempt(handler, "call-1", 1)[0] == "400 BAD REQUEST"
    assert app.calls == 2


class StalledBody:
    """A request body whose client sent its headers and then stopped sending."""

    def __init__(self) -> None:
        self.reading = threading.Event()
        self.resume = threading.Event()

    def read(self, size: int = -1) -> bytes:
        self.reading.set()
        self.resume.wait(timeout=30)
        return b"x" * max(size, 0)


def reading_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """An application that reads its request's body, as moto does."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [])
    return [b"read %d" % len(body)]


def test_a_client_stalled_halfway_through_its_body_holds_up_no_other_request() -> None:
    handler = one_at_a_time(reading_app)
    stalled = StalledBody()
    answers: list[bytes] = []
    held = threading.Thread(target=lambda: answers.append(b"".join(handler(
        {"wsgi.input": stalled, "CONTENT_LENGTH": "100"}, lambda status, headers, exc_info=None: None))))  # fmt: skip
    held.start()
    try:
        assert stalled.reading.wait(timeout=10)
        started = time.monotonic()
        other = handler({"wsgi.input": io.BytesIO(b"abc"), "CONTENT_LENGTH": "3"}, lambda *args: None)
        assert other == [b"read 3"] and time.monotonic() - started < 2
    finally:
        stalled.resume.set()
        held.join(timeout=30)
    assert answers == [b"read 100"]


class CountingApp:
    """Every call succeeds with an answer of its own."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.calls += 1
        start_response("200 OK", [])
        return [b"answer %d" % self.calls]


def test_the_record_keeps_the_most_recent_answers_only(monkeypatch: Any) -> None:
    monkeypatch.setattr(moto_launcher, "KEPT_ANSWERS", 2)
    handler = replaying_retries(CountingApp())
    for call in ("call-1", "call-2", "call-3"):
        attempt(handler, call, 1)
    assert attempt(handler, "call-3", 2) == ("200 OK", b"answer 3")  # recent: replayed
    assert attempt(handler, "call-1", 2) == ("200 OK", b"answer 4")  # the oldest was let go: runs again


def in_the_launcher(app: str, then: str) -> str:
    """What ``then`` prints, run in a process of its own as the launcher runs:
    install() patched moto's server application class, and an instance of it
    serves ``app`` (an expression over this module, ``t``) as ``call``."""
    probe = textwrap.dedent(
        f"""
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication
        from tests import test_moto_launcher as t
        from tools import moto_launcher

        moto_launcher.install()
        app = {app}
        server = DomainDispatcherApplication(lambda service: app)
        server.get_application = lambda environ: app
        call = lambda environ, start_response: DomainDispatcherApplication.__call__(server, environ, start_response)
        """
    )
    result = subprocess.run([sys.executable, "-c", probe + then], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_the_launcher_serializes_the_servers_application() -> None:
    assert in_the_launcher("t.SlowApp()", "t.call_at_once(call)\nprint(app.most_inside)") == "1"


def test_the_launcher_answers_a_repeated_attempt_from_the_first() -> None:
    printed = in_the_launcher(
        "t.CreatingApp()", 'print(t.attempt(call, "call-1", 1), t.attempt(call, "call-1", 2), app.calls)'
    )
    made = "('200 OK', b'{\"KeyId\": \"made\"}')"
    assert printed == f"{made} {made} 1"
