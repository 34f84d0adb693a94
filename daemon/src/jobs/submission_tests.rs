//! Tests of the submission job's coordination of benefits: the earlier
//! payers of a claim come from its chain of [`CobBasis`] records, first
//! payer first, each with its own coverage's subscriber and its lines
//! matched to the claim's.

use super::*;
use crate::clock::ManualClock;
use crate::domain::remittance::{EraAdjustment, EraLine};
use crate::domain::{PayerPriority, PersonName, Relationship, ServiceLine, Sex};
use crate::plugin::bindings::coordination_api::PayerSequence;
use crate::plugin::bindings::types::{AdjustmentGroup, Relationship as WitRelationship};
use crate::store::Db;
use chrono::{NaiveDate, TimeZone, Utc};
use tokio_util::sync::CancellationToken;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn ctx(db: &Db) -> RunContext {
    RunContext {
        db: db.clone(),
        clock: Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap(),
        )),
        job: "submission".into(),
        run_id: "run-1".into(),
        occurrence: None,
        cancel: CancellationToken::new(),
    }
}

fn name(last: &str, first: &str) -> PersonName {
    PersonName {
        last: last.into(),
        first: first.into(),
        middle: None,
        suffix: None,
    }
}

fn coverage(id: &str, payer: &str, priority: PayerPriority, spouse: bool) -> Coverage {
    Coverage {
        id: id.into(),
        patient_id: "P1".into(),
        payer_id: payer.into(),
        payer_name: format!("{payer} health"),
        member_id: format!("M-{id}"),
        group_number: Some(format!("G-{id}")),
        relationship: if spouse {
            Relationship::Spouse
        } else {
            Relationship::SelfInsured
        },
        subscriber_name: spouse.then(|| name("Roe", "Sam")),
        subscriber_birth_date: spouse.then(|| NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()),
        priority,
        effective: None,
        terminated: None,
        verdict: None,
    }
}

fn line(procedure: &str, cents: i64) -> ServiceLine {
    ServiceLine {
        procedure: procedure.into(),
        modifiers: vec![],
        charge_cents: cents,
        units: 1,
        diagnosis_pointers: vec![1],
        service_date: day(2),
    }
}

fn claim(id: &str, payer: &str, coverage: &str) -> Claim {
    let mut c = crate::domain::claim::tests::claim();
    c.id = id.into();
    c.control_number = "PCN7".into();
    c.patient_id = "P1".into();
    c.payer_id = payer.into();
    c.coverage_id = coverage.into();
    c.lines = vec![line("99213", 10_000), line("87070", 2_500)];
    c.total_charge_cents = 12_500;
    c
}

fn adj(group: &str, reason: &str, cents: i64, line: Option<u32>) -> EraAdjustment {
    EraAdjustment {
        group: group.into(),
        reason: reason.into(),
        amount_cents: cents,
        line,
        quantity: None,
    }
}

fn era_line(procedure: &str, billed: i64, paid: i64) -> EraLine {
    EraLine {
        procedure: procedure.into(),
        modifiers: vec![],
        billed_cents: billed,
        paid_cents: paid,
        units: 1,
        service_date: Some(day(2)),
    }
}

/// A patient with a primary (self), a secondary (through a spouse) and a
/// tertiary coverage, the primary claim `C`, the secondary `C-cob2` the
/// primary paid by line (its 835 listing the lines in the other order),
/// and the tertiary `C-cob2-cob3` the secondary paid as a whole.
fn seed(db: &Db) -> (Claim, Claim, Patient) {
    let patient = Patient {
        id: "P1".into(),
        name: name("Doe", "Jane"),
        birth_date: NaiveDate::from_ymd_opt(1972, 3, 4).unwrap(),
        sex: Sex::Female,
        email: None,
        phone: None,
        address: None,
    };
    db.put(&patient).unwrap();
    db.put(&coverage("COV-P", "PAYER1", PayerPriority::Primary, false))
        .unwrap();
    db.put(&coverage("COV-S", "PAYER2", PayerPriority::Secondary, true))
        .unwrap();
    db.put(&coverage("COV-T", "PAYER3", PayerPriority::Tertiary, false))
        .unwrap();
    let primary = claim("C", "PAYER1", "COV-P");
    let secondary = claim("C-cob2", "PAYER2", "COV-S");
    let tertiary = claim("C-cob2-cob3", "PAYER3", "COV-T");
    for c in [&primary, &secondary, &tertiary] {
        db.put(c).unwrap();
    }
    let paid_at = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap();
    db.put(&CobBasis {
        claim_id: secondary.id.clone(),
        primary_claim_id: primary.id.clone(),
        primary_payer: "PAYER1-AS-IN-835".into(),
        primary_payer_claim_number: Some("ICN-1".into()),
        paid_cents: 7_000,
        patient_responsibility_cents: 1_000,
        adjustments: vec![
            adj("CO", "97", 2_500, Some(0)),
            adj("CO", "45", 2_000, Some(1)),
            adj("PR", "2", 1_000, Some(1)),
        ],
        lines: vec![
            era_line("87070", 2_500, 0),
            era_line("99213", 10_000, 7_000),
        ],
        adjudicated_on: Some(day(20)),
        source: "835:PAYER1:T1:PCN7:1".into(),
        paid_at,
    })
    .unwrap();
    db.put(&CobBasis {
        claim_id: tertiary.id.clone(),
        primary_claim_id: secondary.id.clone(),
        primary_payer: "PAYER2".into(),
        primary_payer_claim_number: None,
        paid_cents: 800,
        patient_responsibility_cents: 200,
        adjustments: vec![adj("OA", "23", 11_500, None), adj("PR", "2", 200, None)],
        lines: vec![],
        adjudicated_on: None,
        source: "835:PAYER2:T2:PCN7:1".into(),
        paid_at,
    })
    .unwrap();
    (primary, tertiary, patient)
}

#[test]
fn earlier_payers_come_first_payer_first_with_their_own_subscriber_and_lines() {
    let db = Db::in_memory();
    let (primary, tertiary, patient) = seed(&db);
    let ctx = ctx(&db);
    assert!(prior_payers(&ctx, &primary, &patient).unwrap().is_empty());
    let before = prior_payers(&ctx, &tertiary, &patient).unwrap();
    assert_eq!(before.len(), 2);

    let p = &before[0];
    assert_eq!(p.sequence, PayerSequence::Primary);
    // The payer the claim went to, not the name its 835 gave.
    assert_eq!(
        (p.payer_id.as_str(), p.payer_name.as_str()),
        ("PAYER1", "PAYER1 health")
    );
    assert_eq!(p.subscriber.name.last, "Doe");
    assert_eq!(p.subscriber.member_id, "M-COV-P");
    assert_eq!(p.subscriber.relationship, None);
    assert_eq!(p.subscriber.group_number.as_deref(), Some("G-COV-P"));
    assert_eq!(p.payer_claim_id.as_deref(), Some("ICN-1"));
    assert_eq!((p.paid, p.patient_responsibility), (7_000, 1_000));
    assert!(p.adjustments.is_empty(), "all line level");
    assert_eq!((p.adjudicated.month, p.adjudicated.day), (11, 20));
    // The 835's lines, matched to the claim's by procedure.
    let numbers: Vec<u16> = p.lines.iter().map(|l| l.line_number).collect();
    assert_eq!(numbers, [2, 1]);
    assert_eq!(p.lines[1].paid, 7_000);
    assert_eq!(p.lines[1].procedure.code, "99213");
    let groups: Vec<(AdjustmentGroup, &str, i64)> = p.lines[1]
        .adjustments
        .iter()
        .map(|a| (a.group, a.reason_code.as_str(), a.amount))
        .collect();
    assert_eq!(
        groups,
        [
            (AdjustmentGroup::Contractual, "45", 2_000),
            (AdjustmentGroup::PatientResponsibility, "2", 1_000)
        ]
    );
    for l in &p.lines {
        let charge = tertiary.lines[usize::from(l.line_number) - 1].charge_cents;
        let adjusted: i64 = l.adjustments.iter().map(|a| a.amount).sum();
        assert_eq!(l.paid + adjusted, charge, "line {}", l.line_number);
    }

    let s = &before[1];
    assert_eq!(s.sequence, PayerSequence::Secondary);
    assert_eq!(s.payer_id, "PAYER2");
    assert_eq!(
        s.subscriber.name.last, "Roe",
        "the spouse holds that policy"
    );
    assert_eq!(s.subscriber.relationship, Some(WitRelationship::Spouse));
    assert!(s.lines.is_empty());
    assert_eq!(s.adjustments.len(), 2);
    // No payment date in its 835: the day its payment was posted.
    assert_eq!((s.adjudicated.month, s.adjudicated.day), (11, 25));
}

#[test]
fn a_missing_earlier_coverage_is_a_permanent_error_naming_ids_only() {
    let db = Db::in_memory();
    let (_, tertiary, patient) = seed(&db);
    db.remove::<Coverage>("COV-P").unwrap();
    let e = prior_payers(&ctx(&db), &tertiary, &patient).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, JobError::Permanent(_)), "{text}");
    assert!(
        text.contains("claim C-cob2-cob3") && text.contains("claim C "),
        "{text}"
    );
    assert!(!text.contains("Doe") && !text.contains("M-COV"), "{text}");
}
