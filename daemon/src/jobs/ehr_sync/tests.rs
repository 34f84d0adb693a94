use super::*;
use crate::clock::ManualClock;
use crate::domain::task::{self, TaskStatus};
use crate::plugin::bindings::types as wit;
use chrono::TimeZone;
use tokio_util::sync::CancellationToken;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 14, 0, 0).unwrap()
}

fn job_with(db: &Db, payers: &[(&str, &str)], plugins: Option<Arc<PluginRegistry>>) -> EhrSyncJob {
    let dir = std::env::temp_dir();
    let mut services =
        super::super::registry::test_services(db, Arc::new(ManualClock::new(now())), &dir);
    services.plugins = plugins;
    let params = EhrSyncParams {
        connector: "echo-ehr".into(),
        payers: payers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        appointment_days: Some(7),
        claims: None,
        max_attempts: Some(1),
        retry_delay: None,
    };
    let setup = JobSetup {
        name: "ehr-sync".into(),
        timezone: chrono_tz::UTC,
    };
    EhrSyncJob::new(params, &setup, &services).unwrap()
}

fn job(db: &Db) -> EhrSyncJob {
    job_with(db, &[("Organization/aetna", "60054")], None)
}

fn ctx(db: &Db, run: &str) -> RunContext {
    RunContext {
        db: db.clone(),
        clock: Arc::new(ManualClock::new(now())),
        job: "ehr-sync".into(),
        run_id: run.into(),
        occurrence: None,
        cancel: CancellationToken::new(),
    }
}

fn name(last: &str) -> wit::PersonName {
    wit::PersonName {
        last: last.into(),
        first: "Ann".into(),
        middle: None,
        suffix: None,
    }
}

fn patient(id: &str) -> ehr::Patient {
    ehr::Patient {
        patient_id: id.into(),
        name: name("Quillfeather"),
        birth_date: wit::Date {
            year: 1980,
            month: 2,
            day: 3,
        },
        sex: wit::Sex::Female,
        address: None,
        email: None,
        phone: None,
    }
}

fn coverage(id: &str, patient: &str, payer: &str) -> ehr::Coverage {
    ehr::Coverage {
        coverage_id: id.into(),
        patient_id: patient.into(),
        payer_id: payer.into(),
        payer_name: "Aetna".into(),
        subscriber: wit::Subscriber {
            member_id: "W123456789".into(),
            name: name("Quillfeather"),
            birth_date: wit::Date {
                year: 1980,
                month: 2,
                day: 3,
            },
            sex: wit::Sex::Female,
            group_number: None,
            address: None,
        },
        relationship: None,
        priority: ehr::CoveragePriority::Primary,
        start: Some(wit::Date {
            year: 2026,
            month: 1,
            day: 1,
        }),
        end: None,
        active: true,
    }
}

fn encounter(id: &str, patient: &str, code: &str, signed: bool) -> ehr::Encounter {
    let day = wit::Date {
        year: 2026,
        month: 2,
        day: 27,
    };
    ehr::Encounter {
        encounter_id: id.into(),
        patient_id: patient.into(),
        appointment_id: None,
        service_date: day,
        rendering_npi: "1234567893".into(),
        place_of_service: "11".into(),
        diagnoses: vec!["J06.9".into()],
        charges: vec![ehr::Charge {
            charge_id: format!("{id}-1"),
            procedure: wit::Procedure {
                code_set: wit::ProcedureCodeSet::Cpt,
                code: code.into(),
                modifiers: vec![],
            },
            units: 1,
            amount: 12_500,
            diagnosis_pointers: vec![1],
            service_date: day,
        }],
        signed,
    }
}

fn put<T>(db: &Db, f: impl Fn(&mut Tx<'_>) -> Result<T, StoreError>) -> T {
    db.transact(|tx| f(tx)).unwrap()
}

fn open_tasks(db: &Db) -> Vec<crate::domain::Task> {
    task::open(db).unwrap()
}

#[test]
fn records_land_once_and_the_same_records_again_write_nothing() {
    let db = Db::in_memory();
    let j = job(&db);
    let at = now();
    for _ in 0..2 {
        put(&db, |tx| j.place_patient(tx, at, patient("p1")));
        put(&db, |tx| {
            j.place_raw_coverage(tx, at, coverage("c1", "p1", "Organization/aetna"))
        });
    }
    let again = put(&db, |tx| j.place_patient(tx, at, patient("p1")));
    assert_eq!(again, Placed::Written(Upsert::Unchanged));
    let c = db.get::<Coverage>("c1").unwrap().unwrap();
    assert_eq!(c.payer_id, "60054", "mapped through the payers table");
    let mut changed = patient("p1");
    changed.email = Some("ann@example.org".into());
    assert_eq!(
        put(&db, |tx| j.place_patient(tx, at, changed.clone())),
        Placed::Written(Upsert::Updated)
    );
    assert!(open_tasks(&db).is_empty());
}

#[test]
fn the_payer_table_also_matches_the_payer_name() {
    let db = Db::in_memory();
    let j = job_with(&db, &[("aetna", "60054")], None);
    put(&db, |tx| j.place_patient(tx, now(), patient("p1")));
    let placed = put(&db, |tx| {
        j.place_raw_coverage(tx, now(), coverage("c1", "p1", "Organization/9"))
    });
    assert_eq!(placed, Placed::Written(Upsert::Created));
    assert_eq!(db.get::<Coverage>("c1").unwrap().unwrap().payer_id, "60054");
}

#[test]
fn an_unmapped_payer_holds_the_coverage_with_a_task_until_the_table_names_it() {
    let db = Db::in_memory();
    let j = job_with(&db, &[], None);
    put(&db, |tx| j.place_patient(tx, now(), patient("p1")));
    let placed = put(&db, |tx| {
        j.place_raw_coverage(tx, now(), coverage("c1", "p1", "Organization/aetna"))
    });
    assert_eq!(placed, Placed::Held);
    assert!(db.get::<Coverage>("c1").unwrap().is_none());
    let tasks = open_tasks(&db);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].kind, "ehr-unmapped-payer");
    assert!(
        tasks[0].subject.contains("Organization/aetna"),
        "{}",
        tasks[0].subject
    );
    assert!(!tasks[0].subject.contains("Quillfeather") && !tasks[0].subject.contains("W123456789"));
    // Still unmapped: held again, no second task.
    let c = ctx(&db, "r1");
    assert_eq!(j.release_held(&c).unwrap().held, 1);
    assert_eq!(open_tasks(&db).len(), 1);
    // The table now names it: a later run brings it in and closes the task.
    let fixed = job(&db);
    let counts = fixed.release_held(&ctx(&db, "r2")).unwrap();
    assert_eq!((counts.released, counts.created), (1, 1));
    assert_eq!(db.get::<Coverage>("c1").unwrap().unwrap().payer_id, "60054");
    assert!(open_tasks(&db).is_empty());
    assert!(db.scan::<EhrHeld>("").unwrap().is_empty());
    let closed = task::all(&db).unwrap();
    assert_eq!(closed[0].status, TaskStatus::Closed);
}

#[test]
fn a_coverage_before_its_patient_waits_for_the_patient() {
    let db = Db::in_memory();
    let j = job(&db);
    let placed = put(&db, |tx| {
        j.place_raw_coverage(tx, now(), coverage("c1", "p9", "Organization/aetna"))
    });
    assert_eq!(placed, Placed::Held);
    assert_eq!(open_tasks(&db)[0].kind, "ehr-unknown-patient");
    put(&db, |tx| j.place_patient(tx, now(), patient("p9")));
    assert_eq!(j.release_held(&ctx(&db, "r")).unwrap().released, 1);
    assert!(db.get::<Coverage>("c1").unwrap().is_some());
    assert!(open_tasks(&db).is_empty());
}

#[test]
fn a_coverage_without_payor_and_a_patient_without_a_birth_date_become_tasks() {
    let db = Db::in_memory();
    let j = job(&db);
    let mut bad = patient("p2");
    bad.birth_date = wit::Date {
        year: 0,
        month: 0,
        day: 0,
    };
    assert_eq!(
        put(&db, |tx| j.place_patient(tx, now(), bad.clone())),
        Placed::Refused
    );
    put(&db, |tx| j.place_patient(tx, now(), patient("p1")));
    assert_eq!(
        put(&db, |tx| j.place_raw_coverage(
            tx,
            now(),
            coverage("c1", "p1", "")
        )),
        Placed::Refused
    );
    let tasks = open_tasks(&db);
    let subjects: Vec<&str> = tasks.iter().map(|t| t.subject.as_str()).collect();
    assert_eq!(tasks.len(), 2, "{subjects:?}");
    assert!(tasks.iter().all(|t| t.kind == "ehr-unusable"));
    assert!(
        subjects[0].contains("Patient p2") && subjects[0].contains("birth-date"),
        "{subjects:?}"
    );
    assert!(
        subjects[1].contains("Coverage c1") && subjects[1].contains("payer-id"),
        "{subjects:?}"
    );
    // A fixed version from the EHR closes the task.
    put(&db, |tx| j.place_patient(tx, now(), patient("p2")));
    assert_eq!(open_tasks(&db).len(), 1);
}

fn appointment(id: &str, patient: &str) -> ehr::Appointment {
    ehr::Appointment {
        appointment_id: id.into(),
        patient_id: patient.into(),
        provider_npi: "1234567893".into(),
        start: wit::Timestamp {
            seconds: now().timestamp() + 86_400,
            nanoseconds: 0,
        },
        minutes: 15,
        status: ehr::AppointmentStatus::Booked,
        location: None,
    }
}

#[test]
fn a_run_reads_only_the_problems_on_record_and_still_closes_each() {
    let db = Db::in_memory();
    let j = job(&db);
    let mut bad = patient("p1");
    bad.birth_date.month = 13;
    // An earlier run: an unusable patient, a coverage and an appointment
    // for a patient billd does not know yet.
    put(&db, |tx| j.place_patient(tx, now(), bad.clone()));
    put(&db, |tx| {
        j.place_raw_coverage(tx, now(), coverage("c2", "p2", "Organization/aetna"))
    });
    put(&db, |tx| {
        j.place_appointment(tx, now(), appointment("a2", "p2"))
    });
    assert_eq!(open_tasks(&db).len(), 3);

    // This run knows which problems are on record.
    j.learn_problems(&db).unwrap();
    let reads = |f: &dyn Fn(&mut Tx<'_>) -> Result<Placed, StoreError>| {
        db.transact(|tx| {
            let placed = f(tx)?;
            Ok::<_, StoreError>((placed, tx.reads()))
        })
        .unwrap()
    };
    // A clean patient with no problem: only its own record is read.
    let (placed, n) = reads(&|tx| j.place_patient(tx, now(), patient("p3")));
    assert_eq!((placed, n), (Placed::Written(Upsert::Created), 1));
    // An appointment of a known patient: the patient and the record.
    let (_, n) = reads(&|tx| j.place_appointment(tx, now(), appointment("a3", "p3")));
    assert_eq!(n, 2);
    // Each problem on record is still read and closed.
    put(&db, |tx| j.place_patient(tx, now(), patient("p1")));
    put(&db, |tx| j.place_patient(tx, now(), patient("p2")));
    assert_eq!(j.release_held(&ctx(&db, "r")).unwrap().released, 1);
    put(&db, |tx| {
        j.place_appointment(tx, now(), appointment("a2", "p2"))
    });
    assert!(open_tasks(&db).is_empty(), "{:#?}", open_tasks(&db));

    // A problem the run itself raises is closed later in the same run.
    put(&db, |tx| {
        j.place_raw_coverage(tx, now(), coverage("c4", "p4", "Organization/aetna"))
    });
    put(&db, |tx| {
        j.place_appointment(tx, now(), appointment("a4", "p4"))
    });
    assert_eq!(open_tasks(&db).len(), 2);
    put(&db, |tx| j.place_patient(tx, now(), patient("p4")));
    assert_eq!(j.release_held(&ctx(&db, "r")).unwrap().released, 1);
    put(&db, |tx| {
        j.place_appointment(tx, now(), appointment("a4", "p4"))
    });
    assert!(open_tasks(&db).is_empty(), "{:#?}", open_tasks(&db));
    assert!(db.scan::<EhrHeld>("").unwrap().is_empty());
}

#[test]
fn a_signed_encounter_becomes_a_draft_claim_once() {
    let db = Db::in_memory();
    let j = job(&db);
    put(&db, |tx| j.place_patient(tx, now(), patient("p1")));
    put(&db, |tx| {
        j.place_raw_coverage(tx, now(), coverage("c1", "p1", "Organization/aetna"))
    });
    assert_eq!(
        put(&db, |tx| j.place_raw_encounter(
            &db,
            tx,
            now(),
            encounter("e1", "p1", "99213", false)
        )),
        Placed::Unsigned
    );
    assert!(
        db.scan::<Claim>("").unwrap().is_empty(),
        "not billable before it is signed"
    );
    let signed = encounter("e1", "p1", "99213", true);
    assert_eq!(
        put(&db, |tx| j.place_raw_encounter(
            &db,
            tx,
            now(),
            signed.clone()
        )),
        Placed::Written(Upsert::Created)
    );
    assert_eq!(
        put(&db, |tx| j.place_raw_encounter(
            &db,
            tx,
            now(),
            signed.clone()
        )),
        Placed::Written(Upsert::Unchanged)
    );
    let claims = db.scan::<Claim>("").unwrap();
    assert_eq!(claims.len(), 1);
    let c = &claims[0];
    assert_eq!(c.state, ClaimState::Draft);
    assert_eq!(
        (c.payer_id.as_str(), c.coverage_id.as_str()),
        ("60054", "c1")
    );
    assert_eq!(c.diagnoses, ["J069"]);
    assert_eq!(c.total_charge_cents, 12_500);
    assert!(c.control_number.len() <= 20 && !c.control_number.contains("e1"));
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    // Sent, then changed in the EHR: the claim stays, a task says so.
    db.modify::<Claim, _>(&c.id, |c| c.state = ClaimState::Submitted)
        .unwrap();
    let changed = encounter("e1", "p1", "99214", true);
    assert_eq!(
        put(&db, |tx| j.place_raw_encounter(
            &db,
            tx,
            now(),
            changed.clone()
        )),
        Placed::Held
    );
    assert_eq!(
        db.get::<Claim>(&c.id).unwrap().unwrap().lines[0].procedure,
        "99213"
    );
    assert_eq!(open_tasks(&db)[0].kind, "ehr-changed-after-submission");
}

#[test]
fn an_encounter_without_a_code_or_coverage_is_not_billed_and_says_why() {
    let db = Db::in_memory();
    let j = job(&db);
    put(&db, |tx| j.place_patient(tx, now(), patient("p1")));
    assert_eq!(
        put(&db, |tx| j.place_raw_encounter(
            &db,
            tx,
            now(),
            encounter("e1", "p1", "", true)
        )),
        Placed::Refused
    );
    assert_eq!(
        put(&db, |tx| j.place_raw_encounter(
            &db,
            tx,
            now(),
            encounter("e2", "p1", "99213", true)
        )),
        Placed::Held
    );
    let kinds: Vec<String> = open_tasks(&db).into_iter().map(|t| t.kind).collect();
    assert_eq!(kinds, ["ehr-unusable", "ehr-no-coverage"]);
    // The coverage arrives: the held encounter is billed on the next run.
    put(&db, |tx| {
        j.place_raw_coverage(tx, now(), coverage("c1", "p1", "Organization/aetna"))
    });
    assert_eq!(j.release_held(&ctx(&db, "r")).unwrap().released, 1);
    assert_eq!(db.scan::<Claim>("").unwrap().len(), 1);
    let kinds: Vec<String> = open_tasks(&db).into_iter().map(|t| t.kind).collect();
    assert_eq!(kinds, ["ehr-unusable"]);
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
        name: "s".into(),
        timezone: chrono_tz::UTC,
    };
    let t: toml::Table = toml::from_str("connector = \"ehr\"\nappointment_days = 400").unwrap();
    let e = super::super::registry::build("ehr-sync", &t, &setup, &services)
        .err()
        .expect("refused");
    assert_eq!(e.key, "appointment_days");
    let t: toml::Table = toml::from_str("connector = \"ehr\"\n[payers]\n\"Org/1\" = \"\"").unwrap();
    let e = super::super::registry::build("ehr-sync", &t, &setup, &services)
        .err()
        .expect("refused");
    assert_eq!(e.key, "payers.Org/1");
    let t: toml::Table = toml::from_str("connectr = \"ehr\"").unwrap();
    assert!(!(KIND.check)("ehr-sync", &t).is_empty());
}

#[tokio::test]
async fn a_run_reads_each_listing_to_its_end_and_the_next_run_writes_nothing() {
    use crate::plugin::PluginSpec;
    use crate::plugin::tests::{dist, test_host};
    let t = test_host(crate::plugin::PluginTrust::default());
    let registry = Arc::new(
        PluginRegistry::load(
            Arc::new(t.host),
            &[PluginSpec::unpinned("echo-ehr", &dist("echo-ehr"))],
        )
        .unwrap(),
    );
    let db = Db::in_memory();
    let j = job_with(&db, &[], Some(registry));
    let first = j.sync(&ctx(&db, "r1")).await.unwrap();
    // One patient and one appointment; coverages and encounters are
    // listings this connector does not offer.
    assert_eq!((first.received, first.created), (2, 2), "{first:?}");
    assert_eq!(
        db.get::<ConnectorCursor>("echo-ehr/patients")
            .unwrap()
            .unwrap()
            .cursor
            .as_deref(),
        Some("cursor-1")
    );
    let appts = db.scan::<crate::domain::Appointment>("").unwrap();
    assert_eq!(appts.len(), 1);
    assert_eq!(
        appts[0].start,
        local_midnight(now().date_naive(), chrono_tz::UTC)
    );
    let second = j.sync(&ctx(&db, "r2")).await.unwrap();
    assert_eq!((second.created, second.updated), (0, 0), "{second:?}");
    assert_eq!(second.unchanged, 1, "the appointment, fetched again");
}
