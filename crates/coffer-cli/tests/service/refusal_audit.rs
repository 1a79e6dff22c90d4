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

/// Waits until the log holds `count` suppressed-refusal summaries (the server sweeps
/// closed windows every second).
async fn log_with_summaries(server: &TestServer, count: usize) -> Vec<ExportedEntry> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = entries(server).await;
        let summaries = log
            .iter()
            .filter(|e| e.entry.op == "audit.refusals_suppressed")
            .count();
        if summaries >= count {
            return log;
        }
        assert!(Instant::now() < deadline, "{summaries} summaries written");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn summary_of<'a>(log: &'a [ExportedEntry], principal: &str) -> &'a str {
    log.iter()
        .find(|e| e.entry.op == "audit.refusals_suppressed" && e.entry.principal == principal)
        .and_then(|e| e.entry.detail.as_deref())
        .unwrap_or_else(|| panic!("no summary for {principal}"))
}

/// 401s are refusals under the same limit. A token whose tag verifies (here a revoked
/// one) is keyed by its id; no token, a malformed one and a forged one (its tag does
/// not verify, so the id in it means nothing) share the peer address's allowance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_requests_are_audited_up_to_the_limit_by_verified_token_or_peer() {
    let env = [
        ("COFFER_AUDIT_REFUSALS_PER_PRINCIPAL", "5"),
        ("COFFER_AUDIT_REFUSAL_WINDOW", "2s"),
    ];
    let server = TestServer::start_with(Db::Sqlite, InitMethod::KeyFile, &env)
        .await
        .unwrap();
    let revoked = server.tenant_token("acme").await;
    let revoked_id = Token::decode(&revoked).unwrap().id().to_string();
    server
        .admin()
        .revoke_token(&coffer_api::admin::RevokeTokenRequest {
            token_id: revoked_id.clone(),
        })
        .await
        .unwrap();
    // A forged token: a real one with its last character changed.
    let valid = server.tenant_token("globex").await;
    let mut forged = valid.clone();
    let last = if forged.ends_with('A') { "B" } else { "A" };
    forged.replace_range(forged.len() - 1.., last);

    let http = reqwest::Client::new();
    let list = format!("{}/v1/kms/keys", server.api);
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().status().as_u16()
    };
    for _ in 0..4 {
        assert_eq!(status(http.get(&list)).await, 401);
        assert_eq!(
            status(http.get(&list).bearer_auth("not-a-token")).await,
            401
        );
        assert_eq!(status(http.get(&list).bearer_auth(&forged)).await, 401);
    }
    for _ in 0..8 {
        assert_eq!(status(http.get(&list).bearer_auth(&revoked)).await, 401);
    }

    let log = log_with_summaries(&server, 2).await;
    let refused = |principal: &str| {
        log.iter()
            .filter(|e| e.entry.principal == principal && e.entry.outcome == "unauthorized")
            .count()
    };
    assert_eq!(refused(&revoked_id), 5);
    assert_eq!(refused("peer:127.0.0.1"), 5);
    let forged_id = Token::decode(&forged).map(|t| t.id().to_string());
    if let Ok(forged_id) = forged_id {
        assert_eq!(refused(&forged_id), 0, "a forged id gets no allowance");
    }
    assert!(
        summary_of(&log, &revoked_id).starts_with("suppressed 3 refusals between "),
        "{}",
        summary_of(&log, &revoked_id)
    );
    assert!(
        summary_of(&log, "peer:127.0.0.1").starts_with("suppressed 7 refusals between "),
        "{}",
        summary_of(&log, "peer:127.0.0.1")
    );
    // The entry names why, never the token.
    let entry = log
        .iter()
        .find(|e| e.entry.principal == revoked_id && e.entry.outcome == "unauthorized")
        .unwrap();
    assert_eq!(entry.entry.op, "authenticate");
    assert_eq!(entry.entry.detail.as_deref(), Some("token revoked"));
    assert!(
        !log.iter()
            .any(|e| serde_json::to_string(&e.entry).unwrap().contains(&revoked))
    );
}

/// Refused items inside a batch are refusals too: under the token's limit, counted
/// past it, and the batch's other items are recorded as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_items_of_a_batch_are_under_the_refusal_limit() {
    let env = [
        ("COFFER_AUDIT_REFUSALS_PER_PRINCIPAL", "5"),
        ("COFFER_AUDIT_REFUSAL_WINDOW", "2s"),
    ];
    let server = TestServer::start_with(Db::Sqlite, InitMethod::KeyFile, &env)
        .await
        .unwrap();
    let token = server.tenant_token("acme").await;
    let token_id = Token::decode(&token).unwrap().id().to_string();
    let client = server.client(&token);
    let key = create(&client, "aes-256", "real").await;
    let mut items: Vec<_> = (0..20)
        .map(|n| wrap_request(&format!("alias/probe-{n}"), b"x", &[]))
        .collect();
    items.push(wrap_request(&key, b"kept", &[]));
    let answers = client
        .wrap_batch(&coffer_api::crypto::Batch { items })
        .await
        .unwrap();
    assert_eq!(answers.len(), 21);
    let refused_answers = answers
        .iter()
        .filter(|a| {
            matches!(a, coffer_api::crypto::ItemResult::Err { error } if error.code == ErrorCode::NotFound)
        })
        .count();
    assert_eq!(refused_answers, 20, "{answers:?}");

    let log = log_with_summaries(&server, 1).await;
    let refused = log
        .iter()
        .filter(|e| e.entry.principal == token_id && e.entry.outcome == "not_found")
        .count();
    assert_eq!(refused, 5);
    assert!(
        summary_of(&log, &token_id).starts_with("suppressed 15 refusals between "),
        "{}",
        summary_of(&log, &token_id)
    );
    assert!(
        log.iter().any(|e| e.entry.principal == token_id
            && e.entry.op == "wrap"
            && e.entry.outcome == "ok")
    );
}
