//! Starting a real server for a test.

use std::path::PathBuf;

use coffer_api::admin::{CreateTenantRequest, MintTokenRequest};
use coffer_client::Client;
use coffer_server::startup::{self, InitMethod, Initialized};
use coffer_server::{AppState, Config};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A running server.
pub struct TestServer {
    pub api: String,
    pub ops: String,
    /// The gRPC front's address (`host:port`), when `COFFER_GRPC_ADDR` configured one.
    pub grpc: Option<String>,
    pub admin_token: String,
    pub shares: Vec<String>,
    /// The data directory (database, custody state).
    pub dir: PathBuf,
    /// The database the server uses (tests tamper with it directly).
    pub database_url: String,
    pub state: AppState,
    /// The configuration variables it started with (a restart reuses them).
    vars: Vec<(String, String)>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<std::io::Result<()>>>,
}

/// A deployment whose server was stopped.
pub struct Stopped {
    vars: Vec<(String, String)>,
    admin_token: String,
    shares: Vec<String>,
    /// The data directory.
    pub dir: PathBuf,
    /// The database (tests tamper with it while no server runs).
    pub database_url: String,
}

impl Stopped {
    /// A deployment configured by `vars` (`COFFER_…` variables; addresses default to
    /// ephemeral ports), not started: one a test put on disk itself (a restore).
    pub fn configured(vars: &[(&str, &str)], admin_token: &str) -> Self {
        let mut all: Vec<(String, String)> = vec![
            ("COFFER_API_ADDR".into(), "127.0.0.1:0".into()),
            ("COFFER_METRICS_ADDR".into(), "127.0.0.1:0".into()),
        ];
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = config(&all);
        Self {
            dir: config.data_dir.clone(),
            database_url: config.database_url.clone(),
            vars: all,
            admin_token: admin_token.to_owned(),
            shares: Vec::new(),
        }
    }

    /// Opens the deployment again, as `coffer serve` does: new ports, key-file custody
    /// unsealed at once.
    pub async fn start(self) -> TestServer {
        self.try_start().await.unwrap()
    }

    /// [`Stopped::start`], answering the start's error instead of panicking.
    pub async fn try_start(&self) -> Result<TestServer, startup::StartError> {
        let state = startup::open(&config(&self.vars)).await?;
        Ok(TestServer::serve(
            state,
            self.vars.clone(),
            self.admin_token.clone(),
            self.shares.clone(),
        )
        .await)
    }

    /// Sets a configuration variable for the next start (it wins over earlier ones).
    pub fn with_var(mut self, name: &str, value: &str) -> Self {
        self.vars.push((name.to_owned(), value.to_owned()));
        self
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The configuration `vars` give (later variables win).
fn config(vars: &[(String, String)]) -> Config {
    Config::load_with(None, |name| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
}

pub fn temp_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("coffer-service")
        .join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A URL whose connections use a fresh schema of their own (`None`: skipped).
pub async fn postgres_url() -> Option<String> {
    coffer_store_sql::testing::postgres_url("coffer_s").await
}

impl TestServer {
    /// The `COFFER_…` variables this server was configured with.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// Runs the `coffer` binary against this server as `token`: exit code, stdout,
    /// stderr. The environment is cleared, so only what is given here reaches it.
    pub fn cli(&self, token: &str, args: &[&str]) -> (i32, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
            .env_clear()
            .env("COFFER_ADDR", &self.api)
            .env("COFFER_TOKEN", token)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// SQLite, key-file custody.
    pub async fn start() -> Self {
        Self::start_with(Db::Sqlite, InitMethod::KeyFile, &[])
            .await
            .unwrap()
    }

    /// `None` when `db` is PostgreSQL and it is not configured.
    pub async fn start_with(db: Db, method: InitMethod, env: &[(&str, &str)]) -> Option<Self> {
        Self::start_in(temp_dir(), db, method, env).await
    }

    /// As [`Self::start_with`], with the data directory `dir` (which may exist, but
    /// must hold no deployment yet).
    pub async fn start_in(
        dir: PathBuf,
        db: Db,
        method: InitMethod,
        env: &[(&str, &str)],
    ) -> Option<Self> {
        let mut vars: Vec<(String, String)> = vec![
            ("COFFER_DATA_DIR".into(), dir.display().to_string()),
            ("COFFER_API_ADDR".into(), "127.0.0.1:0".into()),
            ("COFFER_METRICS_ADDR".into(), "127.0.0.1:0".into()),
        ];
        let custody = match method {
            InitMethod::KeyFile => "key-file",
            InitMethod::Passphrase(_) => "passphrase",
            InitMethod::Shamir { .. } => "shamir",
            InitMethod::Pkcs11 => "pkcs11",
        };
        vars.push(("COFFER_CUSTODY_METHOD".into(), custody.into()));
        if db == Db::Postgres {
            vars.push(("COFFER_DATABASE_URL".into(), postgres_url().await?));
        }
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = config(&vars);
        let (
            state,
            Initialized {
                admin_token,
                shares,
            },
        ) = startup::init(&config, method).await.unwrap();
        let shares = shares
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect();
        Some(Self::serve(state, vars, admin_token, shares).await)
    }

    /// Another replica of this deployment: the same data directory (custody state and
    /// key file) and database, opened as `coffer serve` opens it, on new ports. Only
    /// meaningful on PostgreSQL, which replicas share.
    pub async fn replica(&self) -> TestServer {
        let state = startup::open(&config(&self.vars)).await.unwrap();
        Self::serve(
            state,
            self.vars.clone(),
            self.admin_token.clone(),
            self.shares.clone(),
        )
        .await
    }

    /// Stops this server (draining its requests) and opens its deployment again, as
    /// `coffer serve` does after a restart: same data directory and database, new
    /// ports. Key-file custody unseals at once; other methods start sealed.
    pub async fn restart(self) -> Self {
        self.stop().await.start().await
    }

    /// A second server on this one's deployment (its database and custody state), as
    /// another replica would be: new ports, key-file custody unsealed at once. Only for
    /// PostgreSQL, which replicas share; SQLite has one process per file.
    pub async fn another_replica(&self) -> Self {
        let state = startup::open(&config(&self.vars)).await.unwrap();
        Self::serve(
            state,
            self.vars.clone(),
            self.admin_token.clone(),
            self.shares.clone(),
        )
        .await
    }

    /// Stops this server, draining its requests; its deployment stays on disk (and in
    /// the database) for [`Stopped::start`], so a test can change it in between.
    pub async fn stop(mut self) -> Stopped {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap().unwrap();
        }
        let stopped = Stopped {
            vars: std::mem::take(&mut self.vars),
            admin_token: std::mem::take(&mut self.admin_token),
            shares: std::mem::take(&mut self.shares),
            dir: self.dir.clone(),
            database_url: self.database_url.clone(),
        };
        drop(self);
        stopped
    }

    async fn serve(
        state: AppState,
        vars: Vec<(String, String)>,
        admin_token: String,
        shares: Vec<String>,
    ) -> Self {
        let config = config(&vars);
        // As `coffer serve` binds them (the variables name port 0 on loopback): the
        // gRPC port only when configured.
        let listeners = coffer_server::Listeners::bind(&config).await.unwrap();
        let (api_url, ops_url) = (
            format!("http://{}", listeners.api.local_addr().unwrap()),
            format!("http://{}", listeners.operations.local_addr().unwrap()),
        );
        let grpc = listeners
            .grpc
            .as_ref()
            .map(|l| l.local_addr().unwrap().to_string());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(coffer_server::serve_on(
            listeners,
            state.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            api: api_url,
            ops: ops_url,
            grpc,
            admin_token,
            shares,
            dir: config.data_dir.clone(),
            database_url: config.database_url.clone(),
            state,
            vars,
            stop: Some(stop),
            served: Some(served),
        }
    }

    pub fn client(&self, token: &str) -> Client {
        Client::new(&self.api, Some(token.to_owned())).unwrap()
    }

    pub fn anonymous(&self) -> Client {
        Client::new(&self.api, None).unwrap()
    }

    pub fn admin(&self) -> Client {
        self.client(&self.admin_token)
    }

    /// Writes every audit entry the store holds outside its log table (SQLite's audit
    /// journal) into it, for a test that reads or edits the table directly.
    pub async fn settle_audit(&self) {
        self.state
            .kms
            .key_service()
            .store()
            .settle_audit()
            .await
            .unwrap();
    }

    /// Creates tenant `name` and returns a client holding a token for it.
    pub async fn tenant(&self, name: &str) -> Client {
        self.client(&self.tenant_token(name).await)
    }

    /// Creates tenant `name` and returns a token for it, as text (for driving the
    /// `coffer` binary, which takes it from `COFFER_TOKEN`).
    pub async fn tenant_token(&self, name: &str) -> String {
        self.admin()
            .create_tenant(&CreateTenantRequest {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        self.admin()
            .mint_token(&MintTokenRequest {
                tenant: Some(name.into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .token
    }

    /// A raw HTTP POST (for bodies the typed client cannot produce).
    pub async fn post_raw(
        &self,
        path: &str,
        token: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        coffer_client::install_tls_provider();
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.api))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let json = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, json)
    }
}
