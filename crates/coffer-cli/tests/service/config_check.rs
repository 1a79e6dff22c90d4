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
