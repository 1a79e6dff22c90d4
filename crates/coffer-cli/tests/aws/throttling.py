"""boto3 against a Coffer whose in-flight caps are held full: what the AWS SDK sees
when the AWS front sheds a request. Run by tests/service/aws_throttling.rs (not
collected by pytest: the slots must be held by the Rust driver while it runs).

Prints one JSON object: for a client with retries disabled and one with botocore's
standard retries, the error code, HTTP status, Retry-After and retry attempts."""

import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client(retries):
    return boto3.client(
        "kms",
        endpoint_url=os.environ["COFFER_AWS_ENDPOINT"],
        region_name=os.environ["AWS_DEFAULT_REGION"],
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries=retries),
    )


def attempt(kms):
    try:
        kms.encrypt(KeyId=os.environ["COFFER_KEY_ID"], Plaintext=b"shed me")
    except ClientError as error:
        meta = error.response["ResponseMetadata"]
        return {
            "code": error.response["Error"]["Code"],
            "status": meta["HTTPStatusCode"],
            "retry_after": meta["HTTPHeaders"].get("retry-after"),
            "attempts": meta.get("RetryAttempts", 0),
            "message": error.response["Error"].get("Message", ""),
        }
    return {"code": None}


def main():
    # Retries disabled: one attempt, the exception as the server answered it.
    once = attempt(client({"total_max_attempts": 1}))
    # botocore's standard mode retries throttling errors (with back-off): three
    # attempts, all shed while the slots stay held.
    standard = attempt(client({"mode": "standard", "total_max_attempts": 3}))
    json.dump({"once": once, "standard": standard}, sys.stdout)


if __name__ == "__main__":
    main()
