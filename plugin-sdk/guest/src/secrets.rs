//! Secrets the manifest declares and the practice supplies. Keep them out
//! of logs and error messages.

use crate::payer_world::billd::connector0_1_0::host::secret;
use crate::types::ConnectorError;

/// The secret called `name`, if supplied.
pub fn get(name: &str) -> Option<String> {
    secret(name)
}

/// A secret that must be supplied; its absence is an authentication error
/// (a person must fix the configuration).
pub fn require(name: &str) -> Result<String, ConnectorError> {
    secret(name)
        .ok_or_else(|| ConnectorError::authentication(format!("secret {name:?} is not configured")))
}
