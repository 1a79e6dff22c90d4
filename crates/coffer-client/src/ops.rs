//! The operations port: health, readiness, metrics. A different base URL from the
//! API's (`http://127.0.0.1:9909` by default), and no token.

use std::time::{Duration, Instant};

use coffer_api::paths;
use reqwest::StatusCode;

use crate::client::{Client, transport};
use crate::error::{ClientError, api_error};

/// What a health probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The HTTP status of the answer.
    pub status: u16,
    /// From sending the request to the answer's headers.
    pub latency: Duration,
}

impl Client {
    /// `GET /healthz`: `Ok` when the process is alive.
    pub async fn healthz(&self, ops_base_url: &str) -> Result<(), ClientError> {
        let (status, body) = self.get_other(ops_base_url, paths::HEALTHZ).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(api_error(status.as_u16(), &body, None))
        }
    }

    /// `GET /readyz`: `true` when the server can serve (unsealed, store reachable),
    /// `false` on 503; any other status is an error.
    pub async fn readyz(&self, ops_base_url: &str) -> Result<bool, ClientError> {
        let (status, body) = self.get_other(ops_base_url, paths::READYZ).await?;
        match status {
            s if s.is_success() => Ok(true),
            StatusCode::SERVICE_UNAVAILABLE => Ok(false),
            s => Err(api_error(s.as_u16(), &body, None)),
        }
    }

    /// `GET /custody`: custody's backend.
    pub async fn custody(
        &self,
        ops_base_url: &str,
    ) -> Result<coffer_api::admin::CustodyView, ClientError> {
        let (status, body) = self.get_other(ops_base_url, paths::CUSTODY).await?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &body, None));
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET /config`: the configuration the server started with, secrets redacted.
    pub async fn running_config(
        &self,
        ops_base_url: &str,
    ) -> Result<coffer_api::admin::RunningConfigView, ClientError> {
        let (status, body) = self.get_other(ops_base_url, paths::CONFIG).await?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &body, None));
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self, ops_base_url: &str) -> Result<String, ClientError> {
        let (status, body) = self.get_other(ops_base_url, paths::METRICS).await?;
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &body, None));
        }
        String::from_utf8(body)
            .map_err(|_| ClientError::Decode("the metrics are not UTF-8 text".into()))
    }

    /// `GET url` on any origin (a health-check URL a rotation profile names), without
    /// the token, which is for Coffer alone. The body is never read: only the status
    /// and the time to the answer's headers. A transport error after `timeout`.
    pub async fn probe(&self, url: &str, timeout: Duration) -> Result<Probe, ClientError> {
        let started = Instant::now();
        let response = self
            .http()
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(transport)?;
        Ok(Probe {
            status: response.status().as_u16(),
            latency: started.elapsed(),
        })
    }
}
