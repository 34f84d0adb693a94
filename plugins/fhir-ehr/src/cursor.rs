//! The cursor of a `*-changed` listing, as billd stores it: JSON with the
//! Bundle `next` link to resume a listing mid-way, and the highest
//! `meta.lastUpdated` seen (the next listing asks `_lastUpdated=gt` it).

use billd_plugin_sdk::types::ConnectorError;
use serde::{Deserialize, Serialize};

/// Where a listing stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The Bundle `next` link still to follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The highest `meta.lastUpdated` seen, as the server wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

impl Cursor {
    /// Reads billd's cursor (`None`: from the start).
    ///
    /// # Errors
    /// An invalid-request error when it is not one of ours.
    pub fn parse(text: Option<&str>) -> Result<Self, ConnectorError> {
        match text {
            None | Some("") => Ok(Self::default()),
            Some(t) => serde_json::from_str(t).map_err(|e| {
                ConnectorError::invalid("since", format!("not a cursor of this connector: {e}"))
            }),
        }
    }

    /// The cursor after seeing resources updated at `stamps`: the same
    /// position with the high-water mark raised.
    #[must_use]
    pub fn advanced<'a>(&self, stamps: impl Iterator<Item = &'a str>) -> Self {
        let mut best = self.since.clone();
        let mut best_at = best.as_deref().and_then(parse);
        for stamp in stamps {
            if let Some(at) = parse(stamp)
                && best_at.is_none_or(|b| at > b)
            {
                best_at = Some(at);
                best = Some(stamp.to_owned());
            }
        }
        Self {
            next: None,
            since: best,
        }
    }
}

fn parse(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s).ok()
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_water_mark_compares_instants_not_text() {
        let c = Cursor::parse(Some(r#"{"since":"2026-01-01T10:00:00+02:00"}"#)).unwrap();
        let stamps = ["2026-01-01T08:30:00Z", "2026-01-01T07:59:00Z"];
        let after = c.advanced(stamps.into_iter());
        assert_eq!(after.since.as_deref(), Some("2026-01-01T08:30:00Z"));
        let round = Cursor::parse(Some(&after.to_string())).unwrap();
        assert_eq!(round, after);
        assert!(Cursor::parse(Some("garbage")).is_err());
        assert_eq!(Cursor::parse(None).unwrap(), Cursor::default());
    }
}
