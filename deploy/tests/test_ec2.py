"""deploy/ec2.sh against moto: a cluster's whole life (up, up again, grow, status, destroy,
destroy again), the plan, and bad input."""

import base64
import datetime
import stat
import subprocess
import tomllib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from support import ACCOUNT, REGION, bootstrap_zip, elf_binary, tags_of

CLUSTER = "t1"
BUCKET = f"crucial-{CLUSTER}-{ACCOUNT}-{REGION}"  # the default bucket name
NAME = f"crucial-{CLUSTER}-dso"  # the security group's and the instances' Name
ROLE_NAME = f"{NAME}-{REGION}"  # the role's and the instance profile's
PORT = 11222
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
EXPECTED_OBJECTS = {"dso-server", "tls.crt", "ca.crt", "dso-server.toml"}


def members(aws, cluster=CLUSTER):
    """The cluster's instances that are not terminated."""
    reservations = aws("ec2").describe_instances(
        Filters=[
            {"Name": f"tag:crucial:cluster", "Values": [cluster]},
            {"Name": "instance-state-name", "Values": LIVE_STATES},
        ]
    )["Reservations"]
    return [instance for reservation in reservations for instance in reservation["Instances"]]


def cluster_groups(aws, cluster=CLUSTER):
    return aws("ec2").describe_security_groups(
        Filters=[{"Name": "tag:crucial:cluster", "Values": [cluster]}]
    )["SecurityGroups"]


def ingress(aws, group_id):
    """The group's ingress rules as (protocol, from, to, source) tuples."""
    rules = aws("ec2").describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group_id]}]
    )["SecurityGroupRules"]
    return {
        (
            rule["IpProtocol"],
            rule["FromPort"],
            rule["ToPort"],
            rule.get("CidrIpv4") or rule["ReferencedGroupInfo"]["GroupId"],
        )
        for rule in rules
        if not rule["IsEgress"]
    }


def instance_groups(instance):
    """The instance's security groups (moto lists them on the network interface when the
    launch named the interface's public IP setting)."""
    groups = {group["GroupId"] for group in instance.get("SecurityGroups", [])}
    for interface in instance.get("NetworkInterfaces", []):
        groups |= {group["GroupId"] for group in interface.get("Groups", [])}
    return groups


def user_data(aws, instance_id):
    value = aws("ec2").describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    return base64.b64decode(value["UserData"]["Value"]).decode()


def object_bytes(aws, key, bucket=BUCKET):
    return aws("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def crucial_dso_line(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith("CRUCIAL_DSO=")]
    assert len(lines) == 1, stdout
    return set(filter(None, lines[0].removeprefix("CRUCIAL_DSO=").split(",")))


def private_addresses(instances):
    return {f"{instance['PrivateIpAddress']}:{PORT}" for instance in instances}


def pem_body(pem_text):
    """The base64 lines of a PEM file, without its BEGIN/END lines."""
    return [line for line in pem_text.splitlines() if line and not line.startswith("-----")]


@pytest.fixture(scope="module")
def lambda_group(aws):
    """The Lambda functions' security group, which --allow-sg names."""
    return aws("ec2").create_security_group(GroupName="lambda-functions", Description="Lambda")["GroupId"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, lambda_group, run_script):
    """The arguments of the cluster's `up`, after a first `up` that succeeded."""
    work = tmp_path_factory.mktemp("ec2")
    binary = elf_binary(work / "dso-server", "arm64")
    state_dir = work / "state"
    args = ["--cluster", CLUSTER, "--binary", str(binary), "--state-dir", str(state_dir)]
    sources = ["--allow-cidr", "10.1.0.0/16", "--allow-sg", lambda_group]
    result = run_script("ec2.sh", "up", *args, "--members", "3", "--bind", "vpc", *sources)
    assert result.returncode == 0, result.stderr
    return {
        "args": args,
        "sources": sources,
        "binary": binary,
        "state_dir": state_dir,
        "work": work,
        "up": result,
    }


class TestClusterLifecycle:
    """One cluster through its whole life; the tests run in this order."""

    def test_up_launches_the_members(self, aws, cluster):
        instances = members(aws)
        assert len(instances) == 3
        ami = aws("ssm").get_parameter(
            Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
        )["Parameter"]["Value"]
        (group,) = cluster_groups(aws)
        for instance in instances:
            assert instance["State"]["Name"] == "running"
            assert instance["InstanceType"] == "c7g.large"
            assert instance["ImageId"] == ami
            assert instance["IamInstanceProfile"]["Arn"].endswith(f":instance-profile/crucial/{ROLE_NAME}")
            assert "PublicIpAddress" not in instance, "--bind vpc asks for no public IP"
            assert instance["MetadataOptions"]["HttpTokens"] == "required"
            assert instance_groups(instance) == {group["GroupId"]}
            tags = tags_of(instance)
            assert tags["crucial:bind"] == "vpc" and tags["crucial:port"] == str(PORT)
            assert tags["Name"] == NAME
        # Spread over the default VPC's subnets, one zone each.
        assert len({instance["SubnetId"] for instance in instances}) == 3

    def test_up_prints_what_clients_need(self, aws, cluster):
        stdout = cluster["up"].stdout
        assert crucial_dso_line(stdout) == private_addresses(members(aws))
        assert str(cluster["state_dir"] / "ca.crt") in stdout
        assert f"/crucial/{CLUSTER}/token" in stdout

    def test_user_data_names_the_cluster_and_holds_no_secret(self, aws, cluster):
        state_dir = cluster["state_dir"]
        token = (state_dir / "token").read_text().strip()
        key_lines = pem_body((state_dir / "tls.key").read_text())
        for instance in members(aws):
            text = user_data(aws, instance["InstanceId"])
            assert text.startswith("#!/bin/bash\n")
            for line in [f"CLUSTER={CLUSTER}", f"BUCKET={BUCKET}", f"PORT={PORT}", f"REGION={REGION}",
                         "ADVERTISED_ADDRESS=local-ipv4"]:
                assert line in text.splitlines()
            assert "--bind vpc" in text
            assert '--advertise "\\$address:$PORT"' in text
            assert token not in text
            assert not any(line in text for line in key_lines)
            assert "PRIVATE KEY" not in text

    def test_user_data_runs_with_stubbed_commands(self, aws, cluster, tmp_path):
        """The user data, run here with its absolute paths moved under a temporary root and
        stand-ins for aws, curl and the system commands (no instance boots under moto)."""
        ran, root, log, env = run_user_data(aws, tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert "failed" not in ran.stderr
        calls = log.read_text().splitlines()
        assert not any(call.startswith("sleep") for call in calls)
        config = root / "etc/crucial"
        for name, parameter in [("token", "token"), ("tls.key", "tls-key")]:
            assert (config / name).read_text() == f"secret /crucial/{CLUSTER}/{parameter}\n"
            assert stat.S_IMODE((config / name).stat().st_mode) == 0o600
            assert f"chown dso:dso {config / name}" in calls
            assert any(f"get-parameter --name /crucial/{CLUSTER}/{parameter} --with-decryption" in call
                       for call in calls)
        for name in ["tls.crt", "ca.crt", "dso-server.toml"]:
            assert (config / name).read_text() == f"object s3://{BUCKET}/{CLUSTER}/{name}"
            assert stat.S_IMODE((config / name).stat().st_mode) == 0o644
        assert stat.S_IMODE((root / "bin/dso-server").stat().st_mode) == 0o755
        unit = (root / "systemd/dso-server.service").read_text()
        for line in ["User=dso", "Restart=on-failure", "KillSignal=SIGTERM", "TimeoutStopSec=90",
                     f"ExecStart={root}/bin/crucial-dso-start", f"Environment=AWS_REGION={REGION}"]:
            assert line in unit.splitlines(), line
        assert calls[-2:] == ["systemctl daemon-reload", "systemctl enable --now dso-server.service"]
        # The start script asks IMDSv2 for the address and runs the server with it.
        (root / "bin/dso-server").write_text('#!/bin/sh\necho "dso-server $*"\n')
        started = subprocess.run([root / "bin/crucial-dso-start"], env=env, capture_output=True, text=True, check=False)
        assert started.returncode == 0, started.stderr
        assert started.stdout == f"dso-server --config {config}/dso-server.toml --advertise 10.0.7.7:{PORT}\n"
        imds = [call for call in log.read_text().splitlines() if call.startswith("curl")][-2:]
        assert "-X PUT http://169.254.169.254/latest/api/token" in imds[0]
        assert "X-aws-ec2-metadata-token: imds-session" in imds[1] and imds[1].endswith("/meta-data/local-ipv4")

    def test_user_data_retries_fetches_that_fail(self, aws, cluster, tmp_path):
        """The first calls after the role is made can fail (no credentials yet, access
        denied, no route yet): each fetch is tried again 10 s later, and the member comes up."""
        ran, root, log, _ = run_user_data(aws, tmp_path, aws_failures=3)
        assert ran.returncode == 0, ran.stderr
        calls = log.read_text().splitlines()
        token_calls = [call for call in calls if f"get-parameter --name /crucial/{CLUSTER}/token " in call]
        assert len(token_calls) == 4, "three failures, then the call that worked"
        for attempt in (1, 2, 3):
            assert f"crucial: fetching SSM parameter /crucial/{CLUSTER}/token failed ({attempt}/90)" in ran.stderr
        assert [call for call in calls if call.startswith("sleep")] == ["sleep 10"] * 3
        assert (root / "etc/crucial/token").read_text() == f"secret /crucial/{CLUSTER}/token\n"
        assert calls[-1] == "systemctl enable --now dso-server.service"

    def test_user_data_gives_up_after_15_minutes(self, aws, cluster, tmp_path):
        ran, root, log, _ = run_user_data(aws, tmp_path, aws_failures=1000)
        assert ran.returncode == 1
        assert f"gave up fetching SSM parameter /crucial/{CLUSTER}/token after 90 attempts" in ran.stderr
        calls = log.read_text().splitlines()
        assert len([call for call in calls if call.startswith("aws ")]) == 90
        assert sum(int(call.split()[1]) for call in calls if call.startswith("sleep")) == 890
        assert not any(call.startswith("systemctl") for call in calls)
        assert not (root / "bin/dso-server").exists()

    def test_the_group_opens_only_the_dso_port_to_the_sources(self, aws, cluster, lambda_group):
        (group,) = cluster_groups(aws)
        assert group["GroupName"] == NAME
        assert tags_of(group)["crucial:bucket"] == BUCKET
        assert ingress(aws, group["GroupId"]) == {
            ("tcp", PORT, PORT, "10.1.0.0/16"),
            ("tcp", PORT, PORT, lambda_group),
            ("tcp", PORT, PORT, group["GroupId"]),
        }

    def test_the_bucket_holds_binary_certificates_and_settings(self, aws, cluster):
        state_dir = cluster["state_dir"]
        tagging = aws("s3").get_bucket_tagging(Bucket=BUCKET)["TagSet"]
        assert {"Key": "crucial:cluster", "Value": CLUSTER} in tagging
        listed = aws("s3").list_objects_v2(Bucket=BUCKET)["Contents"]
        assert {item["Key"] for item in listed} == {f"{CLUSTER}/{name}" for name in EXPECTED_OBJECTS}
        assert object_bytes(aws, f"{CLUSTER}/dso-server") == cluster["binary"].read_bytes()
        assert object_bytes(aws, f"{CLUSTER}/tls.crt") == (state_dir / "tls.crt").read_bytes()
        assert object_bytes(aws, f"{CLUSTER}/ca.crt") == (state_dir / "ca.crt").read_bytes()
        settings = tomllib.loads(object_bytes(aws, f"{CLUSTER}/dso-server.toml").decode())
        assert settings == {
            "bind": f"0.0.0.0:{PORT}",
            "discovery": f"s3://{BUCKET}/{CLUSTER}/discovery",
            "rf": 3,
            "token-file": "/etc/crucial/token",
            "tls-cert": "/etc/crucial/tls.crt",
            "tls-key": "/etc/crucial/tls.key",
            "tls-ca": "/etc/crucial/ca.crt",
            "metrics-bind": "127.0.0.1:9100",
            "log-format": "json",
        }
        token = (state_dir / "token").read_bytes()
        for item in listed:
            assert token not in object_bytes(aws, item["Key"])

    def test_the_secrets_are_secure_strings(self, aws, cluster):
        state_dir = cluster["state_dir"]
        expected = {
            f"/crucial/{CLUSTER}/token": (state_dir / "token").read_text(),
            f"/crucial/{CLUSTER}/tls-key": (state_dir / "tls.key").read_text(),
        }
        for name, value in expected.items():
            parameter = aws("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
            assert parameter["Type"] == "SecureString"
            assert parameter["Value"].strip() == value.strip()
            tags = aws("ssm").list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]
            assert {"Key": "crucial:cluster", "Value": CLUSTER} in tags
        assert len(expected[f"/crucial/{CLUSTER}/token"]) >= 32

    def test_the_state_dir_is_private_and_the_certificates_fit(self, cluster):
        state_dir = cluster["state_dir"]
        assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
        files = [path for path in state_dir.rglob("*") if path.is_file() and not path.is_symlink()]
        assert files
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        ca = x509.load_pem_x509_certificate((state_dir / "ca.crt").read_bytes())
        server = x509.load_pem_x509_certificate((state_dir / "tls.crt").read_bytes())
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == ["crucial-dso"]
        assert server.issuer == ca.subject
        validity = server.not_valid_after_utc - server.not_valid_before_utc
        assert validity == datetime.timedelta(days=397)
        assert isinstance(server.public_key(), ec.EllipticCurvePublicKey)
        verified = subprocess.run(
            ["openssl", "verify", "-CAfile", state_dir / "ca.crt", "-verify_hostname", "crucial-dso",
             state_dir / "tls.crt"],
            capture_output=True, text=True, check=False,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr

    def test_the_members_role_is_least_privilege(self, aws, cluster):
        iam = aws("iam")
        role = iam.get_role(RoleName=ROLE_NAME)["Role"]
        assert role["Path"] == "/crucial/"
        trust = role["AssumeRolePolicyDocument"]["Statement"]
        assert [statement["Principal"] for statement in trust] == [{"Service": "ec2.amazonaws.com"}]
        assert {"Key": "crucial:cluster", "Value": CLUSTER} in iam.list_role_tags(RoleName=ROLE_NAME)["Tags"]
        profile = iam.get_instance_profile(InstanceProfileName=ROLE_NAME)["InstanceProfile"]
        assert [item["RoleName"] for item in profile["Roles"]] == [ROLE_NAME]
        assert iam.list_role_policies(RoleName=ROLE_NAME)["PolicyNames"] == ["dso-member"]
        policy = iam.get_role_policy(RoleName=ROLE_NAME, PolicyName="dso-member")["PolicyDocument"]
        grants = {statement["Sid"]: statement for statement in policy["Statement"]}
        assert grants["ReadClusterFiles"]["Resource"] == f"arn:aws:s3:::{BUCKET}/{CLUSTER}/*"
        assert grants["WriteDiscovery"]["Action"] == "s3:PutObject"
        assert grants["WriteDiscovery"]["Resource"] == f"arn:aws:s3:::{BUCKET}/{CLUSTER}/discovery/*"
        assert grants["MissingKeysAreNotFound"]["Resource"] == f"arn:aws:s3:::{BUCKET}"
        assert grants["ReadSecrets"]["Resource"] == f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/crucial/{CLUSTER}/*"
        decrypt = grants["DecryptSecretsThroughSsm"]
        assert decrypt["Action"] == "kms:Decrypt"
        assert decrypt["Condition"]["StringEquals"] == {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}
        assert all(statement["Effect"] == "Allow" for statement in policy["Statement"])
        actions = {action for statement in policy["Statement"]
                   for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}
        assert actions == {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "ssm:GetParameter",
                           "ssm:GetParameters", "kms:Decrypt"}

    def test_status_prints_the_members(self, aws, cluster, run_script, lambda_group):
        result = run_script("ec2.sh", "status", "--cluster", CLUSTER)
        assert result.returncode == 0, result.stderr
        instances = members(aws)
        for instance in instances:
            assert instance["InstanceId"] in result.stdout
            assert instance["PrivateIpAddress"] in result.stdout
        (group,) = cluster_groups(aws)
        assert group["GroupId"] in result.stdout
        assert f"from {lambda_group}" in result.stdout and "from 10.1.0.0/16" in result.stdout
        assert f"discovery s3://{BUCKET}/{CLUSTER}/discovery/" in result.stdout
        assert crucial_dso_line(result.stdout) == private_addresses(instances)

    def test_a_second_up_changes_nothing(self, aws, cluster, run_script):
        before_ids = {instance["InstanceId"] for instance in members(aws)}
        (group,) = cluster_groups(aws)
        before_rules = ingress(aws, group["GroupId"])
        result = run_script("ec2.sh", "up", *cluster["args"], "--members", "3", "--bind", "vpc", *cluster["sources"])
        assert result.returncode == 0, result.stderr
        assert {instance["InstanceId"] for instance in members(aws)} == before_ids
        assert [item["GroupId"] for item in cluster_groups(aws)] == [group["GroupId"]]
        assert ingress(aws, group["GroupId"]) == before_rules
        for name in ("token", "tls-key"):
            parameter = aws("ssm").get_parameter(Name=f"/crucial/{CLUSTER}/{name}")["Parameter"]
            assert parameter["Version"] == 1, "a second up must not overwrite the secrets"
        assert len(aws("iam").list_instance_profiles(PathPrefix="/crucial/")["InstanceProfiles"]) == 1

    def test_up_with_more_members_adds_only_the_missing_one(self, aws, cluster, run_script):
        before_ids = {instance["InstanceId"] for instance in members(aws)}
        # Also drops --allow-sg and changes the range: the group follows exactly.
        result = run_script("ec2.sh", "up", *cluster["args"], "--members", "4", "--bind", "vpc",
                            "--allow-cidr", "10.9.0.0/16")
        assert result.returncode == 0, result.stderr
        after = members(aws)
        after_ids = {instance["InstanceId"] for instance in after}
        assert len(after_ids) == 4 and before_ids < after_ids
        (group,) = cluster_groups(aws)
        assert ingress(aws, group["GroupId"]) == {
            ("tcp", PORT, PORT, "10.9.0.0/16"),
            ("tcp", PORT, PORT, group["GroupId"]),
        }
        assert crucial_dso_line(result.stdout) == private_addresses(after)

    def test_up_refuses_to_mix_bind_modes(self, aws, cluster, run_script):
        result = run_script("ec2.sh", "up", *cluster["args"], "--members", "5", "--bind", "public",
                            "--allow-cidr", "10.9.0.0/16")
        assert result.returncode == 1
        assert "runs with --bind vpc --port 11222" in result.stderr
        assert len(members(aws)) == 4

    def test_lambda_deploy_takes_crucial_dso_from_the_cluster(self, aws, cluster, run_script):
        package = bootstrap_zip(cluster["work"] / "bootstrap.zip", b"handler")
        ca = cluster["state_dir"] / "ca.crt"
        result = run_script("lambda.sh", "deploy", "--cluster", CLUSTER, "--zip", str(package), "--ca", str(ca))
        assert result.returncode == 0, result.stderr
        variables = aws("lambda").get_function_configuration(FunctionName="crucial-threads")["Environment"]["Variables"]
        assert set(variables["CRUCIAL_DSO"].split(",")) == private_addresses(members(aws))
        assert variables["CRUCIAL_DSO_TLS_CA"] == ca.read_text().rstrip("\n")
        assert (cluster["state_dir"] / "token").read_text() not in str(variables)

    def test_destroy_leaves_nothing_behind(self, aws, cluster, run_script):
        ids = [instance["InstanceId"] for instance in members(aws)]
        # The function the test above deployed for the cluster goes first (README, step 7).
        function = run_script("lambda.sh", "destroy", "--cluster", CLUSTER)
        assert function.returncode == 0, function.stderr
        result = run_script("ec2.sh", "destroy", "--cluster", CLUSTER, "--state-dir", str(cluster["state_dir"]))
        assert result.returncode == 0, result.stderr
        assert_nothing_left(aws, ids)
        assert not cluster["state_dir"].exists()

    def test_a_second_destroy_is_harmless(self, aws, cluster, run_script):
        result = run_script("ec2.sh", "destroy", "--cluster", CLUSTER, "--state-dir", str(cluster["state_dir"]))
        assert result.returncode == 0, result.stderr
        assert_nothing_left(aws, [])


def run_user_data(aws, directory, aws_failures=0):
    """Runs a member's user data with its absolute paths moved under DIRECTORY/root and the
    stand-ins; the first AWS_FAILURES calls of `aws` fail. Returns the completed process, the
    root, the calls' log and the environment."""
    root = directory / "root"
    script = user_data(aws, members(aws)[0]["InstanceId"])
    for path, moved in [("/etc/crucial", "etc/crucial"), ("/usr/local/bin/", "bin/"),
                        ("/etc/systemd/system/", "systemd/")]:
        script = script.replace(path, f"{root}/{moved}")
    (root / "bin").mkdir(parents=True)
    (root / "systemd").mkdir()
    stubs, log = stand_ins(directory)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "STUB_LOG": str(log),
           "STUB_AWS_FAILURES": str(aws_failures), "STUB_AWS_COUNT": str(directory / "aws-count")}
    ran = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=False,
                         timeout=60)
    return ran, root, log, env


def stand_ins(directory):
    """Commands the user data calls, logging each call to STUB_LOG: aws (SSM answers
    "secret NAME", S3 copies write "object URL"; the first STUB_AWS_FAILURES calls fail as
    when the instance has no credentials yet), curl (IMDS), sleep (returns at once), and the
    system commands."""
    stubs = directory / "stubs"
    stubs.mkdir()
    log = directory / "calls.log"
    scripts = {
        "aws": """
            count=$(( $(cat "$STUB_AWS_COUNT" 2>/dev/null || echo 0) + 1 ))
            echo "$count" > "$STUB_AWS_COUNT"
            if [ "$count" -le "${STUB_AWS_FAILURES:-0}" ]; then
                echo "Unable to locate credentials. You can configure credentials by running \"aws configure\"." >&2
                exit 255
            fi
            if [ "$1 $2" = "ssm get-parameter" ]; then echo "secret $4"; fi
            if [ "$1 $2" = "s3 cp" ]; then printf 'object %s' "$4" > "$5"; fi
        """,
        "sleep": "",
        "curl": """
            case "$*" in *api/token*) echo imds-session ;; *) echo 10.0.7.7 ;; esac
        """,
        "id": "exit 1",
        "install": 'mkdir -p "${@: -1}"; chmod 750 "${@: -1}"',
        "useradd": "",
        "chown": "",
        "systemctl": "",
    }
    for name, body in scripts.items():
        path = stubs / name
        path.write_text(f'#!/bin/bash\necho "{name} $*" >> "$STUB_LOG"\n{body}\n')
        path.chmod(0o755)
    return stubs, log


def assert_nothing_left(aws, terminated_ids):
    assert members(aws) == []
    if terminated_ids:
        reservations = aws("ec2").describe_instances(InstanceIds=terminated_ids)["Reservations"]
        states = {instance["State"]["Name"] for reservation in reservations for instance in reservation["Instances"]}
        assert states == {"terminated"}
    assert cluster_groups(aws) == []
    assert aws("lambda").list_functions()["Functions"] == []
    assert aws("iam").list_roles()["Roles"] == []
    assert aws("iam").list_instance_profiles(PathPrefix="/crucial/")["InstanceProfiles"] == []
    parameters = aws("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [f"/crucial/{CLUSTER}/"]}]
    )["Parameters"]
    assert parameters == []
    assert BUCKET not in {bucket["Name"] for bucket in aws("s3").list_buckets()["Buckets"]}
    tagged = aws("resourcegroupstaggingapi").get_resources(
        TagFilters=[{"Key": "crucial:cluster", "Values": [CLUSTER]}]
    )["ResourceTagMappingList"]
    # Terminated instances keep their tags until AWS forgets them.
    assert [item["ResourceARN"] for item in tagged if ":instance/" not in item["ResourceARN"]] == []
    volumes = aws("ec2").describe_volumes(Filters=[{"Name": "tag:crucial:cluster", "Values": [CLUSTER]}])["Volumes"]
    assert volumes == []


def test_bind_public_lets_members_reach_each_other_at_their_public_ips(aws, run_script, tmp_path):
    """Members advertise their public IPs, and traffic to a public IP does not count as coming
    from the members' group: each running member's public IP is allowed, and follows the
    members on every up."""
    cluster = "t5"
    binary = elf_binary(tmp_path / "dso-server", "arm64")
    state_dir = tmp_path / "state"
    args = ["--cluster", cluster, "--binary", str(binary), "--state-dir", str(state_dir),
            "--bind", "public", "--members", "2", "--allow-cidr", "203.0.113.0/24"]

    def expected_rules(group_id, instances):
        return {("tcp", PORT, PORT, "203.0.113.0/24"), ("tcp", PORT, PORT, group_id)} | {
            ("tcp", PORT, PORT, f"{instance['PublicIpAddress']}/32") for instance in instances}

    up = run_script("ec2.sh", "up", *args)
    assert up.returncode == 0, up.stderr
    instances = members(aws, cluster)
    assert len(instances) == 2 and all(instance.get("PublicIpAddress") for instance in instances)
    (group,) = cluster_groups(aws, cluster)
    assert ingress(aws, group["GroupId"]) == expected_rules(group["GroupId"], instances)
    assert crucial_dso_line(up.stdout) == {f"{instance['PublicIpAddress']}:{PORT}" for instance in instances}
    # A member replaced: the next up allows the new one's address and revokes the old one's.
    aws("ec2").terminate_instances(InstanceIds=[instances[0]["InstanceId"]])
    again = run_script("ec2.sh", "up", *args)
    assert again.returncode == 0, again.stderr
    replaced = members(aws, cluster)
    assert len(replaced) == 2 and instances[0]["InstanceId"] not in {item["InstanceId"] for item in replaced}
    assert ingress(aws, group["GroupId"]) == expected_rules(group["GroupId"], replaced)
    destroy = run_script("ec2.sh", "destroy", "--cluster", cluster, "--state-dir", str(state_dir))
    assert destroy.returncode == 0, destroy.stderr
    assert members(aws, cluster) == [] and cluster_groups(aws, cluster) == []


def test_destroy_keeps_the_state_dir_when_it_finds_nothing(run_script, tmp_path):
    """A destroy with a wrong --region or --cluster must not lose a live cluster's CA."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "ca.key").write_text("key")
    kept = run_script("ec2.sh", "destroy", "--cluster", "t6", "--state-dir", str(state_dir))
    assert kept.returncode == 0, kept.stderr
    assert (state_dir / "ca.key").exists()
    assert f"found nothing tagged crucial:cluster=t6 in {REGION}: keeping {state_dir}" in kept.stderr
    forgotten = run_script("ec2.sh", "destroy", "--cluster", "t6", "--state-dir", str(state_dir), "--forget-state")
    assert forgotten.returncode == 0, forgotten.stderr
    assert not state_dir.exists()


def test_destroy_keeps_a_bucket_it_did_not_create(aws, run_script, tmp_path):
    s3 = aws("s3")
    s3.create_bucket(Bucket="shared-bucket")
    for key in ["t2/dso-server", "t2/discovery/config.json", "t20/keep", "other/keep"]:
        s3.put_object(Bucket="shared-bucket", Key=key, Body=b"x")
    result = run_script("ec2.sh", "destroy", "--cluster", "t2", "--bucket", "shared-bucket",
                        "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 0, result.stderr
    left = {item["Key"] for item in s3.list_objects_v2(Bucket="shared-bucket")["Contents"]}
    assert left == {"t20/keep", "other/keep"}
    assert "keeping bucket shared-bucket" in result.stderr


PLAN_ARGS = ["up", "--members", "3", "--bind", "vpc", "--allow-sg", "sg-0123", "--subnet", "subnet-0abc",
             "--bucket", "my-bucket", "--cluster", "demo", "--plan"]


def test_plan_prints_the_calls_and_makes_none(no_aws_env, run_script, tmp_path):
    env, calls = no_aws_env
    result = run_script("ec2.sh", *PLAN_ARGS, "--state-dir", str(tmp_path / "state"), env=env)
    assert result.returncode == 0, result.stderr
    assert not calls.exists(), "the plan called aws"
    assert not (tmp_path / "state").exists(), "the plan wrote the state dir"
    lines = result.stdout.splitlines()
    assert all(line.startswith(("aws ", "# ")) for line in lines)
    commands = [" ".join(line.split()[1:3]) for line in lines if line.startswith("aws ")]
    for command in ["s3api create-bucket", "s3api put-bucket-tagging", "s3 cp", "iam create-role",
                    "iam put-role-policy", "iam create-instance-profile", "iam add-role-to-instance-profile",
                    "ec2 create-security-group", "ec2 authorize-security-group-ingress", "ec2 wait"]:
        assert command in commands, command
    assert commands.count("ec2 run-instances") == 3
    assert commands.count("ssm put-parameter") == 2
    launches = [line for line in lines if " run-instances " in line]
    assert all("--no-associate-public-ip-address" in line and "--subnet-id subnet-0abc" in line
               and "Name=crucial-demo-dso-us-east-1" in line for line in launches)
    # Secrets are passed as files: no value appears in a call.
    for line in lines:
        if " put-parameter " in line:
            assert "--value file://" in line
    authorize = next(line for line in lines if "authorize-security-group-ingress" in line)
    assert '"GroupId":"sg-0123"' in authorize and '"GroupId":"<sg-id>"' in authorize
    assert '"FromPort":11222' in authorize and "CidrIp" not in authorize


@pytest.mark.parametrize(
    "bind, public_ip, address",
    [
        ("public", "--associate-public-ip-address", "public-ipv4"),
        ("private", "--associate-public-ip-address", "local-ipv4"),
        ("vpc", "--no-associate-public-ip-address", "local-ipv4"),
    ],
)
def test_plan_follows_the_bind_mode(no_aws_env, run_script, bind, public_ip, address):
    env, calls = no_aws_env
    result = run_script("ec2.sh", "up", "--bind", bind, "--allow-cidr", "10.0.0.0/16", "--members", "1", "--plan", env=env)
    assert result.returncode == 0, result.stderr
    (launch,) = [line for line in result.stdout.splitlines() if " run-instances " in line]
    assert f" {public_ip} " in launch and f"Key=crucial:bind,Value={bind}" in launch
    assert f"advertising {address}" in result.stdout
    # The default state dir is per cluster and region.
    assert f"deploy/.state/crucial-{REGION} " in result.stdout
    # The default network: the default VPC's subnets in the zones that offer c7g.large.
    assert "aws ec2 describe-instance-type-offerings " in result.stdout
    assert not calls.exists()


@pytest.mark.parametrize("command", ["status", "destroy"])
def test_plan_of_status_and_destroy_makes_no_call(no_aws_env, run_script, tmp_path, command):
    env, calls = no_aws_env
    result = run_script("ec2.sh", command, "--cluster", "demo", "--plan", "--state-dir", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    assert not calls.exists()
    assert tmp_path.exists()
    if command == "destroy":
        for call in ["ec2 terminate-instances", "ec2 delete-security-group", "iam delete-instance-profile",
                     "iam delete-role", "ssm delete-parameters", "s3 rm", "s3api delete-bucket"]:
            assert f"aws {call} " in result.stdout, call


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "a command is needed"),
        (["launch"], "unknown command 'launch'"),
        (["up", "--allow-cidr", "10.0.0.0/8", "--bogus"], "unknown option '--bogus'"),
        (["up", "--cluster", "t3"], "up needs --allow-cidr or --allow-sg"),
        (["status", "--cluster"], "--cluster needs a value"),
        (["up", "--allow-cidr", "10.0.0.0/8", "--members", "0"], "--members must be a whole number from 1 to 32"),
        (["up", "--allow-cidr", "10.0.0.0/8", "--members", "2", "--rf", "3"], "--rf must be a whole number from 1 to 2"),
        (["up", "--allow-cidr", "10.0.0.0/8", "--bind", "lan"], "--bind must be public, private or vpc"),
        (["up", "--allow-cidr", "10.0.0.0"], "--allow-cidr must be an IPv4 CIDR"),
        (["up", "--allow-cidr", "10.0.0.0/8", "--vpc", "vpc-1"], "--vpc needs --subnet"),
        (["up", "--allow-cidr", "10.0.0.0/8", "--cluster", "Bad_Name"], "--cluster must be"),
    ],
)
def test_bad_input_is_refused_before_any_call(no_aws_env, run_script, args, message):
    env, calls = no_aws_env
    result = run_script("ec2.sh", *args, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "--help" in result.stderr
    assert not calls.exists()


def test_a_binary_for_another_architecture_is_refused(no_aws_env, run_script, tmp_path):
    env, calls = no_aws_env
    binary = elf_binary(tmp_path / "dso-server", "x86_64")
    result = run_script("ec2.sh", "up", "--allow-cidr", "10.0.0.0/8", "--binary", str(binary), env=env)
    assert result.returncode == 1
    assert "is not built for arm64" in result.stderr
    missing = run_script("ec2.sh", "up", "--allow-cidr", "10.0.0.0/8", "--binary", str(tmp_path / "nope"), env=env)
    assert missing.returncode == 1 and "no dso-server at" in missing.stderr
    assert not calls.exists()


def test_help_describes_the_commands(run_script):
    result = run_script("ec2.sh", "--help")
    assert result.returncode == 0
    for word in ["up", "status", "destroy", "--bind public|private|vpc", "--allow-sg", "--plan"]:
        assert word in result.stdout
