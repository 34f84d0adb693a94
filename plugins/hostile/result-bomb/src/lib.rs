//! Hostile test plugin: answers `claim-status` with `count` empty records,
//! as many as fit in its memory. Lifted into the host each record is several
//! times its size in the guest; billd must bound that transfer. Eligibility
//! answers normally (a small result), so the plugin stays usable.
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::{settings, types::*};
use hostile_common::report;

struct ResultBomb;

impl PayerConnector for ResultBomb {
    fn check_eligibility(
        _key: &str,
        _inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        report("small".into())
    }

    fn claim_status(
        _key: &str,
        _inquiries: Vec<StatusInquiry>,
    ) -> Result<Vec<StatusResponse>, ConnectorError> {
        let count = settings::integer("count").unwrap_or(1_000_000).max(0) as usize;
        let mut out = Vec::new();
        for _ in 0..count {
            if out.try_reserve(1).is_err() {
                break;
            }
            out.push(StatusResponse {
                claim_id: String::new(),
                state: ClaimState::Pending,
                category_code: String::new(),
                status_code: String::new(),
                payer_claim_id: None,
                paid: None,
                effective_date: None,
                message: None,
            });
        }
        Ok(out)
    }
}
billd_plugin_sdk::export_payer_connector!(ResultBomb);
