//! The `ehr-sync` job end to end: `billd jobs run` of the job through the
//! real fhir-ehr connector against `billd-sandbox fhir` over loopback,
//! serving the Synthea 10-patient export and the HL7 R4 examples. Shows the
//! counts a sync imports and the tasks for what it cannot, that a second
//! sync changes nothing, that changed and new resources come in on the
//! next run (releasing what was held back for them) and a signed visit
//! becomes a draft claim, and that a failed SMART token exchange becomes a
//! task the next run recovers from.

use crate::fhir_ehr::{CLIENT, KID, fixture_patients, hl7, smart_sandbox, testdata};
use billd_e2e::{FhirSandbox, Scratch, base_config, fhir_plugin_table, stderr, stdout};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The payers table: the HL7 coverages name Organization/2 by reference
/// and an insurer by identifier value; the generated ones name
/// Organization/gen-payer.
const PAYERS: &str = r#"[job.params.payers]
"Organization/2" = "60054"
"123456789" = "87726"
"Organization/gen-payer" = "00590"
"#;

/// A practice with the connector (`auth` settings, `extra` plugin lines)
/// and an ehr-sync job named `ehr`; `files` (name, text) are written beside
/// the configuration first.
fn practice(fhir: &FhirSandbox, auth: &str, extra: &str, files: &[(&str, &str)]) -> Scratch {
    let s = Scratch::new();
    for (name, text) in files {
        std::fs::write(s.path(name), text).unwrap();
    }
    s.write_config(&format!(
        r#"{}
[[job]]
name = "ehr"
kind = "ehr-sync"
schedule = "0 0 3 1 1 *"

[job.params]
connector = "fhir-ehr"
appointment_days = 7
retry_delay = "10ms"
max_attempts = 1
{PAYERS}
{}"#,
        base_config("outbox_dir = \"outbox\""),
        fhir_plugin_table(
            &fhir.origin(),
            &format!(", page-size = 25, timeout-ms = 10000{auth}"),
            extra
        ),
    ));
    s.init();
    s
}

fn bearer(fhir: &FhirSandbox) -> Scratch {
    practice(
        fhir,
        ", auth = \"bearer\"",
        "secrets = { bearer-token = \"file:fhir.token\" }",
        &[("fhir.token", "e2e-static-token\n")],
    )
}

fn json_of(s: &Scratch, args: &[&str]) -> Value {
    let out = s.run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// Runs the job once; returns what `jobs run` printed, asserting it
/// succeeded.
fn sync(s: &Scratch) -> String {
    let out = s.run(&["jobs", "run", "ehr"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

/// Runs the job once, expecting it to fail; returns what it printed.
fn failed_sync(s: &Scratch) -> String {
    let out = s.run(&["jobs", "run", "ehr"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    format!("{}{}", stdout(&out), stderr(&out))
}

fn status(s: &Scratch) -> Value {
    json_of(s, &["ehr", "status", "--json"])
}

fn last_counts(s: &Scratch) -> Value {
    status(s)["last_syncs"][0]["counts"].clone()
}

/// Open tasks by kind.
fn open_tasks(s: &Scratch) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let list = json_of(s, &["tasks", "list", "--json"]);
    for t in list.as_array().unwrap() {
        if t["status"] == "open" {
            out.entry(t["kind"].as_str().unwrap().to_string())
                .or_default()
                .push(t["subject"].as_str().unwrap().to_string());
        }
    }
    out
}

/// The fixtures' finished encounters without a date: a billable visit
/// billd cannot date is a task.
fn undated_finished_encounters() -> usize {
    let dir = billd_e2e::workspace_root().join("tests/fixtures/fhir/hl7-r4-examples");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("Encounter-")
        })
        .map(|p| serde_json::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap())
        .filter(|e| e["status"] == "finished" && e["period"]["start"].is_null())
        .count()
}

#[test]
fn a_sync_of_the_fixtures_imports_what_maps_tasks_the_rest_and_a_second_sync_changes_nothing() {
    let fhir = FhirSandbox::start(&["--static-token", "e2e-static-token"]);
    let s = bearer(&fhir);
    let printed = sync(&s);
    assert!(printed.contains("succeeded"), "{printed}");

    let st = status(&s);
    let patients = fixture_patients();
    // Two HL7 examples (pat1, pat2) have no birth date: tasks, not patients.
    assert_eq!(
        st["records"]["patients"],
        patients.len() as u64 - 2,
        "{st:#}"
    );
    // The HL7 coverages are for patients 4 and 5, whom neither export has,
    // and SP1234 is self-pay (payor Patient/5): all four are held back.
    assert_eq!(st["records"]["coverages"], 0);
    let mut held: Vec<(String, String)> = st["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["key"].as_str().unwrap().to_string(),
                h["problem"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .nth(2)
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    held.sort();
    assert_eq!(
        held,
        [
            ("fhir-ehr/Coverage/7546D".into(), "unknown-patient".into()),
            ("fhir-ehr/Coverage/7547E".into(), "unknown-patient".into()),
            ("fhir-ehr/Coverage/9876B1".into(), "unknown-patient".into()),
            ("fhir-ehr/Coverage/SP1234".into(), "unmapped-payer".into()),
        ]
    );
    let tasks = open_tasks(&s);
    let unusable = &tasks["ehr-unusable"];
    assert_eq!(
        unusable.len(),
        2 + undated_finished_encounters(),
        "{tasks:#?}"
    );
    assert!(
        unusable
            .iter()
            .any(|t| t.contains("Patient pat1") && t.contains("birth-date"))
    );
    assert!(
        unusable
            .iter()
            .any(|t| t.contains("Encounter f001") && t.contains("service-date"))
    );
    assert_eq!(tasks["ehr-unknown-patient"].len(), 3);
    assert_eq!(tasks["ehr-unmapped-payer"].len(), 1);
    // Task subjects carry ids and field names, never names of patients.
    for subject in tasks.values().flatten() {
        for name in ["Chalmers", "Heuvel", "Roel", "Donald", "Windsor"] {
            assert!(!subject.contains(name), "{subject}");
        }
    }
    // Synthea's 1,215 encounters are finished but carry no charges in the
    // bulk export: counted, no claim, no task each.
    let c = last_counts(&s);
    assert!(c["no_charges"].as_u64().unwrap() >= 1_215, "{c}");
    assert_eq!(st["records"]["claims"], 0);
    // 25 a page: the listings took several pages each.
    let pages = fhir.stats()["requests"].as_u64().unwrap();
    assert!(pages > 100, "{pages} requests");

    // Nothing changed at the EHR: the second sync writes no record.
    let before = status(&s);
    let tasks_before = open_tasks(&s);
    sync(&s);
    let after = status(&s);
    let c = &after["last_syncs"][0]["counts"];
    assert_eq!(
        (
            c["created"].as_u64(),
            c["updated"].as_u64(),
            c["refused"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{c}"
    );
    assert_eq!(c["received"], 0, "every listing resumed at its end");
    assert_eq!(after["records"], before["records"]);
    assert_eq!(after["cursors"], before["cursors"]);
    assert_eq!(after["held"], before["held"]);
    assert_eq!(open_tasks(&s), tasks_before);
}

#[test]
fn what_was_held_comes_in_with_its_patient_a_changed_patient_is_updated_and_a_signed_visit_is_billed()
 {
    let fhir = FhirSandbox::start(&["--static-token", "e2e-static-token"]);
    let s = bearer(&fhir);
    sync(&s);

    // Patient 5 arrives: coverages 7546D (Organization/2) and 7547E (by
    // identifier) come in and their tasks close.
    fhir.put(&json!({"resourceType": "Patient", "id": "5", "birthDate": "1974-12-25",
        "gender": "female", "name": [{"family": "Fivewood", "given": ["Erin"]}],
        "address": [{"line": ["5 Elm St"], "city": "Springfield", "state": "IL", "postalCode": "62701"}]}));
    // A changed patient: the HL7 example gets a phone number.
    let mut example = hl7("Patient-example.json");
    example["telecom"] = json!([{"system": "phone", "value": "555-0100"}]);
    fhir.put(&example);
    // A signed visit of that patient with a CPT charge, and a coverage.
    let day = (chrono::Utc::now().date_naive() - chrono::Days::new(3)).to_string();
    fhir.put(
        &json!({"resourceType": "Coverage", "id": "cov-example", "status": "active",
        "subscriberId": "W123456789", "beneficiary": {"reference": "Patient/example"},
        "relationship": {"coding": [{"code": "self"}]},
        "payor": [{"reference": "Organization/2"}], "order": 1,
        "period": {"start": "2020-01-01"}}),
    );
    fhir.put(&json!({"resourceType": "Encounter", "id": "visit-e2e", "status": "finished",
        "class": {"code": "AMB"}, "subject": {"reference": "Patient/example"},
        "participant": [{"individual": {"identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}}}],
        "period": {"start": day},
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J06.9"}]}]}));
    fhir.put(&json!({"resourceType": "ChargeItem", "id": "ci-e2e", "status": "billable",
        "subject": {"reference": "Patient/example"}, "context": {"reference": "Encounter/visit-e2e"},
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]},
        "quantity": {"value": 1}, "priceOverride": {"value": 125.0, "currency": "USD"},
        "occurrenceDateTime": day}));
    sync(&s);

    let c = last_counts(&s);
    assert_eq!(c["released"], 2, "{c}");
    // Patient 5 and the two coverages held for it are new, as are the
    // example's coverage and the claim; the example patient changed.
    assert_eq!(c["created"], 5, "{c}");
    assert_eq!(c["updated"], 1, "{c}");
    let st = status(&s);
    assert_eq!(st["records"]["coverages"], 3);
    let held: Vec<&str> = st["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        held,
        ["fhir-ehr/Coverage/9876B1", "fhir-ehr/Coverage/SP1234"]
    );
    assert_eq!(open_tasks(&s)["ehr-unknown-patient"].len(), 1);

    let claims = json_of(&s, &["claims", "list", "--json"]);
    let claims = claims.as_array().unwrap();
    assert_eq!(claims.len(), 1, "{claims:#?}");
    let claim = json_of(
        &s,
        &[
            "claims",
            "show",
            claims[0]["id"].as_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(claim["state"], "draft");
    assert_eq!(claim["payer_id"], "60054");
    assert_eq!(claim["coverage_id"], "cov-example");
    assert_eq!(claim["total_charge_cents"], 12_500);
    assert_eq!(claim["diagnoses"], json!(["J069"]));
    assert_eq!(claim["lines"][0]["procedure"], "99213");

    // A third run with nothing new changes nothing.
    sync(&s);
    let c = last_counts(&s);
    assert_eq!(
        (c["created"].as_u64(), c["updated"].as_u64()),
        (Some(0), Some(0)),
        "{c}"
    );
}

#[test]
fn a_failed_token_exchange_becomes_a_task_and_the_next_run_recovers() {
    let (fhir, _dir) = smart_sandbox("300");
    let s = practice(
        &fhir,
        &format!(
            ", auth = \"smart\", token-url = \"{}/auth/token\", client-id = \"{CLIENT}\", scopes = \"system/Patient.rs system/Coverage.rs system/Appointment.rs system/Encounter.rs\"",
            fhir.origin()
        ),
        &format!(
            "signing_keys = {{ client-key = {{ key = \"file:{}\", kid = \"{KID}\" }} }}",
            testdata("ec-p384.pem").display()
        ),
        &[],
    );
    // The token endpoint refuses the exchange.
    fhir.post(
        "/_sandbox/faults",
        r#"[{"path": "/auth/token", "status": 401}]"#,
    );
    let printed = failed_sync(&s);
    assert!(printed.contains("1 failed"), "{printed}");
    assert!(printed.contains("invalid_client"), "{printed}");
    let tasks = open_tasks(&s);
    let failing = &tasks["job-failing"];
    assert_eq!(failing.len(), 1, "{tasks:#?}");
    assert!(failing[0].contains("authentication"), "{failing:?}");
    assert_eq!(status(&s)["records"]["patients"], 0);
    assert_eq!(fhir.stats()["token_refusals"], 1);

    // The next run gets a token and syncs everything.
    let printed = sync(&s);
    assert!(printed.contains("succeeded"), "{printed}");
    assert_eq!(
        status(&s)["records"]["patients"],
        fixture_patients().len() as u64 - 2
    );
    assert_eq!(fhir.stats()["tokens_issued"], 1);
}

#[test]
fn a_listing_failing_midway_keeps_the_pages_before_it_and_the_next_run_resumes_after_them() {
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Days::new(1)).to_string();
    let fhir = FhirSandbox::start_with(
        billd_e2e::sandbox_bin(),
        &[
            "--generate",
            "100",
            "--generate-day",
            &tomorrow,
            "--static-token",
            "e2e-static-token",
        ],
    );
    let s = bearer(&fhir);
    // Four pages of 25 patients; the third fails (a 400 is no retry), while
    // the job reads pages ahead of what it writes.
    fhir.post(
        "/_sandbox/faults",
        r#"[{"path": "/fhir/Patient", "status": 400, "after": 2}]"#,
    );
    let printed = failed_sync(&s);
    assert!(printed.contains("1 failed"), "{printed}");
    assert_eq!(
        fhir.stats()["faults_pending"],
        0,
        "the third page was asked for"
    );
    let records = &status(&s)["records"];
    assert_eq!(
        records["patients"], 50,
        "the two pages before it: {records}"
    );
    assert_eq!(records["coverages"], 0, "later stages wait: {records}");

    // The next run starts after the second page, not from the start.
    sync(&s);
    let records = &status(&s)["records"];
    for kind in ["patients", "coverages", "appointments"] {
        assert_eq!(records[kind], 100, "{kind}: {records}");
    }
    let counts = last_counts(&s);
    assert_eq!(
        counts["received"], 250,
        "patients 51-100, every coverage and appointment: {counts}"
    );
    assert_eq!(counts["created"], 250, "{counts}");
}
