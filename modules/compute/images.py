"""The ECR repositories of the task's own images: the gateway's and the data
plane's (which holds the organisation's provider keys). Both are
KMS-encrypted with one key of their own, have immutable tags, are scanned on
push and keep the last images. With `gateway.image_from_ecr` the task runs
both images from them, so that neither is pulled from a public registry and
both were scanned."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.ecr_lifecycle_policy import EcrLifecyclePolicy
from cdktf_cdktf_provider_aws.ecr_repository import (
    EcrRepository,
    EcrRepositoryEncryptionConfiguration,
    EcrRepositoryImageScanningConfiguration,
)
from constructs import Construct

from modules.context import StackContext
from modules.kms import customer_managed_key

IMAGES_KEPT = 10


@dataclass(frozen=True)
class ImageRepository:
    url: str
    arn: str

    def same_image_here(self, upstream_image: str) -> str:
        """This repository's reference of ``upstream_image``'s tag or digest."""
        if "@" in upstream_image:
            return f"{self.url}@{upstream_image.rsplit('@', 1)[1]}"
        return f"{self.url}:{upstream_image.rsplit(':', 1)[1]}"


class GatewayImages(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, context: StackContext) -> None:
        super().__init__(scope, construct_id)
        prefix = context.prefix
        self.key_arn = customer_managed_key(
            self, "ecr-key", context=context, description=f"{prefix}: ECR image encryption", alias=f"{prefix}-ecr"
        ).arn
        # The gateway's construct ids predate the data plane's repository: kept, so its address stays.
        self.gateway = self._repository("ecr", f"{prefix}/gateway", context)
        self.data_plane = self._repository("data-plane-ecr", f"{prefix}/data-plane", context)

    def _repository(self, construct_id: str, name: str, context: StackContext) -> ImageRepository:
        repository = EcrRepository(
            self,
            construct_id,
            name=name,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=EcrRepositoryImageScanningConfiguration(scan_on_push=True),
            encryption_configuration=[
                EcrRepositoryEncryptionConfiguration(encryption_type="KMS", kms_key=self.key_arn)
            ],
            force_delete=not context.deletion_protection,
        )
        EcrLifecyclePolicy(
            self,
            f"{construct_id}-lifecycle",
            repository=repository.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": f"Keep the last {IMAGES_KEPT} images",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": IMAGES_KEPT,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                }
            ),
        )
        return ImageRepository(url=repository.repository_url, arn=repository.arn)
