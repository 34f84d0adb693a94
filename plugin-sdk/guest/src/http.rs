//! HTTP through billd. billd sends the request itself, only to a scheme,
//! host and port that both your manifest and the practice allow, with a
//! timeout and a cap on the response size, and audits it (never bodies).
//! Redirects are not followed.

use crate::payer_world::billd::connector0_1_0::host::{self, HttpHeader, HttpMethod};
use crate::types::ConnectorError;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::payer_world::billd::connector0_1_0::host::HttpError;

/// A request being built.
#[derive(Debug, Clone)]
pub struct Request {
    method: HttpMethod,
    url: String,
    headers: Vec<HttpHeader>,
    body: Vec<u8>,
    timeout_ms: Option<u32>,
}

impl Request {
    fn new(method: HttpMethod, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        }
    }

    /// A GET.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(HttpMethod::Get, url)
    }

    /// A POST.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(HttpMethod::Post, url)
    }

    /// A PUT.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new(HttpMethod::Put, url)
    }

    /// A DELETE.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(HttpMethod::Delete, url)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(HttpHeader {
            name: name.to_string(),
            value: value.to_string(),
        });
        self
    }

    /// Adds `authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Sets a JSON body (and its content type).
    pub fn json<T: Serialize>(mut self, value: &T) -> Self {
        // Serialising plain records cannot fail; a failure leaves the body
        // empty and the server will say so.
        self.body = serde_json::to_vec(value).unwrap_or_default();
        self.header("content-type", "application/json")
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Asks for a shorter timeout than billd's own.
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// Sends it through billd.
    pub fn send(self) -> Result<Response, HttpError> {
        host::http_send(&host::HttpRequest {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            timeout_ms: self.timeout_ms,
        })
        .map(|r| Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
    }
}

/// A response billd received.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers (names in lower case).
    pub headers: Vec<HttpHeader>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON of type `T`; a body that does not parse is the
    /// other side's fault, reported as a rejection coded
    /// `malformed-response`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ConnectorError::rejected(
                "malformed-response",
                format!("the response did not parse: {e}"),
            )
        })
    }

    /// Turns error statuses into [`ConnectorError`]s: 401 and 403 are
    /// authentication failures, 429 is rate limiting (honouring
    /// `retry-after` seconds), 408 and 5xx are transient, other 4xx are
    /// invalid requests.
    pub fn error_for_status(self) -> Result<Self, ConnectorError> {
        let s = self.status;
        match s {
            200..=399 => Ok(self),
            401 | 403 => Err(ConnectorError::authentication(format!(
                "the server refused the credentials (HTTP {s})"
            ))),
            429 => {
                let after = self
                    .header("retry-after")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(60);
                Err(ConnectorError::rate_limited(
                    after,
                    "the server asked to slow down (HTTP 429)",
                ))
            }
            408 | 500..=599 => Err(ConnectorError::transient(format!(
                "server error (HTTP {s})"
            ))),
            _ => Err(ConnectorError::invalid(
                "request",
                format!("the server refused the request (HTTP {s})"),
            )),
        }
    }
}

impl From<HttpError> for ConnectorError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::NotAllowed(m) => {
                ConnectorError::invalid("url", format!("billd refused the destination: {m}"))
            }
            HttpError::InvalidRequest(m) => ConnectorError::invalid("request", m),
            HttpError::Timeout => ConnectorError::transient("the server did not answer in time"),
            HttpError::TooLarge(cap) => ConnectorError::rejected(
                "response-too-large",
                format!("the response was larger than billd's {cap} byte cap"),
            ),
            HttpError::RateLimited(ms) => ConnectorError::rate_limited(
                ms.div_ceil(1000).max(1),
                "this plugin's request rate limit was reached",
            ),
            HttpError::Transport(m) => ConnectorError::transient(m),
        }
    }
}
