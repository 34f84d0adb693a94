//! Remittance posting: 835s (from a file, an inbox or a payer connector)
//! onto the ledger, and the review queue of payers posted in review mode.
//! Used by the app layer (`billd remits`) and by the `remittance-posting`
//! job alike, so it sits below both and knows neither.
//!
//! Reading streams transaction set by transaction set (memory bounded by
//! the largest set, not the file). Each set is one remittance: it posts in
//! one store transaction, or not at all. A set the toolkit finds errors in
//! (it cannot be read, does not balance) or with amounts finer than a cent
//! is quarantined: kept unposted with a task carrying the located findings.
//!
//! Posting is idempotent per payer, TRN02, CLP01 and the CLP01's
//! occurrence in the remittance: every posting's key is taken in the same
//! transaction as its entries, so the same 835 posted twice (or a retry
//! after a crash) changes nothing. An ERA claim that matches no claim is
//! held as unapplied money with a task; a CLP02 = 22 reversal undoes the
//! posting it reverses entry by entry; PLB adjustments are recorded at the
//! provider level. When a primary pays and the patient has an active
//! secondary coverage, the secondary claim is created (a draft) with the
//! primary's payment and adjustments ([`CobBasis`]). Every remittance satisfies BPR02 = posted + unapplied −
//! PLB in cents before anything of it is written.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Read;

use crate::domain::account::{Account, LedgerEntry, LedgerKind};
use crate::domain::claim::{self, control_key};
use crate::domain::patient::coverages_of_patient;
use crate::domain::posting::{
    self, CobBasis, PlannedEntry, Posting, PostingMode, PostingModes, PostingState,
    ProviderAdjustment, Quarantined, RemitRecord, remit_key,
};
use crate::domain::remittance::{Era, EraClaim, Reconciliation, posting_key, posting_source};
use crate::domain::task::raise_in;
use crate::domain::{
    Claim, ClaimEventSource, Coverage, NewTask, PayerPriority, Priority, TaskNote,
};
use crate::store::{Db, StoreError, Tx};
use billd_x12::stream::{StreamError, Transactions};
use billd_x12::{Body, Delimiters, Segment};

/// Why posting failed (nothing of the remittance at fault was written).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No posting has that id.
    #[error("no posting with id {0}")]
    NoSuchPosting(String),
    /// The posting cannot do that in its state, or the remittance does not
    /// reconcile.
    #[error("{0}")]
    Conflict(String),
}

/// What one remittance's posting did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RemitOutcome {
    /// The payer's identifier.
    pub payer: String,
    /// TRN02.
    pub trace: String,
    /// BPR02 = posted + unapplied − PLB, in cents.
    pub reconciliation: Reconciliation,
    /// Postings made now, straight to the ledger.
    pub posted: Vec<String>,
    /// Postings made now that wait for review.
    pub awaiting_review: Vec<String>,
    /// ERA claims held now as unapplied money.
    pub unapplied: Vec<String>,
    /// Reversals posted now (their postings).
    pub reversals: Vec<String>,
    /// Denial tasks raised now.
    pub denial_tasks: Vec<String>,
    /// Secondary claims created now (COB), with the primary's payment.
    pub secondary_claims: Vec<String>,
    /// ERA claims posted before (nothing done).
    pub already_posted: usize,
    /// PLB adjustments recorded now.
    pub provider_adjustments: usize,
}

/// A remittance (or file) kept unposted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineOutcome {
    /// The quarantine record's key.
    pub key: String,
    /// Where it came from.
    pub origin: String,
    /// The located findings.
    pub problems: Vec<String>,
    /// The task raised for it.
    pub task_id: String,
}

/// What posting a file (or a connector's page) did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PostReport {
    /// Where it was read from.
    pub origin: String,
    /// Each remittance posted, in order.
    pub remittances: Vec<RemitOutcome>,
    /// What was quarantined.
    pub quarantined: Vec<QuarantineOutcome>,
}

/// The claim an ERA claim pays: the one claim with its CLP01, narrowed by
/// payer, billing NPI and whether it awaits the payer when several have it.
fn claim_for(db: &Db, era: &Era, c: &EraClaim) -> Result<Option<Claim>, StoreError> {
    let mut found = claim::with_control_number(db, &c.control_number)?;
    let narrow = |found: &mut Vec<Claim>, keep: &dyn Fn(&Claim) -> bool| {
        if found.len() > 1 && found.iter().any(keep) {
            found.retain(|k| keep(k));
        }
    };
    narrow(&mut found, &|k| k.payer_id == era.payer);
    if let Some(npi) = &era.payee_npi {
        narrow(&mut found, &|k| &k.billing_npi == npi);
    }
    narrow(&mut found, &|k| k.state.awaits_payer());
    Ok(if found.len() == 1 { found.pop() } else { None })
}

/// The posting a reversal undoes: the latest posted, unreversed payment of
/// the same payer and amount to the same claim (or CLP01).
fn original_of(
    db: &Db,
    era: &Era,
    c: &EraClaim,
    claim: Option<&Claim>,
) -> Result<Option<Posting>, StoreError> {
    let list = match claim {
        Some(k) => posting::for_claim(db, &k.id)?,
        None => return Ok(None),
    };
    Ok(list
        .into_iter()
        .filter(|p| {
            p.state == PostingState::Posted
                && p.payer == era.payer
                && !p.era.is_reversal()
                && p.reversed_by.is_none()
                && p.era.paid_cents == -c.paid_cents
                && match (&p.era.payer_claim_number, &c.payer_claim_number) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        })
        .max_by_key(|p| p.received_at))
}

/// The coverage that pays next after the payer of `claim`, when this ERA
/// claim is a primary's payment leaving something to the patient: the
/// patient's active secondary coverage (COB). `None` otherwise.
pub fn next_payer(
    db: &Db,
    now: DateTime<Utc>,
    claim: &Claim,
    c: &EraClaim,
) -> Result<Option<Coverage>, StoreError> {
    if c.is_reversal()
        || c.status_code != "1"
        || c.patient_share_cents() <= 0
        || c.outcome() == crate::domain::ClaimState::Denied
    {
        return Ok(None);
    }
    let coverages = coverages_of_patient(db, &claim.patient_id)?;
    let billed = coverages.iter().find(|v| v.id == claim.coverage_id);
    if billed.is_none_or(|v| v.priority != PayerPriority::Primary) {
        return Ok(None);
    }
    let today = now.date_naive();
    Ok(coverages.into_iter().find(|v| {
        v.priority == PayerPriority::Secondary
            && v.effective.is_none_or(|d| d <= today)
            && v.terminated.is_none_or(|d| d >= today)
    }))
}

/// Posts one remittance under `modes`, recording it as read from `origin`.
/// Committed, not yet flushed: call [`Db::flush`] before anything that
/// depends on it lasting (moving the file, advancing a cursor).
pub fn post_era(
    db: &Db,
    now: DateTime<Utc>,
    origin: &str,
    era: &Era,
    modes: &PostingModes,
) -> Result<RemitOutcome, PostError> {
    let occurrences = era.occurrences();
    // Match outside the transaction (index reads); the transaction reads
    // every record it changes again, so a concurrent change re-runs it.
    let mut plans = Vec::with_capacity(era.claims.len());
    for (c, occ) in era.claims.iter().zip(&occurrences) {
        let key = posting_key(&era.payer, &era.trace, &c.control_number, *occ);
        if db.get::<Posting>(&key)?.is_some() {
            plans.push((key, *occ, None));
            continue;
        }
        let claim = claim_for(db, era, c)?;
        let original = if c.is_reversal() {
            original_of(db, era, c, claim.as_ref())?
        } else {
            None
        };
        let next = match &claim {
            Some(k) => next_payer(db, now, k, c)?,
            None => None,
        };
        plans.push((key, *occ, Some((claim, original, next))));
    }
    let mode = modes.mode_for(&era.payer);
    let outcome = db.transact(|tx| {
        let mut out = RemitOutcome {
            payer: era.payer.clone(),
            trace: era.trace.clone(),
            ..RemitOutcome::default()
        };
        let mut applied = vec![false; era.claims.len()];
        let mut touched: Vec<String> = Vec::new();
        for (i, ((key, occ, fresh), c)) in plans.iter().zip(&era.claims).enumerate() {
            if let Some(before) = tx.get::<Posting>(key)? {
                out.already_posted += 1;
                applied[i] = before.state != PostingState::Unapplied;
                continue;
            }
            let (claim, original, next) = match fresh {
                Some((claim, original, next)) => (claim.clone(), original.clone(), next.clone()),
                None => {
                    return Err(PostError::Conflict(format!(
                        "posting {key} vanished while posting; post the file again"
                    )));
                }
            };
            let id = format!("R{:06}", tx.next_counter("posting")?);
            let mut p = Posting {
                key: key.clone(),
                id: id.clone(),
                source: posting_source(&era.payer, &era.trace, &c.control_number, *occ),
                payer: era.payer.clone(),
                trace: era.trace.clone(),
                occurrence: *occ,
                era: c.clone(),
                claim_id: claim.as_ref().map(|k| k.id.clone()),
                account_id: claim.as_ref().map(|k| k.patient_id.clone()),
                state: PostingState::Unapplied,
                entries: Vec::new(),
                entry_ids: Vec::new(),
                reverses: None,
                reversed_by: None,
                claim_state: None,
                received_at: now,
                posted_at: None,
                approved_by: None,
            };
            let original = match &original {
                Some(o) => tx
                    .get::<Posting>(&o.key)?
                    .filter(|o| o.state == PostingState::Posted && o.reversed_by.is_none()),
                None => None,
            };
            let unapplied = claim.is_none() || (c.is_reversal() && original.is_none());
            if unapplied {
                applied[i] = false;
                p.claim_id = None;
                p.account_id = None;
                hold_unapplied(tx, now, &p, claim.as_ref())?;
                tx.put(&p)?;
                out.unapplied.push(id);
                continue;
            }
            applied[i] = true;
            if let Some(o) = &original {
                p.reverses = Some(o.key.clone());
                p.entries = o
                    .entries
                    .iter()
                    .zip(&o.entry_ids)
                    .map(|(e, id)| PlannedEntry {
                        kind: LedgerKind::Reversal {
                            reverses: id.clone(),
                        },
                        amount_cents: -e.amount_cents,
                    })
                    .collect();
                p.claim_state = Some(crate::domain::ClaimState::Reversed);
            } else {
                p.entries = c
                    .ledger_lines()
                    .into_iter()
                    .map(|(kind, amount_cents)| PlannedEntry { kind, amount_cents })
                    .collect();
                p.claim_state = Some(c.outcome());
                // A claim that follows a primary's: the primary settled
                // all but what it left the patient, which moved to this
                // payer when the claim was made. Offset what the primary
                // settled, so this payment clears only that share.
                if let Some(k) = &claim
                    && let Some(basis) = tx.get::<CobBasis>(&k.id)?
                {
                    let settled = c.billed_cents - basis.patient_responsibility_cents;
                    if settled != 0 {
                        p.entries.push(PlannedEntry {
                            kind: LedgerKind::Adjustment {
                                group: COB_GROUP.into(),
                                reason: "prior-payer".into(),
                            },
                            amount_cents: settled,
                        });
                    }
                }
            }
            match mode {
                PostingMode::Automatic => {
                    touched.extend(p.account_id.clone());
                    let applied = apply(tx, &mut p, now, next.as_ref())?;
                    out.denial_tasks.extend(applied.denial_task);
                    out.secondary_claims.extend(applied.secondary_claim);
                    if p.reverses.is_some() {
                        out.reversals.push(id);
                    } else {
                        out.posted.push(id);
                    }
                }
                PostingMode::Review => {
                    p.state = PostingState::AwaitingReview;
                    out.awaiting_review.push(id);
                }
            }
            tx.put(&p)?;
        }
        for (j, a) in era.provider_adjustments.iter().enumerate() {
            let pa = ProviderAdjustment {
                key: format!("{}/{j}", remit_key(&era.payer, &era.trace)),
                source: format!("835:{}:{}:PLB:{}", era.payer, era.trace, j + 1),
                payer: era.payer.clone(),
                trace: era.trace.clone(),
                provider_id: a.provider_id.clone(),
                reason: a.reason.clone(),
                reference: a.reference.clone(),
                amount_cents: a.amount_cents,
                posted_at: now,
            };
            if tx.insert_new(&pa)? {
                out.provider_adjustments += 1;
            }
        }
        out.reconciliation = era.reconcile(&applied);
        if !out.reconciliation.balances() {
            return Err(PostError::Conflict(format!(
                "835 {} from payer {}: BPR02 {} is not posted {} + unapplied {} - PLB {}; nothing posted",
                era.trace,
                era.payer,
                out.reconciliation.payment_cents,
                out.reconciliation.posted_cents,
                out.reconciliation.unapplied_cents,
                out.reconciliation.provider_adjustment_cents
            )));
        }
        tx.insert_new(&RemitRecord {
            key: remit_key(&era.payer, &era.trace),
            payer: era.payer.clone(),
            trace: era.trace.clone(),
            origin: origin.to_string(),
            reconciliation: out.reconciliation,
            claims: era.claims.len(),
            received_at: now,
        })?;
        Ok::<_, PostError>((out, touched))
    })?;
    let (outcome, mut touched) = outcome;
    touched.sort();
    touched.dedup();
    for account in &touched {
        crate::domain::account::refresh_owing_since(db, account, now)?;
    }
    Ok(outcome)
}

/// Holds an ERA claim's money as unapplied, with a task naming the
/// posting (never the CLP01: it may tell who the patient is).
fn hold_unapplied(
    tx: &mut Tx<'_>,
    now: DateTime<Utc>,
    p: &Posting,
    claim: Option<&Claim>,
) -> Result<(), StoreError> {
    let why = match claim {
        None => "matches no claim billd knows",
        Some(_) => "reverses no posted payment",
    };
    raise_in(
        tx,
        now,
        &NewTask {
            kind: "unapplied-era".into(),
            subject: format!(
                "835 {} from payer {}: ERA claim {} {why}; {} held unapplied",
                p.trace,
                p.payer,
                p.id,
                money(p.era.paid_cents)
            ),
            priority: Priority::High,
            due: None,
            assignee: None,
            payer: None,
            dedupe_key: format!("unapplied:{}", p.key),
        },
    )?;
    Ok(())
}

/// Dollars and cents.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// The ledger key of a claim's charge: one per billing provider and CLM01,
/// so a secondary claim for the same services is not charged again.
fn charge_id(c: &Claim) -> String {
    format!(
        "{}/charge-{}",
        c.patient_id,
        control_key(&format!("{}|{}", c.billing_npi, c.control_number))
    )
}

/// What applying a posting did besides its entries.
#[derive(Debug, Default)]
struct Applied {
    /// The denial task raised, when it is a denial.
    denial_task: Option<String>,
    /// The secondary claim created, when the primary paid and a secondary
    /// coverage follows.
    secondary_claim: Option<String>,
}

/// Writes posting `p`'s entries to the ledger, charges its claim once,
/// moves the claim, raises a denial task when it is one, and creates the
/// claim to the `next` payer (COB) with this payment and adjustments.
fn apply(
    tx: &mut Tx<'_>,
    p: &mut Posting,
    now: DateTime<Utc>,
    next: Option<&Coverage>,
) -> Result<Applied, StoreError> {
    let mut applied = Applied::default();
    let (Some(account), Some(claim_id)) = (p.account_id.clone(), p.claim_id.clone()) else {
        return Ok(applied);
    };
    let Some(mut claim) = tx.get::<Claim>(&claim_id)? else {
        return Ok(applied);
    };
    if tx.get::<Account>(&account)?.is_none() {
        tx.put(&Account {
            id: account.clone(),
            opened_at: now,
            owing_since: None,
            opt_out: None,
        })?;
    }
    let charge = LedgerEntry {
        id: charge_id(&claim),
        account_id: account.clone(),
        claim_id: Some(claim.id.clone()),
        posted_at: now,
        kind: LedgerKind::Charge,
        amount_cents: claim.total_charge_cents,
        source: format!("claim:{}", claim.id),
    };
    tx.insert_new(&charge)?;
    for e in &p.entries {
        let id = format!("{account}/{:012}", tx.next_counter("ledger")?);
        tx.put(&LedgerEntry {
            id: id.clone(),
            account_id: account.clone(),
            claim_id: Some(claim_id.clone()),
            posted_at: now,
            kind: e.kind.clone(),
            amount_cents: e.amount_cents,
            source: p.source.clone(),
        })?;
        p.entry_ids.push(id);
    }
    if let Some(orig) = &p.reverses
        && let Some(mut o) = tx.get::<Posting>(orig)?
    {
        o.state = PostingState::Reversed;
        o.reversed_by = Some(p.key.clone());
        tx.put(&o)?;
    }
    if let Some(to) = p.claim_state {
        let note = format!("835 {} from payer {} (posting {})", p.trace, p.payer, p.id);
        if claim.state.can_become(to) {
            if claim.payer_claim_number.is_none() {
                claim.payer_claim_number = p.era.payer_claim_number.clone();
            }
            claim
                .transition(to, ClaimEventSource::Remit835, now, Some(note))
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            tx.put(&claim)?;
        } else {
            raise_in(
                tx,
                now,
                &NewTask {
                    kind: "remit-claim-state".into(),
                    subject: format!(
                        "claim {} is {}: {note} says {to}; money posted, state left as it is",
                        claim.id, claim.state
                    ),
                    priority: Priority::Normal,
                    due: None,
                    assignee: None,
                    payer: None,
                    dedupe_key: format!("remit-state:{}", p.key),
                },
            )?;
        }
    }
    p.state = PostingState::Posted;
    p.posted_at = Some(now);
    if let Some(cov) = next {
        applied.secondary_claim = follow_on(tx, &claim, cov, p, now)?;
    }
    let Some(carcs) = p.era.denial() else {
        return Ok(applied);
    };
    let rarcs = if p.era.remarks.is_empty() {
        "none".to_string()
    } else {
        p.era.remarks.join(", ")
    };
    let carcs = if carcs.is_empty() {
        format!("CLP02 {}", p.era.status_code)
    } else {
        carcs.join(", ")
    };
    let (task, _) = raise_in(
        tx,
        now,
        &NewTask {
            kind: "denial".into(),
            subject: format!(
                "claim {claim_id} denied by payer {} (835 {}, posting {}): CARC {carcs}; RARC {rarcs}",
                p.payer, p.trace, p.id
            ),
            priority: Priority::High,
            due: None,
            assignee: None,
            payer: Some(p.payer.clone()),
            dedupe_key: format!("denial:{}", p.key),
        },
    )?;
    applied.denial_task = Some(task.id);
    Ok(applied)
}

/// The ledger group of coordination-of-benefits transfers (not a CAS
/// group: billd's own bookkeeping between payers and the patient).
pub const COB_GROUP: &str = "COB";

/// Creates the claim to coverage `cov` that follows `primary` (a draft,
/// the same services, billed to the next payer) and its [`CobBasis`]: the
/// primary's payment and adjustments. What the primary left the patient
/// moves from the patient's balance to the insurance balance until the
/// next payer has paid. Once per primary claim and payer: returns the new
/// claim's id, `None` when it exists already.
fn follow_on(
    tx: &mut Tx<'_>,
    primary: &Claim,
    cov: &Coverage,
    p: &Posting,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let id = posting::follow_on_claim_id(&primary.id, cov.priority);
    if tx.contains::<Claim>(&id)? {
        return Ok(None);
    }
    let mut next = primary.clone();
    next.id = id.clone();
    next.coverage_id = cov.id.clone();
    next.payer_id = cov.payer_id.clone();
    next.state = crate::domain::ClaimState::Draft;
    next.history = vec![crate::domain::ClaimEvent {
        at: now,
        from: None,
        to: crate::domain::ClaimState::Draft,
        source: ClaimEventSource::Remit835,
        note: Some(format!(
            "follows claim {} after payer {} paid (posting {})",
            primary.id, p.payer, p.id
        )),
    }];
    next.payer_claim_number = None;
    next.next_check_at = None;
    next.revision = 0;
    next.held = false;
    next.problems = Vec::new();
    tx.put(&next)?;
    let share = p.era.patient_share_cents();
    let source = format!("cob:{id}");
    for (n, kind, amount_cents) in [
        (1, LedgerKind::PatientResponsibility, -share),
        (
            2,
            LedgerKind::Adjustment {
                group: COB_GROUP.into(),
                reason: "to-next-payer".into(),
            },
            share,
        ),
    ] {
        tx.insert_new(&LedgerEntry {
            id: format!("{}/cob-{}-{n}", primary.patient_id, control_key(&id)),
            account_id: primary.patient_id.clone(),
            claim_id: Some(id.clone()),
            posted_at: now,
            kind,
            amount_cents,
            source: source.clone(),
        })?;
    }
    tx.put(&CobBasis {
        claim_id: id.clone(),
        primary_claim_id: primary.id.clone(),
        primary_payer: p.payer.clone(),
        primary_payer_claim_number: p.era.payer_claim_number.clone(),
        paid_cents: p.era.paid_cents,
        patient_responsibility_cents: p.era.patient_share_cents(),
        adjustments: p.era.adjustments.clone(),
        lines: p.era.lines.clone(),
        adjudicated_on: p.era.paid_on,
        source: p.source.clone(),
        paid_at: now,
    })?;
    Ok(Some(id))
}

/// Keeps something that cannot be posted, with a task carrying its
/// findings as a note (the subject names only the origin and counts).
pub fn quarantine(
    db: &Db,
    now: DateTime<Utc>,
    origin: &str,
    problems: Vec<String>,
    text: String,
) -> Result<QuarantineOutcome, PostError> {
    use sha2::{Digest, Sha256};
    let key = hex::encode(&Sha256::digest(text.as_bytes())[..16]);
    let out = db.transact(|tx| {
        if let Some(q) = tx.get::<Quarantined>(&key)? {
            return Ok::<_, StoreError>(QuarantineOutcome {
                key: key.clone(),
                origin: q.origin,
                problems: q.problems,
                task_id: q.task_id,
            });
        }
        let (mut task, fresh) = raise_in(
            tx,
            now,
            &NewTask {
                kind: "quarantined-835".into(),
                subject: format!(
                    "835 quarantined unposted ({}): {origin}, {} problem(s)",
                    &key[..12],
                    problems.len()
                ),
                priority: Priority::Urgent,
                due: None,
                assignee: None,
                payer: None,
                dedupe_key: format!("quarantine:{key}"),
            },
        )?;
        if fresh {
            task.notes.push(TaskNote {
                at: now,
                author: "billd".into(),
                text: problems.join("\n"),
            });
            tx.put(&task)?;
        }
        tx.put(&Quarantined {
            key: key.clone(),
            origin: origin.to_string(),
            problems: problems.clone(),
            text: text.clone(),
            task_id: task.id.clone(),
            at: now,
        })?;
        Ok(QuarantineOutcome {
            key: key.clone(),
            origin: origin.to_string(),
            problems: problems.clone(),
            task_id: task.id,
        })
    })?;
    db.flush()?;
    Ok(out)
}

/// An 835 transaction set as X12 text (default delimiters), for keeping.
fn set_text(t: &billd_x12::Transaction) -> String {
    let d = Delimiters::default();
    let mut segs = vec![Segment::new("ST", &["835", &t.control_number])];
    segs.extend(t.body.to_segments());
    let n = (segs.len() + 1).to_string();
    segs.push(Segment::new("SE", &[&n, &t.control_number]));
    let mut out = String::new();
    for s in &segs {
        if billd_x12::writer::write_segment(&mut out, s, &d).is_err() {
            // A value holds a delimiter: keep the typed model instead.
            return serde_json::to_string(t).unwrap_or_default();
        }
        out.push('\n');
    }
    out
}

/// Posts every 835 transaction set read from `input`, one at a time.
/// `origin` names the source in records and messages. A set that cannot be
/// posted is quarantined and the rest still post; a source that cannot be
/// read to its end is quarantined as a whole (`whole` holds its bytes when
/// the caller has them, for keeping).
pub fn post(
    db: &Db,
    now: DateTime<Utc>,
    origin: &str,
    input: impl Read,
    modes: &PostingModes,
) -> Result<PostReport, PostError> {
    let mut report = PostReport {
        origin: origin.to_string(),
        ..PostReport::default()
    };
    let mut stream = Transactions::validate(input);
    let mut file_problems: Vec<String> = Vec::new();
    for item in &mut stream {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                file_problems.push(format!("reading failed: {e}"));
                break;
            }
        };
        let set = format!(
            "{origin} interchange {} ST {}",
            item.interchange, item.transaction.control_number
        );
        let mut problems: Vec<String> = item
            .issues
            .iter()
            .filter(|i| i.is_error())
            .map(ToString::to_string)
            .collect();
        let r = match &item.transaction.body {
            Body::Remittance(r) => Some(r),
            _ => {
                problems.push(format!(
                    "transaction set {} is not an 835",
                    item.transaction.body.set_id()
                ));
                None
            }
        };
        if problems.is_empty() && !item.imbalances.is_empty() {
            problems.extend(item.imbalances.iter().map(|i| {
                format!(
                    "{}: expected {}, found {}",
                    i.rule.describe(),
                    i.expected_text(),
                    i.found_text()
                )
            }));
        }
        let era = match r.map(crate::intake::remit835::era) {
            Some(Ok(era)) if problems.is_empty() => {
                problems.extend(era.money_problems());
                Some(era)
            }
            Some(Err(p)) => {
                problems.extend(p);
                None
            }
            _ => None,
        };
        match era {
            Some(era) if problems.is_empty() => {
                report
                    .remittances
                    .push(post_era(db, now, &set, &era, modes)?);
            }
            _ => {
                let text = set_text(&item.transaction);
                report
                    .quarantined
                    .push(quarantine(db, now, &set, problems, text)?);
            }
        }
    }
    match stream.finish() {
        Ok(end) => file_problems.extend(
            end.issues
                .iter()
                .filter(|i| i.is_error())
                .map(ToString::to_string),
        ),
        Err(StreamError::Read(e)) => {
            file_problems.extend(e.issues.iter().map(ToString::to_string));
        }
        Err(StreamError::Io(e)) => file_problems.push(format!("reading failed: {e}")),
    }
    if !file_problems.is_empty() {
        let text = format!(
            "{origin}: unreadable as a whole\n{}",
            file_problems.join("\n")
        );
        report
            .quarantined
            .push(quarantine(db, now, origin, file_problems, text)?);
    }
    db.flush()?;
    Ok(report)
}

/// Postings waiting for a biller's approval, oldest first.
pub fn review(db: &Db) -> Result<Vec<Posting>, PostError> {
    let mut list = posting::in_state(db, PostingState::AwaitingReview)?;
    list.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(list)
}

/// Approves posting `id` for `by`: its entries go to the ledger now.
pub fn approve(db: &Db, now: DateTime<Utc>, id: &str, by: &str) -> Result<Posting, PostError> {
    let found = posting::by_id(db, id)?.ok_or_else(|| PostError::NoSuchPosting(id.into()))?;
    let claim = match &found.claim_id {
        Some(c) => db.get::<Claim>(c)?,
        None => None,
    };
    let next = match &claim {
        Some(k) if found.reverses.is_none() => next_payer(db, now, k, &found.era)?,
        _ => None,
    };
    let p = db.transact(|tx| {
        let mut p = tx
            .get::<Posting>(&found.key)?
            .ok_or_else(|| PostError::NoSuchPosting(id.into()))?;
        if p.state != PostingState::AwaitingReview {
            return Err(PostError::Conflict(format!(
                "posting {id} is {}, not awaiting review",
                p.state.name()
            )));
        }
        if let Some(orig) = &p.reverses
            && tx
                .get::<Posting>(orig)?
                .is_none_or(|o| o.state != PostingState::Posted)
        {
            return Err(PostError::Conflict(format!(
                "posting {id} reverses a posting that is no longer posted"
            )));
        }
        apply(tx, &mut p, now, next.as_ref())?;
        p.approved_by = Some(by.to_string());
        tx.put(&p)?;
        Ok(p)
    })?;
    if let Some(account) = &p.account_id {
        crate::domain::account::refresh_owing_since(db, account, now)?;
    }
    db.flush()?;
    Ok(p)
}

#[cfg(test)]
pub(crate) mod tests;
