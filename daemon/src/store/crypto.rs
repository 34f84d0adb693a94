//! Sealing of stored values under the practice's store key (AEAD).
//!
//! Every value billd writes to its store passes through [`StoreKey::seal`]
//! first, so the files on disk never hold a patient's name, birth date or
//! member id in clear. The cipher is XChaCha20-Poly1305 (RustCrypto
//! `chacha20poly1305`): its 24-byte nonces are long enough to draw at random
//! for every write without tracking a counter across restarts.
//!
//! The associated data binds each sealed value to its place (collection and
//! record key), so a value copied onto another record fails to open instead of
//! silently becoming that record.
//!
//! # Key file format
//! One line of text, a trailing newline allowed:
//! ```text
//! billd-store-key-v1:<32 bytes in standard base64 with padding>
//! ```
//! The file must not be readable or writable by group or others (mode 0600 or
//! stricter); [`StoreKey::load`] refuses it otherwise. Losing the key file
//! loses the store: back it up separately from the store directory.
//!
//! # Sealed value format
//! `[format byte = 1][24-byte nonce][ciphertext + 16-byte tag]`.

use base64::Engine as _;
use chacha20poly1305::aead::rand_core::RngCore as _;
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Prefix of the one line in a key file; the version lets the format change.
pub const KEY_FILE_PREFIX: &str = "billd-store-key-v1:";
/// Length of a store key in bytes.
pub const KEY_LEN: usize = 32;
/// First byte of every sealed value: the sealing format.
const SEAL_FORMAT_V1: u8 = 1;
/// Nonce length of XChaCha20-Poly1305.
const NONCE_LEN: usize = 24;
/// Authentication tag length of Poly1305.
const TAG_LEN: usize = 16;
/// Bytes a sealed value adds to its plaintext.
pub const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
/// Longest key file accepted; a real one is about 64 bytes.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// Problems with the store key file. Every variant names the file; none
/// carries key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// No key file at the path. Run `billd init` to create one, or point the
    /// configuration at the right file. Retrying will not help.
    #[error("store key file {path} does not exist (run `billd init` to create one)")]
    Missing {
        /// The path looked at.
        path: PathBuf,
    },
    /// `generate_to` found a file already there and left it untouched.
    #[error(
        "store key file {path} already exists; refusing to overwrite it (the store it \
         protects would become unreadable)"
    )]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The key file can be read or written by group or others.
    #[error(
        "store key file {path} has mode {mode:04o}, which lets group or others use it; \
         run `chmod 600 {path}` and make sure only billd's user owns it"
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file is not a billd key file, or its key has the wrong length.
    #[error("store key file {path} is not valid: {reason}")]
    Format {
        /// The key file.
        path: PathBuf,
        /// What is wrong (never the key bytes).
        reason: String,
    },
    /// Reading or writing the file failed. Retrying can help if the cause was
    /// transient (a full disk, a busy network mount).
    #[error("store key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Why a sealed value did not open. Deliberately vague: the AEAD cannot tell
/// a wrong key from tampering, and the caller adds the record's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The value is too short or its format byte is unknown.
    #[error("sealed value is malformed")]
    Malformed,
    /// Authentication failed: wrong key, tampered bytes, or a value moved
    /// from another record.
    #[error("sealed value failed authentication")]
    Authentication,
}

/// The store's 32-byte secret key, loaded from the key file. Its `Debug`
/// output never shows the key; the cipher state is zeroed on drop.
#[derive(Clone)]
pub struct StoreKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

impl StoreKey {
    /// Builds a key from raw bytes (tests and key rotation tools).
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> StoreKey {
        StoreKey {
            cipher: XChaCha20Poly1305::new(bytes.into()),
        }
    }

    /// A fresh random key that exists only in memory (tests, benchmarks).
    pub fn random() -> StoreKey {
        StoreKey::from_bytes(&random_key_bytes())
    }

    /// Writes a fresh random key to `path`, creating the file with mode 0600.
    ///
    /// Refuses to touch an existing file (`AlreadyExists`), even an empty
    /// one: replacing a key makes every record sealed under it unreadable.
    /// Missing parent directories are created with mode 0700. The file and
    /// its directory are synced before this returns.
    pub fn generate_to(path: &Path) -> Result<(), KeyFileError> {
        let io_err = |source| KeyFileError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_err)?;
        }
        let mut file = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(KeyFileError::AlreadyExists {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(io_err(e)),
        };
        let key = random_key_bytes();
        let line = Zeroizing::new(format!(
            "{KEY_FILE_PREFIX}{}\n",
            base64::engine::general_purpose::STANDARD.encode(key.as_slice())
        ));
        let written = file
            // The umask may only have removed bits; make the mode exact.
            .set_permissions(fs::Permissions::from_mode(0o600))
            .and_then(|()| file.write_all(line.as_bytes()))
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            // The file is ours and holds no usable key: don't leave a stub
            // that a later `generate_to` would refuse to replace.
            drop(file);
            let _ = fs::remove_file(path);
            return Err(io_err(e));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Make the new directory entry durable too.
            fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io_err)?;
        }
        Ok(())
    }

    /// Reads the key at `path`.
    ///
    /// Refuses a missing file, a file readable or writable by group or
    /// others, anything but a regular file, and a malformed line or a key
    /// that is not exactly 32 bytes. Errors name the path, never key bytes.
    pub fn load(path: &Path) -> Result<StoreKey, KeyFileError> {
        let io_err = |source| KeyFileError::Io {
            path: path.to_owned(),
            source,
        };
        let format_err = |reason: &str| KeyFileError::Format {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(KeyFileError::Missing {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(io_err(e)),
        };
        if !meta.is_file() {
            return Err(format_err("not a regular file"));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(format_err("file is far too long to be a key file"));
        }
        let text = Zeroizing::new(fs::read(path).map_err(io_err)?);
        let text = std::str::from_utf8(&text).map_err(|_| format_err("not UTF-8 text"))?;
        let line = text
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(text);
        if line.contains('\n') {
            return Err(format_err("expected exactly one line"));
        }
        let encoded = line.strip_prefix(KEY_FILE_PREFIX).ok_or_else(|| {
            format_err(&format!(
                "the line does not start with `{KEY_FILE_PREFIX}` (is this a billd key file?)"
            ))
        })?;
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| format_err("the key is not valid base64"))?,
        );
        let bytes: &[u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            format_err(&format!(
                "the key is {} bytes long, expected {KEY_LEN}",
                bytes.len()
            ))
        })?;
        Ok(StoreKey::from_bytes(bytes))
    }

    /// Seals `plaintext` for the record `key` of `collection` under a fresh
    /// random nonce.
    ///
    /// The nonce comes from the thread's CSPRNG (`rand::thread_rng`, ChaCha
    /// seeded and reseeded from the OS): 192 random bits, so collisions are
    /// out of reach, without a system call per record. The ciphertext is
    /// written in place behind the format byte and the nonce.
    pub fn seal(&self, collection: &str, key: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
        out.push(SEAL_FORMAT_V1);
        out.resize(1 + NONCE_LEN, 0);
        rand::thread_rng().fill_bytes(&mut out[1..]);
        out.extend_from_slice(plaintext);
        let aad = associated_data(collection, key);
        let (head, body) = out.split_at_mut(1 + NONCE_LEN);
        let tag = self
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(&head[1..]), &aad, body)
            // Encryption fails only for inputs near 256 GiB.
            .expect("XChaCha20-Poly1305 encryption of an in-memory value");
        out.extend_from_slice(&tag);
        out
    }

    /// Opens a value sealed by [`StoreKey::seal`] for the same collection and
    /// key. Fails on a wrong key, any changed byte, or another place.
    pub fn open(&self, collection: &str, key: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < SEAL_OVERHEAD || sealed[0] != SEAL_FORMAT_V1 {
            return Err(OpenError::Malformed);
        }
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        let aad = associated_data(collection, key);
        self.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Authentication)
    }
}

/// 32 bytes from the operating system's CSPRNG, zeroed when dropped.
fn random_key_bytes() -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(key.as_mut());
    key
}

/// The associated data for a record: a domain tag, the collection's length
/// and name, then the key. The length prefix keeps ("ab", "c") and ("a", "bc")
/// apart.
fn associated_data(collection: &str, key: &[u8]) -> Vec<u8> {
    const DOMAIN: &[u8] = b"billd-store-v1\0";
    let mut aad = Vec::with_capacity(DOMAIN.len() + 4 + collection.len() + key.len());
    aad.extend_from_slice(DOMAIN);
    aad.extend_from_slice(&(collection.len() as u32).to_be_bytes());
    aad.extend_from_slice(collection.as_bytes());
    aad.extend_from_slice(key);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip() {
        let key = StoreKey::random();
        let plain = b"Quixotina Zebulon, born 1961-02-03";
        let sealed = key.seal("patients", b"P1", plain);
        assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD);
        assert!(
            !sealed.windows(9).any(|w| w == b"Quixotina"),
            "sealed bytes hold the plaintext"
        );
        assert_eq!(key.open("patients", b"P1", &sealed).unwrap(), plain);
        // Fresh nonce per seal: the same input never seals the same way twice.
        assert_ne!(sealed, key.seal("patients", b"P1", plain));
        // The empty value works too.
        let empty = key.seal("c", b"", b"");
        assert_eq!(key.open("c", b"", &empty).unwrap(), b"");
    }

    #[test]
    fn every_tampered_byte_is_detected() {
        let key = StoreKey::random();
        let sealed = key.seal("claims", b"C1", b"a claim body");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            let err = key.open("claims", b"C1", &bad).unwrap_err();
            let expected = if i == 0 {
                OpenError::Malformed
            } else {
                OpenError::Authentication
            };
            assert_eq!(err, expected, "flipped byte {i}");
        }
        assert_eq!(
            key.open("claims", b"C1", &sealed[..sealed.len() - 1]),
            Err(OpenError::Authentication)
        );
        assert_eq!(
            key.open("claims", b"C1", &sealed[..SEAL_OVERHEAD - 1]),
            Err(OpenError::Malformed)
        );
    }

    #[test]
    fn wrong_key_is_detected() {
        let sealed = StoreKey::from_bytes(&[7; 32]).seal("claims", b"C1", b"body");
        let other = StoreKey::from_bytes(&[8; 32]);
        assert_eq!(
            other.open("claims", b"C1", &sealed),
            Err(OpenError::Authentication)
        );
        assert_eq!(
            StoreKey::from_bytes(&[7; 32])
                .open("claims", b"C1", &sealed)
                .unwrap(),
            b"body"
        );
    }

    #[test]
    fn value_is_bound_to_collection_and_key() {
        let key = StoreKey::random();
        let sealed = key.seal("patients", b"P1", b"body");
        assert!(key.open("patients", b"P1", &sealed).is_ok());
        for (coll, k) in [
            ("patients", &b"P2"[..]),
            ("coverages", b"P1"),
            ("patient", b"sP1"),
            ("patientsP", b"1"),
        ] {
            assert_eq!(
                key.open(coll, k, &sealed),
                Err(OpenError::Authentication),
                "{coll}/{}",
                String::from_utf8_lossy(k)
            );
        }
    }

    #[test]
    fn debug_redacts_key() {
        let key = StoreKey::from_bytes(&[0xAB; 32]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "StoreKey(<redacted>)");
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn generated_key_file_is_0600_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/store.key");
        StoreKey::generate_to(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(path.parent().unwrap()), 0o700);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(KEY_FILE_PREFIX) && text.ends_with('\n'));
        assert_eq!(text.lines().count(), 1);
        let key = StoreKey::load(&path).unwrap();
        let sealed = key.seal("c", b"k", b"v");
        // Loading twice gives the same key.
        let again = StoreKey::load(&path).unwrap();
        assert_eq!(again.open("c", b"k", &sealed).unwrap(), b"v");
        // Two generated keys differ.
        let other_path = dir.path().join("other.key");
        StoreKey::generate_to(&other_path).unwrap();
        assert_ne!(fs::read(&path).unwrap(), fs::read(&other_path).unwrap());
        assert_eq!(
            StoreKey::load(&other_path)
                .unwrap()
                .open("c", b"k", &sealed),
            Err(OpenError::Authentication)
        );
    }

    #[test]
    fn generate_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        StoreKey::generate_to(&path).unwrap();
        let before = fs::read(&path).unwrap();
        let err = StoreKey::generate_to(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::AlreadyExists { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
        assert_eq!(fs::read(&path).unwrap(), before, "existing key changed");
        // Even an empty file that is not a key is left alone.
        let empty = dir.path().join("empty.key");
        fs::write(&empty, b"").unwrap();
        assert!(matches!(
            StoreKey::generate_to(&empty),
            Err(KeyFileError::AlreadyExists { .. })
        ));
        assert_eq!(fs::read(&empty).unwrap(), b"");
    }

    #[test]
    fn group_or_other_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        StoreKey::generate_to(&path).unwrap();
        for mode in [0o640, 0o604, 0o660, 0o644, 0o610] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = StoreKey::load(&path).unwrap_err();
            assert!(
                matches!(err, KeyFileError::Permissions { mode: m, .. } if m == mode),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("chmod 600"), "{msg}");
        }
        for mode in [0o600, 0o400] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            StoreKey::load(&path).unwrap();
        }
    }

    fn write_key_file(path: &Path, contents: &[u8]) {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .unwrap()
            .write_all(contents)
            .unwrap();
    }

    #[test]
    fn bad_key_files_are_refused_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![0x5A; n]);
        let secret = b64(32);
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "short.key",
                format!("{KEY_FILE_PREFIX}{}\n", b64(31)),
                "31 bytes",
            ),
            (
                "long.key",
                format!("{KEY_FILE_PREFIX}{}\n", b64(33)),
                "33 bytes",
            ),
            (
                "prefix.key",
                format!("some-other-key:{secret}\n"),
                "does not start",
            ),
            (
                "b64.key",
                format!("{KEY_FILE_PREFIX}@@not base64@@\n"),
                "base64",
            ),
            (
                "two.key",
                format!("{KEY_FILE_PREFIX}{secret}\nmore\n"),
                "one line",
            ),
            ("empty.key", String::new(), "does not start"),
        ];
        for (name, contents, expect) in cases {
            let path = dir.path().join(name);
            write_key_file(&path, contents.as_bytes());
            let err = StoreKey::load(&path).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, KeyFileError::Format { .. }),
                "{name}: {err:?}"
            );
            assert!(msg.contains(&path.display().to_string()), "{name}: {msg}");
            assert!(msg.contains(expect), "{name}: {msg}");
            assert!(!msg.contains(&secret), "{name}: error shows key bytes");
        }
        // The well-formed variant of the same content loads, with or
        // without a trailing newline.
        for (name, contents) in [
            ("good.key", format!("{KEY_FILE_PREFIX}{secret}\n")),
            ("nonl.key", format!("{KEY_FILE_PREFIX}{secret}")),
        ] {
            let path = dir.path().join(name);
            write_key_file(&path, contents.as_bytes());
            let key = StoreKey::load(&path).unwrap();
            let sealed = StoreKey::from_bytes(&[0x5A; 32]).seal("c", b"k", b"v");
            assert_eq!(key.open("c", b"k", &sealed).unwrap(), b"v");
        }
        let missing = dir.path().join("missing.key");
        let err = StoreKey::load(&missing).unwrap_err();
        assert!(matches!(err, KeyFileError::Missing { .. }), "{err:?}");
        assert!(err.to_string().contains(&missing.display().to_string()));
        let err = StoreKey::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
