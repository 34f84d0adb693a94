//! The agency's JSON: placement and recall receipts, the recall request,
//! and pages of updates, with the agency's event codes mapped onto the
//! contract's events ([`event`]). Pure: tested on the host.

use billd_plugin_sdk::collections::{
    AgencyEvent, AgencyUpdate, CollectedPayment, PlacementReceipt, RecallReason, RecallReceipt,
};
use billd_plugin_sdk::types::Date;
use serde::{Deserialize, Serialize};

/// The longest agency text (a message, a dispute reason) passed on.
pub const MAX_TEXT: usize = 200;

/// A single line of at most [`MAX_TEXT`] characters.
#[must_use]
pub fn one_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim();
    match line.char_indices().nth(MAX_TEXT) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_owned(),
    }
}

/// One account's receipt in the agency's answer to a placement file.
#[derive(Debug, Clone, Deserialize)]
pub struct AgencyReceipt {
    /// The debtor reference (billd's account id).
    pub debtor_ref: String,
    /// Whether the agency took the account.
    pub accepted: bool,
    /// The agency's account number.
    #[serde(default)]
    pub agency_account: Option<String>,
    /// The agency's words.
    #[serde(default)]
    pub message: Option<String>,
}

/// The agency's answer to a placement file.
#[derive(Debug, Clone, Deserialize)]
pub struct PlacementAnswer {
    /// The agency's id of the file.
    #[serde(default)]
    pub file_id: Option<String>,
    /// One receipt per detail line.
    pub receipts: Vec<AgencyReceipt>,
}

/// The contract's receipt for each of `accounts` (in order): the agency's,
/// or a refusal when its answer has none for the account.
#[must_use]
pub fn placement_receipts(accounts: &[String], answer: &PlacementAnswer) -> Vec<PlacementReceipt> {
    accounts
        .iter()
        .map(
            |id| match answer.receipts.iter().find(|r| &r.debtor_ref == id) {
                Some(r) => PlacementReceipt {
                    account_id: id.clone(),
                    accepted: r.accepted,
                    agency_account_id: r
                        .agency_account
                        .clone()
                        .filter(|a| r.accepted && !a.is_empty()),
                    message: r.message.as_deref().map(one_line),
                },
                None => PlacementReceipt {
                    account_id: id.clone(),
                    accepted: false,
                    agency_account_id: None,
                    message: Some("the agency's answer has no receipt for this account".into()),
                },
            },
        )
        .collect()
}

/// The agency's code of a recall reason.
#[must_use]
pub fn recall_code(r: RecallReason) -> &'static str {
    match r {
        RecallReason::PaidInFull => "PIF",
        RecallReason::Disputed => "DSP",
        RecallReason::Bankruptcy => "BKR",
        RecallReason::FinancialAssistance => "FAS",
        RecallReason::PracticeRequest => "REQ",
    }
}

/// One account called back, as the agency's recall request writes it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecallLine {
    /// The debtor reference.
    pub debtor_ref: String,
    /// The agency's account number, when billd knows it.
    pub agency_account: Option<String>,
    /// [`recall_code`] of the reason.
    pub reason: &'static str,
}

/// The recall request.
#[derive(Debug, Clone, Serialize)]
pub struct RecallRequest {
    /// The practice's client number.
    pub client: String,
    /// The accounts called back.
    pub recalls: Vec<RecallLine>,
}

/// One account's answer to a recall.
#[derive(Debug, Clone, Deserialize)]
pub struct AgencyRecallReceipt {
    /// The debtor reference.
    pub debtor_ref: String,
    /// Whether the agency stopped working the account.
    pub accepted: bool,
    /// The agency's words.
    #[serde(default)]
    pub message: Option<String>,
}

/// The agency's answer to a recall request.
#[derive(Debug, Clone, Deserialize)]
pub struct RecallAnswer {
    /// One receipt per recall.
    pub receipts: Vec<AgencyRecallReceipt>,
}

/// The contract's recall receipt for each of `accounts`.
#[must_use]
pub fn recall_receipts(accounts: &[String], answer: &RecallAnswer) -> Vec<RecallReceipt> {
    accounts
        .iter()
        .map(
            |id| match answer.receipts.iter().find(|r| &r.debtor_ref == id) {
                Some(r) => RecallReceipt {
                    account_id: id.clone(),
                    accepted: r.accepted,
                    message: r.message.as_deref().map(one_line),
                },
                None => RecallReceipt {
                    account_id: id.clone(),
                    accepted: false,
                    message: Some("the agency's answer has no receipt for this account".into()),
                },
            },
        )
        .collect()
}

/// One update as the agency lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct WireUpdate {
    /// The agency's sequence number.
    pub seq: u64,
    /// PAY, PIF, CAN, SUS, REI or DSP.
    pub code: String,
    /// The debtor reference.
    pub debtor_ref: String,
    /// The agency's account number.
    #[serde(default)]
    pub agency_account: Option<String>,
    /// The day it happened (`YYYY-MM-DD`).
    pub date: String,
    /// PAY, PIF: what the debtor paid.
    #[serde(default)]
    pub gross_cents: Option<i64>,
    /// PAY, PIF: the agency's fee.
    #[serde(default)]
    pub fee_cents: Option<i64>,
    /// PAY, PIF: what the agency remits.
    #[serde(default)]
    pub net_cents: Option<i64>,
    /// CAN, SUS, DSP: the agency's reason.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A page of updates.
#[derive(Debug, Clone, Deserialize)]
pub struct UpdatePage {
    /// The updates, oldest first.
    pub updates: Vec<WireUpdate>,
    /// Where the next page starts (the same cursor when nothing is new).
    pub next_cursor: String,
}

/// What became of one agency update.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// Updates for billd (PIF is two: the payment, then the closure).
    Updates(Vec<AgencyUpdate>),
    /// Not one billd acts on (SUS, REI): the code, for the log.
    Skipped(&'static str),
    /// An event code this connector does not know: the code (a bounded
    /// token), for the log.
    Unknown(String),
}

/// The contract's event for an agency update:
/// - PAY (a partial payment) is `payment-collected` with the gross, fee
///   and net as given (billd refuses parts that do not add up, with a
///   task);
/// - PIF (the payment that pays the account in full) is that payment and
///   then `closed("paid in full at the agency")`: the agency has closed
///   its file, so billd closes its placement rather than recalling it;
/// - CAN (the agency cancelled or closed its file) is `closed`, with the
///   agency's reason;
/// - DSP (the debtor disputes the debt) is `disputed`, with the reason;
/// - SUS (the agency suspended work on the file) and REI (it reinstated
///   it) are skipped: the account stays placed either way, and the
///   contract has no event for a pause (closing billd's placement on SUS
///   would leave the REI after it with no placement to reopen).
///
/// The date goes on as given; one that does not parse becomes 0000-00-00,
/// which billd refuses with a task rather than the page failing.
#[must_use]
pub fn event(u: &WireUpdate) -> Mapped {
    let reason = |fallback: &str| {
        u.reason
            .as_deref()
            .map(one_line)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| fallback.to_owned())
    };
    let payment = || {
        AgencyEvent::PaymentCollected(CollectedPayment {
            gross: u.gross_cents.unwrap_or_default(),
            agency_fee: u.fee_cents.unwrap_or_default(),
            net: u.net_cents.unwrap_or_default(),
        })
    };
    let code = u.code.trim().to_ascii_uppercase();
    let mut events = Vec::new();
    match code.as_str() {
        "PAY" => events.push(payment()),
        "PIF" => {
            events.push(payment());
            events.push(AgencyEvent::Closed("paid in full at the agency".into()));
        }
        "CAN" => events.push(AgencyEvent::Closed(format!(
            "cancelled by the agency: {}",
            reason("no reason given")
        ))),
        "DSP" => events.push(AgencyEvent::Disputed(reason("no reason given"))),
        "SUS" => return Mapped::Skipped("SUS"),
        "REI" => return Mapped::Skipped("REI"),
        _ => {
            let code: String = u
                .code
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(8)
                .collect();
            return Mapped::Unknown(code);
        }
    }
    let occurred = Date::parse_iso(&u.date).unwrap_or(Date::new(0, 0, 0));
    Mapped::Updates(
        events
            .into_iter()
            .map(|event| AgencyUpdate {
                account_id: u.debtor_ref.clone(),
                agency_account_id: u.agency_account.clone().filter(|a| !a.is_empty()),
                occurred,
                event,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(v: serde_json::Value) -> WireUpdate {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn payments_map_to_payment_collected_and_paid_in_full_closes_too() {
        let paid = |code: &str| {
            update(json!({"seq": 3, "code": code, "debtor_ref": "P1",
                "agency_account": "AG9", "date": "2026-12-01",
                "gross_cents": 5000, "fee_cents": 1500, "net_cents": 3500}))
        };
        let payment = AgencyEvent::PaymentCollected(CollectedPayment {
            gross: 5000,
            agency_fee: 1500,
            net: 3500,
        });
        let Mapped::Updates(pay) = event(&paid("PAY")) else {
            panic!("PAY");
        };
        assert_eq!(pay.len(), 1);
        assert_eq!(pay[0].account_id, "P1");
        assert_eq!(pay[0].agency_account_id.as_deref(), Some("AG9"));
        assert_eq!(pay[0].occurred, Date::new(2026, 12, 1));
        assert_eq!(pay[0].event, payment);
        for code in ["PIF", "pif"] {
            let Mapped::Updates(pif) = event(&paid(code)) else {
                panic!("{code}");
            };
            let events: Vec<&AgencyEvent> = pif.iter().map(|u| &u.event).collect();
            assert_eq!(
                events,
                [
                    &payment,
                    &AgencyEvent::Closed("paid in full at the agency".into())
                ]
            );
        }
    }

    #[test]
    fn cancel_closes_dispute_disputes_and_suspend_and_reinstate_are_skipped() {
        let base = |code: &str, reason: Option<&str>| {
            update(json!({"seq": 1, "code": code, "debtor_ref": "P1",
                "date": "2026-12-01", "reason": reason}))
        };
        match event(&base("CAN", Some("UNCOLLECTABLE"))) {
            Mapped::Updates(a) => assert_eq!(
                a[0].event,
                AgencyEvent::Closed("cancelled by the agency: UNCOLLECTABLE".into())
            ),
            other => panic!("{other:?}"),
        }
        match event(&base("DSP", Some("not my debt\nsays the debtor"))) {
            Mapped::Updates(a) => assert_eq!(
                a[0].event,
                AgencyEvent::Disputed("not my debt says the debtor".into())
            ),
            other => panic!("{other:?}"),
        }
        match event(&base("DSP", None)) {
            Mapped::Updates(a) => {
                assert_eq!(a[0].event, AgencyEvent::Disputed("no reason given".into()))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(event(&base("SUS", Some("x"))), Mapped::Skipped("SUS"));
        assert_eq!(event(&base("REI", None)), Mapped::Skipped("REI"));
        assert_eq!(
            event(&base("X|Y-Z12345678", None)),
            Mapped::Unknown("XYZ12345".into())
        );
    }

    #[test]
    fn a_date_that_does_not_parse_is_passed_as_zero_for_billd_to_refuse() {
        let u = update(json!({"seq": 1, "code": "CAN", "debtor_ref": "P1", "date": "12/01/2026"}));
        match event(&u) {
            Mapped::Updates(a) => assert_eq!(a[0].occurred, Date::new(0, 0, 0)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn receipts_follow_the_placements_and_a_missing_one_is_a_refusal() {
        let answer: PlacementAnswer = serde_json::from_value(json!({"file_id": "F1", "receipts": [
            {"debtor_ref": "B", "accepted": false, "agency_account": "AG-IGNORED",
             "message": "line 3: field 12 (zip): must be 5 or 9 digits"},
            {"debtor_ref": "A", "accepted": true, "agency_account": "AG1"}
        ]}))
        .unwrap();
        let ids = ["A".to_owned(), "B".to_owned(), "C".to_owned()];
        let r = placement_receipts(&ids, &answer);
        assert_eq!(r.len(), 3);
        assert!(r[0].accepted && r[0].agency_account_id.as_deref() == Some("AG1"));
        assert!(!r[1].accepted && r[1].agency_account_id.is_none());
        assert!(r[1].message.as_deref().unwrap().contains("field 12"));
        assert!(!r[2].accepted && r[2].message.as_deref().unwrap().contains("no receipt"));

        let answer: RecallAnswer = serde_json::from_value(json!({"receipts": [
            {"debtor_ref": "A", "accepted": true}
        ]}))
        .unwrap();
        let r = recall_receipts(&ids[..2], &answer);
        assert!(r[0].accepted && r[0].message.is_none());
        assert!(!r[1].accepted);
    }

    #[test]
    fn recall_reasons_have_agency_codes() {
        assert_eq!(recall_code(RecallReason::PaidInFull), "PIF");
        assert_eq!(recall_code(RecallReason::Disputed), "DSP");
        assert_eq!(recall_code(RecallReason::Bankruptcy), "BKR");
        assert_eq!(recall_code(RecallReason::FinancialAssistance), "FAS");
        assert_eq!(recall_code(RecallReason::PracticeRequest), "REQ");
        let req = RecallRequest {
            client: "C1".into(),
            recalls: vec![RecallLine {
                debtor_ref: "A".into(),
                agency_account: None,
                reason: "REQ",
            }],
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"client": "C1", "recalls": [{"debtor_ref": "A", "agency_account": null, "reason": "REQ"}]})
        );
    }

    #[test]
    fn agency_text_is_one_bounded_line() {
        assert_eq!(one_line(" a\r\nb "), "a  b");
        assert_eq!(one_line(&"x".repeat(300)).chars().count(), MAX_TEXT + 1);
    }
}
