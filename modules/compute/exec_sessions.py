"""ECS Exec sessions (`gateway.enable_execute_command`): the key that
encrypts each session's data channel. Sessions are logged to the log group
observability creates for them, under the stack's logs key; the task role's
grant is ``grants.grant_ecs_exec_sessions``, the cluster's logging setting is
in service.py."""

from __future__ import annotations

from dataclasses import dataclass

from constructs import Construct

from modules.context import StackContext
from modules.kms import customer_managed_key


@dataclass(frozen=True)
class ExecSessionLogging:
    """Where ECS Exec sessions are logged and the key their data channel is encrypted with."""

    kms_key_arn: str
    log_group_name: str
    log_group_arn: str


class ExecSessions(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, context: StackContext, log_group_name: str, log_group_arn: str
    ) -> None:
        super().__init__(scope, construct_id)
        # Administered through IAM like every key here: the task role decrypts
        # with it, operators who run `execute-command` need kms:GenerateDataKey on it.
        key = customer_managed_key(
            self,
            "exec-key",
            context=context,
            description=f"{context.prefix}: ECS Exec session encryption",
            alias=f"{context.prefix}-ecs-exec",
        )
        self.outputs = ExecSessionLogging(
            kms_key_arn=key.arn, log_group_name=log_group_name, log_group_arn=log_group_arn
        )
