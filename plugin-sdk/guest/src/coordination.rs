//! Coordination of benefits (contract `billd:connector@0.4.0`, payer
//! connectors): when billd sends a claim to a secondary or tertiary payer,
//! it tells the connector how the payers before adjudicated it, so the
//! claim can carry what they paid and why the rest was not paid (an 837P's
//! loops 2320, 2330A, 2330B and 2430).
//!
//! billd answers during `submit-claims`, about the claims of that call;
//! for a primary claim, any other claim or in any other call the answer is
//! empty. Nothing needs declaring in `plugin.toml`.
//!
//! ```no_run
//! use billd_plugin_sdk::coordination::{self, PayerSequence};
//! # fn sketch(claim: &billd_plugin_sdk::payer::Claim) {
//! let before = coordination::prior_payers(claim);
//! // This claim's own payer: P, S or T (X12 SBR01).
//! let own = PayerSequence::after(&before);
//! for p in &before {
//!     // The earlier payer's paid amount and adjustments, claim level…
//!     let _ = (p.sequence.x12_code(), &p.payer_id, p.paid, &p.adjustments);
//!     // …and per service line, when it adjudicated by line.
//!     for line in &claim.service_lines {
//!         if let Some(l) = p.line(line.line_number) {
//!             let _ = (l.paid, l.paid_units, &l.adjustments);
//!         }
//!     }
//! }
//! # let _ = own;
//! # }
//! ```

use crate::payer::Claim;
use crate::payer_world::billd::connector0_4_0::coordination as wit;
use crate::types::Cents;

pub use wit::{LineAdjudication, OtherSubscriber, PayerSequence, PriorPayer};

/// The payers that adjudicated `claim` (of the current `submit-claims`
/// call) before the one it is sent to now, the first payer first. Empty
/// for a primary claim, and for a claim that is not in the current call.
pub fn prior_payers(claim: &Claim) -> Vec<PriorPayer> {
    prior_payers_of(&claim.claim_id)
}

/// [`prior_payers`] by the claim's `claim-id`.
pub fn prior_payers_of(claim_id: &str) -> Vec<PriorPayer> {
    wit::prior_payers(claim_id)
}

impl PayerSequence {
    /// The X12 payer responsibility sequence code (SBR01): `P`, `S`, `T`.
    pub fn x12_code(self) -> &'static str {
        match self {
            PayerSequence::Primary => "P",
            PayerSequence::Secondary => "S",
            PayerSequence::Tertiary => "T",
        }
    }

    /// The sequence of the payer a claim goes to after `before` (as
    /// [`prior_payers`] lists them): primary when none came before,
    /// secondary after a primary, tertiary after a secondary.
    pub fn after(before: &[PriorPayer]) -> PayerSequence {
        match before.iter().map(|p| p.sequence).max_by_key(|s| *s as u8) {
            None => PayerSequence::Primary,
            Some(PayerSequence::Primary) => PayerSequence::Secondary,
            Some(_) => PayerSequence::Tertiary,
        }
    }
}

impl PriorPayer {
    /// Its adjudication of the claim's service line `line_number`, if it
    /// adjudicated by line.
    pub fn line(&self, line_number: u16) -> Option<&LineAdjudication> {
        self.lines.iter().find(|l| l.line_number == line_number)
    }

    /// The sum of its adjustments' amounts, claim and line level: with
    /// `paid`, what it accounted for of the claim's charge.
    pub fn adjusted(&self) -> Cents {
        self.adjustments
            .iter()
            .chain(self.lines.iter().flat_map(|l| &l.adjustments))
            .map(|a| a.amount)
            .sum()
    }
}
