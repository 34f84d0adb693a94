//! JWTs signed by billd with a private key the practice configured for this
//! plugin (`[signing_keys.NAME]` in the manifest, `signing_keys` on the
//! practice's `[[plugin]]` table). The key never enters the plugin: you
//! choose the claims, billd chooses the algorithm from the key (RS384 or
//! ES384) and writes the header (`alg`, `typ`, `kid`).
//!
//! ```no_run
//! let claims = serde_json::json!({
//!     "iss": "my-client-id", "sub": "my-client-id",
//!     "aud": "https://ehr.example/token", "exp": 1_700_000_300, "jti": "f3a1…",
//! });
//! let assertion = billd_plugin_sdk::signing::sign_jwt("smart", &claims.to_string())?;
//! # Ok::<(), billd_plugin_sdk::types::ConnectorError>(())
//! ```
//!
//! Needs billd 0.2 or later (contract `billd:connector@0.2.0`).

use crate::payer_world::billd::connector0_2_0::signing;
use crate::types::ConnectorError;

pub use signing::SigningError;

/// Signs `claims_json` (a JSON object) with the key named `key`. A key the
/// practice did not configure, or one that cannot sign, is an
/// authentication error (a person must fix the configuration); claims that
/// are not an object are an invalid request.
pub fn sign_jwt(key: &str, claims_json: &str) -> Result<String, ConnectorError> {
    signing::sign_jwt(key, claims_json).map_err(|e| match e {
        SigningError::UnknownKey(m) | SigningError::KeyUnusable(m) => {
            ConnectorError::authentication(m)
        }
        SigningError::InvalidClaims(m) => ConnectorError::invalid("claims", m),
    })
}
