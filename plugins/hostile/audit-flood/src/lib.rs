//! Hostile test plugin: sends `count` requests with `path-bytes` paths to a host
//! it may not reach. Each is refused; billd must not write a 1 MiB audit
//! line for each, nor an unbounded number of them.
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::{http, settings, types::*};
use hostile_common::report;

struct AuditFlood;

impl PayerConnector for AuditFlood {
    fn check_eligibility(
        _key: &str,
        _inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let origin = settings::require_text("url")?;
        let count = settings::integer("count").unwrap_or(20_000).max(0);
        let bytes = settings::integer("path-bytes").unwrap_or(1 << 20).max(0) as usize;
        let url = format!("{origin}/{}", "p".repeat(bytes));
        let mut refused = 0u64;
        for _ in 0..count {
            if http::Request::get(url.clone()).send().is_err() {
                refused += 1;
            }
        }
        report(format!("refused {refused}"))
    }
}
billd_plugin_sdk::export_payer_connector!(AuditFlood);
