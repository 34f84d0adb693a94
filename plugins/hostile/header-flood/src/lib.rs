//! Hostile test plugin: sends one request to an allowed host carrying
//! `count` distinct header names (enough to overflow an unchecked header
//! map), then reports what billd answered.
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::{http, settings, types::*};
use hostile_common::report;

struct HeaderFlood;

impl PayerConnector for HeaderFlood {
    fn check_eligibility(
        _key: &str,
        _inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let url = settings::require_text("url")?;
        let count = settings::integer("count").unwrap_or(30_000).max(0);
        let mut req = http::Request::get(url);
        for i in 0..count {
            req = req.header(&format!("x-flood-{i}"), "v");
        }
        match req.send() {
            Ok(r) => report(format!("sent; status {}", r.status)),
            Err(e) => report(format!("refused: {e:?}")),
        }
    }
}
billd_plugin_sdk::export_payer_connector!(HeaderFlood);
