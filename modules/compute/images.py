"""The gateway image's ECR repository: KMS-encrypted with its own key,
immutable tags, scanned on push, the last images kept."""

from __future__ import annotations

import json

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


class GatewayImages(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, context: StackContext) -> None:
        super().__init__(scope, construct_id)
        prefix = context.prefix
        self.key_arn = customer_managed_key(
            self, "ecr-key", context=context, description=f"{prefix}: ECR image encryption", alias=f"{prefix}-ecr"
        ).arn
        repository = EcrRepository(
            self,
            "ecr",
            name=f"{prefix}/gateway",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=EcrRepositoryImageScanningConfiguration(scan_on_push=True),
            encryption_configuration=[
                EcrRepositoryEncryptionConfiguration(encryption_type="KMS", kms_key=self.key_arn)
            ],
            force_delete=not context.deletion_protection,
        )
        EcrLifecyclePolicy(
            self,
            "ecr-lifecycle",
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
        self.repository_url = repository.repository_url
        self.repository_arn = repository.arn

    def same_image_here(self, upstream_image: str) -> str:
        """This repository's reference of ``upstream_image``'s tag or digest."""
        if "@" in upstream_image:
            return f"{self.repository_url}@{upstream_image.rsplit('@', 1)[1]}"
        return f"{self.repository_url}:{upstream_image.rsplit(':', 1)[1]}"
