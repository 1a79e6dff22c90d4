//! Seal status and unseal: no API token (the share or passphrase is the credential;
//! an unseal token may be required on top, see `unseal_guard`).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use coffer_api::ErrorCode;
use coffer_api::admin::{SealStatusView, UnsealRequest};
use coffer_core::{CustodyError, SealStatus};
use coffer_custody_sealed::{Passphrase, UnsealMethod};

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::unseal_guard::UNSEAL_TOKEN_HEADER;

/// The seal status as the API shows it.
pub fn status_view(state: &AppState) -> SealStatusView {
    let (method, unsealed_threshold) = match state.custody.sealed().map(|c| c.method()) {
        Some(method @ UnsealMethod::Shamir { .. }) => ("shamir", method.threshold()),
        Some(method @ UnsealMethod::Passphrase) => ("passphrase", method.threshold()),
        Some(method @ UnsealMethod::KeyFile) => ("key-file", method.threshold()),
        // The root is in the token: nothing to unseal.
        None => ("pkcs11", 0),
    };
    let (sealed, progress, threshold) = match state.custody.status() {
        SealStatus::Unsealed => (false, 0, unsealed_threshold),
        SealStatus::Sealed {
            progress,
            threshold,
        } => (true, progress, threshold),
    };
    SealStatusView {
        sealed,
        progress,
        threshold,
        method: method.to_owned(),
    }
}

/// `GET /v1/sys/seal-status`
pub async fn seal_status(State(state): State<AppState>) -> Json<SealStatusView> {
    Json(status_view(&state))
}

/// What a refused unseal tells the caller: that the input was wrong, and nothing more.
/// The unseal route is unauthenticated, so the reason (a tag mismatch, a share index
/// already given, how the deployment unseals, the custody file's path) goes to the
/// server log for the operator, not to whoever called.
fn unseal_error(error: CustodyError, input: &'static str) -> ApiError {
    match error {
        CustodyError::UnsealFailed(why) => {
            tracing::warn!(target: "coffer::unseal", reason = why, "unseal refused");
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("unseal failed: wrong {input}"),
            )
        }
        CustodyError::Config(why) => {
            tracing::warn!(target: "coffer::unseal", reason = %why, "unseal refused");
            ApiError::new(
                ErrorCode::InvalidRequest,
                format!("unseal failed: wrong {input} for this deployment"),
            )
        }
        other => {
            tracing::error!(error = %other, "unseal");
            ApiError::new(ErrorCode::Internal, "unseal failed")
        }
    }
}

/// `POST /v1/sys/unseal`: one share, or the passphrase. Once unsealed, the service
/// loads its token key and becomes ready. On an unsealed server it only answers the
/// status: the work that follows unsealing happens on the sealed → unsealed step alone.
/// Guarded by [`crate::unseal_guard`]: the unseal token when configured, one Argon2id
/// at a time, back-off on wrong passphrases.
pub async fn unseal(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(r): ApiJson<UnsealRequest>,
) -> ApiResult<Json<SealStatusView>> {
    // Unauthenticated by design, so it must do nothing once unsealed: no Argon2 run
    // for a guessed passphrase, and no second start of the work that follows unsealing
    // (resuming rotations, loading secrets).
    if state.custody.status() == SealStatus::Unsealed {
        return Ok(Json(status_view(&state)));
    }
    let guard = state.unseal.clone();
    guard.check_token(
        headers
            .get(UNSEAL_TOKEN_HEADER)
            .map(axum::http::HeaderValue::as_bytes),
    )?;
    let Some(custody) = state.custody.sealed().cloned() else {
        return Ok(Json(status_view(&state)));
    };
    let input = if r.share.is_some() {
        "share"
    } else {
        "passphrase"
    };
    let outcome = match (r.share, r.passphrase) {
        (Some(share), None) => tokio::task::spawn_blocking(move || {
            let text = std::str::from_utf8(share.expose_secret())
                .map_err(|_| CustodyError::UnsealFailed("the share is not text"))?;
            custody.submit_share(text).map(|_| ())
        })
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "unseal task failed"))?,
        (None, Some(passphrase)) => {
            let permit = guard.admit_passphrase()?;
            let text = std::str::from_utf8(passphrase.expose_secret())
                .map_err(|_| {
                    ApiError::new(ErrorCode::InvalidRequest, "unseal failed: wrong passphrase")
                })?
                .to_owned();
            // Passphrase zeroizes its own copy; `passphrase` (B64Secret) zeroizes its.
            let passphrase = Passphrase::new(text);
            let guard = guard.clone();
            // Argon2id takes tens of milliseconds of CPU: off the async workers. The
            // permit goes with it, so a caller that hangs up does not free the slot
            // before the derivation ends.
            tokio::task::spawn_blocking(move || {
                let outcome = custody.unseal_passphrase(&passphrase);
                match &outcome {
                    Err(CustodyError::UnsealFailed(_)) => {
                        let wait = guard.record_failure();
                        tracing::warn!(
                            wait_seconds = wait.as_secs(),
                            "wrong unseal passphrase: backing off"
                        );
                    }
                    Ok(()) => guard.record_success(),
                    Err(_) => {}
                }
                drop(permit);
                outcome
            })
            .await
            .map_err(|_| ApiError::new(ErrorCode::Internal, "unseal task failed"))?
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "give exactly one of share and passphrase",
            ));
        }
    };
    outcome.map_err(|e| unseal_error(e, input))?;
    if state.custody.status() == SealStatus::Unsealed {
        crate::startup::after_unseal(&state).await.map_err(|e| {
            tracing::error!(error = %e, "loading after unseal");
            ApiError::new(
                ErrorCode::Internal,
                "unsealed, but loading the service failed",
            )
        })?;
        tracing::info!("unsealed");
    }
    Ok(Json(status_view(&state)))
}
