//! `coffer config check FILE` (seed 002 §6.1): every unknown key named, then the first
//! bad value; the example configuration passes; the process environment applies as
//! it does for `coffer serve`.

use std::process::Command;

fn check(text: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let file = super::harness::temp_dir().join("coffer.toml");
    std::fs::write(&file, text).unwrap();
    check_file(&file, env)
}

fn check_file(file: &std::path::Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .env_clear()
        .envs(env.iter().copied())
        .args(["config", "check"])
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn config_check_names_every_bad_key_and_passes_the_example() {
    let (code, _, err) = check(
        "max_inflight_sing = 5\ntenant_share_min = 0.05\n[custody]\npin = \"1\"\n",
        &[],
    );
    assert_eq!(code, 1);
    for key in ["`max_inflight_sing`", "`custody.pin`"] {
        assert!(err.contains(key), "{key} not named: {err}");
    }
    assert!(!err.contains("tenant_share_min"), "{err}");

    let (code, _, err) = check("tenant_share_min = 2.0\n", &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("invalid config key `tenant_share_min`"),
        "{err}"
    );

    // The environment applies, as for `coffer serve`.
    let (code, _, err) = check("", &[("COFFER_MAX_INFLIGHT_VERIFY", "0")]);
    assert_eq!(code, 1);
    assert!(err.contains("`max_inflight_verify`"), "{err}");

    let (code, _, err) = check("not toml = = =\n", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("(file)"), "{err}");

    let example = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../coffer.example.toml"
    ));
    let (code, out, err) = check_file(example, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim_end().ends_with(": ok"), "{out}");
}

#[test]
fn config_get_prints_the_effective_value_and_its_source() {
    let file = super::harness::temp_dir().join("coffer.toml");
    std::fs::write(&file, "max_inflight_sign = 300\ncache_ttl = \"1m\"\n").unwrap();
    let get = |key: &str, env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
            .env_clear()
            .envs(env.iter().copied())
            .args(["config", "get", key, "--config"])
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(
        get("max_inflight_sign", &[]).1,
        "max_inflight_sign=300 source=file"
    );
    assert_eq!(
        get("cache_ttl", &[("COFFER_CACHE_TTL", "5m")]).1,
        "cache_ttl=5m source=env"
    );
    assert_eq!(
        get("tenant_share_min", &[]).1,
        "tenant_share_min=0.05 source=default"
    );
    assert_eq!(
        get("custody.module", &[]).1,
        "custody.module=(not used) source=default"
    );
    let (code, _, err) = get("max_inflight_sing", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("`max_inflight_sing`"), "{err}");
    // A configuration that does not load has no effective values.
    let (code, _, err) = get("cache_ttl", &[("COFFER_MAX_INFLIGHT_SIGN", "0")]);
    assert_eq!(code, 1);
    assert!(err.contains("`max_inflight_sign`"), "{err}");
}

/// `URL` with a password in it, and the password: the test URL's own, or one added
/// (PostgreSQL's trust authentication, which the test database uses, ignores it).
fn with_password(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest
        .split_once('@')
        .expect("a user in COFFER_TEST_DATABASE_URL");
    match userinfo.split_once(':') {
        Some((_, password)) => (url.to_owned(), password.to_owned()),
        None => {
            let password = "s3cret-db-password";
            (
                format!("{scheme}://{userinfo}:{password}@{host}"),
                password.to_owned(),
            )
        }
    }
}

/// `coffer config get --server OPS`: a running server's configuration, from its
/// operations port: a value the environment changed, with its source, and the database
/// URL without its password; `--config`/`--local` still read a file and this
/// environment instead; no server answering is an error naming them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_get_reads_a_running_servers_configuration_from_its_ops_port() {
    let Some(url) = super::harness::postgres_url().await else {
        return;
    };
    let (url, password) = with_password(&url);
    let server = super::harness::TestServer::start_with(
        super::harness::Db::Sqlite,
        coffer_server::startup::InitMethod::KeyFile,
        &[
            ("COFFER_DATABASE_URL", &url),
            ("COFFER_MAX_INFLIGHT_SIGN", "300"),
            ("COFFER_PQ_ROLLOUT_PERCENT", "30"),
        ],
    )
    .await
    .unwrap();
    let get = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
            .env_clear()
            .args(["config", "get"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ops = server.ops.as_str();
    let (code, out, err) = get(&["max_inflight_sign", "--server", ops]);
    assert_eq!(
        (code, out.trim()),
        (0, "max_inflight_sign=300 source=env"),
        "{err}"
    );
    let (_, out, _) = get(&["pq_rollout_percent", "--server", ops]);
    assert_eq!(out.trim(), "pq_rollout_percent=30 source=env");
    let (_, out, _) = get(&["pq_produce_hybrid", "--server", ops]);
    assert_eq!(out.trim(), "pq_produce_hybrid=true source=default");

    // Every key, the secret redacted; the JSON answer too.
    let (code, all, err) = get(&["--server", ops]);
    assert_eq!(code, 0, "{err}");
    assert!(!all.contains(&password), "{all}");
    let database = all
        .lines()
        .find(|l| l.starts_with("database_url="))
        .unwrap();
    assert!(database.contains(":***@"), "{database}");
    assert!(database.ends_with(" source=env"), "{database}");
    assert!(
        all.contains("custody.module=(not used) source=default"),
        "{all}"
    );
    let (_, local, _) = get(&["--local"]);
    assert_eq!(all.lines().count(), local.lines().count(), "{all}");
    let (_, json, _) = get(&["--server", ops, "--json"]);
    assert!(!json.contains(&password));
    let view: coffer_api::admin::RunningConfigView = serde_json::from_str(&json).unwrap();
    assert_eq!(view.settings.len(), all.lines().count());
    let direct = server.anonymous().running_config(ops).await.unwrap();
    assert_eq!(direct, view);

    // An unknown key; the file and environment view when asked; no server.
    let (code, _, err) = get(&["max_inflight_sing", "--server", ops]);
    assert_eq!(code, 1);
    assert!(err.contains("`max_inflight_sing`"), "{err}");
    let (code, out, _) = get(&["max_inflight_sign", "--local"]);
    assert_eq!(
        (code, out.trim()),
        (0, "max_inflight_sign=512 source=default")
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (code, _, err) = get(&["max_inflight_sign", "--server", &nobody]);
    assert_eq!(code, 1);
    assert!(err.contains("--config FILE or --local"), "{err}");
}
