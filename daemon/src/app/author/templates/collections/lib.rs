//! {{ name }}: a billd collections connector.
//!
//! Hands accounts to an agency's JSON API. Only `place_accounts` is
//! implemented; every other operation answers "unsupported" until you write
//! it. The agency's account id of each placement is kept in the plugin's
//! state, so an account placed before is answered from there and never sent
//! twice.

use billd_plugin_sdk::collections::*;
use billd_plugin_sdk::prelude::*;
use serde::Deserialize;

struct Connector;

/// The agency's answer for one account.
#[derive(Deserialize)]
struct Answer {
    account: String,
    accepted: bool,
    agency_id: Option<String>,
    message: Option<String>,
}

fn state_key(account_id: &str) -> String {
    format!("agency-id/{account_id}")
}

impl CollectionsConnector for Connector {
    fn place_accounts(
        key: &str,
        placements: Vec<Placement>,
    ) -> Result<Vec<PlacementReceipt>, ConnectorError> {
        let mut receipts = Vec::new();
        let mut new = Vec::new();
        for p in &placements {
            match state::get_json::<String>(&state_key(&p.account_id)) {
                Some(id) => receipts.push(PlacementReceipt {
                    account_id: p.account_id.clone(),
                    accepted: true,
                    agency_account_id: Some(id),
                    message: Some("placed before".into()),
                }),
                None => new.push(p),
            }
        }
        if new.is_empty() {
            return Ok(receipts);
        }
        let base = settings::require_text("base-url")?;
        let token = secrets::require("api-key")?;
        let body: Vec<serde_json::Value> = new
            .iter()
            .map(|p| {
                serde_json::json!({
                    "account": p.account_id,
                    "balance": cents_to_decimal(p.balance),
                    "last": p.debtor.name.last,
                    "first": p.debtor.name.first,
                    "birth_date": p.debtor.birth_date.to_iso(),
                    "postal_code": p.debtor.address.postal_code,
                })
            })
            .collect();
        let answers: Vec<Answer> = Request::post(format!("{base}/placements"))
            .bearer(&token)
            .header("idempotency-key", key)
            .json(&body)
            .send()?
            .error_for_status()?
            .json()?;
        for a in answers {
            if let (true, Some(id)) = (a.accepted, &a.agency_id) {
                state::set_json(&state_key(&a.account), id)?;
            }
            receipts.push(PlacementReceipt {
                account_id: a.account,
                accepted: a.accepted,
                agency_account_id: a.agency_id,
                message: a.message,
            });
        }
        // Log counts, never patient data.
        log::info(&format!("{} accounts placed", receipts.len()));
        Ok(receipts)
    }
}

billd_plugin_sdk::export_collections_connector!(Connector);
