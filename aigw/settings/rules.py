"""The rules that read more than one table of an environment, in one place.
Each problem names the field to change and the top-level keys it read, so
that a rule whose input was invalid is skipped rather than misreported."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aigw.settings.common import Problem
from aigw.settings.deployment import DEPLOYMENT_STRATEGY_MIN_PROVIDER, LAMBDA_ARN
from aigw.settings.edge import ACM_ARN, JWT_VALIDATION_MIN_PROVIDER, WORLD_OPEN_BELOW_PREFIX
from aigw.settings.hybrid import ENDPOINT_SERVICE_NAME_REGION, KMS_KEY_ARN, SECRET_ARN
from aigw.settings.network import MAX_ZONES, MIN_ZONES, default_zones
from aigw.versions import admits_older_than, parse_constraint

if TYPE_CHECKING:
    from aigw.settings.environment import EnvironmentSettings


def load_balancer_supports_strategy(env: EnvironmentSettings) -> bool:
    """Whether ECS can shift traffic for ``gateway.deployment.strategy`` on this
    load balancer: rolling works everywhere; blue_green, canary and linear here
    need an Application Load Balancer (ECS also shifts blue/green traffic on a
    Network Load Balancer's listener, but this stack's edge has none) whose
    production listener forwards without authenticating first."""
    if not env.gateway.deployment.advanced:
        return True
    return env.edge.load_balancer_type.shifts_deployment_traffic and not env.edge.enable_jwt_auth


def cross_section_problems(env: EnvironmentSettings) -> Iterator[Problem]:
    """Rules that read more than one table."""
    if not env.network.existing_vpc:
        yield from _zone_problems(env.region, env.network.availability_zones)
    if env.edge.enable_jwt_auth and admits_older_than(
        parse_constraint(env.aws_provider_version), JWT_VALIDATION_MIN_PROVIDER
    ):
        yield Problem(
            "aws_provider_version",
            f"{env.aws_provider_version!r} admits provider versions older than 6.22, which lack ALB JWT "
            'validation (edge.enable_jwt_auth); use "~> 6.22" or turn JWT auth off',
            frozenset({"edge", "aws_provider_version"}),
        )
    if env.hybrid.enabled or env.gateway.server_mode != "gateway":
        yield from hybrid_problems(env)
    else:
        yield from _provider_problems(env)
    yield from _public_access_problems(env)
    yield from _client_problems(env)
    yield from _load_balancer_capability_problems(env)
    yield from _deployment_problems(env)
    certificate = re.match(ACM_ARN, env.edge.certificate_arn)
    if certificate and certificate["region"] != env.region:
        yield Problem(
            "edge.certificate_arn",
            f"the certificate is in {certificate['region']} but the load balancer is in {env.region}; "
            "ACM certificates must be in the load balancer's region",
            frozenset({"edge", "region"}),
        )


def _provider_problems(env: EnvironmentSettings) -> Iterator[Problem]:
    """The organisation keys the data plane injects, and the Azure target."""
    if "provider_keys" in env.gateway.model_fields_set and env.gateway.provider_keys and not env.edge.enable_jwt_auth:
        yield Problem(
            "gateway.provider_keys",
            "organisation keys are injected only for JWT-authenticated clients; turn on edge.enable_jwt_auth "
            "or remove this key (the secrets are still created)",
            frozenset({"gateway", "edge"}),
        )
    if env.edge.enable_jwt_auth and not env.gateway.provider_keys:
        yield Problem(
            "gateway.provider_keys",
            "empty while edge.enable_jwt_auth is on: authenticated clients are served with the organisation's "
            "keys (and Bedrock through the task role beside them), so list at least one provider",
            frozenset({"gateway", "edge"}),
        )
    if "azure" in env.gateway.provider_keys and env.gateway.azure is None:
        yield Problem(
            "gateway.azure",
            "required when gateway.provider_keys lists azure: the resource_name, deployment_id and api_version "
            "every Azure request goes to (clients cannot choose them)",
            frozenset({"gateway"}),
        )
    if env.gateway.azure is not None and env.edge.enable_jwt_auth and "azure" not in env.gateway.provider_keys:
        yield Problem(
            "gateway.azure",
            "with JWT auth the data plane offers only providers with an organisation key; add azure to "
            "gateway.provider_keys or remove this table",
            frozenset({"gateway", "edge"}),
        )


def _client_problems(env: EnvironmentSettings) -> Iterator[Problem]:
    """Teams need JWT auth (the load balancer is what proves who calls), and
    their counters need a store the target can create."""
    if env.clients and not env.edge.enable_jwt_auth:
        yield Problem(
            "clients",
            "teams are told apart by the client id of the token the load balancer validates; turn on "
            "edge.enable_jwt_auth or remove the [clients] tables",
            frozenset({"clients", "edge"}),
        )
    if "shared_store" in env.model_fields_set and not env.needs_shared_store:
        yield Problem(
            "shared_store",
            "no team has requests_per_minute, max_concurrent_requests or a budget and the response cache is off, "
            "so no store is created; remove this table",
            frozenset({"clients", "shared_store", "response_cache"}),
        )
    limited = ", ".join(name for name, client in env.clients.items() if client.limited)
    if limited and env.emulator.endpoint:
        yield Problem(
            "clients",
            f"the limits of {limited} are counted in ElastiCache Serverless, which the emulator (moto) does not "
            "emulate; deploy limits to AWS, or remove requests_per_minute, max_concurrent_requests and budget "
            "here (the harness tests them against a real Redis)",
            frozenset({"clients", "emulator"}),
        )
    if env.guardrails.enabled and env.emulator.endpoint:
        yield Problem(
            "guardrails.enabled",
            "the emulator (moto) has no Bedrock guardrails; deploy them to AWS (the harness tests the data plane's "
            "checks against a mock ApplyGuardrail that verifies each call's signature)",
            frozenset({"guardrails", "emulator"}),
        )
    cache = env.response_cache
    if cache.enabled and env.emulator.endpoint:
        yield Problem(
            "response_cache.enabled",
            "the response cache lives in ElastiCache Serverless, which the emulator (moto) does not emulate; "
            "deploy it to AWS (the harness tests it against a real Redis)",
            frozenset({"response_cache", "emulator"}),
        )
    if cache.enabled and not env.edge.enable_jwt_auth:
        yield Problem(
            "response_cache.enabled",
            "cached answers are keyed on the team of the token the load balancer validates; without JWT auth every "
            "client would receive the others' answers; turn on edge.enable_jwt_auth",
            frozenset({"response_cache", "edge"}),
        )
    if not cache.enabled:
        for name in ("ttl_seconds", "max_entry_kib"):
            if name in cache.model_fields_set:
                yield Problem(
                    f"response_cache.{name}", "the response cache is off: set enabled = true or remove this key",
                    frozenset({"response_cache"}),
                )  # fmt: skip
        for team, client in env.clients.items():
            if "cache" in client.model_fields_set:
                yield Problem(
                    f"clients.{team}.cache", "the response cache is off: set response_cache.enabled or remove this key",
                    frozenset({"clients", "response_cache"}),
                )  # fmt: skip


def _load_balancer_capability_problems(env: EnvironmentSettings) -> Iterator[Problem]:
    """Settings elsewhere that need a capability the load balancer type lacks (a
    network load balancer publishes no request count and no HTTP metrics):
    refused, never ignored."""
    kind = env.edge.load_balancer_type
    if "requests_per_target" in env.gateway.model_fields_set and not kind.publishes_request_count:
        yield Problem(
            "gateway.requests_per_target",
            "the service scales on ALBRequestCountPerTarget, which a network load balancer does not publish; "
            "remove this key (with an NLB the service scales on CPU alone)",
            frozenset({"gateway", "edge"}),
        )
    if kind.publishes_http_metrics:
        return
    alarms = {
        "alarm_5xx_percent": "no HTTP status counts (the dashboard's error-rate query reads every status from "
        "the data plane's access log)",
        "alarm_p99_latency_seconds": "no response times (the dashboard's latency query reads them from the data "
        "plane's access log)",
    }
    for name, missing in alarms.items():
        if name in env.observability.model_fields_set:
            yield Problem(
                f"observability.{name}",
                f"a network load balancer publishes {missing}, so this alarm is not built; remove this key",
                frozenset({"observability", "edge"}),
            )


def _public_access_problems(env: EnvironmentSettings) -> Iterator[Problem]:
    """An unauthenticated gateway open to the internet is refused unless accepted by name.
    Reads [edge] (and [hybrid], for the advice): an internal load balancer is never open to the internet, and an
    internet-facing one's default does not depend on the VPC."""
    edge, inputs = env.edge, frozenset({"edge", "hybrid"})
    open_cidrs = ", ".join(env.world_open_cidrs)
    if open_cidrs and not edge.enable_jwt_auth and not edge.allow_unauthenticated_public_access:
        default = "" if edge.allowed_cidrs is not None else " (the default)"
        yield Problem(
            "edge.allowed_cidrs",
            f"{open_cidrs}{default} lets anyone on the internet reach the gateway while edge.enable_jwt_auth "
            "is off, so anyone could use it. Narrow this to your clients' ranges (public ranges of "
            f"/{WORLD_OPEN_BELOW_PREFIX} or narrower), turn on edge.enable_jwt_auth, or accept it with "
            "edge.allow_unauthenticated_public_access = true"
            if not env.hybrid.enabled
            else f"{open_cidrs}{default} lets anyone on the internet reach the enterprise gateway, which then "
            "rests on its Portkey API keys alone. Narrow this to your clients' ranges (public ranges of "
            f"/{WORLD_OPEN_BELOW_PREFIX} or narrower) or accept it with edge.allow_unauthenticated_public_access "
            "= true",
            inputs,
        )
    if edge.allow_unauthenticated_public_access and (edge.enable_jwt_auth or not open_cidrs):
        if edge.enable_jwt_auth:
            reason = "edge.enable_jwt_auth is on"
        elif edge.internal:
            reason = "edge.internal is true: the load balancer cannot be reached from the internet"
        else:
            reason = "no allowed_cidrs entry is world-open"
        yield Problem(
            "edge.allow_unauthenticated_public_access",
            f"there is nothing to accept ({reason}); remove this key",
            inputs,
        )


def _deployment_problems(env: EnvironmentSettings) -> Iterator[Problem]:
    deployment = env.gateway.deployment
    strategy = deployment.strategy
    if deployment.advanced and env.edge.gateway_host:
        yield Problem(
            "gateway.deployment.strategy",
            f"{strategy!r} shifts traffic with a listener rule of its own, which host routing "
            "(edge.gateway_host) would bypass: the two are not built together yet; use rolling or remove "
            "edge.gateway_host",
            frozenset({"gateway", "edge"}),
        )
    if strategy in DEPLOYMENT_STRATEGY_MIN_PROVIDER and admits_older_than(
        parse_constraint(env.aws_provider_version), DEPLOYMENT_STRATEGY_MIN_PROVIDER[strategy]
    ):
        minimum = ".".join(map(str, DEPLOYMENT_STRATEGY_MIN_PROVIDER[strategy][:2]))
        yield Problem(
            "aws_provider_version",
            f"{env.aws_provider_version!r} admits provider versions older than {minimum}, which lack the ECS "
            f'{strategy} deployment strategy (gateway.deployment.strategy); use "~> 6.22" or a rolling deployment',
            frozenset({"gateway", "aws_provider_version"}),
        )
    if not load_balancer_supports_strategy(env):
        reason = (
            "edge.enable_jwt_auth puts jwt-validation before forward on the production listener, and ECS shifts "
            "traffic only on rules that just forward (ECS developer guide, Application Load Balancer resources "
            'for blue/green deployments); turn JWT auth off or deploy with strategy = "rolling"'
            if env.edge.enable_jwt_auth
            else f"ECS shifts {strategy} traffic on an Application Load Balancer's listener rules, and this "
            f"environment's load balancer is a {env.edge.load_balancer_type} one"
        )
        yield Problem("gateway.deployment.strategy", f"{strategy!r} needs a load balancer that supports it: {reason}",
                      frozenset({"gateway", "edge"}))  # fmt: skip
    if deployment.advanced and "requests_per_target" in env.gateway.model_fields_set and env.gateway.enable_autoscaling:
        yield Problem(
            "gateway.requests_per_target",
            f"a {strategy} deployment moves production traffic between two target groups, and a request-count "
            "policy follows one of them (after a deployment it would see no requests and scale in); scale on "
            "CPU and memory_target_percent instead",
            frozenset({"gateway"}),
        )
    for name, hook in deployment.lifecycle_hooks.items():
        function_region = LAMBDA_ARN.match(hook.function_arn)
        if function_region and function_region["region"] != env.region:
            yield Problem(
                f"gateway.deployment.lifecycle_hooks.{name}.function_arn",
                f"the function is in {function_region['region']} but the service is in {env.region}; ECS invokes "
                "lifecycle hooks in the service's region",
                frozenset({"gateway", "region"}),
            )


def _zone_problems(region: str, zones: list[str] | None) -> Iterator[Problem]:
    inputs = frozenset({"network", "region"})
    if zones is None:
        if default_zones(region) is None:
            yield Problem(
                "network.availability_zones",
                f"required in {region}, which has no default zones here; list {MIN_ZONES} to {MAX_ZONES} zones "
                f'this account has, e.g. availability_zones = ["{region}a", "{region}b"] (see `aws ec2 '
                f"describe-availability-zones --region {region}`)",
                inputs,
            )
        return
    zone_name = re.compile(rf"^{re.escape(region)}[a-z]$")
    for index, zone in enumerate(zones):
        if not zone_name.match(zone):
            yield Problem(
                f"network.availability_zones[{index}]",
                f"{zone!r} is not a zone name of {region}: the region followed by one letter, e.g. "
                f"{region}a (zone IDs and Local Zones are not accepted)",
                inputs,
            )


# What each data-plane capability is replaced by in hybrid mode (the enterprise
# gateway authenticates each request against Portkey's control plane).
_HYBRID_REFUSED_GATEWAY_KEYS: dict[str, str] = {
    "image": "the enterprise image is hybrid.gateway_image",
    "image_from_ecr": "the enterprise image is pulled from Portkey's registry with the registry credentials",
    "data_plane_image": "hybrid mode runs no data plane",
    "provider_keys": "provider credentials live in Portkey's control plane (integrations, virtual keys)",
    "azure": "provider credentials and targets live in Portkey's control plane",
    "max_requests_in_flight": "the bound is the data plane's, which hybrid mode does not run",
    "streams_per_task": "StreamsInFlight is the data plane's metric, which hybrid mode does not run",
    "max_request_body_mib": "the limit is the data plane's, which hybrid mode does not run (the enterprise "
    "gateway applies its own)",
    "collector_image": "the collector receives the data plane's telemetry, and hybrid mode runs neither",
}
_HYBRID_REFUSED_TABLES: dict[str, str] = {
    "clients": "teams are the data plane's; the enterprise gateway authenticates Portkey API keys instead",
    "routing": "routing configs live in Portkey's control plane",
    "response_cache": "the enterprise gateway caches through hybrid.cache",
    "guardrails": "guardrails are configured in Portkey's control plane",
    "cost_attribution": "it prices the data plane's access log, which hybrid mode does not write; Portkey's "
    "control plane attributes cost",
}


def hybrid_problems(env: EnvironmentSettings) -> Iterator[Problem]:
    """Hybrid mode against the other tables: what it replaces, the server modes and connectivity."""
    hybrid, gateway, edge = env.hybrid, env.gateway, env.edge
    mode = gateway.server_mode
    inputs = frozenset({"hybrid", "gateway", "edge"})
    if not hybrid.enabled:
        yield Problem(
            "gateway.server_mode",
            f"{mode!r} exists only in Portkey's enterprise gateway (the OSS image @portkey-ai/gateway 1.15.2 has no "
            'MCP server, no SERVER_MODE variable and no port 8788): turn on [hybrid] or use "gateway"',
            frozenset({"gateway", "hybrid"}),
        )
        return
    if env.emulator.endpoint:
        yield Problem(
            "hybrid.enabled",
            "the emulator's local task runs the OSS gateway; Portkey's enterprise image is licensed and cannot be "
            "pulled here: deploy hybrid mode to AWS (its synthesized output is tested)",
            frozenset({"hybrid", "emulator"}),
        )
    for name, reason in _HYBRID_REFUSED_GATEWAY_KEYS.items():
        if name in gateway.model_fields_set:
            yield Problem(f"gateway.{name}", f"not with hybrid mode: {reason}; remove this key", inputs)
    if "enable_saved_queries" in env.observability.model_fields_set:
        yield Problem(
            "observability.enable_saved_queries",
            "not with hybrid mode: the saved queries read the data plane's access log, which hybrid mode does not "
            "write; remove this key",
            frozenset({"hybrid", "observability"}),
        )
    enabled = {
        "clients": bool(env.clients),
        "routing": bool(env.routing),
        "response_cache": env.response_cache.enabled,
        "guardrails": env.guardrails.enabled,
        "cost_attribution": env.cost_attribution.enabled,
    }
    for name, reason in _HYBRID_REFUSED_TABLES.items():
        if enabled[name]:
            yield Problem(name, f"not with hybrid mode: {reason}; remove it", frozenset({"hybrid", name}))
    if edge.enable_jwt_auth:
        yield Problem(
            "edge.enable_jwt_auth",
            "not with hybrid mode: the enterprise gateway authenticates every request's Portkey API key against "
            "the control plane, and the control plane's own calls in carry no Cognito token; set it to false",
            inputs,
        )
    if mode in ("mcp", "all") and hybrid.mcp_gateway_base_url is None:
        yield Problem("hybrid.mcp_gateway_base_url", f"required with gateway.server_mode = {mode!r}", inputs)
    if mode == "gateway" and hybrid.mcp_gateway_base_url is not None:
        yield Problem("hybrid.mcp_gateway_base_url", "only with gateway.server_mode 'mcp' or 'all'; remove it", inputs)
    if mode == "all":
        if not edge.load_balancer_type.routes_by_host:
            yield Problem(
                "gateway.server_mode",
                "'all' serves the AI gateway and the MCP gateway by host name, which a network load balancer "
                "never sees; set edge.load_balancer_type = 'application'",
                inputs,
            )
        else:
            if not edge.gateway_host:
                yield Problem("edge.gateway_host", "required with gateway.server_mode = 'all' (host routing)", inputs)
            if hybrid.mcp_host is None:
                yield Problem("hybrid.mcp_host", "required with gateway.server_mode = 'all' (host routing)", inputs)
            elif hybrid.mcp_host == edge.gateway_host:
                yield Problem("hybrid.mcp_host", "must differ from edge.gateway_host", inputs)
    elif hybrid.mcp_host is not None:
        yield Problem("hybrid.mcp_host", "only with gateway.server_mode = 'all'; remove it", inputs)
    control = hybrid.control_plane
    if control.inbound == "privatelink" and edge.load_balancer_type.value != "network":
        yield Problem(
            "hybrid.control_plane.inbound",
            "a VPC endpoint service needs a Network Load Balancer; set edge.load_balancer_type = 'network' "
            "(behind an ALB, Portkey's guide puts an NLB of your own in front of it, outside this stack)",
            inputs,
        )
    if control.inbound == "ip_allow_list" and edge.internal:
        yield Problem(
            "hybrid.control_plane.inbound",
            "the control plane calls in over the internet, which cannot reach an internal load balancer; set "
            "edge.internal = false or use 'privatelink'",
            inputs,
        )
    service = control.privatelink_service_name
    service_region = ENDPOINT_SERVICE_NAME_REGION.match(service) if service else None
    if service_region and service_region["region"] != env.region:
        yield Problem(
            "hybrid.control_plane.privatelink_service_name",
            f"the endpoint service is in {service_region['region']} and the stack in {env.region}: cross-region "
            "interface endpoints are not built; deploy in the service's region or use outbound = 'internet'",
            frozenset({"hybrid", "region"}),
        )
    if mode == "mcp" and hybrid.data_service.enabled:
        yield Problem(
            "hybrid.data_service.enabled",
            "the data service calls the AI gateway (http://gateway:8787), which server_mode 'mcp' does not run; "
            "use server_mode 'all' or turn the data service off",
            inputs,
        )
    if control.inbound == "ip_allow_list" and env.world_open_cidrs:
        yield Problem(
            "hybrid.control_plane.inbound",
            f"the load balancer already admits {', '.join(env.world_open_cidrs)}, so allow-listing the control "
            "plane's addresses restricts nothing; narrow edge.allowed_cidrs",
            inputs,
        )
    yield from _hybrid_region_problems(env)
    if hybrid.cache.backend != "serverless" and "shared_store" in env.model_fields_set:
        yield Problem(
            "shared_store", "hybrid.cache.backend is not 'serverless', so no store is created; remove this table",
            frozenset({"hybrid", "shared_store"}),
        )  # fmt: skip


def _hybrid_region_problems(env: EnvironmentSettings) -> Iterator[Problem]:
    """Secrets and keys the tasks use through a regional service: in the region they are used from."""
    hybrid, inputs = env.hybrid, frozenset({"hybrid", "region"})
    secrets = {"hybrid.registry_credentials_secret_arn": hybrid.registry_credentials_secret_arn}
    secrets.update({f"hybrid.gateway.secrets.{name}": arn for name, arn in hybrid.gateway.secrets.items()})
    if hybrid.data_service.enabled:
        secrets.update({f"hybrid.data_service.secrets.{n}": arn for n, arn in hybrid.data_service.secrets.items()})
    if hybrid.cache.backend == "elasticache":
        secrets["hybrid.cache.auth_secret_arn"] = hybrid.cache.auth_secret_arn
    for field, arn in secrets.items():
        found = SECRET_ARN.match(arn or "")
        if found and found["region"] != env.region:
            message = (
                f"the secret is in {found['region']} and the tasks in {env.region}: ECS reads secrets "
                "through Secrets Manager in the task's region; replicate it there"
            )
            yield Problem(field, message, inputs)
    key = KMS_KEY_ARN.match(hybrid.secrets_kms_key_arn or "")
    if key and key["region"] != env.region:
        yield Problem("hybrid.secrets_kms_key_arn", f"the key is in {key['region']} and the secrets are read in "
                      f"{env.region}; a KMS key serves its own region only", inputs)  # fmt: skip
    store = hybrid.log_store
    store_key = KMS_KEY_ARN.match(store.kms_key_arn or "") if store else None
    if store and store_key and store_key["region"] != (store.region or env.region):
        message = (
            f"the key is in {store_key['region']} and the buckets in {store.region or env.region}; S3 "
            "encrypts with a key of the bucket's region"
        )
        yield Problem("hybrid.log_store.kms_key_arn", message, inputs)
