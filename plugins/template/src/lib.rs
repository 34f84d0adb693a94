//! A minimal billd payer connector: copy this crate to start your own.
//!
//! It asks a JSON API whether a member is covered on a date. Only
//! `check_eligibility` is implemented; every other operation answers
//! "unsupported" until you write it.
//!
//! Build: `cargo build --release --target wasm32-wasip2`, then put
//! `target/wasm32-wasip2/release/connector_template.wasm` beside
//! `plugin.toml`. Try it without a daemon:
//!
//! ```text
//! billd plugins call --plugin <package dir> --func check-eligibility \
//!     --input fixtures/eligibility-inquiry.json \
//!     --http-fixtures fixtures/http --secret api-key=test
//! ```

use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::prelude::*;
use serde::Deserialize;

struct Template;

/// The API's answer.
#[derive(Deserialize)]
struct Coverage {
    active: bool,
    plan: Option<String>,
}

impl PayerConnector for Template {
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

billd_plugin_sdk::export_payer_connector!(Template);
