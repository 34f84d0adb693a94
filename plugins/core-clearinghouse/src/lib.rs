//! A payer connector over CAQH CORE Connectivity vC2.2.0.
//!
//! Real-time 270/271 and 276/277 and batch 837P submission, 999/277CA
//! acknowledgment retrieval and 835 results retrieval, in SOAP 1.2
//! envelopes with a WS-Security UsernameToken or in HTTP+MIME
//! multipart/form-data (setting `transport`). The X12 is written and read by
//! billd-x12. The PayloadID of every request is a UUID derived from billd's
//! idempotency key (name-based, SHA-1), so a retried batch is recognisably
//! the same one; a submission's control numbers are kept in plugin state
//! under its key, so a retry reuses them and new batches never repeat them.

pub mod envelope;
pub mod x12build;
pub mod x12read;

use billd_plugin_sdk::coordination;
use billd_plugin_sdk::payer::*;
use billd_plugin_sdk::prelude::*;
use billd_plugin_sdk::types::Timestamp;

use envelope::{Answer, Operation};
use x12build::{Parties, Stamp};
use x12read::EligibilityAnswer;

/// Real-time 270.
pub const PT_270: &str = "X12_270_Request_005010X279A1";
/// Its answer.
pub const PT_271: &str = "X12_271_Response_005010X279A1";
/// Real-time 276.
pub const PT_276: &str = "X12_276_Request_005010X212";
/// Its answer.
pub const PT_277: &str = "X12_277_Response_005010X212";
/// Batch 837P.
pub const PT_837: &str = "X12_837_Request_005010X222A1";
/// 999 retrieval.
pub const PT_999_REQ: &str = "X12_999_RetrievalRequest_005010X231A1";
/// 277CA retrieval.
pub const PT_277CA_REQ: &str = "X12_277CA_RetrievalRequest_005010X214";
/// 835 retrieval.
pub const PT_835_REQ: &str = "X12_835_RetrievalRequest_005010X221A1";

/// The namespace of the name-based PayloadIDs.
const PAYLOAD_NS: uuid::Uuid = uuid::Uuid::from_u128(0x6c1d_3a4e_9b52_4f0e_8a17_2d4c_b11d_c0e1);

struct CoreClearinghouse;

/// The connector's settings, read once per call.
struct Config {
    url: String,
    mime: bool,
    sender_id: String,
    receiver_id: String,
    parties: Parties,
    timeout_ms: u32,
    username: String,
    password: String,
}

fn text(name: &str, default: &str) -> String {
    settings::text(name)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn config() -> Result<Config, ConnectorError> {
    let base = settings::require_text("base-url")?;
    let path = text("endpoint-path", "/core");
    let transport = text("transport", "soap");
    let mime = match transport.as_str() {
        "soap" => false,
        "mime" => true,
        other => {
            return Err(ConnectorError::invalid(
                "settings.transport",
                format!("{other:?} is neither soap nor mime"),
            ));
        }
    };
    let sender_id = text("sender-id", "BILLDCLINIC");
    let receiver_id = text("receiver-id", "SANDBOXPAYER");
    let address = text("billing-address", "100 CLINIC WAY|SPRINGFIELD|IL|627010001");
    let parts: Vec<String> = address
        .split('|')
        .map(|s| s.trim().to_uppercase())
        .collect();
    let [line, city, state, zip] = <[String; 4]>::try_from(parts).map_err(|_| {
        ConnectorError::invalid("settings.billing-address", "expected LINE|CITY|STATE|ZIP")
    })?;
    let timeout_ms = settings::integer("timeout-ms")
        .unwrap_or(19_000)
        .clamp(1_000, 20_000) as u32;
    Ok(Config {
        url: format!("{}{}", base.trim_end_matches('/'), path),
        mime,
        parties: Parties {
            sender: text("isa-sender-id", &sender_id),
            receiver: text("isa-receiver-id", &receiver_id),
            submitter_name: text("submitter-name", "BILLD CLINIC"),
            contact: text("submitter-contact", "BILLING OFFICE"),
            phone: text("submitter-phone", "8005550100"),
            receiver_name: text("receiver-name", "SANDBOX HEALTH PLAN"),
            billing_address: [line, city, state, zip],
            filing_indicator: text("claim-filing-indicator", "CI"),
            usage: text("usage-indicator", "T"),
        },
        sender_id,
        receiver_id,
        timeout_ms,
        username: secrets::require("username")?,
        password: secrets::require("password")?,
    })
}

/// The PayloadID for an operation under an idempotency key.
pub fn payload_id(operation: &str, key: &str) -> String {
    uuid::Uuid::new_v5(&PAYLOAD_NS, format!("{operation}\u{0}{key}").as_bytes()).to_string()
}

/// A trace number (BHT03, TRN02) from the key: 16 hex digits.
pub fn trace(operation: &str, key: &str) -> String {
    payload_id(operation, key).replace('-', "")[..16].to_uppercase()
}

/// A control number derived from the key, for real-time requests (which
/// keep no state): 9 digits, never 0.
fn derived_number(operation: &str, key: &str) -> u64 {
    let id = uuid::Uuid::new_v5(&PAYLOAD_NS, format!("{operation}\u{0}{key}").as_bytes());
    (id.as_u128() % 999_999_999) as u64 + 1
}

/// The control number of a submission: the one kept under its key, or the
/// next unused one (kept before anything is sent).
fn submission_number(key: &str) -> Result<u64, ConnectorError> {
    let slot = format!("submission/{key}");
    if let Some(n) = state::get_json::<u64>(&slot) {
        return Ok(n);
    }
    let next = state::get_json::<u64>("control-next").unwrap_or(1);
    let n = (next - 1) % 999_999_999 + 1;
    state::set_json("control-next", &(n + 1))?;
    state::set_json(&slot, &n)?;
    Ok(n)
}

/// (X12 stamp, XML dateTime) for an instant.
fn stamps(t: Timestamp) -> (Stamp, String) {
    let days = t.seconds.div_euclid(86_400);
    let secs = t.seconds.rem_euclid(86_400);
    let (y, m, d) = x12build::civil(days);
    let (hh, mm, ss) = (secs / 3600, secs % 3600 / 60, secs % 60);
    (
        Stamp {
            date: format!("{y:04}{m:02}{d:02}"),
            time: format!("{hh:02}{mm:02}"),
        },
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
    )
}

/// Sends one CORE request and returns the answer's envelope, mapping HTTP
/// failures and envelope errors onto the contract's variants.
fn send(
    cfg: &Config,
    op: Operation,
    payload_type: &str,
    id: &str,
    payload: &[u8],
) -> Result<Answer, ConnectorError> {
    let (_, timestamp) = stamps(now());
    let req = envelope::Request {
        op,
        payload_type,
        payload_id: id,
        timestamp: &timestamp,
        sender_id: &cfg.sender_id,
        receiver_id: &cfg.receiver_id,
        payload,
        username: &cfg.username,
        password: &cfg.password,
    };
    let (content_type, body) = if cfg.mime {
        envelope::mime(&req)
    } else {
        (
            "application/soap+xml; charset=utf-8".to_owned(),
            envelope::soap(&req).into_bytes(),
        )
    };
    let resp = Request::post(cfg.url.clone())
        .header("content-type", &content_type)
        .timeout_ms(cfg.timeout_ms)
        .body(body)
        .send()?;
    let answer_type = resp.header("content-type").unwrap_or("").to_owned();
    let parsed = if resp.body.is_empty() {
        Err("an empty body".to_owned())
    } else if answer_type.starts_with("multipart/") {
        envelope::read_mime(&answer_type, &resp.body)
    } else {
        envelope::read_soap(&resp.body)
    };
    match resp.status {
        200..=299 => {}
        401 | 403 => {
            return Err(ConnectorError::authentication(format!(
                "the clearinghouse refused the credentials (HTTP {}{})",
                resp.status,
                parsed
                    .as_ref()
                    .map(|a| format!(", {}", a.error_code))
                    .unwrap_or_default()
            )));
        }
        _ => {
            // 429, 408 and 5xx by the SDK's rules; other 4xx carry an
            // envelope error when the server sent one.
            if let Ok(a) = &parsed
                && (400..500).contains(&resp.status)
                && ![408, 429].contains(&resp.status)
                && !a.error_code.is_empty()
            {
                return Err(envelope_error(a));
            }
            let status = resp.status;
            resp.error_for_status()?;
            return Err(ConnectorError::transient(format!(
                "unexpected HTTP {status} from the clearinghouse"
            )));
        }
    }
    let answer = parsed.map_err(|e| {
        ConnectorError::transient(format!(
            "the clearinghouse's answer is not a CORE envelope: {e}"
        ))
    })?;
    if !answer.error_code.is_empty() && answer.error_code != "Success" {
        return Err(envelope_error(&answer));
    }
    Ok(answer)
}

/// Maps a CORE envelope error onto the contract.
pub fn envelope_error(a: &Answer) -> ConnectorError {
    let code = a.error_code.as_str();
    let message = format!("CORE envelope error {code}: {}", a.error_message);
    let lower = code.to_ascii_lowercase();
    if lower.contains("unauthorized") || lower.contains("authentication") {
        return ConnectorError::authentication(message);
    }
    if lower.contains("busy") || lower.contains("unavailable") || lower.contains("timeout") {
        return ConnectorError::transient(message);
    }
    for suffix in ["Required", "Illegal", "Incorrect", "Missing", "Mismatch"] {
        if let Some(field) = code.strip_suffix(suffix).filter(|f| !f.is_empty()) {
            let field = match field {
                "Version" => "CORERuleVersion",
                "Checksum" => "CheckSum",
                other => other,
            };
            return ConnectorError::invalid(format!("envelope.{field}"), message);
        }
    }
    ConnectorError::rejected(code, message)
}

/// Reads an answer's payload, checking its PayloadType.
fn payload_of(
    answer: &Answer,
    expected: &str,
    set: &str,
) -> Result<Vec<x12read::Read>, ConnectorError> {
    payload_after(answer, expected, set, 0)
}

/// [`payload_of`] for a retrieval: only the interchanges past the cursor's
/// ISA13 are read (an answer holding only older ones holds nothing new).
fn payload_after(
    answer: &Answer,
    expected: &str,
    set: &str,
    after: u64,
) -> Result<Vec<x12read::Read>, ConnectorError> {
    if answer.payload_type != expected {
        return Err(ConnectorError::transient(format!(
            "the clearinghouse answered PayloadType {:?}, expected {expected}",
            answer.payload_type
        )));
    }
    let read = x12read::read_after(&answer.payload, after).map_err(ConnectorError::transient)?;
    if (after == 0 || !read.is_empty())
        && !read.iter().flat_map(|r| &r.sets).any(|(id, _)| id == set)
    {
        return Err(ConnectorError::transient(format!(
            "the clearinghouse's answer holds no {set}"
        )));
    }
    Ok(read)
}

fn write_error(e: billd_x12::WriteError) -> ConnectorError {
    ConnectorError::invalid("request", format!("the X12 cannot be written: {e}"))
}

/// What AAA reject reason codes mean (the ones a member lookup gives).
fn aaa_meaning(code: &str) -> &'static str {
    match code {
        "15" => "required application data missing",
        "41" => "authorization/access restrictions",
        "42" => "unable to respond at current time",
        "43" => "invalid/missing provider identification",
        "58" => "invalid/missing date of birth",
        "65" => "invalid/missing patient name",
        "67" => "patient not found",
        "71" => "patient birth date does not match that for the patient on the database",
        "72" => "invalid/missing subscriber/insured id",
        "73" => "invalid/missing subscriber/insured name",
        "75" => "subscriber/insured not found",
        "76" => "duplicate subscriber/insured id number",
        "79" => "invalid participant identification",
        "80" => "no response received - transaction terminated",
        _ => "the payer refused the inquiry",
    }
}

/// Cursor of a retrieval: the highest ISA13 handed out so far, per kind.
fn cursor_get(since: &Option<String>, kind: &str) -> u64 {
    since
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter_map(|p| p.split_once(':'))
        .find(|(k, _)| *k == kind)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

impl PayerConnector for CoreClearinghouse {
    fn check_eligibility(
        key: &str,
        inquiry: EligibilityInquiry,
    ) -> Result<Eligibility, ConnectorError> {
        if inquiry.subscriber.member_id.trim().is_empty() {
            return Err(ConnectorError::invalid(
                "subscriber.member-id",
                "a 270 needs the member id",
            ));
        }
        if inquiry.provider.npi.len() != 10 {
            return Err(ConnectorError::invalid(
                "provider.npi",
                "the NPI has 10 digits",
            ));
        }
        let cfg = config()?;
        let (stamp, _) = stamps(now());
        let trace = trace("check-eligibility", key);
        let x12 = x12build::eligibility_270(
            &cfg.parties,
            &stamp,
            derived_number("check-eligibility", key),
            &trace,
            &inquiry,
        )
        .map_err(write_error)?;
        let id = payload_id("check-eligibility", key);
        let answer = send(&cfg, Operation::RealTime, PT_270, &id, x12.as_bytes())?;
        let read = payload_of(&answer, PT_271, "271")?;
        let segs = read
            .iter()
            .flat_map(|r| &r.sets)
            .find(|(id, _)| id == "271")
            .map(|(_, s)| s.as_slice())
            .unwrap_or_default();
        match x12read::eligibility_271(segs) {
            EligibilityAnswer::Found(e) => Ok(e),
            EligibilityAnswer::Rejected(code, _) => match code.as_str() {
                "67" | "72" | "75" => Ok(Eligibility {
                    status: CoverageStatus::NotFound,
                    plan_name: None,
                    group_number: None,
                    coverage_begin: None,
                    coverage_end: None,
                    benefits: Vec::new(),
                    payer_reference: Some(trace),
                }),
                "42" | "80" => Err(ConnectorError::transient(format!(
                    "the payer could not answer now (AAA {code}: {})",
                    aaa_meaning(&code)
                ))),
                _ => Err(ConnectorError::rejected(
                    code.clone(),
                    format!("AAA {code}: {}", aaa_meaning(&code)),
                )),
            },
        }
    }

    fn claim_status(
        key: &str,
        inquiries: Vec<StatusInquiry>,
    ) -> Result<Vec<StatusResponse>, ConnectorError> {
        if inquiries.is_empty() {
            return Ok(Vec::new());
        }
        let cfg = config()?;
        let (stamp, _) = stamps(now());
        let trace = trace("claim-status", key);
        let x12 = x12build::status_276(
            &cfg.parties,
            &stamp,
            derived_number("claim-status", key),
            &trace,
            &inquiries,
        )
        .map_err(write_error)?;
        let id = payload_id("claim-status", key);
        let answer = send(&cfg, Operation::RealTime, PT_276, &id, x12.as_bytes())?;
        let read = payload_of(&answer, PT_277, "277")?;
        let found: Vec<(String, StatusResponse)> = read
            .iter()
            .flat_map(|r| &r.sets)
            .filter(|(id, _)| id == "277")
            .flat_map(|(_, s)| x12read::status_277(s))
            .collect();
        Ok(inquiries
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let t = x12build::status_trace(&trace, i);
                let hit = found
                    .iter()
                    .find(|(tr, _)| *tr == t)
                    .or_else(|| found.iter().find(|(_, r)| r.claim_id == q.claim_id));
                match hit {
                    Some((_, r)) => StatusResponse {
                        claim_id: q.claim_id.clone(),
                        ..r.clone()
                    },
                    None => StatusResponse {
                        claim_id: q.claim_id.clone(),
                        state: ClaimState::NotFound,
                        category_code: String::new(),
                        status_code: String::new(),
                        payer_claim_id: q.payer_claim_id.clone(),
                        paid: None,
                        effective_date: None,
                        message: Some("the 277 has no status for this claim".into()),
                    },
                }
            })
            .collect())
    }

    fn submit_claims(key: &str, claims: Vec<Claim>) -> Result<SubmissionReceipt, ConnectorError> {
        if claims.is_empty() {
            return Err(ConnectorError::invalid("claims", "a batch needs a claim"));
        }
        let cfg = config()?;
        let number = submission_number(key)?;
        let (stamp, _) = stamps(now());
        let batch = number.to_string();
        let prior: Vec<_> = claims.iter().map(coordination::prior_payers).collect();
        let x12 = x12build::professional_837(&cfg.parties, &stamp, number, &batch, &claims, &prior)
            .map_err(|(field, message)| ConnectorError::invalid(field, message))?
            .map_err(write_error)?;
        let id = payload_id("submit-claims", key);
        let answer = send(
            &cfg,
            Operation::BatchSubmission,
            PT_837,
            &id,
            x12.as_bytes(),
        )?;
        Ok(SubmissionReceipt {
            batch_id: batch,
            accepted_claims: claims.iter().map(|c| c.claim_id.clone()).collect(),
            message: Some(format!("PayloadID {id} received ({})", answer.payload_type)),
        })
    }

    fn fetch_acknowledgments(
        key: &str,
        since: Option<String>,
    ) -> Result<AcknowledgmentPage, ConnectorError> {
        let cfg = config()?;
        let received = now();
        let mut items = Vec::new();
        let mut cursor = Vec::new();
        let mut any = false;
        for (kind, request, answer_type, set) in [
            ("999", PT_999_REQ, "X12_999_Response_005010X231A1", "999"),
            (
                "277ca",
                PT_277CA_REQ,
                "X12_277CA_Response_005010X214",
                "277",
            ),
        ] {
            let from = cursor_get(&since, kind);
            let id = payload_id(&format!("fetch-acknowledgments/{kind}"), key);
            let answer = send(&cfg, Operation::AckRetrieval, request, &id, &[])?;
            let mut last = from;
            if !answer.payload.is_empty() {
                for r in payload_after(&answer, answer_type, set, from)? {
                    last = last.max(r.isa13);
                    any = true;
                    for (st, segs) in &r.sets {
                        match (kind, st.as_str()) {
                            ("999", "999") => items.extend(x12read::ack_999(segs, received)),
                            ("277ca", "277") => items.extend(x12read::ack_277ca(segs, received)),
                            _ => {}
                        }
                    }
                }
            }
            cursor.push(format!("{kind}:{last}"));
        }
        Ok(AcknowledgmentPage {
            items,
            next: any.then(|| cursor.join(",")),
        })
    }

    fn fetch_remittances(
        key: &str,
        since: Option<String>,
    ) -> Result<RemittancePage, ConnectorError> {
        let cfg = config()?;
        let from = cursor_get(&since, "835");
        let id = payload_id("fetch-remittances", key);
        let answer = send(&cfg, Operation::ResultsRetrieval, PT_835_REQ, &id, &[])?;
        let mut items = Vec::new();
        let mut last = from;
        if !answer.payload.is_empty() {
            for r in payload_after(&answer, "X12_835_Response_005010X221A1", "835", from)? {
                last = last.max(r.isa13);
                for (st, segs) in &r.sets {
                    if st == "835" {
                        items.push(x12read::remittance_835(segs));
                    }
                }
            }
        }
        Ok(RemittancePage {
            next: (last > from).then(|| format!("835:{last}")),
            items,
        })
    }
}

billd_plugin_sdk::export_payer_connector!(CoreClearinghouse);
