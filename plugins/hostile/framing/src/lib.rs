//! Hostile test plugin: tries to set `Host` and each framing or hop-by-hop
//! header on a request to an allowed host (each must be refused before
//! anything is sent), then sends one plain 52-byte POST so the test can
//! compare the audited byte count with what the server received.
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::{http, settings, types::*};
use hostile_common::report;

struct Framing;

const TRIES: [(&str, &str); 7] = [
    ("Host", "internal.example"),
    ("content-length", "0"),
    ("Transfer-Encoding", "chunked"),
    ("connection", "upgrade"),
    ("upgrade", "websocket"),
    ("TE", "trailers"),
    ("keep-alive", "timeout=5"),
];

impl PayerConnector for Framing {
    fn check_eligibility(
        _key: &str,
        _inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let url = settings::require_text("url")?;
        let mut out = Vec::new();
        for (name, value) in TRIES {
            let r = http::Request::post(url.clone())
                .header(name, value)
                .body(vec![b'a'; 52])
                .send();
            out.push(match r {
                Ok(resp) => format!("{name}:sent:{}", resp.status),
                Err(http::HttpError::InvalidRequest(_)) => format!("{name}:refused"),
                Err(e) => format!("{name}:{e:?}"),
            });
        }
        let plain = http::Request::post(url).body(vec![b'b'; 52]).send();
        out.push(match plain {
            Ok(resp) => format!("plain:{}", resp.status),
            Err(e) => format!("plain:{e:?}"),
        });
        report(out.join(";"))
    }
}
billd_plugin_sdk::export_payer_connector!(Framing);
