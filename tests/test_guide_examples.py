"""The example deployments of Portkey's ECS guide (docs.portkey.ai, ECS, its
"Example Configurations"), translated in examples/guide-*: each keeps the
edge its guide example describes. The options themselves are tested one by
one in test_edge_options.py; these tests guard the translations."""

from __future__ import annotations

from security.stackdoc import StackDoc as Template


def test_guide_minimal_dev_is_an_internal_nlb_serving_tcp_on_80(stacks: dict[str, Template]) -> None:
    stack = stacks["guide-dev"]
    stack.resource("aws_lb", {"load_balancer_type": "network", "internal": True})
    assert [(r["port"], r["protocol"]) for r in stack.resources("aws_lb_listener")] == [(80, "TCP")]


def test_guide_minimal_dev_admits_its_vpc_only(stacks: dict[str, Template]) -> None:
    stack = stacks["guide-dev"]
    (group,) = stack.resource("aws_lb")["security_groups"]
    rules = stack.resources("aws_vpc_security_group_ingress_rule", {"security_group_id": group})
    assert [r["cidr_ipv4"] for r in rules] == ["10.0.0.0/16"]


def test_guide_minimal_dev_runs_one_small_task(stacks: dict[str, Template]) -> None:
    stacks["guide-dev"].resource("aws_ecs_task_definition", {"cpu": "256", "memory": "1024"})
    stacks["guide-dev"].resource("aws_ecs_service", {"desired_count": 1})


def test_guide_production_is_an_internet_facing_alb_with_tls(stacks: dict[str, Template]) -> None:
    stack = stacks["guide-prod"]
    stack.resource("aws_lb", {"load_balancer_type": "application", "internal": False})
    stack.resource("aws_lb_listener", {"port": 443, "protocol": "HTTPS"})


def test_guide_production_writes_access_logs_to_its_created_bucket(stacks: dict[str, Template]) -> None:
    stack = stacks["guide-prod"]
    (bucket,) = [b for b in stack.resources("aws_s3_bucket") if "-lb-logs-" in b["bucket"]]
    access_logs = stack.resource("aws_lb")["access_logs"]
    assert access_logs == {"bucket": bucket.ref("bucket"), "prefix": "alb", "enabled": True}


def test_guide_production_scales_from_3_to_20_tasks(stacks: dict[str, Template]) -> None:
    stacks["guide-prod"].resource("aws_appautoscaling_target", {"min_capacity": 3, "max_capacity": 20})


def test_guide_internal_nlb_serves_tls_only(stacks: dict[str, Template]) -> None:
    stack = stacks["guide-nlb"]
    stack.resource("aws_lb", {"load_balancer_type": "network", "internal": True})
    assert [(r["port"], r["protocol"]) for r in stack.resources("aws_lb_listener")] == [(443, "TLS")]


def test_guide_internal_nlb_writes_access_logs_under_a_customer_key(stacks: dict[str, Template]) -> None:
    stack = stacks["guide-nlb"]
    access_logs = stack.resource("aws_lb")["access_logs"]
    (bucket,) = [b for b in stack.resources("aws_s3_bucket") if b.ref("bucket") == access_logs["bucket"]]
    (rule,) = stack.resource("aws_s3_bucket_server_side_encryption_configuration", {"bucket": bucket.ref("id")})["rule"]
    assert rule["apply_server_side_encryption_by_default"]["sse_algorithm"] == "aws:kms"
    assert access_logs["enabled"] is True
