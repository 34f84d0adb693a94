//! The records of every module (domain, runs, occurrences, outbox) through the real store: every record type round
//! trips (also through sled and a reopen), sealing keeps patient data off
//! disk, and the store's atomic operations hold for business records.

use crate::domain::*;
use crate::jobs::{ItemState, JobRun, RunOutcome, RunTrigger, WorkItem};
use crate::notify::{OutboxMessage, OutboxStatus};
use crate::scheduler::{Disposition, Occurrence};
use crate::store::*;
use chrono::{NaiveDate, TimeZone, Utc};
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::sync::Barrier;

const NAME: &str = "Quixotina";
const SURNAME: &str = "Zebulon";
const MEMBER_ID: &str = "ZQX987654321";

fn at(h: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 8, h, 30, 0).unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 2, d).unwrap()
}

fn patient() -> Patient {
    Patient {
        id: "P0001".into(),
        name: PersonName {
            last: SURNAME.into(),
            first: NAME.into(),
            middle: Some("Q".into()),
            suffix: None,
        },
        birth_date: NaiveDate::from_ymd_opt(1961, 2, 3).unwrap(),
        sex: Sex::Female,
        email: Some("qz@example.invalid".into()),
        phone: None,
        address: Some(Address {
            lines: vec!["12 Larkspur Way".into()],
            city: "Springfield".into(),
            state: "IL".into(),
            postal_code: "62701".into(),
        }),
    }
}

fn coverage() -> Coverage {
    Coverage {
        id: "COV1".into(),
        patient_id: "P0001".into(),
        payer_id: "60054".into(),
        payer_name: "Example Health".into(),
        member_id: MEMBER_ID.into(),
        group_number: Some("G-77".into()),
        relationship: Relationship::Child,
        subscriber_name: Some(PersonName {
            last: SURNAME.into(),
            first: "Ambrose".into(),
            middle: None,
            suffix: None,
        }),
        subscriber_birth_date: None,
        priority: PayerPriority::Primary,
        effective: Some(day(1)),
        terminated: None,
        verdict: Some(EligibilityVerdict {
            checked_at: at(9),
            active: true,
            plan: Some("PPO".into()),
            problems: vec!["72".into()],
            status: None,
            service_date: None,
            copay_cents: None,
            deductible_cents: None,
            deductible_remaining_cents: None,
            coinsurance_basis_points: None,
            payer_reference: None,
        }),
    }
}

fn claim(id: &str) -> Claim {
    Claim {
        id: id.into(),
        control_number: id.into(),
        patient_id: "P0001".into(),
        coverage_id: "COV1".into(),
        payer_id: "60054".into(),
        billing_npi: "1234567893".into(),
        rendering_npi: "1234567894".into(),
        place_of_service: "11".into(),
        frequency_code: "1".into(),
        diagnoses: vec!["E11.9".into(), "I10".into()],
        lines: vec![ServiceLine {
            procedure: "99213".into(),
            modifiers: vec!["25".into()],
            charge_cents: 12_500,
            units: 1,
            diagnosis_pointers: vec![1, 2],
            service_date: day(3),
        }],
        total_charge_cents: 12_500,
        state: ClaimState::Denied,
        history: vec![
            ClaimEvent {
                at: at(1),
                from: None,
                to: ClaimState::Draft,
                source: ClaimEventSource::System,
                note: None,
            },
            ClaimEvent {
                at: at(2),
                from: Some(ClaimState::Draft),
                to: ClaimState::Denied,
                source: ClaimEventSource::Person("biller1".into()),
                note: Some("CO-197".into()),
            },
        ],
        payer_claim_number: Some("PCN1".into()),
        next_check_at: Some(at(5)),
        revision: 0,
        held: false,
        problems: vec![],
        billing_name: None,
        billing_tax_id: None,
    }
}

fn ledger(id: &str, kind: LedgerKind) -> LedgerEntry {
    LedgerEntry {
        id: id.into(),
        account_id: "P0001".into(),
        claim_id: Some("C1".into()),
        posted_at: at(4),
        kind,
        amount_cents: -4_000,
        source: "835:60054:TRN1:C1".into(),
    }
}

fn occurrence(claimed_by: &str) -> Occurrence {
    Occurrence {
        job: "eligibility".into(),
        scheduled_for: at(2),
        claimed_at: at(2),
        claimed_by: claimed_by.into(),
        disposition: Disposition::Ran {
            run_id: "eligibility/000".into(),
        },
    }
}

fn job_run(id: &str) -> JobRun {
    JobRun {
        id: id.into(),
        job: "eligibility".into(),
        occurrence: Some(at(2)),
        trigger: RunTrigger::CatchUp,
        started_at: at(2),
        ended_at: None,
        outcome: RunOutcome::Running,
        items_total: 10,
        items_done: 0,
        items_failed: 0,
        errors: vec!["payer timeout".into()],
        resumes: 1,
    }
}

fn sled_db(dir: &Path) -> Db {
    Db::new(
        Arc::new(SledStore::open(&dir.join("store"), 8 << 20).unwrap()),
        StoreKey::from_bytes(&[42; 32]),
    )
}

fn mem_db() -> Db {
    Db::in_memory()
}

/// Writes `r` where nothing was, and reads it back by key and by scan.
fn round_trip<R: Record + PartialEq + Debug>(db: &Db, r: &R) {
    let key = r.key();
    assert_eq!(db.get::<R>(&key).unwrap(), None, "{key} present before put");
    db.put(r).unwrap();
    assert_eq!(db.get::<R>(&key).unwrap().as_ref(), Some(r), "{key}");
    let scanned = db.scan::<R>(&key).unwrap();
    assert_eq!(scanned.len(), 1, "{key}");
    assert_eq!(&scanned[0], r);
}

#[test]
fn every_record_type_round_trips_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let records_written;
    {
        let db = sled_db(dir.path());
        round_trip(&db, &patient());
        round_trip(&db, &coverage());
        round_trip(
            &db,
            &Appointment {
                id: "A1".into(),
                patient_id: "P0001".into(),
                provider_npi: "1234567894".into(),
                start: at(3),
                minutes: 20,
                status: AppointmentStatus::Booked,
            },
        );
        round_trip(&db, &claim("C1"));
        for (id, kind) in [
            ("P0001/0001", LedgerKind::Charge),
            (
                "P0001/0002",
                LedgerKind::Adjustment {
                    group: "CO".into(),
                    reason: "45".into(),
                },
            ),
            (
                "P0001/0003",
                LedgerKind::Reversal {
                    reverses: "P0001/0001".into(),
                },
            ),
        ] {
            round_trip(&db, &ledger(id, kind));
        }
        round_trip(
            &db,
            &Task {
                id: "T000001".into(),
                kind: "denial".into(),
                subject: "claim C1 denied CO-197".into(),
                priority: Priority::High,
                created_at: at(6),
                due: Some(at(7)),
                assignee: Some("biller1".into()),
                payer: None,
                status: TaskStatus::Open,
                notes: vec![TaskNote {
                    at: at(7),
                    author: "biller1".into(),
                    text: "called payer".into(),
                }],
                dedupe_key: "denial:C1".into(),
            },
        );
        round_trip(&db, &job_run("eligibility/000"));
        round_trip(&db, &occurrence("host:1"));
        round_trip(
            &db,
            &WorkItem {
                run_id: "eligibility/000".into(),
                item: "COV1".into(),
                state: ItemState::InFlight,
                attempts: 2,
            },
        );
        round_trip(
            &db,
            &OutboxMessage {
                key: "stmt-P0001-1".into(),
                to: vec!["qz@example.invalid".into()],
                subject: "Your statement".into(),
                body: "Amount due: $40.00".into(),
                created_at: at(8),
                status: OutboxStatus::Queued,
                attempts: 0,
                headers: Vec::new(),
            },
        );
        db.flush().unwrap();
        records_written = db.scan::<LedgerEntry>("P0001/").unwrap();
        assert_eq!(records_written.len(), 3);
    }
    // A fresh process view: everything is still there after reopen.
    let db = sled_db(dir.path());
    assert_eq!(db.get::<Patient>("P0001").unwrap(), Some(patient()));
    assert_eq!(db.get::<Coverage>("COV1").unwrap(), Some(coverage()));
    assert_eq!(db.get::<Claim>("C1").unwrap(), Some(claim("C1")));
    assert_eq!(
        db.get::<Occurrence>(&occurrence("x").key()).unwrap(),
        Some(occurrence("host:1"))
    );
    assert_eq!(db.scan::<LedgerEntry>("P0001/").unwrap(), records_written);
    assert!(db.get::<Task>("T000001").unwrap().is_some());
    assert!(
        db.get::<WorkItem>("eligibility/000#COV1")
            .unwrap()
            .is_some()
    );
    assert!(db.get::<OutboxMessage>("stmt-P0001-1").unwrap().is_some());
    assert!(db.get::<Appointment>("A1").unwrap().is_some());
    assert!(db.get::<JobRun>("eligibility/000").unwrap().is_some());
    // Same key in another collection is another record.
    assert_eq!(db.get::<Claim>("P0001").unwrap(), None);
}

#[test]
fn scan_returns_key_order_within_prefix_and_remove_works() {
    let db = mem_db();
    for id in ["P2/003", "P1/002", "P1/001", "P10/001", "P1/010"] {
        db.put(&ledger(id, LedgerKind::Charge)).unwrap();
    }
    let ids = |p: &str| -> Vec<String> {
        db.scan::<LedgerEntry>(p)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(ids("P1/"), ["P1/001", "P1/002", "P1/010"]);
    assert_eq!(ids("P1"), ["P1/001", "P1/002", "P1/010", "P10/001"]);
    assert!(db.remove::<LedgerEntry>("P1/002").unwrap());
    assert!(!db.remove::<LedgerEntry>("P1/002").unwrap());
    assert_eq!(ids("P1/"), ["P1/001", "P1/010"]);
    assert!(ids("P3").is_empty());
}

#[test]
fn for_each_streams_in_order_stops_early_and_may_write() {
    let dir = tempfile::tempdir().unwrap();
    for db in [sled_db(dir.path()), mem_db()] {
        for i in 0..50 {
            db.put(&claim(&format!("C{i:03}"))).unwrap();
        }
        db.put(&claim("D001")).unwrap();
        let mut ids = Vec::new();
        db.for_each("C", |c: Claim| {
            ids.push(c.id.clone());
            // Writing from inside the scan must not deadlock.
            db.update::<Claim, _>(&c.id, |c| {
                let mut c = c.unwrap();
                c.state = ClaimState::Closed;
                Some(c)
            })
            .unwrap();
            ids.len() < 20
        })
        .unwrap();
        let want: Vec<String> = (0..20).map(|i| format!("C{i:03}")).collect();
        assert_eq!(ids, want);
        let closed = db
            .scan::<Claim>("")
            .unwrap()
            .into_iter()
            .filter(|c| c.state == ClaimState::Closed)
            .count();
        assert_eq!(closed, 20);
        assert_eq!(db.scan::<Claim>("C").unwrap().len(), 50);
    }
}

/// Every file under `dir`, as bytes.
fn all_file_bytes(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(all_file_bytes(&entry.path()));
        } else {
            out.push((entry.path(), std::fs::read(entry.path()).unwrap()));
        }
    }
    out
}

fn files_containing(dir: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    all_file_bytes(dir)
        .into_iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(p, _)| p)
        .collect()
}

#[test]
fn raw_store_files_hold_no_patient_name_or_member_id() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled_db(dir.path());
        db.put(&patient()).unwrap();
        db.put(&coverage()).unwrap();
        db.flush().unwrap();
    }
    let files = all_file_bytes(dir.path());
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert!(total > 0, "the store wrote nothing");
    for needle in [NAME, SURNAME, MEMBER_ID, "1961-02-03", "Larkspur"] {
        let found = files_containing(dir.path(), needle);
        assert!(found.is_empty(), "{needle} in clear in {found:?}");
    }

    // Control: the same check does find the strings when they are
    // written without sealing, so the scan above can fail.
    let clear = tempfile::tempdir().unwrap();
    {
        let raw = SledStore::open(&clear.path().join("store"), 8 << 20).unwrap();
        let json = serde_json::to_vec(&(patient(), coverage())).unwrap();
        raw.put("patients", b"P0001", &json).unwrap();
        raw.flush().unwrap();
    }
    for needle in [NAME, MEMBER_ID] {
        assert!(
            !files_containing(clear.path(), needle).is_empty(),
            "control: {needle} not found in an unsealed store"
        );
    }
}

#[test]
fn insert_new_from_many_threads_has_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    for db in [sled_db(dir.path()), mem_db()] {
        const THREADS: usize = 16;
        let barrier = Barrier::new(THREADS);
        let winners: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (db, barrier) = (&db, &barrier);
                    s.spawn(move || {
                        let me = format!("host:{t}");
                        barrier.wait();
                        db.insert_new(&occurrence(&me)).unwrap().then_some(me)
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(winners.len(), 1, "winners: {winners:?}");
        let stored: Occurrence = db.get(&occurrence("x").key()).unwrap().unwrap();
        assert_eq!(stored.claimed_by, winners[0]);
        // A later claim of the same occurrence loses too.
        assert!(!db.insert_new(&occurrence("late")).unwrap());
    }
}

#[test]
fn update_under_contention_loses_no_increments() {
    let dir = tempfile::tempdir().unwrap();
    for db in [sled_db(dir.path()), mem_db()] {
        const THREADS: u64 = 8;
        const EACH: u64 = 100;
        db.put(&job_run("r/1")).unwrap();
        let calls = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..EACH {
                        db.update::<JobRun, _>("r/1", |r| {
                            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let mut r = r.expect("run present");
                            r.items_done += 1;
                            Some(r)
                        })
                        .unwrap();
                    }
                });
            }
        });
        let run: JobRun = db.get("r/1").unwrap().unwrap();
        assert_eq!(run.items_done, THREADS * EACH);
        assert!(calls.into_inner() >= THREADS * EACH);
    }
}

#[test]
fn update_creates_replaces_and_removes() {
    let db = mem_db();
    // Absent and f declines: nothing stored.
    assert_eq!(db.update::<Claim, _>("C9", |c| c).unwrap(), None);
    assert_eq!(db.get::<Claim>("C9").unwrap(), None);
    // Absent and f creates.
    let made = db
        .update::<Claim, _>("C9", |c| {
            assert!(c.is_none());
            Some(claim("C9"))
        })
        .unwrap();
    assert_eq!(made, Some(claim("C9")));
    // Present and f changes it; it sees the current value.
    db.update::<Claim, _>("C9", |c| {
        let mut c = c.unwrap();
        assert_eq!(c.state, ClaimState::Denied);
        c.state = ClaimState::Appealed;
        Some(c)
    })
    .unwrap();
    assert_eq!(
        db.get::<Claim>("C9").unwrap().unwrap().state,
        ClaimState::Appealed
    );
    // None removes.
    assert_eq!(db.update::<Claim, _>("C9", |_| None).unwrap(), None);
    assert_eq!(db.get::<Claim>("C9").unwrap(), None);
    assert!(db.raw().get(Claim::COLLECTION, b"C9").unwrap().is_none());
}

#[test]
fn value_moved_to_another_record_does_not_open() {
    let db = mem_db();
    db.put(&claim("C1")).unwrap();
    let sealed = db.raw().get(Claim::COLLECTION, b"C1").unwrap().unwrap();
    db.raw().put(Claim::COLLECTION, b"C2", &sealed).unwrap();
    let err = db.get::<Claim>("C2").unwrap_err();
    assert!(
        matches!(&err, StoreError::Decrypt { collection, key } if collection == "claims" && key == "C2"),
        "{err:?}"
    );
    // Same key, another collection (a claim passed off as a task).
    db.raw().put(Task::COLLECTION, b"C1", &sealed).unwrap();
    assert!(matches!(
        db.get::<Task>("C1"),
        Err(StoreError::Decrypt { .. })
    ));
    // A tampered byte in the stored value.
    let mut bad = sealed.clone();
    *bad.last_mut().unwrap() ^= 1;
    db.raw().put(Claim::COLLECTION, b"C1", &bad).unwrap();
    assert!(matches!(
        db.get::<Claim>("C1"),
        Err(StoreError::Decrypt { .. })
    ));
    assert!(matches!(
        db.scan::<Claim>(""),
        Err(StoreError::Decrypt { .. })
    ));
}

#[test]
fn open_sled_checks_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let key_a = dir.path().join("a.key");
    let key_b = dir.path().join("b.key");
    StoreKey::generate_to(&key_a).unwrap();
    StoreKey::generate_to(&key_b).unwrap();

    // A bad key file fails before the store is created.
    let err = Db::open_sled(&store, &dir.path().join("none.key"), 1 << 20).unwrap_err();
    assert!(
        matches!(err, StoreError::Key(KeyFileError::Missing { .. })),
        "{err:?}"
    );
    assert!(!store.exists());

    {
        let db = Db::open_sled(&store, &key_a, 1 << 20).unwrap();
        db.put(&patient()).unwrap();
        db.flush().unwrap();
    }
    let err = Db::open_sled(&store, &key_b, 1 << 20).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err:?}");
    assert!(msg.contains(&key_b.display().to_string()), "{msg}");
    let db = Db::open_sled(&store, &key_a, 1 << 20).unwrap();
    assert_eq!(db.get::<Patient>("P0001").unwrap(), Some(patient()));

    // Even without the check, another key cannot read the records.
    let other = Db::new(db.raw().clone(), StoreKey::load(&key_b).unwrap());
    assert!(matches!(
        other.get::<Patient>("P0001"),
        Err(StoreError::Decrypt { .. })
    ));
    // A second open in the same process is refused too (sled's lock).
    assert!(matches!(
        Db::open_sled(&store, &key_a, 1 << 20),
        Err(StoreError::Locked { .. })
    ));
}

#[test]
fn debug_output_shows_no_key_or_records() {
    let db = mem_db();
    db.put(&patient()).unwrap();
    let shown = format!("{db:?}");
    assert_eq!(shown, "Db { .. }");
}
