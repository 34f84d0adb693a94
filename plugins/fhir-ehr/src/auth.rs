//! The credentials this connector shows a FHIR server.
//!
//! - `smart`: SMART Backend Services. A client-credentials grant at
//!   `token-url` with a JWT client assertion (`iss` = `sub` = `client-id`,
//!   `aud` = the token URL, `exp` four minutes ahead, a random `jti`) that
//!   billd signs with the practice's key `client-key` (RS384 or ES384, its
//!   `kid` in the header): the key never enters the plugin. The access
//!   token is kept in the plugin's state with its expiry and replaced a
//!   minute before it expires, or when the FHIR server refuses it.
//! - `bearer`: a static token (secret `bearer-token`).
//! - `none`: no credentials (an open test server).
//!
//! Setting `auth` picks one; left empty, `smart` when `token-url` is set,
//! else `bearer` when the secret is, else an authentication error.

use billd_plugin_sdk::prelude::*;
use billd_plugin_sdk::signing;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::fhirhttp::{encode, outcome_error, send};

/// The assertion type SMART Backend Services requires.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The signing key billd signs client assertions with.
pub const KEY_NAME: &str = "client-key";

/// How far ahead a client assertion expires, in seconds (SMART allows at
/// most five minutes; one is left for clock skew).
pub const ASSERTION_LIFETIME: i64 = 240;

/// A cached access token is replaced this many seconds before it expires.
pub const REFRESH_MARGIN: i64 = 60;

/// The lifetime assumed for an access token whose answer gives none.
pub const DEFAULT_TOKEN_LIFETIME: i64 = 300;

/// The scopes asked for when the setting `scopes` is empty.
pub const DEFAULT_SCOPES: &str = "system/Patient.rs system/Coverage.rs system/RelatedPerson.rs system/Encounter.rs system/Appointment.rs system/ChargeItem.rs system/Claim.rs";

/// The state key of the cached access token.
const TOKEN_STATE: &str = "smart-access-token";

/// A registered SMART Backend Services client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smart {
    /// The token endpoint (also the assertion's `aud`).
    pub token_url: String,
    /// The client id (`iss` and `sub`).
    pub client_id: String,
    /// Space-separated scopes.
    pub scopes: String,
}

/// The credentials in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    None,
    /// A static bearer token.
    Bearer(String),
    /// SMART Backend Services.
    Smart(Smart),
}

/// A bearer token to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The token.
    pub value: String,
    /// Whether it is a SMART access token from an earlier call (one the
    /// server may have revoked since), not one issued just now.
    pub cached: bool,
}

/// An access token as kept in the plugin's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedToken {
    /// The token.
    pub access_token: String,
    /// When it expires (unix seconds).
    pub expires_at: i64,
    /// The client, token URL and scopes it was issued for: a changed
    /// configuration does not reuse it.
    pub issued_for: String,
}

impl CachedToken {
    /// Whether it can still be used at `now` for `smart` (more than
    /// [`REFRESH_MARGIN`] before it expires).
    #[must_use]
    pub fn usable(&self, smart: &Smart, now: i64) -> bool {
        self.issued_for == smart.fingerprint() && now + REFRESH_MARGIN < self.expires_at
    }
}

impl Smart {
    fn fingerprint(&self) -> String {
        format!("{} {} {}", self.client_id, self.token_url, self.scopes)
    }
}

fn text(name: &str) -> String {
    settings::text(name)
        .map(|t| t.trim().to_owned())
        .unwrap_or_default()
}

impl Auth {
    /// The credentials the settings (`auth`, `token-url`, `client-id`,
    /// `scopes`) and the secret `bearer-token` describe.
    ///
    /// # Errors
    /// An authentication error naming what is missing; an invalid-request
    /// error for an unknown `auth`.
    pub fn from_settings() -> Result<Self, ConnectorError> {
        let bearer = secrets::get("bearer-token")
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        Self::choose(
            &text("auth"),
            &text("token-url"),
            &text("client-id"),
            &text("scopes"),
            bearer,
        )
    }

    /// [`Auth::from_settings`] over given values.
    ///
    /// # Errors
    /// As [`Auth::from_settings`].
    pub fn choose(
        mode: &str,
        token_url: &str,
        client_id: &str,
        scopes: &str,
        bearer: Option<String>,
    ) -> Result<Self, ConnectorError> {
        let mode = match mode {
            "" if !token_url.is_empty() => "smart",
            "" if bearer.is_some() => "bearer",
            "" => {
                return Err(ConnectorError::authentication(
                    "no credentials are configured: set token-url and client-id (SMART Backend Services) or the secret bearer-token",
                ));
            }
            m => m,
        };
        match mode {
            "none" => Ok(Self::None),
            "bearer" => bearer.map(Self::Bearer).ok_or_else(|| {
                ConnectorError::authentication(
                    "auth is bearer but the secret bearer-token is not set",
                )
            }),
            "smart" => {
                let missing: Vec<&str> = [("token-url", token_url), ("client-id", client_id)]
                    .iter()
                    .filter(|(_, v)| v.is_empty())
                    .map(|(k, _)| *k)
                    .collect();
                if !missing.is_empty() {
                    return Err(ConnectorError::authentication(format!(
                        "auth is smart but {} not set",
                        missing.join(" and ")
                    )));
                }
                if crate::fhirhttp::origin(token_url).is_none() {
                    return Err(ConnectorError::invalid(
                        "settings.token-url",
                        "must be an absolute http:// or https:// URL",
                    ));
                }
                Ok(Self::Smart(Smart {
                    token_url: token_url.to_owned(),
                    client_id: client_id.to_owned(),
                    scopes: if scopes.is_empty() {
                        DEFAULT_SCOPES.to_owned()
                    } else {
                        scopes.split_whitespace().collect::<Vec<_>>().join(" ")
                    },
                }))
            }
            other => Err(ConnectorError::invalid(
                "settings.auth",
                format!("{other:?} is not smart, bearer or none"),
            )),
        }
    }

    /// Whether tokens are SMART access tokens (a refused one can be
    /// dropped and replaced).
    #[must_use]
    pub fn renewable(&self) -> bool {
        matches!(self, Self::Smart(_))
    }

    /// The bearer token to send: the static one, or a SMART access token
    /// from the state while it is usable, else a new one from the token
    /// endpoint (then kept).
    ///
    /// # Errors
    /// From [`exchange`].
    pub fn token(&self, timeout_ms: u32) -> Result<Option<Token>, ConnectorError> {
        match self {
            Self::None => Ok(None),
            Self::Bearer(t) => Ok(Some(Token {
                value: t.clone(),
                cached: false,
            })),
            Self::Smart(smart) => {
                let now = billd_plugin_sdk::now().seconds;
                if let Some(c) = state::get_json::<CachedToken>(TOKEN_STATE)
                    && c.usable(smart, now)
                {
                    return Ok(Some(Token {
                        value: c.access_token,
                        cached: true,
                    }));
                }
                let fresh = exchange(smart, now, timeout_ms)?;
                state::set_json(TOKEN_STATE, &fresh)?;
                Ok(Some(Token {
                    value: fresh.access_token,
                    cached: false,
                }))
            }
        }
    }

    /// Drops a cached SMART access token (the server refused it).
    ///
    /// # Errors
    /// When the state cannot be written.
    pub fn forget(&self) -> Result<(), ConnectorError> {
        if self.renewable() {
            state::delete(TOKEN_STATE)?;
        }
        Ok(())
    }
}

/// A random `jti`: 128 bits from the host's entropy, in hex.
///
/// # Errors
/// A transient error when no entropy is available.
pub fn jti() -> Result<String, ConnectorError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| ConnectorError::transient(format!("no randomness for a jti: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The claims of a client assertion made at `now`.
#[must_use]
pub fn assertion_claims(smart: &Smart, now: i64, jti: &str) -> Value {
    json!({
        "iss": smart.client_id,
        "sub": smart.client_id,
        "aud": smart.token_url,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
        "jti": jti,
    })
}

/// The form body of a token request.
#[must_use]
pub fn token_form(smart: &Smart, assertion: &str) -> String {
    format!(
        "grant_type=client_credentials&scope={}&client_assertion_type={}&client_assertion={}",
        encode(&smart.scopes),
        encode(ASSERTION_TYPE),
        encode(assertion)
    )
}

/// Reads the token endpoint's answer, received at `now`.
///
/// # Errors
/// An authentication error for an OAuth refusal (400 or 401 with `error`,
/// e.g. `invalid_client`), naming the error and its description; a
/// rejection coded `malformed-response` for a success without a token;
/// [`outcome_error`] for other failures (5xx, 429).
pub fn token_answer(
    smart: &Smart,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<CachedToken, ConnectorError> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        let token = v["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ConnectorError::rejected(
                    "malformed-response",
                    "the token endpoint answered without an access_token",
                )
            })?;
        let lifetime = v["expires_in"]
            .as_i64()
            .or_else(|| v["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        return Ok(CachedToken {
            access_token: token.to_owned(),
            expires_at: now + lifetime,
            issued_for: smart.fingerprint(),
        });
    }
    if let Some(error) = v["error"]
        .as_str()
        .filter(|_| matches!(status, 400 | 401 | 403))
    {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        let why = v["error_description"]
            .as_str()
            .map(|d| {
                let d: String = d.chars().filter(|c| !c.is_control()).take(160).collect();
                format!(": {d}")
            })
            .unwrap_or_default();
        return Err(ConnectorError::authentication(format!(
            "the SMART token endpoint refused client {} ({error}){why}",
            smart.client_id
        )));
    }
    Err(match outcome_error(status, retry_after, body) {
        ConnectorError::Authentication(_) | ConnectorError::InvalidRequest(_) => {
            ConnectorError::authentication(format!(
                "the SMART token endpoint refused client {} (HTTP {status})",
                smart.client_id
            ))
        }
        other => other,
    })
}

/// Asks the token endpoint for a new access token with a fresh assertion
/// billd signs.
///
/// # Errors
/// An authentication error when the key is not configured or the client is
/// refused; transient or rate-limited errors when the endpoint fails.
pub fn exchange(smart: &Smart, now: i64, timeout_ms: u32) -> Result<CachedToken, ConnectorError> {
    let claims = assertion_claims(smart, now, &jti()?);
    let assertion = signing::sign_jwt(KEY_NAME, &claims.to_string())?;
    let resp = send(
        Request::post(smart.token_url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(token_form(smart, &assertion))
            .timeout_ms(timeout_ms),
    )?;
    let token = token_answer(
        smart,
        resp.status,
        resp.header("retry-after"),
        &resp.body,
        billd_plugin_sdk::now().seconds,
    )?;
    log::info("a new SMART access token was issued");
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smart() -> Smart {
        Smart {
            token_url: "http://127.0.0.1:8180/auth/token".into(),
            client_id: "billd".into(),
            scopes: DEFAULT_SCOPES.into(),
        }
    }

    #[test]
    fn the_mode_is_chosen_or_inferred_and_missing_parts_are_named() {
        let t = "http://127.0.0.1:8180/auth/token";
        assert!(
            matches!(Auth::choose("", t, "billd", "", None), Ok(Auth::Smart(s)) if s.scopes == DEFAULT_SCOPES)
        );
        assert_eq!(
            Auth::choose("", "", "", "", Some("tok".into())).unwrap(),
            Auth::Bearer("tok".into())
        );
        assert_eq!(Auth::choose("none", "", "", "", None).unwrap(), Auth::None);
        assert!(matches!(
            Auth::choose("", "", "", "", None),
            Err(ConnectorError::Authentication(m)) if m.contains("bearer-token")
        ));
        assert!(matches!(
            Auth::choose("smart", "", "", "", None),
            Err(ConnectorError::Authentication(m)) if m.contains("token-url and client-id")
        ));
        assert!(matches!(
            Auth::choose("bearer", t, "billd", "", None),
            Err(ConnectorError::Authentication(_))
        ));
        assert!(matches!(
            Auth::choose("smart", "token", "billd", "", None),
            Err(ConnectorError::InvalidRequest(f)) if f.field == "settings.token-url"
        ));
        assert!(matches!(
            Auth::choose("oauth", t, "billd", "", None),
            Err(ConnectorError::InvalidRequest(f)) if f.field == "settings.auth"
        ));
        match Auth::choose(
            "smart",
            t,
            "billd",
            " system/Patient.rs   system/Claim.rs ",
            None,
        ) {
            Ok(Auth::Smart(s)) => assert_eq!(s.scopes, "system/Patient.rs system/Claim.rs"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn assertion_claims_follow_smart_backend_services() {
        let c = assertion_claims(&smart(), 1_000, "j1");
        assert_eq!(c["iss"], "billd");
        assert_eq!(c["sub"], "billd");
        assert_eq!(c["aud"], "http://127.0.0.1:8180/auth/token");
        assert_eq!(c["jti"], "j1");
        let exp = c["exp"].as_i64().unwrap();
        assert!(exp > 1_000 && exp <= 1_000 + 300, "{exp}");
    }

    #[test]
    fn jtis_are_random_128_bit_hex() {
        let a = jti().unwrap();
        let b = jti().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_token_form_encodes_every_value() {
        let f = token_form(&smart(), "a.b-c_d");
        assert!(f.starts_with("grant_type=client_credentials&scope=system%2FPatient.rs%20"));
        assert!(f.contains(
            "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&"
        ));
        assert!(f.ends_with("&client_assertion=a.b-c_d"));
    }

    #[test]
    fn a_token_is_kept_until_a_minute_before_it_expires_and_for_its_client_only() {
        let s = smart();
        let t = token_answer(
            &s,
            200,
            None,
            br#"{"access_token": "abc", "token_type": "bearer", "expires_in": 300}"#,
            1_000,
        )
        .unwrap();
        assert_eq!(t.expires_at, 1_300);
        assert!(t.usable(&s, 1_000));
        assert!(t.usable(&s, 1_239));
        assert!(!t.usable(&s, 1_240));
        let other = Smart {
            client_id: "other".into(),
            ..s.clone()
        };
        assert!(!t.usable(&other, 1_000));
        let no_lifetime = token_answer(&s, 200, None, br#"{"access_token": "x"}"#, 0).unwrap();
        assert_eq!(no_lifetime.expires_at, DEFAULT_TOKEN_LIFETIME);
        assert!(matches!(
            token_answer(&s, 200, None, br#"{"token_type": "bearer"}"#, 0),
            Err(ConnectorError::Rejected(r)) if r.code == "malformed-response"
        ));
    }

    #[test]
    fn a_refused_exchange_is_an_authentication_error_and_a_failing_endpoint_is_not() {
        let s = smart();
        match token_answer(
            &s,
            401,
            None,
            br#"{"error": "invalid_client", "error_description": "the jti was used before"}"#,
            0,
        ) {
            Err(ConnectorError::Authentication(m)) => {
                assert!(m.contains("invalid_client"), "{m}");
                assert!(m.contains("jti was used before"), "{m}");
                assert!(m.contains("billd"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            token_answer(&s, 400, None, br#"{"error": "invalid_scope"}"#, 0),
            Err(ConnectorError::Authentication(m)) if m.contains("invalid_scope")
        ));
        assert!(matches!(
            token_answer(&s, 404, None, b"", 0),
            Err(ConnectorError::Authentication(m)) if m.contains("HTTP 404")
        ));
        assert!(matches!(
            token_answer(&s, 503, None, b"", 0),
            Err(ConnectorError::Transient(_))
        ));
        assert!(matches!(
            token_answer(&s, 429, Some("3"), b"", 0),
            Err(ConnectorError::RateLimited(r)) if r.retry_after_seconds == 3
        ));
    }
}
