"""Smoke tests of the shipped files' data planes: environments/prod.toml's
and environments/dev.toml's task definitions, as synthesized, start and serve
a request through the real gateway. Every rule is tested on the scenarios
built in code (tests/scenarios.py); these prove the shipped files run."""

from __future__ import annotations

import pytest

from tests.gateway_fixtures import CLIENT, ORG_KEYS
from tests.gateway_harness import GatewayHarness, TaskDefinition, chat
from tests.mock_providers import MockProvider

pytestmark = pytest.mark.gateway


def test_the_shipped_prod_data_plane_serves_with_each_org_key(
    harness: GatewayHarness, prod_task: TaskDefinition, mocks: dict[str, MockProvider]
) -> None:
    data_plane = harness.start_data_plane(ORG_KEYS, "shipped-prod", task=prod_task)
    for provider, key in (("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY"),
                          ("google", "GOOGLE_API_KEY"), ("azure-openai", "AZURE_API_KEY")):  # fmt: skip
        mocks[provider].clear()
        model = "gemini-2.5-flash" if provider == "google" else "gpt-4o"
        response = chat(data_plane.base_url, {"x-portkey-provider": provider, **CLIENT}, model=model)
        assert response.status == 200, (provider, response.body[:300])
        assert mocks[provider].api_keys() == [ORG_KEYS[key]]


def test_the_shipped_dev_data_plane_passes_the_clients_own_key(
    harness: GatewayHarness, dev_task: TaskDefinition, mocks: dict[str, MockProvider]
) -> None:
    data_plane = harness.start_data_plane({}, "shipped-dev", task=dev_task)
    response = chat(data_plane.base_url, {"x-portkey-provider": "openai", "Authorization": "Bearer sk-client-own"})
    assert response.status == 200, response.body[:300]
    assert mocks["openai"].api_keys() == ["sk-client-own"]
