"""The shared store (`[shared_store]`): an ElastiCache Serverless cache
(Valkey) in the private subnets that holds the teams' counters, so that a
limit holds across every task. Created only when a team has a limit or a
budget. TLS in transit (always, on serverless), a customer-managed key at
rest, its own security group that admits 6379 from the tasks alone
(``admit``), and usage limits from the settings.

The data plane reaches it with lua-resty-redis over TLS, verifying its
certificate against Amazon's roots (config/data-plane/store-ca.pem); no
credentials: only the tasks' security group reaches it (docs/data-plane.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import Token
from cdktf_cdktf_provider_aws.elasticache_serverless_cache import (
    ElasticacheServerlessCache,
    ElasticacheServerlessCacheCacheUsageLimits,
    ElasticacheServerlessCacheCacheUsageLimitsDataStorage,
    ElasticacheServerlessCacheCacheUsageLimitsEcpuPerSecond,
)
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from constructs import Construct

from aigw.settings.clients import SharedStoreSettings
from modules.context import StackContext
from modules.grants import allow_from
from modules.kms import customer_managed_key
from modules.network import NetworkOutputs

STORE_PORT = 6379
ENGINE, MAJOR_ENGINE_VERSION = "valkey", "8"
# When the daily snapshot is taken (UTC), where snapshots are kept.
SNAPSHOT_TIME = "04:00"


@dataclass(frozen=True)
class SharedStoreOutputs:
    host: str
    port: str
    security_group_id: str


class SharedStore(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: SharedStoreSettings,
        context: StackContext,
        network: NetworkOutputs,
    ) -> None:
        super().__init__(scope, construct_id)
        prefix = context.prefix
        key = customer_managed_key(
            self, "key", context=context, description=f"{prefix}: shared store (team counters)",
            alias=f"{prefix}-shared-store",
        )  # fmt: skip
        security_group_id = SecurityGroup(
            self,
            "sg",
            name=f"{prefix}-shared-store",
            description="Shared store: Valkey from the gateway tasks only",
            vpc_id=network.vpc_id,
            tags={"Name": f"{prefix}-shared-store"},
        ).id
        cache = ElasticacheServerlessCache(
            self,
            "cache",
            name=f"{prefix}-shared",
            description=f"{prefix}: per-team limits and budgets",
            engine=ENGINE,
            major_engine_version=MAJOR_ENGINE_VERSION,
            kms_key_id=key.arn,
            subnet_ids=network.private_subnet_ids,
            security_group_ids=[security_group_id],
            cache_usage_limits=[
                ElasticacheServerlessCacheCacheUsageLimits(
                    data_storage=[
                        ElasticacheServerlessCacheCacheUsageLimitsDataStorage(
                            maximum=settings.max_data_storage_gb, unit="GB"
                        )
                    ],
                    ecpu_per_second=[
                        ElasticacheServerlessCacheCacheUsageLimitsEcpuPerSecond(maximum=settings.max_ecpu_per_second)
                    ],
                )
            ],
            snapshot_retention_limit=settings.snapshot_retention_days or None,
            daily_snapshot_time=SNAPSHOT_TIME if settings.snapshot_retention_days else None,
        )
        self._security_group_id = security_group_id
        endpoint = cache.endpoint.get(0)
        self.outputs = SharedStoreOutputs(
            host=endpoint.address, port=Token.as_string(endpoint.port), security_group_id=security_group_id
        )

    def admit(self, task_security_group_id: str, *, name: str = "tasks", what: str = "gateway tasks") -> None:
        """The tasks, and nothing else, reach the store on its port."""
        allow_from(
            self,
            f"{name}-to-store",
            source_security_group_id=task_security_group_id,
            target_security_group_id=self._security_group_id,
            port=STORE_PORT,
            description=f"{what} to the shared store",
        )
