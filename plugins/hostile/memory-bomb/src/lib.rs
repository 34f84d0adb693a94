//! Hostile test plugin: allocates memory until something stops it. billd's
//! memory cap must stop it, and only it.
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::types::*;

struct Bomb;

impl PayerConnector for Bomb {
    fn check_eligibility(
        _key: &str,
        _inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xA5; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

billd_plugin_sdk::export_payer_connector!(Bomb);
