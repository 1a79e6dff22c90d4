//! Rotation sagas, the reference tracker and tracked data keys.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use coffer_api::rotation::{
    ListRotationsQuery, PrincipalUse, ReferencesView, ResumeRotationRequest, RewrapView,
    RotationHold, RotationList, RotationVerifyView, RotationView, StartRotationRequest,
    TrackedView, VersionReferences, ViolationView,
};
use coffer_api::{B64, ErrorCode};
use coffer_core::attestation::Measurement;
use coffer_core::kms::{RetireUntracked, RotationStatus};
use coffer_core::saga::{Status, Step};
use coffer_core::store::Hold;

use crate::convert::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, Authed};
use crate::state::AppState;

/// Parses an optional wire name (`until`, `status`) into its enum, or a 400.
fn parsed<T: std::str::FromStr<Err = coffer_core::error::InvalidInput>>(
    text: Option<String>,
) -> ApiResult<Option<T>> {
    text.map(|t| {
        t.parse::<T>()
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.to_string()))
    })
    .transpose()
}

fn until(text: Option<String>) -> ApiResult<Option<Step>> {
    parsed(text)
}

/// The allow-list of a start, parsed (hex measurements), or a 400.
fn measurements(list: Option<Vec<String>>) -> ApiResult<Option<BTreeSet<Measurement>>> {
    list.map(|list| {
        list.iter()
            .map(|m| {
                m.parse::<Measurement>()
                    .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.to_string()))
            })
            .collect()
    })
    .transpose()
}

/// A rotation as the API shows it.
pub fn view(status: &RotationStatus) -> RotationView {
    let r = &status.record;
    RotationView {
        rotation_id: r.id.clone(),
        key_id: r.key.to_string(),
        from_version: r.from_version,
        to_version: r.to_version,
        step: r.step.as_str().to_owned(),
        status: r.status.as_str().to_owned(),
        switched: r.switched(),
        paused_after: r.paused_after.map(|s| s.as_str().to_owned()),
        held: r.hold().map(|hold| match hold {
            Hold::Paused(_) => RotationHold::Paused,
            Hold::Failed(_) => RotationHold::Failed,
        }),
        failures: r.failures,
        error: r.error.clone(),
        allowed_measurements: r
            .allow_list
            .as_ref()
            .map(|a| a.measurements.iter().map(ToString::to_string).collect()),
        allow_list_from_policy: r.allow_list.as_ref().map(|a| a.from_policy),
        tracked_remaining: status.tracked_remaining,
        rewrap: status.rewrap.as_ref().map(|p| RewrapView {
            done: p.done,
            rate_per_second: p.rate_per_second,
            eta_seconds: p.eta(status.tracked_remaining).map(|eta| eta.as_secs()),
            waiting_for_window: p.waiting_for_window.map(|w| w.to_string()),
        }),
        started_at: rfc3339(r.started_at),
        updated_at: rfc3339(r.updated_at),
    }
}

/// `POST /v1/kms/rotations`: records the rotation and answers 202; the rotation worker
/// runs it, so the client's connection does not hold it.
pub async fn start(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    ApiJson(r): ApiJson<StartRotationRequest>,
) -> ApiResult<(StatusCode, Json<RotationView>)> {
    let status = state
        .kms
        .start_rotation(
            &caller,
            &r.key_id,
            until(r.until)?,
            r.expect_version,
            if r.retire_untracked {
                RetireUntracked::Accept
            } else {
                RetireUntracked::Refuse
            },
            measurements(r.allowed_measurements)?,
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(view(&status))))
}

/// `GET /v1/kms/rotations?key=K&status=S`
pub async fn list(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    ApiQuery(q): ApiQuery<ListRotationsQuery>,
) -> ApiResult<Json<RotationList>> {
    let status: Option<Status> = parsed(q.status)?;
    let rotations = state
        .kms
        .list_rotations(&caller, q.key.as_deref(), status)
        .await?;
    Ok(Json(RotationList {
        rotations: rotations.iter().map(view).collect(),
    }))
}

/// `GET /v1/kms/rotations/{id}`
pub async fn show(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<RotationView>> {
    Ok(Json(view(&state.kms.rotation_status(&caller, &id).await?)))
}

/// `POST /v1/kms/rotations/{id}/resume`: sets the pause (`until`, or none), clears a
/// failure, answers 202; the rotation worker runs the rest.
pub async fn resume(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<RotationView>)> {
    let request: ResumeRotationRequest = if body.is_empty() {
        ResumeRotationRequest::default()
    } else {
        crate::extract::parse(&body)?
    };
    let status = state
        .kms
        .resume_rotation(&caller, &id, until(request.until)?)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(view(&status))))
}

/// `POST /v1/kms/rotations/{id}/rollback`
pub async fn rollback(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<RotationView>> {
    Ok(Json(view(
        &state.kms.rollback_rotation(&caller, &id).await?,
    )))
}

/// `GET /v1/kms/rotations/{id}/verify`
pub async fn verify(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<RotationVerifyView>> {
    let checked = state.kms.verify_rotation(&caller, &id).await?;
    let completed = checked.status.record.status == Status::Completed;
    Ok(Json(RotationVerifyView {
        ok: checked.violations.is_empty() && completed && checked.anchored,
        rotation: view(&checked.status),
        violations: checked
            .violations
            .iter()
            .map(|v| ViolationView {
                invariant: v.invariant.to_string(),
                detail: v.detail.clone(),
            })
            .collect(),
        anchored: checked.anchored,
        checkpoint_size: checked.checkpoint_size,
    }))
}

/// `GET /v1/kms/keys/{key}/references` (and the alias form)
pub async fn references(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    Path(key): Path<String>,
) -> ApiResult<Json<ReferencesView>> {
    let (key_id, versions) = state.kms.references(&caller, &key).await?;
    Ok(Json(ReferencesView {
        key_id: key_id.to_string(),
        versions: versions
            .into_iter()
            .map(|v| VersionReferences {
                version: v.version.get(),
                state: v.state.as_str().to_owned(),
                primary: v.primary,
                in_flight: v.in_flight,
                tracked: v.tracked,
                principals: v
                    .principals
                    .into_iter()
                    .map(|u| PrincipalUse {
                        untracked_recent: u.of.kind.is_untracked()
                            && u.count.last_seen >= v.untracked_since,
                        principal: u.of.principal.to_string(),
                        kind: u.of.kind.as_str().to_owned(),
                        first_seen: rfc3339(u.count.first_seen),
                        last_seen: rfc3339(u.count.last_seen),
                        count: u.count.count,
                    })
                    .collect(),
            })
            .collect(),
    }))
}

/// `GET /v1/kms/keys/alias/{name}/references`
pub async fn alias_references(
    state: State<AppState>,
    caller: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<ReferencesView>> {
    references(state, caller, Path(format!("alias/{name}"))).await
}

/// `GET /v1/kms/tracked/{track_id}`
pub async fn tracked(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    Path(track_id): Path<String>,
) -> ApiResult<Json<TrackedView>> {
    let t = state.kms.tracked(&caller, &track_id).await?;
    Ok(Json(TrackedView {
        track_id: t.track_id,
        key_id: t.key.to_string(),
        key_version: t.version,
        ciphertext: B64(t.ciphertext),
    }))
}
