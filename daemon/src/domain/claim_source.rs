//! A claim read (again) from where it comes from: an 837P file a practice
//! system wrote, or an encounter an EHR connector returned.
//!
//! Both sources give the whole claim each time, so the rules for writing it
//! are one: a new claim starts as a draft; a claim as it is on record
//! changes nothing; a claim that changed while still a draft, scrubbed or
//! ready goes back to draft with its history and a bumped revision; a
//! claim already sent to the payer is kept as it is (a correction goes out
//! as a replacement claim instead). Every written claim is scrubbed, and a
//! claim with problems gets one task.

use chrono::{DateTime, Utc};

use super::scrub::{self, ScrubRules};
use super::task::raise_in;
use super::{Claim, ClaimEvent, ClaimEventSource, ClaimState};
use crate::store::{StoreError, Tx};

/// What writing a claim from its source did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceWrite {
    /// New to the store.
    Created,
    /// On record and changed, not yet sent: back to draft.
    Updated,
    /// On record as it is.
    Unchanged,
    /// Already sent to the payer and different now: kept as it was.
    KeptSubmitted,
}

/// The outcome of [`write`], with whether the scrubber flagged the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// What happened to the record.
    pub write: SourceWrite,
    /// The scrubber found problems (a task is raised).
    pub flagged: bool,
}

/// Whether two versions of a claim bill the same thing (state, history and
/// bookkeeping aside).
pub fn same_content(a: &Claim, b: &Claim) -> bool {
    a.control_number == b.control_number
        && a.patient_id == b.patient_id
        && a.coverage_id == b.coverage_id
        && a.payer_id == b.payer_id
        && a.billing_npi == b.billing_npi
        && a.rendering_npi == b.rendering_npi
        && a.place_of_service == b.place_of_service
        && a.frequency_code == b.frequency_code
        && a.diagnoses == b.diagnoses
        && a.lines == b.lines
        && a.total_charge_cents == b.total_charge_cents
}

/// Writes `claim` as its source gives it now, inside the caller's
/// transaction; `origin` says where it came from, for its history ("from
/// batch.837", "from EHR encounter 123").
pub fn write(
    tx: &mut Tx<'_>,
    now: DateTime<Utc>,
    mut claim: Claim,
    origin: &str,
    rules: &ScrubRules,
) -> Result<Written, StoreError> {
    let write = match tx.get::<Claim>(&claim.id)? {
        Some(old) if same_content(&old, &claim) => {
            return Ok(Written {
                write: SourceWrite::Unchanged,
                flagged: false,
            });
        }
        Some(old)
            if !matches!(
                old.state,
                ClaimState::Draft | ClaimState::Scrubbed | ClaimState::Ready
            ) =>
        {
            return Ok(Written {
                write: SourceWrite::KeptSubmitted,
                flagged: false,
            });
        }
        Some(old) => {
            claim.state = ClaimState::Draft;
            claim.history = old.history;
            claim.revision = old.revision + 1;
            claim.held = old.held;
            claim.history.push(ClaimEvent {
                at: now,
                from: Some(old.state),
                to: ClaimState::Draft,
                source: ClaimEventSource::Import,
                note: Some(format!("re-imported {origin}")),
            });
            SourceWrite::Updated
        }
        None => {
            claim.state = ClaimState::Draft;
            claim.history.push(ClaimEvent {
                at: now,
                from: None,
                to: ClaimState::Draft,
                source: ClaimEventSource::Import,
                note: Some(format!("imported {origin}")),
            });
            SourceWrite::Created
        }
    };
    claim.problems = scrub::scrub(&claim, rules);
    let flagged = !claim.problems.is_empty();
    if flagged {
        raise_in(tx, now, &scrub::scrub_task(&claim))?;
    }
    tx.put(&claim)?;
    Ok(Written { write, flagged })
}
