//! `coffer audit export`, `tail` and `verify --online` read the whole log, page by page:
//! with a page far smaller than the log, the newest entry is still found and every
//! entry is verified.

use super::api::{create, unwrap_request, wrap_request};
use super::harness::TestServer;

/// Entries per request in these tests: the log below spans many pages.
const PAGE: &str = "4";

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A server whose log spans several pages, ending with the only unwrap; and the log.
async fn long_log() -> (TestServer, String) {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let key = create(&acme, "aes-256", "k").await;
    let mut last = None;
    for i in 0..20u8 {
        last = Some(acme.wrap(&wrap_request(&key, &[i; 8], &[])).await.unwrap());
    }
    let last = last.unwrap();
    acme.unwrap(&unwrap_request(&last.ciphertext, &[]))
        .await
        .unwrap();
    let log = server.admin().audit_entries(0, 1000).await.unwrap();
    assert!(log.lines().count() > 5 * 4, "the log spans several pages");
    (server, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_finds_the_newest_entry_pages_away() {
    let (server, log) = long_log().await;
    let newest = log.lines().count() - 1;
    let token = server.admin_token.clone();
    let (code, out, err) = server.cli(
        &token,
        &[
            "--json",
            "audit",
            "tail",
            "--op",
            "unwrap",
            "-n",
            "1",
            "--page-size",
            PAGE,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let shown = json(&out);
    assert_eq!(shown.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(shown[0]["index"], newest, "{out}");

    // The last N of a filter that matches across page boundaries, oldest first.
    let (code, out, err) = server.cli(
        &token,
        &[
            "--json",
            "audit",
            "tail",
            "--op",
            "wrap",
            "-n",
            "6",
            "--page-size",
            PAGE,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let indices: Vec<u64> = json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = ((newest - 6) as u64..newest as u64).collect();
    assert_eq!(indices, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_every_page_in_order() {
    let (server, log) = long_log().await;
    let token = server.admin_token.clone();
    let (code, out, err) = server.cli(&token, &["audit", "export", "--page-size", PAGE]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, log);
    // A range across pages, ending inside one.
    let (code, out, err) = server.cli(
        &token,
        &[
            "audit",
            "export",
            "--from",
            "3",
            "--limit",
            "9",
            "--page-size",
            PAGE,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let expected: String = log
        .lines()
        .skip(3)
        .take(9)
        .map(|l| l.to_owned() + "\n")
        .collect();
    assert_eq!(out, expected);
    // A page larger than the server's is refused rather than read short.
    let (code, _, _) = server.cli(&token, &["audit", "export", "--page-size", "10001"]);
    assert_ne!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_verification_covers_every_page() {
    let (server, _) = long_log().await;
    let admin = server.admin();
    admin.audit_new_checkpoint().await.unwrap();
    // Entries after the checkpoint are read too (not covered by it, but chained).
    let acme = server.tenant("later").await;
    let key = create(&acme, "aes-256", "k").await;
    acme.wrap(&wrap_request(&key, b"x", &[])).await.unwrap();
    let total = admin.audit_entries(0, 1000).await.unwrap().lines().count() as u64;
    let token = server.admin_token.clone();
    let (code, out, err) = server.cli(
        &token,
        &["--json", "audit", "verify", "--online", "--page-size", PAGE],
    );
    assert_eq!(code, 0, "{out}{err}");
    let report = json(&out);
    assert_eq!(report["valid"], true, "{out}");
    assert_eq!(report["entries"], total, "{out}");
    assert!(report["checkpoint_size"].as_u64().unwrap() < total, "{out}");
}
