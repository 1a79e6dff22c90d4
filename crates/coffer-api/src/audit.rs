//! The audit log's entries endpoint: its pages (entries themselves are JSON lines of
//! `coffer_audit::entry::ExportedEntry`).

/// Most entries one `GET /v1/audit/entries` answers with (and its default `limit`): a
/// page the server builds in memory, so bounded; a longer log is read page by page
/// with `from`. Readers stop at the first page shorter than they asked for, so they
/// must not ask for more than this.
pub const MAX_PAGE: u64 = 10_000;
