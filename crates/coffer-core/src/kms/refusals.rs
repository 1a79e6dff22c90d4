//! The audit of refused requests, rate-limited per principal.
//!
//! A refusal (403 forbidden, 404 not found, 429 quota exceeded) changes nothing, yet
//! each was one audit entry: a token holder probing in a loop grew the log by thousands
//! of entries a second. Now each principal gets at most `per_principal` refusal
//! entries per `window`; the refusals past that are not written one by one but counted
//! (`kms_audit_refusals_suppressed_total`), and when the window closes one summary
//! entry (`audit.refusals_suppressed`, detail "suppressed K refusals …") records how
//! many there were, so nothing is dropped silently. A suppressed refusal answers at
//! once, without waiting for an audit commit; the ones still recorded wait for theirs,
//! as every answer does. Successes and failures that are not refusals are never
//! limited.
//!
//! Windows are fixed, per principal, started by its first refusal. Closed windows are
//! summarised by [`Kms::flush_refusal_summaries`] (the server calls it every second)
//! or by the principal's next refusal, whichever comes first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{Kms, KmsError};
use crate::audit::AuditEntry;

/// How many refusals of one principal are audited one by one per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalLimit {
    /// Entries per principal per window.
    pub per_principal: u32,
    /// The window.
    pub window: Duration,
}

impl Default for RefusalLimit {
    fn default() -> Self {
        Self {
            per_principal: 100,
            window: Duration::from_secs(10),
        }
    }
}

/// Whether a refusal is audited on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    Record,
    Suppress,
}

/// Which windows a sweep closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Those whose time is up.
    Due,
    /// All of them (the server is stopping).
    All,
}

struct Window {
    opened: i64,
    recorded: u32,
    suppressed: u64,
    /// The tenant the summary names (the principal's, from its first refusal).
    tenant: String,
}

/// Per-principal windows of refusals.
#[derive(Default)]
pub(super) struct RefusalLimiter {
    windows: Mutex<HashMap<String, Window>>,
}

/// Whether `error` is a refusal (the caller was told no, nothing was attempted).
pub(super) fn is_refusal(error: &KmsError) -> bool {
    matches!(
        error,
        KmsError::Forbidden(_)
            | KmsError::Exceeds(_)
            | KmsError::NotFound(_)
            | KmsError::Unauthorized(_)
            | KmsError::QuotaExceeded(_)
    )
}

fn summary(principal: &str, window: &Window, closed: i64) -> AuditEntry {
    AuditEntry {
        at: closed,
        tenant: window.tenant.clone(),
        principal: principal.to_owned(),
        op: "audit.refusals_suppressed".to_owned(),
        key: None,
        version: None,
        outcome: "ok".to_owned(),
        request_id: "-".to_owned(),
        detail: Some(format!(
            "suppressed {} refusals between {} and {} (unix ms)",
            window.suppressed, window.opened, closed
        )),
    }
}

impl RefusalLimiter {
    /// Admits one refusal of `entry.principal` at `entry.at` (ms); also returns the
    /// summary of the principal's previous window if that one closed with refusals
    /// suppressed.
    pub fn admit(&self, limit: RefusalLimit, entry: &AuditEntry) -> (Admit, Option<AuditEntry>) {
        let window_ms = i64::try_from(limit.window.as_millis()).unwrap_or(i64::MAX);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut closed = None;
        if let Some(window) = windows.get(&entry.principal)
            && entry.at.saturating_sub(window.opened) >= window_ms
        {
            if window.suppressed > 0 {
                let end = window.opened.saturating_add(window_ms);
                closed = Some(summary(&entry.principal, window, end));
            }
            windows.remove(&entry.principal);
        }
        let window = windows
            .entry(entry.principal.clone())
            .or_insert_with(|| Window {
                opened: entry.at,
                recorded: 0,
                suppressed: 0,
                tenant: entry.tenant.clone(),
            });
        let admit = if window.recorded < limit.per_principal {
            window.recorded += 1;
            Admit::Record
        } else {
            window.suppressed += 1;
            Admit::Suppress
        };
        (admit, closed)
    }

    /// Removes the windows closed by `now` (ms), or every window with `Close::All`;
    /// returns the summaries of those that suppressed refusals.
    pub fn sweep(&self, limit: RefusalLimit, now: i64, close: Close) -> Vec<AuditEntry> {
        let window_ms = i64::try_from(limit.window.as_millis()).unwrap_or(i64::MAX);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut summaries = Vec::new();
        windows.retain(|principal, window| {
            let end = window.opened.saturating_add(window_ms);
            if now < end && close == Close::Due {
                return true;
            }
            if window.suppressed > 0 {
                summaries.push(summary(principal, window, end.min(now)));
            }
            false
        });
        summaries
    }
}

impl Kms {
    /// Writes the summary entries of refusal windows that have closed (`Close::All`
    /// at shutdown: of every window). A summary that cannot be written is logged; its
    /// count stays in the metric.
    pub async fn flush_refusal_summaries(&self, close: Close) {
        let now = self.keys.clock().now().millis();
        let summaries = self.refusals.sweep(self.options.refusals, now, close);
        if summaries.is_empty() {
            return;
        }
        if let Err(error) = self.audit.record_group(summaries).await {
            tracing::warn!(%error, "could not record suppressed-refusal summaries");
        }
    }

    /// A refusal's entry under the limit: counted past it, else queued without
    /// waiting for its commit. `Err` only when it could not even be queued.
    pub(super) async fn refusal_queued(&self, entry: AuditEntry) -> Result<(), KmsError> {
        if self.admit_refusal(&entry).await == Admit::Suppress {
            return Ok(());
        }
        self.audit
            .record_refusal(entry)
            .await
            .map_err(|e| KmsError::Unavailable(e.to_string()))
    }

    /// Whether this refusal's entry is written: counts the suppressed ones and writes
    /// the summary of the principal's closed window, if any, first.
    pub(super) async fn admit_refusal(&self, entry: &AuditEntry) -> Admit {
        let (admit, closed) = self.refusals.admit(self.options.refusals, entry);
        if let Some(summary) = closed
            && let Err(error) = self.audit.record(summary).await
        {
            tracing::warn!(%error, "could not record a suppressed-refusal summary");
        }
        if admit == Admit::Suppress {
            metrics::counter!("kms_audit_refusals_suppressed_total").increment(1);
        }
        admit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(principal: &str, at: i64) -> AuditEntry {
        AuditEntry {
            at,
            tenant: "t".into(),
            principal: principal.into(),
            op: "wrap".into(),
            key: None,
            version: None,
            outcome: "not_found".into(),
            request_id: "r".into(),
            detail: None,
        }
    }

    const LIMIT: RefusalLimit = RefusalLimit {
        per_principal: 3,
        window: Duration::from_secs(10),
    };

    #[test]
    fn past_the_limit_refusals_are_counted_and_summarised_when_the_window_closes() {
        let limiter = RefusalLimiter::default();
        let admits: Vec<Admit> = (0..5)
            .map(|i| limiter.admit(LIMIT, &refusal("p", 1_000 + i)).0)
            .collect();
        assert_eq!(
            admits,
            [
                Admit::Record,
                Admit::Record,
                Admit::Record,
                Admit::Suppress,
                Admit::Suppress
            ]
        );
        // Another principal has its own window.
        assert_eq!(limiter.admit(LIMIT, &refusal("q", 1_001)).0, Admit::Record);
        // Not closed yet: nothing to summarise.
        assert!(limiter.sweep(LIMIT, 10_999, Close::Due).is_empty());
        let summaries = limiter.sweep(LIMIT, 11_000, Close::Due);
        assert_eq!(summaries.len(), 1, "only p suppressed anything");
        let s = &summaries[0];
        assert_eq!(
            (s.principal.as_str(), s.op.as_str(), s.at),
            ("p", "audit.refusals_suppressed", 11_000)
        );
        assert_eq!(
            s.detail.as_deref(),
            Some("suppressed 2 refusals between 1000 and 11000 (unix ms)")
        );
        // A new window starts afresh.
        assert_eq!(limiter.admit(LIMIT, &refusal("p", 11_001)).0, Admit::Record);
    }

    #[test]
    fn the_next_refusal_after_a_closed_window_carries_its_summary() {
        let limiter = RefusalLimiter::default();
        for i in 0..4 {
            limiter.admit(LIMIT, &refusal("p", i));
        }
        let (admit, closed) = limiter.admit(LIMIT, &refusal("p", 20_000));
        assert_eq!(admit, Admit::Record);
        let closed = closed.unwrap();
        assert_eq!(
            closed.detail.as_deref(),
            Some("suppressed 1 refusals between 0 and 10000 (unix ms)")
        );
        // And it is not summarised twice.
        assert!(limiter.sweep(LIMIT, 40_000, Close::Due).is_empty());
    }

    #[test]
    fn a_stopping_server_summarises_open_windows() {
        let limiter = RefusalLimiter::default();
        for i in 0..5 {
            limiter.admit(LIMIT, &refusal("p", i));
        }
        let summaries = limiter.sweep(LIMIT, 500, Close::All);
        assert_eq!(summaries.len(), 1);
        assert_eq!(
            summaries[0].detail.as_deref(),
            Some("suppressed 2 refusals between 0 and 500 (unix ms)")
        );
    }

    #[test]
    fn only_refusals_are_limited() {
        assert!(is_refusal(&KmsError::NotFound("key")));
        assert!(is_refusal(&KmsError::Forbidden("no")));
        assert!(!is_refusal(&KmsError::InvalidCiphertext));
        assert!(!is_refusal(&KmsError::Unavailable("db".into())));
        assert!(!is_refusal(&KmsError::Invalid("bad".into())));
    }
}
