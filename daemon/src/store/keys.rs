//! Key helpers shared by record types: keys are opaque ids chosen so that a
//! prefix or range scan returns what a caller needs in order. Keys never
//! hold patient data; values are sealed by [`super::Db`] before they reach
//! disk.

use chrono::{DateTime, Utc};

/// Zero-padded milliseconds since the epoch, so keys sort by time.
pub fn time_key(t: DateTime<Utc>) -> String {
    format!("{:015}", t.timestamp_millis().max(0))
}
