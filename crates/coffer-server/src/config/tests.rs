use super::*;

pub(super) fn load(toml_text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = std::env::temp_dir().join(format!("coffer-config-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("coffer.toml");
    std::fs::write(&path, toml_text).unwrap();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load_with(Some(&path), |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
}

#[test]
fn defaults_and_environment_overrides() {
    let config = load(
        "data_dir = \"/srv/coffer\"\n",
        &[
            ("COFFER_API_ADDR", "0.0.0.0:19446"),
            ("COFFER_CUSTODY_METHOD", "shamir"),
            ("COFFER_LIMITS_HEAVY_QUEUE", "3"),
        ],
    )
    .unwrap();
    assert_eq!(config.limits.heavy_queue, 3);
    assert_eq!(config.api_addr.port(), 19446);
    assert_eq!(config.metrics_addr.port(), 9909);
    assert_eq!(
        config.database_url,
        "sqlite:///srv/coffer/coffer.db?mode=rwc"
    );
    assert_eq!(
        config.custody,
        CustodyConfig::Shamir {
            state_file: "/srv/coffer/custody.json".into()
        }
    );
}

#[test]
fn debug_output_hides_the_database_password() {
    let config = load(
        "database_url = \"postgres://coffer:hunter2@db:5432/kms\"\n",
        &[],
    )
    .unwrap();
    let text = format!("{config:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("postgres://coffer:***@db:5432/kms"), "{text}");
}

#[test]
fn bad_values_name_their_key() {
    let err = load("api_addr = \"nonsense\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`api_addr`"), "{err}");
    let err = load("", &[("COFFER_MAX_BODY_BYTES", "12")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`max_body_bytes`"), "{err}");
    let err = load("colour = \"blue\"\n", &[]).unwrap_err().to_string();
    assert!(err.contains("colour"), "{err}");
    let err = load("[limits]\nheavy_workers = 4\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("heavy_workers"), "{err}");
    let err = load("[custody]\nmethod = \"hsm\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`custody.method`"), "{err}");
}

#[test]
fn pkcs11_custody_names_module_token_and_pin_file() {
    let config = load(
        "[custody]\nmethod = \"pkcs11\"\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\ntoken_label = \"coffer\"\npin_file = \"/etc/coffer/pin\"\n",
        &[("COFFER_CUSTODY_POOL_SIZE", "8")],
    )
    .unwrap();
    let CustodyConfig::Pkcs11(settings) = &config.custody else {
        panic!("pkcs11 expected: {:?}", config.custody);
    };
    assert_eq!(
        settings.token,
        coffer_custody_pkcs11::TokenSelector::Label("coffer".into())
    );
    assert_eq!(settings.pool_size, 8);
    assert_eq!(settings.key_label, "coffer-root");
    assert_eq!(settings.failover, Failover::None);
    assert!(config.custody.state_file().is_none());
    let slot = load(
        "[custody]\nmethod = \"pkcs11\"\nmodule = \"/m.so\"\n",
        &[
            ("COFFER_CUSTODY_SLOT", "7"),
            ("COFFER_CUSTODY_FAILOVER", "verify-only"),
        ],
    )
    .unwrap();
    assert!(matches!(
        slot.custody,
        CustodyConfig::Pkcs11(Pkcs11Settings {
            token: coffer_custody_pkcs11::TokenSelector::Slot(7),
            failover: Failover::VerifyOnly,
            ..
        })
    ));
    for (text, key) in [
        ("[custody]\nmethod = \"pkcs11\"\n", "custody.module"),
        (
            "[custody]\nmethod = \"pkcs11\"\nmodule = \"/m.so\"\n",
            "custody.token_label",
        ),
        (
            "[custody]\nmethod = \"pkcs11\"\nmodule = \"/m.so\"\nslot = 1\ntoken_label = \"x\"\n",
            "custody.token_label",
        ),
        (
            "[custody]\nmethod = \"pkcs11\"\nmodule = \"/m.so\"\nslot = 1\nfailover = \"read-only\"\n",
            "custody.failover",
        ),
    ] {
        let err = load(text, &[]).unwrap_err().to_string();
        assert!(err.contains(key), "{err}");
    }
    // No PIN file and no PIN variable: refused, naming the key.
    let CustodyConfig::Pkcs11(settings) = &slot.custody else {
        unreachable!()
    };
    let err = settings
        .resolve(|_| None)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("custody.pin_file"), "{err}");
}
