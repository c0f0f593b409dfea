"""Validation of environment files: every bad-input case the foundation issue
names, reported as `<file>: <dotted.field>: <problem>`, all problems at once."""

from __future__ import annotations

import importlib
import itertools
import json
from pathlib import Path

import pytest

from aigw.environments import ConfigError, environment_named, load_environments
from aigw.settings import FARGATE_MEMORY_BY_CPU, EnvironmentSettings
from aigw.versions import admits_older_than, parse_constraint

# Only the required keys: refused as it stands, since JWT auth is off by default
# and the default allowed_cidrs is the whole internet.
REQUIRED_ONLY = """
region = "us-east-1"
[backend]
bucket = "tfstate-bucket"
key = "ai-gateway/test.tfstate"
dynamodb_table = "tfstate-lock"
region = "us-east-1"
"""
NARROW_CIDRS = 'allowed_cidrs = ["203.0.113.0/24"]'
# The smallest valid file. [edge] comes last, so that with_section("edge", ...) extends it.
VALID = f"{REQUIRED_ONLY}[edge]\n{NARROW_CIDRS}\n"


def write_env(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, name: str = "test") -> list[str]:
    """GIVEN one environment file WHEN loaded THEN the problem lines (empty if valid)."""
    write_env(tmp_path, name, text)
    try:
        load_environments(tmp_path)
    except ConfigError as error:
        return error.lines
    return []


def with_section(section: str, body: str) -> str:
    """VALID with ``body`` in ``[section]`` (for [edge]: in place of its allowed_cidrs when it sets them)."""
    if section == "edge":
        edge = body if "allowed_cidrs" in body else f"{NARROW_CIDRS}\n{body}"
        return f"{REQUIRED_ONLY}[edge]\n{edge}\n"
    return f"{VALID}\n[{section}]\n{body}\n"


def test_environment_and_stack_are_named_after_the_file(tmp_path: Path) -> None:
    write_env(tmp_path, "test", VALID)
    (env,) = load_environments(tmp_path)
    assert (env.name, env.stack_name) == ("test", "ai-gateway-test")


def test_without_a_zone_list_the_regions_first_two_zones_are_used(tmp_path: Path) -> None:
    write_env(tmp_path, "test", VALID)
    (env,) = load_environments(tmp_path)
    assert env.settings.availability_zones == ["us-east-1a", "us-east-1b"]


def test_problem_lines_name_file_and_dotted_field(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_section("network", 'vpc_cidr = "10.0.0.0/33"'))
    assert len(lines) == 1
    file_part, field, message = lines[0].split(": ", 2)
    assert file_part.endswith("test.toml")
    assert field == "network.vpc_cidr"
    assert "not a valid IPv4 CIDR" in message


@pytest.mark.parametrize(
    ("cidr", "expected"),
    [
        ("10.0.0.0/33", "not a valid IPv4 CIDR"),
        ("10.0.0.1/16", "not a valid IPv4 CIDR"),  # host bits set
        ("banana", "not a valid IPv4 CIDR"),
        ("10.0.0.0/8", "between /16 and /22"),
        ("10.0.0.0/15", "between /16 and /22"),
        ("10.0.0.0/23", "between /16 and /22"),
        ("10.0.0.0/24", "between /16 and /22"),
    ],
)
def test_invalid_vpc_cidr_is_refused(tmp_path: Path, cidr: str, expected: str) -> None:
    lines = problems(tmp_path, with_section("network", f'vpc_cidr = "{cidr}"'))
    assert any("network.vpc_cidr" in line and expected in line for line in lines), lines


@pytest.mark.parametrize("cidr", ["10.0.0.0/16", "10.0.0.0/22"])
def test_vpc_cidr_of_16_to_22_loads(tmp_path: Path, cidr: str) -> None:
    # Each of up to 12 subnets takes 1/16 of the VPC: /22 leaves /26 subnets, the smallest worth having.
    assert problems(tmp_path, with_section("network", f'vpc_cidr = "{cidr}"')) == []


def in_region(region: str, network: str = "") -> str:
    """A valid file in ``region`` (stack and backend), with an optional [network] body."""
    text = VALID.replace('region = "us-east-1"', f'region = "{region}"')
    return f"{text}\n[network]\n{network}\n" if network else text


@pytest.mark.parametrize("region", ["ap-northeast-2", "us-west-1", "eu-south-1", "me-central-1"])
def test_region_without_default_zones_and_without_a_zone_list_is_refused(tmp_path: Path, region: str) -> None:
    lines = problems(tmp_path, in_region(region))
    assert lines == [
        f"{tmp_path / 'test.toml'}: network.availability_zones: required in {region}, which has no default zones "
        f'here; list 2 to 6 zones this account has, e.g. availability_zones = ["{region}a", "{region}b"] '
        f"(see `aws ec2 describe-availability-zones --region {region}`)"
    ]


@pytest.mark.parametrize("region", ["ap-northeast-2", "us-west-1", "eu-south-1", "me-central-1"])
def test_region_without_default_zones_loads_with_its_zones_listed(tmp_path: Path, region: str) -> None:
    write_env(tmp_path, "test", in_region(region, f'availability_zones = ["{region}a", "{region}c"]'))
    (env,) = load_environments(tmp_path)
    assert env.settings.availability_zones == [f"{region}a", f"{region}c"]


def test_listed_zones_replace_the_default_zones(tmp_path: Path) -> None:
    write_env(
        tmp_path, "test", in_region("us-east-1", 'availability_zones = ["us-east-1d", "us-east-1f", "us-east-1a"]')
    )
    (env,) = load_environments(tmp_path)
    assert env.settings.availability_zones == ["us-east-1d", "us-east-1f", "us-east-1a"]


@pytest.mark.parametrize("zones", ['["us-east-1a"]', '["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", '
                                   '"us-east-1e", "us-east-1f", "us-east-1g"]'])  # fmt: skip
def test_fewer_than_2_or_more_than_6_zones_are_refused(tmp_path: Path, zones: str) -> None:
    lines = problems(tmp_path, in_region("us-east-1", f"availability_zones = {zones}"))
    assert any("network.availability_zones" in line and "allowed: 2 to 6" in line for line in lines), lines


def test_a_zone_listed_twice_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, in_region("us-east-1", 'availability_zones = ["us-east-1a", "us-east-1a"]'))
    assert any("network.availability_zones" in line and "'us-east-1a' more than once" in line for line in lines)


@pytest.mark.parametrize("zone", ["us-east-2a", "use1-az1", "us-east-1-bos-1a", "us-east-1", "us-east-1A"])
def test_zone_that_is_not_a_zone_name_of_the_region_is_refused(tmp_path: Path, zone: str) -> None:
    lines = problems(tmp_path, in_region("us-east-1", f'availability_zones = ["us-east-1a", "{zone}"]'))
    assert lines == [
        f"{tmp_path / 'test.toml'}: network.availability_zones[1]: {zone!r} is not a zone name of us-east-1: the "
        "region followed by one letter, e.g. us-east-1a (zone IDs and Local Zones are not accepted)"
    ]


def test_removed_num_az_is_refused_pointing_at_availability_zones(tmp_path: Path) -> None:
    lines = problems(tmp_path, in_region("us-east-1", "num_az = 3"))
    assert any(
        "network.num_az: removed; list the zones instead, e.g. availability_zones = " in line for line in lines
    ), lines


@pytest.mark.parametrize("region", ["mars-north-1", "us-east", "US-EAST-1", "useast1", "us-east-1a", ""])
def test_region_not_named_like_an_aws_region_is_refused(tmp_path: Path, region: str) -> None:
    lines = problems(tmp_path, VALID.replace('region = "us-east-1"\n[backend]', f'region = "{region}"\n[backend]', 1))
    assert f"{tmp_path / 'test.toml'}: region: {region!r} is not an AWS region name (like us-east-1 or " in lines[0]


def _sdk_regions() -> dict[str, list[str]]:
    """Regions by partition, from the AWS SDK's own endpoint data (botocore, installed with boto3)."""
    import botocore

    data = json.loads((Path(botocore.__file__).parent / "data" / "endpoints.json").read_text())
    return {partition["partition"]: sorted(partition["regions"]) for partition in data["partitions"]}


SDK_REGIONS = _sdk_regions()


@pytest.mark.parametrize("region", SDK_REGIONS["aws"])
def test_every_region_of_the_aws_partition_is_accepted(tmp_path: Path, region: str) -> None:
    assert problems(tmp_path, in_region(region, f'availability_zones = ["{region}a", "{region}b"]')) == []


@pytest.mark.parametrize(
    ("partition", "region"),
    [(partition, region) for partition, regions in SDK_REGIONS.items() if partition != "aws" for region in regions],
)
def test_regions_of_other_partitions_are_refused_naming_the_partition(
    tmp_path: Path, partition: str, region: str
) -> None:
    lines = problems(tmp_path, in_region(region, f'availability_zones = ["{region}a", "{region}b"]'))
    fields = [line.split(": ")[1] for line in lines]
    assert fields == ["region", "backend.region"], lines
    assert all(f"{region!r} is a region of the {partition} partition; this project deploys only to the aws" in line
               for line in lines)  # fmt: skip


def test_other_partitions_are_refused_because_the_stack_is_written_for_aws(tmp_path: Path) -> None:
    (line, _) = problems(tmp_path, in_region("cn-north-1", 'availability_zones = ["cn-north-1a", "cn-north-1b"]'))
    assert line.endswith(
        "region: 'cn-north-1' is a region of the aws-cn partition; this project deploys only to the aws partition "
        "(its service endpoint names, service principals, Cognito hosted domain and ALB JWT validation differ or "
        "are missing in aws-cn)"
    )


def test_certificate_of_another_partition_is_refused(tmp_path: Path) -> None:
    cert = 'certificate_arn = "arn:aws-us-gov:acm:us-east-1:123456789012:certificate/abc"'
    lines = problems(tmp_path, with_section("edge", cert))
    assert any("edge.certificate_arn" in line and "is not an ACM certificate ARN (arn:aws:acm:" in line
               for line in lines), lines  # fmt: skip


@pytest.mark.parametrize(
    ("cpu", "memory"),
    [(256, 4096), (512, 512), (512, 5120), (1024, 1024), (1024, 9216), (2048, 2048), (4096, 31744), (8192, 8192),
     (8192, 18432), (16384, 16384), (16384, 36864)],
)  # fmt: skip
def test_fargate_rejected_cpu_memory_pairs_are_refused(tmp_path: Path, cpu: int, memory: int) -> None:
    lines = problems(tmp_path, with_section("gateway", f"cpu = {cpu}\nmemory = {memory}\ndesired_count = 1"))
    assert any("gateway.memory" in line and f"cpu = {cpu}" in line for line in lines), lines


@pytest.mark.parametrize(
    ("cpu", "memory"),
    [(256, 512), (256, 2048), (512, 1024), (512, 4096), (1024, 2048), (1024, 8192), (2048, 16384), (4096, 30720),
     (8192, 16384), (8192, 61440), (16384, 32768), (16384, 122880)],
)  # fmt: skip
def test_fargate_accepted_cpu_memory_pairs_load(tmp_path: Path, cpu: int, memory: int) -> None:
    assert problems(tmp_path, with_section("gateway", f"cpu = {cpu}\nmemory = {memory}")) == []


def test_fargate_table_matches_the_aws_documentation_bounds() -> None:
    # Bounds and step sizes from the ECS task-size table, written out independently.
    documented = {256: (512, 2048, None), 512: (1024, 4096, 1024), 1024: (2048, 8192, 1024),
                  2048: (4096, 16384, 1024), 4096: (8192, 30720, 1024), 8192: (16384, 61440, 4096),
                  16384: (32768, 122880, 8192)}  # fmt: skip
    for cpu, (low, high, step) in documented.items():
        sizes = FARGATE_MEMORY_BY_CPU[cpu]
        assert (sizes[0], sizes[-1]) == (low, high)
        if step:
            assert all(b - a == step for a, b in itertools.pairwise(sizes))


def test_cpu_not_a_fargate_size_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_section("gateway", "cpu = 300"))
    assert any("gateway.cpu" in line and "256, 512, 1024" in line for line in lines), lines


@pytest.mark.parametrize(
    ("min_capacity", "desired", "max_capacity"),
    [(2, 1, 3), (1, 4, 3)],
)
def test_desired_count_outside_min_max_is_refused(
    tmp_path: Path, min_capacity: int, desired: int, max_capacity: int
) -> None:
    body = f"min_capacity = {min_capacity}\ndesired_count = {desired}\nmax_capacity = {max_capacity}"
    lines = problems(tmp_path, with_section("gateway", body))
    assert any("gateway.desired_count" in line and "between min_capacity" in line for line in lines), lines


def test_jwt_auth_without_certificate_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_section("edge", "enable_jwt_auth = true"))
    assert any("edge.enable_jwt_auth" in line and "certificate_arn" in line for line in lines), lines


CERT = 'certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/abc-123"'


@pytest.mark.parametrize("constraint", ["~> 6.0", ">= 5.100", "~> 5.100", "> 6.21", "6.21.0", "< 7.0", "~> 6.21.0"])
def test_jwt_auth_with_provider_constraint_admitting_pre_6_22_is_refused(tmp_path: Path, constraint: str) -> None:
    text = f'aws_provider_version = "{constraint}"\n' + with_section("edge", f"{CERT}\nenable_jwt_auth = true")
    lines = problems(tmp_path, text)
    assert any(line.split(": ")[1] == "aws_provider_version" and "older than 6.22" in line for line in lines), lines


@pytest.mark.parametrize("constraint", ["~> 6.22", ">= 6.22", ">= 6.25, < 7.0", "6.25.0", "~> 6.22.1"])
def test_jwt_auth_with_provider_constraint_from_6_22_loads(tmp_path: Path, constraint: str) -> None:
    text = f'aws_provider_version = "{constraint}"\n' + with_section("edge", f"{CERT}\nenable_jwt_auth = true")
    assert problems(tmp_path, text) == []


def test_older_provider_constraint_is_fine_without_jwt(tmp_path: Path) -> None:
    assert problems(tmp_path, f'aws_provider_version = "~> 5.100"\n{VALID}') == []


def test_malformed_provider_constraint_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, f'aws_provider_version = "latest please"\n{VALID}')
    assert any("aws_provider_version" in line and "not a version constraint" in line for line in lines), lines


@pytest.mark.parametrize("field", ["bucket", "key", "dynamodb_table", "region"])
def test_empty_backend_fields_are_refused(tmp_path: Path, field: str) -> None:
    backend = {"bucket": "tfstate-bucket", "key": "k.tfstate", "dynamodb_table": "tfstate-lock", "region": "us-east-1"}
    backend[field] = ""
    body = "\n".join(f'{key} = "{value}"' for key, value in backend.items())
    lines = problems(tmp_path, f'region = "us-east-1"\n[backend]\n{body}\n')
    assert any(f": backend.{field}: " in line for line in lines), lines


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (VALID.replace('bucket = "tfstate-bucket"', 'bucket = "Tfstate_Bucket"'), "backend.bucket: 'Tfstate_Bucket' is "
         "not a valid S3 bucket name (3-63 characters: lowercase letters, digits, dots, hyphens)"),
        (VALID.replace('dynamodb_table = "tfstate-lock"', 'dynamodb_table = "lk"'), "backend.dynamodb_table: 'lk' is "
         "not a valid DynamoDB table name (3-255 characters: letters, digits, '_', '-', '.')"),
        (VALID.replace('key = "ai-gateway/test.tfstate"', 'key = "/test.tfstate"'), "backend.key: must be a non-empty "
         "object key that does not start with '/'"),
        (with_section("gateway", "min_capacity = 0\ndesired_count = 1"), "gateway.min_capacity: 0 is out of range; "
         "allowed: 1 or more"),
        (with_section("gateway", "max_capacity = 101"), "gateway.max_capacity: 101 is out of range; allowed: 1 to 100"),
        (with_section("observability", 'alarm_email = "oncall"'), "observability.alarm_email: 'oncall' is not an "
         "e-mail address"),
        (f'aws_provider_version = ""\n{VALID}', 'aws_provider_version: must not be empty; example: "~> 6.22"'),
    ],
    ids=["bucket", "lock-table", "state-key", "min-capacity", "max-capacity", "alarm-email", "provider-version"],
)  # fmt: skip
def test_a_bad_value_is_refused_naming_the_field_and_the_rule(tmp_path: Path, text: str, line: str) -> None:
    assert problems(tmp_path, text) == [f"{tmp_path / 'test.toml'}: {line}"]


def test_missing_backend_table_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, 'region = "us-east-1"\n')
    assert any(line.split(": ")[1] == "backend" and "required key is missing" in line for line in lines), lines


@pytest.mark.parametrize("name", ["Dev", "prod_eu", "dev.1", "1dev", "a-very-long-environment-name"])
def test_environment_names_not_lowercase_dash_are_refused(tmp_path: Path, name: str) -> None:
    lines = problems(tmp_path, VALID, name=name)
    assert any("(file name)" in line and "lowercase" in line for line in lines), lines


@pytest.mark.parametrize(
    ("section", "key", "suggestion"),
    [("network", "single_nat_gatway", "single_nat_gateway"), ("gateway", "desired_cout", "desired_count"),
     ("edge", "enable_jwt", "enable_jwt_auth"), ("", "aws_provider_versoin", "aws_provider_version")],
)  # fmt: skip
def test_misspelled_keys_are_refused_with_a_suggestion(tmp_path: Path, section: str, key: str, suggestion: str) -> None:
    text = f"{key} = 1\n{VALID}" if not section else with_section(section, f"{key} = true")
    lines = problems(tmp_path, text)
    field = f"{section}.{key}" if section else key
    assert any(f": {field}: unknown key; did you mean '{suggestion}'?" in line for line in lines), lines


def test_wrong_types_are_refused_not_coerced(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_section("edge", 'enable_waf = "yes"'))
    assert any("edge.enable_waf" in line and "valid boolean" in line for line in lines), lines


def test_the_guardrails_switch_is_refused_naming_the_table_that_replaced_it(tmp_path: Path) -> None:
    # [features] has no switch left: each feature it gated has a table of its own.
    assert EnvironmentSettings.model_fields["features"].annotation.model_fields == {}  # type: ignore[union-attr]
    lines = problems(tmp_path, with_section("features", "enable_guardrails = true"))
    assert [line[line.index("test.toml: ") :] for line in lines] == [
        "test.toml: features.enable_guardrails: replaced by [guardrails] enabled = true (with its own settings; see "
        "the configuration reference)"
    ]


def test_certificate_in_another_region_is_refused(tmp_path: Path) -> None:
    cert = 'certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"'
    lines = problems(tmp_path, with_section("edge", cert))
    assert any("edge.certificate_arn" in line and "eu-west-1" in line for line in lines), lines


def test_latest_image_tag_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_section("gateway", 'image = "portkeyai/gateway:latest"'))
    assert any("gateway.image" in line and "latest" in line for line in lines), lines


@pytest.mark.parametrize("field", ["image", "data_plane_image", "collector_image"])
@pytest.mark.parametrize("image", ["portkeyai/gateway", "portkeyai/gateway:", "portkeyai/gateway@sha256:abc",
                                   "portkeyai/gateway@sha256:"])  # fmt: skip
def test_image_without_a_tag_or_digest_is_refused(tmp_path: Path, field: str, image: str) -> None:
    lines = problems(tmp_path, with_section("gateway", f'{field} = "{image}"'))
    assert lines == [
        f"{tmp_path / 'test.toml'}: gateway.{field}: {image!r} must be an image reference pinned by a tag or an "
        "@sha256 digest"
    ]


@pytest.mark.parametrize("image", ["portkeyai/gateway:1.15.2", f"portkeyai/gateway@sha256:{'0' * 64}",
                                   "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"])  # fmt: skip
def test_image_pinned_by_a_tag_or_digest_loads(tmp_path: Path, image: str) -> None:
    assert problems(tmp_path, with_section("gateway", f'image = "{image}"')) == []


def test_log_retention_must_be_a_cloudwatch_value(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_section("observability", "log_retention_days = 100"))
    assert any("observability.log_retention_days" in line and "allowed: 1, 3" in line for line in lines), lines


def test_allowed_cidrs_are_each_validated(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_section("edge", 'allowed_cidrs = ["10.0.0.0/8", "300.1.1.1/32"]'))
    assert any("edge.allowed_cidrs" in line and "300.1.1.1/32" in line for line in lines), lines


def test_jwt_off_with_the_default_world_open_cidr_is_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, REQUIRED_ONLY)
    assert lines == [
        f"{tmp_path / 'test.toml'}: edge.allowed_cidrs: 0.0.0.0/0 (the default) lets anyone on the internet reach "
        "the gateway while edge.enable_jwt_auth is off, so anyone could use it. Narrow this to your clients' "
        "ranges (public ranges of /16 or narrower), turn on edge.enable_jwt_auth, or accept it with "
        "edge.allow_unauthenticated_public_access = true"
    ]


@pytest.mark.parametrize(
    ("cidrs", "named"),
    [('["0.0.0.0/0"]', "0.0.0.0/0"), ('["0.0.0.0/1", "128.0.0.0/1"]', "0.0.0.0/1, 128.0.0.0/1"),
     ('["203.0.113.0/24", "52.0.0.0/8"]', "52.0.0.0/8"), ('["3.0.0.0/15"]', "3.0.0.0/15")],
)  # fmt: skip
def test_jwt_off_with_a_public_range_broader_than_16_is_refused(tmp_path: Path, cidrs: str, named: str) -> None:
    lines = problems(tmp_path, with_section("edge", f"allowed_cidrs = {cidrs}"))
    assert [line.split(": ", 2)[1:] for line in lines] == [
        ["edge.allowed_cidrs", f"{named} lets anyone on the internet reach the gateway while edge.enable_jwt_auth "
         "is off, so anyone could use it. Narrow this to your clients' ranges (public ranges of /16 or narrower), "
         "turn on edge.enable_jwt_auth, or accept it with edge.allow_unauthenticated_public_access = true"]
    ]  # fmt: skip


@pytest.mark.parametrize("cidrs", ['["52.94.0.0/16"]', '["198.51.100.7/32", "203.0.113.0/24"]', '["10.0.0.0/8"]',
                                   '["172.16.0.0/12", "192.168.0.0/16"]'])  # fmt: skip
def test_jwt_off_with_ranges_of_16_or_narrower_or_private_loads(tmp_path: Path, cidrs: str) -> None:
    assert problems(tmp_path, with_section("edge", f"allowed_cidrs = {cidrs}")) == []


def test_jwt_off_open_to_the_internet_loads_when_accepted_by_name(tmp_path: Path) -> None:
    text = with_section("edge", 'allowed_cidrs = ["0.0.0.0/0"]\nallow_unauthenticated_public_access = true')
    assert problems(tmp_path, text) == []


def test_jwt_auth_on_with_the_default_world_open_cidr_loads(tmp_path: Path) -> None:
    assert problems(tmp_path, REQUIRED_ONLY + f"[edge]\n{CERT}\nenable_jwt_auth = true\n") == []


@pytest.mark.parametrize(
    ("edge", "reason"),
    [('allowed_cidrs = ["203.0.113.0/24"]', "no allowed_cidrs entry is world-open"),
     (f"{CERT}\nenable_jwt_auth = true", "edge.enable_jwt_auth is on")],
)  # fmt: skip
def test_accepting_public_access_where_there_is_none_is_refused(tmp_path: Path, edge: str, reason: str) -> None:
    text = REQUIRED_ONLY + f"[edge]\n{edge}\nallow_unauthenticated_public_access = true\n"
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'test.toml'}: edge.allow_unauthenticated_public_access: there is nothing to accept ({reason}); "
        "remove this key"
    ]


def test_toml_syntax_error_is_reported_against_the_file(tmp_path: Path) -> None:
    lines = problems(tmp_path, "region = \n")
    assert len(lines) == 1 and "(syntax)" in lines[0] and "not valid TOML" in lines[0]


def own_state(text: str, name: str) -> str:
    """The file with its own backend key, as every environment beside another needs."""
    return text.replace("ai-gateway/test.tfstate", f"ai-gateway/{name}.tfstate")


def test_all_problems_of_all_files_are_reported_in_one_run(tmp_path: Path) -> None:
    alpha = with_section("network", 'availability_zones = ["us-east-1a"]') + "\n[gateway]\nmemory = 3\n"
    write_env(tmp_path, "alpha", own_state(alpha, "alpha"))
    beta = with_section("edge", "enable_jwt_auth = true") + "\n[features]\nenable_guardrails = true\n"
    write_env(tmp_path, "beta", own_state(beta, "beta"))
    write_env(tmp_path, "good", VALID)
    with pytest.raises(ConfigError) as raised:
        load_environments(tmp_path)
    lines = raised.value.lines
    assert any(line.startswith(str(tmp_path / "alpha.toml")) and "network.availability_zones" in line for line in lines)
    assert any("alpha.toml" in line and "gateway.memory" in line for line in lines)
    assert any("beta.toml" in line and "edge.enable_jwt_auth" in line for line in lines)
    assert any("beta.toml" in line and "features.enable_guardrails" in line for line in lines)
    assert not any("good.toml" in line for line in lines)


def test_cross_field_rules_still_run_when_another_table_has_a_type_error(tmp_path: Path) -> None:
    text = with_section("edge", "enable_jwt_auth = true") + '\n[gateway]\ncpu = "512"\n'
    lines = problems(tmp_path, text)
    assert any("gateway.cpu" in line for line in lines)
    assert any("edge.enable_jwt_auth" in line and "certificate_arn" in line for line in lines), lines


def test_two_environments_on_one_state_object_are_refused_naming_both_files(tmp_path: Path) -> None:
    write_env(tmp_path, "dev", VALID)
    write_env(tmp_path, "qa", VALID)  # copied without editing [backend]
    with pytest.raises(ConfigError) as raised:
        load_environments(tmp_path)
    assert raised.value.lines == [
        f"{tmp_path / 'qa.toml'}: backend.key: bucket 'tfstate-bucket' with key 'ai-gateway/test.tfstate' is "
        f"already the state of {tmp_path / 'dev.toml'}; two environments on one state object overwrite each "
        "other's state on deploy. Give this environment its own backend.key (sharing the bucket or the lock "
        "table is fine)"
    ]


def test_environments_sharing_bucket_and_lock_table_with_their_own_keys_load(tmp_path: Path) -> None:
    write_env(tmp_path, "dev", VALID)
    write_env(tmp_path, "qa", own_state(VALID, "qa"))
    assert [env.name for env in load_environments(tmp_path)] == ["dev", "qa"]


def test_shared_state_object_is_reported_with_the_files_other_problems(tmp_path: Path) -> None:
    write_env(tmp_path, "dev", VALID)
    write_env(tmp_path, "qa", with_section("network", 'vpc_cidr = "banana"'))
    with pytest.raises(ConfigError) as raised:
        load_environments(tmp_path)
    fields = [line.split(": ")[1] for line in raised.value.lines]
    assert fields == ["network.vpc_cidr", "backend.key"]


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no \*\.toml environment files"):
        load_environments(tmp_path)


def test_environment_directory_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_environments(tmp_path / "missing")
    assert raised.value.lines == [f"{tmp_path / 'missing'}: AIGW_ENV_DIR: not a directory of environment files"]


def test_file_that_is_not_utf8_is_reported_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "test.toml").write_bytes(b'region = "us-east-1\xff"\n')
    with pytest.raises(ConfigError) as raised:
        load_environments(tmp_path)
    (line,) = raised.value.lines
    assert line.startswith(f"{tmp_path / 'test.toml'}: (file): cannot be read: ")


@pytest.mark.parametrize(
    ("constraint", "older"),
    [("~> 6.22", False), ("~> 6.0", True), (">= 6.22.0", False), ("> 6.21.9", True), ("!= 6.21.0, >= 6.21", True),
     ("= 6.22.0", False), ("< 6.22", True), (">= 6.25, < 6.30", False), ("~> 6", True), ("~> 7.0", False)],
)  # fmt: skip
def test_constraint_admits_older_than_6_22(constraint: str, older: bool) -> None:
    assert admits_older_than(parse_constraint(constraint), (6, 22, 0)) is older


def test_provider_keys_set_without_jwt_auth_are_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, with_section("gateway", 'provider_keys = ["openai"]'))
    assert any("gateway.provider_keys" in line and "enable_jwt_auth" in line for line in lines), lines


def test_provider_keys_with_jwt_auth_load(tmp_path: Path) -> None:
    text = with_section("edge", f"{CERT}\nenable_jwt_auth = true") + '\n[gateway]\nprovider_keys = ["openai"]\n'
    assert problems(tmp_path, text) == []


@pytest.mark.parametrize(
    ("value", "expected"), [('["openai", "openai"]', "twice"), ('["mistral"]', "'openai', 'anthropic'")]
)
def test_provider_keys_must_be_known_and_unique(tmp_path: Path, value: str, expected: str) -> None:
    text = with_section("edge", f"{CERT}\nenable_jwt_auth = true") + f"\n[gateway]\nprovider_keys = {value}\n"
    lines = problems(tmp_path, text)
    assert any("gateway.provider_keys" in line and expected in line for line in lines), lines


@pytest.mark.parametrize("endpoint", ["127.0.0.1:4566", "http://127.0.0.1:4566/path", "ftp://x:1", "http://"])
def test_emulator_endpoint_must_be_a_base_url(tmp_path: Path, endpoint: str) -> None:
    lines = problems(tmp_path, with_section("emulator", f'endpoint = "{endpoint}"'))
    assert any("emulator.endpoint" in line and "base URL" in line for line in lines), lines


def test_emulator_endpoint_loads(tmp_path: Path) -> None:
    write_env(tmp_path, "test", with_section("emulator", 'endpoint = "http://127.0.0.1:4566"'))
    (env,) = load_environments(tmp_path)
    assert env.settings.emulator.endpoint == "http://127.0.0.1:4566"


def test_an_unknown_environment_name_lists_the_known_ones() -> None:
    # The commands that take an environment name (state bootstrap, emulator, token, local task) share this.
    assert environment_named("prod").name == "prod"
    with pytest.raises(ConfigError) as raised:
        environment_named("prdo")
    (line,) = raised.value.lines
    assert line.startswith("unknown environment 'prdo'; known: ") and "dev, " in line and "prod" in line


@pytest.mark.parametrize("command", ["emulator", "hybrid_secrets", "prices", "state_bootstrap", "token"])
def test_a_command_given_an_unknown_environment_prints_why_and_exits_2(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main = importlib.import_module(f"tools.{command}").main
    argv = ["start", "prdo"] if command == "emulator" else ["prdo"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("unknown environment 'prdo'; known: ")
