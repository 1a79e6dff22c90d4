"""AWS KMS's Recipient parameter through the real boto3 client against Coffer's AWS
front, driven by tests/service/aws_recipient.rs (which starts the server, makes the
attestation documents and the enclave's RSA key, and passes them in the environment).

Every CiphertextForRecipient is opened with `openssl cms -decrypt` and the enclave's
private key, as an enclave would open it, so the format is proven against an
independent CMS implementation. Prints one JSON object of findings on stdout."""

import base64
import json
import os
import subprocess
import sys
import tempfile

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set: run through `cargo test` (aws_recipient)")
    return value


def document(name):
    return base64.b64decode(env(name))


def cms_decrypt(blob):
    """Opens a CiphertextForRecipient with OpenSSL's CMS implementation."""
    with tempfile.NamedTemporaryFile(suffix=".der", delete=False) as f:
        f.write(blob)
        path = f.name
    try:
        out = subprocess.run(
            ["openssl", "cms", "-decrypt", "-inform", "DER", "-in", path, "-inkey",
             env("ENCLAVE_KEY_PEM")],
            capture_output=True,
            check=True,
        )
        return out.stdout
    finally:
        os.unlink(path)


def error_of(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"] + ": " + e.response["Error"].get("Message", "")
    return "no error"


def main():
    kms = boto3.client(
        "kms",
        endpoint_url=env("COFFER_AWS_ENDPOINT"),
        region_name="eu-west-3",
        aws_access_key_id=env("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env("AWS_SECRET_ACCESS_KEY"),
        config=Config(retries={"max_attempts": 1}),
    )
    key = env("COFFER_KEY")
    found = {}
    secret = b"token signing secret"
    blob = kms.encrypt(KeyId=key, Plaintext=secret)["CiphertextBlob"]

    answer = kms.decrypt(
        CiphertextBlob=blob,
        Recipient={"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
                   "AttestationDocument": document("DOC_DECRYPT")},
    )
    found["decrypt_has_plaintext"] = "Plaintext" in answer
    found["decrypt_opened"] = cms_decrypt(answer["CiphertextForRecipient"]) == secret
    found["decrypt_key_id"] = answer["KeyId"]

    generated = kms.generate_data_key(
        KeyId=key,
        KeySpec="AES_256",
        Recipient={"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
                   "AttestationDocument": document("DOC_DATAKEY")},
    )
    found["datakey_has_plaintext"] = "Plaintext" in generated
    data_key = cms_decrypt(generated["CiphertextForRecipient"])
    found["datakey_len"] = len(data_key)
    again = kms.decrypt(
        CiphertextBlob=generated["CiphertextBlob"],
        Recipient={"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
                   "AttestationDocument": document("DOC_REOPEN")},
    )
    found["datakey_reopened_same"] = cms_decrypt(again["CiphertextForRecipient"]) == data_key

    found["not_allowed"] = error_of(lambda: kms.decrypt(
        CiphertextBlob=blob,
        Recipient={"AttestationDocument": document("DOC_NOT_ALLOWED")}))
    found["replayed"] = error_of(lambda: kms.decrypt(
        CiphertextBlob=blob,
        Recipient={"AttestationDocument": document("DOC_DECRYPT")}))
    found["no_public_key"] = error_of(lambda: kms.decrypt(
        CiphertextBlob=blob,
        Recipient={"AttestationDocument": document("DOC_NO_PUBLIC_KEY")}))
    found["forged"] = error_of(lambda: kms.decrypt(
        CiphertextBlob=blob,
        Recipient={"AttestationDocument": document("DOC_FORGED")}))
    found["without_recipient"] = error_of(lambda: kms.decrypt(CiphertextBlob=blob))
    found["random"] = error_of(lambda: kms.generate_random(
        NumberOfBytes=16, Recipient={"AttestationDocument": document("DOC_UNUSED")}))
    found["pair"] = error_of(lambda: kms.generate_data_key_pair(
        KeyId=key, KeyPairSpec="ECC_NIST_P256",
        Recipient={"AttestationDocument": document("DOC_UNUSED")}))

    # A key without an attestation policy: the Recipient's document is still verified,
    # and the answer still goes only to the enclave.
    plain_key = env("COFFER_PLAIN_KEY")
    plain_blob = kms.encrypt(KeyId=plain_key, Plaintext=b"no policy")["CiphertextBlob"]
    plain = kms.decrypt(
        CiphertextBlob=plain_blob,
        Recipient={"AttestationDocument": document("DOC_PLAIN")})
    found["plain_has_plaintext"] = "Plaintext" in plain
    found["plain_opened"] = cms_decrypt(plain["CiphertextForRecipient"]) == b"no policy"
    found["plain_forged"] = error_of(lambda: kms.decrypt(
        CiphertextBlob=plain_blob,
        Recipient={"AttestationDocument": document("DOC_FORGED_PLAIN")}))
    print(json.dumps(found))


if __name__ == "__main__":
    main()
