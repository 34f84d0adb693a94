//! Hostile test plugin: writes distinct state keys as fast as it can until
//! billd refuses one (the state quota), then reports how many it wrote and
//! the refusal. Without a quota it would fill the store's disk.
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::{settings, state, types::*};
use hostile_common::report;

struct StateFlood;

impl PayerConnector for StateFlood {
    fn check_eligibility(
        key: &str,
        _inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let size = settings::integer("value-bytes").unwrap_or(4096).max(1) as usize;
        let value = vec![0x5a; size];
        let mut written = 0u64;
        loop {
            match state::set(&format!("{key}-{written}"), &value) {
                Ok(()) => written += 1,
                Err(e) => return report(format!("wrote {written}; refused: {e:?}")),
            }
        }
    }
}
billd_plugin_sdk::export_payer_connector!(StateFlood);
