//! What the hostile and identity test plugins share: the eligibility answer
//! that carries their report (what they managed, what billd refused) back
//! to the test, and the whole of an identity plugin.
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

/// A payer connector whose eligibility answer is its own name: the code
/// cache tests tell by it whose compiled code ran.
#[macro_export]
macro_rules! identity_connector {
    ($name:literal) => {
        struct Identity;

        impl billd_plugin_sdk::payer::PayerConnector for Identity {
            fn check_eligibility(
                _key: &str,
                _inquiry: billd_plugin_sdk::payer::EligibilityInquiry,
            ) -> Result<billd_plugin_sdk::payer::Eligibility, billd_plugin_sdk::types::ConnectorError>
            {
                $crate::report($name.into())
            }
        }

        billd_plugin_sdk::export_payer_connector!(Identity);
    };
}
