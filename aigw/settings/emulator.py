"""`[emulator]`: a local AWS emulator in place of AWS."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from aigw.emulator_endpoint import AUTO
from aigw.settings.common import Section

_ENDPOINT = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")


class EmulatorSettings(Section):
    """A local AWS emulator (moto server) in place of AWS, for `make deploy` and the end-to-end tests."""

    endpoint: str = Field(
        "",
        description="Base URL of the emulator (e.g. `http://127.0.0.1:4566`), or `auto`: a loopback port of this "
        "checkout's own, chosen once and recorded in `.tools/emulator/endpoint`, so that two checkouts on one "
        "machine never share an emulator. Every AWS API call of the provider and of the state backend goes there; "
        "credentials come from the environment. Empty: real AWS. Default: empty.",
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value and value != AUTO and not _ENDPOINT.match(value):
            raise ValueError(
                f"{value!r} must be a base URL like http://127.0.0.1:4566 (scheme, host, port; no path), or 'auto'"
            )
        return value
