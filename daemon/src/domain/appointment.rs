//! Appointments: the practice's schedule, which the eligibility sweep reads
//! to know whose coverage to check before they arrive.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::Record;

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

impl Record for Appointment {
    const COLLECTION: &'static str = "appointments";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}
