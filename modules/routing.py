"""Discovery of the named routes (`[routing.<name>]`): each route's config,
exactly as the data plane hands it to the gateway but without credentials
(the data plane fills those in per request), published as a read-only SSM
parameter (`/<prefix>/routing/<name>`), and a managed policy that lets a
client's role read them and nothing else. Created only when routes are
configured."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.iam_policy import IamPolicy
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from constructs import Construct

from aigw.data_plane.config import Route
from aigw.data_plane.routing import portkey_config
from modules.context import StackContext
from modules.grants import grant_parameters_read, policy_document


def parameter_path(context: StackContext) -> str:
    return f"/{context.prefix}/routing"


@dataclass(frozen=True)
class RoutingOutputs:
    # Route name -> SSM parameter name.
    parameters: dict[str, str]
    read_policy_arn: str


class RouteDiscovery(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, routes: dict[str, Route], default: str, context: StackContext
    ) -> None:
        super().__init__(scope, construct_id)
        path = parameter_path(context)
        parameters: dict[str, str] = {}
        arns: list[str] = []
        for name, route in sorted(routes.items()):
            document = {"route": name, "default": name == default, "config": portkey_config(route)}
            parameter = SsmParameter(
                self,
                f"route-{name}",
                name=f"{path}/{name}",
                type="String",
                tier="Standard",
                value=json.dumps(document, sort_keys=True, separators=(",", ":")),
                description=f"{context.prefix}: routing config {name} (send x-aigw-route: {name}); no credentials",
            )
            parameters[name] = parameter.name
            arns.append(parameter.arn)
        policy = IamPolicy(
            self,
            "read-policy",
            name=f"{context.prefix}-routing-read",
            description=f"Read the routing configs of {context.prefix} (SSM parameters under {path}/)",
            policy=policy_document(grant_parameters_read(arns)),
        )
        self.outputs = RoutingOutputs(parameters=parameters, read_policy_arn=policy.arn)
