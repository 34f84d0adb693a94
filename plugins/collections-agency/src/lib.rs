//! A collections connector: billd's placements go to a collection agency
//! as a pipe-delimited placement file ([`layout`], documented in the
//! README), recalls as a small JSON request, and the agency's updates come
//! back a page at a time behind a cursor the agency makes ([`wire`]).
//!
//! - `place-accounts`: one file per call, POSTed with billd's idempotency
//!   key as the `Idempotency-Key` header, so a resend of the same batch is
//!   recognised by the agency and answered with the same receipts (the
//!   file is the same bytes: its lines in debtor-reference order, its date
//!   the first send's, kept in the plugin's state). An
//!   account whose data cannot go in the layout is refused before sending
//!   (a receipt naming the field); the others go.
//! - `recall-accounts`: the accounts, their agency numbers and a reason
//!   code, under the idempotency key.
//! - `fetch-agency-updates`: `GET {base-url}/updates?since=CURSOR`; the
//!   agency's event codes mapped by [`wire::event`].
//!
//! The transport is a setting ([`transport`]): `https`, or `sftp` over
//! billd's SFTP capability (files in the agency's folders: the placement
//! file, a recall file and the agency's update files, [`files`]).

pub mod files;
pub mod layout;
pub mod transport;
pub mod wire;

use billd_plugin_sdk::collections::*;
use billd_plugin_sdk::prelude::*;

use transport::Transport;
use wire::{Mapped, RecallLine, RecallRequest};

struct Agency;

/// The state key of the batches' file dates ([`layout::file_date`]).
const FILE_DATES: &str = "file-dates";

/// The practice's client number at the agency.
fn client_number() -> Result<String, ConnectorError> {
    let c = settings::text("client-number").unwrap_or_default();
    let c = c.trim();
    if layout::is_reference(c, 20) {
        Ok(c.to_owned())
    } else {
        Err(ConnectorError::invalid(
            "settings.client-number",
            "must be 1-20 letters, digits, - _ or . (the agency's number for the practice)",
        ))
    }
}

/// Today as billd sees it (UTC), the placement file's date.
fn today() -> Result<Date, ConnectorError> {
    let now = billd_plugin_sdk::now();
    let day = chrono::DateTime::from_timestamp(now.seconds, 0)
        .ok_or_else(|| ConnectorError::transient("billd's clock is out of range"))?
        .date_naive();
    use chrono::Datelike as _;
    Ok(Date::new(
        day.year() as u16,
        day.month() as u8,
        day.day() as u8,
    ))
}

/// The file date of batch `key`: its first send's, kept in state, so a
/// resend is the same bytes.
fn batch_date(key: &str) -> Result<Date, ConnectorError> {
    let mut kept: layout::FileDates = state::get_json(FILE_DATES).unwrap_or_default();
    let day = layout::file_date(&mut kept, key, today()?);
    state::set_json(FILE_DATES, &kept)?;
    Ok(day)
}

impl CollectionsConnector for Agency {
    fn place_accounts(
        key: &str,
        placements: Vec<Placement>,
    ) -> Result<Vec<PlacementReceipt>, ConnectorError> {
        let client = client_number()?;
        let transport = Transport::from_settings()?;
        let mut lines = Vec::new();
        let mut sent = Vec::new();
        let mut local: Vec<(String, String)> = Vec::new();
        for p in &placements {
            match layout::detail(&client, p) {
                Ok(line) => {
                    lines.push((line, p.balance));
                    sent.push(p.account_id.clone());
                }
                Err(e) => local.push((p.account_id.clone(), format!("not sent: {e}"))),
            }
        }
        let answered = if lines.is_empty() {
            Vec::new()
        } else {
            let day = batch_date(key)?;
            let file = layout::file(&client, &day, &lines);
            let answer = transport.place(key, &client, &sent, file)?;
            wire::placement_receipts(&sent, &answer)
        };
        log::info(&format!(
            "placement file: {} accounts sent, {} accepted, {} refused before sending",
            sent.len(),
            answered.iter().filter(|r| r.accepted).count(),
            local.len()
        ));
        // One receipt per placement, in the order billd gave them.
        Ok(placements
            .iter()
            .map(|p| {
                if let Some(r) = answered.iter().find(|r| r.account_id == p.account_id) {
                    return r.clone();
                }
                let message = local
                    .iter()
                    .find(|(id, _)| *id == p.account_id)
                    .map(|(_, m)| m.clone());
                PlacementReceipt {
                    account_id: p.account_id.clone(),
                    accepted: false,
                    agency_account_id: None,
                    message,
                }
            })
            .collect())
    }

    fn recall_accounts(
        key: &str,
        recalls: Vec<Recall>,
    ) -> Result<Vec<RecallReceipt>, ConnectorError> {
        if recalls.is_empty() {
            return Ok(Vec::new());
        }
        let client = client_number()?;
        let transport = Transport::from_settings()?;
        let req = RecallRequest {
            client,
            recalls: recalls
                .iter()
                .map(|r| RecallLine {
                    debtor_ref: r.account_id.clone(),
                    agency_account: r.agency_account_id.clone(),
                    reason: wire::recall_code(r.reason),
                })
                .collect(),
        };
        let day = match transport {
            Transport::Https(_) => today()?,
            Transport::Sftp(_) => batch_date(&format!("recall/{key}"))?,
        };
        let answer = transport.recall(key, &req, &day)?;
        let ids: Vec<String> = recalls.into_iter().map(|r| r.account_id).collect();
        Ok(wire::recall_receipts(&ids, &answer))
    }

    fn fetch_agency_updates(
        _key: &str,
        since: Option<String>,
    ) -> Result<AgencyUpdatePage, ConnectorError> {
        let client = client_number()?;
        let transport = Transport::from_settings()?;
        let limit = settings::integer("page-size").unwrap_or(500).clamp(1, 5000) as u32;
        let page = transport.updates(&client, since.as_deref(), limit)?;
        let mut items = Vec::new();
        let (mut skipped, mut unknown) = (0usize, Vec::new());
        for u in &page.updates {
            match wire::event(u) {
                Mapped::Updates(a) => items.extend(a),
                Mapped::Skipped(_) => skipped += 1,
                Mapped::Unknown(code) => unknown.push(format!("{code} (seq {})", u.seq)),
            }
        }
        if skipped > 0 {
            log::info(&format!(
                "{skipped} agency updates (suspend or reinstate) need nothing of billd: the accounts stay placed"
            ));
        }
        if !unknown.is_empty() {
            log::warn(&format!(
                "agency updates with event codes this connector does not know were skipped: {}",
                unknown.join(", ")
            ));
        }
        let next = if page.next_cursor.is_empty() {
            since
        } else {
            Some(page.next_cursor)
        };
        Ok(AgencyUpdatePage { items, next })
    }
}

billd_plugin_sdk::export_collections_connector!(Agency);
