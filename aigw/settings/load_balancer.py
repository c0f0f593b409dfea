"""The load balancer type (``edge.load_balancer_type``) and everything that
follows from it, in one place, as terraform-aws-alb keys its behaviour on one
variable. The settings, the constructs, the dashboard and the security rules
ask the type what it can do instead of comparing its name."""

from __future__ import annotations

from enum import StrEnum


class LoadBalancerType(StrEnum):
    """An Application Load Balancer (layer 7: reads HTTP) or a Network Load
    Balancer (layer 4: passes TCP through, or TLS it ends). The TOML values
    are the members' values, ``"application"`` and ``"network"``, as in
    ``aws_lb.load_balancer_type``."""

    APPLICATION = "application"
    NETWORK = "network"

    @property
    def short_name(self) -> str:
        """``alb`` or ``nlb``: the edge's construct ids and resource names carry
        it, so that switching type replaces the load balancer."""
        return "alb" if self is LoadBalancerType.APPLICATION else "nlb"

    @property
    def reads_http(self) -> bool:
        """Whether it parses HTTP requests; every HTTP-level capability below follows from it."""
        return self is LoadBalancerType.APPLICATION

    @property
    def supports_waf(self) -> bool:
        """Whether an AWS WAF web ACL can be associated with it (application load balancers only)."""
        return self.reads_http

    @property
    def validates_jwt(self) -> bool:
        """Whether a listener can validate a JWT before forwarding (the ALB's `jwt-validation` action)."""
        return self.reads_http

    @property
    def routes_by_host(self) -> bool:
        """Whether listener rules can match the HTTP Host header (host routing)."""
        return self.reads_http

    @property
    def publishes_request_count(self) -> bool:
        """Whether it publishes ALBRequestCountPerTarget, so that the service can scale on requests per task."""
        return self.reads_http

    @property
    def publishes_http_metrics(self) -> bool:
        """Whether it publishes HTTP status counts and response times (the 5xx and p99 alarms' metrics)."""
        return self.reads_http

    @property
    def shifts_deployment_traffic(self) -> bool:
        """Whether ECS can shift blue_green, canary and linear traffic on this
        stack's listener rules for it. ECS also shifts blue/green traffic on a
        Network Load Balancer's listener, but this stack's edge builds none."""
        return self is LoadBalancerType.APPLICATION

    @property
    def redirects_to_https(self) -> bool:
        """Whether, with a certificate, port 80 gets a listener that redirects to
        443. An NLB cannot redirect: a port-80 listener would only carry plaintext."""
        return self.reads_http

    @property
    def logs_only_tls_listeners(self) -> bool:
        """Whether it writes access logs only for TLS listeners (an NLB; an ALB logs every request)."""
        return self is LoadBalancerType.NETWORK

    @property
    def access_logs_sse_s3_only(self) -> bool:
        """Whether its access-log delivery writes only to buckets encrypted with
        SSE-S3 (an ALB's); an NLB's delivery can use a customer-managed KMS key."""
        return self is LoadBalancerType.APPLICATION

    @property
    def access_logs_through_log_delivery(self) -> bool:
        """Whether CloudWatch Logs' delivery service (delivery.logs.amazonaws.com)
        writes its access logs (an NLB's), rather than Elastic Load Balancing's
        regional account or service principal (an ALB's)."""
        return self is LoadBalancerType.NETWORK

    @property
    def cloudwatch_namespace(self) -> str:
        """The CloudWatch namespace of its metrics."""
        return "AWS/ApplicationELB" if self is LoadBalancerType.APPLICATION else "AWS/NetworkELB"

    @property
    def target_protocol(self) -> str:
        """The protocol of its target group: HTTP to the data plane, or TCP passed through."""
        return "HTTP" if self.reads_http else "TCP"

    def listener_protocol(self, https: bool) -> str:
        """The protocol of the listener that serves clients, with a certificate
        (HTTPS, or TLS ending at the NLB) or without one (HTTP, or TCP)."""
        if self.reads_http:
            return "HTTPS" if https else "HTTP"
        return "TLS" if https else "TCP"

    def listener_ports(self, https: bool) -> tuple[int, ...]:
        """The ports clients connect to: 443 with a certificate, else 80; and
        with a certificate 80 as well where it redirects there."""
        if not https:
            return (80,)
        return (80, 443) if self.redirects_to_https else (443,)
