//! Routed notifications as stored records: one [`Delivery`] per task and
//! destination, written (and flushed) before anything is sent, so a restart
//! sends what was queued and nothing that was sent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::routing::Destination;
use crate::store::{Record, time_key};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Stored, not yet accepted (never tried, or waiting for a retry).
    Queued,
    /// Accepted by the receiver (a 2xx, or the mail transport).
    Sent,
    /// Refused (a 4xx, a bad address) or out of retries.
    Failed,
}

/// One notification of one task to one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// `{task id}/{destination}`: the webhook-id (and Message-ID) of every
    /// attempt.
    pub key: String,
    /// The task it tells about.
    pub task_id: String,
    /// Where it goes.
    pub to: Destination,
    /// Email subject (unused for webhooks).
    pub subject: String,
    /// The webhook's JSON body, or the email's text: the same bytes on
    /// every attempt.
    pub body: String,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Queued, sent or failed.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (while queued).
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt did not succeed (status or transport error,
    /// never a body).
    #[serde(default)]
    pub last_error: Option<String>,
}

/// The key of the delivery of `task_id` to `to`.
pub fn delivery_key(task_id: &str, to: &Destination) -> String {
    format!("{task_id}/{}", to.label())
}

/// The index of queued deliveries by when their next attempt is due; sent
/// and failed ones are not in it.
pub const QUEUED_BY_DUE: &str = "queued_due";
/// The index of sent and failed deliveries by when they were queued (for
/// retention); queued ones are not in it.
pub const DONE_BY_CREATED: &str = "done_created";

impl Record for Delivery {
    const COLLECTION: &'static str = "deliveries";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &[QUEUED_BY_DUE, DONE_BY_CREATED];
    fn key(&self) -> String {
        self.key.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        if self.status == DeliveryStatus::Queued {
            vec![(QUEUED_BY_DUE, time_key(self.next_attempt_at))]
        } else {
            vec![(DONE_BY_CREATED, time_key(self.created_at))]
        }
    }
}

/// Marks a task whose routes have been turned into deliveries (written in
/// the same transaction as they are), so each task is routed once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRouted {
    /// The task.
    pub task_id: String,
    /// How many deliveries it made (0 when no route matched).
    pub deliveries: u32,
}

impl Record for TaskRouted {
    const COLLECTION: &'static str = "task_routed";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.task_id.clone()
    }
}
