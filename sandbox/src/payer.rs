//! The payer itself: checks each CORE envelope, archives its payload,
//! answers 270s with 271s and 276s with 277s from the scenario, takes 837P
//! batches (a 999 and 277CAs into the mailbox), and hands out 999s, 277CAs
//! and, once a claim is finalized, its 835s through the retrieval requests.
//! A PayloadID seen before is archived again and answered as the first time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use billd_x12::writer::SequentialControlNumbers;
use billd_x12::{Body, Mode, parse};
use chrono::{NaiveDate, Utc};
use serde::Serialize;

use crate::envelope::{CoreMessage, Operation};
use crate::faults::{FaultKind, FaultSpec, Faults};
use crate::scenario::{Ack277, Ack999, MemberStatus, RemitKind, Scenario};
use crate::x12out::{Envelope, Party, amount, hl, seg, write};

/// Real-time 270 payload type and its answer.
pub const PT_270: &str = "X12_270_Request_005010X279A1";
/// Real-time 271 answer.
pub const PT_271: &str = "X12_271_Response_005010X279A1";
/// Real-time 276 payload type.
pub const PT_276: &str = "X12_276_Request_005010X212";
/// Real-time 277 answer.
pub const PT_277: &str = "X12_277_Response_005010X212";
/// Batch 837P submission.
pub const PT_837: &str = "X12_837_Request_005010X222A1";
/// The answer to a batch submission.
pub const PT_RECEIPT: &str = "X12_BatchReceiptConfirmation";
/// 999 retrieval request and answer.
pub const PT_999_REQ: &str = "X12_999_RetrievalRequest_005010X231A1";
/// 999 retrieval answer.
pub const PT_999: &str = "X12_999_Response_005010X231A1";
/// 277CA retrieval request.
pub const PT_277CA_REQ: &str = "X12_277CA_RetrievalRequest_005010X214";
/// 277CA retrieval answer.
pub const PT_277CA: &str = "X12_277CA_Response_005010X214";
/// 835 retrieval request.
pub const PT_835_REQ: &str = "X12_835_RetrievalRequest_005010X221A1";
/// 835 retrieval answer.
pub const PT_835: &str = "X12_835_Response_005010X221A1";

/// What the server should send back.
#[derive(Clone, Debug)]
pub enum Answer {
    /// An envelope (HTTP 200, or 401 when `unauthorized`).
    Envelope {
        /// The answer's fields.
        msg: Box<CoreMessage>,
        /// Send HTTP 401.
        unauthorized: bool,
    },
    /// A bare HTTP status (500, 429) with an optional Retry-After.
    Status(u16, Option<u32>),
}

/// A claim the sandbox has received.
#[derive(Clone, Debug)]
struct ClaimRecord {
    received: NaiveDate,
    inquiries: usize,
    charge_cents: i64,
    payer_claim_id: String,
    patient: Party,
    billing: Party,
    submitter: String,
    service_date: String,
    remits_issued: bool,
}

/// Kinds of files in the mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum MailKind {
    Ack999,
    Ack277Ca,
    Remit835,
}

/// Statistics for tests.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Requests by PayloadType (every one, faults included).
    pub payloads: BTreeMap<String, u64>,
    /// Distinct PayloadIDs seen.
    pub distinct_payload_ids: usize,
    /// Claims received (distinct CLM01).
    pub claims: usize,
    /// Files waiting in the mailbox, by kind.
    pub mailbox: BTreeMap<String, usize>,
    /// Faults still armed.
    pub faults_pending: usize,
}

/// The sandbox payer's state.
pub struct Payer {
    scenario: Scenario,
    archive: PathBuf,
    archived: u64,
    payloads: BTreeMap<String, u64>,
    faults: Faults,
    answered: HashMap<String, CoreMessage>,
    claims: HashMap<String, ClaimRecord>,
    mailbox: Vec<(MailKind, String)>,
    numbers: SequentialControlNumbers,
    /// Names of the files taken from the SFTP inbound folder.
    files_taken: HashSet<String>,
    /// How much of the mailbox is already in the SFTP outbound folder.
    files_out: usize,
    /// How many files of each kind CORE retrievals have handed out.
    delivered: HashMap<MailKind, usize>,
}

/// A file for the SFTP outbound folder: its name and its text.
pub struct OutboundFile {
    /// `NNNN-<kind>.<ext>` (`.999`, `.277`, `.835`), numbered in order.
    pub name: String,
    /// The X12.
    pub text: String,
}

/// What a request answered with, before the envelope.
type Outcome = Result<(String, Vec<u8>), (String, String)>;

impl Payer {
    /// A payer for a scenario, archiving into `archive`.
    #[must_use]
    pub fn new(scenario: Scenario, archive: PathBuf) -> Payer {
        let mut faults = Faults::default();
        for f in &scenario.faults {
            faults.arm(f.clone());
        }
        Payer {
            scenario,
            archive,
            archived: 0,
            payloads: BTreeMap::new(),
            faults,
            answered: HashMap::new(),
            claims: HashMap::new(),
            mailbox: Vec::new(),
            numbers: SequentialControlNumbers::starting_at(1),
            files_taken: HashSet::new(),
            files_out: 0,
            delivered: HashMap::new(),
        }
    }

    /// Takes a file a practice uploaded to the SFTP inbound folder:
    /// archives it (named after the file, so a re-upload under the same
    /// name is recognisably the same batch) and, the first time a name is
    /// seen, processes it as an 837P batch submission (999, 277CAs and
    /// remittances into the mailbox). A file that is not an 837P is
    /// archived and refused.
    ///
    /// # Errors
    /// The X12 problem of a file that cannot be taken, as code and text.
    pub fn take_file(&mut self, name: &str, bytes: &[u8]) -> Result<(), (String, String)> {
        *self.payloads.entry(PT_837.to_owned()).or_insert(0) += 1;
        self.archive_bytes(PT_837, name, bytes);
        if !self.files_taken.insert(name.to_owned()) {
            return Ok(());
        }
        let env = self.envelope_now();
        self.take_837(bytes, &env)?;
        self.issue_remittances(&env);
        Ok(())
    }

    /// The mailbox files not yet handed to the SFTP outbound folder, in
    /// order; each is handed out once.
    pub fn take_outbound(&mut self) -> Vec<OutboundFile> {
        let new = self.mailbox[self.files_out..]
            .iter()
            .enumerate()
            .map(|(i, (kind, text))| {
                let (what, ext) = match kind {
                    MailKind::Ack999 => ("ack", "999"),
                    MailKind::Ack277Ca => ("claim-ack", "277"),
                    MailKind::Remit835 => ("era", "835"),
                };
                OutboundFile {
                    name: format!("{:04}-{what}.{ext}", self.files_out + i + 1),
                    text: text.clone(),
                }
            })
            .collect();
        self.files_out = self.mailbox.len();
        new
    }

    /// The payer's envelope for answers written now (the receiver filled
    /// in per interchange).
    fn envelope_now(&self) -> Envelope {
        let now = Utc::now();
        Envelope {
            sender: self.scenario.payer.id.clone(),
            receiver: String::new(),
            date: now.format("%Y%m%d").to_string(),
            time: now.format("%H%M").to_string(),
        }
    }

    /// Arms a fault.
    pub fn arm(&mut self, spec: FaultSpec) {
        self.faults.arm(spec);
    }

    /// Disarms every fault.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Current statistics.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let mut mailbox = BTreeMap::new();
        for (k, _) in &self.mailbox {
            *mailbox.entry(format!("{k:?}")).or_insert(0) += 1;
        }
        Stats {
            payloads: self.payloads.clone(),
            distinct_payload_ids: self.answered.len(),
            claims: self.claims.len(),
            mailbox,
            faults_pending: self.faults.pending().len(),
        }
    }

    /// The fault for this request, if one is armed.
    pub fn take_fault(&mut self) -> Option<FaultSpec> {
        self.faults.take()
    }

    /// Counts and archives a request's payload as it arrives, before any
    /// fault delays its answer (so a payload in the archive is one the
    /// sender may still be waiting on).
    pub fn receive(&mut self, req: &CoreMessage) {
        *self.payloads.entry(req.payload_type.clone()).or_insert(0) += 1;
        if !req.payload.is_empty() {
            self.archive_payload(req);
        }
    }

    /// Answers one request [`Payer::receive`] took; `fault` is what
    /// [`Payer::take_fault`] gave (the server sleeps for `slow` before
    /// calling this).
    pub fn handle(
        &mut self,
        op: Operation,
        req: &CoreMessage,
        fault: Option<&FaultSpec>,
    ) -> Answer {
        let kind = fault.map(|f| f.kind);
        match kind {
            Some(FaultKind::Http500) => return Answer::Status(500, None),
            Some(FaultKind::Http429) => {
                return Answer::Status(
                    429,
                    Some(fault.and_then(|f| f.retry_after_seconds).unwrap_or(2)),
                );
            }
            _ => {}
        }
        let mut answer = self.base_answer(op, req);
        let auth_ok = kind != Some(FaultKind::BadCredentials)
            && self.scenario.accepts(&req.username, &req.password);
        if !auth_ok {
            answer.error_code = "UnAuthorized".into();
            answer.error_message =
                "Authentication failure: the user name or password is wrong".into();
            return Answer::Envelope {
                msg: Box::new(answer),
                unauthorized: true,
            };
        }
        if kind == Some(FaultKind::EnvelopeError) {
            answer.error_code = fault
                .and_then(|f| f.error_code.clone())
                .unwrap_or_else(|| "PayloadTypeIncorrect".into());
            answer.error_message = "injected envelope error".into();
            return Answer::Envelope {
                msg: Box::new(answer),
                unauthorized: false,
            };
        }
        let outcome = match self.check_envelope(op, req) {
            Err(e) => Err(e),
            Ok(()) => match self.answered.get(&req.payload_id) {
                Some(prev) => Ok((prev.payload_type.clone(), prev.payload.clone())),
                None => {
                    let out = self.process(op, req);
                    if let Ok((pt, payload)) = &out {
                        self.answered.insert(
                            req.payload_id.clone(),
                            CoreMessage {
                                payload_type: pt.clone(),
                                payload: payload.clone(),
                                ..CoreMessage::default()
                            },
                        );
                    }
                    out
                }
            },
        };
        match outcome {
            Ok((pt, payload)) => {
                answer.payload_type = pt;
                answer.payload = if kind == Some(FaultKind::MalformedX12) {
                    b"ISA*THIS IS NOT X12~".to_vec()
                } else {
                    payload
                };
                answer.error_code = "Success".into();
            }
            Err((code, message)) => {
                answer.error_code = code;
                answer.error_message = message;
            }
        }
        Answer::Envelope {
            msg: Box::new(answer),
            unauthorized: false,
        }
    }

    /// The payer as an NM1*PR party.
    fn payer_party(&self) -> Party {
        Party {
            entity: "PR".into(),
            kind: "2".into(),
            last: self.scenario.payer.name.clone(),
            id_qualifier: "PI".into(),
            id: self.scenario.payer.id.clone(),
            ..Party::default()
        }
    }

    fn base_answer(&self, op: Operation, req: &CoreMessage) -> CoreMessage {
        CoreMessage {
            payload_type: req.payload_type.clone(),
            processing_mode: if op == Operation::RealTime {
                "RealTime"
            } else {
                "Batch"
            }
            .into(),
            payload_id: req.payload_id.clone(),
            timestamp: Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            sender_id: self.scenario.payer.core_id.clone(),
            receiver_id: req.sender_id.clone(),
            core_rule_version: "2.2.0".into(),
            ..CoreMessage::default()
        }
    }

    fn archive_payload(&mut self, req: &CoreMessage) {
        self.archive_bytes(&req.payload_type, &req.payload_id, &req.payload);
    }

    /// Archives `bytes` as `NNNN-<payload type>-<id>.x12`.
    fn archive_bytes(&mut self, payload_type: &str, id: &str, bytes: &[u8]) {
        self.archived += 1;
        let safe = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        let name = format!(
            "{:04}-{}-{}.x12",
            self.archived,
            safe(payload_type),
            safe(id)
        );
        if let Err(e) = std::fs::write(self.archive.join(&name), bytes) {
            eprintln!("billd-sandbox: cannot archive {name}: {e}");
        }
    }

    fn check_envelope(&self, op: Operation, req: &CoreMessage) -> Result<(), (String, String)> {
        let required = [
            ("PayloadType", &req.payload_type),
            ("ProcessingMode", &req.processing_mode),
            ("PayloadID", &req.payload_id),
            ("TimeStamp", &req.timestamp),
            ("SenderID", &req.sender_id),
            ("ReceiverID", &req.receiver_id),
            ("CORERuleVersion", &req.core_rule_version),
        ];
        for (name, value) in required {
            if value.is_empty() {
                return Err((format!("{name}Required"), format!("{name} is missing")));
            }
        }
        if uuid::Uuid::parse_str(&req.payload_id).is_err() {
            return Err((
                "PayloadIDIllegal".into(),
                "PayloadID is not an RFC 4122 UUID".into(),
            ));
        }
        if chrono::DateTime::parse_from_rfc3339(&req.timestamp).is_err() {
            return Err((
                "TimeStampIllegal".into(),
                "TimeStamp is not an XML dateTime".into(),
            ));
        }
        if req.core_rule_version != "2.2.0" {
            return Err((
                "VersionMismatch".into(),
                format!("CORERuleVersion {} is not 2.2.0", req.core_rule_version),
            ));
        }
        let mode = if op == Operation::RealTime {
            "RealTime"
        } else {
            "Batch"
        };
        if req.processing_mode != mode {
            return Err((
                "ProcessingModeIllegal".into(),
                format!("ProcessingMode must be {mode} for this request"),
            ));
        }
        if req.receiver_id != self.scenario.payer.core_id {
            return Err((
                "ReceiverIDIllegal".into(),
                "ReceiverID is not this payer".into(),
            ));
        }
        let allowed: &[&str] = match op {
            Operation::RealTime => &[PT_270, PT_276],
            Operation::BatchSubmission => &[PT_837],
            Operation::AckRetrieval => &[PT_999_REQ, PT_277CA_REQ],
            Operation::ResultsRetrieval => &[PT_835_REQ],
        };
        if !allowed.contains(&req.payload_type.as_str()) {
            return Err((
                "PayloadTypeIncorrect".into(),
                format!("PayloadType {} is not accepted here", req.payload_type),
            ));
        }
        Ok(())
    }

    fn process(&mut self, op: Operation, req: &CoreMessage) -> Outcome {
        let now_env = self.envelope_now();
        let env = |receiver: &str| Envelope {
            receiver: receiver.to_owned(),
            ..now_env.clone()
        };
        match (op, req.payload_type.as_str()) {
            (Operation::RealTime, PT_270 | PT_276) => {
                let (sender, body) = read_x12(&req.payload)?;
                let env = env(&sender);
                let (segs, set, guide, answer) = match (req.payload_type.as_str(), body) {
                    (PT_270, Body::EligibilityInquiry(h)) => (
                        self.answer_270(&h, &env.date),
                        "271",
                        billd_x12::thl::GUIDE_279,
                        PT_271,
                    ),
                    (PT_276, Body::StatusRequest(h)) => (
                        self.answer_276(&h, &env.date),
                        "277",
                        billd_x12::thl::GUIDE_212,
                        PT_277,
                    ),
                    (pt, _) => {
                        return Err(x12_error(&format!("the payload is not what {pt} names")));
                    }
                };
                let (text, _) = write(&env, set, guide, segs, &mut self.numbers)
                    .map_err(|e| x12_error(&e.to_string()))?;
                Ok((answer.into(), text.into_bytes()))
            }
            (Operation::BatchSubmission, PT_837) => {
                let e = env("");
                self.take_837(&req.payload, &e)?;
                let text = format!(
                    "Batch {} received: {} bytes",
                    req.payload_id,
                    req.payload.len()
                );
                Ok((PT_RECEIPT.into(), text.into_bytes()))
            }
            (Operation::AckRetrieval, PT_999_REQ) => {
                Ok((PT_999.into(), self.mail(MailKind::Ack999)))
            }
            (Operation::AckRetrieval, PT_277CA_REQ) => {
                Ok((PT_277CA.into(), self.mail(MailKind::Ack277Ca)))
            }
            (Operation::ResultsRetrieval, PT_835_REQ) => {
                self.issue_remittances(&env(""));
                Ok((PT_835.into(), self.mail(MailKind::Remit835)))
            }
            _ => Err((
                "PayloadTypeIncorrect".into(),
                format!("PayloadType {} is not accepted here", req.payload_type),
            )),
        }
    }

    /// The next files of `kind` no retrieval has handed out yet, oldest
    /// first and at most `mailbox_page` of them, as a clearinghouse
    /// mailbox hands each file out once. A retried request (the same
    /// PayloadID) gets its first answer again from the answer cache.
    fn mail(&mut self, kind: MailKind) -> Vec<u8> {
        let done = self.delivered.entry(kind).or_insert(0);
        let page: Vec<&str> = self
            .mailbox
            .iter()
            .filter(|(k, _)| *k == kind)
            .skip(*done)
            .take(self.scenario.payer.mailbox_page.max(1))
            .map(|(_, t)| t.as_str())
            .collect();
        *done += page.len();
        page.concat().into_bytes()
    }

    fn answer_270(&self, h: &billd_x12::thl::Hierarchy, today: &str) -> Vec<billd_x12::Segment> {
        let levels = h.all_levels();
        let find = |code: &str| levels.iter().find(|l| l.hl.level == code);
        let party = |code: &str, default: Party| -> Party {
            find(code)
                .and_then(|l| l.names.first())
                .map(|n| party_of(&n.nm1))
                .unwrap_or(default)
        };
        let payer = self.payer_party();
        let provider = party("21", Party::default());
        let sub_level = find("22");
        let sub_name = sub_level.and_then(|l| l.names.first());
        let asked = sub_name.map(|n| party_of(&n.nm1)).unwrap_or_default();
        let asked_dob = sub_name
            .and_then(|n| n.other.iter().find(|s| s.id == "DMG"))
            .map(|s| s.get(2).to_owned());
        let trn = sub_level
            .and_then(|l| l.other.iter().find(|s| s.id == "TRN"))
            .map(|s| (s.get(2).to_owned(), s.get(3).to_owned()));
        let mut out = vec![seg(
            "BHT",
            &[
                "0022",
                "11",
                h.bht.reference.as_deref().unwrap_or("1"),
                today,
                "1200",
            ],
        )];
        out.push(hl(1, None, "20", true));
        out.push(payer.nm1());
        out.push(hl(2, Some(1), "21", true));
        out.push(provider.as_entity("1P").nm1());
        out.push(hl(3, Some(2), "22", false));
        if let Some((number, originator)) = &trn {
            out.push(seg("TRN", &["2", number, originator]));
        }
        let member = self.scenario.member(&asked.id);
        let reject = |code: &str| seg("AAA", &["N", "", code, "C"]);
        let Some(m) = member.filter(|m| m.status != MemberStatus::NotFound) else {
            out.push(asked.as_entity("IL").nm1());
            out.push(reject("75"));
            return out;
        };
        let mut sub = asked.as_entity("IL");
        sub.kind = "1".into();
        sub.id_qualifier = "MI".into();
        if let Some(l) = &m.last_name {
            sub.last = l.clone();
        }
        if let Some(f) = &m.first_name {
            sub.first = f.clone();
        }
        out.push(sub.nm1());
        if let Some(g) = &m.group {
            out.push(seg("REF", &["6P", g]));
        }
        let dob = m.birth_date.as_deref().map(|d| d.replace('-', ""));
        let name_mismatch = m
            .last_name
            .as_deref()
            .is_some_and(|l| !l.eq_ignore_ascii_case(&asked.last));
        let dob_mismatch =
            matches!((&dob, &asked_dob), (Some(a), Some(b)) if !b.is_empty() && a != b);
        if name_mismatch || dob_mismatch {
            out.push(reject(if dob_mismatch { "71" } else { "73" }));
            return out;
        }
        if let Some(d) = &dob {
            out.push(seg("DMG", &["D8", d]));
        }
        if let Some(b) = &m.coverage_begin {
            out.push(seg("DTP", &["346", "D8", &b.replace('-', "")]));
        }
        if let Some(e) = &m.coverage_end {
            out.push(seg("DTP", &["347", "D8", &e.replace('-', "")]));
        }
        let plan = m.plan.clone().unwrap_or_default();
        if m.status == MemberStatus::Inactive {
            out.push(seg("EB", &["6", "", "30", "", &plan]));
            return out;
        }
        out.push(seg("EB", &["1", "IND", "30", "", &plan]));
        let b = &m.benefits;
        let money = |code: &str, period: &str, cents: i64, st: &str| {
            seg(
                "EB",
                &[
                    code,
                    "IND",
                    st,
                    "",
                    "",
                    period,
                    &amount(cents),
                    "",
                    "",
                    "",
                    "",
                    "Y",
                ],
            )
        };
        if let Some(c) = b.deductible_cents {
            out.push(money("C", "23", c, "30"));
        }
        if let Some(c) = b.deductible_remaining_cents {
            out.push(money("C", "29", c, "30"));
        }
        if let Some(c) = b.out_of_pocket_max_cents {
            out.push(money("G", "23", c, "30"));
        }
        if let Some(c) = b.copay_cents {
            out.push(money("B", "27", c, "98"));
        }
        if let Some(p) = b.coinsurance_percent {
            let frac = Amount4::percent(p);
            out.push(seg(
                "EB",
                &["A", "IND", "98", "", "", "27", "", &frac, "", "", "", "Y"],
            ));
        }
        out
    }

    fn answer_276(
        &mut self,
        h: &billd_x12::thl::Hierarchy,
        today: &str,
    ) -> Vec<billd_x12::Segment> {
        let mut out = vec![seg(
            "BHT",
            &[
                "0010",
                "08",
                h.bht.reference.as_deref().unwrap_or("1"),
                today,
                "1200",
                "DG",
            ],
        )];
        let mut next = 1u32;
        for payer in &h.levels {
            let payer_id = next;
            out.push(hl(payer_id, None, "20", true));
            out.push(self.payer_party().nm1());
            next += 1;
            for receiver in &payer.children {
                let receiver_id = next;
                next += 1;
                out.push(hl(receiver_id, Some(payer_id), "21", true));
                if let Some(n) = receiver.names.first() {
                    out.push(n.nm1.to_segment());
                }
                for provider in &receiver.children {
                    let provider_id = next;
                    next += 1;
                    out.push(hl(provider_id, Some(receiver_id), "19", true));
                    if let Some(n) = provider.names.first() {
                        out.push(n.nm1.to_segment());
                    }
                    for sub in &provider.children {
                        let sub_id = next;
                        out.push(hl(
                            sub_id,
                            Some(provider_id),
                            "22",
                            !sub.children.is_empty(),
                        ));
                        next += 1;
                        if let Some(n) = sub.names.first() {
                            out.push(n.nm1.to_segment());
                        }
                        self.status_loops(&sub.tracking, today, &mut out);
                        // Dependents (2000E) carry their own claims.
                        for dep in &sub.children {
                            out.push(hl(next, Some(sub_id), "23", false));
                            next += 1;
                            if let Some(n) = dep.names.first() {
                                out.push(n.nm1.to_segment());
                            }
                            self.status_loops(&dep.tracking, today, &mut out);
                        }
                    }
                }
            }
        }
        out
    }

    /// The 2200 status loops answering one level's tracking loops.
    fn status_loops(
        &mut self,
        tracking: &[billd_x12::thl::Tracking],
        today: &str,
        out: &mut Vec<billd_x12::Segment>,
    ) {
        for t in tracking {
            let clm01 = t
                .references
                .iter()
                .find(|r| r.qualifier == "EJ")
                .and_then(|r| r.value.clone())
                .unwrap_or_default();
            let billed = t
                .amounts
                .iter()
                .find(|a| a.qualifier == "T3")
                .map(|a| a.amount.as_str().to_owned())
                .unwrap_or_else(|| "0".into());
            let (cat, code, icn) = self.status_of(&clm01);
            out.push(seg("TRN", &["2", &t.trn.trace_number]));
            out.push(seg(
                "STC",
                &[
                    &format!("{cat}:{code}"),
                    today,
                    "",
                    &billed,
                    if cat == "F1" { &billed } else { "" },
                ],
            ));
            if let Some(icn) = icn {
                out.push(seg("REF", &["1K", &icn]));
            }
            out.push(seg("REF", &["EJ", &clm01]));
            for d in &t.dates {
                out.push(d.to_segment());
            }
        }
    }

    /// (category, status code, payer claim id) for a 276 about `clm01`,
    /// advancing its progression.
    fn status_of(&mut self, clm01: &str) -> (String, String, Option<String>) {
        let today = Utc::now().date_naive();
        let advance = self.scenario.status_advance;
        let Some(rec) = self.claims.get_mut(clm01) else {
            return ("A4".into(), "35".into(), None);
        };
        let steps = self
            .scenario
            .claim(clm01)
            .map(|c| c.status.clone())
            .unwrap_or_default();
        let idx = match advance {
            crate::scenario::Advance::PerInquiry => rec.inquiries,
            crate::scenario::Advance::PerDay => (today - rec.received).num_days().max(0) as usize,
        };
        rec.inquiries += 1;
        let step = steps
            .get(idx.min(steps.len().saturating_sub(1)))
            .cloned()
            .unwrap_or_else(|| "A2:20".into());
        let (cat, code) = step.split_once(':').unwrap_or(("A2", "20"));
        (cat.into(), code.into(), Some(rec.payer_claim_id.clone()))
    }

    fn finalized(&self, clm01: &str, rec: &ClaimRecord) -> bool {
        let steps = self
            .scenario
            .claim(clm01)
            .map(|c| c.status.clone())
            .unwrap_or_default();
        let reached = match self.scenario.status_advance {
            crate::scenario::Advance::PerInquiry => rec.inquiries,
            crate::scenario::Advance::PerDay => {
                (Utc::now().date_naive() - rec.received).num_days().max(0) as usize + 1
            }
        };
        steps.is_empty() || reached >= steps.len()
    }

    fn take_837(&mut self, payload: &[u8], env: &Envelope) -> Result<(), (String, String)> {
        let parsed = parse(payload, Mode::Strict).map_err(|e| x12_error(&e.to_string()))?;
        for ic in &parsed.document.interchanges {
            let receiver = ic.header.sender_id.clone();
            let env = Envelope {
                receiver: receiver.clone(),
                ..env.clone()
            };
            for g in &ic.groups {
                for t in &g.transactions {
                    let Body::Professional(p) = &t.body else {
                        return Err(x12_error("a transaction set is not an 837P"));
                    };
                    self.take_professional(p, &g.control_number, &t.control_number, &env)?;
                }
            }
        }
        Ok(())
    }

    fn take_professional(
        &mut self,
        p: &billd_x12::t837p::Professional,
        gs06: &str,
        st02: &str,
        env: &Envelope,
    ) -> Result<(), (String, String)> {
        let today = Utc::now().date_naive();
        let submitter = party_of(&p.submitter.nm1);
        let batch_ref = p.bht.reference.clone().unwrap_or_default();
        let mut claims = Vec::new();
        for bp in &p.billing_providers {
            let billing = party_of(&bp.billing.nm1);
            for s in &bp.subscribers {
                let sub = party_of(&s.subscriber.nm1);
                let mut list: Vec<(Party, &billd_x12::t837p::Claim)> =
                    s.claims.iter().map(|c| (sub.clone(), c)).collect();
                for pt in &s.patients {
                    let mut who = party_of(&pt.patient.nm1);
                    who.id_qualifier = "MI".into();
                    who.id = sub.id.clone();
                    list.extend(pt.claims.iter().map(|c| (who.clone(), c)));
                }
                for (who, c) in list {
                    let service_date = c
                        .lines
                        .iter()
                        .flat_map(|l| &l.dates)
                        .find(|d| d.qualifier == "472")
                        .map(|d| d.value.split('-').next().unwrap_or("").to_owned())
                        .unwrap_or_else(|| env.date.clone());
                    claims.push((
                        c.clm.claim_id.clone(),
                        c.clm.total_charge.units() / 100,
                        who,
                        billing.clone(),
                        service_date,
                    ));
                }
            }
        }
        // 999 for the transaction set: rejected when any claim's script says so.
        let reject_code = claims.iter().find_map(|(id, ..)| {
            self.scenario
                .claim(id)
                .filter(|s| s.ack_999 == Ack999::Rejected)
                .map(|s| s.ack_999_code.clone().unwrap_or_else(|| "5".into()))
        });
        let mut ack = vec![
            seg("AK1", &["HC", gs06, billd_x12::t837p::GUIDE]),
            seg("AK2", &["837", st02, billd_x12::t837p::GUIDE]),
        ];
        match &reject_code {
            Some(code) => {
                ack.push(seg("IK5", &["R", code]));
                ack.push(seg("AK9", &["R", "1", "1", "0"]));
            }
            None => {
                ack.push(seg("IK5", &["A"]));
                ack.push(seg("AK9", &["A", "1", "1", "1"]));
            }
        }
        let (text, _) = write(env, "999", billd_x12::t999::GUIDE, ack, &mut self.numbers)
            .map_err(|e| x12_error(&e.to_string()))?;
        self.mailbox.push((MailKind::Ack999, text));
        if reject_code.is_some() {
            return Ok(());
        }
        // 277CA: one per transaction set, a patient level per claim.
        let mut ca = vec![
            seg(
                "BHT",
                &["0085", "08", &batch_ref, &env.date, &env.time, "TH"],
            ),
            hl(1, None, "20", true),
            self.payer_party().nm1(),
            seg("TRN", &["1", &batch_ref]),
            seg("DTP", &["050", "D8", &env.date]),
            seg("DTP", &["009", "D8", &env.date]),
            hl(2, Some(1), "21", true),
            submitter.as_entity("41").nm1(),
            seg("TRN", &["2", &batch_ref]),
            seg(
                "STC",
                &[
                    "A1:19:PR",
                    &env.date,
                    "WQ",
                    &amount(claims.iter().map(|c| c.1).sum()),
                ],
            ),
        ];
        let mut next = 3u32;
        let mut by_provider: Vec<(Party, Vec<usize>)> = Vec::new();
        for (i, c) in claims.iter().enumerate() {
            match by_provider.iter_mut().find(|(p, _)| p.id == c.3.id) {
                Some((_, v)) => v.push(i),
                None => by_provider.push((c.3.clone(), vec![i])),
            }
        }
        for (provider, idxs) in by_provider {
            let pid = next;
            next += 1;
            ca.push(hl(pid, Some(2), "19", true));
            ca.push(provider.as_entity("85").nm1());
            ca.push(seg("TRN", &["1", &batch_ref]));
            for i in idxs {
                let (id, charge, who, _, date) = &claims[i];
                let script = self.scenario.claim(id);
                let icn = script
                    .and_then(|s| s.payer_claim_id.clone())
                    .unwrap_or_else(|| format!("ICN{id}"));
                ca.push(hl(next, Some(pid), "PT", false));
                next += 1;
                ca.push(who.as_entity("QC").nm1());
                ca.push(seg("TRN", &["2", id]));
                match script.filter(|s| s.ack_277ca == Ack277::Rejected) {
                    Some(s) => {
                        let cat = s.ack_277ca_category.clone().unwrap_or_else(|| "A7".into());
                        let code = s.ack_277ca_status.clone().unwrap_or_else(|| "21".into());
                        let text =
                            crate::x12out::text(&s.ack_277ca_text.clone().unwrap_or_default());
                        ca.push(seg(
                            "STC",
                            &[
                                &format!("{cat}:{code}"),
                                &env.date,
                                "U",
                                &amount(*charge),
                                "",
                                "",
                                "",
                                "",
                                "",
                                "",
                                "",
                                &text,
                            ],
                        ));
                    }
                    None => {
                        ca.push(seg("STC", &["A2:20", &env.date, "WQ", &amount(*charge)]));
                        ca.push(seg("REF", &["1K", &icn]));
                        self.claims.entry(id.clone()).or_insert(ClaimRecord {
                            received: today,
                            inquiries: 0,
                            charge_cents: *charge,
                            payer_claim_id: icn.clone(),
                            patient: who.clone(),
                            billing: provider.clone(),
                            submitter: submitter.id.clone(),
                            service_date: date.clone(),
                            remits_issued: false,
                        });
                    }
                }
                ca.push(seg("DTP", &["472", "D8", date]));
            }
        }
        let (text, _) = write(env, "277", billd_x12::thl::GUIDE_214, ca, &mut self.numbers)
            .map_err(|e| x12_error(&e.to_string()))?;
        self.mailbox.push((MailKind::Ack277Ca, text));
        Ok(())
    }

    fn issue_remittances(&mut self, env: &Envelope) {
        let mut ids: Vec<String> = self
            .claims
            .iter()
            .filter(|(id, r)| !r.remits_issued && self.finalized(id, r))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        for id in ids {
            let Some(rec) = self.claims.get(&id).cloned() else {
                continue;
            };
            let scripts = self
                .scenario
                .claim(&id)
                .map(|c| c.remittances.clone())
                .unwrap_or_default();
            let mut previous: Option<Paid> = None;
            for r in &scripts {
                let env = Envelope {
                    receiver: rec.submitter.clone(),
                    ..env.clone()
                };
                let (segs, this) =
                    remittance_segments(&self.scenario.payer, &id, &rec, r, previous.as_ref());
                match write(&env, "835", billd_x12::t835::GUIDE, segs, &mut self.numbers) {
                    Ok((text, _)) => self.mailbox.push((MailKind::Remit835, text)),
                    Err(e) => eprintln!("billd-sandbox: cannot write an 835: {e}"),
                }
                previous = Some(this);
            }
            if let Some(r) = self.claims.get_mut(&id) {
                r.remits_issued = true;
            }
        }
    }
}

/// Writes an ISA-independent percent as X12 decimal (20 → `.2`).
struct Amount4;

impl Amount4 {
    fn percent(p: u32) -> String {
        let s = billd_x12::fields::Amount::from_units(i64::from(p) * 100)
            .as_str()
            .to_owned();
        s.strip_prefix('0').map(str::to_owned).unwrap_or(s)
    }
}

/// CAS adjustments: group, reason, cents.
type CasList = Vec<(String, String, i64)>;
/// What one 835 paid: paid, patient responsibility, adjustments.
type Paid = (i64, i64, CasList);
/// One CLP: status, charge, paid, patient responsibility, adjustments.
type ClpLine = (String, i64, i64, i64, CasList);

/// The segments of one 835 and what it paid (paid, patient, CAS list).
fn remittance_segments(
    payer: &crate::scenario::PayerInfo,
    clm01: &str,
    rec: &ClaimRecord,
    r: &crate::scenario::RemitScript,
    previous: Option<&Paid>,
) -> (Vec<billd_x12::Segment>, Paid) {
    let date = r.payment_date.replace('-', "");
    let charge = rec.charge_cents;
    let paid = if r.kind == RemitKind::Denial {
        0
    } else {
        r.paid_cents
    };
    let mut cas: Vec<(String, String, i64)> = r
        .adjustments
        .iter()
        .map(|a| (a.group.clone(), a.reason.clone(), a.cents))
        .collect();
    let has_pr = cas.iter().any(|c| c.0 == "PR");
    if !has_pr && r.patient_responsibility_cents != 0 {
        cas.push(("PR".into(), "1".into(), r.patient_responsibility_cents));
    }
    let explained: i64 = cas.iter().map(|c| c.2).sum();
    let rest = charge - paid - explained;
    if rest != 0 {
        cas.push((
            "CO".into(),
            if r.kind == RemitKind::Denial {
                "50"
            } else {
                "45"
            }
            .into(),
            rest,
        ));
    }
    let patient: i64 = cas.iter().filter(|c| c.0 == "PR").map(|c| c.2).sum();
    let mut clps: Vec<ClpLine> = Vec::new();
    if r.kind == RemitKind::Reversal
        && let Some((p_paid, p_patient, p_cas)) = previous
    {
        clps.push((
            "22".into(),
            -charge,
            -p_paid,
            -p_patient,
            p_cas
                .iter()
                .map(|(g, c, a)| (g.clone(), c.clone(), -a))
                .collect(),
        ));
    }
    let status = if r.kind == RemitKind::Denial {
        "4"
    } else {
        "1"
    };
    clps.push((status.into(), charge, paid, patient, cas.clone()));
    let plb: i64 = r.provider_adjustments.iter().map(|p| p.cents).sum();
    let total: i64 = clps.iter().map(|c| c.2).sum::<i64>() - plb;
    let mut out = Vec::new();
    if total == 0 {
        out.push(seg(
            "BPR",
            &[
                "H", "0", "C", "NON", "", "", "", "", "", "", "", "", "", "", "", &date,
            ],
        ));
    } else {
        out.push(seg(
            "BPR",
            &[
                "I",
                &amount(total.abs()),
                if total < 0 { "D" } else { "C" },
                "CHK",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                &date,
            ],
        ));
    }
    out.push(seg("TRN", &["1", &r.trace_number, "1999999999"]));
    out.push(seg("DTM", &["405", &date]));
    out.push(seg("N1", &["PR", &payer.name]));
    out.push(seg("N3", &["1 SANDBOX WAY"]));
    out.push(seg("N4", &["SPRINGFIELD", "IL", "62701"]));
    out.push(seg("REF", &["2U", &payer.id]));
    out.push(seg("PER", &["BL", "SANDBOX EDI", "TE", "8005550100"]));
    out.push(seg("N1", &["PE", &rec.billing.last, "XX", &rec.billing.id]));
    out.push(seg("LX", &["1"]));
    for (status, charge, paid, patient, cas) in &clps {
        out.push(seg(
            "CLP",
            &[
                clm01,
                status,
                &amount(*charge),
                &amount(*paid),
                &amount(*patient),
                "12",
                &rec.payer_claim_id,
                "11",
                "1",
            ],
        ));
        let mut groups: Vec<(String, Vec<(String, i64)>)> = Vec::new();
        for (g, code, a) in cas {
            match groups.iter_mut().find(|(gg, _)| gg == g) {
                Some((_, v)) => v.push((code.clone(), *a)),
                None => groups.push((g.clone(), vec![(code.clone(), *a)])),
            }
        }
        for (g, list) in groups {
            for chunk in list.chunks(6) {
                let mut vals: Vec<String> = vec![g.clone()];
                for (code, a) in chunk {
                    vals.push(code.clone());
                    vals.push(amount(*a));
                    vals.push(String::new());
                }
                let refs: Vec<&str> = vals.iter().map(String::as_str).collect();
                out.push(seg("CAS", &refs));
            }
        }
        out.push(rec.patient.as_entity("QC").nm1());
        out.push(seg("DTM", &["232", &rec.service_date]));
    }
    for p in &r.provider_adjustments {
        let year_end = format!("{}1231", &date[..4]);
        let reason = match &p.reference {
            Some(reference) => format!("{}:{reference}", p.reason),
            None => p.reason.clone(),
        };
        let mut s = seg("PLB", &[&rec.billing.id, &year_end, "", &amount(p.cents)]);
        s.elements[2] =
            billd_x12::Element::from_components(reason.split(':').map(str::to_owned).collect());
        out.push(s);
    }
    (out, (paid, patient, cas))
}

fn party_of(n: &billd_x12::segments::Nm1) -> Party {
    Party {
        entity: n.entity.clone(),
        kind: n.entity_type.clone(),
        last: n.last_or_org_name.clone().unwrap_or_default(),
        first: n.first_name.clone().unwrap_or_default(),
        id_qualifier: n.id_qualifier.clone().unwrap_or_default(),
        id: n.id.clone().unwrap_or_default(),
    }
}

fn x12_error(message: &str) -> (String, String) {
    (
        "X12Invalid".into(),
        format!("the X12 payload was refused: {message}"),
    )
}

/// Reads a payload with exactly one transaction set; returns ISA06 and it.
fn read_x12(payload: &[u8]) -> Result<(String, Body), (String, String)> {
    let parsed = parse(payload, Mode::Strict).map_err(|e| x12_error(&e.to_string()))?;
    let ic = parsed
        .document
        .interchanges
        .into_iter()
        .next()
        .ok_or_else(|| x12_error("no interchange"))?;
    let sender = ic.header.sender_id.clone();
    let t = ic
        .groups
        .into_iter()
        .flat_map(|g| g.transactions)
        .next()
        .ok_or_else(|| x12_error("no transaction set"))?;
    Ok((sender, t.body))
}
