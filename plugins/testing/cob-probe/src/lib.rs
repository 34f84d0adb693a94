//! A test payer connector for contract 0.4.0's `coordination` import.
//!
//! `submit-claims` asks billd for the prior payers of every claim of the
//! call and of every claim id in the `also-ask` setting, and answers, as
//! the receipt's message, a JSON object from each id asked about to what
//! billd gave: one `{"payer", "sequence", "paid", "lines", "adjusted"}` per
//! prior payer. `claim-status` asks about each inquiry's claim id and
//! answers, as each response's message, how many prior payers billd gave
//! (outside `submit-claims`: always 0).

use billd_plugin_sdk::coordination::{self, PriorPayer};
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::prelude::*;
use serde_json::{Map, Value, json};

struct Probe;

fn describe(payers: &[PriorPayer]) -> Value {
    Value::Array(
        payers
            .iter()
            .map(|p| {
                json!({
                    "payer": p.payer_id,
                    "sequence": p.sequence.x12_code(),
                    "paid": p.paid,
                    "lines": p.lines.len(),
                    "adjusted": p.adjusted(),
                })
            })
            .collect(),
    )
}

impl PayerConnector for Probe {
    fn submit_claims(key: &str, claims: Vec<Claim>) -> Result<SubmissionReceipt, ConnectorError> {
        let mut seen = Map::new();
        for c in &claims {
            seen.insert(c.claim_id.clone(), describe(&coordination::prior_payers(c)));
        }
        let also = settings::text("also-ask").unwrap_or_default();
        for id in also.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            seen.insert(id.to_string(), describe(&coordination::prior_payers_of(id)));
        }
        Ok(SubmissionReceipt {
            batch_id: key.to_string(),
            accepted_claims: claims.iter().map(|c| c.claim_id.clone()).collect(),
            message: Some(Value::Object(seen).to_string()),
        })
    }

    fn claim_status(
        _key: &str,
        inquiries: Vec<StatusInquiry>,
    ) -> Result<Vec<StatusResponse>, ConnectorError> {
        Ok(inquiries
            .iter()
            .map(|q| StatusResponse {
                claim_id: q.claim_id.clone(),
                state: ClaimState::Pending,
                category_code: "A2".into(),
                status_code: "20".into(),
                payer_claim_id: None,
                paid: None,
                effective_date: None,
                message: Some(coordination::prior_payers_of(&q.claim_id).len().to_string()),
            })
            .collect())
    }
}

billd_plugin_sdk::export_payer_connector!(Probe);
