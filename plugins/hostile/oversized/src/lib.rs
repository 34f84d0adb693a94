//! Hostile test plugin: fetches `url`, whose response is far larger than
//! billd's cap. Reports the body size it got, or billd's error.
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::{http, settings, types::*};

struct Oversized;

impl PayerConnector for Oversized {
    fn check_eligibility(
        _key: &str,
        _inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let url = settings::require_text("url")?;
        let resp = http::Request::get(url).send()?;
        Ok(Eligibility {
            status: CoverageStatus::Active,
            plan_name: Some(format!("got {} bytes", resp.body.len())),
            group_number: None,
            coverage_begin: None,
            coverage_end: None,
            benefits: Vec::new(),
            payer_reference: None,
        })
    }
}

billd_plugin_sdk::export_payer_connector!(Oversized);
