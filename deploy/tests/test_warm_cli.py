"""The warm AWS CLI (warm_cli.py) answers as the `aws` executable does: same output, same
errors, same exit status."""

import pathlib
import subprocess
import sys

import pytest

COLD_AWS = pathlib.Path(sys.executable).parent / "aws"


@pytest.mark.skipif(not COLD_AWS.exists(), reason="no aws executable beside this interpreter")
@pytest.mark.parametrize(
    "args",
    [
        ["sts", "get-caller-identity", "--output", "json"],
        ["ec2", "describe-subnets", "--subnet-ids", "subnet-0bogus"],
        ["ec2", "no-such-operation"],
    ],
)
def test_the_warm_cli_answers_as_the_cli_does(aws_env, args):
    warm = subprocess.run(["aws", *args], env=aws_env, capture_output=True, text=True, check=False)
    cold = subprocess.run([COLD_AWS, *args], env=aws_env, capture_output=True, text=True, check=False)
    assert (warm.returncode, warm.stdout, warm.stderr) == (cold.returncode, cold.stdout, cold.stderr)
