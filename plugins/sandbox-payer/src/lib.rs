//! A payer connector for billd's local payer sandbox.
//!
//! The sandbox (`scripts/payer-sandbox.py`) speaks JSON shaped like the
//! eligibility (v3) and claim-status (v2) APIs clearinghouses put in front
//! of X12 270/271 and 276/277, so this connector does what a real one does:
//! builds the request from billd's records, parses the answer, and maps the
//! payer's AAA and STC codes and HTTP failures onto billd's error variant
//! (can a retry help or not).

use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::prelude::*;
use billd_plugin_sdk::types::{cents_to_decimal, decimal_to_cents};
use serde::{Deserialize, Serialize};

struct SandboxPayer;

// ---- wire format -------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireProvider {
    organization_name: String,
    npi: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_type: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WirePerson {
    #[serde(skip_serializing_if = "Option::is_none")]
    member_id: Option<String>,
    first_name: String,
    last_name: String,
    date_of_birth: String,
    gender: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_number: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EligibilityRequest {
    control_number: String,
    trading_partner_service_id: String,
    provider: WireProvider,
    subscriber: WirePerson,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dependents: Vec<WirePerson>,
    encounter: WireEncounter,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireEncounter {
    date_of_service: String,
    service_type_codes: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct EligibilityResponse {
    control_number: Option<String>,
    errors: Vec<WireError>,
    plan_status: Vec<PlanStatus>,
    plan_information: Option<PlanInformation>,
    plan_date_information: Option<PlanDates>,
    benefits_information: Vec<WireBenefit>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct WireError {
    code: String,
    description: String,
    field: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PlanStatus {
    status_code: String,
    plan_details: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PlanInformation {
    group_number: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PlanDates {
    plan: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct WireBenefit {
    code: String,
    name: Option<String>,
    coverage_level_code: Option<String>,
    service_type_codes: Vec<String>,
    time_qualifier_code: Option<String>,
    benefit_amount: Option<String>,
    benefit_percent: Option<String>,
    in_plan_network_indicator_code: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClaimStatusRequest {
    control_number: String,
    trading_partner_service_id: String,
    providers: Vec<WireProvider>,
    subscriber: WirePerson,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dependents: Vec<WirePerson>,
    encounter: StatusEncounter,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusEncounter {
    beginning_date_of_service: String,
    end_date_of_service: String,
    tracking_number: String,
    submitted_amount: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ClaimStatusResponse {
    errors: Vec<WireError>,
    claims: Vec<WireClaim>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct WireClaim {
    claim_status: WireClaimStatus,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct WireClaimStatus {
    status_category_code: String,
    status_category_code_value: Option<String>,
    status_code: String,
    amount_paid: Option<String>,
    paid_date: Option<String>,
    trading_partner_claim_number: Option<String>,
}

// ---- mapping -----------------------------------------------------------

/// A nine-digit control number derived from billd's idempotency key, so a
/// retry of the same inquiry carries the same number (FNV-1a).
fn control_number(key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:09}", h % 1_000_000_000)
}

fn x12_date(d: &Date) -> String {
    format!("{:04}{:02}{:02}", d.year, d.month, d.day)
}

fn gender(s: Sex) -> &'static str {
    match s {
        Sex::Female => "F",
        Sex::Male => "M",
        Sex::Unknown => "U",
    }
}

fn subscriber(s: &Subscriber) -> WirePerson {
    WirePerson {
        member_id: Some(s.member_id.clone()),
        first_name: s.name.first.clone(),
        last_name: s.name.last.clone(),
        date_of_birth: x12_date(&s.birth_date),
        gender: gender(s.sex),
        group_number: s.group_number.clone(),
    }
}

fn dependents(d: &Option<Dependent>) -> Vec<WirePerson> {
    d.iter()
        .map(|d| WirePerson {
            member_id: None,
            first_name: d.name.first.clone(),
            last_name: d.name.last.clone(),
            date_of_birth: x12_date(&d.birth_date),
            gender: gender(d.sex),
            group_number: None,
        })
        .collect()
}

fn post<T: Serialize>(path: &str, key: &str, body: &T) -> Result<Response, ConnectorError> {
    let base = settings::require_text("base-url")?;
    let token = secrets::require("api-key")?;
    let resp = Request::post(format!("{}{path}", base.trim_end_matches('/')))
        .bearer(&token)
        .header("idempotency-key", key)
        .json(body)
        .send()?;
    resp.error_for_status()
}

/// Maps the payer's AAA rejection codes (X12 271 AAA03) onto billd's
/// error variant. `None` for 75 (not found), which is an answer.
fn aaa_error(e: &WireError) -> Option<ConnectorError> {
    Some(match e.code.as_str() {
        "75" => return None,
        // Unable to respond now / provider ineligible for inquiries right now.
        "42" | "80" => {
            ConnectorError::transient(format!("payer: {} (AAA {})", e.description, e.code))
        }
        // Authorization/access restrictions.
        "41" => ConnectorError::authentication(format!("payer: {} (AAA 41)", e.description)),
        "72" => ConnectorError::invalid("subscriber.member-id", e.description.clone()),
        "73" => ConnectorError::invalid("subscriber.name", e.description.clone()),
        "58" | "71" => ConnectorError::invalid("subscriber.birth-date", e.description.clone()),
        "79" => ConnectorError::invalid("payer-id", e.description.clone()),
        "43" | "44" => ConnectorError::invalid("provider.npi", e.description.clone()),
        _ => ConnectorError::rejected(e.code.clone(), e.description.clone()),
    })
}

/// `"0.2"` → 2000 basis points; `"20"` would be 20 × 100 %: payers send a
/// fraction, so anything above 1 is refused.
fn percent_basis_points(text: &str) -> Option<u32> {
    let t = text.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if frac.len() > 4
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let w: u32 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let f: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<4}").parse().ok()?
    };
    let bp = w * 10_000 + f;
    (bp <= 10_000).then_some(bp)
}

fn benefit_kind(b: &WireBenefit) -> Option<BenefitKind> {
    let remaining = b.time_qualifier_code.as_deref() == Some("29");
    Some(match (b.code.as_str(), remaining) {
        ("C", false) => BenefitKind::Deductible,
        ("C", true) => BenefitKind::DeductibleRemaining,
        ("G", false) => BenefitKind::OutOfPocketMaximum,
        ("G", true) => BenefitKind::OutOfPocketRemaining,
        ("B", _) => BenefitKind::Copay,
        ("A", _) => BenefitKind::Coinsurance,
        ("F", _) => BenefitKind::Limitation,
        _ => return None,
    })
}

fn benefits(items: &[WireBenefit]) -> Result<Vec<Benefit>, ConnectorError> {
    let mut out = Vec::new();
    for b in items {
        let Some(kind) = benefit_kind(b) else {
            continue;
        };
        let amount = match &b.benefit_amount {
            Some(a) => Some(decimal_to_cents(a).ok_or_else(|| {
                ConnectorError::rejected(
                    "malformed-response",
                    format!("benefit amount {a:?} is not a dollar amount"),
                )
            })?),
            None => None,
        };
        let percent = match &b.benefit_percent {
            Some(p) => Some(percent_basis_points(p).ok_or_else(|| {
                ConnectorError::rejected(
                    "malformed-response",
                    format!("benefit percent {p:?} is not a fraction"),
                )
            })?),
            None => None,
        };
        let network = match b.in_plan_network_indicator_code.as_deref() {
            Some("Y") => Network::InNetwork,
            Some("N") => Network::OutOfNetwork,
            _ => Network::NotApplicable,
        };
        let level = match b.coverage_level_code.as_deref() {
            Some("FAM") => CoverageLevel::Family,
            _ => CoverageLevel::Individual,
        };
        let types = if b.service_type_codes.is_empty() {
            vec!["30".to_string()]
        } else {
            b.service_type_codes.clone()
        };
        for service_type in types {
            out.push(Benefit {
                service_type,
                kind,
                network,
                level,
                amount,
                percent_basis_points: percent,
                message: b.name.clone(),
            });
        }
    }
    Ok(out)
}

fn plan_dates(p: &Option<PlanDates>) -> (Option<Date>, Option<Date>) {
    let Some(text) = p.as_ref().and_then(|p| p.plan.as_deref()) else {
        return (None, None);
    };
    match text.split_once('-') {
        Some((a, b)) => (Date::parse_iso(a), Date::parse_iso(b)),
        None => (Date::parse_iso(text), None),
    }
}

fn claim_state(category: &str, paid: Option<Cents>) -> ClaimState {
    match category {
        "A0" | "A1" | "A2" | "A5" => ClaimState::Acknowledged,
        "A4" => ClaimState::NotFound,
        "A3" | "A6" | "A7" | "A8" | "E0" | "E1" | "E2" | "E3" | "E4" | "D0" => ClaimState::Rejected,
        "F1" => ClaimState::Paid,
        "F2" => ClaimState::Denied,
        c if c.starts_with('F') => {
            if paid.unwrap_or(0) > 0 {
                ClaimState::Paid
            } else {
                ClaimState::Denied
            }
        }
        _ => ClaimState::Pending,
    }
}

impl PayerConnector for SandboxPayer {
    fn check_eligibility(
        key: &str,
        inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        let req = EligibilityRequest {
            control_number: control_number(key),
            trading_partner_service_id: inquiry.payer_id.clone(),
            provider: WireProvider {
                organization_name: inquiry.provider.name.clone(),
                npi: inquiry.provider.npi.clone(),
                provider_type: None,
            },
            subscriber: subscriber(&inquiry.subscriber),
            dependents: dependents(&inquiry.dependent),
            encounter: WireEncounter {
                date_of_service: x12_date(&inquiry.service_date),
                service_type_codes: if inquiry.service_types.is_empty() {
                    vec!["30".into()]
                } else {
                    inquiry.service_types.clone()
                },
            },
        };
        let answer: EligibilityResponse = post("/eligibility/v3", key, &req)?.json()?;
        let empty = || Eligibility {
            status: CoverageStatus::NotFound,
            plan_name: None,
            group_number: None,
            coverage_begin: None,
            coverage_end: None,
            benefits: Vec::new(),
            payer_reference: answer.control_number.clone(),
        };
        if let Some(e) = answer.errors.first() {
            return match aaa_error(e) {
                Some(err) => {
                    log::info(&format!(
                        "eligibility refused by the payer: AAA {} (field {:?})",
                        e.code, e.field
                    ));
                    Err(err)
                }
                None => Ok(empty()),
            };
        }
        let Some(status) = answer.plan_status.first() else {
            return Err(ConnectorError::rejected(
                "malformed-response",
                "the answer has neither a plan status nor errors",
            ));
        };
        let active = matches!(status.status_code.as_str(), "1" | "2" | "3" | "4" | "5");
        let (begin, end) = plan_dates(&answer.plan_date_information);
        Ok(Eligibility {
            status: if active {
                CoverageStatus::Active
            } else {
                CoverageStatus::Inactive
            },
            plan_name: status.plan_details.clone(),
            group_number: answer
                .plan_information
                .as_ref()
                .and_then(|p| p.group_number.clone()),
            coverage_begin: begin,
            coverage_end: end,
            benefits: benefits(&answer.benefits_information)?,
            payer_reference: answer.control_number.clone(),
        })
    }

    fn claim_status(
        key: &str,
        inquiries: Vec<StatusInquiry>,
    ) -> Result<Vec<StatusResponse>, ConnectorError> {
        let mut out = Vec::with_capacity(inquiries.len());
        for (i, q) in inquiries.iter().enumerate() {
            let req = ClaimStatusRequest {
                control_number: control_number(&format!("{key}/{i}")),
                trading_partner_service_id: q.payer_id.clone(),
                providers: vec![WireProvider {
                    organization_name: q.provider.name.clone(),
                    npi: q.provider.npi.clone(),
                    provider_type: Some("BillingProvider"),
                }],
                subscriber: subscriber(&q.subscriber),
                dependents: dependents(&q.dependent),
                encounter: StatusEncounter {
                    beginning_date_of_service: x12_date(&q.service_from),
                    end_date_of_service: x12_date(&q.service_to),
                    tracking_number: q.claim_id.clone(),
                    submitted_amount: cents_to_decimal(q.billed),
                },
            };
            let answer: ClaimStatusResponse = post("/claimstatus/v2", key, &req)?.json()?;
            if let Some(e) = answer.errors.first() {
                return Err(aaa_error(e).unwrap_or_else(|| {
                    ConnectorError::rejected(e.code.clone(), e.description.clone())
                }));
            }
            let Some(c) = answer.claims.first() else {
                return Err(ConnectorError::rejected(
                    "malformed-response",
                    format!("no status for claim {}", q.claim_id),
                ));
            };
            let s = &c.claim_status;
            let paid = match &s.amount_paid {
                Some(a) => Some(decimal_to_cents(a).ok_or_else(|| {
                    ConnectorError::rejected(
                        "malformed-response",
                        format!("amount paid {a:?} is not a dollar amount"),
                    )
                })?),
                None => None,
            };
            out.push(StatusResponse {
                claim_id: q.claim_id.clone(),
                state: claim_state(&s.status_category_code, paid),
                category_code: s.status_category_code.clone(),
                status_code: s.status_code.clone(),
                payer_claim_id: s.trading_partner_claim_number.clone(),
                paid,
                effective_date: s.paid_date.as_deref().and_then(Date::parse_iso),
                message: s.status_category_code_value.clone(),
            });
        }
        Ok(out)
    }
}

billd_plugin_sdk::export_payer_connector!(SandboxPayer);
