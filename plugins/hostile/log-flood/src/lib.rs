//! Hostile test plugin: logs `lines` long lines through the `log` import and
//! prints as many to stderr, as fast as it can. Against a log writer that is
//! blocked (an undrained stderr) this must neither stall the call past its
//! deadline nor reach the log past the limits.
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::{log, settings, types::*};
use hostile_common::report;
use std::io::Write;

struct LogFlood;

impl PayerConnector for LogFlood {
    fn check_eligibility(
        _key: &str,
        _inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let lines = settings::integer("lines").unwrap_or(200_000).max(0);
        let line = "flood ".repeat(1000);
        for i in 0..lines {
            log::info(&line);
            if i % 16 == 0 {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
        report(format!("logged {lines}"))
    }
}
billd_plugin_sdk::export_payer_connector!(LogFlood);
