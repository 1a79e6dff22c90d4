//! The audit of refused requests, rate-limited per principal: a token probing for keys
//! in a loop gets its first refusals audited one by one, the rest counted and summed
//! up in one entry when its window closes; other principals are not affected, and
//! every refused caller still gets the same answer.

use std::time::{Duration, Instant};

use coffer_api::ErrorCode;
use coffer_audit::entry::ExportedEntry;
use coffer_core::token::Token;
use coffer_server::startup::InitMethod;

use super::api::{code_of, create, wrap_request};
use super::harness::{Db, TestServer};

async fn entries(server: &TestServer) -> Vec<ExportedEntry> {
    let log = server.admin().audit_entries(0, 100_000).await.unwrap();
    log.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probing_token_is_audited_up_to_its_limit_then_counted_and_summarised() {
    let env = [
        ("COFFER_AUDIT_REFUSALS_PER_PRINCIPAL", "5"),
        ("COFFER_AUDIT_REFUSAL_WINDOW", "2s"),
    ];
    let server = TestServer::start_with(Db::Sqlite, InitMethod::KeyFile, &env)
        .await
        .unwrap();
    let prober_token = server.tenant_token("acme").await;
    let prober = server.client(&prober_token);
    let quiet_token = server.tenant_token("globex").await;
    let quiet = server.client(&quiet_token);
    let id = |token: &str| Token::decode(token).unwrap().id().to_string();
    let (prober_id, quiet_id) = (id(&prober_token), id(&quiet_token));

    // 30 probes: every one is refused alike, audited or not.
    for n in 0..30 {
        let probe = wrap_request(&format!("alias/probe-{n}"), b"x", &[]);
        assert_eq!(code_of(prober.wrap(&probe).await), ErrorCode::NotFound);
    }
    for n in 0..2 {
        let probe = wrap_request(&format!("alias/probe-{n}"), b"x", &[]);
        assert_eq!(code_of(quiet.wrap(&probe).await), ErrorCode::NotFound);
    }
    // A success is never limited.
    let key = create(&prober, "aes-256", "real").await;
    prober.wrap(&wrap_request(&key, b"x", &[])).await.unwrap();

    // The summary is written once the window closes (the server sweeps every second).
    let deadline = Instant::now() + Duration::from_secs(15);
    let log = loop {
        let log = entries(&server).await;
        if log
            .iter()
            .any(|e| e.entry.op == "audit.refusals_suppressed")
        {
            break log;
        }
        assert!(Instant::now() < deadline, "no summary entry was written");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let refused = |principal: &str| {
        log.iter()
            .filter(|e| e.entry.principal == principal && e.entry.outcome == "not_found")
            .count()
    };
    assert_eq!(refused(&prober_id), 5);
    assert_eq!(refused(&quiet_id), 2);
    let summaries: Vec<_> = log
        .iter()
        .filter(|e| e.entry.op == "audit.refusals_suppressed")
        .collect();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].entry.principal, prober_id);
    let detail = summaries[0].entry.detail.as_deref().unwrap();
    assert!(
        detail.starts_with("suppressed 25 refusals between "),
        "{detail}"
    );
    assert!(log.iter().any(|e| e.entry.principal == prober_id
        && e.entry.op == "wrap"
        && e.entry.outcome == "ok"));
    let metrics = server.anonymous().metrics(&server.ops).await.unwrap();
    let counted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kms_audit_refusals_suppressed_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no kms_audit_refusals_suppressed_total: {metrics}"));
    assert!(counted >= 25, "{counted}");
    // A new window audits the prober's refusals again.
    let probe = wrap_request("alias/probe-again", b"x", &[]);
    assert_eq!(code_of(prober.wrap(&probe).await), ErrorCode::NotFound);
    let again = entries(&server).await;
    assert!(
        again.iter().any(|e| e.entry.principal == prober_id
            && e.entry.key.as_deref() == Some("alias/probe-again"))
    );
}
