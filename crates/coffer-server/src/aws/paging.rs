//! `Limit`/`Marker` paging as AWS's list operations do it: entries in a stable order,
//! a page of at most `Limit`, and while more remain `Truncated: true` with a
//! `NextMarker`. The marker is the last returned entry's sort key in base64url —
//! opaque to clients, and needing no server-side state.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::AwsError;
use super::request::Body;

/// The page a list request asks for.
pub struct Page {
    limit: usize,
    after: Option<String>,
}

fn invalid_marker() -> AwsError {
    AwsError::client(
        "InvalidMarkerException",
        coffer_api::ErrorCode::InvalidRequest,
        "Marker is not one a previous response gave",
    )
}

impl Page {
    /// `Limit` (1..=`max`, `default` when absent) and `Marker` of the request.
    pub fn of(input: &Body, default: usize, max: usize) -> Result<Self, AwsError> {
        let limit = match input.opt_int("Limit")? {
            None => default,
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    AwsError::validation(format!("Limit must be between 1 and {max}"))
                })?,
        };
        let after = match input.opt_str("Marker")? {
            None => None,
            Some(marker) => {
                let bytes = URL_SAFE_NO_PAD
                    .decode(marker)
                    .map_err(|_| invalid_marker())?;
                Some(String::from_utf8(bytes).map_err(|_| invalid_marker())?)
            }
        };
        Ok(Self { limit, after })
    }

    /// The answer `{field: [...], Truncated, NextMarker?}` for `entries`, each with its
    /// sort key (unique; the order entries are listed in).
    pub fn answer(&self, field: &str, mut entries: Vec<(String, Value)>) -> Value {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let start = self.after.as_ref().map_or(0, |after| {
            entries.partition_point(|(key, _)| key.as_str() <= after.as_str())
        });
        let rest = &entries[start..];
        let shown = &rest[..rest.len().min(self.limit)];
        let mut answer = json!({
            field: shown.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            "Truncated": rest.len() > shown.len(),
        });
        if rest.len() > shown.len()
            && let Some((last, _)) = shown.last()
        {
            answer["NextMarker"] = json!(URL_SAFE_NO_PAD.encode(last));
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: Value) -> Body {
        Body::parse(json.to_string().as_bytes()).unwrap()
    }

    fn entries(n: usize) -> Vec<(String, Value)> {
        (0..n).map(|i| (format!("k{i:02}"), json!(i))).collect()
    }

    #[test]
    fn pages_walk_every_entry_once_in_order() {
        let mut seen = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut request = json!({ "Limit": 3 });
            if let Some(m) = &marker {
                request["Marker"] = json!(m);
            }
            let answer = Page::of(&body(request), 100, 1000)
                .unwrap()
                .answer("Items", entries(8));
            for item in answer["Items"].as_array().unwrap() {
                seen.push(item.as_u64().unwrap());
            }
            if answer["Truncated"] == json!(false) {
                assert!(answer.get("NextMarker").is_none());
                break;
            }
            marker = Some(answer["NextMarker"].as_str().unwrap().to_owned());
        }
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn limits_out_of_range_and_forged_markers_are_refused() {
        for limit in [0, 1001, -1] {
            let err = Page::of(&body(json!({ "Limit": limit })), 100, 1000)
                .err()
                .unwrap();
            assert_eq!(err.kind, "ValidationException");
        }
        let err = Page::of(&body(json!({ "Marker": "not base64!" })), 100, 1000)
            .err()
            .unwrap();
        assert_eq!(err.kind, "InvalidMarkerException");
        let exact = Page::of(&body(json!({ "Limit": 8 })), 100, 1000)
            .unwrap()
            .answer("Items", entries(8));
        assert_eq!(exact["Truncated"], json!(false));
    }
}
