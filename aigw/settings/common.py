"""What every settings table is built from: the problem a rule reports, the
base model of a table, and the validators of values that several tables hold
(region names, S3 bucket names)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

# Region names of the `aws` partition: <geography>-<direction>-<number>. The AWS
# SDKs' partition data narrows the geography to a list (us|eu|ap|sa|ca|me|af|il|mx);
# it is left open here so that a region AWS opens later needs no change.
_AWS_REGION = re.compile(r"^[a-z]{2}-[a-z]+-\d{1,2}$")
# Regions of the other partitions, by the AWS SDKs' partition data. They are
# refused: the stack writes `aws`-partition service endpoint names
# (com.amazonaws.<region>.<service>), `amazonaws.com` service hosts in
# conditions, the Cognito hosted domain (amazoncognito.com) and ALB JWT
# validation, which differ or do not exist there.
OTHER_PARTITION_REGIONS: dict[str, re.Pattern[str]] = {
    "aws-cn": re.compile(r"^cn-[a-z]+-\d+$"),
    "aws-us-gov": re.compile(r"^us-gov-[a-z]+-\d+$"),
    "aws-iso": re.compile(r"^us-iso-[a-z]+-\d+$"),
    "aws-iso-b": re.compile(r"^us-isob-[a-z]+-\d+$"),
    "aws-iso-e": re.compile(r"^eu-isoe-[a-z]+-\d+$"),
    "aws-iso-f": re.compile(r"^us-isof-[a-z]+-\d+$"),
    "aws-eusc": re.compile(r"^eusc-[a-z]+-[a-z]+-\d+$"),
}

_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an environment file, against the field to change."""

    field: str
    message: str
    # Top-level keys the rule read; used to skip rules whose input was invalid.
    inputs: frozenset[str] = frozenset()


class Section(BaseModel):
    """Base of every settings table: strict keys, immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def problems(self) -> Iterator[Problem]:
        """Rules spanning several fields of this table (none by default)."""
        return iter(())


def valid_region(value: str) -> str:
    for partition, pattern in OTHER_PARTITION_REGIONS.items():
        if pattern.match(value):
            raise ValueError(
                f"{value!r} is a region of the {partition} partition; this project deploys only to the aws "
                f"partition (its service endpoint names, service principals, Cognito hosted domain and ALB JWT "
                f"validation differ or are missing in {partition})"
            )
    if not _AWS_REGION.match(value):
        raise ValueError(f"{value!r} is not an AWS region name (like us-east-1 or ap-northeast-2)")
    return value


def valid_bucket_name(value: str) -> str:
    if not _S3_BUCKET.match(value) or ".." in value:
        raise ValueError(
            f"{value!r} is not a valid S3 bucket name (3-63 characters: lowercase letters, digits, dots, hyphens)"
        )
    return value
