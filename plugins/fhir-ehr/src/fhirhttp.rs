//! FHIR R4 REST over billd's host HTTP: the base URL and timeout from the
//! settings, the caller's credentials ([`crate::auth`]) on every request
//! (a SMART token refused with 401 is dropped and replaced once), Bundle
//! paging by `next` links kept on the server's origin, and every HTTP
//! failure or OperationOutcome mapped onto the contract's connector errors
//! ([`outcome_error`]).
//!
//! The requests this connector makes carry resource ids, dates and cursors,
//! never demographics; errors still quote a server's diagnostics only in
//! part (a bounded, single-line excerpt) and never a response body.

use billd_plugin_sdk::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::{Auth, Token};
use crate::fhir::Bundle;

/// The longest excerpt of a server's diagnostics an error quotes.
pub const MAX_DIAGNOSTICS: usize = 160;

/// The longest wait for billd's per-plugin request rate before a request,
/// in milliseconds; a longer one is returned as rate limiting.
pub const MAX_PACING_WAIT_MS: u32 = 2_000;

/// The most one request waits for billd's request rate in all, in
/// milliseconds (well inside billd's default 30 s call deadline).
pub const MAX_PACING_TOTAL_MS: u32 = 10_000;

/// Sends a request through billd, waiting out billd's own per-plugin rate
/// limit (a listing with its charge searches can make more requests than
/// billd allows in a second), at most [`MAX_PACING_TOTAL_MS`] in all.
///
/// # Errors
/// The host's refusal as a connector error (a timeout is transient, a rate
/// limit past the waits is rate limiting).
pub fn send(req: Request) -> Result<Response, ConnectorError> {
    let mut waited = 0u32;
    loop {
        match req.clone().send() {
            Err(billd_plugin_sdk::http::HttpError::RateLimited(ms))
                if ms <= MAX_PACING_WAIT_MS && waited.saturating_add(ms) <= MAX_PACING_TOTAL_MS =>
            {
                waited += ms;
                std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)));
            }
            other => return other.map_err(ConnectorError::from),
        }
    }
}

/// Talks to one FHIR server.
pub struct Client {
    /// The FHIR base URL, without a trailing slash.
    pub base: String,
    timeout_ms: u32,
    auth: Auth,
}

impl Client {
    /// A client from the settings `base-url` and `timeout-ms` and the
    /// credentials [`Auth::from_settings`] finds.
    ///
    /// # Errors
    /// An invalid-request error for a base URL that is not `http(s)://`; an
    /// authentication error for credentials that are not configured.
    pub fn from_settings() -> Result<Self, ConnectorError> {
        let base = settings::require_text("base-url")?
            .trim()
            .trim_end_matches('/')
            .to_owned();
        if origin(&base).is_none() {
            return Err(ConnectorError::invalid(
                "settings.base-url",
                "must be an absolute http:// or https:// URL",
            ));
        }
        let timeout_ms = settings::integer("timeout-ms")
            .unwrap_or(20_000)
            .clamp(100, 600_000) as u32;
        Ok(Self {
            base,
            timeout_ms,
            auth: Auth::from_settings()?,
        })
    }

    /// One GET with FHIR JSON accepted and the credentials attached; a 401
    /// to a SMART token kept from an earlier call drops it and is retried
    /// once with a new one.
    fn get(&self, url: &str) -> Result<Response, ConnectorError> {
        let send_with = |token: Option<&Token>| -> Result<Response, ConnectorError> {
            let mut req = Request::get(url)
                .header("accept", "application/fhir+json")
                .timeout_ms(self.timeout_ms);
            if let Some(t) = token {
                req = req.bearer(&t.value);
            }
            send(req)
        };
        let token = self.auth.token(self.timeout_ms)?;
        let resp = send_with(token.as_ref())?;
        if resp.status == 401 && token.as_ref().is_some_and(|t| t.cached) {
            self.auth.forget()?;
            log::info("the FHIR server refused the cached access token; asking for a new one");
            return send_with(self.auth.token(self.timeout_ms)?.as_ref());
        }
        Ok(resp)
    }

    /// Fetches a search (or a `next` page) as a Bundle.
    ///
    /// # Errors
    /// [`outcome_error`] for a refusal; a rejection coded `foreign-link`
    /// for a URL off the server's origin (credentials never go there), or
    /// `malformed-response` for an answer that is not a Bundle.
    pub fn get_bundle<R: DeserializeOwned>(&self, url: &str) -> Result<Bundle<R>, ConnectorError> {
        bundle_of(self.get_on_origin(url)?)
    }

    /// Follows a `next` link: `None` when the server no longer has the page
    /// (404 or 410, as when its search results expired).
    ///
    /// # Errors
    /// As [`Client::get_bundle`].
    pub fn follow<R: DeserializeOwned>(
        &self,
        next: &str,
    ) -> Result<Option<Bundle<R>>, ConnectorError> {
        let resp = self.get_on_origin(next)?;
        if matches!(resp.status, 404 | 410) {
            return Ok(None);
        }
        bundle_of(resp).map(Some)
    }

    /// [`Client::get`] of a URL on the base's origin only.
    fn get_on_origin(&self, url: &str) -> Result<Response, ConnectorError> {
        if origin(url) != origin(&self.base) {
            return Err(ConnectorError::rejected(
                "foreign-link",
                "the FHIR server linked to another origin; billd does not send credentials there",
            ));
        }
        self.get(url)
    }

    /// Reads one resource by a relative reference (`Patient/123`): `None`
    /// when the server has no such resource (404 or 410).
    ///
    /// # Errors
    /// An invalid-request error for a reference that is not `Type/id`;
    /// [`outcome_error`] for other refusals.
    pub fn read<R: DeserializeOwned>(&self, reference: &str) -> Result<Option<R>, ConnectorError> {
        let (kind, id) = reference
            .split_once('/')
            .filter(|(k, id)| is_token(k) && is_token(id))
            .ok_or_else(|| {
                ConnectorError::invalid("reference", "not a relative Type/id reference")
            })?;
        let resp = self.get(&format!("{}/{kind}/{id}", self.base))?;
        match resp.status {
            200..=299 => parse(&resp.body, "a FHIR read").map(Some),
            404 | 410 => Ok(None),
            s => Err(outcome_error(s, resp.header("retry-after"), &resp.body)),
        }
    }
}

/// The Bundle a search answered.
fn bundle_of<R: DeserializeOwned>(resp: Response) -> Result<Bundle<R>, ConnectorError> {
    if !(200..300).contains(&resp.status) {
        return Err(outcome_error(
            resp.status,
            resp.header("retry-after"),
            &resp.body,
        ));
    }
    let bundle: Bundle<R> = parse(&resp.body, "a FHIR search")?;
    if bundle.resource_type != "Bundle" {
        return Err(ConnectorError::rejected(
            "malformed-response",
            "a FHIR search answered with something other than a Bundle",
        ));
    }
    Ok(bundle)
}

/// A FHIR type name or logical id (letters, digits, `-`, `.`).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `scheme://host[:port]` of an `http(s)` URL, in lower case and without
/// the scheme's default port, so that equal origins compare equal.
#[must_use]
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    (!authority.is_empty() && !authority.contains('@')).then(|| format!("{scheme}://{authority}"))
}

/// Percent-encodes a query value: everything but RFC 3986's unreserved
/// characters.
#[must_use]
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads a FHIR JSON answer into its typed form.
///
/// # Errors
/// A rejection coded `malformed-response` naming where the answer stops
/// being FHIR R4 (the element's path, line and column) and what is wrong
/// in kind only: a value found there is never quoted, since it may be
/// patient data.
pub fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ConnectorError> {
    serde_json::from_slice(body).map_err(|first| {
        // Read again, only now, to learn the element's path.
        let mut de = serde_json::Deserializer::from_slice(body);
        let path = match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(e) => e.path().to_string(),
            Ok(_) => String::new(),
        };
        let kind = match first.classify() {
            serde_json::error::Category::Data => "a value of the wrong type",
            serde_json::error::Category::Eof => "JSON that ends too early",
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
                "JSON that does not parse"
            }
        };
        let at = if path.is_empty() || path == "." {
            String::new()
        } else {
            format!(" at {path}")
        };
        ConnectorError::rejected(
            "malformed-response",
            format!(
                "{what} answered with {kind}{at} (line {}, column {})",
                first.line(),
                first.column()
            ),
        )
    })
}

/// What an OperationOutcome says: its issue codes, the element it names
/// (`expression` or `location`) and a bounded excerpt of its diagnostics.
struct Issues {
    codes: Vec<String>,
    element: Option<String>,
    diagnostics: Option<String>,
}

fn issues(body: &[u8]) -> Issues {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let list: Vec<&Value> = if v["resourceType"] == "OperationOutcome" {
        v["issue"].as_array().into_iter().flatten().collect()
    } else {
        Vec::new()
    };
    let mut codes: Vec<String> = list
        .iter()
        .filter_map(|i| i["code"].as_str())
        .filter(|c| is_token(c))
        .map(str::to_owned)
        .collect();
    codes.dedup();
    let element = list
        .iter()
        .flat_map(|i| {
            ["expression", "location"]
                .into_iter()
                .filter_map(move |k| i[k][0].as_str())
        })
        .find(|e| {
            e.len() <= 120
                && e.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-[]()".contains(c))
        })
        .map(str::to_owned);
    let diagnostics = list
        .iter()
        .filter_map(|i| i["diagnostics"].as_str())
        .map(excerpt)
        .find(|d| !d.is_empty());
    Issues {
        codes,
        element,
        diagnostics,
    }
}

/// A single line of at most [`MAX_DIAGNOSTICS`] characters.
fn excerpt(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim();
    match line.char_indices().nth(MAX_DIAGNOSTICS) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_owned(),
    }
}

/// The delay a `Retry-After` header asks for, in seconds (delta-seconds
/// only; an HTTP date counts as absent).
#[must_use]
pub fn retry_after(header: Option<&str>) -> Option<u32> {
    header.and_then(|v| v.trim().parse::<u32>().ok())
}

/// The connector error for a FHIR server's non-2xx answer: 401 and 403 are
/// authentication failures; 429 is rate limiting (its `Retry-After`, else
/// 60 s); 503 with a `Retry-After` is rate limiting for that long, other
/// 5xx and 408 are transient; 400, 422 and other 4xx are invalid requests
/// naming the OperationOutcome's issue codes, element and diagnostics.
#[must_use]
pub fn outcome_error(status: u16, retry_after_header: Option<&str>, body: &[u8]) -> ConnectorError {
    let is = issues(body);
    let mut said = String::new();
    if !is.codes.is_empty() {
        said.push_str(&format!(": issue {}", is.codes.join(", ")));
    }
    if let Some(d) = &is.diagnostics {
        said.push_str(&format!(" ({d})"));
    }
    let wait = retry_after(retry_after_header);
    match status {
        401 | 403 => ConnectorError::authentication(format!(
            "the FHIR server refused the credentials (HTTP {status}){said}"
        )),
        429 => ConnectorError::rate_limited(
            wait.unwrap_or(60),
            format!("the FHIR server asked to slow down (HTTP 429){said}"),
        ),
        503 if wait.is_some() => ConnectorError::rate_limited(
            wait.unwrap_or_default(),
            format!("the FHIR server is unavailable (HTTP 503){said}"),
        ),
        408 | 500..=599 => {
            ConnectorError::transient(format!("the FHIR server failed (HTTP {status}){said}"))
        }
        _ => ConnectorError::invalid(
            is.element.unwrap_or_else(|| "request".into()),
            format!("the FHIR server refused the request (HTTP {status}){said}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(code: &str, diagnostics: &str) -> Vec<u8> {
        json!({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": code, "diagnostics": diagnostics,
             "expression": ["Patient.birthDate"]}
        ]})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode("gt2026-01-01T00:00:00.000+00:00"),
            "gt2026-01-01T00%3A00%3A00.000%2B00%3A00"
        );
        assert_eq!(
            encode("Encounter/a,Encounter/b"),
            "Encounter%2Fa%2CEncounter%2Fb"
        );
        assert_eq!(encode("a b&c=d~_"), "a%20b%26c%3Dd~_");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn the_next_link_is_found_and_origins_compare_scheme_and_authority() {
        let b: Bundle<crate::fhir::Patient> =
            serde_json::from_value(json!({"resourceType": "Bundle", "link": [
                {"relation": "self", "url": "http://h:1/fhir/Patient?_count=2"},
                {"relation": "next", "url": "http://h:1/fhir/Patient?_count=2&_offset=2"}
            ]}))
            .unwrap();
        assert_eq!(
            b.next_link().as_deref(),
            Some("http://h:1/fhir/Patient?_count=2&_offset=2")
        );
        assert_eq!(origin("HTTP://h:1/fhir?x=1").as_deref(), Some("http://h:1"));
        assert_eq!(origin("http://h:1").as_deref(), Some("http://h:1"));
        assert_eq!(
            origin("https://EHR.example:443/fhir"),
            origin("https://ehr.example/r4")
        );
        assert_eq!(origin("http://h:80/"), origin("http://h"));
        assert_ne!(origin("https://h:80/"), origin("https://h"));
        assert_eq!(origin("http://user@h/fhir"), None);
        assert_ne!(origin("http://h:1/fhir"), origin("http://h:2/fhir"));
        assert_eq!(origin("ftp://h/x"), None);
        assert_eq!(origin("Patient/1"), None);
    }

    #[test]
    fn statuses_map_onto_the_contracts_errors() {
        assert!(matches!(
            outcome_error(401, None, &outcome("login", "no valid bearer token")),
            ConnectorError::Authentication(m) if m.contains("HTTP 401") && m.contains("login")
        ));
        assert!(matches!(
            outcome_error(403, None, b""),
            ConnectorError::Authentication(_)
        ));
        assert!(matches!(
            outcome_error(429, Some("7"), b""),
            ConnectorError::RateLimited(r) if r.retry_after_seconds == 7
        ));
        assert!(matches!(
            outcome_error(429, None, b""),
            ConnectorError::RateLimited(r) if r.retry_after_seconds == 60
        ));
        assert!(matches!(
            outcome_error(503, Some(" 12 "), &outcome("transient", "busy")),
            ConnectorError::RateLimited(r) if r.retry_after_seconds == 12 && r.message.contains("503")
        ));
        assert!(matches!(
            outcome_error(503, None, b""),
            ConnectorError::Transient(_)
        ));
        assert!(matches!(
            outcome_error(500, Some("Wed, 21 Oct 2015 07:28:00 GMT"), b"<html>"),
            ConnectorError::Transient(m) if !m.contains("html")
        ));
        assert!(matches!(
            outcome_error(408, None, b""),
            ConnectorError::Transient(_)
        ));
    }

    #[test]
    fn a_refused_request_names_the_issue_and_element_but_quotes_only_an_excerpt() {
        let long = format!("bad value {}", "x".repeat(500));
        match outcome_error(422, None, &outcome("invalid", &long)) {
            ConnectorError::InvalidRequest(f) => {
                assert_eq!(f.field, "Patient.birthDate");
                assert!(f.message.contains("HTTP 422"), "{}", f.message);
                assert!(f.message.contains("issue invalid"), "{}", f.message);
                assert!(f.message.contains("bad value"), "{}", f.message);
                assert!(
                    f.message.chars().count() < MAX_DIAGNOSTICS + 80,
                    "{}",
                    f.message
                );
            }
            other => panic!("{other:?}"),
        }
        // A body that is not an OperationOutcome is never quoted.
        match outcome_error(400, None, br#"{"name": "SMITH, JANE"}"#) {
            ConnectorError::InvalidRequest(f) => {
                assert_eq!(f.field, "request");
                assert!(!f.message.contains("SMITH"), "{}", f.message);
            }
            other => panic!("{other:?}"),
        }
        // Diagnostics become one line.
        match outcome_error(400, None, &outcome("not-supported", "a\nb\r\nc")) {
            ConnectorError::InvalidRequest(f) => assert!(!f.message.contains('\n')),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_answer_that_is_not_fhir_names_the_element_but_never_its_value() {
        let body = br#"{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Coverage", "id": "c1"}},
            {"resource": {"resourceType": "Coverage", "id": "c2", "order": "SMITH"}}]}"#;
        match parse::<Bundle<crate::fhir::Coverage>>(body, "a FHIR search") {
            Err(ConnectorError::Rejected(r)) => {
                assert_eq!(r.code, "malformed-response");
                assert!(
                    r.message.contains("entry[1].resource.order"),
                    "{}",
                    r.message
                );
                assert!(r.message.contains("wrong type"), "{}", r.message);
                assert!(!r.message.contains("SMITH"), "{}", r.message);
            }
            other => panic!("{other:?}"),
        }
        match parse::<Bundle<crate::fhir::Coverage>>(b"{\"entry\": [", "a FHIR search") {
            Err(ConnectorError::Rejected(r)) => assert!(r.message.contains("ends too early")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_takes_delta_seconds_only() {
        assert_eq!(retry_after(Some("30")), Some(30));
        assert_eq!(retry_after(Some("soon")), None);
        assert_eq!(retry_after(None), None);
    }

    #[test]
    fn references_to_read_are_type_and_id_tokens() {
        assert!(is_token("Patient") && is_token("a-1.b"));
        assert!(!is_token("") && !is_token("a/b") && !is_token("a?b"));
    }
}
