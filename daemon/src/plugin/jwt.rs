//! Host-side JWT signing (contract 0.2.0's `signing` interface).
//!
//! Some outside parties authenticate a client by a JWT it signs with its own
//! private key (SMART Backend Services' client assertion, for one). The key
//! is the practice's credential, so it stays in billd: the practice
//! configures it by reference on the `[[plugin]]` table, the host parses it
//! once at load (a bad key stops loading with the field named), and a plugin
//! asks the host to sign claims it chose. The plugin gets the token, never
//! the key; `secret()` does not see signing keys at all.
//!
//! The algorithm follows the key: RS384 for an RSA key, ES384 for a P-384
//! EC key (PEM, PKCS#8 or PKCS#1 for RSA). Signing is `jsonwebtoken` over
//! `ring`; nothing here is hand-rolled.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A signing key as the practice configures it on a `[[plugin]]` entry:
///
/// ```toml
/// signing_keys = { smart = { key = "file:/etc/billd/smart-key.pem", kid = "billd-2026" } }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyRef {
    /// Where the PEM private key is: `env:NAME` or `file:PATH`.
    pub key: String,
    /// The key id written into each token's header (`kid`), as registered
    /// with the party that verifies the tokens.
    #[serde(default)]
    pub kid: Option<String>,
}

/// A parsed private key, ready to sign. Its `Debug` shows the algorithm and
/// key id, never the key.
#[derive(Clone)]
pub struct SigningKey {
    key: EncodingKey,
    alg: Algorithm,
    kid: Option<String>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Why a signature was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// The claims are not a JSON object.
    #[error("the claims are not a JSON object: {0}")]
    InvalidClaims(String),
    /// The key cannot sign.
    #[error("the key cannot sign: {0}")]
    KeyUnusable(String),
}

impl SigningKey {
    /// Parses a PEM private key: RSA (RS384) or P-384 EC (ES384). Any other
    /// key, or text that is not a PEM key, is an error (which never repeats
    /// the text).
    pub fn from_pem(pem: &SecretString, kid: Option<String>) -> Result<SigningKey, JwtError> {
        let bytes = pem.expose_secret().as_bytes();
        let candidates = [
            (EncodingKey::from_rsa_pem(bytes), Algorithm::RS384),
            (EncodingKey::from_ec_pem(bytes), Algorithm::ES384),
        ];
        for (parsed, alg) in candidates {
            let Ok(key) = parsed else { continue };
            let k = SigningKey { key, alg, kid };
            // jsonwebtoken reads any EC curve; signing proves it is P-384.
            if k.sign_value(&serde_json::json!({"probe": true})).is_ok() {
                return Ok(k);
            }
            return Err(JwtError::KeyUnusable(format!(
                "the {alg:?} key does not sign (an EC key must be on P-384)"
            )));
        }
        Err(JwtError::KeyUnusable(
            "not a PEM RSA or P-384 EC private key".into(),
        ))
    }

    /// The algorithm the key signs with.
    pub fn algorithm(&self) -> &'static str {
        match self.alg {
            Algorithm::RS384 => "RS384",
            _ => "ES384",
        }
    }

    /// Signs `claims_json` (a JSON object) as a compact JWT.
    pub fn sign(&self, claims_json: &str) -> Result<String, JwtError> {
        let claims: serde_json::Value = serde_json::from_str(claims_json)
            .map_err(|e| JwtError::InvalidClaims(e.to_string()))?;
        if !claims.is_object() {
            return Err(JwtError::InvalidClaims("expected an object".into()));
        }
        self.sign_value(&claims)
    }

    fn sign_value(&self, claims: &serde_json::Value) -> Result<String, JwtError> {
        let mut header = Header::new(self.alg);
        header.typ = Some("JWT".into());
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|e| JwtError::KeyUnusable(e.to_string()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

    /// A P-384 key and its public half, generated for these tests only.
    pub(crate) const EC_P384_KEY: &str = include_str!("testdata/ec-p384.pem");
    const EC_P384_PUB: &str = include_str!("testdata/ec-p384.pub.pem");
    /// An RSA-2048 key and its public half, for these tests only.
    pub(crate) const RSA_KEY: &str = include_str!("testdata/rsa-2048.pem");
    const RSA_PUB: &str = include_str!("testdata/rsa-2048.pub.pem");
    /// A P-256 key: the wrong curve for ES384.
    const EC_P256_KEY: &str = include_str!("testdata/ec-p256.pem");

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    fn verify(token: &str, alg: Algorithm, public: DecodingKey) -> serde_json::Value {
        let mut v = Validation::new(alg);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        decode::<serde_json::Value>(token, &public, &v)
            .expect("the token verifies with the public key")
            .claims
    }

    #[test]
    fn an_ec_p384_key_signs_es384_with_its_kid() {
        let k = SigningKey::from_pem(&secret(EC_P384_KEY), Some("k1".into())).unwrap();
        assert_eq!(k.algorithm(), "ES384");
        let t = k.sign(r#"{"iss":"client","jti":"a"}"#).unwrap();
        let h = decode_header(&t).unwrap();
        assert_eq!(h.alg, Algorithm::ES384);
        assert_eq!(h.kid.as_deref(), Some("k1"));
        assert_eq!(h.typ.as_deref(), Some("JWT"));
        let pk = DecodingKey::from_ec_pem(EC_P384_PUB.as_bytes()).unwrap();
        assert_eq!(verify(&t, Algorithm::ES384, pk)["iss"], "client");
    }

    #[test]
    fn an_rsa_key_signs_rs384() {
        let k = SigningKey::from_pem(&secret(RSA_KEY), None).unwrap();
        assert_eq!(k.algorithm(), "RS384");
        let t = k.sign(r#"{"sub":"client"}"#).unwrap();
        assert_eq!(decode_header(&t).unwrap().kid, None);
        let pk = DecodingKey::from_rsa_pem(RSA_PUB.as_bytes()).unwrap();
        assert_eq!(verify(&t, Algorithm::RS384, pk)["sub"], "client");
    }

    #[test]
    fn a_wrong_curve_or_garbage_is_refused_without_echoing_it() {
        let e = SigningKey::from_pem(&secret(EC_P256_KEY), None).unwrap_err();
        assert!(e.to_string().contains("P-384"), "{e}");
        let e = SigningKey::from_pem(&secret("hunter2-not-a-key"), None).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn claims_must_be_a_json_object() {
        let k = SigningKey::from_pem(&secret(EC_P384_KEY), None).unwrap();
        assert!(matches!(k.sign("[1]"), Err(JwtError::InvalidClaims(_))));
        assert!(matches!(k.sign("{"), Err(JwtError::InvalidClaims(_))));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let k = SigningKey::from_pem(&secret(EC_P384_KEY), Some("k1".into())).unwrap();
        let d = format!("{k:?}");
        assert!(d.contains("ES384") && d.contains("k1"), "{d}");
        assert!(!d.contains("BEGIN") && !d.contains("MI"), "{d}");
    }
}
