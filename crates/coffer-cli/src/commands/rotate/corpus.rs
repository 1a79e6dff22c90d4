//! `dual-unwrap`: seed 000's "both old and new KEK should still be usable for
//! unwrapping", checked on a known corpus.
//!
//! The corpus is JSON lines, `{"ciphertext": BASE64, "context": {...},
//! "plaintext_sha256": HEX}` (the last two optional). Each ciphertext is unwrapped
//! (in batches); successes are counted per key version, so the report shows whether
//! both the old and the new version were exercised. With `plaintext_sha256` the corpus
//! is a known-answer set: opening to other bytes is a failure. Plaintexts are dropped
//! (zeroized) as soon as they are checked; nothing of them is printed or recorded.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use coffer_api::crypto::{
    Batch, Context, ItemResult, MAX_BATCH_ITEMS, UnwrapRequest, UnwrapResponse,
};
use coffer_api::{B64, paths};
use coffer_crypto::hash::sha256;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Verdict;
use super::session::{Outcome, Session, Step};
use crate::commands::{print_line, table};

/// Unwraps every ciphertext of `corpus` in batches; counts successes per key version.
pub async fn dual_unwrap(s: &mut Session, corpus: &Path) -> anyhow::Result<Verdict> {
    let text = std::fs::read_to_string(corpus)
        .with_context(|| format!("cannot read the corpus {}", corpus.display()))?;
    let (items, mut failures) = parse_corpus(&text);
    if items.is_empty() && failures.is_empty() {
        failures.push((0, "the corpus holds no ciphertexts".into()));
    }
    let mut counts: BTreeMap<(String, u32), u64> = BTreeMap::new();
    for (n, chunk) in items.chunks(MAX_BATCH_ITEMS).enumerate() {
        let batch = Batch {
            items: chunk
                .iter()
                .map(|(_, line)| UnwrapRequest {
                    attestation: None,
                    ciphertext: line.ciphertext.clone(),
                    context: line.context.clone(),
                })
                .collect(),
        };
        let planned = s.post(paths::UNWRAP, Some(serde_json::to_value(&batch)?));
        let client = s.client().clone();
        let step = s
            .run(
                &format!("dual-unwrap.batch-{}", n + 1),
                &planned,
                client.unwrap_batch(&batch),
                |results: &Vec<_>| batch_evidence(results),
            )
            .await?;
        match step {
            Step::Planned => {}
            Step::Failed(error) => failures.extend(
                chunk
                    .iter()
                    .map(|(line, _)| (*line, format!("the batch failed: {error}"))),
            ),
            Step::Done(results) if results.len() != chunk.len() => failures.extend(
                chunk
                    .iter()
                    .map(|(line, _)| (*line, "the answer has a different item count".into())),
            ),
            Step::Done(results) => {
                for ((line, item), result) in chunk.iter().zip(results) {
                    match check_item(item, result) {
                        Ok((key, version)) => *counts.entry((key, version)).or_default() += 1,
                        Err(why) => failures.push((*line, why)),
                    }
                }
            }
        }
    }
    failures.sort();
    let unwrapped: u64 = counts.values().sum();
    let verdict = if !failures.is_empty() {
        Verdict::Failed
    } else if s.dry_run() {
        Verdict::Planned
    } else {
        Verdict::Passed
    };
    s.record(
        "dual-unwrap.result",
        match verdict {
            Verdict::Passed => Outcome::Ok,
            Verdict::Failed => Outcome::Failed,
            Verdict::Planned => Outcome::Planned,
        },
        json!({
            "unwrapped": counts.iter()
                .map(|((key, version), n)| json!({ "key_id": key, "version": version, "count": n }))
                .collect::<Vec<_>>(),
            "failed_lines": failures.iter().map(|(line, _)| line).collect::<Vec<_>>(),
        }),
        None,
    )?;
    let planned = s.dry_run().then_some(items.len());
    print_line(&corpus_report(&counts, &failures, unwrapped, planned))?;
    Ok(verdict)
}

/// One corpus line: a ciphertext, its context, and optionally the SHA-256 of the
/// plaintext it must open to (a known-answer corpus).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusLine {
    ciphertext: B64,
    #[serde(default)]
    context: Context,
    #[serde(default)]
    plaintext_sha256: Option<String>,
}

type Failure = (usize, String);

fn parse_corpus(text: &str) -> (Vec<(usize, CorpusLine)>, Vec<Failure>) {
    let mut items = Vec::new();
    let mut failures = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<CorpusLine>(line) {
            Ok(item) => items.push((i + 1, item)),
            Err(error) => failures.push((i + 1, corpus_error(&error))),
        }
    }
    (items, failures)
}

/// serde's message only when it names a field: its others may quote a value, and a
/// context value can be sensitive.
fn corpus_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if [
        "missing field",
        "unknown field",
        "duplicate field",
        "invalid base64",
    ]
    .iter()
    .any(|p| text.starts_with(p))
    {
        text
    } else {
        format!("not a corpus line (column {})", error.column())
    }
}

fn check_item(
    item: &CorpusLine,
    result: ItemResult<UnwrapResponse>,
) -> Result<(String, u32), String> {
    match result {
        ItemResult::Err { error } => Err(format!("{}: {}", error.code.as_str(), error.message)),
        ItemResult::Ok(answer) => {
            if let Some(expected) = &item.plaintext_sha256 {
                let actual = hex::encode(sha256(&[answer.plaintext.expose_secret()]));
                if !actual.eq_ignore_ascii_case(expected.trim()) {
                    return Err(format!(
                        "opened under v{}, but not to the plaintext plaintext_sha256 names",
                        answer.key_version
                    ));
                }
            }
            Ok((answer.key_id.clone(), answer.key_version))
        }
    }
}

fn batch_evidence(results: &[ItemResult<UnwrapResponse>]) -> Value {
    let ok = results
        .iter()
        .filter(|r| matches!(r, ItemResult::Ok(_)))
        .count();
    json!({ "items": results.len(), "ok": ok, "failed": results.len() - ok })
}

fn corpus_report(
    counts: &BTreeMap<(String, u32), u64>,
    failures: &[Failure],
    unwrapped: u64,
    planned: Option<usize>,
) -> String {
    let mut text = String::new();
    if !counts.is_empty() {
        let rows: Vec<Vec<String>> = counts
            .iter()
            .map(|((key, version), n)| vec![key.clone(), version.to_string(), n.to_string()])
            .collect();
        text.push_str(&table(&["KEY ID", "VERSION", "UNWRAPPED"], &rows));
        text.push_str("\n\n");
        let mut versions: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (key, version) in counts.keys() {
            versions.entry(key).or_default().push(*version);
        }
        let mut noted = false;
        for (key, versions) in versions.iter().filter(|(_, v)| v.len() == 1) {
            text.push_str(&format!(
                "note: the corpus exercises only v{} of {key}; a dual unwrap needs \
                 ciphertexts under both the old and the new version\n",
                versions[0]
            ));
            noted = true;
        }
        if noted {
            text.push('\n');
        }
    }
    if !failures.is_empty() {
        let rows: Vec<Vec<String>> = failures
            .iter()
            .map(|(line, why)| vec![line.to_string(), why.clone()])
            .collect();
        text.push_str(&table(&["LINE", "FAILURE"], &rows));
        text.push_str("\n\n");
    }
    let total = unwrapped + failures.len() as u64;
    text.push_str(&if let Some(items) = planned {
        format!(
            "[dry-run] dual unwrap: nothing sent; {items} ciphertext(s) would be unwrapped, \
             {} corpus line(s) are invalid",
            failures.len()
        )
    } else {
        format!(
            "dual unwrap: {unwrapped} of {total} unwrapped; {} failed",
            failures.len()
        )
    });
    text
}

#[cfg(test)]
mod tests {
    use coffer_api::B64Secret;

    use super::*;

    #[test]
    fn corpus_lines_are_parsed_without_quoting_values() {
        let text = concat!(
            "{\"ciphertext\":\"aGk=\",\"context\":{\"tenant\":\"t1\"}}\n",
            "\n",
            "{\"ciphertext\":\"aGk=\",\"context\":{\"tenant\":42}}\n",
            "{\"ciphertext\":\"!!\"}\n",
            "{\"ciphertext\":\"aGk=\",\"extra\":1}\n",
        );
        let (items, failures) = parse_corpus(text);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].0, 1);
        assert_eq!(items[0].1.context["tenant"], "t1");
        let lines: Vec<usize> = failures.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [3, 4, 5]);
        assert!(
            failures[0].1.starts_with("not a corpus line"),
            "{failures:?}"
        );
        assert!(failures[1].1.contains("base64"), "{failures:?}");
        assert!(failures[2].1.contains("extra"), "{failures:?}");
    }

    #[test]
    fn a_known_answer_is_checked() {
        let item = CorpusLine {
            ciphertext: B64(vec![1]),
            context: Context::new(),
            plaintext_sha256: Some(hex::encode(sha256(&[b"hello"]))),
        };
        let answer = |bytes: &[u8]| {
            ItemResult::Ok(UnwrapResponse {
                plaintext: B64Secret::new(bytes.to_vec()),
                key_id: "k".into(),
                key_version: 2,
                ciphertext_for_recipient: None,
            })
        };
        assert_eq!(
            check_item(&item, answer(b"hello")).unwrap(),
            ("k".into(), 2)
        );
        assert!(check_item(&item, answer(b"other")).is_err());
    }
}
