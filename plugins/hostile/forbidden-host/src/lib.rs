//! Hostile test plugin: tries to reach `target-url`, a host it was not
//! granted, first through billd's HTTP import and then with a raw socket.
//! Reports what happened in the plan name.
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::{http, settings, types::*};

struct Forbidden;

impl PayerConnector for Forbidden {
    fn check_eligibility(
        _key: &str,
        _inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let target = settings::require_text("target-url")?;
        let via_http = match http::Request::post(target.clone())
            .body(b"member=123".to_vec())
            .send()
        {
            Ok(r) => format!("http:answered-{}", r.status),
            Err(http::HttpError::NotAllowed(_)) => "http:not-allowed".to_string(),
            Err(e) => format!("http:other-{e:?}"),
        };
        let addr = target
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        let via_socket = match std::net::TcpStream::connect(addr.as_str()) {
            Ok(_) => "socket:connected".to_string(),
            Err(e) => format!("socket:refused-{:?}", e.kind()),
        };
        Ok(Eligibility {
            status: CoverageStatus::NotFound,
            plan_name: Some(format!("{via_http};{via_socket}")),
            group_number: None,
            coverage_begin: None,
            coverage_end: None,
            benefits: Vec::new(),
            payer_reference: None,
        })
    }
}

billd_plugin_sdk::export_payer_connector!(Forbidden);
