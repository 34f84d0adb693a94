//! How files and requests reach the agency: the `transport` setting.
//!
//! Only `https` exists today: the placement file is POSTed to
//! `{base-url}/placements`, recalls to `{base-url}/recalls`, updates are
//! read from `{base-url}/updates` (plain `http` is possible only where
//! billd's allow-lists permit it, as on loopback for tests). `sftp` is
//! reserved for billd's SFTP capability: the placement file and the
//! layout stay the same, a transport for it adds drop and pick-up paths.

use billd_plugin_sdk::prelude::*;

use crate::wire::{PlacementAnswer, RecallAnswer, RecallRequest, UpdatePage, one_line};

/// The agency's answer to a refused request, as a connector error: 401
/// and 403 are authentication failures; 429 (and 503 with a
/// `Retry-After`) rate limiting; 408 and 5xx transient; 409 (an
/// idempotency key reused with other content) and 400 or 422 (a file or
/// request the agency refused as a whole) invalid requests naming
/// `field`, with the agency's `error` text as one bounded line.
#[must_use]
pub fn agency_error(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    field: &str,
) -> ConnectorError {
    let said = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(one_line))
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    let wait = retry_after.and_then(|v| v.trim().parse::<u32>().ok());
    match status {
        401 | 403 => ConnectorError::authentication(format!(
            "the agency refused the API key (HTTP {status})"
        )),
        429 => ConnectorError::rate_limited(
            wait.unwrap_or(60),
            format!("the agency asked to slow down (HTTP 429){said}"),
        ),
        503 if wait.is_some() => ConnectorError::rate_limited(
            wait.unwrap_or_default(),
            format!("the agency is unavailable (HTTP 503){said}"),
        ),
        408 | 500..=599 => {
            ConnectorError::transient(format!("the agency failed (HTTP {status}){said}"))
        }
        _ => ConnectorError::invalid(
            field,
            format!("the agency refused the request (HTTP {status}){said}"),
        ),
    }
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved
/// characters).
#[must_use]
pub fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The agency over HTTPS.
pub struct Https {
    base: String,
    api_key: String,
    timeout_ms: u32,
}

/// The configured transport.
pub enum Transport {
    /// HTTPS to `base-url`.
    Https(Https),
}

impl Transport {
    /// The transport the settings name, with its credentials.
    ///
    /// # Errors
    /// An invalid-request error naming `settings.transport` or
    /// `settings.base-url`; an authentication error without the API key.
    pub fn from_settings() -> Result<Self, ConnectorError> {
        let name = settings::text("transport").unwrap_or_default();
        match name.trim() {
            "" | "https" => {}
            "sftp" => {
                return Err(ConnectorError::invalid(
                    "settings.transport",
                    "sftp needs billd's SFTP capability, which this billd does not offer; use https",
                ));
            }
            _ => {
                return Err(ConnectorError::invalid(
                    "settings.transport",
                    "must be https (sftp is reserved)",
                ));
            }
        }
        let base = settings::require_text("base-url")?
            .trim()
            .trim_end_matches('/')
            .to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ConnectorError::invalid(
                "settings.base-url",
                "must be an absolute https:// URL",
            ));
        }
        let api_key = secrets::get("api-key")
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ConnectorError::authentication("the secret api-key is not configured")
            })?;
        let timeout_ms = settings::integer("timeout-ms")
            .unwrap_or(20_000)
            .clamp(100, 600_000) as u32;
        Ok(Transport::Https(Https {
            base,
            api_key,
            timeout_ms,
        }))
    }

    /// Sends a placement file under `key`; the agency's receipts.
    ///
    /// # Errors
    /// [`agency_error`] of a refusal; a rejection for an answer that does
    /// not parse.
    pub fn place(&self, key: &str, file: String) -> Result<PlacementAnswer, ConnectorError> {
        let Transport::Https(h) = self;
        let resp = h.send(
            Request::post(format!("{}/placements", h.base))
                .header("content-type", "text/plain; charset=utf-8")
                .header("idempotency-key", key)
                .body(file.into_bytes()),
        )?;
        Https::answer(resp, "placement-file")
    }

    /// Sends a recall request under `key`; the agency's receipts.
    ///
    /// # Errors
    /// As [`Transport::place`].
    pub fn recall(&self, key: &str, req: &RecallRequest) -> Result<RecallAnswer, ConnectorError> {
        let Transport::Https(h) = self;
        let resp = h.send(
            Request::post(format!("{}/recalls", h.base))
                .header("idempotency-key", key)
                .json(req),
        )?;
        Https::answer(resp, "recalls")
    }

    /// One page of updates after `since`.
    ///
    /// # Errors
    /// As [`Transport::place`].
    pub fn updates(
        &self,
        client: &str,
        since: Option<&str>,
        limit: u32,
    ) -> Result<UpdatePage, ConnectorError> {
        let Transport::Https(h) = self;
        let mut url = format!(
            "{}/updates?client={}&limit={limit}",
            h.base,
            query_value(client)
        );
        if let Some(s) = since {
            url.push_str(&format!("&since={}", query_value(s)));
        }
        let resp = h.send(Request::get(url).header("accept", "application/json"))?;
        Https::answer(resp, "since")
    }
}

impl Https {
    fn send(&self, req: Request) -> Result<Response, ConnectorError> {
        req.bearer(&self.api_key)
            .timeout_ms(self.timeout_ms)
            .send()
            .map_err(ConnectorError::from)
    }

    fn answer<T: serde::de::DeserializeOwned>(
        resp: Response,
        field: &str,
    ) -> Result<T, ConnectorError> {
        if !(200..300).contains(&resp.status) {
            return Err(agency_error(
                resp.status,
                resp.header("retry-after"),
                &resp.body,
                field,
            ));
        }
        resp.json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_onto_the_contracts_errors() {
        assert!(matches!(
            agency_error(401, None, b"", "x"),
            ConnectorError::Authentication(_)
        ));
        assert!(matches!(
            agency_error(429, Some("5"), b"", "x"),
            ConnectorError::RateLimited(r) if r.retry_after_seconds == 5
        ));
        assert!(matches!(
            agency_error(503, Some("9"), b"", "x"),
            ConnectorError::RateLimited(r) if r.retry_after_seconds == 9
        ));
        assert!(matches!(
            agency_error(502, None, b"<html>", "x"),
            ConnectorError::Transient(m) if !m.contains("html")
        ));
        match agency_error(
            422,
            None,
            br#"{"error": "line 1: the header must start H|BCP1\nsecond line"}"#,
            "placement-file",
        ) {
            ConnectorError::InvalidRequest(f) => {
                assert_eq!(f.field, "placement-file");
                assert!(
                    f.message.contains("(HTTP 422): line 1: the header"),
                    "{}",
                    f.message
                );
                assert!(!f.message.contains('\n'));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            agency_error(409, None, b"not json", "recalls"),
            ConnectorError::InvalidRequest(f) if f.field == "recalls"
        ));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_value("42"), "42");
        assert_eq!(query_value("a b&c=d"), "a%20b%26c%3Dd");
    }
}
