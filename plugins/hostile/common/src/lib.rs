//! What the hostile test plugins share: the eligibility answer that carries
//! their report (what they managed, what billd refused) back to the test.
use billd_plugin_sdk::payer::{CoverageStatus, Eligibility};
use billd_plugin_sdk::types::ConnectorError;

/// An active-coverage answer whose plan name is `text`.
pub fn report(text: String) -> Result<Eligibility, ConnectorError> {
    Ok(Eligibility {
        status: CoverageStatus::Active,
        plan_name: Some(text),
        group_number: None,
        coverage_begin: None,
        coverage_end: None,
        benefits: Vec::new(),
        payer_reference: None,
    })
}
