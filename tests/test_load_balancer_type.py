"""The load balancer type's behaviour table (aigw/settings/load_balancer.py):
what each type can do, one capability per test, each asserted for both types.
The settings, the constructs and the security rules ask these questions
instead of comparing the type's name."""

from __future__ import annotations

import pytest

from aigw.settings import EdgeSettings, LoadBalancerType

ALB, NLB = LoadBalancerType.APPLICATION, LoadBalancerType.NETWORK


def test_the_toml_values_are_application_and_network() -> None:
    assert [kind.value for kind in LoadBalancerType] == ["application", "network"]


def test_the_toml_string_becomes_the_type() -> None:
    # GIVEN the string a TOML file holds WHEN validated THEN the member, not the bare string
    assert EdgeSettings.model_validate({"load_balancer_type": "network"}).load_balancer_type is NLB
    assert EdgeSettings().load_balancer_type is ALB


def test_the_short_name_is_alb_or_nlb() -> None:
    assert (ALB.short_name, NLB.short_name) == ("alb", "nlb")


def test_only_the_alb_reads_http() -> None:
    assert (ALB.reads_http, NLB.reads_http) == (True, False)


def test_only_the_alb_takes_a_waf() -> None:
    assert (ALB.supports_waf, NLB.supports_waf) == (True, False)


def test_only_the_alb_validates_jwts() -> None:
    assert (ALB.validates_jwt, NLB.validates_jwt) == (True, False)


def test_only_the_alb_routes_by_host() -> None:
    assert (ALB.routes_by_host, NLB.routes_by_host) == (True, False)


def test_only_the_alb_publishes_the_request_count_to_scale_on() -> None:
    assert (ALB.publishes_request_count, NLB.publishes_request_count) == (True, False)


def test_only_the_alb_publishes_http_status_and_latency_metrics() -> None:
    assert (ALB.publishes_http_metrics, NLB.publishes_http_metrics) == (True, False)


def test_ecs_shifts_deployment_traffic_only_on_the_alb() -> None:
    assert (ALB.shifts_deployment_traffic, NLB.shifts_deployment_traffic) == (True, False)


def test_only_the_alb_redirects_port_80_to_https() -> None:
    assert (ALB.redirects_to_https, NLB.redirects_to_https) == (True, False)


def test_only_the_nlb_logs_only_its_tls_listeners() -> None:
    assert (ALB.logs_only_tls_listeners, NLB.logs_only_tls_listeners) == (False, True)


def test_only_alb_access_logs_need_sse_s3() -> None:
    assert (ALB.access_logs_sse_s3_only, NLB.access_logs_sse_s3_only) == (True, False)


def test_only_nlb_access_logs_go_through_cloudwatch_log_delivery() -> None:
    assert (ALB.access_logs_through_log_delivery, NLB.access_logs_through_log_delivery) == (False, True)


def test_each_publishes_metrics_in_its_own_namespace() -> None:
    assert (ALB.cloudwatch_namespace, NLB.cloudwatch_namespace) == ("AWS/ApplicationELB", "AWS/NetworkELB")


def test_the_target_group_speaks_http_behind_the_alb_and_tcp_behind_the_nlb() -> None:
    assert (ALB.target_protocol, NLB.target_protocol) == ("HTTP", "TCP")


@pytest.mark.parametrize(
    ("kind", "https", "protocol"),
    [(ALB, True, "HTTPS"), (ALB, False, "HTTP"), (NLB, True, "TLS"), (NLB, False, "TCP")],
)
def test_the_serving_listener_protocol_follows_the_type_and_the_certificate(
    kind: LoadBalancerType, https: bool, protocol: str
) -> None:
    assert kind.listener_protocol(https) == protocol


@pytest.mark.parametrize(
    ("kind", "https", "ports"),
    [(ALB, True, (80, 443)), (ALB, False, (80,)), (NLB, True, (443,)), (NLB, False, (80,))],
)
def test_clients_connect_on_443_with_a_certificate_and_on_80_where_it_redirects_or_serves(
    kind: LoadBalancerType, https: bool, ports: tuple[int, ...]
) -> None:
    assert kind.listener_ports(https) == ports
