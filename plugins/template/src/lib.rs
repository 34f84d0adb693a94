//! A billd payer connector: the code `billd plugins new --world payer`
//! scaffolds (billd embeds this file, so the repository builds and tests
//! what an author starts from).
//!
//! It asks a JSON API whether a member is covered on a date. Only
//! `check_eligibility` is implemented; every other operation answers
//! "unsupported" until you write it.

use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::prelude::*;
use serde::Deserialize;

struct Connector;

/// The API's answer.
#[derive(Deserialize)]
struct Coverage {
    active: bool,
    plan: Option<String>,
}

impl PayerConnector for Connector {
    fn check_eligibility(
        key: &str,
        inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let base = settings::require_text("base-url")?;
        let token = secrets::require("api-key")?;
        // HTTP failures become ConnectorErrors (`?`): timeouts are transient,
        // 401/403 authentication, 429 rate-limited, other 4xx invalid.
        let coverage: Coverage = Request::post(format!("{base}/coverage"))
            .bearer(&token)
            // Pass billd's idempotency key on, so a retry is recognised.
            .header("idempotency-key", key)
            .json(&serde_json::json!({
                "payer": inquiry.payer_id,
                "member": inquiry.subscriber.member_id,
                "date": inquiry.service_date.to_iso(),
            }))
            .send()?
            .error_for_status()?
            .json()?;
        // Log record ids and outcomes, never patient data.
        log::debug("coverage answer received");
        Ok(Eligibility {
            status: if coverage.active {
                CoverageStatus::Active
            } else {
                CoverageStatus::Inactive
            },
            plan_name: coverage.plan,
            group_number: None,
            coverage_begin: None,
            coverage_end: None,
            benefits: Vec::new(),
            payer_reference: None,
        })
    }
}

billd_plugin_sdk::export_payer_connector!(Connector);
