"""The AWS CLI and the AWS Encryption SDK for Python against Coffer, unchanged: only
the endpoint differs (--endpoint-url, or AWS_ENDPOINT_URL_KMS)."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import aws_encryption_sdk
import botocore.session
import pytest
from aws_encryption_sdk.identifiers import CommitmentPolicy
from aws_encryption_sdk.key_providers.kms import DiscoveryFilter

from conftest import env

AWS = str(Path(sys.executable).parent / "aws")


def cli(*args, endpoint_flag=True, extra_env=None):
    command = [AWS, "kms", *args, "--output", "json"]
    if endpoint_flag:
        command += ["--endpoint-url", env("COFFER_AWS_ENDPOINT")]
    run_env = {**os.environ, **(extra_env or {})}
    done = subprocess.run(command, capture_output=True, text=True, env=run_env, timeout=120)
    return done.returncode, done.stdout, done.stderr


def test_aws_cli_with_endpoint_url_and_env(key, tmp_path):
    # AWS CLI v1 takes blobs as files (fileb://) and prints them in base64.
    (tmp_path / "plain").write_bytes(b"cli")
    code, out, err = cli("encrypt", "--key-id", key["Arn"], "--plaintext", f"fileb://{tmp_path / 'plain'}",
                         "--encryption-context", "app=cli")
    assert code == 0, err
    (tmp_path / "blob").write_bytes(base64.b64decode(json.loads(out)["CiphertextBlob"]))
    # AWS_ENDPOINT_URL_KMS instead of --endpoint-url.
    code, out, err = cli("decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'blob'}",
                         "--encryption-context", "app=cli",
                         endpoint_flag=False, extra_env={"AWS_ENDPOINT_URL_KMS": env("COFFER_AWS_ENDPOINT")})
    assert code == 0, err
    assert base64.b64decode(json.loads(out)["Plaintext"]) == b"cli"
    code, out, err = cli("decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'blob'}",
                         "--encryption-context", "app=other")
    assert code != 0 and "InvalidCiphertextException" in err
    code, out, err = cli("describe-key", "--key-id", "00000000-0000-4000-8000-000000000000")
    assert code != 0 and "NotFoundException" in err


def session():
    # The SDK makes its own clients from a botocore session; AWS_ENDPOINT_URL_KMS
    # (set for this process by the driver) points them at Coffer.
    assert os.environ.get("AWS_ENDPOINT_URL_KMS") == env("COFFER_AWS_ENDPOINT")
    return botocore.session.Session()


def test_encryption_sdk_kms_key_strict_and_discovery(key):
    sdk = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    strict = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(
        key_ids=[key["Arn"]], botocore_session=session()
    )
    message = b"bulk data, encrypted locally under a Coffer data key" * 100
    ciphertext, header = sdk.encrypt(
        source=message, key_provider=strict, encryption_context={"dataset": "q3"}
    )
    assert header.encryption_context["dataset"] == "q3"
    plaintext, _ = sdk.decrypt(source=ciphertext, key_provider=strict)
    assert plaintext == message
    discovery = aws_encryption_sdk.DiscoveryAwsKmsMasterKeyProvider(
        botocore_session=session(),
        discovery_filter=DiscoveryFilter(
            account_ids=[key["AWSAccountId"]], partition="aws"
        ),
    )
    plaintext, decrypted_header = sdk.decrypt(source=ciphertext, key_provider=discovery)
    assert plaintext == message
    assert decrypted_header.encryption_context["dataset"] == "q3"
    damaged = bytearray(ciphertext)
    damaged[len(damaged) // 2] ^= 1
    # A damaged message does not decrypt (whichever layer notices first).
    with pytest.raises(Exception) as raised:
        sdk.decrypt(source=bytes(damaged), key_provider=discovery)
    assert not isinstance(raised.value, AssertionError)
    # Discovery limited to another account does not use the Coffer key.
    elsewhere = aws_encryption_sdk.DiscoveryAwsKmsMasterKeyProvider(
        botocore_session=session(),
        discovery_filter=DiscoveryFilter(account_ids=["111122223333"], partition="aws"),
    )
    with pytest.raises(aws_encryption_sdk.exceptions.AWSEncryptionSDKClientError):
        sdk.decrypt(source=ciphertext, key_provider=elsewhere)
