//! The mail outbox: every outgoing message is rendered and stored before it
//! is sent, keyed so a retry sends the same message instead of a new one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::Record;

/// Where an outgoing message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Written, not yet handed to the transport.
    Queued,
    /// Accepted by the transport.
    Sent,
    /// Failed permanently.
    Failed,
}

/// An outgoing email, rendered and stored before it is sent, keyed so a
/// retry sends the same message (same Message-ID) instead of a new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Idempotency key (also the Message-ID's local part).
    pub key: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Delivery status.
    pub status: OutboxStatus,
    /// Send attempts.
    pub attempts: u32,
    /// Extra headers (name, value), for example `List-Unsubscribe` on a
    /// notice to a patient.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

/// The index of sent messages by the time they were queued (for
/// retention); queued and failed ones are not in it.
pub const SENT_BY_CREATED: &str = "sent_created";

impl Record for OutboxMessage {
    const COLLECTION: &'static str = "outbox";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &[SENT_BY_CREATED];
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        if self.status == OutboxStatus::Sent {
            vec![(SENT_BY_CREATED, crate::store::time_key(self.created_at))]
        } else {
            Vec::new()
        }
    }
    fn key(&self) -> String {
        self.key.clone()
    }
}
