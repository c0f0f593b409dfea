"""tests/local_task.py's pieces that the emulator run does not reach: the
local environment has no secrets in its task, so how a container secret's
``valueFrom`` is read is checked here, on moto in-process; and how
/proc/net addresses are decoded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests import processes
from tests.gateway_harness import INTERCEPT
from tests.gateway_runtime import GATEWAY_NODE
from tests.local_task import LocalTaskError, _address, secret_value, session_members, stop


@pytest.fixture
def secretsmanager(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def test_a_whole_secret_and_one_json_key_of_a_secret(secretsmanager: Any) -> None:
    plain = secretsmanager.create_secret(Name="aigw/providers/openai", SecretString="sk-plain")["ARN"]
    document = secretsmanager.create_secret(Name="aigw/keys", SecretString=json.dumps({"OPENAI": "sk-json"}))["ARN"]
    assert secret_value(secretsmanager, plain) == "sk-plain"
    assert secret_value(secretsmanager, f"{document}:OPENAI::") == "sk-json"
    with pytest.raises(LocalTaskError, match="has no JSON key 'ANTHROPIC'"):
        secret_value(secretsmanager, f"{document}:ANTHROPIC::")


def test_a_secret_without_a_value_says_how_to_give_it_one(secretsmanager: Any) -> None:
    empty = secretsmanager.create_secret(Name="aigw/providers/anthropic")["ARN"]
    with pytest.raises(LocalTaskError, match=f"secret {empty} has no value in the emulator: put one with"):
        secret_value(secretsmanager, empty)


@pytest.mark.parametrize(
    ("hex_address", "width", "address"),
    [("0100007F", 8, "127.0.0.1"), ("00000000", 8, "0.0.0.0"),
     ("00000000000000000000000000000000", 32, "::"), ("00000000000000000000000001000000", 32, "::1")],
)  # fmt: skip
def test_proc_net_addresses_decode(hex_address: str, width: int, address: str) -> None:
    assert _address(hex_address, width) == address


def _session_of_a_sleeper(leader_exits: bool) -> tuple[int, int]:
    """A new session whose leader either stays (sleep itself) or exits leaving a sleeping child:
    (session id, the sleeper's pid)."""
    if leader_exits:
        leader = subprocess.Popen(["sh", "-c", "sleep 300 & echo $!"], stdout=subprocess.PIPE, start_new_session=True)
        assert leader.stdout is not None
        sleeper = int(leader.stdout.readline())
        leader.wait(timeout=10)
        return leader.pid, sleeper
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    return process.pid, process.pid


def test_stop_ends_the_children_of_a_runner_that_is_gone(tmp_path: Path) -> None:
    session, sleeper = _session_of_a_sleeper(leader_exits=True)
    assert session_members(session) == [sleeper]
    (tmp_path / "pid").write_text(str(session))
    assert stop(tmp_path) is True
    assert session_members(session) == []
    assert not (tmp_path / "pid").exists()


def test_stop_leaves_another_programs_session_alone(tmp_path: Path) -> None:
    # A pid file outlived its runner, and the pid now leads an unrelated session.
    session, sleeper = _session_of_a_sleeper(leader_exits=False)
    try:
        (tmp_path / "pid").write_text(str(session))
        assert stop(tmp_path) is True  # the stale record is cleared...
        assert session_members(session) == [sleeper]  # ...and the other program still runs
    finally:
        os.kill(sleeper, signal.SIGKILL)


LISTEN_CASES = r"""
const net = require('net');
const cases = {
  'listen(cb)': (s, cb) => s.listen(cb),
  'listen()': (s, cb) => { s.listen(); s.once('listening', cb); },
  "listen(' 0')": (s, cb) => s.listen(' 0', cb),
  "listen('0x0')": (s, cb) => s.listen('0x0', cb),
  "listen(0, '')": (s, cb) => s.listen(0, '', cb),
  'listen(0, undefined, cb)': (s, cb) => s.listen(0, undefined, cb),
  'listen(0, 511, cb)': (s, cb) => s.listen(0, 511, cb),
  'listen({port, fd: null})': (s, cb) => s.listen({ port: 0, fd: null, path: null, handle: null }, cb),
  'listen({port, host: undefined})': (s, cb) => s.listen({ port: 0, host: undefined }, cb),
  "listen(0, '127.0.0.2')": (s, cb) => s.listen(0, '127.0.0.2', cb),
};
const found = {};
let pending = Object.keys(cases).length;
for (const [name, call] of Object.entries(cases)) {
  const server = net.createServer();
  call(server, () => {
    found[name] = server.address().address;
    server.close();
    if (--pending === 0) { console.log(JSON.stringify(found)); process.exit(0); }
  });
}
"""


def test_the_harness_preload_binds_every_host_less_listen_to_loopback(tmp_path: Path) -> None:
    # The gateway's server calls listen(port, undefined, cb); these are the other ways Node accepts
    # "no host". An explicit host is kept.
    script = tmp_path / "listen_cases.cjs"
    script.write_text(LISTEN_CASES)
    result = processes.run([str(GATEWAY_NODE), "--require", str(INTERCEPT), str(script)], timeout=30)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found.pop("listen(0, '127.0.0.2')") == "127.0.0.2"
    assert set(found.values()) == {"127.0.0.1"}, found


def test_a_version_stage_reaches_secrets_manager(secretsmanager: Any) -> None:
    arn = secretsmanager.create_secret(Name="aigw/providers/google", SecretString="first")["ARN"]
    secretsmanager.put_secret_value(SecretId=arn, SecretString="second")
    assert secret_value(secretsmanager, arn) == "second"
    assert secret_value(secretsmanager, f"{arn}::AWSPREVIOUS:") == "first"
