//! What the load goes to: an embedded Coffer (temp dir, SQLite or PostgreSQL, key-file
//! custody, audit on unless asked) and the no-op baseline server.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use coffer_api::admin::{CreateTenantRequest, MintTokenRequest};
use coffer_client::Client;
use coffer_core::kms::MintToken;
use coffer_server::Config;
use coffer_server::admission::Admission;
use coffer_server::startup::{self, InitMethod};
use tokio::net::TcpListener;

/// A running Coffer and a tenant token for it.
pub struct Target {
    pub api: String,
    /// The operations port (`/metrics`).
    pub ops: String,
    pub token: String,
    /// The server's caps and per-tenant floors, as it enforces them.
    pub admission: Arc<Admission>,
    /// Mints tokens for more tenants (`tenant`).
    admin: String,
}

impl Target {
    /// Creates tenant `name` and returns a token for it.
    pub async fn tenant(&self, name: &str) -> anyhow::Result<String> {
        let admin = Client::new(&self.api, Some(self.admin.clone()))?;
        admin
            .create_tenant(&CreateTenantRequest {
                name: name.into(),
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating tenant {name}"))?;
        let minted = admin
            .mint_token(&MintTokenRequest {
                tenant: Some(name.into()),
                ..Default::default()
            })
            .await
            .with_context(|| format!("minting a token for tenant {name}"))?;
        Ok(minted.token)
    }
}

/// Where the embedded server's other configuration comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Settings {
    /// Defaults only: benchmark figures do not depend on the caller's shell.
    Defaults,
    /// `COFFER_*` variables of this process (caps, cache sizes, …): drills run with
    /// the limits the operator is testing.
    FromEnvironment,
}

/// Starts Coffer in this process on an ephemeral port.
pub async fn start_embedded(
    audit_off: bool,
    database_url: Option<&str>,
    settings: Settings,
) -> anyhow::Result<Target> {
    let dir = std::env::temp_dir().join(format!("coffer-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_text = dir.display().to_string();
    let audit = if audit_off { "false" } else { "true" };
    let database_url = database_url.map(str::to_owned);
    let config = Config::load_with(None, |name| match name {
        "COFFER_DATA_DIR" => Some(dir_text.clone()),
        "COFFER_AUDIT_ENABLED" => Some(audit.to_owned()),
        "COFFER_DATABASE_URL" => database_url.clone(),
        // Key creation runs for seconds at thousands a second: past the default quota
        // of 10,000 keys a tenant, every creation would be a cheap 429.
        "COFFER_QUOTAS_KEYS_PER_TENANT" => Some("10000000".to_owned()),
        // Listeners are bound here, custody is a key file in the temp dir.
        "COFFER_API_ADDR"
        | "COFFER_METRICS_ADDR"
        | "COFFER_CUSTODY_METHOD"
        | "COFFER_CUSTODY_STATE_FILE"
        | "COFFER_CUSTODY_KEY_FILE" => None,
        other if settings == Settings::FromEnvironment => std::env::var(other).ok(),
        _ => None,
    })?;
    let (state, init) = startup::init(&config, InitMethod::KeyFile)
        .await
        .context("initialising the embedded server")?;
    let admin = state.kms.authenticate(&init.admin_token)?;
    state.kms.create_tenant(&admin, "bench").await?;
    let (token, _) = state
        .kms
        .mint_token(
            &admin,
            MintToken {
                tenant: Some("bench".into()),
                ..MintToken::default()
            },
        )
        .await?;
    let api = TcpListener::bind("127.0.0.1:0").await?;
    let ops = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", api.local_addr()?);
    let ops_url = format!("http://{}", ops.local_addr()?);
    eprintln!("embedded Coffer: API {url}, operations {ops_url}");
    let admission = state.admission.clone();
    tokio::spawn(coffer_server::serve(
        api,
        ops,
        state,
        std::future::pending(),
    ));
    Ok(Target {
        api: url,
        ops: ops_url,
        token,
        admission,
        admin: init.admin_token.clone(),
    })
}

/// The baseline's answer: the size of a wrap answer.
static NOOP_ANSWER: &str = r#"{"ciphertext":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","key_id":"00000000-0000-0000-0000-000000000000","key_version":1}"#;

/// The same HTTP stack (axum, hyper, tokio) answering a JSON request of the same size
/// with a JSON answer of the same size: no auth, no crypto, no audit, no store.
pub async fn start_baseline() -> anyhow::Result<String> {
    async fn noop(body: Bytes) -> Response {
        // Parse the body as the real handlers do, so JSON costs the same.
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(_) => ([("content-type", "application/json")], NOOP_ANSWER).into_response(),
            Err(_) => StatusCode::BAD_REQUEST.into_response(),
        }
    }
    let app = Router::new().route("/noop", post(noop));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}
