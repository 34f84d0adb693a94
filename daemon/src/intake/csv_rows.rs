//! CSV exports of patients, coverages and appointments, read into domain
//! records. The columns are documented in docs/import.md and listed here
//! once ([`columns`]); a header row names them, in any order. Every row's
//! every problem is collected, so one pass over a bad file shows all of
//! them.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use std::collections::HashMap;

use super::{Problem, Refused};
use crate::domain::{
    Address, Appointment, AppointmentStatus, Coverage, Patient, PayerPriority, PersonName,
    Relationship, Sex,
};

/// Which records a CSV file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CsvKind {
    /// `billd import patients`.
    Patients,
    /// `billd import coverages`.
    Coverages,
    /// `billd import appointments`.
    Appointments,
}

impl CsvKind {
    /// The kind's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CsvKind::Patients => "patients",
            CsvKind::Coverages => "coverages",
            CsvKind::Appointments => "appointments",
        }
    }
}

/// One documented column: its header and whether every row needs it.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The header.
    pub name: &'static str,
    /// Whether a row must give it.
    pub required: bool,
}

const fn req(name: &'static str) -> Column {
    Column {
        name,
        required: true,
    }
}
const fn opt(name: &'static str) -> Column {
    Column {
        name,
        required: false,
    }
}

/// The columns of each kind, as docs/import.md documents them.
pub fn columns(kind: CsvKind) -> &'static [Column] {
    match kind {
        CsvKind::Patients => {
            const COLUMNS: &[Column] = &[
                req("id"),
                req("last_name"),
                req("first_name"),
                opt("middle_name"),
                opt("suffix"),
                req("birth_date"),
                req("sex"),
                opt("email"),
                opt("phone"),
                opt("address_line1"),
                opt("address_line2"),
                opt("city"),
                opt("state"),
                opt("postal_code"),
            ];
            COLUMNS
        }
        CsvKind::Coverages => {
            const COLUMNS: &[Column] = &[
                req("id"),
                req("patient_id"),
                req("payer_id"),
                req("payer_name"),
                req("member_id"),
                opt("group_number"),
                req("relationship"),
                opt("subscriber_last_name"),
                opt("subscriber_first_name"),
                opt("subscriber_birth_date"),
                req("priority"),
                opt("effective"),
                opt("terminated"),
            ];
            COLUMNS
        }
        CsvKind::Appointments => {
            const COLUMNS: &[Column] = &[
                req("id"),
                req("patient_id"),
                req("provider_npi"),
                req("start"),
                opt("minutes"),
                opt("status"),
            ];
            COLUMNS
        }
    }
}

/// The records one CSV file holds, each with its line.
#[derive(Debug, Clone, PartialEq)]
pub enum Rows {
    /// Patients.
    Patients(Vec<(u64, Patient)>),
    /// Coverages (without verdicts: those come from eligibility checks).
    Coverages(Vec<(u64, Coverage)>),
    /// Appointments.
    Appointments(Vec<(u64, Appointment)>),
}

/// Reads a whole CSV file of `kind`; local times (appointments without an
/// offset) are read in `tz`. Any problem refuses the whole file.
pub fn read(kind: CsvKind, file: &str, text: &str, tz: chrono_tz::Tz) -> Result<Rows, Refused> {
    let refuse = |problems| Refused {
        file: file.to_string(),
        problems,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| refuse(vec![csv_problem(&e)]))?
        .clone();
    let cols = columns(kind);
    let mut index = HashMap::new();
    let mut problems = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        if !cols.iter().any(|c| c.name == h) {
            let known: Vec<&str> = cols.iter().map(|c| c.name).collect();
            problems.push(Problem::at(
                1,
                h,
                format!(
                    "unknown column for {}; expected {}",
                    kind.name(),
                    known.join(", ")
                ),
            ));
        } else if index.insert(h.to_string(), i).is_some() {
            problems.push(Problem::at(1, h, "column given twice"));
        }
    }
    for c in cols.iter().filter(|c| c.required) {
        if !index.contains_key(c.name) {
            problems.push(Problem::at(1, c.name, "required column missing"));
        }
    }
    if !problems.is_empty() {
        return Err(refuse(problems));
    }
    let mut out = match kind {
        CsvKind::Patients => Rows::Patients(Vec::new()),
        CsvKind::Coverages => Rows::Coverages(Vec::new()),
        CsvKind::Appointments => Rows::Appointments(Vec::new()),
    };
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(csv_problem(&e));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let mut row = Row {
            record: &record,
            index: &index,
            line,
            problems: &mut problems,
        };
        let id = row.text("id");
        if let Some(id) = &id {
            if let Some(first) = seen.insert(id.clone(), line) {
                row.problem("id", &format!("the same id as line {first}"));
            }
            if id.len() > 64 || id.chars().any(|c| c.is_control() || c == '/') {
                row.problem(
                    "id",
                    "an id is at most 64 characters, without `/` or controls",
                );
            }
        }
        match &mut out {
            Rows::Patients(v) => {
                if let Some(p) = patient(&mut row, id) {
                    v.push((line, p));
                }
            }
            Rows::Coverages(v) => {
                if let Some(c) = coverage(&mut row, id) {
                    v.push((line, c));
                }
            }
            Rows::Appointments(v) => {
                if let Some(a) = appointment(&mut row, id, tz) {
                    v.push((line, a));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(refuse(problems))
    }
}

fn csv_problem(e: &csv::Error) -> Problem {
    let line = e.position().map(|p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_string(),
        _ => "not readable as CSV".to_string(),
    };
    Problem {
        line,
        field: None,
        message,
    }
}

/// One data row being read, collecting its problems.
struct Row<'a> {
    record: &'a csv::StringRecord,
    index: &'a HashMap<String, usize>,
    line: u64,
    problems: &'a mut Vec<Problem>,
}

impl Row<'_> {
    fn problem(&mut self, column: &str, message: &str) {
        self.problems.push(Problem::at(self.line, column, message));
    }

    /// The column's value, `None` when absent or empty.
    fn get(&self, column: &str) -> Option<String> {
        let i = *self.index.get(column)?;
        let v = self.record.get(i)?.trim();
        (!v.is_empty()).then(|| v.to_string())
    }

    /// A required column's value (a problem when empty).
    fn text(&mut self, column: &str) -> Option<String> {
        let v = self.get(column);
        if v.is_none() {
            self.problem(column, "required, but empty");
        }
        v
    }

    fn date(&mut self, column: &str, required: bool) -> Option<NaiveDate> {
        let v = if required {
            self.text(column)?
        } else {
            self.get(column)?
        };
        let d = NaiveDate::parse_from_str(&v, "%Y-%m-%d").ok();
        if d.is_none() {
            self.problem(column, "not a date (YYYY-MM-DD)");
        }
        d
    }

    fn choice<T: Copy>(&mut self, column: &str, options: &[(&str, T)]) -> Option<T> {
        let v = self.text(column)?;
        let found = options
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&v))
            .map(|(_, t)| *t);
        if found.is_none() {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            self.problem(column, &format!("must be one of {}", names.join(", ")));
        }
        found
    }
}

fn patient(row: &mut Row<'_>, id: Option<String>) -> Option<Patient> {
    let last = row.text("last_name");
    let first = row.text("first_name");
    let birth_date = row.date("birth_date", true);
    let sex = row.choice(
        "sex",
        &[
            ("F", Sex::Female),
            ("M", Sex::Male),
            ("U", Sex::Unknown),
            ("female", Sex::Female),
            ("male", Sex::Male),
            ("unknown", Sex::Unknown),
        ],
    );
    let email = row.get("email");
    if email
        .as_deref()
        .is_some_and(|e| e.parse::<lettre::Address>().is_err())
    {
        row.problem("email", "not an email address");
    }
    let lines: Vec<String> = ["address_line1", "address_line2"]
        .iter()
        .filter_map(|c| row.get(c))
        .collect();
    let (city, state, postal) = (row.get("city"), row.get("state"), row.get("postal_code"));
    let address = if lines.is_empty() && city.is_none() && state.is_none() && postal.is_none() {
        None
    } else {
        for (col, v) in [
            ("address_line1", lines.first()),
            ("city", city.as_ref()),
            ("state", state.as_ref()),
            ("postal_code", postal.as_ref()),
        ] {
            if v.is_none() {
                row.problem(
                    col,
                    "an address needs its first line, city, state and postal code",
                );
            }
        }
        Some(Address {
            lines,
            city: city.unwrap_or_default(),
            state: state.unwrap_or_default(),
            postal_code: postal.unwrap_or_default(),
        })
    };
    Some(Patient {
        id: id?,
        name: PersonName {
            last: last?,
            first: first?,
            middle: row.get("middle_name"),
            suffix: row.get("suffix"),
        },
        birth_date: birth_date?,
        sex: sex?,
        email,
        phone: row.get("phone"),
        address,
    })
}

fn coverage(row: &mut Row<'_>, id: Option<String>) -> Option<Coverage> {
    let patient_id = row.text("patient_id");
    let payer_id = row.text("payer_id");
    let payer_name = row.text("payer_name");
    let member_id = row.text("member_id");
    let relationship = row.choice(
        "relationship",
        &[
            ("self", Relationship::SelfInsured),
            ("spouse", Relationship::Spouse),
            ("child", Relationship::Child),
            ("other", Relationship::Other),
        ],
    );
    let priority = row.choice(
        "priority",
        &[
            ("primary", PayerPriority::Primary),
            ("secondary", PayerPriority::Secondary),
            ("tertiary", PayerPriority::Tertiary),
        ],
    );
    let subscriber_birth_date = row.date("subscriber_birth_date", false);
    let subscriber_name = match (
        row.get("subscriber_last_name"),
        row.get("subscriber_first_name"),
    ) {
        (Some(last), Some(first)) => Some(PersonName {
            last,
            first,
            middle: None,
            suffix: None,
        }),
        (None, None) => None,
        (None, Some(_)) => {
            row.problem("subscriber_last_name", "given a first name, needs the last");
            None
        }
        (Some(_), None) => {
            row.problem(
                "subscriber_first_name",
                "given a last name, needs the first",
            );
            None
        }
    };
    if relationship.is_some_and(|r| r != Relationship::SelfInsured)
        && (subscriber_name.is_none() || subscriber_birth_date.is_none())
    {
        row.problem(
            "subscriber_last_name",
            "a dependent's coverage needs the subscriber's name and birth date",
        );
    }
    let effective = row.date("effective", false);
    let terminated = row.date("terminated", false);
    if let (Some(e), Some(t)) = (effective, terminated)
        && t < e
    {
        row.problem("terminated", "before the effective date");
    }
    Some(Coverage {
        id: id?,
        patient_id: patient_id?,
        payer_id: payer_id?,
        payer_name: payer_name?,
        member_id: member_id?,
        group_number: row.get("group_number"),
        relationship: relationship?,
        subscriber_name,
        subscriber_birth_date,
        priority: priority?,
        effective,
        terminated,
        verdict: None,
    })
}

fn appointment(row: &mut Row<'_>, id: Option<String>, tz: chrono_tz::Tz) -> Option<Appointment> {
    let patient_id = row.text("patient_id");
    let npi = row.text("provider_npi");
    if npi
        .as_deref()
        .is_some_and(|n| !crate::domain::scrub::npi_is_valid(n))
    {
        row.problem(
            "provider_npi",
            "not a ten-digit NPI with a valid check digit",
        );
    }
    let start = row.text("start").and_then(|s| {
        let at = parse_start(&s, tz);
        if at.is_none() {
            row.problem(
                "start",
                "not a time (RFC 3339, or YYYY-MM-DD HH:MM in the practice's timezone)",
            );
        }
        at
    });
    let minutes = match row.get("minutes") {
        None => 0,
        Some(m) => match m.parse::<u32>() {
            Ok(m) if m <= 24 * 60 => m,
            _ => {
                row.problem("minutes", "a whole number of minutes, at most 1440");
                0
            }
        },
    };
    let status = if row.get("status").is_some() {
        row.choice(
            "status",
            &[
                ("booked", AppointmentStatus::Booked),
                ("arrived", AppointmentStatus::Arrived),
                ("fulfilled", AppointmentStatus::Fulfilled),
                ("cancelled", AppointmentStatus::Cancelled),
                ("no-show", AppointmentStatus::NoShow),
            ],
        )?
    } else {
        AppointmentStatus::Booked
    };
    Some(Appointment {
        id: id?,
        patient_id: patient_id?,
        provider_npi: npi?,
        start: start?,
        minutes,
        status,
    })
}

/// An appointment's start: RFC 3339 with its offset, or a local date and
/// time in the practice's timezone (the earlier instant when a DST change
/// makes it ambiguous; none when it does not exist).
fn parse_start(s: &str, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let local = ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TZ: chrono_tz::Tz = chrono_tz::America::Chicago;

    #[test]
    fn patients_read_with_columns_in_any_order() {
        let text = "first_name,last_name,id,birth_date,sex,city,state,postal_code,address_line1\n\
                    Ann,Lee,P1,1980-02-03,F,Springfield,IL,62701,1 Main St\n\
                    Bo,Ray,P2,1990-12-31,m,,,,\n";
        let Rows::Patients(rows) = read(CsvKind::Patients, "p.csv", text, TZ).unwrap() else {
            panic!("patients")
        };
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].1.name.first, "Ann");
        assert_eq!(rows[0].1.address.as_ref().unwrap().city, "Springfield");
        assert_eq!(rows[1].1.sex, Sex::Male);
        assert!(rows[1].1.address.is_none());
    }

    #[test]
    fn every_problem_is_located_and_no_value_is_repeated() {
        let text = "id,last_name,first_name,birth_date,sex,colour\n\
                    P1,Lee,Ann,1980-02-30,F,blue\n";
        let e = read(CsvKind::Patients, "p.csv", text, TZ).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert_eq!(e.problems[0].field.as_deref(), Some("colour"));
        let text = "id,last_name,first_name,birth_date,sex\n\
                    P1,Lee,Ann,1980-02-30,F\n\
                    P2,,Bo,1990-01-01,X\n\
                    P1,Kim,Cy,1970-01-01,M\n\
                    P4,Lee\n";
        let e = read(CsvKind::Patients, "p.csv", text, TZ).unwrap_err();
        let shown: Vec<(Option<u64>, Option<&str>)> = e
            .problems
            .iter()
            .map(|p| (p.line, p.field.as_deref()))
            .collect();
        assert_eq!(
            shown,
            [
                (Some(2), Some("birth_date")),
                (Some(3), Some("last_name")),
                (Some(3), Some("sex")),
                (Some(4), Some("id")),
                (Some(5), None),
            ]
        );
        let text = e.to_string();
        assert!(
            text.starts_with("p.csv: 5 problem(s), nothing imported:"),
            "{text}"
        );
        assert!(text.contains("p.csv:2: birth_date: not a date"), "{text}");
        for value in ["1980-02-30", "Kim", "X\n"] {
            assert!(!text.contains(value), "{text}");
        }
    }

    #[test]
    fn a_dependent_coverage_needs_its_subscriber() {
        let text = "id,patient_id,payer_id,payer_name,member_id,relationship,priority\n\
                    C1,P1,60054,Aetna,W1,self,primary\n\
                    C2,P2,60054,Aetna,W1,child,secondary\n";
        let e = read(CsvKind::Coverages, "c.csv", text, TZ).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        assert_eq!(e.problems[0].line, Some(3));
    }

    #[test]
    fn appointment_times_are_read_in_the_practice_timezone() {
        let text = "id,patient_id,provider_npi,start,minutes\n\
                    A1,P1,1234567893,2026-12-02 09:30,15\n\
                    A2,P1,1234567893,2026-12-02T09:30:00Z,\n";
        let Rows::Appointments(rows) = read(CsvKind::Appointments, "a.csv", text, TZ).unwrap()
        else {
            panic!("appointments")
        };
        assert_eq!(rows[0].1.start.to_rfc3339(), "2026-12-02T15:30:00+00:00");
        assert_eq!(rows[1].1.start.to_rfc3339(), "2026-12-02T09:30:00+00:00");
        assert_eq!(rows[1].1.status, AppointmentStatus::Booked);
        let bad = "id,patient_id,provider_npi,start\nA1,P1,1234567890,tomorrow\n";
        let e = read(CsvKind::Appointments, "a.csv", bad, TZ).unwrap_err();
        let fields: Vec<_> = e
            .problems
            .iter()
            .map(|p| p.field.clone().unwrap())
            .collect();
        assert_eq!(fields, ["provider_npi", "start"]);
    }
}
