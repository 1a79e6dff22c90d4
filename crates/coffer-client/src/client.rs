//! The client: base URL, bearer token, and the one request path every call takes.

use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{RequestBuilder, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ClientError, api_error};
use crate::tls::{ClientTls, install_tls_provider};

/// Generous enough for an Argon2 unseal or a large batch on a loaded server; a hung
/// connection still ends.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one Coffer server.
///
/// Cheap to clone (the connection pool is shared). Its `Debug` shows the base URL only.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Without a trailing `/`, so a path prefix (a reverse proxy's) is kept.
    base: String,
    /// `Bearer <token>`, marked sensitive so `Debug` and HTTP/2 header compression
    /// treat it as a secret. Not zeroized: reqwest copies it into every request anyway.
    authorization: Option<HeaderValue>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the native API at `base_url` (e.g. `http://127.0.0.1:9446`),
    /// sending `token` as `Authorization: Bearer` when given.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, ClientError> {
        Self::with_tls(base_url, token, &ClientTls::default())
    }

    /// As [`Client::new`], trusting `tls`'s CA for `https://` addresses and presenting
    /// its client certificate to servers that ask for one.
    pub fn with_tls(
        base_url: &str,
        token: Option<String>,
        tls: &ClientTls,
    ) -> Result<Self, ClientError> {
        let base = check_base_url(base_url)?;
        let authorization = token
            .map(|token| {
                let mut value = HeaderValue::try_from(format!("Bearer {}", token.trim()))
                    .map_err(|_| ClientError::InvalidToken)?;
                value.set_sensitive(true);
                Ok::<_, ClientError>(value)
            })
            .transpose()?;
        install_tls_provider();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls.config()?)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| ClientError::Transport(describe(&e)))?;
        Ok(Self {
            http,
            base,
            authorization,
        })
    }

    /// The connection pool, for requests to other origins (no token attached).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The base URL of the native API, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The server's clock as it says in the `Date` header of its answer to
    /// `GET /v1/sys/seal-status` (any status; no token sent), or `None` when it sends
    /// no such header. The header has one-second resolution. For clock-skew checks
    /// (`coffer doctor`), which the typed calls cannot make: they keep only bodies.
    pub async fn server_date(&self) -> Result<Option<String>, ClientError> {
        let url = format!("{}{}", self.base, coffer_api::paths::SEAL_STATUS);
        let response = self.http.get(url).send().await.map_err(transport)?;
        Ok(response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned))
    }

    /// `GET path`, decoded.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        decode(
            &self
                .execute(self.request(reqwest::Method::GET, path))
                .await?,
        )
    }

    /// `GET path?query`, decoded.
    pub(crate) async fn get_query<Q: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, ClientError> {
        let request = self.request(reqwest::Method::GET, path).query(query);
        decode(&self.execute(request).await?)
    }

    /// `POST path` with a JSON body, decoded.
    pub(crate) async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        decode(&self.post_raw(path, body).await?)
    }

    /// `POST path` with a JSON body; the answer's body is not needed.
    pub(crate) async fn post_raw<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Vec<u8>, ClientError> {
        // The serialized body may hold plaintext (base64); reqwest owns that buffer
        // from here and cannot zeroize it, the price of using an HTTP library at all.
        let request = self.request(reqwest::Method::POST, path).json(body);
        self.execute(request).await
    }

    /// `POST path` with a JSON body and extra headers, decoded.
    pub(crate) async fn post_with_headers<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        headers: Vec<(&'static str, HeaderValue)>,
    ) -> Result<T, ClientError> {
        let mut request = self.request(reqwest::Method::POST, path).json(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        decode(&self.execute(request).await?)
    }

    /// `POST path` with no body (key actions).
    pub(crate) async fn post_empty<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, ClientError> {
        decode(
            &self
                .execute(self.request(reqwest::Method::POST, path))
                .await?,
        )
    }

    /// `GET path` on another base URL (the operations port), without the token: it
    /// needs none, and a credential should not travel to an origin that does not ask
    /// for it. Answers the status and body whatever the status.
    pub(crate) async fn get_other(
        &self,
        base_url: &str,
        path: &str,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let url = format!("{}{path}", check_base_url(base_url)?);
        let response = self.http.get(url).send().await.map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        Ok((status, body.to_vec()))
    }

    /// `POST path` with no body, the answer's raw bytes (a backup bundle).
    pub(crate) async fn post_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        self.execute(self.request(reqwest::Method::POST, path))
            .await
    }

    /// `method path` (the path may carry a query), the body as text.
    pub(crate) async fn text(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<String, ClientError> {
        let body = self.execute(self.request(method, path)).await?;
        String::from_utf8(body)
            .map_err(|_| ClientError::Decode("the answer is not UTF-8 text".into()))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.authorization {
            Some(value) => request.header(AUTHORIZATION, value.clone()),
            None => request,
        }
    }

    /// Sends, and turns a non-success answer into [`ClientError::Api`].
    async fn execute(&self, request: RequestBuilder) -> Result<Vec<u8>, ClientError> {
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            Ok(body.to_vec())
        } else {
            Err(api_error(status.as_u16(), &body, request_id.as_deref()))
        }
    }
}

/// Decodes an answer. serde's message is kept only when it names a field (missing,
/// unknown, duplicate): its other messages may quote a value, and an answer can carry
/// plaintext.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let names_a_field = ["missing field", "unknown field", "duplicate field"]
            .iter()
            .any(|p| text.starts_with(p));
        ClientError::Decode(if names_a_field {
            text
        } else {
            format!(
                "the answer is not the JSON expected (line {}, column {})",
                e.line(),
                e.column()
            )
        })
    })
}

/// Checks an absolute http(s) URL and drops its trailing `/`.
pub(crate) fn check_base_url(text: &str) -> Result<String, ClientError> {
    let url = Url::parse(text.trim()).map_err(|e| ClientError::InvalidBaseUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ClientError::InvalidBaseUrl(format!(
            "scheme must be http or https, not {}",
            url.scheme()
        )));
    }
    if url.host().is_none() {
        return Err(ClientError::InvalidBaseUrl("no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ClientError::InvalidBaseUrl(
            "a base URL takes no query or fragment".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Credentials in a URL end up in logs and shell history; Coffer takes a token.
        return Err(ClientError::InvalidBaseUrl(
            "a base URL takes no user or password; use a token".into(),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

pub(crate) fn transport(error: reqwest::Error) -> ClientError {
    ClientError::Transport(describe(&error))
}

/// The error and its causes on one line ("error sending request ...: connection
/// refused"). reqwest's messages name the URL, never headers or bodies.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_trimmed() {
        assert_eq!(
            check_base_url("http://127.0.0.1:9446/").unwrap(),
            "http://127.0.0.1:9446"
        );
        assert_eq!(
            check_base_url("https://kms.example/coffer/").unwrap(),
            "https://kms.example/coffer"
        );
        for bad in [
            "127.0.0.1:9446",
            "ftp://host",
            "http://host/?x=1",
            "http://host/#f",
            "http://user:pw@host",
            "not a url",
        ] {
            assert!(
                matches!(check_base_url(bad), Err(ClientError::InvalidBaseUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_shows_the_base_url_only() {
        let client = Client::new("http://127.0.0.1:9446", Some("coffer_v1_SECRET".into())).unwrap();
        let debug = format!("{client:?}");
        assert!(debug.contains("http://127.0.0.1:9446"), "{debug}");
        assert!(!debug.contains("SECRET"), "{debug}");
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_refused_without_echo() {
        let err = Client::new("http://h", Some("bad\ntoken-SECRET".into())).unwrap_err();
        assert!(matches!(err, ClientError::InvalidToken));
        assert!(!err.to_string().contains("SECRET"));
    }

    #[test]
    fn decode_errors_do_not_quote_values() {
        #[derive(Debug, serde::Deserialize)]
        struct Answer {
            #[expect(dead_code, reason = "only the error matters here")]
            n: u32,
        }
        let err = decode::<Answer>(br#"{"n":"SECRET"}"#).unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
        let err = decode::<Answer>(br#"{}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `n`"), "{err}");
    }
}
