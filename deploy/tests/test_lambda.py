"""deploy/lambda.sh against moto: deploy, deploy again in place, destroy, the plan, bad input.
The package is a stand-in zip: tests never build the handler."""

import json
import secrets

import pytest

from support import ACCOUNT, REGION, bootstrap_zip

CLUSTER = "t4"
FUNCTION = "crucial-threads"
ROLE = f"{FUNCTION}-{REGION}"
DSO = "10.0.1.5:11222,10.0.2.5:11222,10.0.3.5:11222"
MANAGED = "arn:aws:iam::aws:policy/service-role/"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def network(aws):
    """Two default subnets and a security group for the functions."""
    ec2 = aws("ec2")
    subnets = [subnet["SubnetId"] for subnet in ec2.describe_subnets()["Subnets"][:2]]
    group = ec2.create_security_group(GroupName="lambda-functions", Description="Lambda")["GroupId"]
    return subnets, group


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    work = tmp_path_factory.mktemp("lambda")
    return bootstrap_zip(work / "one.zip", b"first"), bootstrap_zip(work / "two.zip", b"second")


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory):
    """A stand-in for the cluster's CA certificate (only its PEM framing is checked)."""
    path = tmp_path_factory.mktemp("ca") / "ca.crt"
    path.write_text(CA_PEM)
    return path


@pytest.fixture(scope="module")
def token(aws):
    """A real token for the cluster, where deploy/ec2.sh up puts it: were lambda.sh to read
    it into the function, the tests would see it there."""
    value = secrets.token_hex(24)
    aws("ssm").put_parameter(Name=f"/crucial/{CLUSTER}/token", Value=value, Type="SecureString",
                             Tags=[{"Key": "crucial:cluster", "Value": CLUSTER}])
    return value


def attached_policies(aws):
    return {item["PolicyArn"] for item in aws("iam").list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"]}


class TestFunctionLifecycle:
    """One function through its life; the tests run in this order."""

    def test_deploy_creates_the_function(self, aws, network, packages, ca_file, run_script, token):
        subnets, group = network
        result = run_script(
            "lambda.sh", "deploy", "--cluster", CLUSTER, "--zip", str(packages[0]), "--dso", DSO,
            "--arch", "arm64", "--subnets", ",".join(subnets), "--security-groups", group, "--ca", str(ca_file),
        )
        assert result.returncode == 0, result.stderr
        configuration = aws("lambda").get_function_configuration(FunctionName=FUNCTION)
        assert configuration["Runtime"] == "provided.al2023"
        assert configuration["Handler"] == "bootstrap"
        assert configuration["Architectures"] == ["arm64"]
        assert configuration["MemorySize"] == 1769
        assert configuration["Timeout"] == 900
        assert configuration["Role"] == f"arn:aws:iam::{ACCOUNT}:role/crucial/{ROLE}"
        assert sorted(configuration["VpcConfig"]["SubnetIds"]) == sorted(subnets)
        assert configuration["VpcConfig"]["SecurityGroupIds"] == [group]
        assert configuration["Environment"]["Variables"] == {
            "CRUCIAL_DSO": DSO,
            "CRUCIAL_DSO_TLS_CA": CA_PEM.rstrip("\n"),
        }
        tags = aws("lambda").list_tags(Resource=configuration["FunctionArn"])["Tags"]
        assert tags == {"crucial:cluster": CLUSTER}
        assert f"function: {configuration['FunctionArn']}" in result.stdout
        assert f"region: {REGION}" in result.stdout
        assert f"/crucial/{CLUSTER}/token" in result.stdout
        assert token not in result.stdout + result.stderr
        # Event invocations: kept an hour at most, never rerun by Lambda (the executor retries).
        events = aws("lambda").get_function_event_invoke_config(FunctionName=FUNCTION)
        assert (events["MaximumEventAgeInSeconds"], events["MaximumRetryAttempts"]) == (3600, 0)

    def test_the_role_trusts_lambda_with_logs_and_vpc_access(self, aws, network):
        role = aws("iam").get_role(RoleName=ROLE)["Role"]
        principals = [statement["Principal"] for statement in role["AssumeRolePolicyDocument"]["Statement"]]
        assert principals == [{"Service": "lambda.amazonaws.com"}]
        assert {"Key": "crucial:cluster", "Value": CLUSTER} in aws("iam").list_role_tags(RoleName=ROLE)["Tags"]
        assert attached_policies(aws) == {
            MANAGED + "AWSLambdaBasicExecutionRole",
            MANAGED + "AWSLambdaVPCAccessExecutionRole",
        }

    def test_a_second_deploy_updates_in_place(self, aws, packages, run_script):
        before = aws("lambda").get_function_configuration(FunctionName=FUNCTION)
        # A new package, more memory, and no VPC this time.
        result = run_script(
            "lambda.sh", "deploy", "--cluster", CLUSTER, "--zip", str(packages[1]), "--dso", "10.0.9.9:11222",
            "--memory", "3008", "--timeout", "600", "--event-max-age", "600", "--event-retries", "1",
        )
        assert result.returncode == 0, result.stderr
        after = aws("lambda").get_function_configuration(FunctionName=FUNCTION)
        assert after["FunctionArn"] == before["FunctionArn"]
        assert after["CodeSha256"] != before["CodeSha256"]
        assert (after["MemorySize"], after["Timeout"]) == (3008, 600)
        # The event settings are put again, but moto keeps the first ones it was given (AWS's put
        # replaces them): what it answers cannot show the new values.
        assert after["Environment"]["Variables"] == {"CRUCIAL_DSO": "10.0.9.9:11222"}
        assert not after["VpcConfig"]["SubnetIds"] and not after["VpcConfig"]["SecurityGroupIds"]
        assert attached_policies(aws) == {MANAGED + "AWSLambdaBasicExecutionRole"}
        functions = aws("lambda").list_functions()["Functions"]
        assert [function["FunctionName"] for function in functions] == [FUNCTION]

    def test_the_token_is_never_in_the_function(self, aws, token):
        function = aws("lambda").get_function(FunctionName=FUNCTION)
        assert token not in json.dumps(function, default=str)
        configuration = function["Configuration"]
        assert "CRUCIAL_DSO_TOKEN" not in configuration["Environment"]["Variables"]
        assert "token" not in str(configuration["Environment"]).lower()

    def test_destroy_removes_function_and_role(self, aws, run_script):
        logs = aws("logs")
        logs.create_log_group(logGroupName=f"/aws/lambda/{FUNCTION}")  # as the first invocation would
        result = run_script("lambda.sh", "destroy", "--cluster", CLUSTER)
        assert result.returncode == 0, result.stderr
        assert aws("lambda").list_functions()["Functions"] == []
        assert aws("iam").list_roles(PathPrefix="/crucial/")["Roles"] == []
        assert logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"] == []

    def test_a_second_destroy_is_harmless(self, aws, run_script):
        result = run_script("lambda.sh", "destroy", "--cluster", CLUSTER)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("tags", [{}, {"crucial:cluster": "another"}], ids=["untagged", "another-cluster"])
def test_a_function_it_did_not_make_is_left_alone(aws, packages, run_script, tags):
    """A function of the same name made by hand (or for another cluster): deploy neither
    updates it nor makes a role for it, and destroy does not delete it."""
    name = "crucial-foreign"
    iam = aws("iam")
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="someone-elses", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    functions = aws("lambda")
    functions.create_function(FunctionName=name, Runtime="provided.al2023", Role=role, Handler="bootstrap",
                              Code={"ZipFile": packages[0].read_bytes()}, Tags=tags)

    def unchanged():
        now = functions.get_function_configuration(FunctionName=name)
        return {key: now[key] for key in ("CodeSha256", "LastModified", "Role")} == {
            key: before[key] for key in ("CodeSha256", "LastModified", "Role")}

    before = functions.get_function_configuration(FunctionName=name)
    try:
        deploy = run_script("lambda.sh", "deploy", "--cluster", CLUSTER, "--function-name", name,
                            "--zip", str(packages[1]), "--dso", DSO)
        assert deploy.returncode == 1
        assert f"function {name} exists but is not tagged crucial:cluster={CLUSTER}" in deploy.stderr
        assert unchanged()
        assert [item["RoleName"] for item in iam.list_roles()["Roles"]] == ["someone-elses"]
        destroy = run_script("lambda.sh", "destroy", "--cluster", CLUSTER, "--function-name", name)
        assert destroy.returncode == 1
        assert f"function {name} exists but is not tagged crucial:cluster={CLUSTER}" in destroy.stderr
        assert unchanged()
    finally:
        functions.delete_function(FunctionName=name)
        iam.delete_role(RoleName="someone-elses")


def test_a_failed_lookup_is_not_taken_for_absent(aws_env, run_script, tmp_path):
    """Only "no such function" means absent: access denied (or no credentials) stops the
    script before it deletes or creates anything."""
    stub = tmp_path / "aws"
    stub.write_text('#!/bin/sh\necho "aws $*" >> "$0.calls"\n'
                    'echo "An error occurred (AccessDeniedException) when calling the GetFunction operation: denied" >&2\n'
                    "exit 254\n")
    stub.chmod(0o755)
    env = dict(aws_env, PATH=f"{tmp_path}:{aws_env['PATH']}")
    for command in ("deploy", "destroy"):
        result = run_script("lambda.sh", command, "--cluster", CLUSTER, "--dso", DSO, "--zip", __file__, env=env)
        assert result.returncode == 1, result.stderr
        assert "AccessDeniedException" in result.stderr and "aws lambda get-function failed" in result.stderr
    calls = (tmp_path / "aws.calls").read_text().splitlines()
    assert [call.split()[1:3] for call in calls] == [["lambda", "get-function"]] * 2


def test_plan_prints_the_calls_and_makes_none(no_aws_env, run_script):
    env, calls = no_aws_env
    result = run_script(
        "lambda.sh", "deploy", "--cluster", CLUSTER, "--subnets", "subnet-0abc", "--security-groups", "sg-0123",
        "--arch", "x86_64", "--plan", env=env,
    )
    assert result.returncode == 0, result.stderr
    assert not calls.exists(), "the plan called aws"
    lines = result.stdout.splitlines()
    assert all(line.startswith(("aws ", "# ")) for line in lines)
    assert any("cargo lambda build" in line and "--x86-64" in line for line in lines)
    # Without --dso, the members come from the cluster's status (planned too).
    assert any(line.startswith("aws ec2 describe-instances ") for line in lines)
    create = next(line for line in lines if line.startswith("aws lambda create-function "))
    for part in ["--runtime provided.al2023", "--architectures x86_64", "--handler bootstrap",
                 "--memory-size 1769", "--timeout 900", '"SubnetIds":["subnet-0abc"]', "<crucial-dso>"]:
        assert part in create, part
    events = next(line for line in lines if line.startswith("aws lambda put-function-event-invoke-config "))
    assert "--maximum-event-age-in-seconds 3600 --maximum-retry-attempts 0" in events
    destroy = run_script("lambda.sh", "destroy", "--plan", env=env)
    assert destroy.returncode == 0, destroy.stderr
    assert "aws lambda delete-function --function-name crucial-threads" in destroy.stdout
    assert "aws iam delete-role --role-name crucial-threads-us-east-1" in destroy.stdout
    assert not calls.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "a command is needed"),
        (["update"], "unknown command 'update'"),
        (["deploy", "--bogus"], "unknown option '--bogus'"),
        (["deploy", "--zip"], "--zip needs a value"),
        (["deploy", "--zip", "/nonexistent/bootstrap.zip"], "--zip /nonexistent/bootstrap.zip: no such file"),
        (["deploy", "--subnets", "subnet-0abc"], "--subnets and --security-groups go together"),
        (["deploy", "--dso", "10.0.0.1"], "--dso must be HOST:PORT"),
        (["deploy", "--arch", "riscv"], "--arch must be arm64 or x86_64"),
        (["deploy", "--timeout", "901"], "--timeout must be a whole number from 1 to 900"),
        (["deploy", "--event-retries", "3"], "--event-retries must be a whole number from 0 to 2"),
        (["deploy", "--event-max-age", "30"], "--event-max-age must be a whole number from 60 to 21600"),
    ],
)
def test_bad_input_is_refused_before_any_call(no_aws_env, run_script, args, message):
    env, calls = no_aws_env
    result = run_script("lambda.sh", *args, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert not calls.exists()
