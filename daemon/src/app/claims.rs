//! Claim operations: list (by state through the index, by payer), show one
//! with its state history and sources, hold and release.
//!
//! A held claim stays where it is: the submission job skips it and the
//! claim-status job stops following it until it is released.

use serde::{Deserialize, Serialize};

use super::{App, AppError};
use crate::domain::claim::{self as domain, ALL_STATES};
use crate::domain::{Claim, ClaimState};

/// Which claims [`list`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimFilter {
    /// Only claims in this state.
    pub state: Option<ClaimState>,
    /// Only claims to this payer.
    pub payer: Option<String>,
}

/// One line of a claim listing: ids, state and money, no patient data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimSummary {
    /// Claim id.
    pub id: String,
    /// CLM01.
    pub control_number: String,
    /// Payer id.
    pub payer_id: String,
    /// Where it stands.
    pub state: ClaimState,
    /// Billed, in cents.
    pub total_charge_cents: i64,
    /// Held by a person.
    pub held: bool,
    /// Scrub problems on record.
    pub problems: usize,
    /// When the claim-status job next asks about it.
    pub next_check_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<&Claim> for ClaimSummary {
    fn from(c: &Claim) -> Self {
        ClaimSummary {
            id: c.id.clone(),
            control_number: c.control_number.clone(),
            payer_id: c.payer_id.clone(),
            state: c.state,
            total_charge_cents: c.total_charge_cents,
            held: c.held,
            problems: c.problems.len(),
            next_check_at: c.next_check_at,
        }
    }
}

/// Page size for reading one state through the index.
const PAGE: usize = 1_000;

/// The claims passing `filter`, by state then id.
pub fn list(app: &App, filter: &ClaimFilter) -> Result<Vec<ClaimSummary>, AppError> {
    let states: Vec<ClaimState> = match filter.state {
        Some(s) => vec![s],
        None => ALL_STATES.to_vec(),
    };
    let mut out = Vec::new();
    for state in states {
        let mut after: Option<String> = None;
        loop {
            let page = domain::in_state(app.db(), state, after.as_deref(), PAGE)?;
            out.extend(
                page.items
                    .iter()
                    .filter(|c| filter.payer.as_ref().is_none_or(|p| &c.payer_id == p))
                    .map(ClaimSummary::from),
            );
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    Ok(out)
}

/// The claim `id`, whole (its lines carry codes: the CLI shows them to the
/// biller who asked, nothing logs them).
pub fn show(app: &App, id: &str) -> Result<Claim, AppError> {
    app.db()
        .get::<Claim>(id)?
        .ok_or_else(|| AppError::NoSuchClaim(id.to_string()))
}

/// Holds or releases claim `id` for `by`; returns the claim as it is now.
pub fn set_held(app: &App, id: &str, held: bool, by: &str) -> Result<Claim, AppError> {
    let now = app.now();
    app.db().transact(|tx| {
        let mut c = tx
            .get::<Claim>(id)?
            .ok_or_else(|| AppError::NoSuchClaim(id.to_string()))?;
        if c.held == held {
            return Err(AppError::ClaimConflict(format!(
                "claim {id} is {} already",
                if held { "held" } else { "not held" }
            )));
        }
        if held && c.state.is_finalized() {
            return Err(AppError::ClaimConflict(format!(
                "claim {id} is {}: nothing to hold",
                c.state
            )));
        }
        c.held = held;
        c.history.push(crate::domain::ClaimEvent {
            at: now,
            from: Some(c.state),
            to: c.state,
            source: crate::domain::ClaimEventSource::Person(by.to_string()),
            note: Some(if held { "held" } else { "released" }.to_string()),
        });
        tx.put(&c)?;
        Ok(c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_filters_by_state_and_payer_and_hold_round_trips() {
        let app = crate::app::testing::app("");
        crate::app::import::tests::import_samples(&app);
        let all = list(&app, &ClaimFilter::default()).unwrap();
        assert_eq!(all.len(), 7);
        let drafts = list(
            &app,
            &ClaimFilter {
                state: Some(ClaimState::Draft),
                payer: None,
            },
        )
        .unwrap();
        assert_eq!(drafts.len(), 7);
        let none = list(
            &app,
            &ClaimFilter {
                state: Some(ClaimState::Submitted),
                payer: None,
            },
        )
        .unwrap();
        assert!(none.is_empty());
        let payer = all[0].payer_id.clone();
        let by_payer = list(
            &app,
            &ClaimFilter {
                state: None,
                payer: Some(payer.clone()),
            },
        )
        .unwrap();
        assert!(by_payer.iter().all(|c| c.payer_id == payer) && !by_payer.is_empty());
        let id = &all[0].id;
        let held = set_held(&app, id, true, "dana").unwrap();
        assert!(held.held);
        assert!(matches!(
            set_held(&app, id, true, "dana"),
            Err(AppError::ClaimConflict(_))
        ));
        let released = set_held(&app, id, false, "dana").unwrap();
        assert!(!released.held);
        let c = show(&app, id).unwrap();
        let notes: Vec<_> = c.history.iter().filter_map(|e| e.note.clone()).collect();
        assert!(notes.ends_with(&["held".to_string(), "released".to_string()]));
        assert!(matches!(show(&app, "nope"), Err(AppError::NoSuchClaim(_))));
    }
}
