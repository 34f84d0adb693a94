use super::*;
use crate::clock::ManualClock;
use crate::domain::dunning::{Notice, NoticeRole, NoticeStatus};
use crate::domain::task;
use crate::domain::{Address, PersonName, Sex};
use crate::plugin::PluginSpec;
use crate::plugin::bindings::types as wit;
use crate::plugin::tests::{dist, test_host};
use chrono::{Duration, TimeZone};
use tokio_util::sync::CancellationToken;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, 1, 15, 0, 0).unwrap()
}

fn registry() -> Arc<PluginRegistry> {
    let t = test_host(crate::plugin::PluginTrust::default());
    Arc::new(
        PluginRegistry::load(
            Arc::new(t.host),
            &[PluginSpec::unpinned(
                "echo-collections",
                &dist("echo-collections"),
            )],
        )
        .unwrap(),
    )
}

fn job(db: &Db, plugins: Option<Arc<PluginRegistry>>) -> CollectionsJob {
    let mut services = super::super::registry::test_services(
        db,
        Arc::new(ManualClock::new(now())),
        &std::env::temp_dir(),
    );
    services.plugins = plugins;
    let params = CollectionsParams {
        connector: "echo-collections".into(),
        min_balance_cents: None,
        min_days_since_first_statement: None,
        min_days_since_final_notice: None,
        batch_size: Some(2),
        max_attempts: Some(1),
        retry_delay: None,
    };
    let setup = JobSetup {
        name: "collections".into(),
        timezone: chrono_tz::UTC,
    };
    CollectionsJob::new(params, &setup, &services).unwrap()
}

fn ctx(db: &Db, run: &str) -> RunContext {
    RunContext {
        db: db.clone(),
        clock: Arc::new(ManualClock::new(now())),
        job: "collections".into(),
        run_id: run.into(),
        occurrence: None,
        cancel: CancellationToken::new(),
    }
}

/// An account owing `cents` since 200 days ago, statement sent 180 days
/// ago and final notice 60 days ago, the patient with an address unless
/// `address` is false.
fn seed(db: &Db, id: &str, cents: i64, address: bool) {
    let since = now() - Duration::days(200);
    db.put(&Patient {
        id: id.into(),
        name: PersonName {
            last: format!("Last{id}"),
            first: "Pat".into(),
            middle: None,
            suffix: None,
        },
        birth_date: NaiveDate::from_ymd_opt(1970, 1, 2).unwrap(),
        sex: Sex::Female,
        email: None,
        phone: None,
        address: address.then(|| Address {
            lines: vec!["1 Main St".into()],
            city: "Springfield".into(),
            state: "IL".into(),
            postal_code: "62701".into(),
        }),
    })
    .unwrap();
    db.put(&LedgerEntry {
        id: format!("{id}/pr/1"),
        account_id: id.into(),
        claim_id: None,
        posted_at: since,
        kind: LedgerKind::PatientResponsibility,
        amount_cents: cents,
        source: "test".into(),
    })
    .unwrap();
    account::refresh_owing_since(db, id, since).unwrap();
    for (step, role, days) in [
        ("statement", NoticeRole::Statement, 180),
        ("final-90", NoticeRole::FinalNotice, 60),
    ] {
        let sent = now() - Duration::days(days);
        db.put(&Notice {
            key: Notice::key_for(id, since.date_naive(), step),
            account_id: id.into(),
            since: since.date_naive(),
            step: step.into(),
            role,
            amount_cents: cents,
            outbox_key: format!("o/{id}/{step}"),
            queued_at: sent,
            sent_at: Some(sent),
            status: NoticeStatus::Sent,
        })
        .unwrap();
    }
}

fn status_of(db: &Db, account: &str) -> Option<PlacementStatus> {
    collections::placements_of(db, account)
        .unwrap()
        .last()
        .map(|p| p.status.clone())
}

#[tokio::test]
async fn qualifying_accounts_are_placed_once_and_the_others_stay() {
    let db = Db::in_memory();
    seed(&db, "P1", 12_000, true);
    seed(&db, "P2", 9_000, true);
    seed(&db, "P3", 100, true); // under the minimum
    seed(&db, "P4", 8_000, false); // no address
    seed(&db, "P5", 8_000, true);
    db.transact(|tx| {
        hold::place_in(tx, "P5", HoldKind::Bankruptcy, "ch. 7", "dana", now()).map(|_| ())
    })
    .unwrap();
    let j = job(&db, Some(registry()));
    let first = j.cycle(&ctx(&db, "r1")).await.unwrap();
    assert_eq!((first.placed, first.no_address), (2, 1), "{first:?}");
    for a in ["P1", "P2"] {
        assert_eq!(status_of(&db, a), Some(PlacementStatus::Placed), "{a}");
    }
    let p1 = collections::placements_of(&db, "P1").unwrap().remove(0);
    assert_eq!(p1.agency_account_id.as_deref(), Some("AG-P1"));
    assert_eq!(p1.balance_cents, 12_000);
    assert_eq!(
        p1.events
            .iter()
            .map(|e| e.what.as_str())
            .collect::<Vec<_>>(),
        ["recorded", "placed"]
    );
    for a in ["P3", "P4", "P5"] {
        assert_eq!(status_of(&db, a), None, "{a}");
    }
    let tasks = task::open(&db).unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].kind, "collections-no-address");
    assert!(!tasks[0].subject.contains("LastP4"), "{}", tasks[0].subject);
    let again = j.cycle(&ctx(&db, "r2")).await.unwrap();
    assert_eq!(again.placed, 0, "placed once: {again:?}");
}

#[tokio::test]
async fn a_placement_recorded_before_a_crash_is_sent_again_under_its_key() {
    let db = Db::in_memory();
    seed(&db, "P1", 12_000, true);
    let since = (now() - Duration::days(200)).date_naive();
    let mut p = Placement {
        id: Placement::id_for("P1", since),
        account_id: "P1".into(),
        since,
        balance_cents: 12_000,
        connector: "echo-collections".into(),
        batch_key: "collections#place/earlier".into(),
        recall_key: None,
        agency_account_id: None,
        status: PlacementStatus::Pending,
        collected_cents: 0,
        agency_fee_cents: 0,
        events: vec![],
    };
    p.log(now(), "recorded", None);
    db.put(&p).unwrap();
    let counts = job(&db, Some(registry()))
        .cycle(&ctx(&db, "r"))
        .await
        .unwrap();
    assert_eq!(counts.placed, 1);
    assert_eq!(collections::placements_of(&db, "P1").unwrap().len(), 1);
    assert_eq!(status_of(&db, "P1"), Some(PlacementStatus::Placed));
}

#[tokio::test]
async fn a_hold_after_placement_marks_a_recall_before_the_agency_is_asked() {
    let db = Db::in_memory();
    seed(&db, "P1", 12_000, true);
    let j = job(&db, Some(registry()));
    j.cycle(&ctx(&db, "r1")).await.unwrap();
    db.transact(|tx| {
        hold::place_in(tx, "P1", HoldKind::NoSurprisesAct, "PPDR", "dana", now()).map(|_| ())
    })
    .unwrap();
    // The echo agency takes no recalls: the call fails, the mark stays.
    let e = j.cycle(&ctx(&db, "r2")).await.unwrap_err();
    assert!(
        matches!(e, JobError::NeedsPerson { ref cause, .. } if cause == "unsupported"),
        "{e}"
    );
    match status_of(&db, "P1") {
        Some(PlacementStatus::RecallPending { reason }) => {
            assert_eq!(reason, RecallReason::Disputed)
        }
        other => panic!("{other:?}"),
    }
    let p = collections::placements_of(&db, "P1").unwrap().remove(0);
    assert!(p.recall_key.is_some());
}

fn update(account: &str, event: co::AgencyEvent) -> co::AgencyUpdate {
    co::AgencyUpdate {
        account_id: account.into(),
        agency_account_id: Some(format!("AG-{account}")),
        occurred: wit::Date {
            year: 2026,
            month: 8,
            day: 30,
        },
        event,
    }
}

#[tokio::test]
async fn agency_updates_post_payments_once_and_disputes_hold_the_account() {
    let db = Db::in_memory();
    seed(&db, "P1", 12_000, true);
    let j = job(&db, Some(registry()));
    j.cycle(&ctx(&db, "r1")).await.unwrap();
    let pay = update(
        "P1",
        co::AgencyEvent::PaymentCollected(co::CollectedPayment {
            gross: 5_000,
            agency_fee: 1_500,
            net: 3_500,
        }),
    );
    for _ in 0..2 {
        // The same page (same cursor, same position) applied twice.
        db.transact(|tx| j.apply_update(&db, tx, now(), "page-a", 0, pay.clone()))
            .unwrap();
    }
    let entries = account::entries(&db, "P1").unwrap();
    assert_eq!(account::balances(&entries).patient_cents, 7_000);
    let p = collections::placements_of(&db, "P1").unwrap().remove(0);
    assert_eq!((p.collected_cents, p.agency_fee_cents), (5_000, 1_500));
    // Parts that do not add up are refused with a task, nothing posted.
    let bad = update(
        "P1",
        co::AgencyEvent::PaymentCollected(co::CollectedPayment {
            gross: 5_000,
            agency_fee: 1_000,
            net: 3_000,
        }),
    );
    db.transact(|tx| j.apply_update(&db, tx, now(), "page-b", 0, bad.clone()))
        .unwrap();
    assert_eq!(account::entries(&db, "P1").unwrap().len(), entries.len());
    db.transact(|tx| {
        j.apply_update(
            &db,
            tx,
            now(),
            "page-c",
            0,
            update("P1", co::AgencyEvent::Disputed("not mine".into())),
        )
    })
    .unwrap();
    let holds = hold::holds_of(&db, "P1").unwrap();
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0].kind, HoldKind::Dispute);
    let kinds: Vec<String> = task::open(&db)
        .unwrap()
        .into_iter()
        .map(|t| t.kind)
        .collect();
    assert_eq!(kinds, ["collections-bad-update", "collections-dispute"]);
    // An update for an account never placed is a task too.
    db.transact(|tx| {
        j.apply_update(
            &db,
            tx,
            now(),
            "page-d",
            0,
            update("P9", co::AgencyEvent::Closed("x".into())),
        )
    })
    .unwrap();
    assert_eq!(task::open(&db).unwrap().len(), 3);
    db.transact(|tx| {
        j.apply_update(
            &db,
            tx,
            now(),
            "page-e",
            0,
            update("P1", co::AgencyEvent::Closed("uncollectable".into())),
        )
    })
    .unwrap();
    assert!(matches!(
        status_of(&db, "P1"),
        Some(PlacementStatus::Closed { .. })
    ));
}

#[test]
fn params_are_checked() {
    let db = Db::in_memory();
    let services = super::super::registry::test_services(
        &db,
        Arc::new(ManualClock::new(now())),
        &std::env::temp_dir(),
    );
    let setup = JobSetup {
        name: "c".into(),
        timezone: chrono_tz::UTC,
    };
    for (text, key) in [
        ("connector = \"a\"\nbatch_size = 0", "batch_size"),
        (
            "connector = \"a\"\nmin_balance_cents = 0",
            "min_balance_cents",
        ),
    ] {
        let t: toml::Table = toml::from_str(text).unwrap();
        let e = super::super::registry::build("collections", &t, &setup, &services)
            .err()
            .expect("refused");
        assert_eq!(e.key, key);
    }
}

#[tokio::test]
async fn money_collected_before_a_recall_still_posts_and_another_agencys_account_is_not_touched() {
    let db = Db::in_memory();
    seed(&db, "P1", 12_000, true);
    seed(&db, "P2", 9_000, true);
    let j = job(&db, Some(registry()));
    j.cycle(&ctx(&db, "r1")).await.unwrap();
    // P1 was called back; P2 belongs to another agency.
    let p1 = collections::placements_of(&db, "P1").unwrap().remove(0);
    db.modify::<Placement, _>(&p1.id, |p| {
        p.status = PlacementStatus::Recalled {
            reason: RecallReason::PracticeRequest,
        }
    })
    .unwrap();
    let p2 = collections::placements_of(&db, "P2").unwrap().remove(0);
    db.modify::<Placement, _>(&p2.id, |p| p.connector = "other-agency".into())
        .unwrap();
    let pay = |a: &str| {
        update(
            a,
            co::AgencyEvent::PaymentCollected(co::CollectedPayment {
                gross: 1_000,
                agency_fee: 300,
                net: 700,
            }),
        )
    };
    db.transact(|tx| j.apply_update(&db, tx, now(), "page-x", 0, pay("P1")))
        .unwrap();
    db.transact(|tx| j.apply_update(&db, tx, now(), "page-x", 1, pay("P2")))
        .unwrap();
    let b = |a: &str| account::balances(&account::entries(&db, a).unwrap()).patient_cents;
    assert_eq!(b("P1"), 11_000, "posted after the recall");
    assert_eq!(b("P2"), 9_000, "not this agency's account");
    let kinds: Vec<String> = task::open(&db)
        .unwrap()
        .into_iter()
        .map(|t| t.kind)
        .collect();
    assert_eq!(kinds, ["collections-unknown-update"]);
    // A closure after the recall keeps the placement recalled.
    db.transact(|tx| {
        j.apply_update(
            &db,
            tx,
            now(),
            "page-y",
            0,
            update("P1", co::AgencyEvent::Closed("done".into())),
        )
    })
    .unwrap();
    assert!(matches!(
        status_of(&db, "P1"),
        Some(PlacementStatus::Recalled { .. })
    ));
}
