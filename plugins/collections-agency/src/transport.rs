//! How files and requests reach the agency: the `transport` setting.
//!
//! - `https`: the placement file is POSTed to `{base-url}/placements`,
//!   recalls to `{base-url}/recalls`, updates are read from
//!   `{base-url}/updates` (plain `http` is possible only where billd's
//!   allow-lists permit it, as on loopback for tests); the agency answers
//!   each request with its receipts.
//! - `sftp`, over billd's SFTP capability (the server `agency` of the
//!   manifest; billd holds the credential and the pinned host key): the
//!   placement file goes to `placements-dir` and a recall file (layout
//!   `BCR1`, [`crate::files`]) to `recalls-dir`, each under a name derived
//!   from billd's idempotency key (a resend overwrites its own file) and
//!   uploaded through a hidden temporary name; the agency's update files
//!   (layout `BCU1`) are picked up from `updates-dir` one file a page, the
//!   cursor naming the file, which is deleted only on the next call, after
//!   billd stored what it held. SFTP has no answer channel: an uploaded
//!   account is accepted, and the agency reports a refusal later as an
//!   update (a `CAN` with its reason), which closes billd's placement.

use billd_plugin_sdk::prelude::*;
use billd_plugin_sdk::sftp::{self, SftpError};
use billd_plugin_sdk::types::Date;

use crate::files;
use crate::wire::{
    AgencyRecallReceipt, AgencyReceipt, PlacementAnswer, RecallAnswer, RecallRequest, UpdatePage,
    one_line,
};

/// The SFTP server the manifest declares.
pub const SERVER: &str = "agency";

/// The namespace of file names derived from idempotency keys.
const NAME_NS: uuid::Uuid = uuid::Uuid::from_u128(0x8c1d_4e7a_93b2_4f05_a6e1_27d9_5b3c_e840);

/// The file name for a batch of `layout` under `key`: the layout, the
/// client, a UUID derived from the key (the same key, the same name).
#[must_use]
pub fn file_name(layout: &str, client: &str, key: &str) -> String {
    let id = uuid::Uuid::new_v5(&NAME_NS, key.as_bytes()).simple();
    format!("{layout}-{client}-{id}.txt")
}

/// The cursor of the SFTP updates page that handed over `file`, the
/// `seq`-th page: `file:{seq}:{name}`. The number makes every page's cursor
/// new, so billd's entry ids for a page (derived from the cursor before
/// it) never repeat, even when an agency reuses a file name.
#[must_use]
pub fn cursor_for(seq: u64, file: &str) -> String {
    format!("file:{seq}:{file}")
}

/// The page number and file an SFTP updates cursor names.
#[must_use]
pub fn cursor_file(since: Option<&str>) -> Option<(u64, &str)> {
    let (seq, name) = since?.strip_prefix("file:")?.split_once(':')?;
    Some((seq.parse().ok()?, name)).filter(|(_, n)| !n.is_empty())
}

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

/// The agency's folders on its SFTP server.
pub struct Sftp {
    placements: String,
    recalls: String,
    updates: String,
}

/// The configured transport.
pub enum Transport {
    /// HTTPS to `base-url`.
    Https(Https),
    /// Files on the agency's SFTP server.
    Sftp(Sftp),
}

/// A folder setting, without a trailing slash (`/` stays `/`).
fn folder(name: &str, default: &str) -> String {
    let f = settings::text(name)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_owned());
    let t = f.trim_end_matches('/');
    if t.is_empty() {
        "/".into()
    } else {
        t.to_owned()
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
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
                return Ok(Transport::Sftp(Sftp {
                    placements: folder("placements-dir", "/placements"),
                    recalls: folder("recalls-dir", "/recalls"),
                    updates: folder("updates-dir", "/updates"),
                }));
            }
            _ => {
                return Err(ConnectorError::invalid(
                    "settings.transport",
                    "must be https or sftp",
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

    /// Sends a placement file of `accounts` under `key`; the agency's
    /// receipts (over SFTP: each account accepted once the file is on the
    /// server).
    ///
    /// # Errors
    /// [`agency_error`] of a refusal; a rejection for an answer that does
    /// not parse; an SFTP failure.
    pub fn place(
        &self,
        key: &str,
        client: &str,
        accounts: &[String],
        file: String,
    ) -> Result<PlacementAnswer, ConnectorError> {
        match self {
            Transport::Https(h) => {
                let resp = h.send(
                    Request::post(format!("{}/placements", h.base))
                        .header("content-type", "text/plain; charset=utf-8")
                        .header("idempotency-key", key)
                        .body(file.into_bytes()),
                )?;
                Https::answer(resp, "placement-file")
            }
            Transport::Sftp(f) => {
                let name = file_name(crate::layout::LAYOUT, client, key);
                sftp::put(SERVER, &join(&f.placements, &name), file.as_bytes())?;
                Ok(PlacementAnswer {
                    file_id: Some(name.clone()),
                    receipts: uploaded(accounts, &name),
                })
            }
        }
    }

    /// Sends a recall request under `key` (over SFTP a recall file dated
    /// `day`); the agency's receipts.
    ///
    /// # Errors
    /// As [`Transport::place`].
    pub fn recall(
        &self,
        key: &str,
        req: &RecallRequest,
        day: &Date,
    ) -> Result<RecallAnswer, ConnectorError> {
        match self {
            Transport::Https(h) => {
                let resp = h.send(
                    Request::post(format!("{}/recalls", h.base))
                        .header("idempotency-key", key)
                        .json(req),
                )?;
                Https::answer(resp, "recalls")
            }
            Transport::Sftp(f) => {
                let name = file_name(files::RECALL_LAYOUT, &req.client, key);
                let text = files::recall_file(&req.client, day, &req.recalls);
                sftp::put(SERVER, &join(&f.recalls, &name), text.as_bytes())?;
                Ok(RecallAnswer {
                    receipts: req
                        .recalls
                        .iter()
                        .map(|r| AgencyRecallReceipt {
                            debtor_ref: r.debtor_ref.clone(),
                            accepted: true,
                            message: Some(format!("sent in recall file {name}")),
                        })
                        .collect(),
                })
            }
        }
    }

    /// One page of updates after `since`: over HTTPS at most `limit`, over
    /// SFTP the next update file (after deleting the one `since` names).
    ///
    /// # Errors
    /// As [`Transport::place`]; an update file that cannot be read is an
    /// invalid request naming the file, its line and field (the file stays
    /// on the server).
    pub fn updates(
        &self,
        client: &str,
        since: Option<&str>,
        limit: u32,
    ) -> Result<UpdatePage, ConnectorError> {
        let h = match self {
            Transport::Https(h) => h,
            Transport::Sftp(f) => return f.next_updates(client, since),
        };
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

/// Receipts for accounts sent in file `name` over SFTP.
fn uploaded(accounts: &[String], name: &str) -> Vec<AgencyReceipt> {
    accounts
        .iter()
        .map(|a| AgencyReceipt {
            debtor_ref: a.clone(),
            accepted: true,
            agency_account: None,
            message: Some(format!("sent in placement file {name}")),
        })
        .collect()
}

impl Sftp {
    fn next_updates(
        &self,
        client: &str,
        since: Option<&str>,
    ) -> Result<UpdatePage, ConnectorError> {
        let done = cursor_file(since);
        if let Some((_, done)) = done {
            match sftp::remove(SERVER, &join(&self.updates, done)) {
                Ok(()) | Err(SftpError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut names: Vec<String> = sftp::list(SERVER, &self.updates)?
            .into_iter()
            .filter(|e| !e.is_dir && !e.name.starts_with('.'))
            .map(|e| e.name)
            .collect();
        names.sort();
        let Some(name) = names.into_iter().next() else {
            return Ok(UpdatePage {
                updates: Vec::new(),
                next_cursor: since.unwrap_or_default().to_owned(),
            });
        };
        let bytes = sftp::get(SERVER, &join(&self.updates, &name))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            ConnectorError::invalid(format!("updates file {name}"), "not UTF-8 text")
        })?;
        let updates = files::read_updates(&text, client)
            .map_err(|e| ConnectorError::invalid(format!("updates file {name}"), one_line(&e)))?;
        Ok(UpdatePage {
            updates,
            next_cursor: cursor_for(done.map_or(1, |(seq, _)| seq + 1), &name),
        })
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
    fn sftp_cursors_number_their_pages_and_name_their_file() {
        let c = cursor_for(7, "000012-updates.txt");
        assert_eq!(c, "file:7:000012-updates.txt");
        assert_eq!(cursor_file(Some(&c)), Some((7, "000012-updates.txt")));
        assert_eq!(cursor_file(Some("file:7:a:b.txt")), Some((7, "a:b.txt")));
        for bad in ["file:7:", "file:x:a", "42", "file:a"] {
            assert_eq!(cursor_file(Some(bad)), None, "{bad}");
        }
        assert_eq!(cursor_file(None), None);
        assert!(file_name("BCP1", "C1", "k1") == file_name("BCP1", "C1", "k1"));
        assert!(file_name("BCP1", "C1", "k1") != file_name("BCP1", "C1", "k2"));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_value("42"), "42");
        assert_eq!(query_value("a b&c=d"), "a%20b%26c%3Dd");
    }
}
