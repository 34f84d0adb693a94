//! Patient-contact operations: holds on an account, payment plans, a
//! patient's opt-out of dunning email, and the outbox of stored messages.
//! The dunning job (and later collections) reads what these record through
//! [`crate::domain::hold::check`].

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::accounts::known_account;
use super::{App, AppError};
use crate::domain::account::{self, Account, OptOut};
use crate::domain::dunning;
use crate::domain::hold::{self, Hold, HoldKind, HoldRelease};
use crate::domain::plan::{self, Installment, Interval, PaymentPlan, PlanCancel, Standing};
use crate::notify::{OutboxMessage, OutboxStatus};

/// Places a hold of `kind` on `account`.
pub fn hold_add(
    app: &App,
    account: &str,
    kind: HoldKind,
    reason: &str,
    by: &str,
) -> Result<Hold, AppError> {
    known_account(app, account)?;
    let now = app.now();
    let hold = app.db().transact(|tx| {
        let id = format!("{account}/H{:06}", tx.next_counter("hold")?);
        let h = Hold {
            id,
            account_id: account.to_string(),
            kind,
            reason: reason.to_string(),
            placed_by: by.to_string(),
            placed_at: now,
            released: None,
        };
        tx.put(&h)?;
        Ok::<_, crate::store::StoreError>(h)
    })?;
    app.db().flush()?;
    Ok(hold)
}

/// Removes hold `id` (it stays in the history, released).
pub fn hold_remove(app: &App, id: &str, by: &str) -> Result<Hold, AppError> {
    let now = app.now();
    let h = app
        .db()
        .get::<Hold>(id)?
        .ok_or_else(|| AppError::NoSuchRecord(format!("no hold with id {id}")))?;
    if !h.is_open() {
        return Err(AppError::ClaimConflict(format!(
            "hold {id} is already removed"
        )));
    }
    let h = app
        .db()
        .modify::<Hold, _>(id, |h| {
            h.released.get_or_insert(HoldRelease {
                by: by.to_string(),
                at: now,
            });
        })?
        .ok_or_else(|| AppError::NoSuchRecord(format!("no hold with id {id}")))?;
    app.db().flush()?;
    Ok(h)
}

/// Holds of `account`, or of every account; open ones only unless `all`.
pub fn hold_list(app: &App, account: Option<&str>, all: bool) -> Result<Vec<Hold>, AppError> {
    let list = match account {
        Some(a) => hold::holds_of(app.db(), a)?,
        None => app.db().scan::<Hold>("")?,
    };
    Ok(list.into_iter().filter(|h| all || h.is_open()).collect())
}

/// The terms of a new plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPlan {
    /// The account.
    pub account: String,
    /// Total, in cents.
    pub total_cents: i64,
    /// Each installment, in cents.
    pub installment_cents: i64,
    /// The first installment's due date.
    pub start: NaiveDate,
    /// The interval (`monthly`, `2w`, `14d`, ...).
    pub interval: String,
    /// Grace days.
    pub grace_days: u32,
    /// Who sets it up.
    pub by: String,
}

/// A plan with its standing today and its schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    /// The plan.
    pub plan: PaymentPlan,
    /// Where it stands today.
    pub standing: Standing,
    /// Its installments.
    pub schedule: Vec<Installment>,
}

fn view(app: &App, p: PaymentPlan) -> Result<PlanView, AppError> {
    let entries = account::entries(app.db(), &p.account_id)?;
    let standing = plan::standing(
        &p,
        &dunning::payments_since(&entries, p.created_at),
        app.today(),
    );
    Ok(PlanView {
        schedule: plan::schedule(&p),
        standing,
        plan: p,
    })
}

/// Sets up a payment plan.
pub fn plan_create(app: &App, new: &NewPlan) -> Result<PlanView, AppError> {
    known_account(app, &new.account)?;
    plan::check_terms(new.total_cents, new.installment_cents)
        .map_err(|e| AppError::Invalid(e.to_string()))?;
    let interval =
        Interval::parse(&new.interval).map_err(|e| AppError::Invalid(format!("interval: {e}")))?;
    let now = app.now();
    let p = app.db().transact(|tx| {
        let p = PaymentPlan {
            id: format!("{}/PL{:06}", new.account, tx.next_counter("plan")?),
            account_id: new.account.clone(),
            total_cents: new.total_cents,
            installment_cents: new.installment_cents,
            start: new.start,
            interval,
            grace_days: new.grace_days,
            created_by: new.by.clone(),
            created_at: now,
            cancelled: None,
            broken_on: None,
        };
        tx.put(&p)?;
        Ok::<_, crate::store::StoreError>(p)
    })?;
    app.db().flush()?;
    view(app, p)
}

/// Plans of `account`, or of every account, with their standing.
pub fn plan_list(app: &App, account: Option<&str>) -> Result<Vec<PlanView>, AppError> {
    let list = match account {
        Some(a) => hold::plans_of(app.db(), a)?,
        None => app.db().scan::<PaymentPlan>("")?,
    };
    list.into_iter().map(|p| view(app, p)).collect()
}

/// Cancels plan `id`.
pub fn plan_cancel(app: &App, id: &str, by: &str) -> Result<PlanView, AppError> {
    let now = app.now();
    let p = app
        .db()
        .modify::<PaymentPlan, _>(id, |p| {
            p.cancelled.get_or_insert(PlanCancel {
                by: by.to_string(),
                at: now,
            });
        })?
        .ok_or_else(|| AppError::NoSuchRecord(format!("no payment plan with id {id}")))?;
    app.db().flush()?;
    view(app, p)
}

/// A patient's opt-out as it stands after the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOutView {
    /// The patient (account) id.
    pub id: String,
    /// The opt-out, if in force.
    pub opt_out: Option<OptOut>,
}

/// Records (or, with `undo`, withdraws) patient `id`'s opt-out of dunning
/// email.
pub fn opt_out(
    app: &App,
    id: &str,
    by: &str,
    via: Option<&str>,
    undo: bool,
) -> Result<OptOutView, AppError> {
    known_account(app, id)?;
    let now = app.now();
    let a = app.db().update::<Account, _>(id, |a| {
        let mut a = a.unwrap_or(Account {
            id: id.to_string(),
            opened_at: now,
            owing_since: None,
            opt_out: None,
        });
        a.opt_out = (!undo).then(|| OptOut {
            by: by.to_string(),
            at: now,
            via: via.map(str::to_string),
        });
        Some(a)
    })?;
    app.db().flush()?;
    Ok(OptOutView {
        id: id.to_string(),
        opt_out: a.and_then(|a| a.opt_out),
    })
}

/// One stored message as `billd outbox list` shows it: never its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxLine {
    /// Its key.
    pub key: String,
    /// Recipient count.
    pub recipients: usize,
    /// Its subject.
    pub subject: String,
    /// When it was queued.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Where it stands.
    pub status: OutboxStatus,
    /// Send attempts.
    pub attempts: u32,
}

/// The outbox, oldest key first, only `status` when given.
pub fn outbox_list(app: &App, status: Option<OutboxStatus>) -> Result<Vec<OutboxLine>, AppError> {
    let mut out = Vec::new();
    app.db().for_each("", |m: OutboxMessage| {
        if status.is_none_or(|s| s == m.status) {
            out.push(OutboxLine {
                key: m.key,
                recipients: m.to.len(),
                subject: m.subject,
                created_at: m.created_at,
                status: m.status,
                attempts: m.attempts,
            });
        }
        true
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;

    fn patient(app: &App, id: &str) {
        app.db()
            .put(&Account {
                id: id.into(),
                opened_at: app.now(),
                owing_since: None,
                opt_out: None,
            })
            .unwrap();
    }

    #[test]
    fn holds_add_list_remove_and_unknown_accounts_are_refused() {
        let app = testing::app("");
        patient(&app, "P1");
        let h = hold_add(&app, "P1", HoldKind::NoSurprisesAct, "PPDR filed", "dana").unwrap();
        assert!(h.id.starts_with("P1/H"));
        assert_eq!(hold_list(&app, Some("P1"), false).unwrap().len(), 1);
        let r = hold_remove(&app, &h.id, "lee").unwrap();
        assert!(!r.is_open());
        assert!(hold_list(&app, None, false).unwrap().is_empty());
        assert_eq!(hold_list(&app, None, true).unwrap().len(), 1);
        assert!(matches!(
            hold_remove(&app, &h.id, "lee"),
            Err(AppError::ClaimConflict(_))
        ));
        assert!(matches!(
            hold_add(&app, "P9", HoldKind::Other, "x", "dana"),
            Err(AppError::NoSuchAccount(_))
        ));
    }

    #[test]
    fn plans_create_list_cancel_and_opt_out_round_trip() {
        let app = testing::app("");
        patient(&app, "P1");
        let new = NewPlan {
            account: "P1".into(),
            total_cents: 10_000,
            installment_cents: 2_500,
            start: app.today() + chrono::Duration::days(10),
            interval: "monthly".into(),
            grace_days: 5,
            by: "dana".into(),
        };
        let v = plan_create(&app, &new).unwrap();
        assert_eq!(v.schedule.len(), 4);
        assert!(v.standing.holds());
        let bad = NewPlan {
            interval: "sometimes".into(),
            ..new.clone()
        };
        assert!(matches!(plan_create(&app, &bad), Err(AppError::Invalid(_))));
        assert_eq!(plan_list(&app, Some("P1")).unwrap().len(), 1);
        let c = plan_cancel(&app, &v.plan.id, "lee").unwrap();
        assert!(matches!(c.standing, Standing::Cancelled { .. }));
        let o = opt_out(&app, "P1", "dana", Some("phone"), false).unwrap();
        assert!(o.opt_out.is_some());
        assert!(
            opt_out(&app, "P1", "dana", None, true)
                .unwrap()
                .opt_out
                .is_none()
        );
    }
}
