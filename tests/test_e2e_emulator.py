"""End to end on the local AWS emulator: the real `cdktf deploy` of
environments/local.toml against moto on a free loopback port, state in the
emulator's S3 with locks in its DynamoDB; then boto3 checks of what exists,
an empty re-plan, two concurrent plans on one state, and a destroy that
leaves nothing behind. Loopback only; the emulator always stops.

Needs Terraform and the hashicorp/aws provider from a local mirror (the
``provider_mirror`` fixture: TF_PLUGIN_DIR, else the machine's mirror, else
one filled from the registry); every call of the deploy itself stays on loopback.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from aigw.data_plane.bundle import read_environment_file, unpack
from aigw.data_plane.contract import BUNDLE_VARIABLE, DATA_PLANE_CONTAINER, SHA256_VARIABLE
from aigw.environments import load_environments
from tests import conftest, processes
from tests.conftest import ProviderMirror
from tests.gateway_harness import free_port
from tests.local_task import listening_addresses, session_members
from tests.project_copy import ROOT, copy_project
from tools import prices
from tools.emulator import Emulator
from tools.state_bootstrap import bootstrap

pytestmark = pytest.mark.e2e
STACK = "ai-gateway-local"
# One cdktf or Terraform run against the emulator (a healthy deploy takes about 2 minutes
# here); on expiry tests/processes.py ends the whole tree, Terraform and provider included.
DEPLOY_TIMEOUT_SECONDS = 600
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "emulator", "AWS_SECRET_ACCESS_KEY": "emulator", "AWS_DEFAULT_REGION": "us-east-1"}
# Anything that misses the emulator goes to a closed loopback port, never to the internet.
CLOSED_PORT = "http://127.0.0.1:9"
LOOPBACK_GUARD = {"HTTPS_PROXY": CLOSED_PORT, "HTTP_PROXY": CLOSED_PORT, "NO_PROXY": "127.0.0.1,localhost"}
VERIFIED: set[str] = set()


@dataclass
class Deployment:
    project: Path
    env: dict[str, str]
    endpoint: str
    bucket: str
    state_key: str
    table: str

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1", **_boto_credentials())

    @property
    def outputs_file(self) -> Path:
        """Where the deploy writes the stack's outputs, as `make deploy` does."""
        return self.project / ".tools" / "local-outputs.json"

    @property
    def stack_dir(self) -> Path:
        return self.project / "cdktf.out" / "stacks" / STACK

    def run(self, *args: str | Path, timeout: int = DEPLOY_TIMEOUT_SECONDS) -> subprocess.CompletedProcess[str]:
        return processes.run(args, cwd=self.project, env=self.env, timeout=timeout)

    def terraform(self, *args: str) -> subprocess.CompletedProcess[str]:
        return processes.run(["terraform", *args, "-no-color", "-input=false"], cwd=self.stack_dir, env=self.env,
                             timeout=DEPLOY_TIMEOUT_SECONDS)  # fmt: skip


def cli_environment(env_dir: Path, mirror: Path) -> dict[str, str]:
    """The environment cdktf and Terraform run in against the emulator: its
    credentials, nothing but loopback, the environments in ``env_dir`` and the
    provider from ``mirror``."""
    return {**os.environ, **CREDENTIALS, **LOOPBACK_GUARD, "AIGW_ENV_DIR": str(env_dir), "CHECKPOINT_DISABLE": "1",
            "TF_CLI_ARGS_init": f"-plugin-dir={mirror}", "TF_CLI_ARGS_providers_lock": f"-fs-mirror={mirror}",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            "PATH": f"{ROOT / 'node_modules' / '.bin'}:{os.environ.get('PATH', '')}"}  # fmt: skip


@contextlib.contextmanager
def running_emulator(endpoint: str, state_dir: Path) -> Iterator[Emulator]:
    """The emulator on ``endpoint``, with its credentials in this process's
    environment (for boto3 and the state bootstrap) until it stops."""
    emulator = Emulator(endpoint, state_dir=state_dir)
    emulator.start()
    old_environ = dict(os.environ)
    os.environ.update(CREDENTIALS)
    try:
        yield emulator
    finally:
        os.environ.clear()
        os.environ.update(old_environ)
        emulator.stop()


def _boto_credentials() -> dict[str, str]:
    return {"aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}  # fmt: skip


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, provider_mirror: ProviderMirror) -> Iterator[Deployment]:
    mirror = provider_mirror.directory
    endpoint = f"http://127.0.0.1:{free_port()}"
    project = copy_project(tmp_path_factory.mktemp("e2e-project"))
    env_dir = project / "environments"
    for other in env_dir.glob("*.toml"):
        if other.stem != "local":
            other.unlink()
    local_toml = env_dir / "local.toml"
    text = local_toml.read_text()
    assert 'endpoint = "auto"' in text
    local_toml.write_text(text.replace('endpoint = "auto"', f'endpoint = "{endpoint}"'))
    (environment,) = load_environments(env_dir)

    env = cli_environment(env_dir, mirror)
    try:
        with running_emulator(endpoint, tmp_path_factory.mktemp("emulator")):
            bootstrap(environment)
            backend = environment.settings.backend
            deployment = Deployment(project, env, endpoint, backend.bucket, backend.key, backend.dynamodb_table)
            deployment.outputs_file.parent.mkdir(parents=True, exist_ok=True)
            deployed = deployment.run(ROOT / "node_modules" / ".bin" / "cdktf", "deploy", STACK, "--auto-approve",
                                      "--outputs-file", deployment.outputs_file)  # fmt: skip
            assert deployed.returncode == 0, (deployed.stdout + deployed.stderr)[-6000:]
            yield deployment
    finally:
        conftest.TERMINAL_SUMMARY.append(
            f"emulator end-to-end: {len(VERIFIED)} resource types verified through boto3: {', '.join(sorted(VERIFIED))}"
        )


def verified(kind: str) -> None:
    VERIFIED.add(kind)


def test_network_exists_as_declared(deployment: Deployment) -> None:
    ec2 = deployment.client("ec2")
    (vpc,) = ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.9.0.0/16"]}])["Vpcs"]
    vpc_filter = [{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
    subnets = ec2.describe_subnets(Filters=vpc_filter)["Subnets"]
    tiers = sorted(next(t["Value"] for t in s["Tags"] if t["Key"] == "Tier") for s in subnets)
    assert tiers == ["private", "private", "public", "public"]
    assert all(s["MapPublicIpOnLaunch"] is False for s in subnets)
    nats = [n for n in ec2.describe_nat_gateways(Filters=vpc_filter)["NatGateways"] if n["State"] == "available"]
    assert len(nats) == 1
    endpoints = ec2.describe_vpc_endpoints(Filters=vpc_filter)["VpcEndpoints"]
    assert sorted(e["ServiceName"].removeprefix("com.amazonaws.us-east-1.") for e in endpoints) == [
        "dynamodb",
        "ecr.api",
        "ecr.dkr",
        "logs",
        "s3",
        "secretsmanager",
    ]  # fmt: skip  (dynamodb: cost attribution)
    (flow,) = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc["VpcId"]]}])["FlowLogs"]
    assert flow["TrafficType"] == "ALL"
    for kind in ("vpc", "subnet", "nat_gateway", "vpc_endpoint", "flow_log"):
        verified(kind)


def test_load_balancer_listeners_target_group_and_waf(deployment: Deployment) -> None:
    elb = deployment.client("elbv2")
    (alb,) = elb.describe_load_balancers(Names=["aigw-local-alb"])["LoadBalancers"]
    assert alb["Type"] == "application"  # (moto does not report Scheme)
    attributes = {a["Key"]: a["Value"] for a in elb.describe_load_balancer_attributes(
        LoadBalancerArn=alb["LoadBalancerArn"])["Attributes"]}  # fmt: skip
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    (listener,) = elb.describe_listeners(LoadBalancerArn=alb["LoadBalancerArn"])["Listeners"]
    assert (listener["Port"], listener["Protocol"], listener["DefaultActions"][0]["Type"]) == (80, "HTTP", "forward")
    (group,) = elb.describe_target_groups(Names=["aigw-local-gw"])["TargetGroups"]
    assert (group["Port"], group["TargetType"], group["HealthCheckPath"]) == (8080, "ip", "/health")
    waf = deployment.client("wafv2")
    acl = waf.get_web_acl_for_resource(ResourceArn=alb["LoadBalancerArn"])["WebACL"]
    assert acl["Name"] == "aigw-local-web-acl" and len(acl["Rules"]) == 4
    logging = waf.get_logging_configuration(ResourceArn=acl["ARN"])["LoggingConfiguration"]
    assert ":log-group:aws-waf-logs-aigw-local" in logging["LogDestinationConfigs"][0]
    for kind in ("lb", "lb_listener", "lb_target_group", "wafv2_web_acl", "wafv2_web_acl_association",
                 "wafv2_web_acl_logging_configuration"):  # fmt: skip
        verified(kind)


def test_cognito_pool_resource_server_and_m2m_client(deployment: Deployment) -> None:
    idp = deployment.client("cognito-idp")
    (pool,) = [p for p in idp.list_user_pools(MaxResults=60)["UserPools"] if p["Name"] == "aigw-local-clients"]
    server = idp.describe_resource_server(UserPoolId=pool["Id"], Identifier="https://gateway.internal")
    assert sorted(s["ScopeName"] for s in server["ResourceServer"]["Scopes"]) == ["admin", "invoke"]
    (client_ref,) = idp.list_user_pool_clients(UserPoolId=pool["Id"], MaxResults=60)["UserPoolClients"]
    client = idp.describe_user_pool_client(UserPoolId=pool["Id"], ClientId=client_ref["ClientId"])["UserPoolClient"]
    assert client["AllowedOAuthFlows"] == ["client_credentials"] and client.get("ClientSecret")
    for kind in ("cognito_user_pool", "cognito_resource_server", "cognito_user_pool_client"):
        verified(kind)


def test_ecs_cluster_service_task_and_autoscaling(deployment: Deployment) -> None:
    ecs = deployment.client("ecs")
    (cluster,) = ecs.describe_clusters(clusters=["aigw-local-cluster"], include=["SETTINGS"])["clusters"]
    assert {"name": "containerInsights", "value": "enabled"} in cluster["settings"]
    (service,) = ecs.describe_services(cluster="aigw-local-cluster", services=["aigw-local-gateway"])["services"]
    assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    assert [c["name"] for c in task["containerDefinitions"]] == ["data-plane", "gateway", "adot-collector"]
    assert (task["cpu"], task["memory"]) == ("512", "1024")
    scaling = deployment.client("application-autoscaling")
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert target["ResourceId"] == "service/aigw-local-cluster/aigw-local-gateway"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 2)
    assert len(scaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]) == 2
    for kind in ("ecs_cluster", "ecs_service", "ecs_task_definition", "appautoscaling_target",
                 "appautoscaling_policy"):  # fmt: skip
        verified(kind)


def test_images_keys_logs_secrets_roles_and_alarms(deployment: Deployment) -> None:
    names = ["aigw-local/gateway", "aigw-local/data-plane"]
    repositories = deployment.client("ecr").describe_repositories(repositoryNames=names)["repositories"]
    assert sorted(r["repositoryName"] for r in repositories) == sorted(names)
    for repository in repositories:
        assert repository["imageTagMutability"] == "IMMUTABLE", repository["repositoryName"]
        assert repository["encryptionConfiguration"]["encryptionType"] == "KMS", repository["repositoryName"]
        assert repository["imageScanningConfiguration"] == {"scanOnPush": True}, repository["repositoryName"]
    kms = deployment.client("kms")
    aliases = {
        a["AliasName"]: a["TargetKeyId"] for a in kms.list_aliases()["Aliases"] if "aigw-local" in a["AliasName"]
    }
    expected = {f"alias/aigw-local-{name}" for name in ("logs", "ecr", "secrets", "data-plane", "cost-attribution")}
    assert set(aliases) == expected
    assert all(kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] for key in aliases.values())
    groups = deployment.client("logs").describe_log_groups(logGroupNamePrefix="/aigw-local/")["logGroups"]
    assert len(groups) == 6 and all(g["retentionInDays"] == 365 and g.get("kmsKeyId") for g in groups)
    secrets = deployment.client("secretsmanager").list_secrets()["SecretList"]
    assert sorted(s["Name"] for s in secrets if s["Name"].startswith("aigw-local/")) == [
        f"aigw-local/providers/{p}" for p in ("anthropic", "openai")]  # fmt: skip
    roles = {r["RoleName"] for r in deployment.client("iam").list_roles()["Roles"]}
    assert {
        "aigw-local-task-execution",
        "aigw-local-task",
        "aigw-local-vpc-flow-logs",
        "aigw-local-cost-attribution",
    } <= roles
    alarms = deployment.client("cloudwatch").describe_alarms(AlarmNamePrefix="aigw-local-")["MetricAlarms"]
    assert len(alarms) == 4
    for kind in ("ecr_repository", "kms_key", "kms_alias", "cloudwatch_log_group", "secretsmanager_secret",
                 "iam_role", "cloudwatch_metric_alarm"):  # fmt: skip
        verified(kind)


def deployed_data_plane(deployment: Deployment) -> dict[str, Any]:
    """The data plane container as the emulator's ECS API holds it."""
    ecs = deployment.client("ecs")
    (service,) = ecs.describe_services(cluster="aigw-local-cluster", services=["aigw-local-gateway"])["services"]
    task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    (container,) = [c for c in task["containerDefinitions"] if c["name"] == DATA_PLANE_CONTAINER]
    return dict(container)


def test_the_data_plane_runs_the_bundle_its_task_definition_pins(deployment: Deployment) -> None:
    # GIVEN the task definition ECS holds WHEN its environment file is read as ECS reads it
    container = deployed_data_plane(deployment)
    (environment_file,) = container["environmentFiles"]
    assert environment_file["type"] == "s3"
    bucket, key = environment_file["value"].removeprefix("arn:aws:s3:::").split("/", 1)
    assert bucket == "aigw-local-data-plane-123456789012-us-east-1" and key.startswith("data-plane/")
    obj = deployment.client("s3").get_object(Bucket=bucket, Key=key)
    assert obj["ServerSideEncryption"] == "aws:kms"
    variables = read_environment_file(obj["Body"].read().decode("ascii"))
    # THEN it carries exactly the bundle whose hash the task definition pins, under a key named by that hash
    archive = base64.b64decode(variables[BUNDLE_VARIABLE])
    pinned = {e["name"]: e["value"] for e in container["environment"]}[SHA256_VARIABLE]
    assert list(variables) == [BUNDLE_VARIABLE]
    assert hashlib.sha256(archive).hexdigest() == pinned and key == f"data-plane/{pinned}.env"
    assert "lua/aigw/handler.lua" in unpack(archive)
    for kind in ("s3_bucket", "s3_object"):
        verified(kind)


def state_document(deployment: Deployment) -> dict[str, Any]:
    body = deployment.client("s3").get_object(Bucket=deployment.bucket, Key=deployment.state_key)["Body"].read()
    return dict(json.loads(body))


def test_the_deployed_task_answers_the_printed_call_on_loopback_and_stops_without_a_trace(
    deployment: Deployment, tmp_path: Path
) -> None:
    # What `make deploy` does last, and what `make destroy` does first: the task definition the emulator's
    # ECS holds for the service runs on loopback; the call it prints returns a completion.
    state = tmp_path / "local-task"
    command = [sys.executable, "-m", "tests.local_task"]
    where = ["local", "--state-dir", str(state), "--outputs", str(deployment.outputs_file)]
    started = processes.run([*command, "start", *where], cwd=ROOT, env=deployment.env, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    session = int((state / "pid").read_text())
    try:
        ready = json.loads((state / "ready.json").read_text())
        (service,) = deployment.client("ecs").describe_services(
            cluster="aigw-local-cluster", services=["aigw-local-gateway"]
        )["services"]
        assert ready["task_definition"] == service["taskDefinition"]  # read back, not synthesized
        listening = listening_addresses(session_members(session))
        ports = {port for _, port in listening}
        for url in (ready["url"], ready["gateway"], ready["collector"]):  # data plane, gateway, collector
            assert int(url.rsplit(":", 1)[1]) in ports, (url, listening)
        assert {address for address, _ in listening} == {"127.0.0.1"}, listening
        printed = [line.strip() for line in started.stdout.splitlines() if line.strip().startswith("curl ")]
        assert len(printed) == 1, started.stdout
        answer = processes.run(["bash", "-c", printed[0]], env=deployment.env, timeout=60)
        completion = json.loads(answer.stdout)
        assert completion["choices"][0]["message"]["content"] == "Hello from the openai mock."
        # nginx writes the access-log line when the request is finalized, which may be just after the answer.
        deadline = time.monotonic() + 10
        while not (access_text := Path(ready["access_log"]).read_text()).endswith("\n") and time.monotonic() < deadline:
            time.sleep(0.1)
        access = [json.loads(line) for line in access_text.splitlines()]
        assert [(line["status"], line["provider"]) for line in access] == [(200, "openai")]
    finally:
        stopped = processes.run([*command, "stop", "--state-dir", str(state)], cwd=ROOT, env=deployment.env,
                                timeout=60)  # fmt: skip
    assert stopped.returncode == 0 and stopped.stdout.strip() == "local task stopped"
    assert session_members(session) == []
    for _, port in listening:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_cost_attribution_function_pricing_table_and_subscription(deployment: Deployment) -> None:
    # moto stores the function but cannot run it (no Docker): its handler runs in-process in
    # tests/test_cost_attribution.py; here, what the stack deployed, and `make prices` against it.
    function = deployment.client("lambda").get_function(FunctionName="aigw-local-cost-attribution")
    configuration = function["Configuration"]
    assert (configuration["Runtime"], configuration["Architectures"]) == ("python3.12", ["arm64"])
    assert configuration["DeadLetterConfig"]["TargetArn"].endswith(":aigw-local-cost-attribution-dead-letters")
    assert configuration["LoggingConfig"]["LogGroup"] == "/aws/lambda/aigw-local-cost-attribution"
    assert function["Concurrency"]["ReservedConcurrentExecutions"] == 5
    (subscription,) = deployment.client("logs").describe_subscription_filters(logGroupName="/aigw-local/access")[
        "subscriptionFilters"
    ]
    assert subscription["destinationArn"] == configuration["FunctionArn"]
    assert subscription["filterPattern"] == "{ $.status >= 100 }"
    table = deployment.client("dynamodb").describe_table(TableName="aigw-local-prices")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    count = len(prices.load())
    seeded = deployment.run(sys.executable, "-m", "tools.prices", "local", timeout=120)
    assert f"aigw-local-prices: {count} written, 0 unchanged" in seeded.stdout, seeded.stdout + seeded.stderr
    again = deployment.run(sys.executable, "-m", "tools.prices", "local", timeout=120)
    assert f"aigw-local-prices: 0 written, {count} unchanged" in again.stdout, again.stdout + again.stderr
    for kind in ("lambda_function", "dynamodb_table", "cloudwatch_log_subscription_filter"):
        verified(kind)


def test_state_lives_in_the_bucket_and_the_lock_table_was_used(deployment: Deployment) -> None:
    state = state_document(deployment)
    assert state["serial"] >= 1 and len(state["resources"]) > 50
    items = deployment.client("dynamodb").scan(TableName=deployment.table)["Items"]
    assert {"S": f"{deployment.bucket}/{deployment.state_key}-md5"} in [item["LockID"] for item in items]
    verified("s3_backend_state")


def test_second_plan_is_empty(deployment: Deployment) -> None:
    plan = deployment.terraform("plan", "-detailed-exitcode", "-lock-timeout=60s")
    assert plan.returncode == 0, plan.stdout[-4000:] + plan.stderr[-2000:]


def test_a_data_plane_change_is_a_new_bundle_and_revision_rolled_out_in_place(deployment: Deployment) -> None:
    # GIVEN one line of the data plane's Lua changed in the deployed project
    module = deployment.project / "config" / "data-plane" / "lua" / "aigw" / "text.lua"
    original = module.read_text()
    module.write_text(original + "-- a change\n")
    try:
        synth = deployment.run(".venv/bin/python", "main.py")
        assert synth.returncode == 0, synth.stderr[-3000:]
        plan = deployment.terraform("plan", "-out=change.plan", "-lock-timeout=60s")
        assert plan.returncode == 0, plan.stdout[-4000:] + plan.stderr[-2000:]
        shown = processes.run(["terraform", "show", "-json", "change.plan"], cwd=deployment.stack_dir,
                              env=deployment.env, timeout=DEPLOY_TIMEOUT_SECONDS)  # fmt: skip
        assert shown.returncode == 0, shown.stderr[-2000:]
        changes = {
            change["address"]: change["change"]["actions"]
            for change in json.loads(shown.stdout)["resource_changes"]
            if change["change"]["actions"] != ["no-op"]
        }
    finally:
        module.write_text(original)
        restored = deployment.run(".venv/bin/python", "main.py")
        assert restored.returncode == 0, restored.stderr[-3000:]
    # THEN a new bundle object exists before the old one goes, the task definition gets a new
    # revision, the service moves to it in place (its deployment strategy rolls it out), and nothing else changes
    by_type = {address.split(".")[0]: actions for address, actions in changes.items()}
    assert by_type == {
        "aws_s3_object": ["create", "delete"],
        "aws_ecs_task_definition": ["delete", "create"],
        "aws_ecs_service": ["update"],
    }, changes


def test_concurrent_plans_share_the_lock_without_corrupting_state(deployment: Deployment) -> None:
    before = state_document(deployment)
    results: list[subprocess.CompletedProcess[str]] = []
    start = threading.Barrier(2)

    def plan() -> None:
        start.wait()
        results.append(deployment.terraform("plan", "-lock-timeout=0s"))

    threads = [threading.Thread(target=plan) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEPLOY_TIMEOUT_SECONDS)
    outcomes = sorted(r.returncode for r in results)
    lock_errors = [r for r in results if "Error acquiring the state lock" in r.stderr]
    assert outcomes == [0, 1] and len(lock_errors) == 1, [r.stderr[-1500:] for r in results]
    after = state_document(deployment)
    assert after["serial"] == before["serial"] and after["lineage"] == before["lineage"]
    assert (
        deployment.client("dynamodb").scan(TableName=deployment.table)["Count"] == 1
    )  # only the digest; no stale lock


def test_destroy_leaves_nothing_behind(deployment: Deployment) -> None:
    destroyed = deployment.run(str(ROOT / "node_modules" / ".bin" / "cdktf"), "destroy", STACK, "--auto-approve")
    assert destroyed.returncode == 0, (destroyed.stdout + destroyed.stderr)[-6000:]
    ec2 = deployment.client("ec2")
    assert ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.9.0.0/16"]}])["Vpcs"] == []
    assert deployment.client("elbv2").describe_load_balancers()["LoadBalancers"] == []
    ecs = deployment.client("ecs")
    clusters = ecs.describe_clusters(clusters=["aigw-local-cluster"])["clusters"]
    assert all(c["status"] == "INACTIVE" for c in clusters)  # ECS keeps deleted clusters listed as INACTIVE
    assert deployment.client("logs").describe_log_groups(logGroupNamePrefix="/aigw-local/")["logGroups"] == []
    roles = {r["RoleName"] for r in deployment.client("iam").list_roles()["Roles"]}
    assert not {r for r in roles if r.startswith("aigw-local")}
    idp = deployment.client("cognito-idp")
    assert not [p for p in idp.list_user_pools(MaxResults=60)["UserPools"] if p["Name"] == "aigw-local-clients"]
    assert deployment.client("wafv2").list_web_acls(Scope="REGIONAL")["WebACLs"] == []
    buckets = [b["Name"] for b in deployment.client("s3").list_buckets()["Buckets"]]
    assert "aigw-local-data-plane-123456789012-us-east-1" not in buckets
    assert deployment.client("lambda").list_functions()["Functions"] == []
    assert "aigw-local-prices" not in deployment.client("dynamodb").list_tables()["TableNames"]
    assert state_document(deployment)["resources"] == []
