"""Auth: the Cognito user pool for machine-to-machine clients, its resource
server and scopes, the M2M client and the hosted domain (token endpoint).
The load balancer validates their JWTs (modules/edge.py, with `jwt_issuer`)."""

from __future__ import annotations

from dataclasses import dataclass

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

from modules.context import StackContext
from modules.edge import JwtIssuer

RESOURCE_SERVER_IDENTIFIER = "https://gateway.internal"
SCOPES: dict[str, str] = {
    "invoke": "Call the gateway's model APIs",
    "admin": "Administrative operations on the gateway",
}
INVOKE_SCOPE = f"{RESOURCE_SERVER_IDENTIFIER}/invoke"
ACCESS_TOKEN_HOURS = 1


@dataclass(frozen=True)
class AuthOutputs:
    user_pool_id: str
    client_id: str
    # Sensitive: only ever exported through a sensitive output.
    client_secret: str
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
    ) -> None:
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
        client = CognitoUserPoolClient(
            self,
            "m2m-client",
            name=f"{prefix}-m2m",
            user_pool_id=pool_id,
            generate_secret=True,
            allowed_oauth_flows=["client_credentials"],
            allowed_oauth_flows_user_pool_client=True,
            allowed_oauth_scopes=server.scope_identifiers,
            supported_identity_providers=["COGNITO"],
            explicit_auth_flows=["ALLOW_REFRESH_TOKEN_AUTH"],
            access_token_validity=ACCESS_TOKEN_HOURS,
            token_validity_units=[CognitoUserPoolClientTokenValidityUnits(access_token="hours")],
            prevent_user_existence_errors="ENABLED",
            enable_token_revocation=True,
        )
        domain = CognitoUserPoolDomain(self, "domain", domain=f"{prefix}-{context.account_id}", user_pool_id=pool_id)
        issuer = f"https://cognito-idp.{context.region}.amazonaws.com/{pool_id}"

        self.outputs = AuthOutputs(
            user_pool_id=pool_id,
            client_id=client.id,
            client_secret=client.client_secret,
            issuer=issuer,
            token_endpoint=f"https://{domain.domain}.auth.{context.region}.amazoncognito.com/oauth2/token",
            scopes=[f"{RESOURCE_SERVER_IDENTIFIER}/{name}" for name in SCOPES],
            jwt_issuer=JwtIssuer(
                issuer=issuer, jwks_endpoint=f"{issuer}/.well-known/jwks.json", required_scope=INVOKE_SCOPE
            ),
        )
