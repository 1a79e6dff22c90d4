//! `preflight` and `references`: what must hold before a rotation, and who would feel
//! it (seed 000: "find the process holding the old KEK reference").

use coffer_api::keys::KeyView;
use coffer_api::paths;
use coffer_api::rotation::ReferencesView;
use coffer_client::request_paths;
use serde_json::{Value, json};

use super::Verdict;
use super::health::{self, Moment};
use super::session::{Outcome, Session, Step};
use crate::commands::keys::versions_table;
use crate::commands::{print_json, print_line, table};

/// What a rotation does about recent untracked use of the version it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untracked {
    /// Fail preflight (and the server refuses the start): the default.
    Refuse,
    /// `--retire-untracked`: the operator accepts it; the evidence says so.
    Retire,
}

/// The checks a rotation needs, each recorded as evidence. Fails when any check
/// fails; "unknown" (the running-rotation check) does not fail it.
pub async fn preflight(
    s: &mut Session,
    key: &str,
    untracked: Untracked,
) -> anyhow::Result<Verdict> {
    let mut checks = Checks::default();
    ready(s, &mut checks).await?;
    // The profile's health-check URLs (seed 001), before the change.
    for checked in health::check(s, Moment::Before).await? {
        let name = format!("{} health", checked.name);
        checks.add(s, &name, checked.outcome, &checked.detail)?;
    }
    let key_view = key_enabled(s, key, &mut checks).await?;
    // The API has no list of rotations. A running one is not missed for long: the
    // server refuses a second saga for a key (OneSagaPerKey) when the start is sent.
    checks.add(
        s,
        "no running rotation",
        Outcome::Unknown,
        "cannot be checked (the API lists no rotations); the server refuses a second \
         one for the same key when it starts",
    )?;
    let references = tracker(s, key).await?;
    untracked_use(s, references.as_ref(), untracked, &mut checks)?;
    if s.dry_run() {
        print_line("[dry-run] preflight: checks not performed")?;
        return Ok(Verdict::Planned);
    }
    let mut text = table(&["CHECK", "RESULT", "DETAIL"], &checks.rows);
    if let Some(key) = &key_view {
        text.push_str("\n\n");
        text.push_str(&versions_table(key));
    }
    match &references {
        Some(references) => {
            text.push_str("\n\nreference tracker:\n");
            text.push_str(&references_table(references));
        }
        None => text.push_str("\n\nreference tracker: unavailable"),
    }
    let verdict = if checks.failed == 0 {
        text.push_str("\n\npreflight: passed");
        Verdict::Passed
    } else {
        text.push_str(&format!(
            "\n\npreflight: FAILED ({} check(s) failed)",
            checks.failed
        ));
        Verdict::Failed
    };
    print_line(&text)?;
    Ok(verdict)
}

/// Per version: state, primary, in flight, tracked, and each principal's use.
pub async fn references(s: &mut Session, key: &str) -> anyhow::Result<Verdict> {
    let planned = s.get(&request_paths::references(key)?);
    let client = s.client().clone();
    match s
        .run(
            "references",
            &planned,
            client.references(key),
            references_evidence,
        )
        .await?
    {
        Step::Planned => Ok(Verdict::Planned),
        Step::Failed(error) => Err(error.into()),
        Step::Done(view) => {
            if s.json() {
                print_json(&view)?;
            } else {
                print_line(&references_table(&view))?;
            }
            Ok(Verdict::Passed)
        }
    }
}

#[derive(Default)]
struct Checks {
    rows: Vec<Vec<String>>,
    failed: usize,
}

impl Checks {
    fn add(
        &mut self,
        s: &mut Session,
        name: &str,
        outcome: Outcome,
        detail: &str,
    ) -> anyhow::Result<()> {
        if s.dry_run() {
            return Ok(());
        }
        if outcome == Outcome::Failed {
            self.failed += 1;
        }
        let result = match outcome {
            Outcome::Ok => "ok",
            Outcome::Failed => "FAILED",
            _ => "unknown",
        };
        self.rows
            .push(vec![name.to_owned(), result.to_owned(), detail.to_owned()]);
        s.record(
            &format!("preflight.check.{}", name.replace(' ', "-")),
            outcome,
            json!({ "detail": detail }),
            None,
        )
    }
}

async fn ready(s: &mut Session, checks: &mut Checks) -> anyhow::Result<()> {
    let Some(ops) = s.ops().map(str::to_owned) else {
        return checks.add(
            s,
            "server ready",
            Outcome::Failed,
            "no operations address: the profile sets no ops_addr",
        );
    };
    let planned = s.ops_get(&ops, paths::READYZ);
    let client = s.client().clone();
    let step = s
        .run(
            "preflight.ready",
            &planned,
            client.readyz(&ops),
            |r| json!({ "ready": r }),
        )
        .await?;
    let (outcome, detail) = match step {
        Step::Planned => return Ok(()),
        Step::Done(true) => (Outcome::Ok, format!("{ops} answers ready")),
        Step::Done(false) => (
            Outcome::Failed,
            format!("{ops} answers not ready (sealed, or the store is unreachable)"),
        ),
        Step::Failed(error) => (Outcome::Failed, format!("{ops}: {error}")),
    };
    checks.add(s, "server ready", outcome, &detail)
}

async fn key_enabled(
    s: &mut Session,
    key: &str,
    checks: &mut Checks,
) -> anyhow::Result<Option<KeyView>> {
    let planned = s.get(&request_paths::key(key)?);
    let client = s.client().clone();
    let step = s
        .run(
            "preflight.key",
            &planned,
            client.show_key(key),
            key_evidence,
        )
        .await?;
    let (outcome, detail, view) = match step {
        Step::Planned => return Ok(None),
        Step::Done(view) => {
            let detail = format!(
                "{} ({}, {}): {}, primary v{}",
                view.key_id, view.spec, view.purpose, view.state, view.primary_version
            );
            let outcome = if view.state == "enabled" {
                Outcome::Ok
            } else {
                Outcome::Failed
            };
            (outcome, detail, Some(view))
        }
        Step::Failed(error) => (Outcome::Failed, error.to_string(), None),
    };
    checks.add(s, "key enabled", outcome, &detail)?;
    Ok(view)
}

/// Fails when the primary version was used for untracked material within the server's
/// window (its refusal of the start, seen before the start), naming the principals,
/// counts and last use; `--retire-untracked` turns it into an accepted, recorded check.
fn untracked_use(
    s: &mut Session,
    references: Option<&ReferencesView>,
    untracked: Untracked,
    checks: &mut Checks,
) -> anyhow::Result<()> {
    let Some(references) = references else {
        return checks.add(
            s,
            "no recent untracked use",
            Outcome::Unknown,
            "the reference tracker did not answer; the server still refuses the start",
        );
    };
    let Some(primary) = references.versions.iter().find(|v| v.primary) else {
        return Ok(());
    };
    let recent: Vec<String> = primary
        .principals
        .iter()
        .filter(|p| p.untracked_recent)
        .map(|p| {
            format!(
                "{} {} {}x, last {}",
                p.principal, p.kind, p.count, p.last_seen
            )
        })
        .collect();
    let (outcome, detail) = match (recent.is_empty(), untracked) {
        (true, _) => (
            Outcome::Ok,
            format!("version {}: none within the window", primary.version),
        ),
        (false, Untracked::Refuse) => (
            Outcome::Failed,
            format!(
                "version {} sealed or opened untracked material (never rewrapped by \
                 rotation): {}; rewrap it first, or pass --retire-untracked",
                primary.version,
                recent.join("; ")
            ),
        ),
        (false, Untracked::Retire) => (
            Outcome::Ok,
            format!(
                "accepted with --retire-untracked: version {} stays retiring (decrypt-only) \
                 until unused for the quiet period; use: {}",
                primary.version,
                recent.join("; ")
            ),
        ),
    };
    checks.add(s, "no recent untracked use", outcome, &detail)
}

/// The reference tracker's view; informational, so its failure is a warning.
async fn tracker(s: &mut Session, key: &str) -> anyhow::Result<Option<ReferencesView>> {
    let planned = s.get(&request_paths::references(key)?);
    let client = s.client().clone();
    let step = s
        .run(
            "preflight.references",
            &planned,
            client.references(key),
            references_evidence,
        )
        .await?;
    Ok(match step {
        Step::Done(view) => Some(view),
        Step::Planned | Step::Failed(_) => None,
    })
}

/// What the evidence keeps of a key: its versions' numbers and states.
pub fn key_evidence(key: &KeyView) -> Value {
    json!({
        "key_id": key.key_id,
        "spec": key.spec,
        "purpose": key.purpose,
        "state": key.state,
        "primary_version": key.primary_version,
        "versions": key.versions.iter()
            .map(|v| json!({ "version": v.version, "state": v.state, "primary": v.primary }))
            .collect::<Vec<_>>(),
    })
}

fn references_evidence(view: &ReferencesView) -> Value {
    json!({
        "key_id": view.key_id,
        "versions": view.versions.iter()
            .map(|v| json!({
                "version": v.version,
                "state": v.state,
                "in_flight": v.in_flight,
                "tracked": v.tracked,
                "principals": v.principals.iter()
                    .map(|p| json!({
                        "principal": p.principal,
                        "kind": p.kind,
                        "first_seen": p.first_seen,
                        "last_seen": p.last_seen,
                        "count": p.count,
                        "untracked_recent": p.untracked_recent,
                    }))
                    .collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>(),
    })
}

/// One row per principal; a version's own cells only on its first row.
fn references_table(view: &ReferencesView) -> String {
    let mut rows = Vec::new();
    for version in &view.versions {
        let mut cells = vec![
            version.version.to_string(),
            version.state.clone(),
            if version.primary { "yes" } else { "" }.into(),
            version.in_flight.to_string(),
            version.tracked.to_string(),
        ];
        if version.principals.is_empty() {
            cells.extend(["-".into(), "-".into(), "-".into(), "-".into(), "-".into()]);
            rows.push(cells);
            continue;
        }
        for (i, principal) in version.principals.iter().enumerate() {
            if i > 0 {
                cells = vec![String::new(); 5];
            }
            cells.extend([
                principal.principal.clone(),
                principal.kind.clone(),
                principal.first_seen.clone(),
                principal.last_seen.clone(),
                principal.count.to_string(),
            ]);
            rows.push(cells.clone());
        }
    }
    table(
        &[
            "VERSION",
            "STATE",
            "PRIMARY",
            "IN-FLIGHT",
            "TRACKED",
            "PRINCIPAL",
            "KIND",
            "FIRST SEEN",
            "LAST SEEN",
            "COUNT",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use coffer_api::rotation::{PrincipalUse, VersionReferences};

    use super::*;

    #[test]
    fn principals_get_a_row_each() {
        let use_ = |p: &str, n| PrincipalUse {
            principal: p.into(),
            kind: "encrypt".into(),
            first_seen: "2025-12-01T00:00:00Z".into(),
            last_seen: "2026-01-01T00:00:00Z".into(),
            count: n,
            untracked_recent: true,
        };
        let view = ReferencesView {
            key_id: "k".into(),
            versions: vec![
                VersionReferences {
                    version: 1,
                    state: "inactive".into(),
                    primary: false,
                    in_flight: 2,
                    tracked: 5,
                    principals: vec![use_("tok-a", 10), use_("tok-b", 1)],
                },
                VersionReferences {
                    version: 2,
                    state: "active".into(),
                    primary: true,
                    in_flight: 0,
                    tracked: 0,
                    principals: vec![],
                },
            ],
        };
        let text = references_table(&view);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[1].starts_with("1        inactive"), "{text}");
        assert!(
            lines[1]
                .ends_with("tok-a      encrypt  2025-12-01T00:00:00Z  2026-01-01T00:00:00Z  10"),
            "{text}"
        );
        assert!(lines[2].trim_start().starts_with("tok-b"), "{text}");
        assert!(
            lines[3].ends_with("-          -        -                     -                     -"),
            "{text}"
        );
    }
}
