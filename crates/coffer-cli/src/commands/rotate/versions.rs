//! Seed 001's `KMS_KEY_VERSION` and `NEXT_KMS_KEY_VERSION` as checks:
//! `--expect-version N` (the server refuses to start unless the primary is N; the
//! refusal is reported here as a failed check) and `--next-version M` (after the
//! switch the primary must be M; for `stage`, the staged version must be). Each
//! outcome is an evidence line of its own (`check.expect-version`,
//! `check.next-version`), so the evidence names the versions even when request bodies
//! are redacted.

use coffer_api::ErrorCode;
use coffer_api::rotation::RotationView;
use coffer_client::{ClientError, request_paths};
use serde_json::json;

use super::Verdict;
use super::checks::key_evidence;
use super::session::{Outcome, Session, Step};

/// Records that the server started the rotation from `view.from_version`, as
/// `--expect-version` asked.
pub fn expected_held(
    s: &mut Session,
    expected: Option<u32>,
    view: &RotationView,
) -> anyhow::Result<()> {
    let Some(expected) = expected else {
        return Ok(());
    };
    eprintln!(
        "expect-version check: ok (the primary was v{} as expected)",
        view.from_version
    );
    s.record(
        "check.expect-version",
        Outcome::Ok,
        json!({ "expected": expected, "primary": view.from_version }),
        None,
    )
}

/// When `error` is the server's refusal of `--expect-version`: reports and records it
/// as a failed check and answers true.
pub fn expected_refused(
    s: &mut Session,
    expected: Option<u32>,
    error: &ClientError,
) -> anyhow::Result<bool> {
    let (
        Some(expected),
        ClientError::Api {
            code: ErrorCode::VersionMismatch,
            message,
            ..
        },
    ) = (expected, error)
    else {
        return Ok(false);
    };
    eprintln!("expect-version check: FAILED: {message}\nno rotation was started; nothing changed");
    s.record(
        "check.expect-version",
        Outcome::Failed,
        json!({ "expected": expected }),
        Some(message.clone()),
    )?;
    Ok(true)
}

/// `stage` stops before the switch: the version the switch will make primary is the
/// staged one, so that is what `--next-version` checks.
pub fn staged_is(
    s: &mut Session,
    expected: Option<u32>,
    view: &RotationView,
) -> anyhow::Result<Verdict> {
    let Some(expected) = expected else {
        return Ok(Verdict::Passed);
    };
    let staged = view.to_version;
    let detail = json!({ "expected": expected, "staged": staged });
    if staged == Some(expected) {
        eprintln!("next-version check: ok (v{expected} is staged)");
        s.record("check.next-version", Outcome::Ok, detail, None)?;
        return Ok(Verdict::Passed);
    }
    let message = format!(
        "the rotation staged {}, not v{expected} (--next-version); nothing has switched",
        staged.map_or_else(|| "no version".to_owned(), |v| format!("v{v}"))
    );
    eprintln!("next-version check: FAILED: {message}");
    s.record("check.next-version", Outcome::Failed, detail, Some(message))?;
    Ok(Verdict::Failed)
}

/// After the switch of rotation `id`: reads the key and checks its primary is
/// `expected`; when it is not, says how to go on (forward: the old version still
/// decrypts).
pub async fn primary_is(
    s: &mut Session,
    key: &str,
    expected: Option<u32>,
    id: &str,
) -> anyhow::Result<Verdict> {
    let verdict = read_primary_is(s, key, expected).await?;
    if verdict == Verdict::Failed {
        eprintln!(
            "rotation {id} switched, and the old version still decrypts. Investigate, \
             then finish it with:\n  {}",
            s.command_line(&format!("resume {id}")),
        );
    }
    Ok(verdict)
}

async fn read_primary_is(
    s: &mut Session,
    key: &str,
    expected: Option<u32>,
) -> anyhow::Result<Verdict> {
    let Some(expected) = expected else {
        return Ok(Verdict::Passed);
    };
    let planned = s.get(&request_paths::key(key)?);
    let client = s.client().clone();
    let view = match s
        .run(
            "check.next-version.key",
            &planned,
            client.show_key(key),
            key_evidence,
        )
        .await?
    {
        Step::Planned => return Ok(Verdict::Planned),
        Step::Failed(error) => {
            let message = format!("cannot read the key to check --next-version: {error}");
            eprintln!("next-version check: FAILED: {message}");
            s.record(
                "check.next-version",
                Outcome::Failed,
                json!({ "expected": expected }),
                Some(message),
            )?;
            return Ok(Verdict::Failed);
        }
        Step::Done(view) => view,
    };
    let detail = json!({ "expected": expected, "primary": view.primary_version });
    if view.primary_version == expected {
        eprintln!("next-version check: ok (the primary is v{expected})");
        s.record("check.next-version", Outcome::Ok, detail, None)?;
        return Ok(Verdict::Passed);
    }
    let message = format!(
        "after the switch the primary is v{}, not v{expected} (--next-version)",
        view.primary_version
    );
    eprintln!("next-version check: FAILED: {message}");
    s.record("check.next-version", Outcome::Failed, detail, Some(message))?;
    Ok(Verdict::Failed)
}
