//! Posting the 835 fixtures, twice, with reversals, denials, unapplied
//! money, quarantine and review.

use super::*;
use crate::domain::account::{self, balances};
use crate::domain::posting::CobBasis;
use crate::domain::{ClaimState, Task};
use crate::domain::{Coverage, PayerPriority};
use crate::store::Db;
use chrono::TimeZone;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/x12/835")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every CLP in `bytes`: (CLP01, CLP03 in cents).
fn clps(bytes: &[u8]) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for item in Transactions::parse(bytes, billd_x12::Mode::Lenient) {
        if let Body::Remittance(r) = item.unwrap().transaction.body {
            for c in r.claims() {
                out.push((c.clp.claim_id.clone(), c.clp.total_charge.units() / 100));
            }
        }
    }
    out
}

/// A submitted claim `C-<clp01>` of patient `P-<n>` billing `charge`.
pub(crate) fn submitted_claim(db: &Db, clp01: &str, n: usize, charge: i64) -> Claim {
    let mut c = crate::domain::claim::tests::claim();
    c.id = format!("C-{clp01}");
    c.control_number = clp01.to_string();
    c.patient_id = format!("P-{n}");
    c.total_charge_cents = charge;
    c.state = ClaimState::Submitted;
    db.put(&c).unwrap();
    c
}

/// Claims for every distinct CLP01 of `bytes` except those in `skip`.
fn claims_for(app: &App, bytes: &[u8], skip: &[&str]) -> BTreeMap<String, Claim> {
    let mut out = BTreeMap::new();
    for (cn, charge) in clps(bytes) {
        if skip.contains(&cn.as_str()) || out.contains_key(&cn) {
            continue;
        }
        let n = out.len();
        out.insert(cn.clone(), submitted_claim(app.db(), &cn, n, charge));
    }
    out
}

/// A store and the clock posting runs at.
pub(crate) struct App {
    db: Db,
    now: DateTime<Utc>,
}

impl App {
    fn db(&self) -> &Db {
        &self.db
    }
}

fn new_app() -> App {
    App {
        db: Db::in_memory(),
        now: Utc.with_ymd_and_hms(2026, 3, 2, 14, 0, 0).unwrap(),
    }
}

fn ledger(app: &App) -> Vec<LedgerEntry> {
    app.db().scan::<LedgerEntry>("").unwrap()
}

fn post_bytes(app: &App, name: &str, bytes: &[u8]) -> PostReport {
    post(&app.db, app.now, name, bytes, &PostingModes::default()).unwrap()
}

/// Files that validate clean (EXPECTED.tsv): they post whole.
const CLEAN: &[&str] = &[
    "lfh__cob-contractural-adjustment.835",
    "lfh__managed-care.835",
    "lfh__medicare-part-a.835",
    "lfh__secondary-payment.835",
    "tasty__multi-line-not-delimited.edi",
    "tasty__profee-multiple.edi",
    "tasty__profee-one-line.edi",
    "tasty__profee.edi",
];

#[test]
fn every_clean_fixture_posts_to_the_cent_and_reconciles() {
    for name in CLEAN {
        let app = new_app();
        let bytes = fixture(name);
        let claims = claims_for(&app, &bytes, &[]);
        let report = post_bytes(&app, name, &bytes);
        assert!(
            report.quarantined.is_empty(),
            "{name}: {:?}",
            report.quarantined
        );
        assert!(!report.remittances.is_empty(), "{name}");
        for r in &report.remittances {
            assert!(
                r.reconciliation.balances(),
                "{name}: {:?}",
                r.reconciliation
            );
            assert_eq!(r.reconciliation.unapplied_cents, 0, "{name}");
        }
        let entries = ledger(&app);
        let postings: Vec<Posting> = app.db().scan("").unwrap();
        for p in &postings {
            assert_eq!(p.state, PostingState::Posted, "{name}");
            // Each posting's entries are exactly its ERA claim: charge less
            // the payer's payment and adjustments, plus the patient's share.
            let mine: Vec<&LedgerEntry> = entries.iter().filter(|e| e.source == p.source).collect();
            assert_eq!(mine.len(), p.entries.len(), "{name}");
            let paid: i64 = mine
                .iter()
                .filter(|e| e.kind == LedgerKind::InsurancePayment)
                .map(|e| e.amount_cents)
                .sum();
            assert_eq!(paid, -p.era.paid_cents, "{name}");
            let sum: i64 = mine.iter().map(|e| e.amount_cents).sum();
            assert_eq!(
                sum,
                p.era.patient_share_cents() - p.era.billed_cents,
                "{name}"
            );
        }
        // Per claim: what the claim still owes is its charge less every
        // ERA claim's billed amount, plus the patient's share.
        for (cn, c) in &claims {
            let mine: Vec<LedgerEntry> = entries
                .iter()
                .filter(|e| e.claim_id.as_deref() == Some(c.id.as_str()))
                .cloned()
                .collect();
            let paid_for: Vec<&Posting> = postings
                .iter()
                .filter(|p| p.claim_id.as_deref() == Some(c.id.as_str()))
                .collect();
            let share: i64 = paid_for.iter().map(|p| p.era.patient_share_cents()).sum();
            let billed: i64 = paid_for.iter().map(|p| p.era.billed_cents).sum();
            let b = balances(&mine);
            assert_eq!(b.patient_cents, share, "{name} {cn}");
            assert_eq!(
                b.insurance_cents,
                c.total_charge_cents - billed,
                "{name} {cn}"
            );
            if paid_for.len() == 1 {
                assert_eq!(b.insurance_cents, 0, "{name} {cn}");
            }
        }
        let remits: Vec<RemitRecord> = app.db().scan("").unwrap();
        assert!(remits.iter().all(|r| r.reconciliation.balances()));
    }
}

#[test]
fn the_managed_care_835_posts_what_a_biller_expects() {
    let app = new_app();
    let bytes = fixture("lfh__managed-care.835");
    claims_for(&app, &bytes, &[]);
    let r = post_bytes(&app, "mc.835", &bytes);
    assert_eq!(r.remittances[0].posted.len(), 2);
    let es = account::entries(app.db(), "P-0").unwrap();
    let b = balances(&es);
    // Billed 800.00, paid 450.00, CO-A2 50.00, PR-1 300.00 to the patient.
    assert_eq!((b.insurance_cents, b.patient_cents), (0, 30_000));
    let kinds: Vec<(&LedgerKind, i64)> = es.iter().map(|e| (&e.kind, e.amount_cents)).collect();
    assert!(kinds.contains(&(&LedgerKind::Charge, 80_000)));
    assert!(kinds.contains(&(&LedgerKind::InsurancePayment, -45_000)));
    assert!(kinds.contains(&(
        &LedgerKind::Adjustment {
            group: "CO".into(),
            reason: "A2".into()
        },
        -5_000
    )));
    assert!(kinds.contains(&(&LedgerKind::PatientResponsibility, 30_000)));
    assert!(
        es.iter()
            .filter(|e| e.kind != LedgerKind::Charge)
            .all(|e| e.source == "835:1935665544:7170066655:5554555444:1")
    );
    // The account ages from the day the patient's share arose.
    let acct = app.db().get::<account::Account>("P-0").unwrap().unwrap();
    assert_eq!(acct.owing_since, Some(app.now.date_naive()));
    let c = app.db().get::<Claim>("C-5554555444").unwrap().unwrap();
    assert_eq!(c.state, ClaimState::Paid);
    assert_eq!(c.payer_claim_number.as_deref(), Some("94060555410000"));
    assert_eq!(c.history.last().unwrap().source, ClaimEventSource::Remit835);
}

/// Everything posting writes.
type Snapshot = (
    Vec<LedgerEntry>,
    Vec<Posting>,
    Vec<Task>,
    Vec<Claim>,
    Vec<ProviderAdjustment>,
);

fn snapshot(app: &App) -> Snapshot {
    (
        ledger(app),
        app.db().scan("").unwrap(),
        app.db().scan("").unwrap(),
        app.db().scan("").unwrap(),
        app.db().scan("").unwrap(),
    )
}

#[test]
fn posting_the_same_835_twice_changes_nothing() {
    for name in [
        "lfh__managed-care.835",
        "lfh__medicare-part-a.835",
        "tasty__profee.edi",
    ] {
        let app = new_app();
        let bytes = fixture(name);
        // One claim unknown, so unapplied money and its task are kept too.
        let first = clps(&bytes)[0].0.clone();
        claims_for(&app, &bytes, &[&first]);
        post_bytes(&app, name, &bytes);
        let before = snapshot(&app);
        assert!(!before.0.is_empty() || name.starts_with("tasty"), "{name}");
        let again = post_bytes(&app, name, &bytes);
        assert_eq!(snapshot(&app), before, "{name}");
        let r = &again.remittances[0];
        assert!(r.posted.is_empty() && r.unapplied.is_empty() && r.denial_tasks.is_empty());
        assert_eq!(r.already_posted, clps(&bytes).len());
        assert_eq!(r.provider_adjustments, 0);
        assert!(r.reconciliation.balances(), "{name}");
    }
    // 156 copies of one 835 in one file post once.
    let app = new_app();
    let bytes = fixture("tasty__profee-multiple.edi");
    claims_for(&app, &bytes, &[]);
    let r = post_bytes(&app, "multiple", &bytes);
    assert_eq!(r.remittances.len(), 156);
    assert_eq!(r.remittances[0].posted.len(), 3);
    assert!(
        r.remittances[1..]
            .iter()
            .all(|r| r.posted.is_empty() && r.already_posted == 3)
    );
}

#[test]
fn unmatched_era_claims_are_held_unapplied_and_every_fixture_reconciles() {
    let every = [
        CLEAN,
        &[
            "lfh__tertiary-payment.835",
            "oop__835_WithMultipleInterchanges.txt",
            "oop__ExampleFromNth.txt",
        ],
    ]
    .concat();
    for name in every {
        let app = new_app();
        let bytes = fixture(name);
        // No claims at all: every ERA claim of a postable 835 is unapplied.
        let report = post_bytes(&app, name, &bytes);
        for r in &report.remittances {
            let rc = r.reconciliation;
            assert_eq!(rc.posted_cents, 0, "{name}");
            assert!(rc.balances(), "{name}: {rc:?}");
            assert_eq!(
                rc.payment_cents,
                rc.posted_cents + rc.unapplied_cents - rc.provider_adjustment_cents
            );
        }
        assert!(
            ledger(&app).is_empty(),
            "{name}: unapplied money is not on a ledger"
        );
        let held = posting::in_state(app.db(), PostingState::Unapplied).unwrap();
        let tasks = crate::domain::task::open(app.db()).unwrap();
        let unapplied_tasks = tasks.iter().filter(|t| t.kind == "unapplied-era").count();
        assert_eq!(unapplied_tasks, held.len(), "{name}");
        for t in &tasks {
            for (cn, _) in clps(&bytes) {
                assert!(!t.subject.contains(&cn), "{name}: CLP01 in a task title");
            }
        }
    }
    // Half known: the other claim's money is held, the rest posted.
    let app = new_app();
    let bytes = fixture("lfh__managed-care.835");
    claims_for(&app, &bytes, &["8765432112"]);
    let r = &post_bytes(&app, "mc", &bytes).remittances[0];
    assert_eq!(r.posted.len(), 1);
    assert_eq!(r.unapplied.len(), 1);
    assert_eq!(
        (
            r.reconciliation.posted_cents,
            r.reconciliation.unapplied_cents
        ),
        (45_000, 49_500)
    );
    let held = posting::by_id(app.db(), &r.unapplied[0]).unwrap().unwrap();
    assert_eq!(held.state, PostingState::Unapplied);
    assert_eq!(held.era.paid_cents, 49_500);
    assert_eq!(
        posting::unapplied_for(app.db(), "8765432112")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn plb_adjustments_post_at_the_provider_level() {
    let app = new_app();
    let bytes = fixture("lfh__medicare-part-a.835");
    claims_for(&app, &bytes, &[]);
    let r = post_bytes(&app, "medicare", &bytes);
    assert_eq!(r.remittances[0].provider_adjustments, 1);
    let plb: Vec<ProviderAdjustment> = app.db().scan("").unwrap();
    assert_eq!(plb.len(), 1);
    assert_eq!(
        (
            plb[0].provider_id.as_str(),
            plb[0].reason.as_str(),
            plb[0].amount_cents
        ),
        ("6543210903", "CV", -127)
    );
    assert_eq!(plb[0].reference.as_deref(), Some("CP"));
    // PLB is not patient money: no ledger entry carries it.
    assert!(ledger(&app).iter().all(|e| !e.source.contains("PLB")));
    let rc = r.remittances[0].reconciliation;
    assert_eq!(
        (
            rc.payment_cents,
            rc.posted_cents,
            rc.provider_adjustment_cents
        ),
        (15_000_000, 14_999_873, -127)
    );
}

/// An 835 from payer `1935665544` (TRN03) with BPR `bpr`, TRN02 `trace`
/// and `claims` (CLP loops).
fn remit_835(bpr: &str, trace: &str, claims: &str) -> Vec<u8> {
    remit_835_from("1935665544", bpr, trace, claims)
}

/// The same from payer `payer`.
fn remit_835_from(payer: &str, bpr: &str, trace: &str, claims: &str) -> Vec<u8> {
    let body = format!(
        "{bpr}~TRN*1*{trace}*{payer}~N1*PR*RUSHMORE LIFE~N1*PE*ACME MEDICAL CENTER*XX*5544667733~LX*1~{claims}"
    );
    let n = body.matches('~').count() + 2;
    format!(
        "ISA*00*          *00*          *ZZ*A              *ZZ*B              *240101*1200*^*00501*000000001*0*P*:~GS*HP*A*B*20240101*1200*1*X*005010X221A1~ST*835*0001~{body}SE*{n}*0001~GE*1*1~IEA*1*000000001~"
    )
    .into_bytes()
}

#[test]
fn a_reversal_undoes_the_original_and_restores_balances() {
    let app = new_app();
    let bytes = fixture("lfh__managed-care.835");
    claims_for(&app, &bytes, &[]);
    let before = balances(&account::entries(app.db(), "P-0").unwrap());
    post_bytes(&app, "mc", &bytes);
    let after = balances(&account::entries(app.db(), "P-0").unwrap());
    assert_eq!((after.insurance_cents, after.patient_cents), (0, 30_000));
    assert_eq!(before.total_cents(), 0);
    // The payer takes the payment back, then pays it again corrected.
    let reversal = remit_835(
        "BPR*I*50*C*ACH************20240201",
        "7170099999",
        "CLP*5554555444*22*-800*-450*-300*12*94060555410000~CAS*CO*A2*-50~CAS*PR*1*-300~\
         CLP*5554555444*1*800*500*300*12*94060555410001~CAS*PR*1*300~",
    );
    let r = post_bytes(&app, "reversal", &reversal);
    assert!(r.quarantined.is_empty(), "{:?}", r.quarantined);
    let out = &r.remittances[0];
    assert_eq!(out.reversals.len(), 1);
    assert_eq!(out.posted.len(), 1);
    assert!(out.reconciliation.balances());
    let originals = posting::for_claim(app.db(), "C-5554555444").unwrap();
    let original = originals.iter().find(|p| p.trace == "7170066655").unwrap();
    assert_eq!(original.state, PostingState::Reversed);
    let rev = posting::by_id(app.db(), &out.reversals[0])
        .unwrap()
        .unwrap();
    assert_eq!(original.reversed_by.as_deref(), Some(rev.key.as_str()));
    // The reversal's entries undo the original's one for one.
    let es = account::entries(app.db(), "P-0").unwrap();
    for id in &original.entry_ids {
        let orig = es.iter().find(|e| &e.id == id).unwrap();
        let undo = es
            .iter()
            .find(|e| {
                e.kind
                    == LedgerKind::Reversal {
                        reverses: id.clone(),
                    }
            })
            .unwrap();
        assert_eq!(undo.amount_cents, -orig.amount_cents);
        assert!(
            undo.source
                .starts_with("835:1935665544:7170099999:5554555444:1")
        );
    }
    // Reversal alone restores the charge-only balance; the corrected
    // payment then posts 500.00 with 300.00 to the patient.
    let reversed_only: Vec<LedgerEntry> = es
        .iter()
        .filter(|e| !e.source.ends_with(":5554555444:2"))
        .cloned()
        .collect();
    let restored = balances(&reversed_only);
    assert_eq!(
        (restored.insurance_cents, restored.patient_cents),
        (80_000, 0)
    );
    let now = balances(&es);
    assert_eq!((now.insurance_cents, now.patient_cents), (0, 30_000));
    let c = app.db().get::<Claim>("C-5554555444").unwrap().unwrap();
    let states: Vec<ClaimState> = c.history.iter().map(|e| e.to).collect();
    assert_eq!(
        states,
        [ClaimState::Paid, ClaimState::Reversed, ClaimState::Paid]
    );
    // Posting the reversal again changes nothing.
    let before = snapshot(&app);
    post_bytes(&app, "reversal", &reversal);
    assert_eq!(snapshot(&app), before);
}

#[test]
fn an_unbalanced_or_unreadable_835_is_quarantined_unposted_with_a_task() {
    let app = new_app();
    let good = fixture("lfh__managed-care.835");
    claims_for(&app, &good, &[]);
    // An altered copy: BPR02 one cent off.
    let text = String::from_utf8(good).unwrap();
    assert!(text.contains("BPR*I*945.00*"));
    let bad = text.replacen("BPR*I*945.00*", "BPR*I*945.01*", 1);
    let r = post_bytes(&app, "altered.835", bad.as_bytes());
    assert!(r.remittances.is_empty());
    assert_eq!(r.quarantined.len(), 1);
    let q = &r.quarantined[0];
    assert!(
        q.problems.iter().any(|p| p.contains("BPR")),
        "{:?}",
        q.problems
    );
    assert!(ledger(&app).is_empty());
    assert!(app.db().scan::<Posting>("").unwrap().is_empty());
    let kept = app.db().get::<Quarantined>(&q.key).unwrap().unwrap();
    assert!(kept.text.contains("BPR*I*945.01*C*ACH"));
    assert!(
        kept.text
            .contains("CLP*5554555444*1*800.00*450.00*300.00*12*94060555410000")
    );
    let task = app.db().get::<Task>(&q.task_id).unwrap().unwrap();
    assert_eq!(task.kind, "quarantined-835");
    assert_eq!(task.priority, Priority::Urgent);
    assert!(!task.subject.contains("5554555444"));
    // The task carries the toolkit's located errors.
    let note = &task.notes[0].text;
    assert!(note.contains("interchange 1, segment"), "{note}");
    // Again: one quarantine, one task.
    let again = post_bytes(&app, "altered.835", bad.as_bytes());
    assert_eq!(again.quarantined[0].task_id, q.task_id);
    assert_eq!(app.db().scan::<Quarantined>("").unwrap().len(), 1);
    // A line that does not balance (the fixture's own SVC01 slip).
    let tertiary = post_bytes(&app, "t", &fixture("lfh__tertiary-payment.835"));
    assert_eq!(tertiary.quarantined.len(), 1);
    assert!(tertiary.remittances.is_empty());
    // Not X12 at all.
    let junk = post_bytes(&app, "junk.835", b"this is not an 835");
    assert_eq!(junk.quarantined.len(), 1);
    assert!(
        junk.quarantined[0].problems[0].contains("ISA"),
        "{:?}",
        junk.quarantined
    );
    // A fraction of a cent cannot post to the cent.
    let fine = remit_835(
        "BPR*I*10.005*C*ACH************20240201",
        "T-FRACTION",
        "CLP*5554555444*1*10.005*10.005**12*X~",
    );
    let r = post_bytes(&app, "fraction", &fine);
    assert_eq!(r.quarantined.len(), 1, "{r:?}");
    assert!(
        r.quarantined[0]
            .problems
            .iter()
            .any(|p| p.contains("finer than a cent"))
    );
    assert!(ledger(&app).is_empty());
}

#[test]
fn denials_become_tasks_with_carc_and_rarc_codes() {
    let app = new_app();
    submitted_claim(app.db(), "D1", 0, 12_000);
    submitted_claim(app.db(), "D2", 1, 5_000);
    let denial = remit_835(
        "BPR*I*0*C*NON************20240201",
        "DENY1",
        "CLP*D1*4*120*0**12*PCN1~CAS*CO*50*120~MOA***N115~\
         CLP*D2*1*50*0**12*PCN2~SVC*HC:99213*50*0~CAS*CO*29*50~LQ*HE*N211~",
    );
    let r = post_bytes(&app, "deny", &denial);
    assert!(r.quarantined.is_empty(), "{:?}", r.quarantined);
    assert_eq!(r.remittances[0].denial_tasks.len(), 2);
    let tasks: Vec<Task> = r.remittances[0]
        .denial_tasks
        .iter()
        .map(|id| app.db().get::<Task>(id).unwrap().unwrap())
        .collect();
    assert_eq!(tasks[0].kind, "denial");
    assert!(
        tasks[0].subject.contains("CARC CO-50; RARC N115"),
        "{}",
        tasks[0].subject
    );
    assert!(
        tasks[1].subject.contains("CARC CO-29; RARC N211"),
        "{}",
        tasks[1].subject
    );
    for id in ["C-D1", "C-D2"] {
        let c = app.db().get::<Claim>(id).unwrap().unwrap();
        assert_eq!(c.state, ClaimState::Denied, "{id}");
    }
    // A denial leaves the charge with the insurer, nothing to the patient.
    let b = balances(&account::entries(app.db(), "P-0").unwrap());
    assert_eq!((b.insurance_cents, b.patient_cents), (0, 0));
}

#[test]
fn a_claim_whose_state_forbids_the_move_still_posts_and_raises_a_task() {
    let app = new_app();
    let mut c = submitted_claim(app.db(), "5554555444", 0, 80_000);
    c.state = ClaimState::Draft;
    app.db().put(&c).unwrap();
    let bytes = fixture("lfh__managed-care.835");
    let r = post_bytes(&app, "mc", &bytes);
    assert_eq!(r.remittances[0].posted.len(), 1);
    assert_eq!(
        app.db()
            .get::<Claim>("C-5554555444")
            .unwrap()
            .unwrap()
            .state,
        ClaimState::Draft
    );
    let tasks = crate::domain::task::open(app.db()).unwrap();
    assert!(tasks.iter().any(|t| t.kind == "remit-claim-state"));
}

#[test]
fn review_mode_waits_for_approval() {
    let app = new_app();
    let bytes = fixture("lfh__managed-care.835");
    claims_for(&app, &bytes, &[]);
    let modes = PostingModes {
        default: PostingMode::Automatic,
        payers: BTreeMap::from([("1935665544".to_string(), PostingMode::Review)]),
    };
    let r = post(&app.db, app.now, "mc", &bytes[..], &modes).unwrap();
    assert_eq!(r.remittances[0].awaiting_review.len(), 2);
    assert!(r.remittances[0].reconciliation.balances());
    assert!(ledger(&app).is_empty());
    let queue = review(&app.db).unwrap();
    assert_eq!(queue.len(), 2);
    let approved = approve(&app.db, app.now, &queue[0].id, "dana").unwrap();
    assert_eq!(approved.state, PostingState::Posted);
    assert_eq!(approved.approved_by.as_deref(), Some("dana"));
    assert_eq!(review(&app.db).unwrap().len(), 1);
    let b = balances(&account::entries(app.db(), "P-0").unwrap());
    assert_eq!((b.insurance_cents, b.patient_cents), (0, 30_000));
    assert!(matches!(
        approve(&app.db, app.now, &queue[0].id, "dana"),
        Err(PostError::Conflict(_))
    ));
    assert!(matches!(
        approve(&app.db, app.now, "R999999", "dana"),
        Err(PostError::NoSuchPosting(_))
    ));
    // Posting the file again adds nothing to the queue.
    post(&app.db, app.now, "mc", &bytes[..], &modes).unwrap();
    assert_eq!(review(&app.db).unwrap().len(), 1);
}

fn coverage(id: &str, patient: &str, payer: &str, priority: PayerPriority) -> Coverage {
    Coverage {
        id: id.into(),
        patient_id: patient.into(),
        payer_id: payer.into(),
        payer_name: format!("{payer} health"),
        member_id: format!("M-{id}"),
        group_number: None,
        relationship: crate::domain::Relationship::SelfInsured,
        subscriber_name: None,
        subscriber_birth_date: None,
        priority,
        effective: None,
        terminated: None,
        verdict: None,
    }
}

#[test]
fn a_primary_payment_creates_the_secondary_claim_and_the_secondary_payment_settles_it() {
    let app = new_app();
    let mut c = submitted_claim(app.db(), "5554555444", 0, 80_000);
    c.coverage_id = "COV-P".into();
    c.payer_id = "1935665544".into();
    app.db().put(&c).unwrap();
    app.db()
        .put(&coverage(
            "COV-P",
            "P-0",
            "1935665544",
            PayerPriority::Primary,
        ))
        .unwrap();
    app.db()
        .put(&coverage(
            "COV-S",
            "P-0",
            "SECOND",
            PayerPriority::Secondary,
        ))
        .unwrap();
    let primary = remit_835(
        "BPR*I*450*C*ACH************20240201",
        "PRIMARY1",
        "CLP*5554555444*1*800*450*300*12*PCN-P~CAS*CO*A2*50~CAS*PR*1*250**2*50~",
    );
    let r = post_bytes(&app, "primary", &primary);
    assert!(r.quarantined.is_empty(), "{:?}", r.quarantined);
    let made = &r.remittances[0].secondary_claims;
    assert_eq!(made, &["C-5554555444-cob2".to_string()]);
    let second = app.db().get::<Claim>(&made[0]).unwrap().unwrap();
    assert_eq!(
        (
            second.state,
            second.payer_id.as_str(),
            second.coverage_id.as_str()
        ),
        (ClaimState::Draft, "SECOND", "COV-S")
    );
    assert_eq!(second.control_number, "5554555444");
    let basis = app.db().get::<CobBasis>(&made[0]).unwrap().unwrap();
    assert_eq!(
        (basis.paid_cents, basis.patient_responsibility_cents),
        (45_000, 30_000)
    );
    assert_eq!(basis.adjustments.len(), 3);
    assert_eq!(basis.primary_payer_claim_number.as_deref(), Some("PCN-P"));
    // Adjudicated as a whole, on the payment's date (BPR16).
    assert!(basis.lines.is_empty());
    assert_eq!(
        basis.adjudicated_on,
        chrono::NaiveDate::from_ymd_opt(2024, 2, 1)
    );
    // The patient's share waits for the secondary: nothing owed by the
    // patient yet.
    let b = balances(&account::entries(app.db(), "P-0").unwrap());
    assert_eq!((b.insurance_cents, b.patient_cents), (30_000, 0));
    let owing = |app: &App| {
        app.db()
            .get::<account::Account>("P-0")
            .unwrap()
            .unwrap()
            .owing_since
    };
    assert_eq!(owing(&app), None);
    // Posting the primary again makes no second claim.
    let again = post_bytes(&app, "primary", &primary);
    assert!(again.remittances[0].secondary_claims.is_empty());
    // The secondary is billed and pays 250.00 of the 300.00, leaving 20.00
    // coinsurance to the patient and writing off 30.00.
    let mut s = second;
    s.state = ClaimState::Submitted;
    app.db().put(&s).unwrap();
    let secondary = remit_835_from(
        "SECOND",
        "BPR*I*250*C*ACH************20240301",
        "SECOND1",
        "CLP*5554555444*2*800*250*20*12*PCN-S~CAS*OA*23*500~CAS*CO*45*30~CAS*PR*2*20~",
    );
    let r = post_bytes(&app, "secondary", &secondary);
    assert!(r.quarantined.is_empty(), "{:?}", r.quarantined);
    assert_eq!(r.remittances[0].posted.len(), 1);
    let s = app.db().get::<Claim>("C-5554555444-cob2").unwrap().unwrap();
    assert_eq!(s.state, ClaimState::Paid);
    let es = account::entries(app.db(), "P-0").unwrap();
    let b = balances(&es);
    assert_eq!((b.insurance_cents, b.patient_cents), (0, 2_000));
    assert_eq!(owing(&app), Some(app.now.date_naive()));
    // Charged once for both claims.
    assert_eq!(
        es.iter().filter(|e| e.kind == LedgerKind::Charge).count(),
        1
    );
}
