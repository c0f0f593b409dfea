"""`[hybrid]`: Portkey's hybrid (enterprise) deployment from its ECS guide. The
licensed enterprise gateway runs in this stack's tasks against Portkey's
control plane, instead of the OSS gateway behind this project's data plane.
docs/hybrid.md has the design; the rules that read other tables are in
rules.py (``hybrid_problems``)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from aigw.settings.common import Problem, Section, valid_bucket_name, valid_region
from aigw.settings.edge import valid_hostname
from aigw.settings.gateway import FARGATE_MEMORY_BY_CPU, valid_image

# The full ARN: the name, then "-" and the six characters Secrets Manager adds (IAM matches the full ARN,
# so a partial one, as in the guide's examples, would be denied when a task starts).
SECRET_ARN = re.compile(
    r"^arn:aws:secretsmanager:(?P<region>[a-z0-9-]+):\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,505}-[A-Za-z0-9]{6}$"
)
KMS_KEY_ARN = re.compile(r"^arn:aws:kms:(?P<region>[a-z0-9-]+):\d{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f-]{36})$")
POLICY_ARN = re.compile(r"^arn:aws:iam::(\d{12}|aws):policy/[A-Za-z0-9+=,.@_/-]{1,512}$")
ROLE_ARN = re.compile(r"^arn:aws:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
PRINCIPAL_ARN = re.compile(r"^arn:aws:iam::\d{12}:(root|role/[A-Za-z0-9+=,.@_/-]+|user/[A-Za-z0-9+=,.@_/-]+)$")
ENDPOINT_SERVICE_NAME = re.compile(r"^com\.amazonaws\.vpce\.[a-z0-9-]+\.vpce-svc-[0-9a-f]{8,17}$")
ENDPOINT_SERVICE_NAME_REGION = re.compile(r"^com\.amazonaws\.vpce\.(?P<region>[a-z0-9-]+)\.vpce-svc-")
SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
VARIABLE_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
BASE_URL = re.compile(r"^https?://[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?$")
ENDPOINT = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?:\d{1,5}$")

# Portkey's control plane, from its ECS guide: the account its PrivateLink
# connection requests come from, and the addresses it calls in from.
PORTKEY_CONTROL_PLANE_PRINCIPAL = "arn:aws:iam::299329113195:root"
PORTKEY_CONTROL_PLANE_CIDRS = ("54.81.226.149/32", "34.200.113.35/32", "44.221.117.129/32")
DEFAULT_PRIVATE_CONTROL_PLANE = "https://aws-cp.portkey.ai"
ENTERPRISE_GATEWAY_PORT = 8787
MCP_PORT = 8788
DEFAULT_DATA_SERVICE_PORT = 8081

# Variables the stack sets itself, from the setting named; a service's own
# `environment` or `secrets` may not set them.
STACK_VARIABLES: dict[str, str] = {
    "PORT": "the container's port",
    "SERVER_MODE": "gateway.server_mode",
    "MCP_PORT": "gateway.server_mode (8788)",
    "MCP_GATEWAY_BASE_URL": "hybrid.mcp_gateway_base_url",
    "CACHE_STORE": "hybrid.cache.backend",
    "REDIS_URL": "hybrid.cache",
    "REDIS_TLS_ENABLED": "hybrid.cache.tls",
    "REDIS_MODE": "hybrid.cache.mode",
    "REDIS_PASSWORD": "hybrid.cache.auth_secret_arn",
    "LOG_STORE_REGION": "hybrid.log_store.region",
    "LOG_STORE_GENERATIONS_BUCKET": "hybrid.log_store.bucket",
    "LOG_EXPORTS_BUCKET": "hybrid.log_store.exports_bucket",
    "FINETUNES_BUCKET": "hybrid.log_store.finetune_bucket",
    "AWS_S3_FINETUNE_BUCKET": "hybrid.log_store.finetune_bucket",
    "DATASERVICE_BASEPATH": "hybrid.data_service.enabled",
    "GATEWAY_BASE_URL": "the gateway's Service Connect name",
    "ALBUS_ENDPOINT": "hybrid.control_plane.outbound",
    "ALBUS_BASEPATH": "hybrid.control_plane.outbound",
    "CONTROL_PLANE_BASEPATH": "hybrid.control_plane.outbound",
    "SOURCE_SYNC_API_BASEPATH": "hybrid.control_plane.outbound",
    "CONFIG_READER_PATH": "hybrid.control_plane.outbound",
}
# Plain variables whose value is a credential: they belong in `secrets` (as an ARN).
_SECRET_NAME = re.compile(
    r"(^|_)(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|ACCESS_KEY|CREDENTIALS?)(_|$)"
    r"|(^|_)(KEY|AUTH|PASS|PWD)$|CONNECTION_(STRING|URL|URI)"
)
# Values that carry a credential whatever their name: a URL with a password, a connection string's key.
_SECRET_VALUE = re.compile(r"://[^/@\s:]*:[^/@\s]+@|(?i:(account_?key|password|pwd|secret|sharedaccesskey)=)")
# Terraform and cdktf template sequences: a value is written into the task definition as it is.
_TEMPLATE = re.compile(r"[$%]\{")
SECRET_VARIABLES = frozenset({"PORTKEY_CLIENT_AUTH", "ORGANISATIONS_TO_SYNC"})


def _secret_arn(value: str) -> str:
    if not SECRET_ARN.match(value):
        raise ValueError(
            "must be the ARN of a Secrets Manager secret (arn:aws:secretsmanager:<region>:<account>:secret:<name>), "
            "never the secret's value"
        )
    return value


def _kms_key_arn(value: str) -> str:
    if not KMS_KEY_ARN.match(value):
        raise ValueError("must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias or an id")
    return value


def _variable_name(name: str) -> str:
    if not VARIABLE_NAME.match(name):
        raise ValueError(f"{name!r} is not an environment variable name (A-Z, 0-9 and _, not starting with a digit)")
    if name in STACK_VARIABLES:
        raise ValueError(f"{name} is set by the stack from {STACK_VARIABLES[name]}; remove it here")
    return name


def _base_url(value: str) -> str:
    # The value is not echoed: a refused URL may carry credentials (user:password@).
    if not BASE_URL.match(value):
        raise ValueError(
            "must be an http:// or https:// URL of a host name, without credentials, e.g. https://mcp.example.com"
        )
    return value


def _https_url(value: str) -> str:
    _base_url(value)
    if not value.startswith("https://"):
        raise ValueError("must be an https:// URL: the gateway sends its PORTKEY_CLIENT_AUTH there")
    return value


def _variable_value(value: str) -> str:
    if _TEMPLATE.search(value):
        raise ValueError("holds '${' or '%{': a value reaches the task definition as it is, never as a template")
    return value


SecretArn = Annotated[str, AfterValidator(_secret_arn)]
KmsKeyArn = Annotated[str, AfterValidator(_kms_key_arn)]
VariableName = Annotated[str, AfterValidator(_variable_name)]
BaseUrl = Annotated[str, AfterValidator(_base_url)]
HttpsUrl = Annotated[str, AfterValidator(_https_url)]
VariableValue = Annotated[str, Field(max_length=4096), AfterValidator(_variable_value)]


def credential_problems(environment: dict[str, str]) -> Iterator[Problem]:
    """A plain variable that holds a credential, by its name or its value (never echoed)."""
    for name, value in sorted(environment.items()):
        if name in SECRET_VARIABLES or _SECRET_NAME.search(name) or _SECRET_VALUE.search(value):
            yield Problem(
                f"environment.{name}",
                "holds a credential: move it to `secrets` as the ARN of a Secrets Manager secret whose JSON "
                f"key {name} holds the value (never the value itself in the environment file)",
            )


class ServiceVariables(Section):
    """Variables and secrets of one service, as Portkey's guide gives them."""

    environment: dict[VariableName, VariableValue] = Field(
        default_factory=dict,
        description="Plain variables (name -> value), e.g. SERVICE_NAME, ANALYTICS_STORE, LOG_STORE. A name that "
        "holds a credential (PORTKEY_CLIENT_AUTH, ORGANISATIONS_TO_SYNC, *_PASSWORD, *_SECRET, *_TOKEN, *_API_KEY, "
        "...) is refused here: put it in `secrets`. Variables the stack sets (PORT, SERVER_MODE, REDIS_*, "
        "LOG_STORE_*, the control-plane base paths, ...) are refused. Default: none.",
    )
    secrets: dict[VariableName, SecretArn] = Field(
        default_factory=dict,
        description="Secrets (variable name -> Secrets Manager secret ARN), injected by ECS from the JSON key "
        "equal to the variable name (`<arn>:<NAME>::`, Portkey's convention); the execution role may read exactly "
        "these secrets. Raw values are refused. Default: none.",
    )

    def problems(self) -> Iterator[Problem]:
        yield from credential_problems(self.environment)


class DataServiceSettings(Section):
    """Portkey's data service (batches, fine-tuning, log exports): its own ECS service."""

    enabled: bool = Field(False, description="Run the data service. Needs `[hybrid.log_store]`. Default: false.")
    image: str = Field(
        "portkeyai/data-service:1.9.0",
        description="Data service image, pinned by tag or digest, pulled with the registry credentials. "
        "Default: `portkeyai/data-service:1.9.0` (the guide's module default).",
    )
    cpu: Literal[256, 512, 1024, 2048, 4096] = Field(512, description="Task CPU units. Default: 512.")
    memory: int = Field(1024, description="Task memory in MiB, valid for `cpu` on Fargate. Default: 1024.")
    port: int = Field(
        DEFAULT_DATA_SERVICE_PORT,
        ge=1024,
        le=65535,
        description=f"Container port. Default: {DEFAULT_DATA_SERVICE_PORT}.",
    )
    desired_count: int = Field(1, ge=1, le=100, description="Tasks at deploy time. Default: 1.")
    enable_autoscaling: bool = Field(
        False, description="Target tracking on CPU between min_capacity and max_capacity. Default: false."
    )
    min_capacity: int = Field(1, ge=1, le=100, description="Autoscaling floor. Default: 1.")
    max_capacity: int = Field(2, ge=1, le=100, description="Autoscaling ceiling. Default: 2.")
    cpu_target_percent: int = Field(70, ge=10, le=95, description="Target average CPU utilization. Default: 70.")
    enable_circuit_breaker: bool = Field(
        True,
        description="ECS's deployment circuit breaker with rollback: a deployment whose tasks keep failing rolls "
        "back. Default: true.",
    )
    environment: dict[VariableName, VariableValue] = Field(
        default_factory=dict,
        description="Plain variables of the data service, as `hybrid.gateway.environment`. Default: none.",
    )
    secrets: dict[VariableName, SecretArn] = Field(
        default_factory=dict, description="Secrets of the data service, as `hybrid.gateway.secrets`. Default: none."
    )

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        return valid_image(value)

    def problems(self) -> Iterator[Problem]:
        allowed = FARGATE_MEMORY_BY_CPU[self.cpu]
        if self.memory not in allowed:
            yield Problem("memory", f"{self.memory} MiB is not a Fargate size for cpu = {self.cpu}")
        if not self.enabled:
            for name in sorted(self.model_fields_set - {"enabled"}):
                yield Problem(name, "the data service is off (enabled = false); remove this key")
            return
        yield from credential_problems(self.environment)
        if not self.enable_autoscaling:
            for name in ("min_capacity", "max_capacity", "cpu_target_percent"):
                if name in self.model_fields_set:
                    yield Problem(name, "autoscaling is off (enable_autoscaling = false); remove this key")
        elif not self.min_capacity <= self.desired_count <= self.max_capacity:
            yield Problem(
                "desired_count",
                f"{self.desired_count} must lie between min_capacity ({self.min_capacity}) and max_capacity "
                f"({self.max_capacity})",
            )


class CacheSettings(Section):
    """The Redis the enterprise gateway and the data service share."""

    backend: Literal["builtin", "elasticache", "serverless"] = Field(
        "builtin",
        description="`builtin`: a Redis service in the cluster, reached as `redis:6379` through Service Connect, "
        "never exposed outside the tasks; `elasticache`: an existing ElastiCache endpoint (`endpoint`, `tls`, "
        "`mode`, `security_group_id`, `auth_secret_arn`); `serverless`: the stack's own ElastiCache Serverless "
        "(`[shared_store]`, the store the response cache uses; TLS). Default: `builtin`.",
    )
    image: str = Field(
        "redis:7.2-alpine", description="Image of the built-in Redis (builtin only). Default: `redis:7.2-alpine`."
    )
    cpu: Literal[256, 512, 1024] = Field(256, description="Built-in Redis task CPU units. Default: 256.")
    memory: int = Field(512, description="Built-in Redis task memory in MiB. Default: 512.")
    endpoint: str | None = Field(
        None,
        description="ElastiCache primary or configuration endpoint, `host:port` (elasticache only). Required there.",
    )
    tls: bool = Field(
        True, description="The ElastiCache cluster's in-transit encryption (elasticache only). Default: true."
    )
    mode: Literal["standalone", "cluster"] = Field(
        "standalone", description="`standalone` or `cluster` (cluster mode enabled). Default: `standalone`."
    )
    security_group_id: str | None = Field(
        None,
        description="The ElastiCache cluster's security group (elasticache only): the stack adds a rule admitting "
        "the port of `endpoint` from the gateway and data service tasks. Required there.",
    )
    auth_secret_arn: SecretArn | None = Field(
        None,
        description="Secret whose JSON key REDIS_PASSWORD holds the ElastiCache AUTH token (elasticache only), "
        "passed to the gateway and the data service. Default: none (no AUTH).",
    )

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        return valid_image(value)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and (not ENDPOINT.match(value) or not 1 <= int(value.rsplit(":", 1)[1]) <= 65535):
            raise ValueError(f"{value!r} must be host:port (port 1-65535), e.g. master.x.use1.cache.amazonaws.com:6379")
        return value

    @field_validator("security_group_id")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and not SECURITY_GROUP_ID.match(value):
            raise ValueError(f"{value!r} is not a security group id (sg-...)")
        return value

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1]) if self.endpoint else 6379

    def problems(self) -> Iterator[Problem]:
        own = {
            "builtin": {"image", "cpu", "memory"},
            "elasticache": {"endpoint", "tls", "security_group_id", "auth_secret_arn"},
            "serverless": set(),
        }
        for name in sorted(self.model_fields_set - {"backend", "mode"}):
            if name not in own[self.backend]:
                yield Problem(name, f"not a setting of backend {self.backend!r}; remove this key")
        if self.backend == "builtin" and self.memory not in FARGATE_MEMORY_BY_CPU[self.cpu]:
            yield Problem("memory", f"{self.memory} MiB is not a Fargate size for cpu = {self.cpu}")
        if self.backend == "builtin" and self.mode != "standalone":
            yield Problem("mode", "the built-in Redis is one standalone server; remove this key")
        if self.backend == "elasticache":
            for name in ("endpoint", "security_group_id"):
                if getattr(self, name) is None:
                    yield Problem(name, "required with backend = 'elasticache'")
            if self.auth_secret_arn and not self.tls:
                yield Problem("auth_secret_arn", "an AUTH token over plaintext can be read on the wire; set tls = true")


class LogStoreSettings(Section):
    """S3 buckets of Portkey's log store (the buckets are the operator's; the stack grants access)."""

    bucket: str = Field(description="Bucket of the request logs (LOG_STORE_GENERATIONS_BUCKET). Required.")
    exports_bucket: str | None = Field(None, description="Bucket of log exports. Default: `bucket`.")
    finetune_bucket: str | None = Field(None, description="Bucket of fine-tuning files. Default: `bucket`.")
    region: str | None = Field(None, description="Region of the buckets. Default: the stack's region.")
    kms_key_arn: KmsKeyArn | None = Field(
        None,
        description="Customer key the buckets are encrypted with: the task roles get kms:GenerateDataKey and "
        "kms:Decrypt on it, through S3 only. Default: none (SSE-S3).",
    )

    @field_validator("bucket", "exports_bucket", "finetune_bucket")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        return None if value is None else valid_bucket_name(value)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return None if value is None else valid_region(value)

    @property
    def buckets(self) -> list[str]:
        """Every distinct bucket, the log bucket first."""
        names = [self.bucket, self.exports_bucket or self.bucket, self.finetune_bucket or self.bucket]
        return list(dict.fromkeys(names))


class BedrockSettings(Section):
    """How the enterprise gateway reaches Bedrock with the task role."""

    policy_arns: list[Annotated[str, Field(pattern=POLICY_ARN.pattern)]] = Field(
        default_factory=list,
        description="IAM policies attached to the gateway's task role (same account: a policy granting "
        "bedrock:InvokeModel on the models used; docs/hybrid.md). At most 10. Default: none.",
        max_length=10,
    )
    cross_account_role_arn: str | None = Field(
        None,
        description="Role in the Bedrock account that trusts the gateway's task role (output `task_role_arn`); "
        "the task role may assume exactly this role (docs/hybrid.md has the trust policy). Default: none.",
    )

    @field_validator("cross_account_role_arn")
    @classmethod
    def _role(cls, value: str | None) -> str | None:
        if value is not None and not ROLE_ARN.match(value):
            raise ValueError(f"{value!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        return value

    @field_validator("policy_arns")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("lists a policy twice")
        return values


class ControlPlaneSettings(Section):
    """How the enterprise gateway and Portkey's control plane reach each other."""

    outbound: Literal["internet", "privatelink"] = Field(
        "internet",
        description="`internet`: out through the NAT gateways to Portkey's public endpoints; `privatelink`: an "
        "interface endpoint to `privatelink_service_name` (private DNS on, 443 from the tasks only) and the "
        "control-plane base paths switched to `privatelink_base_url`. Default: `internet`.",
    )
    privatelink_service_name: str | None = Field(
        None,
        description="Endpoint service Portkey gives you, `com.amazonaws.vpce.<region>.vpce-svc-...` "
        "(privatelink only). Required there.",
    )
    privatelink_base_url: HttpsUrl = Field(
        DEFAULT_PRIVATE_CONTROL_PLANE,
        description="The control plane's private DNS name behind the endpoint (privatelink only): sets "
        "ALBUS_BASEPATH (`/albus`), CONTROL_PLANE_BASEPATH (`/api/v1`), SOURCE_SYNC_API_BASEPATH "
        f"(`/api/v1/sync`) and CONFIG_READER_PATH (`/api/model-configs`). Default: `{DEFAULT_PRIVATE_CONTROL_PLANE}`.",
    )
    inbound: Literal["none", "privatelink", "ip_allow_list"] = Field(
        "none",
        description="How the control plane calls in: `none`; `privatelink`: a VPC endpoint service on the "
        "stack's Network Load Balancer, acceptance required, for `allowed_principals`; `ip_allow_list`: the load "
        "balancer also admits `allowed_cidrs` (internet-facing only). Default: `none`.",
    )
    allowed_principals: list[Annotated[str, Field(pattern=PRINCIPAL_ARN.pattern)]] = Field(
        default_factory=lambda: [PORTKEY_CONTROL_PLANE_PRINCIPAL],
        description="Principals that may request a connection to the endpoint service (inbound = privatelink). "
        f"Default: Portkey's control plane, `{PORTKEY_CONTROL_PLANE_PRINCIPAL}`.",
        min_length=1,
        max_length=10,
    )
    allowed_cidrs: list[str] = Field(
        default_factory=lambda: list(PORTKEY_CONTROL_PLANE_CIDRS),
        description="Addresses the control plane calls from (inbound = ip_allow_list), added to what the load "
        f"balancer admits. Default: Portkey's, {', '.join(PORTKEY_CONTROL_PLANE_CIDRS)}.",
        min_length=1,
        max_length=20,
    )

    @field_validator("privatelink_service_name")
    @classmethod
    def _service(cls, value: str | None) -> str | None:
        if value is not None and not ENDPOINT_SERVICE_NAME.match(value):
            raise ValueError(f"{value!r} is not an endpoint service name (com.amazonaws.vpce.<region>.vpce-svc-...)")
        return value

    @field_validator("allowed_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                network = ipaddress.IPv4Network(value)
            except ValueError as error:
                raise ValueError(f"{value!r} is not an IPv4 CIDR: {error}") from None
            if network.prefixlen < 16:
                raise ValueError(f"{value!r} admits more than a /16; list the control plane's addresses")
        return values

    @property
    def base_paths(self) -> dict[str, str]:
        """The gateway's control-plane variables for private outbound (none over the internet)."""
        if self.outbound != "privatelink":
            return {}
        base = self.privatelink_base_url.rstrip("/")
        return {
            "ALBUS_BASEPATH": f"{base}/albus",
            "CONTROL_PLANE_BASEPATH": f"{base}/api/v1",
            "SOURCE_SYNC_API_BASEPATH": f"{base}/api/v1/sync",
            "CONFIG_READER_PATH": f"{base}/api/model-configs",
        }

    def problems(self) -> Iterator[Problem]:
        if self.outbound == "privatelink" and self.privatelink_service_name is None:
            yield Problem("privatelink_service_name", "required with outbound = 'privatelink'")
        if self.outbound != "privatelink":
            for name in ("privatelink_service_name", "privatelink_base_url"):
                if name in self.model_fields_set:
                    yield Problem(name, "only with outbound = 'privatelink'; remove this key")
        if self.inbound != "privatelink" and "allowed_principals" in self.model_fields_set:
            yield Problem("allowed_principals", "only with inbound = 'privatelink'; remove this key")
        if self.inbound != "ip_allow_list" and "allowed_cidrs" in self.model_fields_set:
            yield Problem("allowed_cidrs", "only with inbound = 'ip_allow_list'; remove this key")


class HybridSettings(Section):
    """Portkey's hybrid deployment: the enterprise gateway against Portkey's control plane."""

    enabled: bool = Field(
        False,
        description="Run Portkey's enterprise gateway (hybrid mode) instead of the OSS gateway behind the data "
        "plane. The enterprise gateway authenticates each request with its Portkey API key against the control "
        "plane and holds the provider credentials there, so the data plane's features (teams and JWT auth, org "
        "keys, routing, response cache, guardrails, cost attribution) are refused with it. Not on the emulator "
        "(the image is licensed). Default: false.",
    )
    gateway_image: str = Field(
        "portkeyai/gateway_enterprise:2.16.0",
        description="Enterprise gateway image, pinned by tag or digest. Default: "
        "`portkeyai/gateway_enterprise:2.16.0` (the guide's module default).",
    )
    registry_credentials_secret_arn: SecretArn | None = Field(
        None,
        description="Secret with the Docker registry credentials Portkey gives you (JSON `username`, `password`), "
        "used as the containers' repository credentials; the execution role may read exactly it. "
        "`make hybrid-secrets` creates it. Required.",
    )
    secrets_kms_key_arn: KmsKeyArn | None = Field(
        None,
        description="Customer KMS key of the secrets above (as `make hybrid-secrets` creates them): the execution "
        "role may decrypt with it through Secrets Manager only. Default: none (the AWS-managed key).",
    )
    mcp_gateway_base_url: BaseUrl | None = Field(
        None,
        description="External URL clients reach the MCP gateway at (MCP_GATEWAY_BASE_URL); required with "
        "gateway.server_mode `mcp` or `all`. Default: none.",
    )
    mcp_host: str | None = Field(
        None,
        description="Host the load balancer routes to the MCP gateway (server_mode `all`, beside "
        "edge.gateway_host). Default: none.",
    )
    gateway: ServiceVariables = Field(
        default_factory=ServiceVariables,
        description="The enterprise gateway's variables and secrets (`[hybrid.gateway]`). Default: none.",
    )
    data_service: DataServiceSettings = Field(
        default_factory=DataServiceSettings,
        description="Portkey's data service (`[hybrid.data_service]`). Default: off.",
    )
    cache: CacheSettings = Field(
        default_factory=CacheSettings,
        description="The Redis of the gateway and the data service (`[hybrid.cache]`). Default: the built-in one.",
    )
    log_store: LogStoreSettings | None = Field(None, description="S3 log store (`[hybrid.log_store]`). Default: none.")
    bedrock: BedrockSettings = Field(
        default_factory=BedrockSettings,
        description="Bedrock through the gateway's task role (`[hybrid.bedrock]`). Default: no Bedrock access.",
    )
    control_plane: ControlPlaneSettings = Field(
        default_factory=ControlPlaneSettings,
        description="Control-plane connectivity (`[hybrid.control_plane]`). Default: out over the internet, "
        "nothing in.",
    )

    @field_validator("gateway_image")
    @classmethod
    def _image(cls, value: str) -> str:
        return valid_image(value)

    @field_validator("mcp_host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else valid_hostname(value)

    def problems(self) -> Iterator[Problem]:
        if not self.enabled:
            for name in sorted(self.model_fields_set - {"enabled"}):
                yield Problem(name, "hybrid mode is off (enabled = false); remove this key or set enabled = true")
            return
        if self.registry_credentials_secret_arn is None:
            yield Problem(
                "registry_credentials_secret_arn",
                "required: the enterprise image is pulled with Portkey's registry credentials (make hybrid-secrets "
                "creates the secret)",
            )
        for section in ("gateway", "data_service", "cache", "bedrock", "control_plane"):
            for problem in getattr(self, section).problems():
                yield Problem(f"{section}.{problem.field}", problem.message)
        if self.data_service.enabled and self.log_store is None:
            yield Problem(
                "data_service.enabled", "the data service writes exports and fine-tuning files to the log store; "
                "add [hybrid.log_store]",
            )  # fmt: skip
