//! Hostile test plugin: panics, with patient data in the panic message.
//! billd must turn this into a typed error that does not repeat the
//! message.
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::types::*;

struct Panics;

impl PayerConnector for Panics {
    fn check_eligibility(
        _key: &str,
        inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        panic!("cannot handle member {}", inquiry.subscriber.member_id);
    }
}

billd_plugin_sdk::export_payer_connector!(Panics);
