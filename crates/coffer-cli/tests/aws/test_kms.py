"""boto3 against Coffer's AWS front: every offered operation, its main error paths
with AWS's error types, SigV4 refusals, and ciphertexts crossing to the native API."""

import base64
import datetime
import hashlib
import json
import os
import urllib.error
import urllib.request

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from conftest import client, env


def error_type(call, *args, **kwargs):
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    response = raised.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400, response
    return response["Error"]["Code"]


def test_create_describe_list(kms, key):
    assert key["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert key["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert key["KeyState"] == "Enabled" and key["Enabled"] is True
    account = key["AWSAccountId"]
    assert len(account) == 12 and account.isdigit()
    region = env("AWS_DEFAULT_REGION")
    assert key["Arn"] == f"arn:aws:kms:{region}:{account}:key/{key['KeyId']}"
    for ref in (key["KeyId"], key["Arn"]):
        assert kms.describe_key(KeyId=ref)["KeyMetadata"]["KeyId"] == key["KeyId"]
    listed = kms.list_keys()["Keys"]
    assert {"KeyId": key["KeyId"], "KeyArn": key["Arn"]} in listed
    missing = "00000000-0000-4000-8000-000000000000"
    assert error_type(kms.describe_key, KeyId=missing) == "NotFoundException"
    other_account = key["Arn"].replace(f":{account}:", ":999999999999:")
    assert error_type(kms.describe_key, KeyId=other_account) == "NotFoundException"
    assert error_type(kms.create_key, KeySpec="NO_SUCH_SPEC") == "ValidationException"
    # A usage the spec does not have.
    assert error_type(kms.create_key, KeySpec="HMAC_512", KeyUsage="ENCRYPT_DECRYPT") == "ValidationException"


def test_encryption_context_is_bound(kms, key):
    ctx = {"purpose": "test", "tenant": "acme"}
    blob = kms.encrypt(KeyId=key["Arn"], Plaintext=b"secret", EncryptionContext=ctx)
    assert blob["KeyId"] == key["Arn"]
    assert blob["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    ciphertext = blob["CiphertextBlob"]
    out = kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext=ctx)
    assert out["Plaintext"] == b"secret" and out["KeyId"] == key["Arn"]
    # Same context in another order: the same context.
    swapped = {"tenant": "acme", "purpose": "test"}
    assert kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext=swapped)["Plaintext"] == b"secret"
    for wrong in ({}, {"purpose": "test"}, {**ctx, "extra": "x"}, {**ctx, "tenant": "other"}):
        code = error_type(kms.decrypt, CiphertextBlob=ciphertext, EncryptionContext=wrong)
        assert code == "InvalidCiphertextException", wrong
    assert kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext=ctx, KeyId=key["KeyId"])["Plaintext"] == b"secret"
    other = kms.create_key()["KeyMetadata"]
    code = error_type(kms.decrypt, CiphertextBlob=ciphertext, EncryptionContext=ctx, KeyId=other["Arn"])
    assert code == "IncorrectKeyException"
    damaged = bytearray(ciphertext)
    damaged[-1] ^= 1
    assert error_type(kms.decrypt, CiphertextBlob=bytes(damaged), EncryptionContext=ctx) == "InvalidCiphertextException"


def test_limits(kms, unchecked, key):
    assert error_type(unchecked.encrypt, KeyId=key["KeyId"], Plaintext=b"x" * 4097) == "ValidationException"
    assert kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x" * 4096)["CiphertextBlob"]
    assert error_type(unchecked.decrypt, CiphertextBlob=b"x" * 6145) == "ValidationException"
    for n in (0, 1025):
        assert error_type(unchecked.generate_data_key, KeyId=key["KeyId"], NumberOfBytes=n) == "ValidationException"
        assert error_type(unchecked.generate_random, NumberOfBytes=n) == "ValidationException"
    assert error_type(unchecked.sign, KeyId=key["KeyId"], Message=b"x" * 4097, SigningAlgorithm="ECDSA_SHA_256") == "ValidationException"


def test_enable_disable(kms):
    key = kms.create_key()["KeyMetadata"]
    kms.disable_key(KeyId=key["KeyId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    assert error_type(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == "DisabledException"
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]


def test_schedule_and_cancel_deletion(kms, unchecked):
    key = kms.create_key()["KeyMetadata"]
    assert error_type(unchecked.schedule_key_deletion, KeyId=key["KeyId"], PendingWindowInDays=6) == "ValidationException"
    scheduled = kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    assert scheduled["KeyId"] == key["Arn"]
    assert error_type(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == "KMSInvalidStateException"
    assert kms.cancel_key_deletion(KeyId=key["Arn"])["KeyId"] == key["Arn"]
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] != "PendingDeletion"


def test_re_encrypt(kms, key):
    other = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"move me", EncryptionContext={"a": "1"})["CiphertextBlob"]
    moved = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext={"a": "1"},
        DestinationKeyId=other["Arn"],
        DestinationEncryptionContext={"b": "2"},
    )
    assert moved["SourceKeyId"] == key["Arn"] and moved["KeyId"] == other["Arn"]
    out = kms.decrypt(CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"b": "2"})
    assert out["Plaintext"] == b"move me" and out["KeyId"] == other["Arn"]
    code = error_type(kms.re_encrypt, CiphertextBlob=blob, SourceEncryptionContext={"a": "2"}, DestinationKeyId=other["KeyId"])
    assert code == "InvalidCiphertextException"


def test_data_keys_and_random(kms, key):
    made = kms.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256", EncryptionContext={"f": "x"})
    assert len(made["Plaintext"]) == 32 and made["KeyId"] == key["Arn"]
    back = kms.decrypt(CiphertextBlob=made["CiphertextBlob"], EncryptionContext={"f": "x"})
    assert back["Plaintext"] == made["Plaintext"]
    assert len(kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_128")["Plaintext"]) == 16
    assert len(kms.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=1024)["Plaintext"]) == 1024
    bare = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], NumberOfBytes=24)
    assert "Plaintext" not in bare
    assert len(kms.decrypt(CiphertextBlob=bare["CiphertextBlob"])["Plaintext"]) == 24
    assert error_type(kms.generate_data_key, KeyId=key["KeyId"]) == "ValidationException"
    first = kms.generate_random(NumberOfBytes=32)["Plaintext"]
    assert len(first) == 32 and first != kms.generate_random(NumberOfBytes=32)["Plaintext"]


def test_sign_verify_public_key_p256(kms):
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert key["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    message = b"signed through boto3"
    signed = kms.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm="ECDSA_SHA_256")
    assert signed["KeyId"] == key["Arn"]
    assert kms.verify(KeyId=key["Arn"], Message=message, Signature=signed["Signature"], SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
    code = error_type(kms.verify, KeyId=key["KeyId"], Message=message + b"!", Signature=signed["Signature"], SigningAlgorithm="ECDSA_SHA_256")
    assert code == "KMSInvalidSignatureException"
    # Independently: the public key verifies the signature (DER ECDSA, as AWS).
    public = kms.get_public_key(KeyId=key["KeyId"])
    assert public["KeySpec"] == "ECC_NIST_P256" and public["KeyUsage"] == "SIGN_VERIFY"
    loaded = serialization.load_der_public_key(public["PublicKey"])
    loaded.verify(signed["Signature"], message, ec.ECDSA(hashes.SHA256()))
    digest = hashlib.sha256(message).digest()
    by_digest = kms.sign(KeyId=key["KeyId"], Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    loaded.verify(by_digest["Signature"], message, ec.ECDSA(hashes.SHA256()))
    code = error_type(kms.sign, KeyId=key["KeyId"], Message=message, SigningAlgorithm="ML_DSA_SHAKE_256")
    assert code == "InvalidKeyUsageException"
    sym = kms.create_key()["KeyMetadata"]
    code = error_type(kms.sign, KeyId=sym["KeyId"], Message=message, SigningAlgorithm="ECDSA_SHA_256")
    assert code == "InvalidKeyUsageException"
    assert error_type(kms.get_public_key, KeyId=sym["KeyId"]) == "UnsupportedOperationException"
    assert error_type(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == "InvalidKeyUsageException"


def test_sign_verify_ml_dsa_65(kms):
    key = kms.create_key(KeySpec="ML_DSA_65", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    signed = kms.sign(KeyId=key["KeyId"], Message=b"pq", SigningAlgorithm="ML_DSA_SHAKE_256")
    assert len(signed["Signature"]) == 3309
    assert kms.verify(KeyId=key["KeyId"], Message=b"pq", Signature=signed["Signature"], SigningAlgorithm="ML_DSA_SHAKE_256")["SignatureValid"]


def test_rsa_and_the_other_curves_sign_as_aws_names_them(kms):
    message = b"signed under the newer specs"
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    loaded = serialization.load_der_public_key(kms.get_public_key(KeyId=rsa["KeyId"])["PublicKey"])
    # The algorithm named is the one used: each signature checks independently under it.
    pkcs1 = kms.sign(KeyId=rsa["KeyId"], Message=message, SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_384")
    loaded.verify(pkcs1["Signature"], message, padding.PKCS1v15(), hashes.SHA384())
    pss = kms.sign(KeyId=rsa["KeyId"], Message=message, SigningAlgorithm="RSASSA_PSS_SHA_256")
    loaded.verify(pss["Signature"], message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    assert kms.verify(KeyId=rsa["KeyId"], Message=message, Signature=pkcs1["Signature"], SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_384")["SignatureValid"]
    code = error_type(kms.verify, KeyId=rsa["KeyId"], Message=message, Signature=pkcs1["Signature"], SigningAlgorithm="RSASSA_PSS_SHA_384")
    assert code == "KMSInvalidSignatureException"
    assert error_type(kms.sign, KeyId=rsa["KeyId"], Message=message, SigningAlgorithm="ECDSA_SHA_256") == "InvalidKeyUsageException"
    p384 = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert p384["SigningAlgorithms"] == ["ECDSA_SHA_384"]
    signed = kms.sign(KeyId=p384["KeyId"], Message=message, SigningAlgorithm="ECDSA_SHA_384")
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=p384["KeyId"])["PublicKey"])
    public.verify(signed["Signature"], message, ec.ECDSA(hashes.SHA384()))


def test_mac(kms):
    key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    assert key["MacAlgorithms"] == ["HMAC_SHA_256"]
    made = kms.generate_mac(KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256")
    assert len(made["Mac"]) == 32
    assert kms.verify_mac(KeyId=key["Arn"], Message=b"m", Mac=made["Mac"], MacAlgorithm="HMAC_SHA_256")["MacValid"]
    code = error_type(kms.verify_mac, KeyId=key["KeyId"], Message=b"n", Mac=made["Mac"], MacAlgorithm="HMAC_SHA_256")
    assert code == "KMSInvalidMacException"
    code = error_type(kms.generate_mac, KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_512")
    assert code == "InvalidKeyUsageException"


def test_operations_not_offered_are_refused(kms, key):
    code = error_type(kms.get_parameters_for_import, KeyId=key["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                      WrappingKeySpec="RSA_2048")
    assert code == "UnsupportedOperationException"
    assert error_type(kms.describe_custom_key_stores) == "UnsupportedOperationException"


def test_description_and_aliases(kms):
    described = kms.create_key(Description="payments KEK")["KeyMetadata"]
    assert kms.describe_key(KeyId=described["KeyId"])["KeyMetadata"]["Description"] == "payments KEK"
    # Aliases are made on the native API; the AWS front lists them and resolves them.
    made = native("/v1/kms/keys", {"spec": "aes-256", "alias": "aws-listed"})
    aliases = kms.list_aliases()["Aliases"]
    entry = next(a for a in aliases if a["AliasName"] == "alias/aws-listed")
    assert entry["TargetKeyId"] == made["key_id"]
    account = described["AWSAccountId"]
    assert entry["AliasArn"] == f"arn:aws:kms:{env('AWS_DEFAULT_REGION')}:{account}:alias/aws-listed"
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=made["key_id"])["Aliases"]] == ["alias/aws-listed"]
    for ref in ("alias/aws-listed", entry["AliasArn"]):
        blob = kms.encrypt(KeyId=ref, Plaintext=b"via alias")
        assert blob["KeyId"].endswith(made["key_id"])
        assert kms.decrypt(CiphertextBlob=blob["CiphertextBlob"], KeyId=ref)["Plaintext"] == b"via alias"
    assert error_type(kms.describe_key, KeyId="alias/none-such") == "NotFoundException"


def test_alias_create_update_delete(kms, unchecked):
    first = kms.create_key()["KeyMetadata"]
    second = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/aws-made", TargetKeyId=first["Arn"])
    blob = kms.encrypt(KeyId="alias/aws-made", Plaintext=b"first")
    assert blob["KeyId"] == first["Arn"]
    entry = next(a for a in kms.list_aliases(KeyId=first["KeyId"])["Aliases"] if a["AliasName"] == "alias/aws-made")
    assert entry["TargetKeyId"] == first["KeyId"]
    # Taken, malformed, reserved, or naming a missing key: refused, nothing made.
    assert error_type(kms.create_alias, AliasName="alias/aws-made", TargetKeyId=second["KeyId"]) == "AlreadyExistsException"
    for name in ("aws-made-bare", "alias/aws/reserved", "alias/no spaces"):
        assert error_type(unchecked.create_alias, AliasName=name, TargetKeyId=second["KeyId"]) == "InvalidAliasNameException"
    missing = "00000000-0000-4000-8000-000000000000"
    assert error_type(kms.create_alias, AliasName="alias/aws-orphan", TargetKeyId=missing) == "NotFoundException"
    assert error_type(kms.describe_key, KeyId="alias/aws-orphan") == "NotFoundException"
    # UpdateAlias moves it; ciphertexts of the first key still decrypt.
    kms.update_alias(AliasName="alias/aws-made", TargetKeyId=second["KeyId"])
    assert kms.describe_key(KeyId="alias/aws-made")["KeyMetadata"]["KeyId"] == second["KeyId"]
    assert kms.decrypt(CiphertextBlob=blob["CiphertextBlob"])["Plaintext"] == b"first"
    # Only between keys of the same type and usage.
    signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert error_type(kms.update_alias, AliasName="alias/aws-made", TargetKeyId=signing["KeyId"]) == "ValidationException"
    mac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    assert error_type(kms.update_alias, AliasName="alias/aws-made", TargetKeyId=mac["KeyId"]) == "ValidationException"
    assert kms.describe_key(KeyId="alias/aws-made")["KeyMetadata"]["KeyId"] == second["KeyId"]
    assert error_type(kms.update_alias, AliasName="alias/aws-none", TargetKeyId=second["KeyId"]) == "NotFoundException"
    # Each change is in the key's history, as the native alias operations record it.
    kinds = [e["kind"] for e in native_get(f"/v1/kms/keys/{first['KeyId']}/history")["events"]]
    assert "alias.added" in kinds and "alias.moved" in kinds
    # DeleteAlias: the alias is gone, the key stays.
    kms.delete_alias(AliasName="alias/aws-made")
    assert error_type(kms.describe_key, KeyId="alias/aws-made") == "NotFoundException"
    assert kms.describe_key(KeyId=second["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert error_type(kms.delete_alias, AliasName="alias/aws-made") == "NotFoundException"
    kinds = [e["kind"] for e in native_get(f"/v1/kms/keys/{second['KeyId']}/history")["events"]]
    assert "alias.removed" in kinds
    # Another tenant's key is not found; a key whose token may only wrap is refused.
    other = client(env("COFFER_OTHER_ACCESS_KEY_ID"), env("COFFER_OTHER_SECRET_ACCESS_KEY"))
    assert error_type(other.create_alias, AliasName="alias/aws-theirs", TargetKeyId=second["KeyId"]) == "NotFoundException"
    narrow = client(env("COFFER_NARROW_ACCESS_KEY_ID"), env("COFFER_NARROW_SECRET_ACCESS_KEY"))
    assert error_type(narrow.create_alias, AliasName="alias/aws-narrow", TargetKeyId=second["KeyId"]) == "AccessDeniedException"
    assert error_type(narrow.delete_alias, AliasName="alias/aws-listed") == "AccessDeniedException"
    assert error_type(kms.describe_key, KeyId="alias/aws-narrow") == "NotFoundException"


def test_a_keys_scoped_access_key_cannot_tell_an_out_of_scope_alias_from_an_absent_one(kms):
    # The scoped key's token carries keys=alias/aws-scope-inside.
    inside = kms.create_key()["KeyMetadata"]
    outside = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/aws-scope-inside", TargetKeyId=inside["KeyId"])
    kms.create_alias(AliasName="alias/aws-scope-outside", TargetKeyId=outside["KeyId"])
    scoped = client(env("COFFER_SCOPED_ACCESS_KEY_ID"), env("COFFER_SCOPED_SECRET_ACCESS_KEY"))
    assert scoped.describe_key(KeyId="alias/aws-scope-inside")["KeyMetadata"]["KeyId"] == inside["KeyId"]

    def refusal(alias):
        with pytest.raises(ClientError) as raised:
            scoped.delete_alias(AliasName=alias)
        response = raised.value.response
        return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]

    # The same answer, message included, for an alias outside the scope and for none.
    assert refusal("alias/aws-scope-outside") == refusal("alias/aws-scope-absent")
    assert refusal("alias/aws-scope-outside")[1] == "NotFoundException"
    # And the out-of-scope alias is untouched.
    assert kms.describe_key(KeyId="alias/aws-scope-outside")["KeyMetadata"]["KeyId"] == outside["KeyId"]


def walk(call, field, limit, **kwargs):
    """Every entry of a list operation, page by page, and the number of pages."""
    entries, pages, marker = [], 0, None
    while True:
        answer = call(Limit=limit, **kwargs, **({"Marker": marker} if marker else {}))
        pages += 1
        assert len(answer[field]) <= limit
        entries += answer[field]
        if not answer["Truncated"]:
            assert "NextMarker" not in answer
            return entries, pages
        marker = answer["NextMarker"]


def test_paging(kms, unchecked):
    made = [kms.create_key()["KeyMetadata"] for _ in range(3)]
    for n, key in enumerate(made):
        kms.create_alias(AliasName=f"alias/aws-page-{n}", TargetKeyId=key["KeyId"])
    everything = kms.list_keys(Limit=1000)
    assert everything["Truncated"] is False
    keys, pages = walk(kms.list_keys, "Keys", 2)
    assert keys == everything["Keys"] and pages == (len(keys) + 1) // 2
    assert {k["KeyId"] for k in made} <= {k["KeyId"] for k in keys}
    aliases, pages = walk(kms.list_aliases, "Aliases", 1)
    assert [a["AliasName"] for a in aliases] == sorted(a["AliasName"] for a in kms.list_aliases(Limit=100)["Aliases"])
    assert pages == len(aliases) and {f"alias/aws-page-{n}" for n in range(3)} <= {a["AliasName"] for a in aliases}
    rotated = made[0]["KeyId"]
    for _ in range(3):
        kms.rotate_key_on_demand(KeyId=rotated)
    rotations, pages = walk(kms.list_key_rotations, "Rotations", 2, KeyId=rotated)
    assert len(rotations) == 3 and pages == 2
    assert [r["RotationDate"] for r in rotations] == sorted(r["RotationDate"] for r in rotations)
    for call, limit in ((unchecked.list_keys, 0), (unchecked.list_keys, 1001), (unchecked.list_aliases, 101)):
        assert error_type(call, Limit=limit) == "ValidationException"
    assert error_type(kms.list_keys, Marker="not a marker!") == "InvalidMarkerException"


def test_rotation(kms, unchecked):
    key = kms.create_key()["KeyMetadata"]
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False
    for days in (89, 2561):
        code = error_type(unchecked.enable_key_rotation, KeyId=key["KeyId"], RotationPeriodInDays=days)
        assert code == "ValidationException"
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=key["Arn"])
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 90
    kms.disable_key_rotation(KeyId=key["KeyId"])
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False
    before = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"old version")["CiphertextBlob"]
    for _ in range(10):
        assert kms.rotate_key_on_demand(KeyId=key["KeyId"])["KeyId"] == key["Arn"]
    assert error_type(kms.rotate_key_on_demand, KeyId=key["KeyId"]) == "LimitExceededException"
    rotations = kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]
    assert len(rotations) == 10 and all(r["RotationType"] == "ON_DEMAND" for r in rotations)
    # Ciphertexts of earlier versions still decrypt.
    assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"old version"
    signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert error_type(kms.enable_key_rotation, KeyId=signing["KeyId"]) == "UnsupportedOperationException"


def test_credentials_are_checked(kms, key):
    wrong_secret = client(secret="not-the-secret")
    assert error_type(wrong_secret.list_keys) == "InvalidSignatureException"
    unknown = client(access_key_id="AKIDEXAMPLE", secret="x")
    assert error_type(unknown.list_keys) == "UnrecognizedClientException"
    revoked = client(env("COFFER_REVOKED_ACCESS_KEY_ID"), env("COFFER_REVOKED_SECRET_ACCESS_KEY"))
    assert error_type(revoked.list_keys) == "UnrecognizedClientException"
    # The operator-registered fixed pair acts as the tenant's token.
    fixed = client(env("COFFER_FIXED_ACCESS_KEY_ID"), env("COFFER_FIXED_SECRET_ACCESS_KEY"))
    assert {"KeyId": key["KeyId"], "KeyArn": key["Arn"]} in fixed.list_keys()["Keys"]
    fixed_wrong = client(env("COFFER_FIXED_ACCESS_KEY_ID"), "wrong")
    assert error_type(fixed_wrong.list_keys) == "InvalidSignatureException"
    # A key made from a token narrowed to encrypt (wrap) only.
    narrow = client(env("COFFER_NARROW_ACCESS_KEY_ID"), env("COFFER_NARROW_SECRET_ACCESS_KEY"))
    blob = narrow.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert error_type(narrow.decrypt, CiphertextBlob=blob) == "AccessDeniedException"
    assert error_type(narrow.create_key) == "AccessDeniedException"


def signed_request(body, when=None, region=None):
    """A request signed by botocore's own SigV4 signer."""
    url = env("COFFER_AWS_ENDPOINT") + "/"
    request = botocore.awsrequest.AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "TrentService.ListKeys",
        },
    )
    credentials = botocore.credentials.Credentials(env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    signer = botocore.auth.SigV4Auth(credentials, "kms", region or env("AWS_DEFAULT_REGION"))
    if when is not None:
        original = botocore.auth.datetime.datetime

        class Fixed(original):
            @classmethod
            def utcnow(cls):
                return when

            @classmethod
            def now(cls, tz=None):
                return when if tz is None else when.replace(tzinfo=tz)

        botocore.auth.datetime.datetime = Fixed
        try:
            signer.add_auth(request)
        finally:
            botocore.auth.datetime.datetime = original
    else:
        signer.add_auth(request)
    return request


def send(request, body=None):
    raw = urllib.request.Request(
        request.url,
        data=request.body if body is None else body,
        headers=dict(request.headers.items()),
        method="POST",
    )
    try:
        with urllib.request.urlopen(raw) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_sigv4_altered_expired_and_replayed_requests():
    request = signed_request(b"{}")
    status, answer = send(request)
    assert status == 200 and "Keys" in answer
    # The identical signed request again within the window: accepted, as AWS does.
    assert send(request)[0] == 200
    status, answer = send(request, body=b'{"Limit": 1}')
    assert (status, answer["__type"]) == (400, "InvalidSignatureException")
    old = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=6)
    status, answer = send(signed_request(b"{}", when=old))
    assert (status, answer["__type"]) == (400, "InvalidSignatureException")
    assert "expired" in answer["message"]
    # The region comes from the credential scope: any region signs.
    status, answer = send(signed_request(b"{}", region="ap-southeast-2"))
    assert status == 200
    unsigned = urllib.request.Request(env("COFFER_AWS_ENDPOINT") + "/", data=b"{}", method="POST",
                                      headers={"X-Amz-Target": "TrentService.ListKeys",
                                               "Content-Type": "application/x-amz-json-1.1"})
    try:
        urllib.request.urlopen(unsigned)
        raise AssertionError("an unsigned request was served")
    except urllib.error.HTTPError as error:
        assert error.code == 400
        assert json.loads(error.read())["__type"] == "MissingAuthenticationTokenException"


def native(path, body):
    request = urllib.request.Request(
        env("COFFER_NATIVE_URL") + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + env("COFFER_NATIVE_TOKEN"), "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def native_get(path):
    request = urllib.request.Request(
        env("COFFER_NATIVE_URL") + path,
        headers={"Authorization": "Bearer " + env("COFFER_NATIVE_TOKEN")},
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def test_ciphertexts_cross_between_the_fronts(kms, key):
    ctx = {"app": "billing"}
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"from aws", EncryptionContext=ctx)["CiphertextBlob"]
    opened = native("/v1/kms/unwrap", {"ciphertext": base64.b64encode(blob).decode(), "context": ctx})
    assert base64.b64decode(opened["plaintext"]) == b"from aws"
    sealed = native("/v1/kms/wrap", {"key_id": key["KeyId"], "plaintext": base64.b64encode(b"from native").decode(), "context": ctx})
    back = kms.decrypt(CiphertextBlob=base64.b64decode(sealed["ciphertext"]), EncryptionContext=ctx)
    assert back["Plaintext"] == b"from native"


def test_tenants_are_accounts(kms, key):
    other = client(env("COFFER_OTHER_ACCESS_KEY_ID"), env("COFFER_OTHER_SECRET_ACCESS_KEY"))
    mine = other.create_key()["KeyMetadata"]
    # The account id chosen at the tenant's creation.
    assert mine["AWSAccountId"] == env("COFFER_OTHER_ACCOUNT")
    assert mine["Arn"].split(":")[4] == env("COFFER_OTHER_ACCOUNT")
    # Another tenant's key: not found, by id or by ARN, as a key of another account.
    for ref in (key["KeyId"], key["Arn"]):
        assert error_type(other.describe_key, KeyId=ref) == "NotFoundException"
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"acme only")["CiphertextBlob"]
    assert error_type(other.decrypt, CiphertextBlob=blob) == "NotFoundException"
    assert key["KeyId"] not in [k["KeyId"] for k in other.list_keys()["Keys"]]
