"""What the deployment tests share besides fixtures: paths, moto's constants, stand-ins for
the build outputs."""

import os
import pathlib
import zipfile

TESTS = pathlib.Path(__file__).resolve().parent
REPO = TESTS.parents[1]
DEPLOY = REPO / "deploy"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
# ELF e_machine values (offset 18 of the header).
ELF_MACHINES = {"arm64": 0xB7, "x86_64": 0x3E}


def elf_binary(path, arch, size_bytes=4096):
    """A stand-in for dso-server: an ELF header for `arch`, then random bytes."""
    header = bytearray(64)
    header[0:4] = b"\x7fELF"
    header[4:7] = bytes([2, 1, 1])  # 64-bit, little-endian, version 1
    header[18] = ELF_MACHINES[arch]
    path.write_bytes(bytes(header) + os.urandom(size_bytes - len(header)))
    return path


def bootstrap_zip(path, content):
    """A stand-in for cargo-lambda's bootstrap.zip."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("bootstrap", content)
    return path


def tags_of(resource):
    """An EC2-style tag list as a dict."""
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags", [])}
