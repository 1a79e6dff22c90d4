//! `verify`: every invariant of a rotation, OK or violated, and whether an audit
//! checkpoint anchors it.

use coffer_api::rotation::RotationVerifyView;
use coffer_client::request_paths;
use serde_json::json;

use super::Verdict;
use super::saga::{rotation_evidence, summary};
use super::session::{Session, Step};
use crate::commands::{print_json, print_line, table};

/// The invariants `verify` reports, each shown even when it holds.
const INVARIANTS: [&str; 6] = [
    "RetireAfterSwitch",
    "NoKeyOrphans",
    "ForwardOnly",
    "OnePrimary",
    "OneSagaPerKey",
    "RecordMatchesKey",
];

/// Every invariant, OK or violated, and the audit anchoring; passes only when the
/// server says ok and lists no violation.
pub async fn verify(s: &mut Session, id: &str) -> anyhow::Result<Verdict> {
    let planned = s.get(&request_paths::rotation_action(id, "verify")?);
    let client = s.client().clone();
    let evidence = |v: &RotationVerifyView| {
        json!({
            "ok": v.ok,
            "anchored": v.anchored,
            "checkpoint_size": v.checkpoint_size,
            "violations": v.violations.iter().map(|v| &v.invariant).collect::<Vec<_>>(),
            "rotation": rotation_evidence(&v.rotation),
        })
    };
    let view = match s
        .run("verify", &planned, client.verify_rotation(id), evidence)
        .await?
    {
        Step::Planned => return Ok(Verdict::Planned),
        Step::Failed(error) => return Err(error.into()),
        Step::Done(view) => view,
    };
    let ok = view.ok && view.violations.is_empty();
    if s.json() {
        print_json(&view)?;
    } else {
        print_line(&verify_report(&view, ok))?;
    }
    Ok(if ok { Verdict::Passed } else { Verdict::Failed })
}

fn verify_report(view: &RotationVerifyView, ok: bool) -> String {
    let mut names: Vec<&str> = INVARIANTS.to_vec();
    for violation in &view.violations {
        if !names.contains(&violation.invariant.as_str()) {
            names.push(&violation.invariant);
        }
    }
    let rows: Vec<Vec<String>> = names
        .iter()
        .map(|name| {
            let broken: Vec<&str> = view
                .violations
                .iter()
                .filter(|v| v.invariant == *name)
                .map(|v| v.detail.as_str())
                .collect();
            let result = if broken.is_empty() {
                "OK".to_owned()
            } else {
                format!("VIOLATED: {}", broken.join("; "))
            };
            vec![(*name).to_owned(), result]
        })
        .collect();
    let anchor = match (view.anchored, view.checkpoint_size) {
        (true, Some(size)) => format!("yes: a checkpoint covers it (checkpoint size {size})"),
        (true, None) => "yes: a checkpoint covers it".to_owned(),
        (false, _) => "NO: no audit checkpoint covers the rotation's last event yet".to_owned(),
    };
    format!(
        "{}\n\n{}\n\naudit anchor: {anchor}\nverdict:      {}",
        summary(&view.rotation),
        table(&["INVARIANT", "RESULT"], &rows),
        if ok { "ok" } else { "NOT ok" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::rotate::saga::tests::view;

    #[test]
    fn verify_lists_every_invariant() {
        let report = verify_report(
            &RotationVerifyView {
                ok: false,
                rotation: view("completed", "anchor"),
                violations: vec![coffer_api::rotation::ViolationView {
                    invariant: "NoKeyOrphans".into(),
                    detail: "3 rows under v1".into(),
                }],
                anchored: false,
                checkpoint_size: None,
            },
            false,
        );
        assert!(report.contains("RetireAfterSwitch  OK"), "{report}");
        assert!(
            report.contains("NoKeyOrphans       VIOLATED: 3 rows under v1"),
            "{report}"
        );
        assert!(report.contains("audit anchor: NO"), "{report}");
        assert!(report.contains("verdict:      NOT ok"), "{report}");
    }
}
