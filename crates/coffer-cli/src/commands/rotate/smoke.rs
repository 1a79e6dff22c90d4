//! `validate` (a smoke test of the key's primary version) and `dual-unwrap` (seed
//! 000: "both old and new KEK should still be usable for unwrapping", checked on a
//! known corpus).
//!
//! The smoke test's plaintext is 32 fresh random bytes: nothing real is exposed, and
//! the round trip proves the server both sealed and opened it. Its request body is
//! never shown, not even with `--show-commands`: the printed body says what the
//! plaintext is instead of carrying it, so no secret type is ever serialized for
//! display.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use coffer_api::crypto::{
    Batch, Context, ItemResult, MAX_BATCH_ITEMS, MacRequest, SignRequest, UnwrapRequest,
    UnwrapResponse, VerifyMacRequest, VerifyRequest, WrapRequest,
};
use coffer_api::{B64, B64Secret, paths};
use coffer_client::request_paths;
use coffer_crypto::hash::sha256;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::Verdict;
use super::checks::key_evidence;
use super::session::{Outcome, Session, Step};
use crate::commands::{print_line, table};

const TEST_BYTES: usize = 32;

/// Smoke-tests `key`'s primary version by its purpose, then unwraps `corpus` if given.
pub async fn validate(
    s: &mut Session,
    key: &str,
    corpus: Option<&Path>,
) -> anyhow::Result<Verdict> {
    let planned = s.get(&request_paths::key(key)?);
    let client = s.client().clone();
    let view = match s
        .run("validate.key", &planned, client.show_key(key), key_evidence)
        .await?
    {
        Step::Planned => None,
        Step::Failed(error) => return Err(error.into()),
        Step::Done(view) => Some(view),
    };
    let verdict = match &view {
        // Dry run: the purpose is not known, so each test is planned.
        None => {
            print_line("[dry-run] validate: the test depends on the key's purpose")?;
            for purpose in ["encrypt", "sign", "mac"] {
                smoke(s, purpose, key, None).await?;
            }
            Verdict::Planned
        }
        Some(view) => smoke(s, &view.purpose, &view.key_id, Some(view.primary_version)).await?,
    };
    let corpus = match corpus {
        Some(path) => dual_unwrap(s, path).await?,
        None => verdict,
    };
    Ok(worst(verdict, corpus))
}

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
                batch_evidence,
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
    print_line(&corpus_report(&counts, &failures, unwrapped, s.dry_run()))?;
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

fn batch_evidence(results: &Vec<ItemResult<UnwrapResponse>>) -> Value {
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
    dry_run: bool,
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
        for (key, versions) in versions.iter().filter(|(_, v)| v.len() == 1) {
            text.push_str(&format!(
                "note: the corpus exercises only v{} of {key}; a dual unwrap needs \
                 ciphertexts under both the old and the new version\n",
                versions[0]
            ));
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
    text.push_str(&if dry_run {
        format!(
            "[dry-run] dual unwrap: nothing sent; {} corpus line(s) invalid",
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

/// Runs (or plans) the smoke test for `purpose`. `primary` is `None` in a dry run.
async fn smoke(
    s: &mut Session,
    purpose: &str,
    key: &str,
    primary: Option<u32>,
) -> anyhow::Result<Verdict> {
    let result = match purpose {
        "encrypt" => encrypt(s, key).await?,
        "sign" => sign(s, key).await?,
        "mac" => mac(s, key).await?,
        other => Some(Err(format!("no smoke test for purpose {other}"))),
    };
    let (outcome, detail) = match result {
        None => return Ok(Verdict::Planned),
        Some(Ok(version)) if primary.is_some_and(|p| p != version) => (
            Outcome::Failed,
            format!(
                "used v{version}, but the primary is v{}",
                primary.unwrap_or_default()
            ),
        ),
        Some(Ok(version)) => (Outcome::Ok, format!("ok under v{version} (primary)")),
        Some(Err(why)) => (Outcome::Failed, format!("FAILED: {why}")),
    };
    s.record(
        "validate.result",
        outcome,
        json!({ "purpose": purpose, "detail": detail }),
        None,
    )?;
    print_line(&format!("{purpose} smoke test: {detail}"))?;
    Ok(if outcome == Outcome::Ok {
        Verdict::Passed
    } else {
        Verdict::Failed
    })
}

/// `None`: planned. `Some(Ok(version))`: passed under that version.
type Smoke = Option<Result<u32, String>>;

async fn encrypt(s: &mut Session, key: &str) -> anyhow::Result<Smoke> {
    let mut value = Zeroizing::new(vec![0u8; TEST_BYTES]);
    coffer_crypto::rng::fill(&mut value).context("the random generator failed")?;
    let context = Context::from([("purpose".into(), "coffer-rotate-validate".into())]);
    let wrap = WrapRequest {
        key_id: key.to_owned(),
        plaintext: B64Secret::new(value.to_vec()),
        context: context.clone(),
    };
    let shown = json!({
        "key_id": key,
        "plaintext": format!("<{TEST_BYTES} random bytes>"),
        "context": context,
    });
    let planned = s.post(paths::WRAP, Some(shown));
    let client = s.client().clone();
    let step = s
        .run(
            "validate.wrap",
            &planned,
            client.wrap(&wrap),
            |c| json!({ "key_id": c.key_id, "key_version": c.key_version }),
        )
        .await?;
    let wrapped = match step {
        Step::Planned => None,
        Step::Failed(error) => return Ok(Some(Err(format!("wrap: {error}")))),
        Step::Done(wrapped) => Some(wrapped),
    };
    let unwrap = UnwrapRequest {
        ciphertext: wrapped
            .as_ref()
            .map(|w| w.ciphertext.clone())
            .unwrap_or_default(),
        context: context.clone(),
    };
    let shown = json!({ "ciphertext": "<the ciphertext wrap answered>", "context": context });
    let planned = s.post(paths::UNWRAP, Some(shown));
    let step = s
        .run(
            "validate.unwrap",
            &planned,
            client.unwrap(&unwrap),
            |u| json!({ "key_id": u.key_id, "key_version": u.key_version }),
        )
        .await?;
    Ok(match (step, wrapped) {
        (Step::Planned, _) | (_, None) => None,
        (Step::Failed(error), _) => Some(Err(format!("unwrap: {error}"))),
        (Step::Done(opened), Some(wrapped)) => {
            Some(if opened.plaintext.expose_secret() != value.as_slice() {
                Err("unwrap answered other bytes than were wrapped".into())
            } else if opened.key_version != wrapped.key_version {
                Err(format!(
                    "wrapped under v{}, unwrapped as v{}",
                    wrapped.key_version, opened.key_version
                ))
            } else {
                Ok(wrapped.key_version)
            })
        }
    })
}

fn test_message() -> B64 {
    B64(format!("coffer rotate validate {}", std::process::id()).into_bytes())
}

async fn sign(s: &mut Session, key: &str) -> anyhow::Result<Smoke> {
    let request = SignRequest {
        key_id: key.to_owned(),
        message: Some(test_message()),
        digest: None,
    };
    let planned = s.post(paths::SIGN, Some(serde_json::to_value(&request)?));
    let client = s.client().clone();
    let step = s
        .run("validate.sign", &planned, client.sign(&request), |r| {
            json!({ "key_id": r.key_id, "key_version": r.key_version, "algorithm": r.algorithm })
        })
        .await?;
    let signed = match step {
        Step::Planned => None,
        Step::Failed(error) => return Ok(Some(Err(format!("sign: {error}")))),
        Step::Done(signed) => Some(signed),
    };
    let verify = VerifyRequest {
        key_id: key.to_owned(),
        key_version: signed.as_ref().map(|r| r.key_version),
        message: request.message.clone(),
        digest: None,
        signature: signed
            .as_ref()
            .map(|r| r.signature.clone())
            .unwrap_or_default(),
    };
    let planned = s.post(paths::VERIFY, Some(serde_json::to_value(&verify)?));
    let step = s
        .run(
            "validate.verify",
            &planned,
            client.verify(&verify),
            |r| json!({ "valid": r.valid, "key_version": r.key_version }),
        )
        .await?;
    Ok(verified(step, signed.map(|r| r.key_version), "verify"))
}

async fn mac(s: &mut Session, key: &str) -> anyhow::Result<Smoke> {
    let request = MacRequest {
        key_id: key.to_owned(),
        message: test_message(),
    };
    let planned = s.post(paths::MAC, Some(serde_json::to_value(&request)?));
    let client = s.client().clone();
    let step = s
        .run(
            "validate.mac",
            &planned,
            client.mac(&request),
            |r| json!({ "key_id": r.key_id, "key_version": r.key_version }),
        )
        .await?;
    let tagged = match step {
        Step::Planned => None,
        Step::Failed(error) => return Ok(Some(Err(format!("mac: {error}")))),
        Step::Done(tagged) => Some(tagged),
    };
    let verify = VerifyMacRequest {
        key_id: key.to_owned(),
        key_version: tagged.as_ref().map(|r| r.key_version),
        message: request.message.clone(),
        mac: tagged.as_ref().map(|r| r.mac.clone()).unwrap_or_default(),
    };
    let planned = s.post(paths::VERIFY_MAC, Some(serde_json::to_value(&verify)?));
    let step = s
        .run(
            "validate.verify-mac",
            &planned,
            client.verify_mac(&verify),
            |r| json!({ "valid": r.valid, "key_version": r.key_version }),
        )
        .await?;
    Ok(verified(step, tagged.map(|r| r.key_version), "verify-mac"))
}

fn verified(
    step: Step<coffer_api::crypto::VerifyResponse>,
    version: Option<u32>,
    what: &str,
) -> Smoke {
    match (step, version) {
        (Step::Planned, _) | (_, None) => None,
        (Step::Failed(error), _) => Some(Err(format!("{what}: {error}"))),
        (Step::Done(answer), Some(version)) if answer.valid => Some(Ok(version)),
        (Step::Done(_), _) => Some(Err(format!("{what} answered invalid"))),
    }
}

fn worst(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Verdict::Failed, _) | (_, Verdict::Failed) => Verdict::Failed,
        (Verdict::Planned, _) | (_, Verdict::Planned) => Verdict::Planned,
        _ => Verdict::Passed,
    }
}

#[cfg(test)]
mod tests {
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
            })
        };
        assert_eq!(
            check_item(&item, answer(b"hello")).unwrap(),
            ("k".into(), 2)
        );
        assert!(check_item(&item, answer(b"other")).is_err());
    }
}
