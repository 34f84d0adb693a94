//! The durable records of remittance posting: one [`Posting`] per ERA
//! claim (applied, waiting for review, held as unapplied money, or
//! reversed), one [`ProviderAdjustment`] per PLB adjustment, one
//! [`RemitRecord`] per remittance with its reconciliation, and one
//! [`Quarantined`] per remittance that could not be posted.
//!
//! A posting's key is its idempotency key (payer, TRN02, CLP01 and
//! occurrence, hashed), so the same 835 posted twice finds every key taken
//! and changes nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::ops::Bound;

use super::account::LedgerKind;
use super::remittance::{EraClaim, Reconciliation};
use crate::store::{Db, Record, StoreError};

/// Where a posting stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostingState {
    /// Its entries are on the ledger.
    Posted,
    /// Planned; waits for a biller's approval (the payer posts in review
    /// mode).
    AwaitingReview,
    /// The ERA claim matches no claim billd knows: the money is held.
    Unapplied,
    /// A later reversal (CLP02 = 22) undid it.
    Reversed,
}

impl PostingState {
    /// The snake-case name, as in JSON and index keys.
    pub fn name(self) -> &'static str {
        match self {
            PostingState::Posted => "posted",
            PostingState::AwaitingReview => "awaiting_review",
            PostingState::Unapplied => "unapplied",
            PostingState::Reversed => "reversed",
        }
    }
}

/// A ledger entry a posting makes (or will make once approved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedEntry {
    /// What it records.
    pub kind: LedgerKind,
    /// Signed cents.
    pub amount_cents: i64,
}

/// One ERA claim's posting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    /// The idempotency key ([`super::remittance::posting_key`]).
    pub key: String,
    /// A short id billers use (`R` and a number).
    pub id: String,
    /// `835:<payer>:<TRN02>:<CLP01>:<occurrence>`, on every entry it makes.
    pub source: String,
    /// The payer's identifier.
    pub payer: String,
    /// TRN02.
    pub trace: String,
    /// Occurrence of the CLP01 in its remittance (1-based).
    pub occurrence: u32,
    /// The claim as paid.
    pub era: EraClaim,
    /// The claim it applies to; `None` when unapplied.
    #[serde(default)]
    pub claim_id: Option<String>,
    /// The account (patient id) it posts to; `None` when unapplied.
    #[serde(default)]
    pub account_id: Option<String>,
    /// Where it stands.
    pub state: PostingState,
    /// The entries it makes.
    pub entries: Vec<PlannedEntry>,
    /// The ledger entry ids written, once posted.
    #[serde(default)]
    pub entry_ids: Vec<String>,
    /// For a reversal: the posting it undid.
    #[serde(default)]
    pub reverses: Option<String>,
    /// For a reversed posting: the reversal's key.
    #[serde(default)]
    pub reversed_by: Option<String>,
    /// The state the claim moves to when this posts.
    #[serde(default)]
    pub claim_state: Option<super::ClaimState>,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// When its entries reached the ledger.
    #[serde(default)]
    pub posted_at: Option<DateTime<Utc>>,
    /// Who approved it (review mode).
    #[serde(default)]
    pub approved_by: Option<String>,
}

/// The index of postings by state.
pub const BY_STATE: &str = "state";
/// The index of postings by claim id (`claim/<id>`) or, unapplied, by the
/// hashed control number (`cn/<hash>`).
pub const BY_CLAIM: &str = "claim";
/// The index of postings by their short id.
pub const BY_ID: &str = "id";

impl Record for Posting {
    const COLLECTION: &'static str = "postings";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &[BY_STATE, BY_CLAIM, BY_ID];
    fn key(&self) -> String {
        self.key.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        let claim = match &self.claim_id {
            Some(id) => format!("claim/{id}"),
            None => format!("cn/{}", super::claim::control_key(&self.era.control_number)),
        };
        vec![
            (BY_STATE, self.state.name().to_string()),
            (BY_CLAIM, claim),
            (BY_ID, self.id.clone()),
        ]
    }
}

fn exact<R: Record>(db: &Db, index: &str, value: &str) -> Result<Vec<R>, StoreError> {
    Ok(db
        .index_range::<R>(
            index,
            Bound::Included(value),
            Bound::Included(value),
            None,
            false,
        )?
        .items)
}

/// Postings in `state`, in key order.
pub fn in_state(db: &Db, state: PostingState) -> Result<Vec<Posting>, StoreError> {
    exact(db, BY_STATE, state.name())
}

/// The postings to claim `claim_id`.
pub fn for_claim(db: &Db, claim_id: &str) -> Result<Vec<Posting>, StoreError> {
    exact(db, BY_CLAIM, &format!("claim/{claim_id}"))
}

/// The unapplied postings with CLP01 `control_number`.
pub fn unapplied_for(db: &Db, control_number: &str) -> Result<Vec<Posting>, StoreError> {
    exact(
        db,
        BY_CLAIM,
        &format!("cn/{}", super::claim::control_key(control_number)),
    )
}

/// The posting with short id `id`.
pub fn by_id(db: &Db, id: &str) -> Result<Option<Posting>, StoreError> {
    Ok(exact(db, BY_ID, id)?.into_iter().next())
}

/// A PLB adjustment, posted at the provider level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderAdjustment {
    /// `<remit key>/<n>`: the remittance and the pair's place in it.
    pub key: String,
    /// `835:<payer>:<TRN02>:PLB:<n>`.
    pub source: String,
    /// The payer.
    pub payer: String,
    /// TRN02.
    pub trace: String,
    /// PLB01 provider identifier.
    pub provider_id: String,
    /// Adjustment reason code.
    pub reason: String,
    /// Reference, when sent.
    #[serde(default)]
    pub reference: Option<String>,
    /// Cents (positive reduces the payment).
    pub amount_cents: i64,
    /// When it was posted.
    pub posted_at: DateTime<Utc>,
}

impl Record for ProviderAdjustment {
    const COLLECTION: &'static str = "provider_adjustments";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.key.clone()
    }
}

/// The key of a remittance: payer and trace number.
pub fn remit_key(payer: &str, trace: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{payer}\u{1f}{trace}").as_bytes());
    hex::encode(&digest[..12])
}

/// One remittance posted (a payment and its trace number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemitRecord {
    /// [`remit_key`].
    pub key: String,
    /// The payer.
    pub payer: String,
    /// TRN02.
    pub trace: String,
    /// Where it was read from (a file name or `connector:<name>`).
    pub origin: String,
    /// The check: BPR02 = posted + unapplied − PLB.
    pub reconciliation: Reconciliation,
    /// How many claims it carried.
    pub claims: usize,
    /// When it was first posted.
    pub received_at: DateTime<Utc>,
}

impl Record for RemitRecord {
    const COLLECTION: &'static str = "remits";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.key.clone()
    }
}

/// A remittance that was not posted: it could not be read, did not
/// balance, or held amounts that are not whole cents. Kept whole, with
/// the toolkit's located findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    /// The sha256 of what was kept (the same bytes quarantine once).
    pub key: String,
    /// Where it came from (file name, transaction set control number).
    pub origin: String,
    /// The located findings, one line each.
    pub problems: Vec<String>,
    /// The transaction set (or file) as text, unposted.
    pub text: String,
    /// The task raised for it.
    pub task_id: String,
    /// When it was quarantined.
    pub at: DateTime<Utc>,
}

impl Record for Quarantined {
    const COLLECTION: &'static str = "quarantined_remits";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.key.clone()
    }
}

/// How a payer's remittances post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostingMode {
    /// Straight to the ledger.
    #[default]
    Automatic,
    /// Planned postings wait for a biller's approval (`billd remits review`).
    Review,
}

/// The posting mode of each payer: a default and the payers that differ.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostingModes {
    /// The mode of payers not listed.
    pub default: PostingMode,
    /// Per payer identifier (as the 835 names the payer: REF*2U, N1*PR
    /// N104 or TRN03).
    pub payers: std::collections::BTreeMap<String, PostingMode>,
}

impl PostingModes {
    /// The mode for `payer`.
    pub fn mode_for(&self, payer: &str) -> PostingMode {
        self.payers.get(payer).copied().unwrap_or(self.default)
    }
}

/// What the primary payer did with a claim, kept with the secondary claim
/// created from it (coordination of benefits): the secondary payer is
/// billed with the primary's payment and adjustments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CobBasis {
    /// The secondary claim's id.
    pub claim_id: String,
    /// The primary claim it follows.
    pub primary_claim_id: String,
    /// The primary payer (as its 835 names it).
    pub primary_payer: String,
    /// The primary's claim control number (CLP07), when sent.
    #[serde(default)]
    pub primary_payer_claim_number: Option<String>,
    /// What the primary paid, in cents.
    pub paid_cents: i64,
    /// What the primary left to the patient (group PR), in cents.
    pub patient_responsibility_cents: i64,
    /// The primary's adjustments, claim and line level.
    pub adjustments: Vec<super::remittance::EraAdjustment>,
    /// The primary's service lines as paid, in its remittance's order (an
    /// adjustment's `line` is an index here); empty when it adjudicated
    /// the claim as a whole (or for a record from before lines were kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<super::remittance::EraLine>,
    /// When the primary adjudicated the claim (its payment date), when its
    /// remittance said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjudicated_on: Option<chrono::NaiveDate>,
    /// The primary posting's source (`835:...`).
    pub source: String,
    /// When the primary's payment was posted.
    pub paid_at: DateTime<Utc>,
}

impl Record for CobBasis {
    const COLLECTION: &'static str = "cob_basis";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.claim_id.clone()
    }
}

/// The id of the claim to the payer of priority `priority` that follows
/// claim `primary_id`.
pub fn follow_on_claim_id(primary_id: &str, priority: super::PayerPriority) -> String {
    let n = match priority {
        super::PayerPriority::Primary => 1,
        super::PayerPriority::Secondary => 2,
        super::PayerPriority::Tertiary => 3,
    };
    format!("{primary_id}-cob{n}")
}
