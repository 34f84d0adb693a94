//! A payer connector for clearinghouses that exchange batches as files in
//! SFTP folders (Office Ally, Availity batch, Claim.MD and most others),
//! over billd's `sftp` capability (contract 0.3.0): billd connects with the
//! practice's pinned host key and credentials, which this plugin never
//! sees.
//!
//! - `submit-claims` writes one 837P (built by core-clearinghouse's
//!   `x12build`, a secondary claim with its coordination of benefits loops
//!   from billd's `coordination` capability, contract 0.4.0) to
//!   `inbound-dir` under a name derived from billd's idempotency key, so a
//!   retried batch overwrites its own file instead of adding a second one.
//!   billd uploads to a hidden temporary name and renames it, so the
//!   clearinghouse never picks up half a file.
//! - `fetch-acknowledgments` and `fetch-remittances` pick up 999/277CA and
//!   835 files from `outbound-dir` (read by core-clearinghouse's `x12read`;
//!   a file's kind comes from its content, not its name), one file per page
//!   in name order. The page's cursor names the file (`ack:NAME`,
//!   `835:NAME`). billd stores what a page held durably, then the cursor,
//!   and only then asks for the next page with that cursor; that call
//!   deletes the named file before looking for the next one. So a file is
//!   deleted only after billd stored it, and a crash in between at worst
//!   hands the same file over again (billd applies acknowledgments and
//!   posts remittances idempotently).
//!
//! Files the connector cannot read, and files of other kinds (a 277 status
//! report, a TA1, a text report), are left on the server untouched, with a
//! warning in the log naming the file.

// core-clearinghouse's 837P writer and its 999, 277CA and 835 readers,
// shared as source (plugins are separate components; there is no library
// crate between them).
#[path = "../../core-clearinghouse/src/x12build.rs"]
pub mod x12build;
#[path = "../../core-clearinghouse/src/x12read.rs"]
pub mod x12read;

use billd_plugin_sdk::coordination;
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::prelude::*;
use billd_plugin_sdk::sftp::{self, SftpError};
use billd_plugin_sdk::types::Timestamp;
use x12build::{Parties, Stamp};

/// The server name the manifest declares.
pub const SERVER: &str = "clearinghouse";

/// The namespace of upload names derived from idempotency keys.
const NAME_NS: uuid::Uuid = uuid::Uuid::from_u128(0x2f6e_91c4_5a0b_4d3e_b7c2_8e51_0d9a_f3b7);

struct SftpClearinghouse;

/// What an outbound file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// 999 or 277CA acknowledgments.
    Ack,
    /// An 835 remittance.
    Remit,
    /// Anything else (left alone).
    Other,
}

impl Kind {
    /// The cursor tag of the fetch that handles this kind.
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Ack => "ack",
            Kind::Remit => "835",
            Kind::Other => "other",
        }
    }
}

/// The upload name of a batch: prefix, a UUID derived from the idempotency
/// key (name-based, SHA-1), suffix. The same key always gives the same name.
pub fn upload_name(prefix: &str, suffix: &str, key: &str) -> String {
    let id = uuid::Uuid::new_v5(&NAME_NS, key.as_bytes()).simple();
    format!("{prefix}{id}{suffix}")
}

/// The file a cursor of fetch `tag` names.
pub fn cursor_file<'a>(since: Option<&'a str>, tag: &str) -> Option<&'a str> {
    since?
        .strip_prefix(tag)?
        .strip_prefix(':')
        .filter(|n| !n.is_empty())
}

/// The cursor naming `file` for fetch `tag`.
pub fn cursor_for(tag: &str, file: &str) -> String {
    format!("{tag}:{file}")
}

/// What a file's X12 holds: its kind, and the interchanges.
pub fn classify(bytes: &[u8]) -> Result<(Kind, Vec<x12read::Read>), String> {
    let read = x12read::read(bytes)?;
    let sets: Vec<&str> = read
        .iter()
        .flat_map(|r| &r.sets)
        .map(|(id, _)| id.as_str())
        .collect();
    let kind = if !sets.is_empty() && sets.iter().all(|s| *s == "835") {
        Kind::Remit
    } else if !sets.is_empty() && sets.iter().all(|s| *s == "999" || *s == "277") {
        Kind::Ack
    } else {
        Kind::Other
    };
    Ok((kind, read))
}

/// Names worth looking at in a listing: plain files, not hidden (a leading
/// dot: temporary uploads), in name order.
pub fn candidates(entries: &[sftp::Entry]) -> Vec<&sftp::Entry> {
    let mut out: Vec<&sftp::Entry> = entries
        .iter()
        .filter(|e| !e.is_dir && !e.name.starts_with('.'))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn text(name: &str, default: &str) -> String {
    settings::text(name)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A folder setting without its trailing slash (`/` stays `/`).
fn folder(name: &str, default: &str) -> String {
    let f = text(name, default);
    let trimmed = f.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.to_owned()
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn parties() -> Result<Parties, ConnectorError> {
    let address = text("billing-address", "100 CLINIC WAY|SPRINGFIELD|IL|627010001");
    let parts: Vec<String> = address
        .split('|')
        .map(|s| s.trim().to_uppercase())
        .collect();
    let [line, city, state, zip] = <[String; 4]>::try_from(parts).map_err(|_| {
        ConnectorError::invalid("settings.billing-address", "expected LINE|CITY|STATE|ZIP")
    })?;
    Ok(Parties {
        sender: text("sender-id", "BILLDCLINIC"),
        receiver: text("receiver-id", "SANDBOXPAYER"),
        submitter_name: text("submitter-name", "BILLD CLINIC"),
        contact: text("submitter-contact", "BILLING OFFICE"),
        phone: text("submitter-phone", "8005550100"),
        receiver_name: text("receiver-name", "SANDBOX HEALTH PLAN"),
        billing_address: [line, city, state, zip],
        filing_indicator: text("claim-filing-indicator", "CI"),
        usage: text("usage-indicator", "T"),
    })
}

/// The control number of a submission: the one kept under its key, or the
/// next unused one (kept before anything is sent).
fn submission_number(key: &str) -> Result<u64, ConnectorError> {
    let slot = format!("submission/{key}");
    if let Some(n) = state::get_json::<u64>(&slot) {
        return Ok(n);
    }
    let next = state::get_json::<u64>("control-next").unwrap_or(1);
    let n = (next - 1) % 999_999_999 + 1;
    state::set_json("control-next", &(n + 1))?;
    state::set_json(&slot, &n)?;
    Ok(n)
}

/// The X12 date and time of an instant.
pub fn stamp(t: Timestamp) -> Stamp {
    let (y, m, d) = x12build::civil(t.seconds.div_euclid(86_400));
    let secs = t.seconds.rem_euclid(86_400);
    Stamp {
        date: format!("{y:04}{m:02}{d:02}"),
        time: format!("{:02}{:02}", secs / 3600, secs % 3600 / 60),
    }
}

/// What kind a file is, remembered in state by name, size and mtime so a
/// file of the other fetch's kind is read once, not on every call. The
/// bytes come along when the file had to be read.
fn kind_of(
    dir: &str,
    entry: &sftp::Entry,
) -> Result<(Kind, Option<Vec<x12read::Read>>), ConnectorError> {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq)]
    struct Seen {
        size: u64,
        mtime: Option<i64>,
        kind: Kind,
    }
    let slot = format!("kind/{}", entry.name);
    let mtime = entry.mtime.as_ref().map(|t| t.seconds);
    if let Some(seen) = state::get_json::<Seen>(&slot)
        && seen.size == entry.size
        && seen.mtime == mtime
    {
        return Ok((seen.kind, None));
    }
    let bytes = sftp::get(SERVER, &join(dir, &entry.name))?;
    let (kind, read) = match classify(&bytes) {
        Ok((k, r)) => (k, Some(r)),
        Err(e) => {
            log::warn(&format!(
                "outbound file {} is not X12 this connector reads ({e}); left on the server",
                entry.name
            ));
            (Kind::Other, None)
        }
    };
    if kind == Kind::Other && read.is_some() {
        log::info(&format!(
            "outbound file {} is neither 999/277CA nor 835; left on the server",
            entry.name
        ));
    }
    let _ = state::set_json(
        &slot,
        &Seen {
            size: entry.size,
            mtime,
            kind,
        },
    );
    Ok((kind, read))
}

/// The next outbound file of `kind` after deleting the one `since` names
/// (billd stored it before asking with that cursor): its name and X12.
fn next_file(
    kind: Kind,
    since: Option<&str>,
) -> Result<Option<(String, Vec<x12read::Read>)>, ConnectorError> {
    let dir = folder("outbound-dir", "/outbound");
    if let Some(done) = cursor_file(since, kind.tag()) {
        match sftp::remove(SERVER, &join(&dir, done)) {
            Ok(()) | Err(SftpError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let _ = state::delete(&format!("kind/{done}"));
    }
    let entries = sftp::list(SERVER, &dir)?;
    for entry in candidates(&entries) {
        match kind_of(&dir, entry)? {
            (k, Some(read)) if k == kind => return Ok(Some((entry.name.clone(), read))),
            (k, None) if k == kind => {
                let bytes = sftp::get(SERVER, &join(&dir, &entry.name))?;
                let read = x12read::read(&bytes).map_err(ConnectorError::transient)?;
                return Ok(Some((entry.name.clone(), read)));
            }
            _ => {}
        }
    }
    Ok(None)
}

impl PayerConnector for SftpClearinghouse {
    fn check_eligibility(
        _key: &str,
        _inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        Err(ConnectorError::unsupported(
            "check-eligibility (SFTP carries batches; use a real-time connector such as core-clearinghouse)",
        ))
    }

    fn claim_status(
        _key: &str,
        _inquiries: Vec<StatusInquiry>,
    ) -> Result<Vec<StatusResponse>, ConnectorError> {
        Err(ConnectorError::unsupported(
            "claim-status (SFTP carries batches; use a real-time connector such as core-clearinghouse)",
        ))
    }

    fn submit_claims(key: &str, claims: Vec<Claim>) -> Result<SubmissionReceipt, ConnectorError> {
        if claims.is_empty() {
            return Err(ConnectorError::invalid("claims", "a batch needs a claim"));
        }
        let parties = parties()?;
        let number = submission_number(key)?;
        let batch = number.to_string();
        let prior: Vec<_> = claims.iter().map(coordination::prior_payers).collect();
        let x12 =
            x12build::professional_837(&parties, &stamp(now()), number, &batch, &claims, &prior)
                .map_err(|(field, message)| ConnectorError::invalid(field, message))?
                .map_err(|e| {
                    ConnectorError::invalid("request", format!("the X12 cannot be written: {e}"))
                })?;
        let name = upload_name(
            &text("file-prefix", "billd-"),
            &text("file-suffix", ".837"),
            key,
        );
        let path = join(&folder("inbound-dir", "/inbound"), &name);
        sftp::put(SERVER, &path, x12.as_bytes())?;
        Ok(SubmissionReceipt {
            batch_id: batch,
            accepted_claims: claims.iter().map(|c| c.claim_id.clone()).collect(),
            message: Some(format!("uploaded as {name}")),
        })
    }

    fn fetch_acknowledgments(
        _key: &str,
        since: Option<String>,
    ) -> Result<AcknowledgmentPage, ConnectorError> {
        let Some((name, read)) = next_file(Kind::Ack, since.as_deref())? else {
            return Ok(AcknowledgmentPage {
                items: Vec::new(),
                next: None,
            });
        };
        let received = now();
        let mut items = Vec::new();
        for (st, segs) in read.iter().flat_map(|r| &r.sets) {
            match st.as_str() {
                "999" => items.extend(x12read::ack_999(segs, received)),
                "277" => items.extend(x12read::ack_277ca(segs, received)),
                _ => {}
            }
        }
        Ok(AcknowledgmentPage {
            items,
            next: Some(cursor_for(Kind::Ack.tag(), &name)),
        })
    }

    fn fetch_remittances(
        _key: &str,
        since: Option<String>,
    ) -> Result<RemittancePage, ConnectorError> {
        let Some((name, read)) = next_file(Kind::Remit, since.as_deref())? else {
            return Ok(RemittancePage {
                items: Vec::new(),
                next: None,
            });
        };
        let items = read
            .iter()
            .flat_map(|r| &r.sets)
            .filter(|(st, _)| st == "835")
            .map(|(_, segs)| x12read::remittance_835(segs))
            .collect();
        Ok(RemittancePage {
            items,
            next: Some(cursor_for(Kind::Remit.tag(), &name)),
        })
    }
}

billd_plugin_sdk::export_payer_connector!(SftpClearinghouse);

#[cfg(test)]
mod connector_tests {
    use super::*;

    #[test]
    fn a_retried_batch_keeps_its_name_and_others_differ() {
        let a = upload_name("billd-", ".837", "submission:batch-7");
        assert_eq!(a, upload_name("billd-", ".837", "submission:batch-7"));
        assert_ne!(a, upload_name("billd-", ".837", "submission:batch-8"));
        assert!(a.starts_with("billd-") && a.ends_with(".837"), "{a}");
        assert_eq!(a.len(), "billd-".len() + 32 + ".837".len());
    }

    #[test]
    fn cursors_name_the_file_of_their_own_fetch() {
        let c = cursor_for("835", "era-1.835");
        assert_eq!(cursor_file(Some(&c), "835"), Some("era-1.835"));
        assert_eq!(cursor_file(Some(&c), "ack"), None);
        assert_eq!(cursor_file(Some("835:"), "835"), None);
        assert_eq!(cursor_file(None, "835"), None);
    }

    #[test]
    fn candidates_skip_folders_and_hidden_uploads_in_name_order() {
        let e = |name: &str, is_dir| sftp::Entry {
            name: name.into(),
            size: 1,
            mtime: None,
            is_dir,
        };
        let entries = [
            e("b.835", false),
            e(".a.837.1234.billd-part", false),
            e("archive", true),
            e("a.999", false),
        ];
        let names: Vec<&str> = candidates(&entries)
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["a.999", "b.835"]);
    }

    #[test]
    fn stamps_are_x12_dates_and_times() {
        let s = stamp(Timestamp {
            seconds: 1_800_000_000,
            nanoseconds: 0,
        });
        assert_eq!((s.date.as_str(), s.time.as_str()), ("20270115", "0800"));
    }

    #[test]
    fn kinds_come_from_the_content() {
        assert!(classify(b"not x12").is_err());
    }
}
