"""boto3 against Coffer's AWS front, continued: data key pairs, the HMAC specs,
UpdateKeyDescription, RSA encryption keys, signing algorithms checked before signing,
the on-demand rotation limit under concurrency, key tags, key policies and grants."""

import base64
import hashlib
import json
import threading
import urllib.error
import urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from conftest import client, env
from test_kms import error_type, native, native_get, walk

PAIR_SPECS = {
    "RSA_2048": 2048,
    "RSA_3072": 3072,
    "RSA_4096": 4096,
    "ECC_NIST_P256": "secp256r1",
    "ECC_NIST_P384": "secp384r1",
    "ECC_NIST_P521": "secp521r1",
    "ECC_SECG_P256K1": "secp256k1",
}


def der_public(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_data_key_pairs_work_and_their_private_keys_are_sealed(kms, key):
    for spec, kind in PAIR_SPECS.items():
        ctx = {"pair": spec}
        made = kms.generate_data_key_pair(KeyId=key["Arn"], KeyPairSpec=spec, EncryptionContext=ctx)
        assert made["KeyId"] == key["Arn"] and made["KeyPairSpec"] == spec
        private = serialization.load_der_private_key(made["PrivateKeyPlaintext"], password=None)
        public = serialization.load_der_public_key(made["PublicKey"])
        assert der_public(private.public_key()) == made["PublicKey"], spec
        # The pair works: the private key signs, the public key verifies.
        if isinstance(kind, int):
            assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == kind
            signature = private.sign(b"pair", padding.PKCS1v15(), hashes.SHA256())
            public.verify(signature, b"pair", padding.PKCS1v15(), hashes.SHA256())
        else:
            assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == kind
            signature = private.sign(b"pair", ec.ECDSA(hashes.SHA256()))
            public.verify(signature, b"pair", ec.ECDSA(hashes.SHA256()))
        # The sealed private key opens to the same PKCS #8, under its context only.
        sealed = made["PrivateKeyCiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=sealed, EncryptionContext=ctx)["Plaintext"] == made["PrivateKeyPlaintext"]
        assert error_type(kms.decrypt, CiphertextBlob=sealed) == "InvalidCiphertextException"
    bare = kms.generate_data_key_pair_without_plaintext(KeyId=key["KeyId"], KeyPairSpec="ECC_NIST_P384")
    assert "PrivateKeyPlaintext" not in bare
    opened = kms.decrypt(CiphertextBlob=bare["PrivateKeyCiphertextBlob"])["Plaintext"]
    private = serialization.load_der_private_key(opened, password=None)
    assert der_public(private.public_key()) == bare["PublicKey"]
    # The sealed private key crosses to the native API like any ciphertext.
    crossed = native("/v1/kms/unwrap", {"ciphertext": base64.b64encode(bare["PrivateKeyCiphertextBlob"]).decode()})
    assert base64.b64decode(crossed["plaintext"]) == opened


def test_data_key_pairs_refused(kms, unchecked, key):
    assert error_type(unchecked.generate_data_key_pair, KeyId=key["KeyId"], KeyPairSpec="RSA_1024") == "ValidationException"
    assert error_type(kms.generate_data_key_pair, KeyId=key["KeyId"], KeyPairSpec="SM2") == "UnsupportedOperationException"
    signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    code = error_type(kms.generate_data_key_pair, KeyId=signing["KeyId"], KeyPairSpec="ECC_NIST_P256")
    assert code == "InvalidKeyUsageException"
    missing = "00000000-0000-4000-8000-000000000000"
    assert error_type(kms.generate_data_key_pair, KeyId=missing, KeyPairSpec="ECC_NIST_P256") == "NotFoundException"
    disabled = kms.create_key()["KeyMetadata"]
    kms.disable_key(KeyId=disabled["KeyId"])
    code = error_type(kms.generate_data_key_pair_without_plaintext, KeyId=disabled["KeyId"], KeyPairSpec="RSA_2048")
    assert code == "DisabledException"
    # A key narrowed to encrypt (wrap) only makes no data keys, paired or not.
    narrow = client(env("COFFER_NARROW_ACCESS_KEY_ID"), env("COFFER_NARROW_SECRET_ACCESS_KEY"))
    assert error_type(narrow.generate_data_key_pair, KeyId=key["KeyId"], KeyPairSpec="ECC_NIST_P256") == "AccessDeniedException"


MACS = [("HMAC_224", "HMAC_SHA_224", 28), ("HMAC_256", "HMAC_SHA_256", 32),
        ("HMAC_384", "HMAC_SHA_384", 48), ("HMAC_512", "HMAC_SHA_512", 64)]


def test_every_hmac_spec(kms, unchecked):
    for n, (spec, algorithm, length) in enumerate(MACS):
        key = kms.create_key(KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
        assert key["KeySpec"] == spec and key["KeyUsage"] == "GENERATE_VERIFY_MAC"
        assert key["MacAlgorithms"] == [algorithm]
        made = kms.generate_mac(KeyId=key["KeyId"], Message=b"mac me", MacAlgorithm=algorithm)
        assert len(made["Mac"]) == length and made["MacAlgorithm"] == algorithm
        checked = kms.verify_mac(KeyId=key["Arn"], Message=b"mac me", Mac=made["Mac"], MacAlgorithm=algorithm)
        assert checked["MacValid"] is True
        code = error_type(kms.verify_mac, KeyId=key["KeyId"], Message=b"mac you", Mac=made["Mac"], MacAlgorithm=algorithm)
        assert code == "KMSInvalidMacException"
        # Another HMAC algorithm than the key's: refused before computing.
        other = MACS[(n + 1) % len(MACS)][1]
        assert error_type(kms.generate_mac, KeyId=key["KeyId"], Message=b"m", MacAlgorithm=other) == "InvalidKeyUsageException"
        code = error_type(kms.verify_mac, KeyId=key["KeyId"], Message=b"mac me", Mac=made["Mac"], MacAlgorithm=other)
        assert code == "InvalidKeyUsageException"
        # The native API computes the same tag with the same key (spec hmac-sha…).
        shown = native_get(f"/v1/kms/keys/{key['KeyId']}")
        assert shown["spec"] == "hmac-sha" + algorithm.rsplit("_", 1)[1] and shown["purpose"] == "mac"
        tag = native("/v1/kms/mac", {"key_id": key["KeyId"], "message": base64.b64encode(b"mac me").decode()})
        assert base64.b64decode(tag["mac"]) == made["Mac"]
    # Made natively: the same specs, the tag as long as the hash.
    for spec, length in (("hmac-sha224", 28), ("hmac-sha384", 48), ("hmac-sha512", 64)):
        made = native("/v1/kms/keys", {"spec": spec})
        assert made["purpose"] == "mac"
        tag = native("/v1/kms/mac", {"key_id": made["key_id"], "message": base64.b64encode(b"m").decode()})
        assert len(base64.b64decode(tag["mac"])) == length
    assert error_type(unchecked.generate_mac, KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_1") == "ValidationException"
    assert error_type(kms.create_key, KeySpec="HMAC_384", KeyUsage="SIGN_VERIFY") == "ValidationException"


def test_update_key_description(kms, unchecked):
    key = kms.create_key(Description="first words")["KeyMetadata"]
    kms.update_key_description(KeyId=key["Arn"], Description="second words")
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Description"] == "second words"
    # The label aws:description natively, changed by an audited, recorded label update.
    assert native_get(f"/v1/kms/keys/{key['KeyId']}")["labels"]["aws:description"] == "second words"
    kinds = [e["kind"] for e in native_get(f"/v1/kms/keys/{key['KeyId']}/history")["events"]]
    assert "key.labels" in kinds
    # Longer than a label value holds: refused, the description unchanged.
    assert error_type(unchecked.update_key_description, KeyId=key["KeyId"], Description="x" * 257) == "ValidationException"
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Description"] == "second words"
    missing = "00000000-0000-4000-8000-000000000000"
    assert error_type(kms.update_key_description, KeyId=missing, Description="d") == "NotFoundException"
    narrow = client(env("COFFER_NARROW_ACCESS_KEY_ID"), env("COFFER_NARROW_SECRET_ACCESS_KEY"))
    assert error_type(narrow.update_key_description, KeyId=key["KeyId"], Description="d") == "AccessDeniedException"
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Description"] == "second words"


def test_rsa_encryption_keys(kms):
    key = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    assert key["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert key["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    assert "SigningAlgorithms" not in key
    public = kms.get_public_key(KeyId=key["KeyId"])
    assert public["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert public["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    loaded = serialization.load_der_public_key(public["PublicKey"])
    for algorithm, digest in (("RSAES_OAEP_SHA_1", hashes.SHA1()), ("RSAES_OAEP_SHA_256", hashes.SHA256())):
        blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"rsa secret", EncryptionAlgorithm=algorithm)
        assert blob["EncryptionAlgorithm"] == algorithm and blob["KeyId"] == key["Arn"]
        out = kms.decrypt(CiphertextBlob=blob["CiphertextBlob"], KeyId=key["Arn"], EncryptionAlgorithm=algorithm)
        assert out["Plaintext"] == b"rsa secret" and out["EncryptionAlgorithm"] == algorithm
        # Encrypted locally with the public key, as AWS clients may: decrypts too.
        oaep = padding.OAEP(mgf=padding.MGF1(algorithm=digest), algorithm=digest, label=None)
        local = loaded.encrypt(b"encrypted locally", oaep)
        out = kms.decrypt(CiphertextBlob=local, KeyId=key["KeyId"], EncryptionAlgorithm=algorithm)
        assert out["Plaintext"] == b"encrypted locally"
    sha1 = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_1")["CiphertextBlob"]
    code = error_type(kms.decrypt, CiphertextBlob=sha1, KeyId=key["KeyId"], EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert code == "InvalidCiphertextException"
    # An OAEP ciphertext names no key: KeyId is required.
    assert error_type(kms.decrypt, CiphertextBlob=sha1, EncryptionAlgorithm="RSAES_OAEP_SHA_1") == "ValidationException"
    # Longer than OAEP-SHA-256 fits in 2048 bits (190 bytes), or with a context: refused.
    code = error_type(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x" * 191, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert code == "ValidationException"
    code = error_type(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256",
                      EncryptionContext={"a": "b"})
    assert code == "ValidationException"
    # Symmetric encryption with the RSA key, RSA with a symmetric key, or signing with it.
    assert error_type(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == "InvalidKeyUsageException"
    sym = kms.create_key()["KeyMetadata"]
    code = error_type(kms.encrypt, KeyId=sym["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert code == "InvalidKeyUsageException"
    code = error_type(kms.sign, KeyId=key["KeyId"], Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert code == "InvalidKeyUsageException"
    assert error_type(kms.create_key, KeySpec="ECC_NIST_P256", KeyUsage="ENCRYPT_DECRYPT") == "ValidationException"


def test_algorithms_and_digests_of_the_newer_curves(kms):
    message = b"curves and digests"
    k1 = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    signed = kms.sign(KeyId=k1["KeyId"], Message=message, SigningAlgorithm="ECDSA_SHA_256")
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=k1["KeyId"])["PublicKey"])
    assert public.curve.name == "secp256k1"
    public.verify(signed["Signature"], message, ec.ECDSA(hashes.SHA256()))
    assert kms.verify(KeyId=k1["KeyId"], Message=message, Signature=signed["Signature"],
                      SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
    p384 = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    digest = hashlib.sha384(message).digest()
    by_digest = kms.sign(KeyId=p384["KeyId"], Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_384")
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=p384["KeyId"])["PublicKey"])
    public.verify(by_digest["Signature"], message, ec.ECDSA(hashes.SHA384()))
    code = error_type(kms.sign, KeyId=p384["KeyId"], Message=digest[:32], MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_384")
    assert code == "ValidationException"
    # A name of another family: refused before signing, for every kind of key.
    ml_dsa = kms.create_key(KeySpec="ML_DSA_44", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    for ref, wrong in ((ml_dsa, "ECDSA_SHA_256"), (p384, "ECDSA_SHA_256"), (k1, "ML_DSA_SHAKE_256"), (k1, "ED25519_SHA_512")):
        assert error_type(kms.sign, KeyId=ref["KeyId"], Message=message, SigningAlgorithm=wrong) == "InvalidKeyUsageException"
    code = error_type(kms.verify, KeyId=p384["KeyId"], Message=message, Signature=by_digest["Signature"],
                      SigningAlgorithm="ECDSA_SHA_512")
    assert code == "InvalidKeyUsageException"
    signed = kms.sign(KeyId=ml_dsa["KeyId"], Message=message, SigningAlgorithm="ML_DSA_SHAKE_256")
    assert len(signed["Signature"]) == 2420
    # ML-DSA's external mu (64 bytes), signed and verified as mu.
    mu = bytes(range(64))
    by_mu = kms.sign(KeyId=ml_dsa["KeyId"], Message=mu, MessageType="EXTERNAL_MU", SigningAlgorithm="ML_DSA_SHAKE_256")
    assert kms.verify(KeyId=ml_dsa["KeyId"], Message=mu, MessageType="EXTERNAL_MU", Signature=by_mu["Signature"],
                      SigningAlgorithm="ML_DSA_SHAKE_256")["SignatureValid"]
    code = error_type(kms.verify, KeyId=ml_dsa["KeyId"], Message=bytes(64), MessageType="EXTERNAL_MU",
                      Signature=by_mu["Signature"], SigningAlgorithm="ML_DSA_SHAKE_256")
    assert code == "KMSInvalidSignatureException"
    code = error_type(kms.sign, KeyId=ml_dsa["KeyId"], Message=mu[:32], MessageType="EXTERNAL_MU",
                      SigningAlgorithm="ML_DSA_SHAKE_256")
    assert code == "ValidationException"


def test_the_on_demand_rotation_limit_holds_under_concurrency(kms):
    key = kms.create_key()["KeyMetadata"]
    for _ in range(7):
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
    outcomes = []

    def rotate():
        caller = client()
        try:
            caller.rotate_key_on_demand(KeyId=key["KeyId"])
            outcomes.append("ok")
        except Exception as error:  # noqa: BLE001 - the error type is what is counted
            outcomes.append(error.response["Error"]["Code"])

    threads = [threading.Thread(target=rotate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Each call either rotated, lost a race (conflict), or met the limit.
    assert set(outcomes) <= {"ok", "KMSInvalidStateException", "LimitExceededException"}, outcomes
    assert 1 <= outcomes.count("ok") <= 3, outcomes
    while True:
        try:
            kms.rotate_key_on_demand(KeyId=key["KeyId"])
        except Exception as error:  # noqa: BLE001
            assert error.response["Error"]["Code"] == "LimitExceededException"
            break
    rotations = kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]
    assert len(rotations) == 10, len(rotations)


def test_tags(kms, unchecked):
    key = kms.create_key(Tags=[{"TagKey": "team", "TagValue": "payments"}])["KeyMetadata"]
    assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == [{"TagKey": "team", "TagValue": "payments"}]
    kms.tag_resource(KeyId=key["Arn"], Tags=[{"TagKey": "env", "TagValue": "prod"}, {"TagKey": "team", "TagValue": "risk"}])
    listed = kms.list_resource_tags(KeyId=key["KeyId"])
    assert listed["Tags"] == [{"TagKey": "env", "TagValue": "prod"}, {"TagKey": "team", "TagValue": "risk"}]
    assert listed["Truncated"] is False
    kms.untag_resource(KeyId=key["KeyId"], TagKeys=["env", "never-set"])
    assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == [{"TagKey": "team", "TagValue": "risk"}]
    # Tags are not labels: the key's labels are untouched; each change is in its history.
    shown = native_get(f"/v1/kms/keys/{key['KeyId']}")
    assert "team" not in shown["labels"] and "env" not in shown["labels"]
    kinds = [e["kind"] for e in native_get(f"/v1/kms/keys/{key['KeyId']}/history")["events"]]
    assert kinds.count("key.tags") == 3
    # AWS's rules: a reserved prefix, lengths, an empty key.
    for bad in ([{"TagKey": "aws:owner", "TagValue": "v"}], [{"TagKey": "k" * 129, "TagValue": "v"}],
                [{"TagKey": "k", "TagValue": "v" * 257}], [{"TagKey": "", "TagValue": "v"}]):
        assert error_type(unchecked.tag_resource, KeyId=key["KeyId"], Tags=bad) == "TagException", bad
    assert error_type(unchecked.untag_resource, KeyId=key["KeyId"], TagKeys=["aws:owner"]) == "TagException"
    # At most 50 per key; a call past it is refused whole.
    kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": f"t{n:02}", "TagValue": str(n)} for n in range(49)])
    code = error_type(kms.tag_resource, KeyId=key["KeyId"], Tags=[{"TagKey": "one-more", "TagValue": "x"}])
    assert code == "LimitExceededException"
    tags, pages = walk(kms.list_resource_tags, "Tags", 20, KeyId=key["KeyId"])
    assert len(tags) == 50 and pages == 3 and "one-more" not in {t["TagKey"] for t in tags}
    # Replacing a value at the limit is no new tag.
    kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "t00", "TagValue": "changed"}])
    # A CreateKey whose tags are refused makes no key.
    before = len(kms.list_keys(Limit=1000)["Keys"])
    code = error_type(unchecked.create_key, Tags=[{"TagKey": "aws:reserved", "TagValue": "x"}])
    assert code == "TagException"
    assert len(kms.list_keys(Limit=1000)["Keys"]) == before
    # Another tenant's key is not found; a key that may only wrap cannot tag.
    other = client(env("COFFER_OTHER_ACCESS_KEY_ID"), env("COFFER_OTHER_SECRET_ACCESS_KEY"))
    assert error_type(other.list_resource_tags, KeyId=key["KeyId"]) == "NotFoundException"
    assert error_type(other.tag_resource, KeyId=key["KeyId"], Tags=[{"TagKey": "a", "TagValue": "b"}]) == "NotFoundException"
    narrow = client(env("COFFER_NARROW_ACCESS_KEY_ID"), env("COFFER_NARROW_SECRET_ACCESS_KEY"))
    code = error_type(narrow.tag_resource, KeyId=key["KeyId"], Tags=[{"TagKey": "a", "TagValue": "b"}])
    assert code == "AccessDeniedException"
    assert error_type(narrow.list_resource_tags, KeyId=key["KeyId"]) == "AccessDeniedException"


def native_as(token, path, body):
    request = urllib.request.Request(
        env("COFFER_NATIVE_URL") + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_key_policies_and_grants_are_enforced(kms, unchecked):
    second = client(env("COFFER_SECOND_ACCESS_KEY_ID"), env("COFFER_SECOND_SECRET_ACCESS_KEY"))
    key = kms.create_key()["KeyMetadata"]
    account = key["AWSAccountId"]
    main_arn = f"arn:aws:iam::{account}:user/{env('COFFER_MAIN_TOKEN_ID')}"
    second_arn = f"arn:aws:iam::{account}:user/{env('COFFER_SECOND_TOKEN_ID')}"
    # Without a policy: AWS's default one, the account; both tokens use the key.
    default = kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")
    statement = json.loads(default["Policy"])["Statement"][0]
    assert statement["Principal"]["AWS"] == f"arn:aws:iam::{account}:root" and statement["Action"] == "kms:*"
    assert kms.list_key_policies(KeyId=key["KeyId"])["PolicyNames"] == ["default"]
    blob = second.encrypt(KeyId=key["KeyId"], Plaintext=b"before")["CiphertextBlob"]

    # A policy naming the main token only, and denying it deletion.
    only_main = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": main_arn}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": main_arn}, "Action": "kms:ScheduleKeyDeletion", "Resource": "*"}]}
    kms.put_key_policy(KeyId=key["Arn"], PolicyName="default", Policy=json.dumps(only_main))
    assert json.loads(kms.get_key_policy(KeyId=key["KeyId"])["Policy"]) == only_main
    for call, kwargs in ((second.encrypt, {"KeyId": key["KeyId"], "Plaintext": b"x"}),
                         (second.decrypt, {"CiphertextBlob": blob}),
                         (second.describe_key, {"KeyId": key["KeyId"]})):
        assert error_type(call, **kwargs) == "AccessDeniedException", call
    # Natively too: the same token is refused the same key.
    status, answer = native_as(env("COFFER_SECOND_TOKEN"), "/v1/kms/wrap",
                               {"key_id": key["KeyId"], "plaintext": base64.b64encode(b"x").decode()})
    assert (status, answer["error"]["code"]) == (403, "forbidden")
    # Its other keys are not concerned; the main token uses this one, but not to delete it.
    elsewhere = kms.create_key()["KeyMetadata"]
    assert second.encrypt(KeyId=elsewhere["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"
    code = error_type(kms.schedule_key_deletion, KeyId=key["KeyId"], PendingWindowInDays=7)
    assert code == "AccessDeniedException"
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"

    # A grant gives the second token Encrypt and Decrypt on this key, nothing more.
    grant = kms.create_grant(KeyId=key["Arn"], GranteePrincipal=second_arn, Operations=["Encrypt", "Decrypt"],
                             RetiringPrincipal=main_arn, Name="second-uses")
    assert grant["GrantId"] == grant["GrantToken"]
    sealed = second.encrypt(KeyId=key["KeyId"], Plaintext=b"granted")["CiphertextBlob"]
    assert second.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"granted"
    assert error_type(second.describe_key, KeyId=key["KeyId"]) == "AccessDeniedException"
    assert error_type(second.generate_data_key, KeyId=key["KeyId"], NumberOfBytes=16) == "AccessDeniedException"
    # Grants name AWS operations: a native call of the grantee is not granted.
    status, _ = native_as(env("COFFER_SECOND_TOKEN"), "/v1/kms/wrap",
                          {"key_id": key["KeyId"], "plaintext": base64.b64encode(b"x").decode()})
    assert status == 403
    listed = kms.list_grants(KeyId=key["KeyId"])["Grants"]
    assert [g["GrantId"] for g in listed] == [grant["GrantId"]]
    assert listed[0]["GranteePrincipal"] == second_arn and listed[0]["RetiringPrincipal"] == main_arn
    assert listed[0]["Operations"] == ["Encrypt", "Decrypt"] and listed[0]["Name"] == "second-uses"
    assert listed[0]["KeyId"] == key["Arn"]
    retirable = kms.list_retirable_grants(RetiringPrincipal=main_arn)["Grants"]
    assert grant["GrantId"] in [g["GrantId"] for g in retirable]
    # A grant never widens a token's caveats: the main token narrowed to wrap only,
    # granted Decrypt, still may not decrypt.
    kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=main_arn, Operations=["Decrypt"])
    narrow = client(env("COFFER_NARROW_ACCESS_KEY_ID"), env("COFFER_NARROW_SECRET_ACCESS_KEY"))
    assert error_type(narrow.decrypt, CiphertextBlob=sealed) == "AccessDeniedException"
    # Revoked: refused again; a grant revoked twice is not found.
    kms.revoke_grant(KeyId=key["KeyId"], GrantId=grant["GrantId"])
    assert error_type(second.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == "AccessDeniedException"
    assert error_type(kms.revoke_grant, KeyId=key["KeyId"], GrantId=grant["GrantId"]) == "NotFoundException"
    # Retired by its grantee, with the grant token.
    again = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=second_arn, Operations=["Encrypt"])
    assert second.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    second.retire_grant(GrantToken=again["GrantToken"])
    assert error_type(second.encrypt, KeyId=key["KeyId"], Plaintext=b"x") == "AccessDeniedException"

    # Refused grants: another account's or a malformed principal, an operation that
    # is not a grant's, constraints, another tenant's key.
    for principal in (f"arn:aws:iam::999999999999:user/{env('COFFER_SECOND_TOKEN_ID')}", "someone"):
        code = error_type(kms.create_grant, KeyId=key["KeyId"], GranteePrincipal=principal, Operations=["Encrypt"])
        assert code == "ValidationException", principal
    code = error_type(kms.create_grant, KeyId=key["KeyId"], GranteePrincipal=second_arn, Operations=["ScheduleKeyDeletion"])
    assert code == "ValidationException"
    code = error_type(kms.create_grant, KeyId=key["KeyId"], GranteePrincipal=second_arn, Operations=["Encrypt"],
                      Constraints={"EncryptionContextEquals": {"a": "b"}})
    assert code == "UnsupportedOperationException"
    other = client(env("COFFER_OTHER_ACCESS_KEY_ID"), env("COFFER_OTHER_SECRET_ACCESS_KEY"))
    code = error_type(other.create_grant, KeyId=elsewhere["KeyId"], GranteePrincipal=second_arn, Operations=["Encrypt"])
    assert code in ("NotFoundException", "ValidationException")

    # Policies outside the supported subset, or locking the caller out: refused whole.
    unsupported = [
        {"Statement": [{"Effect": "Allow", "Principal": {"AWS": main_arn}, "Action": "kms:*", "Resource": "*",
                        "Condition": {"StringEquals": {"kms:CallerAccount": account}}}]},
        {"Statement": [{"Effect": "Allow", "Principal": {"AWS": main_arn}, "NotAction": "kms:Decrypt", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "kms:*", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Principal": {"Service": "logs.amazonaws.com"}, "Action": "kms:*", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Principal": {"AWS": second_arn}, "Action": "kms:*", "Resource": "*"}]},
    ]
    for document in unsupported:
        code = error_type(unchecked.put_key_policy, KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(document))
        assert code == "MalformedPolicyDocumentException", document
    assert error_type(unchecked.put_key_policy, KeyId=key["KeyId"], PolicyName="default", Policy="not json") == "MalformedPolicyDocumentException"
    assert json.loads(kms.get_key_policy(KeyId=key["KeyId"])["Policy"]) == only_main
    code = error_type(kms.get_key_policy, KeyId=key["KeyId"], PolicyName="other")
    assert code == "NotFoundException"

    # Back to the account: the second token uses the key again.
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=default["Policy"])
    assert second.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"
    # A key made with a policy has it from the start.
    made = kms.create_key(Policy=json.dumps(only_main))["KeyMetadata"]
    assert error_type(second.encrypt, KeyId=made["KeyId"], Plaintext=b"x") == "AccessDeniedException"
    code = error_type(kms.create_key, Policy=json.dumps(unsupported[0]))
    assert code == "MalformedPolicyDocumentException"
