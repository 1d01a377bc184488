"""Offline tests of deploy/ec2.sh and deploy/lambda.sh: the scripts run for real, with the AWS
CLI, against moto's server on loopback; the tests then ask moto (through boto3) what they did.

One moto server serves the whole session (started here, stopped by its PID at the end); each
test module starts from an empty account (moto's reset). The scripts' `aws` is the AWS CLI kept
warm by warm_cli.py (also stopped by its PID), unless CRUCIAL_DEPLOY_TESTS_COLD_CLI=1.
"""

import importlib.util
import os
import pathlib
import socket
import stat
import subprocess
import sys
import time
import urllib.request

import boto3
import pytest

import warm_cli
from support import DEPLOY, REGION, TESTS

# A script run talks to moto only; a minute and a half is far more than any run takes.
SCRIPT_TIMEOUT_SECONDS = 90


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port, process, timeout_seconds=30):
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto's server exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto's server did not listen on port {port} within {timeout_seconds} s")


@pytest.fixture(scope="session")
def moto_endpoint():
    port = free_port()
    # The Lambda execution role attaches AWS managed policies, which moto loads only when asked.
    env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module", autouse=True)
def empty_account(moto_endpoint):
    """Each module starts from an empty account (a default VPC and AWS's public data only)."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture(scope="session")
def aws_command(tmp_path_factory):
    """The directory to put first in the scripts' PATH for their `aws`, and the environment
    it needs: the warm CLI (warm_cli.py) where this interpreter has the AWS CLI (awscli), and
    the `aws` installed with this interpreter otherwise, or with CRUCIAL_DEPLOY_TESTS_COLD_CLI=1
    (a version manager's shim, such as pyenv's, would cost a process more per call)."""
    interpreter_bin = pathlib.Path(sys.executable).parent
    if os.environ.get("CRUCIAL_DEPLOY_TESTS_COLD_CLI") == "1" or importlib.util.find_spec("awscli") is None:
        yield interpreter_bin, {}
        return
    directory = tmp_path_factory.mktemp("warm-aws")
    socket_path = directory / "cli.sock"
    launcher = directory / "aws"
    launcher.write_text(
        f"#!{sys.executable} -SIB\n"
        f"import sys\nsys.path.insert(0, {str(TESTS)!r})\nimport warm_cli\nwarm_cli.call()\n"
    )
    launcher.chmod(0o755)
    server = subprocess.Popen(
        [sys.executable, str(TESTS / "warm_cli.py"), str(socket_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not socket_path.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the warm AWS CLI did not start")
            time.sleep(0.05)
        yield directory, {warm_cli.SOCKET_VARIABLE: str(socket_path)}
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def aws_env(moto_endpoint, aws_command, tmp_path_factory):
    """The scripts' environment: the AWS CLI goes to moto, with moto's credentials, and finds
    no configuration of this machine's user."""
    home = tmp_path_factory.mktemp("home")
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    aws_directory, aws_variables = aws_command
    env.update(
        aws_variables,
        PATH=f"{aws_directory}{os.pathsep}{env['PATH']}",
        HOME=str(home),
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(home / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-credentials"),
    )
    return env


@pytest.fixture(scope="session")
def aws(moto_endpoint):
    """A boto3 client of moto for a service: `aws("ec2").describe_instances()`."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    clients = {}

    def client(service):
        if service not in clients:
            clients[service] = session.client(service, endpoint_url=moto_endpoint)
        return clients[service]

    return client


@pytest.fixture(scope="session")
def run_script(aws_env):
    """Runs deploy/SCRIPT with arguments; returns the completed process (text output)."""

    def run(script, *args, env=None):
        return subprocess.run(
            [str(DEPLOY / script), *args],
            env=env or aws_env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_SECONDS,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def no_aws_env(aws_env, tmp_path_factory):
    """An environment whose `aws` only records that it was run, and fails: a script run with
    it shows whether it called AWS at all (the file `calls` exists only if it did)."""
    bin_dir = tmp_path_factory.mktemp("stub-bin")
    calls = bin_dir / "calls"
    stub = bin_dir / "aws"
    stub.write_text(f'#!/bin/sh\necho "aws $*" >> "{calls}"\nexit 99\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    env = dict(aws_env, PATH=f"{bin_dir}:{aws_env['PATH']}")
    return env, calls
