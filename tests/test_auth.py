"""Auth: the Cognito user pool of machine-to-machine clients, its resource
server, client and hosted domain. (The load balancer's JWT validation is in
test_edge.py.) Stacks come from tests/scenarios.py."""

from __future__ import annotations

import pytest

from security.stackdoc import StackDoc


def test_only_administrators_create_users(scenarios: dict[str, StackDoc]) -> None:
    scenarios["base"].resource(
        "aws_cognito_user_pool", {"admin_create_user_config": {"allow_admin_create_user_only": True}}
    )


@pytest.mark.parametrize(("name", "state"), [("base", "ACTIVE"), ("tuned", "INACTIVE")])
def test_user_pool_deletion_protection_follows_the_setting(
    scenarios: dict[str, StackDoc], name: str, state: str
) -> None:
    scenarios[name].resource("aws_cognito_user_pool", {"deletion_protection": state})


def test_resource_server_offers_the_invoke_and_admin_scopes(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    server = stack.resource(
        "aws_cognito_resource_server",
        {"identifier": "https://gateway.internal", "user_pool_id": stack.resource("aws_cognito_user_pool").ref("id")},
    )
    assert sorted(s["scope_name"] for s in server["scope"]) == ["admin", "invoke"]


def test_client_uses_the_client_credentials_flow_only(scenarios: dict[str, StackDoc]) -> None:
    scenarios["base"].resource(
        "aws_cognito_user_pool_client",
        {"allowed_oauth_flows": ["client_credentials"], "allowed_oauth_flows_user_pool_client": True},
    )


def test_client_has_a_secret(scenarios: dict[str, StackDoc]) -> None:
    scenarios["base"].resource("aws_cognito_user_pool_client", {"generate_secret": True})


def test_client_access_tokens_last_one_hour(scenarios: dict[str, StackDoc]) -> None:
    scenarios["base"].resource(
        "aws_cognito_user_pool_client",
        {"access_token_validity": 1, "token_validity_units": [{"access_token": "hours"}]},
    )


def test_the_default_client_may_ask_for_both_scopes_as_it_always_could(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    client = stack.resource("aws_cognito_user_pool_client")
    assert client["allowed_oauth_scopes"] == ["https://gateway.internal/invoke", "https://gateway.internal/admin"]
    # The scopes exist before a client names them.
    assert stack.resource("aws_cognito_resource_server").address in client["depends_on"]


def test_each_team_has_its_own_client_with_its_scopes_and_token_validity(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["teams"]
    default = stack.resource("aws_cognito_user_pool_client", {"name": "aigw-teams-m2m"})
    search = stack.resource("aws_cognito_user_pool_client", {"name": "aigw-teams-team-search"})
    batch = stack.resource("aws_cognito_user_pool_client", {"name": "aigw-teams-team-batch"})
    assert default.name.startswith("auth_m2m-client_")  # the default team keeps the one client's address
    assert search["allowed_oauth_scopes"] == ["https://gateway.internal/invoke"]
    assert (search["access_token_validity"], search["token_validity_units"]) == (15, [{"access_token": "minutes"}])
    assert (batch["access_token_validity"], batch["token_validity_units"]) == (1, [{"access_token": "hours"}])
    for client in (default, search, batch):
        assert client["generate_secret"] is True and client["allowed_oauth_flows"] == ["client_credentials"]


def test_hosted_domain_is_unique_per_account(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["base"]
    domain = stack.resource("aws_cognito_user_pool_domain")
    assert domain["domain"].startswith("aigw-base-") and "${data.aws_caller_identity." in domain["domain"]


def test_token_endpoint_output_is_the_hosted_domains_oauth2_token_url(scenarios: dict[str, StackDoc]) -> None:
    stack = scenarios["seoul"]
    domain = stack.resource("aws_cognito_user_pool_domain")
    assert stack.outputs["cognito_token_endpoint"]["value"] == (
        f"https://{domain.ref('domain')}.auth.ap-northeast-2.amazoncognito.com/oauth2/token"
    )


def test_scopes_output_lists_the_full_scope_names(scenarios: dict[str, StackDoc]) -> None:
    assert scenarios["base"].outputs["cognito_scopes"]["value"] == [
        "https://gateway.internal/invoke",
        "https://gateway.internal/admin",
    ]
