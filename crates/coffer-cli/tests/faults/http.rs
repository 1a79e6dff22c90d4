//! Raw HTTP for fault tests: the status and `Retry-After` of every answer, which the
//! typed client does not show, with a timeout on every request so that a wedged server
//! fails the test instead of hanging it.

use std::time::Duration;

use serde_json::Value;

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub json: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A string field of the JSON body.
    pub fn field(&self, name: &str) -> String {
        self.json[name]
            .as_str()
            .unwrap_or_else(|| panic!("no `{name}` in {}", self.json))
            .to_owned()
    }
}

/// A client whose requests give up after ten seconds (every fault test bounds its
/// time).
pub fn client() -> reqwest::Client {
    coffer_client::install_tls_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn answer(request: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let text = response.text().await?;
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Answer {
        status,
        retry_after,
        json,
    })
}

/// `POST base+path` as `token`, with a JSON body or none. `Err` when no answer came
/// (connection refused or reset, timeout).
pub async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<Answer, reqwest::Error> {
    let mut request = http.post(format!("{base}{path}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    answer(request).await
}

/// `GET base+path` as `token`.
pub async fn get(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
) -> Result<Answer, reqwest::Error> {
    answer(http.get(format!("{base}{path}")).bearer_auth(token)).await
}

/// The status of `GET /readyz` on an operations port (0: no answer).
pub async fn readyz(http: &reqwest::Client, ops: &str) -> u16 {
    match http.get(format!("{ops}/readyz")).send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

/// The value of counter `name` on an operations port's `/metrics`, summed over its
/// labels; 0 when absent (a counter never incremented is not exported).
pub async fn metric(http: &reqwest::Client, ops: &str, name: &str) -> f64 {
    let text = http
        .get(format!("{ops}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
