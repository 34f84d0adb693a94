//! The record kinds billd keeps, one collection each.
//!
//! Keys are opaque ids chosen so that a prefix scan returns what a job needs
//! in order (for example every run of one job, oldest first). Keys never hold
//! patient data; values are sealed by [`super::Db`] before they reach disk.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::Record;

/// Zero-padded milliseconds since the epoch, so keys sort by time.
pub fn time_key(t: DateTime<Utc>) -> String {
    format!("{:015}", t.timestamp_millis().max(0))
}

/// A person's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonName {
    /// Family name.
    pub last: String,
    /// Given name.
    pub first: String,
    /// Middle name or initial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle: Option<String>,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Street lines.
    pub lines: Vec<String>,
    /// City.
    pub city: String,
    /// State or province code.
    pub state: String,
    /// Postal code.
    pub postal_code: String,
}

/// A patient of the practice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    /// Practice-assigned id (for example the EHR's MRN surrogate).
    pub id: String,
    /// Legal name.
    pub name: PersonName,
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// Administrative sex code as the payer expects it (M, F, U).
    pub sex: String,
    /// Email for statements, if the patient agreed to email.
    #[serde(default)]
    pub email: Option<String>,
    /// Postal address.
    #[serde(default)]
    pub address: Option<Address>,
}

impl Record for Patient {
    const COLLECTION: &'static str = "patients";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// Whose coverage this is relative to the subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    /// The patient is the subscriber.
    SelfInsured,
    /// Spouse of the subscriber.
    Spouse,
    /// Child of the subscriber.
    Child,
    /// Any other dependent.
    Other,
}

/// The order in which coverages pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayerPriority {
    /// Pays first.
    Primary,
    /// Pays after the primary.
    Secondary,
    /// Pays after the secondary.
    Tertiary,
}

/// The latest eligibility verdict for a coverage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EligibilityVerdict {
    /// When the payer answered.
    pub checked_at: DateTime<Utc>,
    /// Whether coverage was active for the date asked about.
    pub active: bool,
    /// Payer's plan description, if given.
    #[serde(default)]
    pub plan: Option<String>,
    /// Rejection or problem codes (AAA03 and similar), if any.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// A patient's insurance coverage with one payer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Coverage id.
    pub id: String,
    /// The patient covered.
    pub patient_id: String,
    /// Payer id as the clearinghouse knows it.
    pub payer_id: String,
    /// Payer's name.
    pub payer_name: String,
    /// Member (subscriber) id on the card.
    pub member_id: String,
    /// Group number, if any.
    #[serde(default)]
    pub group_number: Option<String>,
    /// Patient's relationship to the subscriber.
    pub relationship: Relationship,
    /// Subscriber's name when the patient is a dependent.
    #[serde(default)]
    pub subscriber_name: Option<PersonName>,
    /// Primary, secondary or tertiary.
    pub priority: PayerPriority,
    /// First day covered.
    #[serde(default)]
    pub effective: Option<NaiveDate>,
    /// Last day covered.
    #[serde(default)]
    pub terminated: Option<NaiveDate>,
    /// Latest eligibility verdict.
    #[serde(default)]
    pub verdict: Option<EligibilityVerdict>,
}

impl Record for Coverage {
    const COLLECTION: &'static str = "coverages";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// A scheduled visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    /// Appointment id.
    pub id: String,
    /// The patient.
    pub patient_id: String,
    /// Rendering provider's NPI.
    pub provider_npi: String,
    /// Start of the visit.
    pub start: DateTime<Utc>,
    /// Status from the EHR (booked, arrived, cancelled, ...).
    pub status: String,
}

impl Record for Appointment {
    const COLLECTION: &'static str = "appointments";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// Where a claim stands. One state machine carries a claim from built to closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// Built from charges, not yet scrubbed.
    Built,
    /// Passed the scrubber.
    Scrubbed,
    /// Sent to the clearinghouse or payer.
    Submitted,
    /// Accepted by a 999 or 277CA.
    Acknowledged,
    /// Rejected by a 999 or 277CA.
    Rejected,
    /// In adjudication.
    Pending,
    /// Paid in full.
    Paid,
    /// Paid in part.
    PartiallyPaid,
    /// Denied.
    Denied,
    /// Appeal filed.
    Appealed,
    /// Balance written off.
    WrittenOff,
    /// Payment reversed by the payer.
    Reversed,
    /// Nothing more to do.
    Closed,
}

/// What caused a claim transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimEventSource {
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

/// One transition in a claim's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// State before.
    pub from: Option<ClaimState>,
    /// State after.
    pub to: ClaimState,
    /// What caused it.
    pub source: ClaimEventSource,
    /// Codes or remarks (no patient data).
    #[serde(default)]
    pub note: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Practice claim id (CLM01).
    pub id: String,
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
}

impl Record for Claim {
    const COLLECTION: &'static str = "claims";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// What a ledger entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum LedgerKind {
    /// A charge for services.
    Charge,
    /// Money from an insurer.
    InsurancePayment,
    /// A CARC adjustment (group and reason code).
    Adjustment {
        /// CAS group code (CO, PR, OA, PI, CR).
        group: String,
        /// Claim adjustment reason code.
        reason: String,
    },
    /// Moved to the patient's responsibility.
    PatientResponsibility,
    /// Money from the patient.
    PatientPayment,
    /// Written off by the practice.
    WriteOff,
    /// Undoes an earlier entry.
    Reversal {
        /// The entry undone.
        reverses: String,
    },
}

/// One line of a patient account's ledger. Amounts are integer cents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Entry id; its prefix is the account so a scan returns one account.
    pub id: String,
    /// The account (patient id).
    pub account_id: String,
    /// The claim it relates to, if any.
    #[serde(default)]
    pub claim_id: Option<String>,
    /// When it was posted.
    pub posted_at: DateTime<Utc>,
    /// What it records.
    pub kind: LedgerKind,
    /// Signed amount in cents (positive increases the balance).
    pub amount_cents: i64,
    /// Where it came from (for example `835:<payer>:<TRN02>:<CLP01>`), the
    /// idempotency key of the posting.
    pub source: String,
}

impl Record for LedgerEntry {
    const COLLECTION: &'static str = "ledger";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// How urgent a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Whenever.
    Low,
    /// Normal work.
    Normal,
    /// Today.
    High,
    /// Now.
    Urgent,
}

impl Priority {
    /// The lower-case name billers see (`low`, `normal`, `high`, `urgent`).
    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

/// Whether a task still needs a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for a biller.
    Open,
    /// Done.
    Closed,
}

/// A note on a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskNote {
    /// When it was written.
    pub at: DateTime<Utc>,
    /// Who wrote it.
    pub author: String,
    /// The note.
    pub text: String,
}

/// Work billd hands to a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Task id (`T` followed by a sortable number).
    pub id: String,
    /// Kind, for routing to billers (for example `missed-run`, `denial`).
    pub kind: String,
    /// What it is about: record ids and codes, never patient details.
    pub subject: String,
    /// Urgency.
    pub priority: Priority,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it should be done.
    #[serde(default)]
    pub due: Option<DateTime<Utc>>,
    /// Biller name it is assigned to.
    #[serde(default)]
    pub assignee: Option<String>,
    /// Open or closed.
    pub status: TaskStatus,
    /// Notes, oldest first.
    #[serde(default)]
    pub notes: Vec<TaskNote>,
    /// Key that stops the same problem from making two tasks.
    pub dedupe_key: String,
}

impl Record for Task {
    const COLLECTION: &'static str = "tasks";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    /// Its scheduled time came.
    Schedule,
    /// A catch-up after downtime (misfire = run-once).
    CatchUp,
    /// Someone asked for it (`billd jobs run`).
    Manual,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Still running (or the process died; see `resumed_by`).
    Running,
    /// Every item done.
    Succeeded,
    /// Some items failed.
    PartiallyFailed,
    /// The run failed as a whole.
    Failed,
    /// Stopped by shutdown; remaining items resume on restart.
    Interrupted,
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRun {
    /// `<job>/<time_key(started_at)>`.
    pub id: String,
    /// Job name.
    pub job: String,
    /// The scheduled instant it serves, if any.
    #[serde(default)]
    pub occurrence: Option<DateTime<Utc>>,
    /// Why it started.
    pub trigger: RunTrigger,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End, once ended.
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Outcome.
    pub outcome: RunOutcome,
    /// Work items listed.
    pub items_total: u64,
    /// Items done.
    pub items_done: u64,
    /// Items failed.
    pub items_failed: u64,
    /// Errors (no patient data), capped.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Number of times a restart resumed this run.
    #[serde(default)]
    pub resumes: u32,
}

impl Record for JobRun {
    const COLLECTION: &'static str = "job_runs";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// What became of a scheduled occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Disposition {
    /// A run was started for it.
    Ran {
        /// The run.
        run_id: String,
    },
    /// Skipped by the misfire policy or because the job was still running.
    Skipped {
        /// Why.
        reason: String,
    },
    /// Should have fired and did not; a task was raised.
    Missed {
        /// The task raised.
        task_id: String,
    },
}

/// A claimed scheduled occurrence: (job, instant). Claiming it with an atomic
/// insert-if-absent is what stops two processes or a restart from running one
/// occurrence twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Occurrence {
    /// Job name.
    pub job: String,
    /// The scheduled instant.
    pub scheduled_for: DateTime<Utc>,
    /// When it was claimed.
    pub claimed_at: DateTime<Utc>,
    /// Who claimed it (`host:pid`).
    pub claimed_by: String,
    /// What became of it.
    pub disposition: Disposition,
}

impl Occurrence {
    /// The key for (job, instant).
    pub fn key_for(job: &str, scheduled_for: DateTime<Utc>) -> String {
        format!("{job}/{}", time_key(scheduled_for))
    }
}

impl Record for Occurrence {
    const COLLECTION: &'static str = "occurrences";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        Self::key_for(&self.job, self.scheduled_for)
    }
}

/// Progress of one work item of a run, so a crash resumes the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Not started.
    Pending,
    /// Started; its effect may or may not have happened.
    InFlight,
    /// Effect done.
    Done,
    /// Failed; the error is in the run.
    Failed,
}

/// One work item of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    /// The run.
    pub run_id: String,
    /// The job kind's key for the item; also its effect's idempotency key.
    pub item: String,
    /// Progress.
    pub state: ItemState,
    /// Attempts made.
    pub attempts: u32,
}

impl WorkItem {
    /// The key for (run, item).
    pub fn key_for(run_id: &str, item: &str) -> String {
        format!("{run_id}#{item}")
    }
}

impl Record for WorkItem {
    const COLLECTION: &'static str = "work_items";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        Self::key_for(&self.run_id, &self.item)
    }
}

/// Where an outgoing message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Written, not yet handed to the transport.
    Queued,
    /// Accepted by the transport.
    Sent,
    /// Failed permanently.
    Failed,
}

/// An outgoing email, rendered and stored before it is sent, keyed so a
/// retry sends the same message (same Message-ID) instead of a new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Idempotency key (also the Message-ID's local part).
    pub key: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Delivery status.
    pub status: OutboxStatus,
    /// Send attempts.
    pub attempts: u32,
}

impl Record for OutboxMessage {
    const COLLECTION: &'static str = "outbox";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.key.clone()
    }
}
