"""Auth: the Cognito user pool for machine-to-machine clients, its resource
server and scopes, one app client per consuming team (`[clients.<team>]`, or
the one `default` client) and the hosted domain (token endpoint). The load
balancer validates their JWTs and admits only these clients
(modules/edge.py, with `jwt_issuer`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.cognito_resource_server import CognitoResourceServer, CognitoResourceServerScope
from cdktf_cdktf_provider_aws.cognito_user_pool import (
    CognitoUserPool,
    CognitoUserPoolAdminCreateUserConfig,
    CognitoUserPoolPasswordPolicy,
)
from cdktf_cdktf_provider_aws.cognito_user_pool_client import (
    CognitoUserPoolClient,
    CognitoUserPoolClientTokenValidityUnits,
)
from cdktf_cdktf_provider_aws.cognito_user_pool_domain import CognitoUserPoolDomain
from constructs import Construct

from aigw.settings.clients import DEFAULT_TEAM, INVOKE, SCOPES, ClientSettings
from modules.context import StackContext
from modules.edge import JwtIssuer

RESOURCE_SERVER_IDENTIFIER = "https://gateway.internal"
INVOKE_SCOPE = f"{RESOURCE_SERVER_IDENTIFIER}/{INVOKE}"


def client_construct_id(team: str) -> str:
    """The default team keeps the address the stack's one client always had."""
    return "m2m-client" if team == DEFAULT_TEAM else f"client-{team}"


def client_name(prefix: str, team: str) -> str:
    return f"{prefix}-m2m" if team == DEFAULT_TEAM else f"{prefix}-team-{team}"


def token_validity(minutes: int) -> dict[str, Any]:
    """Whole hours stay in hours, as the stack's one client always had them (no change to plan)."""
    hours, rest = divmod(minutes, 60)
    value, unit = (hours, "hours") if not rest else (minutes, "minutes")
    return {
        "access_token_validity": value,
        "token_validity_units": [CognitoUserPoolClientTokenValidityUnits(access_token=unit)],
    }


@dataclass(frozen=True)
class AuthOutputs:
    user_pool_id: str
    # Team -> app client id.
    client_ids: dict[str, str]
    # Team -> client secret. Sensitive: only ever exported through a sensitive output.
    client_secrets: dict[str, str]
    issuer: str
    token_endpoint: str
    scopes: list[str]
    jwt_issuer: JwtIssuer


class Auth(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        context: StackContext,
        teams: dict[str, ClientSettings],
    ) -> None:
        """``teams``: the consuming teams (``EnvironmentSettings.teams``)."""
        super().__init__(scope, construct_id)
        prefix = context.prefix
        pool = CognitoUserPool(
            self,
            "user-pool",
            name=f"{prefix}-clients",
            # Machine clients only: nobody signs themselves up.
            admin_create_user_config=CognitoUserPoolAdminCreateUserConfig(allow_admin_create_user_only=True),
            deletion_protection="ACTIVE" if context.deletion_protection else "INACTIVE",
            password_policy=CognitoUserPoolPasswordPolicy(
                minimum_length=14,
                require_lowercase=True,
                require_uppercase=True,
                require_numbers=True,
                require_symbols=True,
                temporary_password_validity_days=1,
            ),
        )
        pool_id = pool.id
        server = CognitoResourceServer(
            self,
            "resource-server",
            user_pool_id=pool_id,
            identifier=RESOURCE_SERVER_IDENTIFIER,
            name=f"{prefix}-gateway",
            scope=[
                CognitoResourceServerScope(scope_name=name, scope_description=text) for name, text in SCOPES.items()
            ],
        )
        clients = {
            team: CognitoUserPoolClient(
                self,
                client_construct_id(team),
                name=client_name(prefix, team),
                user_pool_id=pool_id,
                generate_secret=True,
                allowed_oauth_flows=["client_credentials"],
                allowed_oauth_flows_user_pool_client=True,
                allowed_oauth_scopes=[f"{RESOURCE_SERVER_IDENTIFIER}/{name}" for name in settings.scopes],
                supported_identity_providers=["COGNITO"],
                explicit_auth_flows=["ALLOW_REFRESH_TOKEN_AUTH"],
                **token_validity(settings.token_validity_minutes),
                prevent_user_existence_errors="ENABLED",
                enable_token_revocation=True,
                # The scopes exist once the resource server does.
                depends_on=[server],
            )
            for team, settings in sorted(teams.items())
        }
        domain = CognitoUserPoolDomain(self, "domain", domain=f"{prefix}-{context.account_id}", user_pool_id=pool_id)
        issuer = f"https://cognito-idp.{context.region}.amazonaws.com/{pool_id}"

        self.outputs = AuthOutputs(
            user_pool_id=pool_id,
            client_ids={team: client.id for team, client in clients.items()},
            client_secrets={team: client.client_secret for team, client in clients.items()},
            issuer=issuer,
            token_endpoint=f"https://{domain.domain}.auth.{context.region}.amazoncognito.com/oauth2/token",
            scopes=[f"{RESOURCE_SERVER_IDENTIFIER}/{name}" for name in SCOPES],
            jwt_issuer=JwtIssuer(
                issuer=issuer,
                jwks_endpoint=f"{issuer}/.well-known/jwks.json",
                required_scope=INVOKE_SCOPE,
                client_ids=[client.id for client in clients.values()],
            ),
        )
