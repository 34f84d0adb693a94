//! The `coordination` import (contract 0.4.0): how earlier payers
//! adjudicated the claims of the `submit-claims` call a payer connector is
//! serving, so it can write a secondary or tertiary claim's coordination of
//! benefits loops.
//!
//! The host knows no job and no store here: the caller hands the answers
//! in with the call ([`CallContext`]), the call's fresh store holds them
//! for that call only, and they are kept only for claim ids that are in
//! the call's own claims. Any other claim id, and any other call, gets an
//! empty list.

use super::bindings::coordination_api::{self, PriorPayer};
use super::bindings::payer_api::Claim;
use super::state::CallState;
use std::collections::BTreeMap;

/// Data billd hands one call besides its arguments, which the plugin reads
/// through host imports while that call runs (dropped with the call).
#[derive(Clone, Default, PartialEq)]
pub struct CallContext {
    /// Earlier payers' adjudication, by the contract claim's `claim-id`.
    prior_payers: BTreeMap<String, Vec<PriorPayer>>,
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names and member ids of subscribers: counts only.
        f.debug_struct("CallContext")
            .field("claims_with_prior_payers", &self.prior_payers.len())
            .finish()
    }
}

impl CallContext {
    /// A context with nothing in it (what every call but a coordinated
    /// `submit-claims` gets).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the earlier payers of the claim whose contract `claim-id` is
    /// `claim_id`, first payer first (replacing any given before). An empty
    /// list adds nothing.
    pub fn with_prior_payers(mut self, claim_id: &str, payers: Vec<PriorPayer>) -> Self {
        if payers.is_empty() {
            self.prior_payers.remove(claim_id);
        } else {
            self.prior_payers.insert(claim_id.to_string(), payers);
        }
        self
    }

    /// The earlier payers given for `claim_id` (empty when none).
    pub fn prior_payers(&self, claim_id: &str) -> &[PriorPayer] {
        self.prior_payers
            .get(claim_id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.prior_payers.is_empty()
    }

    /// The part of it about `claims`: what a call with those claims may
    /// read, and nothing about any other claim.
    pub(crate) fn only_for(mut self, claims: &[Claim]) -> Self {
        self.prior_payers
            .retain(|id, _| claims.iter().any(|c| c.claim_id == *id));
        self
    }
}

/// Answers from the call's own context; never blocks, never fails.
impl coordination_api::Host for CallState {
    fn prior_payers(&mut self, claim_id: String) -> wasmtime::Result<Vec<PriorPayer>> {
        let payers = self.context.prior_payers(&claim_id).to_vec();
        tracing::debug!(
            plugin = %self.shared.name,
            prior_payers = payers.len(),
            "plugin asked for a claim's prior payers"
        );
        Ok(payers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::bindings::coordination_api::{OtherSubscriber, PayerSequence};
    use crate::plugin::bindings::types::{Date, PersonName};

    fn payer(id: &str) -> PriorPayer {
        PriorPayer {
            sequence: PayerSequence::Primary,
            payer_id: id.into(),
            payer_name: "P".into(),
            subscriber: OtherSubscriber {
                name: PersonName {
                    last: "L".into(),
                    first: "F".into(),
                    middle: None,
                    suffix: None,
                },
                member_id: "M".into(),
                relationship: None,
                group_number: None,
            },
            payer_claim_id: None,
            paid: 1,
            adjustments: vec![],
            lines: vec![],
            patient_responsibility: 0,
            adjudicated: Date {
                year: 2026,
                month: 1,
                day: 2,
            },
        }
    }

    #[test]
    fn a_context_keeps_only_the_claims_of_its_call_and_shows_no_names() {
        let ctx = CallContext::new()
            .with_prior_payers("A", vec![payer("P1")])
            .with_prior_payers("B", vec![payer("P2")])
            .with_prior_payers("C", vec![]);
        assert_eq!(ctx.prior_payers("B")[0].payer_id, "P2");
        assert!(ctx.prior_payers("C").is_empty());
        let debug = format!("{ctx:?}");
        assert_eq!(debug, "CallContext { claims_with_prior_payers: 2 }");
        let claim = crate::plugin::tests::claim;
        let kept = ctx.only_for(&[claim("B"), claim("Z")]);
        assert!(kept.prior_payers("A").is_empty());
        assert_eq!(kept.prior_payers("B").len(), 1);
        assert!(!kept.is_empty());
    }
}
