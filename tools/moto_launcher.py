"""Start moto's server with the gaps this stack hits filled in:
``python -m tools.moto_launcher -H 127.0.0.1 -p PORT`` (used by tools.emulator).

moto 5.2.5 serves every service the stack uses, but three calls the AWS
provider makes are missing or incomplete; each is filled in the smallest way
that behaves like AWS, and nothing else in moto changes:

- Application Auto Scaling has no tagging API (TagResource, UntagResource,
  ListTagsForResource). The provider tags every scalable target
  (default_tags) and reads the tags back; without an answer it retries until
  its timeout. Tags are kept per ARN in memory.
- ECS CreateService/UpdateService drop capacityProviderStrategy,
  healthCheckGracePeriodSeconds and enableECSManagedTags, so every plan
  would replace the service. They are stored on the service and returned.
- Cognito has no DeleteResourceServer, so destroy fails. It removes the
  resource server from its pool.
- EC2 security group rules that reference another group, or a managed
  prefix list, lose their description when described, so every plan would
  update them. The description is read from where moto stored it, or kept.
- Lambda functions lose their DeadLetterConfig and LoggingConfig, so every
  plan would update the cost attribution function. Both are kept from the
  create and update calls and returned.

And two things about the server, which answers each connection in a thread
of its own and closes it after one answer:

- moto's backends are plain dicts and lists without locks. Terraform calls ten
  at a time, and now and then one call iterated a dict another was changing
  ("dictionary changed size during iteration": a 500). Requests are handled
  one at a time (``one_at_a_time``), as one AWS endpoint would appear to a
  client: each call sees the effects of every call answered before it.
- On a loaded machine the provider's SDK now and then fails to read an answer
  the server sent, and sends the call again. A create then met the resource
  it had made (KMS CreateAlias: AlreadyExists), and Terraform's state lock, a
  conditional PutItem, can meet itself (ConditionalCheckFailed, as earlier CI
  runs failed). AWS's SDKs mark every
  attempt of one call with the same ``amz-sdk-invocation-id`` and number it in
  ``amz-sdk-request``; a repeated attempt of a call that already succeeded is
  answered with that first answer instead of running again
  (``replaying_retries``), as AWS's idempotency tokens do for the calls that
  take one.
"""

from __future__ import annotations

import io
import json
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse
from moto.awslambda.models import LambdaFunction
from moto.cognitoidp.responses import CognitoIdpResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.models.security_groups import SecurityGroupRule
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main as moto_server_main

_TAGS: dict[str, dict[str, str]] = {}
_LOCK = threading.Lock()
_register_scalable_target = ApplicationAutoScalingResponse.register_scalable_target


def _register_with_tags(self: ApplicationAutoScalingResponse) -> str:
    body = _register_scalable_target(self)
    tags = self._get_param("Tags") or {}
    if tags:
        with _LOCK:
            _TAGS.setdefault(json.loads(body)["ScalableTargetARN"], {}).update(tags)
    return body


def _tag_resource(self: ApplicationAutoScalingResponse) -> str:
    with _LOCK:
        _TAGS.setdefault(self._get_param("ResourceARN"), {}).update(self._get_param("Tags") or {})
    return "{}"


def _untag_resource(self: ApplicationAutoScalingResponse) -> str:
    with _LOCK:
        tags = _TAGS.get(self._get_param("ResourceARN"), {})
        for key in self._get_param("TagKeys") or []:
            tags.pop(key, None)
    return "{}"


def _list_tags_for_resource(self: ApplicationAutoScalingResponse) -> str:
    with _LOCK:
        return json.dumps({"Tags": dict(_TAGS.get(self._get_param("ResourceARN"), {}))})


# ECS service attributes moto ignores: request parameter -> attribute its serializer reads.
_SERVICE_ATTRIBUTES = {
    "capacityProviderStrategy": "capacity_provider_strategy",
    "healthCheckGracePeriodSeconds": "health_check_grace_period_seconds",
    "enableECSManagedTags": "enable_ecs_managed_tags",
    "availabilityZoneRebalancing": "availability_zone_rebalancing",
}
_create_service = EC2ContainerServiceResponse.create_service
_update_service = EC2ContainerServiceResponse.update_service


def _keeping_service_attributes(original: Any) -> Any:
    def handler(self: EC2ContainerServiceResponse) -> ActionResult:
        result: ActionResult = original(self)
        service = result.result["service"]  # type: ignore[index]  # a dict, typed as object by moto
        for parameter, attribute in _SERVICE_ATTRIBUTES.items():
            value = self._get_param(parameter)
            if value is not None:
                setattr(service, attribute, value)
        return result

    return handler


def _delete_resource_server(self: CognitoIdpResponse) -> EmptyResult:
    pool = self.backend.describe_user_pool(self._get_param("UserPoolId"))
    pool.resource_servers.pop(self._get_param("Identifier"), None)
    return EmptyResult()


def _rule_description(self: SecurityGroupRule) -> str | None:
    return (
        self.ip_range.get("Description")
        or (self.source_group or {}).get("Description")
        or getattr(self, "_prefix_list_description", None)
    )


_rule_init = SecurityGroupRule.__init__


def _rule_keeping_prefix_list_description(self: SecurityGroupRule, *args: Any, **kwargs: Any) -> None:
    _rule_init(self, *args, **kwargs)
    # (ec2_backend, ip_protocol, group_id, from_port, to_port, ip_range, source_group, prefix_list_id)
    prefix_list = kwargs.get("prefix_list_id") or (args[7] if len(args) > 7 else None)
    self._prefix_list_description = (prefix_list or {}).get("Description")  # type: ignore[attr-defined]


# Lambda function settings moto drops: request key -> kept as given.
_KEPT_FUNCTION_SETTINGS = ("DeadLetterConfig", "LoggingConfig")
_function_init = LambdaFunction.__init__
_function_configuration = LambdaFunction.get_configuration
_function_update = LambdaFunction.update_configuration


def _function_keeping_settings(
    self: LambdaFunction, account_id: str, spec: dict[str, Any], *args: Any, **kwargs: Any
) -> None:
    _function_init(self, account_id, spec, *args, **kwargs)
    self._kept_settings = {key: spec[key] for key in _KEPT_FUNCTION_SETTINGS if key in spec}  # type: ignore[attr-defined]


def _function_configuration_with_settings(self: LambdaFunction, *args: Any, **kwargs: Any) -> dict[str, Any]:
    configuration: dict[str, Any] = _function_configuration(self, *args, **kwargs)
    configuration.update(getattr(self, "_kept_settings", {}))
    return configuration


def _function_update_keeping_settings(self: LambdaFunction, config_updates: dict[str, Any]) -> dict[str, Any]:
    kept = getattr(self, "_kept_settings", {})
    kept.update({key: config_updates[key] for key in _KEPT_FUNCTION_SETTINGS if key in config_updates})
    self._kept_settings = kept  # type: ignore[attr-defined]
    return _function_update(self, config_updates)


def _produced(response: Iterable[bytes]) -> list[bytes]:
    """A WSGI answer's whole body, with the answer closed as WSGI requires."""
    try:
        return list(response)
    finally:
        close = getattr(response, "close", None)
        if close is not None:
            close()


def _read_body_now(environ: dict[str, Any]) -> None:
    """Read the request's body from its socket into memory: a client that
    stalls halfway through its body then holds only its own thread, not the lock."""
    stream = environ.get("wsgi.input")
    length = environ.get("CONTENT_LENGTH") or ""
    if stream is None:
        return
    if length.isdigit():
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):  # chunked: werkzeug ends the stream at the last chunk
        body = stream.read()
    else:
        return
    environ["wsgi.input"] = io.BytesIO(body)


def one_at_a_time(handler: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    """``handler`` (a WSGI application, or its ``__call__``) with one request
    inside it at a time: the request's body is read first, then the request is
    handled and its whole answer produced under one lock, since a lazily
    produced body could still read the backends."""
    lock = threading.Lock()

    def serialized(*args: Any) -> list[bytes]:
        _read_body_now(args[-2])
        with lock:
            return _produced(handler(*args))

    return serialized


# Successful answers kept for repeated attempts: the most recent ones, far more
# than the calls one Terraform run has in flight.
KEPT_ANSWERS = 1024
_ATTEMPT = re.compile(r"attempt=(\d+)")


def replaying_retries(handler: Callable[..., Iterable[bytes]]) -> Callable[..., list[bytes]]:
    """``handler`` (a WSGI application, or its ``__call__``), answering a
    repeated attempt (``amz-sdk-request: attempt=2`` or later) of a call whose
    earlier attempt succeeded with that attempt's answer, without running the
    call again. The record has a lock of its own; calls are not serialized here."""
    answers: OrderedDict[str, tuple[str, list[tuple[str, str]], list[bytes]]] = OrderedDict()
    record = threading.Lock()

    def replaying(*args: Any) -> list[bytes]:
        *leading, environ, start_response = args
        invocation = environ.get("HTTP_AMZ_SDK_INVOCATION_ID")
        attempt = _ATTEMPT.search(environ.get("HTTP_AMZ_SDK_REQUEST", ""))
        with record:
            recorded = answers.get(invocation) if attempt is not None and int(attempt.group(1)) > 1 else None
        if recorded is not None:
            status, headers, body = recorded
            start_response(status, headers)
            return body
        started: list[tuple[str, list[tuple[str, str]]]] = []

        def recording_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started.append((status, list(headers)))
            return start_response(status, headers, exc_info)

        body = _produced(handler(*leading, environ, recording_start))
        if invocation and started and started[-1][0].startswith("2"):
            with record:
                answers[invocation] = (*started[-1], body)
                while len(answers) > KEPT_ANSWERS:
                    answers.popitem(last=False)  # the oldest
        return body

    return replaying


def install() -> None:
    DomainDispatcherApplication.__call__ = one_at_a_time(replaying_retries(DomainDispatcherApplication.__call__))  # type: ignore[method-assign]
    ApplicationAutoScalingResponse.register_scalable_target = _register_with_tags  # type: ignore[method-assign]
    ApplicationAutoScalingResponse.tag_resource = _tag_resource  # type: ignore[attr-defined]
    ApplicationAutoScalingResponse.untag_resource = _untag_resource  # type: ignore[attr-defined]
    ApplicationAutoScalingResponse.list_tags_for_resource = _list_tags_for_resource  # type: ignore[attr-defined]
    EC2ContainerServiceResponse.create_service = _keeping_service_attributes(_create_service)  # type: ignore[method-assign]
    EC2ContainerServiceResponse.update_service = _keeping_service_attributes(_update_service)  # type: ignore[method-assign]
    CognitoIdpResponse.delete_resource_server = _delete_resource_server  # type: ignore[attr-defined]
    SecurityGroupRule.description = property(_rule_description)  # type: ignore[assignment,method-assign]
    SecurityGroupRule.__init__ = _rule_keeping_prefix_list_description  # type: ignore[method-assign]
    LambdaFunction.__init__ = _function_keeping_settings  # type: ignore[method-assign]
    LambdaFunction.get_configuration = _function_configuration_with_settings  # type: ignore[method-assign]
    LambdaFunction.update_configuration = _function_update_keeping_settings  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    moto_server_main(sys.argv[1:])
