//! {{ name }}: a billd EHR connector.
//!
//! Reads the schedule from a JSON API. Only `appointments` is implemented;
//! every other operation answers "unsupported" until you write it.

use billd_plugin_sdk::ehr::*;
use billd_plugin_sdk::prelude::*;
use serde::Deserialize;

struct Connector;

/// One visit as the API lists it.
#[derive(Deserialize)]
struct Visit {
    id: String,
    patient: String,
    npi: String,
    /// Seconds since the Unix epoch.
    start: i64,
    minutes: u32,
    status: String,
    room: Option<String>,
}

fn status(text: &str) -> Result<AppointmentStatus, ConnectorError> {
    Ok(match text {
        "booked" => AppointmentStatus::Booked,
        "arrived" => AppointmentStatus::Arrived,
        "fulfilled" => AppointmentStatus::Fulfilled,
        "cancelled" => AppointmentStatus::Cancelled,
        "no-show" => AppointmentStatus::NoShow,
        other => {
            return Err(ConnectorError::rejected(
                "unknown-status",
                format!("the EHR answered an appointment status {other:?}"),
            ));
        }
    })
}

impl EhrConnector for Connector {
    fn appointments(_key: &str, window: Window) -> Result<Vec<Appointment>, ConnectorError> {
        if window.end.seconds <= window.start.seconds {
            return Err(ConnectorError::invalid(
                "window.end",
                "must be after window.start",
            ));
        }
        let base = settings::require_text("base-url")?;
        let token = secrets::require("api-key")?;
        let visits: Vec<Visit> = Request::get(format!(
            "{base}/appointments?start={}&end={}",
            window.start.seconds, window.end.seconds
        ))
        .bearer(&token)
        .send()?
        .error_for_status()?
        .json()?;
        // Log counts and ids, never patient data.
        log::debug(&format!("{} appointments in the window", visits.len()));
        visits
            .into_iter()
            .map(|v| {
                Ok(Appointment {
                    appointment_id: v.id,
                    patient_id: v.patient,
                    provider_npi: v.npi,
                    start: Timestamp {
                        seconds: v.start,
                        nanoseconds: 0,
                    },
                    minutes: v.minutes,
                    status: status(&v.status)?,
                    location: v.room,
                })
            })
            .collect()
    }
}

billd_plugin_sdk::export_ehr_connector!(Connector);
