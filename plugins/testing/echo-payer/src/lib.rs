//! A well-behaved payer connector for billd's own tests and benchmarks: it
//! answers eligibility from the inquiry alone (records in and out, no
//! network), so it measures the host's per-call cost and runs beside the
//! hostile plugins to show their failures stay theirs.
//!
//! Settings: `generation` (echoed as the plan name, so a test can tell which
//! loaded version answered) and `busy-ms` (spend that long before answering,
//! so a test can keep a call in flight).

use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::prelude::*;

struct Echo;

fn millis(t: Timestamp) -> i64 {
    t.seconds * 1000 + i64::from(t.nanoseconds / 1_000_000)
}

impl PayerConnector for Echo {
    fn check_eligibility(
        key: &str,
        inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        if key.is_empty() {
            return Err(ConnectorError::invalid(
                "key",
                "an idempotency key is required",
            ));
        }
        if inquiry.subscriber.member_id.trim().is_empty() {
            return Err(ConnectorError::invalid(
                "subscriber.member-id",
                "must not be empty",
            ));
        }
        let busy = settings::integer("busy-ms").unwrap_or(0);
        if busy > 0 {
            let start = millis(now());
            while millis(now()) - start < busy {
                std::hint::spin_loop();
            }
        }
        let generation = settings::integer("generation").unwrap_or(1);
        let active = !inquiry.subscriber.member_id.starts_with('X');
        let types = if inquiry.service_types.is_empty() {
            vec!["30".to_string()]
        } else {
            inquiry.service_types.clone()
        };
        let benefits = types
            .into_iter()
            .map(|service_type| Benefit {
                service_type,
                kind: BenefitKind::Copay,
                network: Network::InNetwork,
                level: CoverageLevel::Individual,
                amount: Some(2500),
                percent_basis_points: None,
                message: None,
            })
            .collect();
        Ok(Eligibility {
            status: if active {
                CoverageStatus::Active
            } else {
                CoverageStatus::Inactive
            },
            plan_name: Some(format!("generation {generation}")),
            group_number: inquiry.subscriber.group_number.clone(),
            coverage_begin: Some(Date::new(inquiry.service_date.year, 1, 1)),
            coverage_end: Some(Date::new(inquiry.service_date.year, 12, 31)),
            benefits,
            payer_reference: Some(format!("echo-{key}")),
        })
    }

    fn fetch_remittances(
        _key: &str,
        since: Option<String>,
    ) -> Result<RemittancePage, ConnectorError> {
        // Keeps a counter in its state: shows state survives across calls.
        let n: u64 = state::get_json("calls").unwrap_or(0) + 1;
        state::set_json("calls", &n)?;
        Ok(RemittancePage {
            items: Vec::new(),
            next: Some(format!("{}-{n}", since.unwrap_or_default())),
        })
    }
}

billd_plugin_sdk::export_payer_connector!(Echo);
