//! Hostile test plugin: an infinite loop. billd must stop it at the call's
//! wall-clock deadline while other calls carry on.
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::types::*;

struct Spin;

impl PayerConnector for Spin {
    fn check_eligibility(
        _key: &str,
        _inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

billd_plugin_sdk::export_payer_connector!(Spin);
