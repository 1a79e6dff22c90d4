//! SoftHSM2 tokens for the tests: one configuration per test process (SoftHSM reads
//! `SOFTHSM2_CONF` when the module initialises), a fresh token per test.
//!
//! SoftHSM looks for tokens only when the module initialises, so the tokens a process
//! will use are all made (with `softhsm2-util`) before the module first loads, and each
//! test takes the next unused one.
//!
//! Without SoftHSM the tests skip, unless `COFFER_REQUIRE_SOFTHSM=1` (set by CI), when
//! they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use coffer_custody_pkcs11::{Pin, Pkcs11Config, TokenSelector};

pub const PIN: &str = "4321-user";
const SO_PIN: &str = "8765-so";

const MODULES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
];

/// Tokens made per test process; more than the tests of one binary take.
const TOKENS: usize = 24;

#[allow(dead_code)] // each test binary uses its own part
pub struct SoftHsm {
    pub module: PathBuf,
    pub dir: PathBuf,
    pub conf: PathBuf,
    labels: Vec<String>,
    next: AtomicUsize,
}

/// The process's SoftHSM, or `None` (skip) when it is not installed and not required.
pub fn softhsm() -> Option<&'static SoftHsm> {
    static HSM: OnceLock<Option<SoftHsm>> = OnceLock::new();
    HSM.get_or_init(|| {
        let module = MODULES.iter().map(PathBuf::from).find(|p| p.exists());
        let tool = Command::new("softhsm2-util")
            .arg("--version")
            .output()
            .is_ok();
        let (Some(module), true) = (module, tool) else {
            assert!(
                std::env::var("COFFER_REQUIRE_SOFTHSM").as_deref() != Ok("1"),
                "COFFER_REQUIRE_SOFTHSM=1 but SoftHSM2 is not installed (apt-get install softhsm2)"
            );
            eprintln!("SoftHSM2 not installed: skipping");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir").keep();
        std::fs::create_dir(dir.join("tokens")).expect("tokens dir");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.join("tokens").display()
            ),
        )
        .expect("conf");
        let prefix = &uuid_like()[..8];
        let labels: Vec<String> = (0..TOKENS).map(|i| format!("t{prefix}-{i}")).collect();
        for label in &labels {
            init_token(&conf, label);
        }
        // SAFETY-free by construction: set once, before the module is first loaded and
        // before any test thread reads it (every test reaches the module through here).
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("SOFTHSM2_CONF", &conf);
        }
        Some(SoftHsm {
            module,
            dir,
            conf,
            labels,
            next: AtomicUsize::new(0),
        })
    })
    .as_ref()
}

impl SoftHsm {
    /// A token no other test of this process uses; returns its label.
    pub fn new_token(&self) -> String {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.labels
            .get(i)
            .unwrap_or_else(|| panic!("more than {TOKENS} tokens taken: raise TOKENS"))
            .clone()
    }

    pub fn config(&self, label: &str) -> Pkcs11Config {
        let mut config = Pkcs11Config::new(
            &self.module,
            TokenSelector::Label(label.to_owned()),
            Pin::new(PIN.to_owned()),
        );
        config.backoff_min = std::time::Duration::from_millis(20);
        config.backoff_max = std::time::Duration::from_millis(200);
        config
    }
}

pub fn init_token(conf: &Path, label: &str) {
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            PIN,
            "--so-pin",
            SO_PIN,
        ])
        .output()
        .expect("softhsm2-util");
    assert!(
        out.status.success(),
        "softhsm2-util --init-token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn uuid_like() -> String {
    let bytes = coffer_crypto::SecretBytes::random(8).expect("random");
    bytes
        .expose_secret()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
