"""Auth module: Cognito M2M pool, resource server, client, domain, JWT listener.

The `jwt-validation` listener action exists only in hashicorp/aws >= 6.22; the
Terraform on this machine can only validate against 5.100.0, so these checks
rely on the typed 6.25 bindings and the synthesized JSON."""

from __future__ import annotations

from tests.template import Template


def test_user_pool_is_admin_create_only(env_stack: Template) -> None:
    pool = env_stack.resource("aws_cognito_user_pool")
    assert pool["admin_create_user_config"]["allow_admin_create_user_only"] is True


def test_user_pool_deletion_protection_in_prod_only(dev: Template, prod: Template) -> None:
    assert dev.resource("aws_cognito_user_pool")["deletion_protection"] == "INACTIVE"
    assert prod.resource("aws_cognito_user_pool")["deletion_protection"] == "ACTIVE"


def test_resource_server_has_invoke_and_admin_scopes(env_stack: Template) -> None:
    server = env_stack.resource("aws_cognito_resource_server")
    assert server["identifier"] == "https://gateway.internal"
    assert sorted(s["scope_name"] for s in server["scope"]) == ["admin", "invoke"]
    assert server["user_pool_id"] == env_stack.resource("aws_cognito_user_pool").ref("id")


def test_m2m_client_uses_client_credentials_only_with_a_secret_and_1h_tokens(env_stack: Template) -> None:
    client = env_stack.resource("aws_cognito_user_pool_client")
    assert client["allowed_oauth_flows"] == ["client_credentials"]
    assert client["allowed_oauth_flows_user_pool_client"] is True
    assert client["generate_secret"] is True
    assert client["access_token_validity"] == 1
    assert client["token_validity_units"] == [{"access_token": "hours"}]
    server = env_stack.resource("aws_cognito_resource_server")
    assert client["allowed_oauth_scopes"] == server.ref("scope_identifiers")


def test_hosted_domain_is_unique_per_account(env_stack: Template) -> None:
    domain = env_stack.resource("aws_cognito_user_pool_domain")
    assert domain["domain"].startswith("aigw-") and "${data.aws_caller_identity." in domain["domain"]
    assert domain["user_pool_id"] == env_stack.resource("aws_cognito_user_pool").ref("id")


def test_prod_https_listener_validates_jwt_then_forwards(prod: Template) -> None:
    listener = prod.resource("aws_lb_listener", {"port": 443})
    jwt, forward = sorted(listener["default_action"], key=lambda a: a["order"])
    assert jwt["type"] == "jwt-validation" and jwt["order"] == 1
    pool = prod.resource("aws_cognito_user_pool")
    issuer = f"https://cognito-idp.us-east-1.amazonaws.com/{pool.ref('id')}"
    assert jwt["jwt_validation"]["issuer"] == issuer
    assert jwt["jwt_validation"]["jwks_endpoint"] == f"{issuer}/.well-known/jwks.json"
    assert jwt["jwt_validation"]["additional_claim"] == [
        {"name": "scope", "format": "space-separated-values", "values": ["https://gateway.internal/invoke"]}
    ]
    assert forward["type"] == "forward" and forward["order"] == 2
    assert prod.follow(forward["target_group_arn"]).type == "aws_lb_target_group"


def test_https_without_jwt_forwards_directly(staging: Template) -> None:
    (action,) = staging.resource("aws_lb_listener", {"port": 443})["default_action"]
    assert action["type"] == "forward"


def test_outputs_expose_pool_client_token_endpoint_and_scopes(env_stack: Template) -> None:
    outputs = env_stack.outputs
    pool = env_stack.resource("aws_cognito_user_pool")
    client = env_stack.resource("aws_cognito_user_pool_client")
    domain = env_stack.resource("aws_cognito_user_pool_domain")
    assert outputs["cognito_user_pool_id"]["value"] == pool.ref("id")
    assert outputs["cognito_client_id"]["value"] == client.ref("id")
    assert outputs["cognito_token_endpoint"]["value"] == (
        f"https://{domain.ref('domain')}.auth.us-east-1.amazoncognito.com/oauth2/token"
    )
    assert outputs["cognito_scopes"]["value"] == ["https://gateway.internal/invoke", "https://gateway.internal/admin"]


def test_client_secret_is_only_in_a_sensitive_output(env_stack: Template) -> None:
    client = env_stack.resource("aws_cognito_user_pool_client")
    secret_ref = client.ref("client_secret")
    carrying = {name: out for name, out in env_stack.outputs.items() if "client_secret" in str(out["value"])}
    assert list(carrying) == ["cognito_client_secret"]
    assert carrying["cognito_client_secret"]["value"] == secret_ref
    assert carrying["cognito_client_secret"]["sensitive"] is True
