//! The server side of `coffer`: `serve`, `dev` and `init`.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use coffer_core::kms::MintToken;
use coffer_custody_sealed::Passphrase;
use coffer_server::config::LogFormat;
use coffer_server::startup::{self, InitMethod};
use coffer_server::{AppState, Config, CustodyConfig, Listeners};
use tokio::net::TcpListener;

use super::{Globals, print_json, print_line};

/// `coffer serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The TOML configuration (every key can also come from `COFFER_…` variables).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// `coffer dev`.
#[derive(Args)]
pub struct DevArgs {
    /// Where the embedded database, custody state and `dev.env` live.
    #[arg(long, default_value = "coffer-dev")]
    data_dir: PathBuf,
}

/// Custody methods for `init`.
#[derive(Clone, Copy, ValueEnum)]
enum Method {
    KeyFile,
    Passphrase,
    Shamir,
    /// A root key in the PKCS#11 token the configuration names (docs/hsm.md).
    Pkcs11,
}

/// `coffer init`.
#[derive(Args)]
pub struct InitArgs {
    /// The TOML configuration of the deployment to initialise.
    #[arg(long)]
    config: Option<PathBuf>,
    /// How the unseal key is held, or `pkcs11` for a root key in an HSM (default: the
    /// configuration's `custody.method`).
    #[arg(long, value_enum, alias = "custody")]
    method: Option<Method>,
    /// Shamir: number of shares.
    #[arg(long, default_value_t = 5)]
    shares: u8,
    /// Shamir: shares needed to unseal.
    #[arg(long, default_value_t = 3)]
    threshold: u8,
    /// Passphrase: a file (mode 0600) holding it.
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COFFER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// A future that resolves on SIGTERM or SIGINT. The handlers are installed when this
/// is called, not when it is first polled, so a signal sent right after the server
/// announced itself (in `dev.env`) still drains instead of killing the process.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

async fn run_server(
    state: AppState,
    config: &Config,
    on_bound: impl FnOnce(SocketAddr, SocketAddr) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let listeners = Listeners::bind(config).await?;
    let (api_addr, ops_addr) = (
        listeners.api.local_addr()?,
        listeners.operations.local_addr()?,
    );
    let grpc_addr = listeners
        .grpc
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let shutdown = shutdown_signal()?;
    match grpc_addr {
        Some(grpc_addr) => tracing::info!(%api_addr, %ops_addr, %grpc_addr, "serving"),
        None => tracing::info!(%api_addr, %ops_addr, "serving"),
    }
    on_bound(api_addr, ops_addr)?;
    coffer_server::serve_on(listeners, state, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// `coffer serve --config FILE`.
pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    init_logging(config.log_format);
    let state = startup::open(&config).await?;
    run_server(state, &config, |_, _| Ok(())).await
}

/// `coffer init`.
pub async fn init(global: &Globals, args: InitArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.config.as_deref())?;
    let state_file = config
        .custody
        .state_file()
        .map(ToOwned::to_owned)
        .unwrap_or_else(|| config.data_dir.join("custody.json"));
    let method = match args.method {
        Some(Method::KeyFile) => {
            config.custody = CustodyConfig::KeyFile {
                state_file,
                key_file: config.data_dir.join("unseal.key"),
            };
            InitMethod::KeyFile
        }
        Some(Method::Passphrase) => {
            let file = args
                .passphrase_file
                .context("--passphrase-file is required for the passphrase method")?;
            let passphrase = read_private(&file)?;
            config.custody = CustodyConfig::Passphrase {
                state_file,
                passphrase_file: None,
            };
            InitMethod::Passphrase(Passphrase::new(passphrase))
        }
        Some(Method::Shamir) => {
            config.custody = CustodyConfig::Shamir { state_file };
            InitMethod::Shamir {
                shares: args.shares,
                threshold: args.threshold,
            }
        }
        Some(Method::Pkcs11) => {
            anyhow::ensure!(
                matches!(config.custody, CustodyConfig::Pkcs11(_)),
                "--custody pkcs11 needs custody.method = \"pkcs11\" with custody.module, \
                 custody.token_label (or custody.slot) and custody.pin_file in the configuration"
            );
            InitMethod::Pkcs11
        }
        None => match &config.custody {
            CustodyConfig::Pkcs11(_) => InitMethod::Pkcs11,
            CustodyConfig::KeyFile { .. } => InitMethod::KeyFile,
            CustodyConfig::Shamir { .. } => InitMethod::Shamir {
                shares: args.shares,
                threshold: args.threshold,
            },
            CustodyConfig::Passphrase {
                passphrase_file, ..
            } => {
                let file = args
                    .passphrase_file
                    .as_ref()
                    .or(passphrase_file.as_ref())
                    .context("--passphrase-file is required for the passphrase method")?;
                InitMethod::Passphrase(Passphrase::new(read_private(file)?))
            }
        },
    };
    let (_, initialized) = startup::init(&config, method).await?;
    let shares: Vec<&str> = initialized
        .shares
        .iter()
        .map(|s| s.expose_secret())
        .collect();
    if global.json {
        print_json(
            &serde_json::json!({ "admin_token": initialized.admin_token, "shares": shares }),
        )?;
    } else {
        print_line(&format!("admin token: {}", initialized.admin_token))?;
        for (i, share) in shares.iter().enumerate() {
            print_line(&format!("unseal share {}: {share}", i + 1))?;
        }
        if shares.is_empty() {
            eprintln!("Keep the admin token safe; Coffer does not store it.");
        } else {
            eprintln!("Keep the admin token and each share apart; Coffer does not store them.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_private(path: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} must not be readable by group or others (chmod 600)",
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// Tokens `coffer dev` keeps in `dev.env` across restarts.
struct DevTokens {
    admin: String,
    tenant: String,
}

fn read_dev_env(path: &Path) -> anyhow::Result<DevTokens> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "{} is missing: remove the data directory to start afresh",
            path.display()
        )
    })?;
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
            .with_context(|| format!("{} has no {name}", path.display()))
    };
    Ok(DevTokens {
        admin: value("COFFER_ADMIN_TOKEN")?,
        tenant: value("COFFER_TOKEN")?,
    })
}

fn write_dev_env(
    path: &Path,
    api: SocketAddr,
    ops: SocketAddr,
    tokens: &DevTokens,
) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(
        file,
        "COFFER_ADDR=http://{api}\nCOFFER_OPS_ADDR=http://{ops}\nCOFFER_TOKEN={}\nCOFFER_ADMIN_TOKEN={}",
        tokens.tenant, tokens.admin
    )?;
    Ok(())
}

/// `coffer dev`: everything local on the embedded default, in one command.
pub async fn dev(args: DevArgs) -> anyhow::Result<ExitCode> {
    let data_dir = args.data_dir;
    let data_dir_text = data_dir.display().to_string();
    let config = Config::load_with(None, |name| match name {
        "COFFER_DATA_DIR" => Some(data_dir_text.clone()),
        // `dev` always uses the embedded store and a key file in its data directory.
        "COFFER_DATABASE_URL"
        | "COFFER_CUSTODY_METHOD"
        | "COFFER_CUSTODY_STATE_FILE"
        | "COFFER_CUSTODY_KEY_FILE" => None,
        other => std::env::var(other).ok(),
    })?;
    init_logging(config.log_format);
    let env_file = data_dir.join("dev.env");
    let (state, tokens) = if config.custody.state_file().is_some_and(|f| f.exists()) {
        (startup::open(&config).await?, read_dev_env(&env_file)?)
    } else {
        let (state, initialized) = startup::init(&config, InitMethod::KeyFile).await?;
        let admin = state.kms.authenticate(&initialized.admin_token)?;
        state.kms.create_tenant(&admin, "default").await?;
        let request = MintToken {
            tenant: Some("default".into()),
            description: "coffer dev".into(),
            ..MintToken::default()
        };
        let (tenant, _) = state.kms.mint_token(&admin, request).await?;
        (
            state,
            DevTokens {
                admin: initialized.admin_token,
                tenant,
            },
        )
    };
    run_server(state, &config, |api, ops| {
        write_dev_env(&env_file, api, ops, &tokens)?;
        let banner = format!(
            "\nCoffer is running (embedded SQLite and sealed-file custody in {dir}).\n\n  API:     http://{api}\n  Ops:     http://{ops}  (/healthz /readyz /metrics)\n  Token:   {token}\n\nIn another shell:\n\n  source {env}\n  coffer keys create --spec aes-256 --alias demo\n  echo -n 'hello' | coffer encrypt --key alias/demo > secret.b64\n  coffer decrypt --in secret.b64\n",
            dir = data_dir.display(),
            token = tokens.tenant,
            env = env_file.display(),
        );
        print_line(&banner)
    })
    .await
}
