"""Fixtures for the AWS-client tests: a boto3 KMS client pointed at a running Coffer
server, whose address and credentials the Rust driver (tests/service/aws_clients.rs)
passes in the environment."""

import os

import boto3
import pytest
from botocore.config import Config


def env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run these tests through `cargo test` (aws_clients)")
    return value


def client(access_key_id=None, secret=None, validate=True):
    return boto3.client(
        "kms",
        endpoint_url=env("COFFER_AWS_ENDPOINT"),
        region_name=env("AWS_DEFAULT_REGION"),
        aws_access_key_id=access_key_id or env("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=secret or env("AWS_SECRET_ACCESS_KEY"),
        # Without botocore's own checks, the server's answer to bad input is seen.
        config=Config(retries={"max_attempts": 1}, parameter_validation=validate),
    )


@pytest.fixture(scope="session")
def kms():
    return client()


@pytest.fixture(scope="session")
def unchecked():
    """A client that sends what botocore would refuse, to test the server's limits."""
    return client(validate=False)


@pytest.fixture(scope="session")
def key(kms):
    return kms.create_key()["KeyMetadata"]
