//! Acknowledged records checked against the stored log, one by one. Each entry's
//! request id names its run, appender and sequence number in 32 hex digits (the shape
//! of the server's own request ids), so the rows a run added can be matched to the
//! records it counted: an acknowledged entry missing from the store would be a figure
//! for work that was never committed, and fails the run.

use std::collections::HashSet;

use coffer_audit::ExportedEntry;
use coffer_core::Store;

/// Rows read per query when reading the log back.
const PAGE: u64 = 10_000;

/// One record: (appender, sequence number) within a run.
pub type Record = (u32, u64);

/// The request id of record `seq` of `appender` in run `run`.
pub fn request_id(run: u32, appender: u32, seq: u64) -> String {
    format!("{run:08x}{appender:08x}{seq:016x}")
}

/// The run and record a request id of [`request_id`] names.
pub fn parse_request_id(id: &str) -> Option<(u32, Record)> {
    if id.len() != 32 || !id.is_ascii() {
        return None;
    }
    let run = u32::from_str_radix(&id[..8], 16).ok()?;
    let appender = u32::from_str_radix(&id[8..16], 16).ok()?;
    let seq = u64::from_str_radix(&id[16..], 16).ok()?;
    Some((run, (appender, seq)))
}

/// What a run's rows held, against what it acknowledged.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    /// Records whose `record` call returned `Ok` (warm-up and measured).
    pub acknowledged: u64,
    /// Rows the run added to the log.
    pub stored: u64,
    /// Acknowledged records with no row: must be zero.
    pub missing: u64,
    /// Rows that match no acknowledged record (a failed call whose batch committed
    /// after all, or an entry some other writer added).
    pub unacknowledged: u64,
    /// The index after the last row read: where the next run's rows start.
    pub end: u64,
}

/// The index after the last stored entry, reading from `from`.
pub async fn end_of_log(store: &dyn Store, from: u64) -> anyhow::Result<u64> {
    let mut end = from;
    loop {
        let rows = store.audit_entries(end, PAGE).await?;
        match rows.last() {
            Some((index, _)) => end = index + 1,
            None => return Ok(end),
        }
    }
}

/// Reads the rows from `from` on and matches them to run `run`'s acknowledged records.
pub async fn check(
    store: &dyn Store,
    from: u64,
    run: u32,
    mut acknowledged: HashSet<Record>,
) -> anyhow::Result<Checked> {
    let mut checked = Checked {
        acknowledged: acknowledged.len() as u64,
        end: from,
        ..Checked::default()
    };
    loop {
        let rows = store.audit_entries(checked.end, PAGE).await?;
        let Some((last, _)) = rows.last() else {
            break;
        };
        checked.end = last + 1;
        for (_, leaf) in &rows {
            checked.stored += 1;
            let stored: ExportedEntry = serde_json::from_str(leaf)?;
            let matched = parse_request_id(&stored.entry.request_id)
                .is_some_and(|(r, record)| r == run && acknowledged.remove(&record));
            if !matched {
                checked.unacknowledged += 1;
            }
        }
    }
    checked.missing = acknowledged.len() as u64;
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_names_its_run_and_record() {
        let id = request_id(2, 63, 123_456_789);
        assert_eq!(id.len(), 32);
        assert_eq!(parse_request_id(&id), Some((2, (63, 123_456_789))));
        assert_eq!(parse_request_id("4f3c2a"), None);
        assert_eq!(parse_request_id(&"z".repeat(32)), None);
    }
}
