//! Where a connector's "changed since" listings were read up to: one
//! record per connector and listing, written in the same transaction as
//! what the page brought, so a crash or a retry resumes after the last
//! page kept and never applies one twice.

use serde::{Deserialize, Serialize};

use crate::store::{Db, Record, StoreError};

/// The cursor of one listing of one connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorCursor {
    /// `<connector>/<listing>` ([`ConnectorCursor::key_for`]).
    pub key: String,
    /// The connector's cursor (opaque to billd).
    pub cursor: Option<String>,
}

impl ConnectorCursor {
    /// The key of `connector`'s `listing` (`patients`, `agency-updates`).
    pub fn key_for(connector: &str, listing: &str) -> String {
        format!("{connector}/{listing}")
    }

    /// The connector and listing of this cursor.
    pub fn parts(&self) -> (&str, &str) {
        self.key.rsplit_once('/').unwrap_or((&self.key, ""))
    }
}

impl Record for ConnectorCursor {
    const COLLECTION: &'static str = "connector_cursors";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.key.clone()
    }
}

/// The stored cursor of `connector`'s `listing` (`None`: from the start).
pub fn stored(db: &Db, connector: &str, listing: &str) -> Result<Option<String>, StoreError> {
    Ok(db
        .get::<ConnectorCursor>(&ConnectorCursor::key_for(connector, listing))?
        .and_then(|c| c.cursor))
}
