"""Validation of the load balancer options in [edge] (and the settings they
constrain elsewhere): every refused combination names the field to change
and says what to do, as `<file>: <dotted.field>: <message>`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from aigw.environments import ConfigError, Environment, load_environments
from tests import processes

REQUIRED = """region = "us-east-1"
[backend]
bucket = "tfstate-bucket"
key = "ai-gateway/test.tfstate"
dynamodb_table = "tfstate-lock"
region = "us-east-1"
"""
CERT = 'certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"'


def load(tmp_path: Path, text: str) -> tuple[Environment | None, list[str]]:
    """GIVEN one environment file WHEN loaded THEN the environment, or every problem (file prefix removed)."""
    path = tmp_path / "test.toml"
    path.write_text(text, encoding="utf-8")
    try:
        (environment,) = load_environments(tmp_path)
    except ConfigError as error:
        return None, [line.removeprefix(f"{path}: ") for line in error.lines]
    return environment, []


def problems(tmp_path: Path, text: str) -> list[str]:
    return load(tmp_path, text)[1]


def valid(tmp_path: Path, text: str) -> Environment:
    environment, lines = load(tmp_path, text)
    assert environment is not None, lines
    return environment


def edge(*lines: str) -> str:
    return REQUIRED + "[edge]\n" + "\n".join(lines) + "\n"


# -- scheme and the CIDRs it admits by default ------------------------------------
def test_load_balancer_is_internet_facing_by_default(tmp_path: Path) -> None:
    environment = valid(tmp_path, edge('allowed_cidrs = ["203.0.113.0/24"]'))
    assert environment.settings.edge.internal is False


def test_internet_facing_default_admits_the_whole_internet(tmp_path: Path) -> None:
    environment = valid(tmp_path, edge("allow_unauthenticated_public_access = true"))
    assert environment.settings.load_balancer_cidrs == ["0.0.0.0/0"]


def test_internal_default_admits_the_vpc_cidr(tmp_path: Path) -> None:
    environment = valid(tmp_path, edge("internal = true") + '[network]\nvpc_cidr = "10.42.0.0/16"\n')
    assert environment.settings.load_balancer_cidrs == ["10.42.0.0/16"]


def test_allowed_cidrs_override_the_internal_default(tmp_path: Path) -> None:
    environment = valid(tmp_path, edge("internal = true", 'allowed_cidrs = ["10.0.8.0/24", "192.168.0.0/16"]'))
    assert environment.settings.load_balancer_cidrs == ["10.0.8.0/24", "192.168.0.0/16"]


def test_internal_load_balancer_without_jwt_auth_needs_no_acceptance(tmp_path: Path) -> None:
    # The world-open rule is about the internet: an internal load balancer is not on it.
    assert problems(tmp_path, edge("internal = true", 'allowed_cidrs = ["0.0.0.0/0"]')) == []


def test_internet_facing_default_without_jwt_auth_is_still_refused(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, REQUIRED)
    assert line.startswith("edge.allowed_cidrs: 0.0.0.0/0 (the default) lets anyone on the internet reach")


def test_accepting_public_access_on_an_internal_load_balancer_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, edge("internal = true", "allow_unauthenticated_public_access = true")) == [
        "edge.allow_unauthenticated_public_access: there is nothing to accept (edge.internal is true: the load "
        "balancer cannot be reached from the internet); remove this key"
    ]


@pytest.mark.parametrize("value", ["[]", '["10.0.0.0/8", "10.1.0.0/33"]'])
def test_allowed_cidrs_when_set_must_be_valid_and_not_empty(tmp_path: Path, value: str) -> None:
    (line,) = problems(tmp_path, edge("internal = true", f"allowed_cidrs = {value}"))
    assert line.startswith("edge.allowed_cidrs: ")


# -- host routing ------------------------------------------------------------------
def test_gateway_host_is_off_by_default(tmp_path: Path) -> None:
    assert valid(tmp_path, edge('allowed_cidrs = ["203.0.113.0/24"]')).settings.edge.gateway_host == ""


def test_gateway_host_takes_a_dns_name(tmp_path: Path) -> None:
    text = edge('allowed_cidrs = ["203.0.113.0/24"]', 'gateway_host = "gateway.example.com"')
    assert valid(tmp_path, text).settings.edge.gateway_host == "gateway.example.com"


@pytest.mark.parametrize(
    "host",
    ["Gateway.example.com", "gateway", "*.example.com", "gateway.example.com.", "10.0.0.1", "-gw.example.com",
     "gw_1.example.com", "a." * 63 + "com", "gateway.example.com/v1"],
)  # fmt: skip
def test_gateway_host_must_be_a_routable_dns_name(tmp_path: Path, host: str) -> None:
    (line,) = problems(tmp_path, edge('allowed_cidrs = ["203.0.113.0/24"]', f'gateway_host = "{host}"'))
    assert line.startswith(f"edge.gateway_host: {host!r} is not a hostname the load balancer can route")


# -- load balancer type --------------------------------------------------------------
NLB = 'load_balancer_type = "network"'
CLIENTS = 'allowed_cidrs = ["203.0.113.0/24"]'


def test_load_balancer_is_an_alb_by_default(tmp_path: Path) -> None:
    assert valid(tmp_path, edge(CLIENTS)).settings.edge.load_balancer_type == "application"


def test_network_load_balancer_loads(tmp_path: Path) -> None:
    assert valid(tmp_path, edge(NLB, CLIENTS)).settings.edge.load_balancer_type == "network"


def test_network_load_balancer_with_tls_loads(tmp_path: Path) -> None:
    assert valid(tmp_path, edge(NLB, "internal = true", CERT)).settings.edge.https


def test_unknown_load_balancer_type_is_refused(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, edge('load_balancer_type = "gateway"', CLIENTS))
    assert line.startswith("edge.load_balancer_type: input should be 'application' or 'network'")


def test_waf_on_a_network_load_balancer_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, edge(NLB, CLIENTS, "enable_waf = true")) == [
        "edge.enable_waf: AWS WAF protects application load balancers only, not a network load balancer; "
        'use load_balancer_type = "application" or turn this off'
    ]


def test_jwt_auth_on_a_network_load_balancer_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, edge(NLB, CERT, "enable_jwt_auth = true")) == [
        "edge.enable_jwt_auth: JWT validation is an action of an application load balancer's HTTPS listener; a "
        'network load balancer reads no HTTP and validates nothing. use load_balancer_type = "application", or '
        "turn this off (clients then bring their own provider keys)"
    ]


def test_jwt_auth_on_a_network_load_balancer_without_a_certificate_gets_one_refusal(tmp_path: Path) -> None:
    # Not also "set edge.certificate_arn": a certificate would not make it possible.
    (line,) = problems(tmp_path, edge(NLB, "enable_jwt_auth = true"))
    assert line.startswith("edge.enable_jwt_auth: JWT validation is an action of an application load balancer")


def test_host_routing_on_a_network_load_balancer_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, edge(NLB, CLIENTS, 'gateway_host = "gateway.example.com"')) == [
        "edge.gateway_host: host routing reads the HTTP Host header, which a network load balancer never sees; "
        'use load_balancer_type = "application" or remove this key'
    ]


def test_requests_per_target_with_a_network_load_balancer_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, edge(NLB, CLIENTS) + "[gateway]\nrequests_per_target = 500\n") == [
        "gateway.requests_per_target: the service scales on ALBRequestCountPerTarget, which a network load "
        "balancer does not publish; remove this key (with an NLB the service scales on CPU alone)"
    ]


@pytest.mark.parametrize(
    ("key", "missing"),
    [("alarm_5xx_percent = 2.5", "no HTTP status counts"), ("alarm_p99_latency_seconds = 45", "no response times")],
)
def test_alb_metric_alarms_with_a_network_load_balancer_are_refused(tmp_path: Path, key: str, missing: str) -> None:
    (line,) = problems(tmp_path, edge(NLB, CLIENTS) + f"[observability]\n{key}\n")
    field, message = line.split(": ", 1)
    assert field == f"observability.{key.split(' = ')[0]}"
    assert message.startswith(f"a network load balancer publishes {missing}")
    assert message.endswith("so this alarm is not built; remove this key")


# -- access logs -----------------------------------------------------------------------
def logs(*lines: str) -> str:
    return edge(CLIENTS) + "[edge.access_logs]\n" + "\n".join(lines) + "\n"


def test_access_logs_are_off_by_default(tmp_path: Path) -> None:
    assert valid(tmp_path, edge(CLIENTS)).settings.edge.access_logs.enabled is False


def test_access_logs_go_to_a_created_bucket_by_default(tmp_path: Path) -> None:
    access_logs = valid(tmp_path, logs("enabled = true")).settings.edge.access_logs
    assert (access_logs.bucket, access_logs.prefix, access_logs.expiration_days) == ("", "", 90)


def test_access_logs_to_a_given_bucket_with_a_prefix_load(tmp_path: Path) -> None:
    environment = valid(tmp_path, logs("enabled = true", 'bucket = "org-lb-logs"', 'prefix = "ai/gateway"'))
    access_logs = environment.settings.edge.access_logs
    assert (access_logs.bucket, access_logs.prefix) == ("org-lb-logs", "ai/gateway")


def test_access_log_keys_while_logs_are_off_are_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, logs('bucket = "org-lb-logs"', "expiration_days = 30")) == [
        "edge.access_logs.bucket: access logs are off; set enabled = true or remove this key",
        "edge.access_logs.expiration_days: access logs are off; set enabled = true or remove this key",
    ]


def test_expiration_of_a_given_bucket_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, logs("enabled = true", 'bucket = "org-lb-logs"', "expiration_days = 30")) == [
        "edge.access_logs.expiration_days: the stack manages the lifecycle only of a bucket it creates, not of "
        "'org-lb-logs'; set the expiry on that bucket and remove this key, or remove bucket to let the stack "
        "create one"
    ]


@pytest.mark.parametrize(
    ("line", "field", "expected"),
    [
        ('bucket = "Org_Logs"', "bucket", "is not a valid S3 bucket name"),
        ('prefix = "/gateway"', "prefix", "is not a key prefix"),
        ('prefix = "gateway/"', "prefix", "is not a key prefix"),
        ('prefix = "gateway/AWSLogs"', "prefix", "a prefix must not contain AWSLogs"),
        ("expiration_days = 0", "expiration_days", "input should be greater than or equal to 1"),
    ],
)
def test_access_log_values_are_validated(tmp_path: Path, line: str, field: str, expected: str) -> None:
    (problem,) = problems(tmp_path, logs("enabled = true", line))
    assert problem.startswith(f"edge.access_logs.{field}: ") and expected in problem


def test_access_logs_of_a_network_load_balancer_without_tls_are_refused(tmp_path: Path) -> None:
    text = edge(NLB, CLIENTS) + "[edge.access_logs]\nenabled = true\n"
    assert problems(tmp_path, text) == [
        "edge.access_logs.enabled: a network load balancer writes access logs only for TLS listeners, and without "
        "edge.certificate_arn it has none; set a certificate or turn access logs off"
    ]


def test_access_logs_of_a_network_load_balancer_with_tls_load(tmp_path: Path) -> None:
    text = edge(NLB, "internal = true", CERT) + "[edge.access_logs]\nenabled = true\n"
    assert valid(tmp_path, text).settings.edge.access_logs.enabled


# -- server mode -----------------------------------------------------------------------
def gateway(*lines: str) -> str:
    return edge(CLIENTS) + "[gateway]\n" + "\n".join(lines) + "\n"


def test_server_mode_is_gateway_by_default(tmp_path: Path) -> None:
    assert valid(tmp_path, edge(CLIENTS)).settings.gateway.server_mode == "gateway"


def test_server_mode_gateway_may_be_written_out(tmp_path: Path) -> None:
    assert valid(tmp_path, gateway('server_mode = "gateway"')).settings.gateway.server_mode == "gateway"


@pytest.mark.parametrize("mode", ["mcp", "all"])
def test_mcp_server_modes_are_refused_without_hybrid_mode(tmp_path: Path, mode: str) -> None:
    assert problems(tmp_path, gateway(f'server_mode = "{mode}"')) == [
        f"gateway.server_mode: '{mode}' exists only in Portkey's enterprise gateway (the OSS image "
        "@portkey-ai/gateway 1.15.2 has no MCP server, no SERVER_MODE variable and no port 8788): turn on "
        '[hybrid] or use "gateway"'
    ]


def test_unknown_server_mode_is_refused(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, gateway('server_mode = "proxy"'))
    assert line.startswith("gateway.server_mode: input should be 'gateway', 'mcp' or 'all'")


# -- the app: every refusal reported at once, nothing written --------------------
EVERY_REFUSAL = (
    edge(NLB, CLIENTS, "enable_waf = true", "enable_jwt_auth = true", 'gateway_host = "gateway.example.com"')
    + "[edge.access_logs]\nenabled = true\n"
    + '[gateway]\nrequests_per_target = 500\nserver_mode = "all"\n'
    + "[observability]\nalarm_5xx_percent = 2.5\n"
)


@pytest.mark.cli
def test_app_reports_every_edge_refusal_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    envs, outdir = tmp_path / "envs", tmp_path / "cdktf.out"
    envs.mkdir()
    outdir.mkdir()
    (envs / "qa.toml").write_text(EVERY_REFUSAL, encoding="utf-8")
    (outdir / "previous-synth.json").write_text("{}")
    result = processes.run(
        [sys.executable, Path(__file__).resolve().parent.parent / "main.py"],
        cwd=tmp_path,
        env={**os.environ, "AIGW_ENV_DIR": str(envs), "CDKTF_OUTDIR": str(outdir)},
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    fields = [line.split(": ")[1] for line in result.stderr.splitlines() if line.startswith("envs/qa.toml: ")]
    assert sorted(fields) == [
        "edge.access_logs.enabled",
        "edge.enable_jwt_auth",
        "edge.enable_waf",
        "edge.gateway_host",
        "gateway.requests_per_target",
        "gateway.server_mode",
        "observability.alarm_5xx_percent",
    ]
    assert [p.name for p in outdir.iterdir()] == ["previous-synth.json"]


# -- WAF settings ------------------------------------------------------------------
def test_waf_settings_without_waf_are_refused(tmp_path: Path) -> None:
    # Neither would build anything: refused, never accepted and ignored.
    lines = problems(tmp_path, edge(CLIENTS, "waf_rate_limit = 500", 'waf_counted_body_rules = ["GenericLFI_BODY"]'))
    assert lines == [
        "edge.waf_rate_limit: configures the WAF, and edge.enable_waf is off: turn it on or remove this",
        "edge.waf_counted_body_rules: configures the WAF, and edge.enable_waf is off: turn it on or remove this",
    ]


def test_only_the_common_rule_sets_body_rules_can_be_counted(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, edge(CLIENTS, "enable_waf = true", 'waf_counted_body_rules = ["NoUserAgent_HEADER"]'))
    assert line.startswith("edge.waf_counted_body_rules[0]: input should be 'CrossSiteScripting_BODY', ")


def test_a_counted_rule_listed_twice_is_refused(tmp_path: Path) -> None:
    rules = 'waf_counted_body_rules = ["GenericRFI_BODY", "GenericRFI_BODY"]'
    (line,) = problems(tmp_path, edge(CLIENTS, "enable_waf = true", rules))
    assert line == "edge.waf_counted_body_rules: ['GenericRFI_BODY', 'GenericRFI_BODY'] lists a rule twice"
