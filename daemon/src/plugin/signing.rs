//! Optional ed25519 signatures over a plugin package.
//!
//! A signature covers the component's sha256 and the manifest's sha256 (the
//! manifest says which hosts the plugin may reach, so it must not be
//! swappable under a valid signature). It sits beside them as `plugin.sig`:
//!
//! ```toml
//! key = "base64 public key of the signer"
//! component-sha256 = "…"
//! manifest-sha256 = "…"
//! signature = "base64 ed25519 signature"
//! ```
//!
//! The key written in the file only says which trusted key to try; trust
//! comes from the practice's `[plugin_trust]` keys alone.

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The contents of `plugin.sig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SignatureFile {
    /// The signer's public key (base64).
    pub key: String,
    /// The signed component's sha256 (hex).
    pub component_sha256: String,
    /// The signed manifest's sha256 (hex).
    pub manifest_sha256: String,
    /// The ed25519 signature (base64).
    pub signature: String,
}

/// What signature checking found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum SignatureStatus {
    /// No `plugin.sig`.
    Unsigned,
    /// Signed by a trusted key, and the signature covers these files.
    Trusted {
        /// The trusted key's name from the configuration.
        key_name: String,
    },
    /// A valid-looking signature by a key the practice does not trust.
    UntrustedKey,
    /// The signature does not verify (wrong files, tampering, bad encoding).
    Invalid {
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for SignatureStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignatureStatus::Unsigned => f.write_str("unsigned"),
            SignatureStatus::Trusted { key_name } => write!(f, "signed by {key_name}"),
            SignatureStatus::UntrustedKey => f.write_str("signed by an untrusted key"),
            SignatureStatus::Invalid { reason } => write!(f, "INVALID signature: {reason}"),
        }
    }
}

/// sha256 of bytes, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn message(component_sha256: &str, manifest_sha256: &str) -> Vec<u8> {
    format!("billd-plugin-signature-v1\ncomponent {component_sha256}\nmanifest {manifest_sha256}\n")
        .into_bytes()
}

/// Signs a package's component and manifest hashes.
pub fn sign(key: &SigningKey, component_sha256: &str, manifest_sha256: &str) -> SignatureFile {
    let sig = key.sign(&message(component_sha256, manifest_sha256));
    SignatureFile {
        key: B64.encode(key.verifying_key().to_bytes()),
        component_sha256: component_sha256.to_string(),
        manifest_sha256: manifest_sha256.to_string(),
        signature: B64.encode(sig.to_bytes()),
    }
}

/// Checks `plugin.sig` text against the hashes of the files actually loaded
/// and the practice's trusted keys.
pub fn verify(
    sig_text: Option<&str>,
    component_sha256: &str,
    manifest_sha256: &str,
    trusted: &BTreeMap<String, VerifyingKey>,
) -> SignatureStatus {
    let Some(text) = sig_text else {
        return SignatureStatus::Unsigned;
    };
    let invalid = |reason: &str| SignatureStatus::Invalid {
        reason: reason.to_string(),
    };
    let file: SignatureFile = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => return invalid(&format!("plugin.sig does not parse: {e}")),
    };
    if file.component_sha256 != component_sha256 {
        return invalid("it was made for a different component (sha256 differs)");
    }
    if file.manifest_sha256 != manifest_sha256 {
        return invalid("it was made for a different plugin.toml (sha256 differs)");
    }
    let Ok(sig_bytes) = B64.decode(file.signature.trim()) else {
        return invalid("the signature is not base64");
    };
    let Ok(sig) = Signature::from_slice(&sig_bytes) else {
        return invalid("the signature is not 64 bytes");
    };
    let msg = message(component_sha256, manifest_sha256);
    let claimed = B64.decode(file.key.trim()).unwrap_or_default();
    for (name, key) in trusted {
        if key.as_bytes()[..] == claimed[..] {
            return match key.verify(&msg, &sig) {
                Ok(()) => SignatureStatus::Trusted {
                    key_name: name.clone(),
                },
                Err(_) => invalid(&format!("it does not verify under trusted key {name:?}")),
            };
        }
    }
    // Not a trusted key: still say whether the signature is sound.
    match <[u8; 32]>::try_from(claimed.as_slice())
        .ok()
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
    {
        Some(k) if k.verify(&msg, &sig).is_ok() => SignatureStatus::UntrustedKey,
        _ => invalid("it does not verify under the key it names"),
    }
}

/// Why a signing key file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct KeyFileError {
    /// The key file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// Reads a signing key: base64 of the 32-byte secret seed.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    let err = |reason: String| KeyFileError {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let bytes = B64
        .decode(text.trim())
        .map_err(|_| err("not a billd signing key (base64 of 32 bytes)".into()))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| err("not a billd signing key (base64 of 32 bytes)".into()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Makes a new signing key at `path` (mode 0600; never overwrites).
pub fn generate_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    let err = |reason: String| KeyFileError {
        path: path.display().to_string(),
        reason,
    };
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| err(e.to_string()))?;
    use std::io::Write;
    writeln!(f, "{}", B64.encode(key.to_bytes())).map_err(|e| err(e.to_string()))?;
    Ok(key)
}

/// The base64 form of a public key, as `[plugin_trust] keys` expects.
pub fn public_key_text(key: &VerifyingKey) -> String {
    B64.encode(key.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(k: &SigningKey) -> BTreeMap<String, VerifyingKey> {
        BTreeMap::from([("ours".to_string(), k.verifying_key())])
    }

    #[test]
    fn sign_then_verify_and_detect_tampering() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[9; 32]);
        let (c, m) = (sha256_hex(b"component"), sha256_hex(b"manifest"));
        let text = toml::to_string(&sign(&key, &c, &m)).unwrap();

        assert_eq!(
            verify(Some(&text), &c, &m, &trusted(&key)),
            SignatureStatus::Trusted {
                key_name: "ours".into()
            }
        );
        assert_eq!(
            verify(Some(&text), &c, &m, &trusted(&other)),
            SignatureStatus::UntrustedKey
        );
        assert_eq!(
            verify(None, &c, &m, &trusted(&key)),
            SignatureStatus::Unsigned
        );
        let other_c = sha256_hex(b"component2");
        assert!(matches!(
            verify(Some(&text), &other_c, &m, &trusted(&key)),
            SignatureStatus::Invalid { .. }
        ));
        let other_m = sha256_hex(b"manifest2");
        assert!(matches!(
            verify(Some(&text), &c, &other_m, &trusted(&key)),
            SignatureStatus::Invalid { .. }
        ));
        // A signature file re-labelled with new hashes no longer verifies.
        let forged = text.replace(&c, &other_c);
        assert!(matches!(
            verify(Some(&forged), &other_c, &m, &trusted(&key)),
            SignatureStatus::Invalid { .. }
        ));
    }

    #[test]
    fn key_files_round_trip_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("signing.key");
        let k = generate_signing_key(&p).unwrap();
        assert_eq!(read_signing_key(&p).unwrap().to_bytes(), k.to_bytes());
        assert!(generate_signing_key(&p).is_err(), "must never overwrite");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
