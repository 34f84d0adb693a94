//! Import operations: CSV files of patients, coverages and appointments,
//! and 837P claim batches, written into the store.
//!
//! Each file is read whole first ([`crate::intake`]): a file with any
//! problem is refused and nothing of it is written. A readable file is
//! written in one transaction, so a crash leaves all of it or none.
//! Importing the same file again changes nothing: records are matched by
//! their ids (claims by billing provider and CLM01) and only what differs
//! is written. Imported claims are scrubbed; a claim with problems is kept
//! as a draft with one task naming the claim and the checks it failed.

use serde::{Deserialize, Serialize};

use super::{App, AppError};
use crate::domain::claim_source::{self, SourceWrite};
use crate::domain::patient::coverages_of_member;
use crate::domain::scrub::ScrubRules;
use crate::domain::{Appointment, Coverage, Patient};
use crate::intake::claims837::{self, ImportedClaim};
use crate::intake::csv_rows::{self, CsvKind, Rows};
use crate::intake::{Problem, Refused};
use crate::store::{StoreError, Upsert};

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The file, as named.
    pub file: String,
    /// What it held (`patients`, `claims`, ...).
    pub kind: String,
    /// Records new to the store.
    pub created: u64,
    /// Records that existed and changed.
    pub updated: u64,
    /// Records that existed as they are in the file.
    pub unchanged: u64,
    /// Claims already sent to the payer whose file version differs: kept
    /// as they are (a correction goes out as a replacement claim instead).
    #[serde(default)]
    pub kept_submitted: Vec<String>,
    /// Claims the scrubber flagged (each has a task).
    #[serde(default)]
    pub flagged: Vec<String>,
    /// Patients and coverages created for the claims of an 837.
    #[serde(default)]
    pub patients_created: u64,
}

impl ImportReport {
    fn count(&mut self, o: Upsert) {
        match o {
            Upsert::Created => self.created += 1,
            Upsert::Updated => self.updated += 1,
            Upsert::Unchanged => self.unchanged += 1,
        }
    }
}

/// Imports a CSV file of `kind` (its text, as read by the adapter).
pub fn csv(app: &App, kind: CsvKind, file: &str, text: &str) -> Result<ImportReport, AppError> {
    let rows = csv_rows::read(kind, file, text, app.config().practice.timezone)?;
    // References to patients must resolve before anything is written.
    let db = app.db();
    let mut problems = Vec::new();
    let mut check_patient = |line: u64, id: &str| -> Result<(), StoreError> {
        if db.get::<Patient>(id)?.is_none() {
            problems.push(Problem::at(
                line,
                "patient_id",
                "no patient with this id (import patients first)",
            ));
        }
        Ok(())
    };
    match &rows {
        Rows::Patients(_) => {}
        Rows::Coverages(v) => {
            for (line, c) in v {
                check_patient(*line, &c.patient_id)?;
            }
        }
        Rows::Appointments(v) => {
            for (line, a) in v {
                check_patient(*line, &a.patient_id)?;
            }
        }
    }
    if !problems.is_empty() {
        return Err(Refused {
            file: file.to_string(),
            problems,
        }
        .into());
    }
    let report = db.transact(|tx| {
        let mut report = ImportReport {
            file: file.to_string(),
            kind: kind.name().to_string(),
            ..ImportReport::default()
        };
        match &rows {
            Rows::Patients(v) => {
                for (_, p) in v {
                    report.count(tx.upsert(p)?);
                }
            }
            Rows::Coverages(v) => {
                for (_, c) in v {
                    // The file carries no verdict: keep the one on record.
                    let mut c = c.clone();
                    c.verdict = tx.get::<Coverage>(&c.id)?.and_then(|old| old.verdict);
                    report.count(tx.upsert(&c)?);
                }
            }
            Rows::Appointments(v) => {
                for (_, a) in v {
                    report.count(tx.upsert::<Appointment>(a)?);
                }
            }
        }
        Ok::<_, StoreError>(report)
    })?;
    db.flush()?;
    tracing::info!(
        kind = kind.name(),
        created = report.created,
        updated = report.updated,
        unchanged = report.unchanged,
        "import done"
    );
    Ok(report)
}

/// Binds an 837's patient and coverage to ones already on record for the
/// same card (payer and member id) when the name matches, and the birth
/// date too if the 837 gives one.
fn bind_to_known(app: &App, ic: &mut ImportedClaim) -> Result<bool, StoreError> {
    let db = app.db();
    for cov in coverages_of_member(db, &ic.coverage.payer_id, &ic.coverage.member_id)? {
        let Some(p) = db.get::<Patient>(&cov.patient_id)? else {
            continue;
        };
        let same = ic
            .patient
            .as_ref()
            .is_none_or(|q| q.birth_date == p.birth_date)
            && p.name.last.eq_ignore_ascii_case(&ic.patient_name.last)
            && p.name.first.eq_ignore_ascii_case(&ic.patient_name.first);
        if same {
            ic.claim.patient_id = p.id.clone();
            ic.claim.coverage_id = cov.id.clone();
            ic.patient = Some(p);
            ic.coverage = cov;
            return Ok(true);
        }
    }
    Ok(false)
}

pub use crate::domain::scrub::DEFAULT_TIMELY_FILING_DAYS;

/// Imports an 837P file (its bytes, as read by the adapter).
pub fn claims(app: &App, file: &str, bytes: &[u8]) -> Result<ImportReport, AppError> {
    let mut read = claims837::read(file, bytes)?;
    let mut problems = Vec::new();
    for ic in &mut read {
        if !bind_to_known(app, ic)? && ic.patient.is_none() {
            problems.push(Problem {
                line: None,
                field: Some(format!("segment {} DMG02", ic.segment)),
                message: format!(
                    "claim {}: no patient birth date, and no patient on record has this card and name (import patients and coverages first)",
                    ic.claim.control_number
                ),
            });
        }
    }
    if !problems.is_empty() {
        return Err(Refused {
            file: file.to_string(),
            problems,
        }
        .into());
    }
    let now = app.now();
    let rules = ScrubRules {
        today: now
            .with_timezone(&app.config().practice.timezone)
            .date_naive(),
        timely_filing_days: DEFAULT_TIMELY_FILING_DAYS,
    };
    let db = app.db();
    let report = db.transact(|tx| {
        let mut report = ImportReport {
            file: file.to_string(),
            kind: "claims".into(),
            ..ImportReport::default()
        };
        for ic in &read {
            if let Some(p) = &ic.patient
                && tx.get::<Patient>(&p.id)?.is_none()
            {
                tx.put(p)?;
                report.patients_created += 1;
            }
            if tx.get::<Coverage>(&ic.coverage.id)?.is_none() {
                tx.put(&ic.coverage)?;
            }
            let origin = format!("from {file}");
            let w = claim_source::write(tx, now, ic.claim.clone(), &origin, &rules)?;
            match w.write {
                SourceWrite::Created => report.created += 1,
                SourceWrite::Updated => report.updated += 1,
                SourceWrite::Unchanged => report.unchanged += 1,
                SourceWrite::KeptSubmitted => report.kept_submitted.push(ic.claim.id.clone()),
            }
            if w.flagged {
                report.flagged.push(ic.claim.id.clone());
            }
        }
        Ok::<_, StoreError>(report)
    })?;
    db.flush()?;
    tracing::info!(
        created = report.created,
        updated = report.updated,
        unchanged = report.unchanged,
        flagged = report.flagged.len(),
        "claims import done"
    );
    Ok(report)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{Claim, ClaimEventSource, ClaimState};

    const PATIENTS: &str = "id,last_name,first_name,birth_date,sex\n\
                            P1,Lee,Ann,1980-02-03,F\n\
                            P2,Ray,Bo,1990-12-31,M\n";

    #[test]
    fn a_csv_import_twice_changes_nothing_the_second_time() {
        let app = crate::app::testing::app("");
        let r = csv(&app, CsvKind::Patients, "p.csv", PATIENTS).unwrap();
        assert_eq!((r.created, r.updated, r.unchanged), (2, 0, 0));
        let r = csv(&app, CsvKind::Patients, "p.csv", PATIENTS).unwrap();
        assert_eq!((r.created, r.updated, r.unchanged), (0, 0, 2));
        let changed = PATIENTS.replace("Ray,Bo", "Ray,Beau");
        let r = csv(&app, CsvKind::Patients, "p.csv", &changed).unwrap();
        assert_eq!((r.created, r.updated, r.unchanged), (0, 1, 1));
    }

    #[test]
    fn a_bad_file_imports_nothing_at_all() {
        let app = crate::app::testing::app("");
        let bad = format!("{PATIENTS}P3,Kim,Cy,1970-13-01,M\n");
        let e = csv(&app, CsvKind::Patients, "p.csv", &bad).unwrap_err();
        assert!(e.to_string().contains("p.csv:4: birth_date"), "{e}");
        assert!(app.db().get::<Patient>("P1").unwrap().is_none());
        // A coverage naming an unknown patient refuses its whole file.
        csv(&app, CsvKind::Patients, "p.csv", PATIENTS).unwrap();
        let cov = "id,patient_id,payer_id,payer_name,member_id,relationship,priority\n\
                   C1,P1,60054,Aetna,W1,self,primary\n\
                   C2,P9,60054,Aetna,W2,self,primary\n";
        let e = csv(&app, CsvKind::Coverages, "c.csv", cov).unwrap_err();
        assert!(e.to_string().contains("c.csv:3: patient_id"), "{e}");
        assert!(app.db().get::<Coverage>("C1").unwrap().is_none());
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/x12/837P")
                .join(name),
        )
        .unwrap()
    }

    /// Public 837P samples that read cleanly, one claim each.
    pub(crate) const SAMPLES: [&str; 7] = [
        "lfh__demo.example1.837",
        "lfh__demo.example2.837",
        "lfh__demo.autoaccident.837",
        "lfh__demo.ambulance.example5.837",
        "lfh__demo.drug.example10.1.837",
        "lfh__demo.example12.837",
        "lfh__demo.example8.837",
    ];

    /// Imports every sample into `app`.
    pub(crate) fn import_samples(app: &App) -> Vec<ImportReport> {
        SAMPLES
            .iter()
            .map(|f| claims(app, f, &fixture(f)).unwrap())
            .collect()
    }

    #[test]
    fn an_837_imports_once_and_flags_what_the_scrubber_finds() {
        let app = crate::app::testing::app("");
        let first = import_samples(&app);
        assert!(first.iter().all(|r| r.created == 1), "{first:?}");
        let flagged: Vec<String> = first.iter().flat_map(|r| r.flagged.clone()).collect();
        let tasks = crate::domain::task::all(app.db()).unwrap();
        assert_eq!(tasks.len(), flagged.len());
        assert!(
            !tasks.is_empty(),
            "the samples are from 2006: past timely filing"
        );
        for t in &tasks {
            assert_eq!(t.kind, "claim-scrub");
            let id = t.subject.split(' ').nth(1).unwrap();
            let claim = app.db().get::<Claim>(id).unwrap().unwrap();
            assert!(!claim.problems.is_empty());
            assert_eq!(claim.state, ClaimState::Draft);
            assert_eq!(claim.history[0].source, ClaimEventSource::Import);
        }
        for again in import_samples(&app) {
            assert_eq!(
                (
                    again.created,
                    again.updated,
                    again.unchanged,
                    again.patients_created
                ),
                (0, 0, 1, 0)
            );
        }
        assert_eq!(
            crate::domain::task::all(app.db()).unwrap().len(),
            tasks.len()
        );
    }

    #[test]
    fn an_837_without_birth_dates_needs_the_patients_on_record() {
        let app = crate::app::testing::app("");
        // A copy of a public sample without the patient's DMG.
        let text = String::from_utf8(fixture("lfh__demo.example1.837")).unwrap();
        let text = text
            .replace("DMG*D8*19730501*M~", "")
            .replace("SE*40*0021", "SE*39*0021");
        let e = claims(&app, "v.837", text.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("DMG02"), "{e}");
        assert!(
            app.db()
                .get::<Claim>("1912301953-26463774")
                .unwrap()
                .is_none()
        );
        // With the patient and the card imported first, it binds to them.
        let p = "id,last_name,first_name,birth_date,sex\nPX,Smith,Ted,1973-05-01,M\n";
        csv(&app, CsvKind::Patients, "p.csv", p).unwrap();
        let c = "id,patient_id,payer_id,payer_name,member_id,relationship,priority,subscriber_last_name,subscriber_first_name,subscriber_birth_date\n\
                 CX,PX,999996666,Key,JS00111223333,child,primary,Smith,Jane,1970-01-01\n";
        csv(&app, CsvKind::Coverages, "c.csv", c).unwrap();
        let r = claims(&app, "v.837", text.as_bytes()).unwrap();
        assert_eq!((r.created, r.patients_created), (1, 0));
        let claim = app
            .db()
            .get::<Claim>("1912301953-26463774")
            .unwrap()
            .unwrap();
        assert_eq!(
            (claim.patient_id.as_str(), claim.coverage_id.as_str()),
            ("PX", "CX")
        );
    }
}
