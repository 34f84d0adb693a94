//! A submission batch: the claims that go to a payer together in one 837P,
//! written down before the batch is sent.
//!
//! The batch's number comes from a store counter, so it never repeats, and
//! its idempotency key is fixed when the batch is formed: a retry, a later
//! run or a restart after a crash sends the same claims under the same key
//! (the same CORE PayloadID and interchange control number), never a
//! differently composed batch that would send a claim twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::Record;

/// Where a batch stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// Formed, not yet known to be received.
    Pending,
    /// The clearinghouse took it.
    Sent {
        /// Its id there (or the interchange control number).
        remote_id: String,
        /// When it was taken.
        at: DateTime<Utc>,
    },
    /// Refused as a whole; its claims went back to draft.
    Refused {
        /// The refusal's code.
        code: String,
    },
}

/// One submission batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimBatch {
    /// `SB` and the batch number (`SB000000042`).
    pub id: String,
    /// The batch number (a store counter; the interchange control number).
    pub number: u64,
    /// The connector it goes through.
    pub connector: String,
    /// The payer.
    pub payer_id: String,
    /// Its claims with the revision sent.
    pub claims: Vec<(String, u32)>,
    /// The idempotency key of the submission.
    pub key: String,
    /// When it was formed.
    pub created_at: DateTime<Utc>,
    /// Where it stands.
    pub state: BatchState,
}

/// The index of batches by state name (`pending`, `sent`, `refused`).
pub const BY_STATE: &str = "state";
/// The index of sent batches by their id at the clearinghouse.
pub const BY_REMOTE_ID: &str = "remote_id";

impl BatchState {
    /// The state's name, as the index keeps it.
    pub fn name(&self) -> &'static str {
        match self {
            BatchState::Pending => "pending",
            BatchState::Sent { .. } => "sent",
            BatchState::Refused { .. } => "refused",
        }
    }
}

impl Record for ClaimBatch {
    const COLLECTION: &'static str = "claim_batches";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &[BY_STATE, BY_REMOTE_ID];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        let mut keys = vec![(BY_STATE, self.state.name().to_string())];
        if let BatchState::Sent { remote_id, .. } = &self.state {
            keys.push((BY_REMOTE_ID, remote_id.clone()));
        }
        keys
    }
}

/// Batches not yet known to be received, oldest first.
pub fn pending(db: &crate::store::Db) -> Result<Vec<ClaimBatch>, crate::store::StoreError> {
    use std::ops::Bound::Included;
    Ok(db
        .index_range::<ClaimBatch>(
            BY_STATE,
            Included("pending"),
            Included("pending"),
            None,
            false,
        )?
        .items)
}

/// The id of batch `number`.
pub fn batch_id(number: u64) -> String {
    format!("SB{number:09}")
}

/// The sent batches the clearinghouse knows as `remote_id`.
pub fn sent_as(
    db: &crate::store::Db,
    remote_id: &str,
) -> Result<Vec<ClaimBatch>, crate::store::StoreError> {
    use std::ops::Bound::Included;
    Ok(db
        .index_range::<ClaimBatch>(
            BY_REMOTE_ID,
            Included(remote_id),
            Included(remote_id),
            None,
            false,
        )?
        .items)
}
