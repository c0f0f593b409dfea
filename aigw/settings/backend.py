"""`[backend]`: where Terraform keeps this environment's state."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from aigw.settings.common import Section, valid_bucket_name, valid_region

_DYNAMODB_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")


class BackendSettings(Section):
    """Terraform state: one S3 object per environment, locked through DynamoDB."""

    bucket: str = Field(description="S3 bucket holding the state. Required.")
    key: str = Field(description="Object key of this environment's state. Required.")
    dynamodb_table: str = Field(description="DynamoDB table for state locks (hash key `LockID`). Required.")
    region: str = Field(description="Region of the bucket and the table (`aws` partition). Required.")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        return valid_bucket_name(value)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not value.strip() or value.startswith("/"):
            raise ValueError("must be a non-empty object key that does not start with '/'")
        return value

    @field_validator("dynamodb_table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not _DYNAMODB_TABLE.match(value):
            raise ValueError(
                f"{value!r} is not a valid DynamoDB table name (3-255 characters: letters, digits, '_', '-', '.')"
            )
        return value

    @field_validator("region")
    @classmethod
    def _knownvalid_region(cls, value: str) -> str:
        return valid_region(value)
