//! The AWS front driven by the real AWS clients — boto3, the AWS CLI and the AWS
//! Encryption SDK for Python — against a real server: the pytest suite in
//! `tests/aws/`, run with the venv's Python (`.ci/run` creates it; `COFFER_AWS_VENV`
//! names another). Without the venv the test skips, unless
//! `COFFER_REQUIRE_AWS_CLIENTS=1` (set by CI), where it fails.

use std::collections::BTreeSet;
use std::path::PathBuf;

use coffer_api::admin::{MintTokenRequest, RevokeTokenRequest};
use coffer_audit::entry::ExportedEntry;
use coffer_core::token::{Caveat, Operation, Token};

use coffer_server::startup::InitMethod;

use super::harness::{Db, TestServer};

/// The fixed pair registered by the operator (the AWS documentation's example).
const FIXED_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const FIXED_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// The account id chosen for tenant globex.
const CHOSEN_ACCOUNT: &str = "123456789012";

pub fn venv_python() -> Option<PathBuf> {
    let venv =
        std::env::var("COFFER_AWS_VENV").unwrap_or_else(|_| "/var/tmp/coffer-aws-venv".to_owned());
    let python = PathBuf::from(venv).join("bin/python");
    if python.exists() {
        return Some(python);
    }
    assert!(
        std::env::var("COFFER_REQUIRE_AWS_CLIENTS").as_deref() != Ok("1"),
        "COFFER_REQUIRE_AWS_CLIENTS=1 and no venv at {} (.ci/run creates it)",
        python.display()
    );
    eprintln!("skipped: no AWS client venv at {}", python.display());
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_aws_cli_and_encryption_sdk_work_against_coffer() {
    let Some(python) = venv_python() else {
        return;
    };
    // An operator-registered fixed pair (aws.static_keys_file) needs a token of this
    // deployment: start with an empty file, mint, register, restart.
    let keys_file = super::harness::temp_dir().join("aws-keys");
    std::fs::write(&keys_file, "# no keys yet\n").unwrap();
    let keys_path = keys_file.display().to_string();
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::KeyFile,
        &[("COFFER_AWS_STATIC_KEYS_FILE", &keys_path)],
    )
    .await
    .unwrap();
    let token = server.tenant_token("acme").await;
    std::fs::write(&keys_file, format!("{FIXED_ID} {FIXED_SECRET} {token}\n")).unwrap();
    let server = server.restart().await;

    // The access key of the tenant token, as a user gets it: `coffer token aws-key`.
    let (code, out, err) = server.cli(&token, &["--json", "token", "aws-key"]);
    assert_eq!(code, 0, "{err}");
    let printed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let access_key_id = printed["access_key_id"].as_str().unwrap().to_owned();
    let secret = printed["secret_access_key"].as_str().unwrap().to_owned();

    // A tenant with a chosen account id (unique, 12 digits), made with the CLI.
    let (code, out, err) = server.cli(
        &server.admin_token,
        &[
            "--json",
            "tenant",
            "create",
            "globex",
            "--aws-account-id",
            CHOSEN_ACCOUNT,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let globex: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(globex["aws_account_id"], CHOSEN_ACCOUNT);
    for (name, account, why) in [
        ("initech", CHOSEN_ACCOUNT, "AWS account id is already taken"),
        ("hooli", "12345", "exactly 12 digits"),
    ] {
        let (code, _, err) = server.cli(
            &server.admin_token,
            &["tenant", "create", name, "--aws-account-id", account],
        );
        assert_ne!(code, 0, "{name} with account {account} was created");
        assert!(err.contains(why), "{err}");
    }
    let globex_token = server
        .admin()
        .mint_token(&MintTokenRequest {
            tenant: Some("globex".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .token;
    let globex_key = Token::decode(&globex_token).unwrap().aws_credentials();

    // A narrower key: the token attenuated to encrypt (wrap) only.
    let narrow = Token::decode(&token)
        .unwrap()
        .attenuate(Caveat::Ops(BTreeSet::from([Operation::Wrap])))
        .unwrap()
        .aws_credentials();

    // A key-scoped key: the token attenuated to the key an alias names.
    let scoped = Token::decode(&token)
        .unwrap()
        .attenuate(Caveat::Keys(BTreeSet::from([
            "alias/aws-scope-inside".to_owned()
        ])))
        .unwrap()
        .aws_credentials();

    // A revoked token's key.
    let minted = server
        .admin()
        .mint_token(&MintTokenRequest {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    server
        .admin()
        .revoke_token(&RevokeTokenRequest {
            token_id: minted.token_id.clone(),
        })
        .await
        .unwrap();
    let revoked = Token::decode(&minted.token).unwrap().aws_credentials();

    // A second token of acme (another principal, for key policies and grants).
    let second = server
        .admin()
        .mint_token(&MintTokenRequest {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .token;
    let second_token = Token::decode(&second).unwrap();
    let second_key = second_token.aws_credentials();
    let main_token_id = Token::decode(&token).unwrap().id().to_string();

    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/aws");
    let mut command = std::process::Command::new(&python);
    command
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"])
        .arg(&tests)
        .current_dir(&tests)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", crate::service::harness::temp_dir())
        .env("COFFER_AWS_ENDPOINT", &server.api)
        .env("AWS_ENDPOINT_URL_KMS", &server.api)
        .env("AWS_DEFAULT_REGION", "eu-west-3")
        .env("AWS_ACCESS_KEY_ID", &access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("COFFER_NARROW_ACCESS_KEY_ID", &narrow.access_key_id)
        .env("COFFER_NARROW_SECRET_ACCESS_KEY", narrow.expose_secret())
        .env("COFFER_SCOPED_ACCESS_KEY_ID", &scoped.access_key_id)
        .env("COFFER_SCOPED_SECRET_ACCESS_KEY", scoped.expose_secret())
        .env("COFFER_REVOKED_ACCESS_KEY_ID", &revoked.access_key_id)
        .env("COFFER_REVOKED_SECRET_ACCESS_KEY", revoked.expose_secret())
        .env("COFFER_OTHER_ACCESS_KEY_ID", &globex_key.access_key_id)
        .env("COFFER_OTHER_SECRET_ACCESS_KEY", globex_key.expose_secret())
        .env("COFFER_OTHER_ACCOUNT", CHOSEN_ACCOUNT)
        .env("COFFER_FIXED_ACCESS_KEY_ID", FIXED_ID)
        .env("COFFER_FIXED_SECRET_ACCESS_KEY", FIXED_SECRET)
        .env("COFFER_NATIVE_URL", &server.api)
        .env("COFFER_NATIVE_TOKEN", &token)
        .env("COFFER_MAIN_TOKEN_ID", &main_token_id)
        .env("COFFER_SECOND_ACCESS_KEY_ID", &second_key.access_key_id)
        .env(
            "COFFER_SECOND_SECRET_ACCESS_KEY",
            second_key.expose_secret(),
        )
        .env("COFFER_SECOND_TOKEN", &second)
        .env("COFFER_SECOND_TOKEN_ID", second_token.id().to_string());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "pytest failed:\n{report}");
    // Every test ran: none skipped, so a missing module cannot pass silently.
    assert!(!report.contains("skipped"), "{report}");

    // The audit trail names the AWS operation and the access key with the token.
    let token_id = Token::decode(&token).unwrap().id().to_string();
    let log = server.admin().audit_entries(0, 10_000).await.unwrap();
    let entries: Vec<ExportedEntry> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let via_aws = |op: &str, aws_op: &str| {
        entries.iter().any(|e| {
            e.entry.op == op
                && e.entry.principal == format!("{token_id} aws:{access_key_id}:{aws_op}")
        })
    };
    assert!(via_aws("wrap", "Encrypt"), "no Encrypt entry");
    assert!(via_aws("unwrap", "Decrypt"), "no Decrypt entry");
    assert!(via_aws("keys.create", "CreateKey"), "no CreateKey entry");
    assert!(
        via_aws("keys.alias.add", "CreateAlias"),
        "no CreateAlias entry"
    );
    assert!(
        via_aws("keys.alias.set", "UpdateAlias"),
        "no UpdateAlias entry"
    );
    assert!(
        via_aws("keys.alias.remove", "DeleteAlias"),
        "no DeleteAlias entry"
    );
    assert!(
        via_aws("datakey.pair", "GenerateDataKeyPair"),
        "no GenerateDataKeyPair entry"
    );
    assert!(
        via_aws("keys.labels", "UpdateKeyDescription"),
        "no UpdateKeyDescription entry"
    );
    assert!(via_aws("keys.tags", "TagResource"), "no TagResource entry");
    assert!(
        via_aws("keys.tags", "UntagResource"),
        "no UntagResource entry"
    );
    assert!(
        via_aws("keys.tags.list", "ListResourceTags"),
        "no ListResourceTags entry"
    );
    assert!(via_aws("encrypt", "Encrypt"), "no RSA Encrypt entry");
    assert!(via_aws("decrypt", "Decrypt"), "no RSA Decrypt entry");
    let refused = |op: &str, aws_op: &str| {
        entries.iter().any(|e| {
            e.entry.op == op
                && e.entry.outcome != "ok"
                && e.entry.principal.ends_with(&format!(":{aws_op}"))
        })
    };
    // A signing algorithm not the key's is refused before signing: the only sign
    // entries through Sign that are not `ok` are those refusals (no signature made).
    assert!(refused("sign", "Sign"), "no refused Sign entry");
    assert!(
        via_aws("keys.policy.put", "PutKeyPolicy"),
        "no PutKeyPolicy entry"
    );
    assert!(
        via_aws("keys.grant.create", "CreateGrant"),
        "no CreateGrant entry"
    );
    assert!(
        via_aws("keys.grant.revoke", "RevokeGrant"),
        "no RevokeGrant entry"
    );
    // A use the key's policy refuses is recorded as refused, naming the second token.
    let second_id = second_token.id().to_string();
    assert!(entries.iter().any(|e| {
        e.entry.op == "wrap"
            && e.entry.outcome == "forbidden"
            && e.entry.principal.starts_with(&second_id)
    }));
    assert!(
        refused("keys.rotate", "RotateKeyOnDemand"),
        "no refused RotateKeyOnDemand entry"
    );
    // An alias already taken: refused, and recorded as refused.
    assert!(entries.iter().any(|e| {
        e.entry.op == "keys.alias.add"
            && e.entry.outcome != "ok"
            && e.entry.principal.ends_with(":CreateAlias")
    }));
    // A refused call through the narrow key is recorded as refused.
    assert!(entries.iter().any(|e| {
        e.entry.op == "unwrap"
            && e.entry.outcome == "forbidden"
            && e.entry.principal.contains(&narrow.access_key_id)
    }));
}
