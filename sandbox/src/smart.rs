//! The SMART Backend Services token endpoint of the `fhir` sandbox: the
//! client-credentials grant with a JWT client assertion, verified by
//! `jsonwebtoken` against the client's registered public keys (a JWKS
//! file). The assertion must be signed by a registered key (RS384 or
//! ES384), name the client as `iss` and `sub`, the token URL as `aud`,
//! expire at most five minutes ahead and carry a `jti` never seen before.
//! Every failure is `invalid_client` (RFC 6749 section 5.2).

use std::collections::{HashMap, HashSet};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

/// The assertion type SMART Backend Services requires.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest an assertion may live ahead of now, in seconds.
pub const MAX_ASSERTION_LIFETIME: i64 = 300;

/// Clock skew tolerated on `exp`, in seconds.
const LEEWAY: u64 = 5;

/// A registered client.
pub struct Client {
    /// The client id (`iss` and `sub` of its assertions).
    pub id: String,
    /// Its public keys.
    pub keys: JwkSet,
}

/// What the token endpoint knows and remembers.
pub struct TokenEndpoint {
    client: Client,
    /// The URL assertions must name as `aud`.
    audience: String,
    seen_jti: HashSet<String>,
    /// Issued access tokens and when each expires (unix seconds).
    issued: HashMap<String, i64>,
    /// Lifetime of the access tokens it issues, in seconds.
    pub lifetime: i64,
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    exp: i64,
    #[serde(default)]
    jti: Option<String>,
}

/// A refused request: the OAuth error code and a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `invalid_client`, `invalid_request`, `unsupported_grant_type`.
    pub error: &'static str,
    /// Why, for the client's log.
    pub description: String,
}

fn invalid_client(description: impl Into<String>) -> Refusal {
    Refusal {
        error: "invalid_client",
        description: description.into(),
    }
}

impl TokenEndpoint {
    /// An endpoint for one client, expecting `audience` as `aud`.
    #[must_use]
    pub fn new(client: Client, audience: String, lifetime: i64) -> Self {
        Self {
            client,
            audience,
            seen_jti: HashSet::new(),
            issued: HashMap::new(),
            lifetime,
        }
    }

    /// Handles one token request's form at `now` (unix seconds): an access
    /// token, or why not.
    ///
    /// # Errors
    /// A [`Refusal`] for a malformed request or an assertion that fails any
    /// check.
    pub fn exchange(
        &mut self,
        form: &HashMap<String, String>,
        now: i64,
    ) -> Result<String, Refusal> {
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return Err(Refusal {
                error: "unsupported_grant_type",
                description: "grant_type must be client_credentials".into(),
            });
        }
        if form.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
            return Err(invalid_client(format!(
                "client_assertion_type must be {ASSERTION_TYPE}"
            )));
        }
        let assertion = form
            .get("client_assertion")
            .ok_or_else(|| invalid_client("client_assertion is missing"))?;
        let header = decode_header(assertion)
            .map_err(|e| invalid_client(format!("the assertion is not a JWT: {e}")))?;
        if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
            return Err(invalid_client(format!(
                "alg {:?} is neither RS384 nor ES384",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| invalid_client("the assertion header has no kid"))?;
        let jwk = self
            .client
            .keys
            .find(&kid)
            .ok_or_else(|| invalid_client(format!("no registered key has kid {kid:?}")))?;
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| invalid_client(format!("the registered key {kid:?} is unusable: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY;
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.client.id]);
        validation.sub = Some(self.client.id.clone());
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        let claims = decode::<Claims>(assertion, &key, &validation)
            .map_err(|e| invalid_client(format!("the assertion was refused: {e}")))?
            .claims;
        debug_assert!(claims.iss == self.client.id && claims.sub == self.client.id);
        if claims.exp > now + MAX_ASSERTION_LIFETIME + LEEWAY as i64 {
            return Err(invalid_client(
                "exp is more than five minutes ahead".to_owned(),
            ));
        }
        let jti = claims
            .jti
            .filter(|j| !j.is_empty())
            .ok_or_else(|| invalid_client("the assertion has no jti"))?;
        if !self.seen_jti.insert(jti) {
            return Err(invalid_client("the jti was used before"));
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.issued.insert(token.clone(), now + self.lifetime);
        Ok(token)
    }

    /// Whether `token` is an access token it issued that has not expired.
    #[must_use]
    pub fn accepts(&self, token: &str, now: i64) -> bool {
        self.issued.get(token).is_some_and(|exp| *exp > now)
    }

    /// Forgets every issued access token (a test revoking them).
    pub fn revoke_all(&mut self) {
        self.issued.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use p384::pkcs8::EncodePrivateKey;

    const AUD: &str = "http://127.0.0.1:1/auth/token";

    fn keypair() -> (EncodingKey, JwkSet) {
        let secret = p384::SecretKey::random(&mut rand_core::OsRng);
        let pem = secret.to_pkcs8_pem(Default::default()).unwrap();
        let enc = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
        let mut jwk: serde_json::Value =
            serde_json::from_str(&secret.public_key().to_jwk_string()).unwrap();
        jwk["kid"] = "k1".into();
        jwk["alg"] = "ES384".into();
        jwk["use"] = "sig".into();
        let set: JwkSet = serde_json::from_value(serde_json::json!({"keys": [jwk]})).unwrap();
        (enc, set)
    }

    fn assertion(key: &EncodingKey, claims: serde_json::Value) -> HashMap<String, String> {
        let mut header = Header::new(Algorithm::ES384);
        header.kid = Some("k1".into());
        let jwt = encode(&header, &claims, key).unwrap();
        HashMap::from([
            ("grant_type".into(), "client_credentials".into()),
            ("client_assertion_type".into(), ASSERTION_TYPE.into()),
            ("client_assertion".into(), jwt),
            ("scope".into(), "system/Patient.rs".into()),
        ])
    }

    fn claims(aud: &str, exp: i64, jti: &str) -> serde_json::Value {
        serde_json::json!({"iss": "billd", "sub": "billd", "aud": aud, "exp": exp, "jti": jti})
    }

    #[test]
    fn a_good_assertion_gets_a_token_and_every_bad_one_is_invalid_client() {
        let (key, keys) = keypair();
        let (other_key, _) = keypair();
        let client = Client {
            id: "billd".into(),
            keys,
        };
        // Validation's clock is the real one: put `now` there.
        let now = chrono::Utc::now().timestamp();
        let mut ep = TokenEndpoint::new(client, AUD.into(), 300);
        let token = ep
            .exchange(&assertion(&key, claims(AUD, now + 240, "j1")), now)
            .unwrap();
        assert!(ep.accepts(&token, now));
        assert!(!ep.accepts(&token, now + 301));
        for (why, form) in [
            (
                "replayed jti",
                assertion(&key, claims(AUD, now + 240, "j1")),
            ),
            (
                "bad signature",
                assertion(&other_key, claims(AUD, now + 240, "j2")),
            ),
            (
                "wrong aud",
                assertion(&key, claims("http://x/token", now + 240, "j3")),
            ),
            ("expired", assertion(&key, claims(AUD, now - 60, "j4"))),
            (
                "too far ahead",
                assertion(&key, claims(AUD, now + 3600, "j5")),
            ),
        ] {
            let refusal = ep.exchange(&form, now).unwrap_err();
            assert_eq!(refusal.error, "invalid_client", "{why}: {refusal:?}");
        }
    }
}
