//! Settings the manifest declares, with the practice's values or the
//! manifest's defaults.

use crate::payer_world::billd::connector0_1_0::host::{SettingValue, setting};
use crate::types::ConnectorError;

/// A text setting.
pub fn text(name: &str) -> Option<String> {
    match setting(name) {
        Some(SettingValue::Text(s)) => Some(s),
        _ => None,
    }
}

/// An integer setting.
pub fn integer(name: &str) -> Option<i64> {
    match setting(name) {
        Some(SettingValue::Integer(i)) => Some(i),
        _ => None,
    }
}

/// A boolean setting.
pub fn boolean(name: &str) -> Option<bool> {
    match setting(name) {
        Some(SettingValue::Boolean(b)) => Some(b),
        _ => None,
    }
}

/// A text setting that must be present; its absence is an invalid-request
/// error naming `settings.<name>`.
pub fn require_text(name: &str) -> Result<String, ConnectorError> {
    text(name).ok_or_else(|| {
        ConnectorError::invalid(format!("settings.{name}"), "setting is not configured")
    })
}
