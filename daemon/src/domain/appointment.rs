//! Appointments: the practice's schedule, which the eligibility sweep reads
//! to know whose coverage to check before they arrive.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::ops::Bound;

use crate::store::{Db, Record, StoreError, time_key};

/// What happened to an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppointmentStatus {
    /// On the schedule.
    Booked,
    /// The patient is here.
    Arrived,
    /// The visit took place.
    Fulfilled,
    /// Called off.
    Cancelled,
    /// The patient did not come.
    NoShow,
}

/// A scheduled visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    /// Appointment id.
    pub id: String,
    /// The patient.
    pub patient_id: String,
    /// Rendering provider's NPI.
    pub provider_npi: String,
    /// Start of the visit.
    pub start: DateTime<Utc>,
    /// Length in minutes.
    #[serde(default)]
    pub minutes: u32,
    /// Status from the EHR.
    pub status: AppointmentStatus,
}

/// The index of appointments by start time.
pub const BY_START: &str = "start";

impl Record for Appointment {
    const COLLECTION: &'static str = "appointments";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &[BY_START];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        vec![(BY_START, time_key(self.start))]
    }
}

/// Appointments starting in `[from, to)`, earliest first (for example
/// tomorrow's schedule in the practice's timezone). Read through the index.
pub fn starting_between(
    db: &Db,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Appointment>, StoreError> {
    let (lo, hi) = (time_key(from), time_key(to));
    Ok(db
        .index_range::<Appointment>(
            BY_START,
            Bound::Included(&lo),
            Bound::Excluded(&hi),
            None,
            false,
        )?
        .items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn appointments_in_a_window_come_from_the_index_in_order() {
        let db = Db::in_memory();
        let at = |d, h| Utc.with_ymd_and_hms(2026, 12, d, h, 0, 0).unwrap();
        for (id, d, h) in [("A3", 3, 9), ("A1", 2, 15), ("A2", 2, 8), ("A4", 1, 23)] {
            db.put(&Appointment {
                id: id.into(),
                patient_id: "P1".into(),
                provider_npi: "1234567893".into(),
                start: at(d, h),
                minutes: 15,
                status: AppointmentStatus::Booked,
            })
            .unwrap();
        }
        let before = db.decode_count();
        let got: Vec<String> = starting_between(&db, at(2, 0), at(3, 0))
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(got, ["A2", "A1"]);
        assert_eq!(db.decode_count() - before, 2);
    }
}
