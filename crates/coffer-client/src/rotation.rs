//! The rotation saga and the reference tracker.
//!
//! Rotation ids and track ids are the server's and the caller's names, not key
//! references, so they are not held to the key allowlist: each goes into the path as
//! one percent-encoded segment, which cannot address another resource. Only the empty
//! name and the dot segments (`.`, `..`, which URL parsing would resolve away) are
//! refused.

use std::time::{Duration, Instant};

use coffer_api::paths;
use coffer_api::rotation::{
    ListRotationsQuery, ReferencesView, ResumeRotationRequest, RotationList, RotationVerifyView,
    RotationView, StartRotationRequest, TrackedView,
};

use crate::client::Client;
use crate::error::ClientError;

/// Longer than any id the server hands out or accepts.
const MAX_LEN: usize = 512;

/// How often [`Client::wait_rotation`] asks.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// The outcome of [`Client::wait_rotation`].
#[derive(Debug, Clone, PartialEq)]
pub enum Waited {
    /// Completed, rolled back, or running but held (paused after its `until`, or
    /// failed after the switch and waiting for `resume`).
    Settled(RotationView),
    /// Still being driven when the time ran out: the last view seen.
    StillRunning(RotationView),
}

impl Waited {
    /// The last view seen, settled or not.
    pub fn view(&self) -> &RotationView {
        match self {
            Self::Settled(view) | Self::StillRunning(view) => view,
        }
    }
}

/// True when the server's worker will not move the rotation without a new request.
pub fn settled(view: &RotationView) -> bool {
    view.status != "running" || view.held.is_some()
}

impl Client {
    /// `POST /v1/kms/rotations`: records a rotation saga, to run every step or up to
    /// `request.until`. The server answers 202 at once and drives the saga in the
    /// background: follow it with [`Client::wait_rotation`].
    pub async fn start_rotation(
        &self,
        request: &StartRotationRequest,
    ) -> Result<RotationView, ClientError> {
        self.post(paths::ROTATIONS, request).await
    }

    /// `GET /v1/kms/rotations/{id}`: the saga as it is now.
    pub async fn rotation(&self, id: &str) -> Result<RotationView, ClientError> {
        self.get(&request_paths::rotation(id)?).await
    }

    /// `GET /v1/kms/rotations`: the tenant's rotations, newest first, filtered.
    pub async fn list_rotations(
        &self,
        query: &ListRotationsQuery,
    ) -> Result<RotationList, ClientError> {
        self.get_query(paths::ROTATIONS, query).await
    }

    /// Polls `GET /v1/kms/rotations/{id}` until the rotation settles (see [`Waited`])
    /// or `timeout` passes, calling `progress` with every view whose step or status
    /// differs from the one before.
    pub async fn wait_rotation(
        &self,
        id: &str,
        timeout: Duration,
        mut progress: impl FnMut(&RotationView),
    ) -> Result<Waited, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut last: Option<RotationView> = None;
        loop {
            let view = self.rotation(id).await?;
            if last
                .as_ref()
                .is_none_or(|l| (&l.step, &l.status) != (&view.step, &view.status))
            {
                progress(&view);
            }
            if settled(&view) {
                return Ok(Waited::Settled(view));
            }
            if Instant::now() >= deadline {
                return Ok(Waited::StillRunning(view));
            }
            last = Some(view);
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// `POST .../resume`: lets the saga run on from its next step (to the end, or up
    /// to `request.until`); answered 202, like a start.
    pub async fn resume_rotation(
        &self,
        id: &str,
        request: &ResumeRotationRequest,
    ) -> Result<RotationView, ClientError> {
        self.post(&request_paths::rotation_action(id, "resume")?, request)
            .await
    }

    /// `POST .../rollback`: compensates a saga that has not switched the pointer. Past
    /// the switch the server refuses with [`ClientError::Api`], status 409, `conflict`,
    /// its message saying the rotation must be resumed instead.
    pub async fn rollback_rotation(&self, id: &str) -> Result<RotationView, ClientError> {
        self.post_empty(&request_paths::rotation_action(id, "rollback")?)
            .await
    }

    /// `GET .../verify`: the saga's invariants and whether a checkpoint covers it.
    pub async fn verify_rotation(&self, id: &str) -> Result<RotationVerifyView, ClientError> {
        self.get(&request_paths::rotation_action(id, "verify")?)
            .await
    }

    /// `GET /v1/kms/keys/{key}/references`: who uses which version of a key.
    pub async fn references(&self, key: &str) -> Result<ReferencesView, ClientError> {
        self.get(&request_paths::references(key)?).await
    }

    /// `GET /v1/kms/tracked/{track_id}`: a tracked data key's current wrapping.
    pub async fn tracked(&self, track_id: &str) -> Result<TrackedView, ClientError> {
        self.get(&request_paths::tracked(track_id)?).await
    }
}

/// The paths of the requests above, exactly as the client sends them, for tools that
/// print a plan before calling (or instead of calling, in a dry run).
pub mod request_paths {
    use std::fmt::Write as _;

    use coffer_api::paths;

    use super::MAX_LEN;
    use crate::error::ClientError;
    use crate::reference::{key_action_path, key_path};

    /// `KEYS/{key}` (a key id or `alias/NAME`, checked as [`Client::show_key`] does).
    ///
    /// [`Client::show_key`]: crate::Client::show_key
    pub fn key(reference: &str) -> Result<String, ClientError> {
        key_path(reference)
    }

    /// `KEYS/{key}/references`.
    pub fn references(reference: &str) -> Result<String, ClientError> {
        key_action_path(reference, "references")
    }

    /// `ROTATIONS/{id}`.
    pub fn rotation(id: &str) -> Result<String, ClientError> {
        Ok(paths::rotation(&segment(id)?))
    }

    /// `ROTATIONS/{id}/{action}` (`resume`, `rollback`, `verify`).
    pub fn rotation_action(id: &str, action: &str) -> Result<String, ClientError> {
        Ok(format!("{}/{action}", rotation(id)?))
    }

    /// `TENANTS/{tenant}`.
    pub fn tenant(name: &str) -> Result<String, ClientError> {
        Ok(format!("{}/{}", paths::TENANTS, segment(name)?))
    }

    /// `TRACKED/{track_id}`.
    pub fn tracked(track_id: &str) -> Result<String, ClientError> {
        Ok(format!("{}/{}", paths::TRACKED, segment(track_id)?))
    }

    /// One path segment: RFC 3986 unreserved bytes kept, every other byte
    /// percent-encoded.
    fn segment(name: &str) -> Result<String, ClientError> {
        if name.is_empty() || name.len() > MAX_LEN || name == "." || name == ".." {
            return Err(ClientError::InvalidReference);
        }
        let mut out = String::with_capacity(name.len());
        for byte in name.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(byte));
            } else {
                // Writing to a String cannot fail.
                let _ = write!(out, "%{byte:02X}");
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::request_paths::*;
    use super::*;

    #[test]
    fn rotation_paths() {
        let id = "0b6f3c2e-8d7a-4f0e-9c1b-2a3d4e5f6a7b";
        assert_eq!(rotation(id).unwrap(), format!("/v1/kms/rotations/{id}"));
        assert_eq!(
            rotation_action(id, "resume").unwrap(),
            format!("/v1/kms/rotations/{id}/resume")
        );
    }

    #[test]
    fn a_name_stays_one_segment() {
        assert_eq!(
            tracked("blob/1?x#y").unwrap(),
            "/v1/kms/tracked/blob%2F1%3Fx%23y"
        );
        assert_eq!(rotation("a%2F").unwrap(), "/v1/kms/rotations/a%252F");
        assert_eq!(tracked("a..b").unwrap(), "/v1/kms/tracked/a..b");
        for bad in ["", ".", ".."] {
            assert!(
                matches!(tracked(bad), Err(ClientError::InvalidReference)),
                "{bad:?}"
            );
            assert!(rotation(bad).is_err(), "{bad:?}");
        }
        assert!(tracked(&"a".repeat(MAX_LEN + 1)).is_err());
    }

    #[test]
    fn references_use_the_key_reference_rules() {
        assert_eq!(
            references("alias/team/prod").unwrap(),
            "/v1/kms/keys/alias/team%2Fprod/references"
        );
        assert!(references("../x").is_err());
        assert_eq!(key("alias/a").unwrap(), "/v1/kms/keys/alias/a");
    }
}
