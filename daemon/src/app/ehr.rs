//! What the EHR sync has brought in and what it holds back: the cursors
//! each connector's listings stand at, the resources waiting (with their
//! tasks), and how many patients, coverages, appointments and claims the
//! store holds. On-call engineers and billers read it with `billd ehr
//! status`.

use serde::{Deserialize, Serialize};

use super::{App, AppError};
use crate::domain::task::TaskDedupe;
use crate::domain::{Appointment, Claim, Coverage, Patient};
use crate::jobs::cursor::ConnectorCursor;
use crate::jobs::ehr_sync::{EhrHeld, HeldResource, LastSync, STREAMS};

/// Where one listing stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorLine {
    /// The connector.
    pub connector: String,
    /// `patients`, `coverages` or `encounters`.
    pub stream: String,
    /// The connector's cursor (opaque).
    pub cursor: Option<String>,
}

/// A resource held back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldLine {
    /// `<connector>/<Kind>/<id>`.
    pub key: String,
    /// `Coverage` or `Encounter`.
    pub kind: String,
    /// The open task that says why, if it is still open.
    pub task: Option<String>,
    /// The task's dedupe key (names the problem).
    pub problem: String,
}

/// How many records of each kind the store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCounts {
    /// Patients.
    pub patients: u64,
    /// Coverages.
    pub coverages: u64,
    /// Appointments.
    pub appointments: u64,
    /// Claims.
    pub claims: u64,
}

/// The EHR sync's standing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EhrStatus {
    /// Every listing's cursor.
    pub cursors: Vec<CursorLine>,
    /// Resources held back.
    pub held: Vec<HeldLine>,
    /// Records on file.
    pub records: RecordCounts,
    /// What each ehr-sync job's latest run did.
    #[serde(default)]
    pub last_syncs: Vec<LastSync>,
}

/// The EHR sync's standing.
pub fn status(app: &App) -> Result<EhrStatus, AppError> {
    let db = app.db();
    let cursors = db
        .scan::<ConnectorCursor>("")?
        .into_iter()
        .filter_map(|c| {
            let (connector, stream) = c.parts();
            STREAMS.contains(&stream).then(|| CursorLine {
                connector: connector.to_string(),
                stream: stream.to_string(),
                cursor: c.cursor.clone(),
            })
        })
        .collect();
    let mut held = Vec::new();
    for h in db.scan::<EhrHeld>("")? {
        let task = db.get::<TaskDedupe>(&h.task_key)?.map(|d| d.task_id);
        held.push(HeldLine {
            kind: match h.resource {
                HeldResource::Coverage(_) => "Coverage",
                HeldResource::Encounter(_) => "Encounter",
            }
            .to_string(),
            key: h.key,
            task,
            problem: h.task_key,
        });
    }
    Ok(EhrStatus {
        cursors,
        held,
        records: RecordCounts {
            patients: db.count::<Patient>()?,
            coverages: db.count::<Coverage>()?,
            appointments: db.count::<Appointment>()?,
            claims: db.count::<Claim>()?,
        },
        last_syncs: db.scan::<LastSync>("")?,
    })
}
