//! The professional claim and the one state machine that carries it from
//! draft to closed.
//!
//! Every change of state is a [`ClaimEvent`] with its source (an import, a
//! 999, a 277CA, a 277, an 835, a person) and time, appended to the claim's
//! history. The allowed transitions are written down once, in
//! [`ClaimState::can_become`]; anything else is a [`TransitionError`], never
//! a silent overwrite.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use std::ops::Bound;

use crate::store::{Db, Page, Record, StoreError, time_key};

/// Where a claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// Built from charges or imported; not yet scrubbed.
    Draft,
    /// Passed the scrubber.
    Scrubbed,
    /// Released for the next submission batch.
    Ready,
    /// Sent to the clearinghouse or payer.
    Submitted,
    /// The batch was accepted by a 999.
    Accepted,
    /// The claim was accepted into adjudication by a 277CA.
    Acknowledged,
    /// Rejected by a 999, a 277CA or a 277: must be corrected and resent.
    Rejected,
    /// In adjudication (a 277 said so).
    Pending,
    /// Finalized: paid in full.
    Paid,
    /// Finalized: paid in part.
    PartiallyPaid,
    /// Finalized: denied.
    Denied,
    /// An appeal was filed.
    Appealed,
    /// The payer reversed its payment (835 CLP02 = 22).
    Reversed,
    /// The balance was written off.
    WrittenOff,
    /// Nothing more to do.
    Closed,
}

/// Every state, in life-cycle order.
pub const ALL_STATES: [ClaimState; 15] = [
    ClaimState::Draft,
    ClaimState::Scrubbed,
    ClaimState::Ready,
    ClaimState::Submitted,
    ClaimState::Accepted,
    ClaimState::Acknowledged,
    ClaimState::Rejected,
    ClaimState::Pending,
    ClaimState::Paid,
    ClaimState::PartiallyPaid,
    ClaimState::Denied,
    ClaimState::Appealed,
    ClaimState::Reversed,
    ClaimState::WrittenOff,
    ClaimState::Closed,
];

impl ClaimState {
    /// The name used on the command line, in index keys and in JSON
    /// (`partially_paid`).
    pub fn name(self) -> &'static str {
        use ClaimState::*;
        match self {
            Draft => "draft",
            Scrubbed => "scrubbed",
            Ready => "ready",
            Submitted => "submitted",
            Accepted => "accepted",
            Acknowledged => "acknowledged",
            Rejected => "rejected",
            Pending => "pending",
            Paid => "paid",
            PartiallyPaid => "partially_paid",
            Denied => "denied",
            Appealed => "appealed",
            Reversed => "reversed",
            WrittenOff => "written_off",
            Closed => "closed",
        }
    }

    /// The state named `name` (as [`ClaimState::name`] spells it; `-` may
    /// stand for `_`).
    pub fn parse(name: &str) -> Option<ClaimState> {
        let name = name.replace('-', "_");
        ALL_STATES.into_iter().find(|s| s.name() == name)
    }

    /// Whether the payer has decided (paid, partially paid or denied).
    pub fn is_finalized(self) -> bool {
        matches!(
            self,
            ClaimState::Paid | ClaimState::PartiallyPaid | ClaimState::Denied
        )
    }

    /// Whether the claim is out with the payer and its status should be
    /// followed (by 276/277 inquiries).
    pub fn awaits_payer(self) -> bool {
        matches!(
            self,
            ClaimState::Submitted
                | ClaimState::Accepted
                | ClaimState::Acknowledged
                | ClaimState::Pending
                | ClaimState::Appealed
        )
    }

    /// The one table of allowed transitions. A state may "become" itself
    /// only where a repeated report is news worth keeping (a 277 saying
    /// "still pending").
    pub fn can_become(self, to: ClaimState) -> bool {
        use ClaimState::*;
        let allowed: &[ClaimState] = match self {
            Draft => &[Scrubbed, Closed],
            Scrubbed => &[Ready, Draft, Closed],
            Ready => &[Submitted, Draft, Closed],
            Submitted => &[
                Accepted,
                Acknowledged,
                Rejected,
                Pending,
                Paid,
                PartiallyPaid,
                Denied,
            ],
            Accepted => &[Acknowledged, Rejected, Pending, Paid, PartiallyPaid, Denied],
            Acknowledged => &[Pending, Rejected, Paid, PartiallyPaid, Denied],
            Pending => &[Pending, Rejected, Paid, PartiallyPaid, Denied],
            Rejected => &[Draft, WrittenOff, Closed],
            Paid => &[Reversed, Closed],
            PartiallyPaid => &[Appealed, Reversed, WrittenOff, Closed],
            Denied => &[Appealed, Draft, Reversed, WrittenOff, Closed],
            Appealed => &[Pending, Paid, PartiallyPaid, Denied],
            Reversed => &[
                Paid,
                PartiallyPaid,
                Denied,
                Pending,
                Draft,
                WrittenOff,
                Closed,
            ],
            WrittenOff => &[Closed, Reversed],
            Closed => &[Reversed],
        };
        allowed.contains(&to)
    }
}

impl std::fmt::Display for ClaimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What caused a claim transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimEventSource {
    /// Imported from a file or an EHR.
    Import,
    /// A 999 acknowledgment.
    Ack999,
    /// A 277CA claim acknowledgment.
    Ack277Ca,
    /// A 277 status response.
    Status277,
    /// An 835 remittance.
    Remit835,
    /// A person, by user name.
    Person(String),
    /// billd itself (scrubber, submission job).
    System,
}

impl std::fmt::Display for ClaimEventSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClaimEventSource::Import => f.write_str("import"),
            ClaimEventSource::Ack999 => f.write_str("999"),
            ClaimEventSource::Ack277Ca => f.write_str("277CA"),
            ClaimEventSource::Status277 => f.write_str("277"),
            ClaimEventSource::Remit835 => f.write_str("835"),
            ClaimEventSource::Person(who) => write!(f, "person:{who}"),
            ClaimEventSource::System => f.write_str("billd"),
        }
    }
}

/// One transition in a claim's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// State before (`None` for the claim's creation).
    pub from: Option<ClaimState>,
    /// State after.
    pub to: ClaimState,
    /// What caused it.
    pub source: ClaimEventSource,
    /// Codes or remarks (no patient data).
    #[serde(default)]
    pub note: Option<String>,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claim {claim}: cannot go from {from} to {to} (source {by})")]
pub struct TransitionError {
    /// The claim id.
    pub claim: String,
    /// Its current state.
    pub from: ClaimState,
    /// The state asked for.
    pub to: ClaimState,
    /// Who asked.
    pub by: ClaimEventSource,
}

/// One service line of a professional claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLine {
    /// CPT or HCPCS code.
    pub procedure: String,
    /// Up to four modifiers.
    #[serde(default)]
    pub modifiers: Vec<String>,
    /// Charge in cents.
    pub charge_cents: i64,
    /// Units of service.
    pub units: u32,
    /// 1-based pointers into the claim's diagnoses.
    pub diagnosis_pointers: Vec<u8>,
    /// Date of service.
    pub service_date: NaiveDate,
}

/// A professional claim and its history.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// billd's claim id.
    pub id: String,
    /// The patient control number sent as CLM01.
    #[serde(default)]
    pub control_number: String,
    /// The patient.
    pub patient_id: String,
    /// The coverage billed.
    pub coverage_id: String,
    /// Payer id.
    pub payer_id: String,
    /// Billing provider NPI.
    pub billing_npi: String,
    /// Rendering provider NPI.
    pub rendering_npi: String,
    /// Place of service code.
    pub place_of_service: String,
    /// Claim frequency code (1 original, 7 replacement, 8 void).
    pub frequency_code: String,
    /// ICD-10-CM codes, principal first.
    pub diagnoses: Vec<String>,
    /// Service lines.
    pub lines: Vec<ServiceLine>,
    /// Total charge in cents.
    pub total_charge_cents: i64,
    /// Current state.
    pub state: ClaimState,
    /// Every transition, oldest first.
    pub history: Vec<ClaimEvent>,
    /// Payer's claim control number, once known.
    #[serde(default)]
    pub payer_claim_number: Option<String>,
    /// When the claim-status job should next ask about it.
    #[serde(default)]
    pub next_check_at: Option<DateTime<Utc>>,
    /// Bumped on every change to what is billed, so an effect keyed by
    /// (claim, revision) is redone only when the claim itself changed.
    #[serde(default)]
    pub revision: u32,
    /// Held by a biller: no job submits or follows it until released.
    #[serde(default)]
    pub held: bool,
    /// What the scrubber found the last time it looked (empty: clean).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<super::scrub::ScrubProblem>,
    /// The billing provider's name as the claim's source gave it (the
    /// practice's name when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_name: Option<String>,
    /// The billing provider's tax id (EIN) as the claim's source gave it
    /// (the practice's when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_tax_id: Option<String>,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Diagnoses and procedures are patient data: ids and state only.
        f.debug_struct("Claim")
            .field("id", &self.id)
            .field("patient_id", &self.patient_id)
            .field("payer_id", &self.payer_id)
            .field("state", &self.state)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

impl Claim {
    /// Moves the claim to `to`, appending the event; refuses a transition
    /// the table does not allow and leaves the claim unchanged.
    pub fn transition(
        &mut self,
        to: ClaimState,
        source: ClaimEventSource,
        at: DateTime<Utc>,
        note: Option<String>,
    ) -> Result<(), TransitionError> {
        if !self.state.can_become(to) {
            return Err(TransitionError {
                claim: self.id.clone(),
                from: self.state,
                to,
                by: source,
            });
        }
        self.history.push(ClaimEvent {
            at,
            from: Some(self.state),
            to,
            source,
            note,
        });
        self.state = to;
        Ok(())
    }

    /// The effect key of work on this claim as it stands now: the same on
    /// every retry and in every later run until the claim is revised.
    pub fn effect_scope(&self) -> String {
        format!("claim:{}:r{}", self.id, self.revision)
    }
}

/// The index of claims by state.
pub const BY_STATE: &str = "state";
/// The index of claims by state and next status check (`pending/<time>`),
/// for claims out with the payer that have a check scheduled.
pub const BY_STATE_NEXT_CHECK: &str = "state_next_check";
/// The index of claims due a status check by time alone (`<time>`): every
/// claim out with the payer, not held, with a check scheduled.
pub const BY_NEXT_CHECK: &str = "next_check";

impl Claim {
    /// Whether the claim-status job should follow it.
    pub fn follows_up(&self) -> bool {
        self.state.awaits_payer() && !self.held && self.next_check_at.is_some()
    }
}

/// The index of claims by patient control number (CLM01), hashed: index
/// keys are not sealed, and an account number may tell who the patient is.
pub const BY_CONTROL_NUMBER: &str = "control_number";

/// The opaque index value of a patient control number.
pub fn control_key(control_number: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(control_number.as_bytes())[..12])
}

/// The claims whose patient control number (CLM01) is `control_number`
/// (one per billing provider), as payers' acknowledgments name them.
pub fn with_control_number(db: &Db, control_number: &str) -> Result<Vec<Claim>, StoreError> {
    let key = control_key(control_number);
    Ok(db
        .index_range::<Claim>(
            BY_CONTROL_NUMBER,
            Bound::Included(key.as_str()),
            Bound::Included(key.as_str()),
            None,
            false,
        )?
        .items)
}

/// Claims in `state`, in id order, a page at a time (`after`: the page's
/// `next` cursor). Decodes only what it returns.
pub fn in_state(
    db: &Db,
    state: ClaimState,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<Claim>, StoreError> {
    let start = match after {
        Some(cursor) => Bound::Excluded(cursor),
        None => Bound::Included(state.name()),
    };
    db.index_range::<Claim>(
        BY_STATE,
        start,
        Bound::Included(state.name()),
        Some(limit),
        false,
    )
}

/// Claims whose status check is due at `now`, the most overdue first, at
/// most `limit`. Read through the index: decodes only what it returns.
pub fn due_for_status_check(
    db: &Db,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Page<Claim>, StoreError> {
    let until = time_key(now);
    db.index_range::<Claim>(
        BY_NEXT_CHECK,
        Bound::Unbounded,
        Bound::Included(&until),
        Some(limit),
        false,
    )
}

impl Record for Claim {
    const COLLECTION: &'static str = "claims";
    const SCHEMA_VERSION: u32 = 2;
    const INDEXES: &'static [&'static str] = &[
        BY_STATE,
        BY_STATE_NEXT_CHECK,
        BY_NEXT_CHECK,
        BY_CONTROL_NUMBER,
    ];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        let mut keys = vec![
            (BY_STATE, self.state.name().to_string()),
            (BY_CONTROL_NUMBER, control_key(&self.control_number)),
        ];
        if let Some(at) = self.next_check_at {
            if self.state.awaits_payer() {
                keys.push((
                    BY_STATE_NEXT_CHECK,
                    format!("{}/{}", self.state.name(), time_key(at)),
                ));
            }
            if self.follows_up() {
                keys.push((BY_NEXT_CHECK, time_key(at)));
            }
        }
        keys
    }
    /// Version 1 named the first state `built`; version 2 calls it `draft`
    /// and adds the control number (CLM01, then the claim id).
    fn upgrade(version: u32, mut v: serde_json::Value) -> Result<serde_json::Value, String> {
        match version {
            1 => {
                let rename = |s: &mut serde_json::Value| {
                    if s.as_str() == Some("built") {
                        *s = "draft".into();
                    }
                };
                rename(&mut v["state"]);
                if let Some(events) = v["history"].as_array_mut() {
                    for e in events {
                        rename(&mut e["from"]);
                        rename(&mut e["to"]);
                    }
                }
                if v.get("control_number").is_none() {
                    v["control_number"] = v["id"].clone();
                }
                Ok(v)
            }
            2 => Ok(v),
            other => Err(format!("no upgrade from schema version {other}")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A draft claim with no lines, for tests to build on.
    pub(crate) fn claim() -> Claim {
        Claim {
            id: "C1".into(),
            control_number: "C1".into(),
            patient_id: "P1".into(),
            coverage_id: "COV1".into(),
            payer_id: "60054".into(),
            billing_npi: "1234567893".into(),
            rendering_npi: "1234567893".into(),
            place_of_service: "11".into(),
            frequency_code: "1".into(),
            diagnoses: vec!["E119".into()],
            lines: vec![],
            total_charge_cents: 100,
            state: ClaimState::Draft,
            history: vec![],
            payer_claim_number: None,
            next_check_at: None,
            revision: 0,
            held: false,
            problems: vec![],
            billing_name: None,
            billing_tax_id: None,
        }
    }

    fn at(m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, m, 0).unwrap()
    }

    #[test]
    fn a_claim_walks_its_life_and_keeps_every_event() {
        let mut c = claim();
        use ClaimEventSource::*;
        use ClaimState::*;
        let steps = [
            (Scrubbed, System),
            (Ready, System),
            (Submitted, System),
            (Accepted, Ack999),
            (Acknowledged, Ack277Ca),
            (Pending, Status277),
            (Pending, Status277),
            (PartiallyPaid, Remit835),
            (Appealed, Person("dana".into())),
            (Paid, Remit835),
            (Reversed, Remit835),
            (Paid, Remit835),
            (Closed, System),
        ];
        for (i, (to, src)) in steps.iter().enumerate() {
            c.transition(*to, src.clone(), at(i as u32), None).unwrap();
        }
        assert_eq!(c.state, Closed);
        assert_eq!(c.history.len(), steps.len());
        assert_eq!(c.history[3].from, Some(Submitted));
        assert_eq!(c.history[3].source, Ack999);
    }

    #[test]
    fn an_illegal_transition_is_an_error_and_changes_nothing() {
        let mut c = claim();
        let err = c
            .transition(ClaimState::Paid, ClaimEventSource::Remit835, at(0), None)
            .unwrap_err();
        assert_eq!(err.from, ClaimState::Draft);
        assert_eq!(err.to, ClaimState::Paid);
        assert!(
            err.to_string().contains("cannot go from draft to paid"),
            "{err}"
        );
        assert_eq!(c.state, ClaimState::Draft);
        assert!(c.history.is_empty());
    }

    #[test]
    fn the_table_has_no_dead_ends_but_closed_and_reaches_every_state() {
        // Every state but Closed has a way on; every state is reachable
        // from Draft.
        let mut reached = std::collections::BTreeSet::from([ClaimState::Draft]);
        let mut frontier = vec![ClaimState::Draft];
        while let Some(s) = frontier.pop() {
            for t in ALL_STATES {
                if s.can_become(t) && reached.insert(t) {
                    frontier.push(t);
                }
            }
        }
        assert_eq!(reached.len(), ALL_STATES.len());
        for s in ALL_STATES {
            let onward = ALL_STATES.iter().any(|t| *t != s && s.can_become(*t));
            assert!(onward, "{s} is a dead end");
            assert_eq!(ClaimState::parse(s.name()), Some(s));
        }
        // Finalized claims are never "submitted" again without a draft.
        for s in ALL_STATES.into_iter().filter(|s| s.is_finalized()) {
            assert!(!s.can_become(ClaimState::Submitted));
        }
    }

    #[test]
    fn version_1_claims_are_upgraded() {
        let mut v = serde_json::to_value(claim()).unwrap();
        v["state"] = "built".into();
        v["history"] =
            serde_json::json!([{"at": at(0), "from": null, "to": "built", "source": "system"}]);
        v.as_object_mut().unwrap().remove("control_number");
        let up: Claim = serde_json::from_value(Claim::upgrade(1, v).unwrap()).unwrap();
        assert_eq!(up.state, ClaimState::Draft);
        assert_eq!(up.history[0].to, ClaimState::Draft);
        assert_eq!(up.control_number, "C1");
    }

    #[test]
    fn claims_due_for_a_status_check_are_read_through_the_index() {
        let db = Db::in_memory();
        let now = at(30);
        let base = claim();
        // 100,000 claims, 100 of them due: the rest are not out with the
        // payer, held, or due later.
        db.transact(|tx| {
            for i in 0..100_000u32 {
                let mut c = base.clone();
                c.id = format!("C{i:06}");
                match i % 1000 {
                    0 => {
                        c.state = ClaimState::Pending;
                        c.next_check_at = Some(now - chrono::Duration::hours(i64::from(i % 7)));
                    }
                    1 => {
                        c.state = ClaimState::Pending;
                        c.held = true;
                        c.next_check_at = Some(now);
                    }
                    2..=400 => {
                        c.state = ClaimState::Submitted;
                        c.next_check_at = Some(now + chrono::Duration::days(7));
                    }
                    _ => c.state = ClaimState::Paid,
                }
                tx.put(&c)?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
        let before = db.decode_count();
        let mut due = Vec::new();
        let mut page = due_for_status_check(&db, now, 64).unwrap();
        loop {
            due.extend(page.items.iter().map(|c| c.id.clone()));
            let Some(next) = page.next.clone() else { break };
            page = db
                .index_range::<Claim>(
                    BY_NEXT_CHECK,
                    Bound::Excluded(&next),
                    Bound::Included(&time_key(now)),
                    Some(64),
                    false,
                )
                .unwrap();
        }
        assert_eq!(due.len(), 100);
        let decoded = db.decode_count() - before;
        assert!(decoded <= 100 + 64, "decoded {decoded}");
        // Most overdue first.
        let first = db.get::<Claim>(&due[0]).unwrap().unwrap();
        let last = db.get::<Claim>(&due[99]).unwrap().unwrap();
        assert!(first.next_check_at <= last.next_check_at);
        let paid = in_state(&db, ClaimState::Paid, None, 10).unwrap();
        assert_eq!(paid.items.len(), 10);
        assert!(paid.items.iter().all(|c| c.state == ClaimState::Paid));
    }
}
