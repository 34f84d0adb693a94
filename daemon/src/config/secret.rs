//! Secrets by reference.
//!
//! A billd configuration never holds a secret itself: it names where the
//! secret lives, either an environment variable (`env:NAME`) or a file
//! (`file:PATH`). This keeps passwords out of the config file, out of version
//! control and out of error messages. The plugin host reuses this module for
//! the secrets a plugin manifest asks for.
//!
//! ```
//! use billd::config::secret::{SecretRef, SecretEnv};
//! use secrecy::ExposeSecret;
//! use std::collections::HashMap;
//! use std::path::Path;
//!
//! let reference = SecretRef::parse("env:BILLD_SMTP_PASSWORD").unwrap();
//! let env = HashMap::from([("BILLD_SMTP_PASSWORD".to_string(), "s3cret".to_string())]);
//! let secret = reference.resolve_with(Path::new("/etc/billd"), &env).unwrap();
//! assert_eq!(secret.expose_secret(), "s3cret");
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

/// Where a secret lives: parsed from `env:NAME` or `file:PATH`.
///
/// The reference itself is not secret, so it may be shown in logs and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// The value of the environment variable `NAME`, used as is.
    Env(String),
    /// The contents of a file; one trailing newline is trimmed. A relative
    /// path is resolved against the directory passed to
    /// [`SecretRef::resolve`] (the config file's directory).
    File(PathBuf),
}

/// Why a secret reference could not be parsed or resolved.
///
/// No variant ever carries the secret's value. A missing variable or an
/// unreadable file can be fixed by the operator and a reload retried; a
/// malformed reference needs the configuration edited.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The value is not of the form `env:NAME` or `file:PATH`. The value is
    /// deliberately not repeated: it may be the secret itself.
    #[error(
        "secrets by reference only: write \"env:NAME\" or \"file:PATH\", not the secret itself"
    )]
    NotAReference,
    /// `env:` with a name that cannot be an environment variable.
    #[error("bad environment variable name {0:?} (use letters, digits and _)")]
    BadEnvName(String),
    /// `file:` with nothing after it.
    #[error("\"file:\" needs a path")]
    EmptyPath,
    /// The environment variable is not set.
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The environment variable holds bytes that are not UTF-8.
    #[error("environment variable {0} is not valid UTF-8")]
    EnvNotUnicode(String),
    /// The secret file could not be read.
    #[error("cannot read secret file {}: {source}", path.display())]
    Unreadable {
        /// The file, after resolving it against the base directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The secret file is not UTF-8 text.
    #[error("secret file {} is not valid UTF-8", .0.display())]
    FileNotUnicode(PathBuf),
    /// The referenced secret is empty (an empty password is always a mistake).
    #[error("secret {0} is empty")]
    Empty(String),
}

/// Where `env:` references are looked up. The daemon uses [`ProcessEnv`];
/// tests and the plugin host may supply a map instead.
pub trait SecretEnv {
    /// The variable's value, `Ok(None)` when unset, or
    /// [`SecretError::EnvNotUnicode`] when it is not valid UTF-8.
    fn var(&self, name: &str) -> Result<Option<String>, SecretError>;
}

/// The environment of this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl SecretEnv for ProcessEnv {
    fn var(&self, name: &str) -> Result<Option<String>, SecretError> {
        match std::env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(SecretError::EnvNotUnicode(name.to_string()))
            }
        }
    }
}

impl SecretEnv for HashMap<String, String> {
    fn var(&self, name: &str) -> Result<Option<String>, SecretError> {
        Ok(self.get(name).cloned())
    }
}

impl SecretRef {
    /// Parses `env:NAME` or `file:PATH`. Anything else is refused with
    /// [`SecretError::NotAReference`], which does not repeat the input.
    pub fn parse(text: &str) -> Result<SecretRef, SecretError> {
        if let Some(name) = text.strip_prefix("env:") {
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if valid {
                Ok(SecretRef::Env(name.to_string()))
            } else {
                Err(SecretError::BadEnvName(name.to_string()))
            }
        } else if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                Err(SecretError::EmptyPath)
            } else {
                Ok(SecretRef::File(PathBuf::from(path)))
            }
        } else {
            Err(SecretError::NotAReference)
        }
    }

    /// Reads the secret from the process environment or the file system.
    /// `base` is the directory relative `file:` paths are resolved against.
    pub fn resolve(&self, base: &Path) -> Result<SecretString, SecretError> {
        self.resolve_with(base, &ProcessEnv)
    }

    /// Like [`SecretRef::resolve`], looking `env:` references up in `env`.
    pub fn resolve_with(
        &self,
        base: &Path,
        env: &dyn SecretEnv,
    ) -> Result<SecretString, SecretError> {
        let value = match self {
            SecretRef::Env(name) => env
                .var(name)?
                .ok_or_else(|| SecretError::MissingEnv(name.clone()))?,
            SecretRef::File(path) => {
                let path = base.join(path);
                let bytes = std::fs::read(&path).map_err(|source| SecretError::Unreadable {
                    path: path.clone(),
                    source,
                })?;
                let mut text =
                    String::from_utf8(bytes).map_err(|_| SecretError::FileNotUnicode(path))?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty(self.to_string()));
        }
        Ok(SecretString::from(value))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl std::str::FromStr for SecretRef {
    type Err = SecretError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        SecretRef::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn no_env() -> HashMap<String, String> {
        HashMap::new()
    }

    #[test]
    fn parses_env_and_file_references() {
        assert_eq!(
            SecretRef::parse("env:BILLD_SMTP_PASSWORD").unwrap(),
            SecretRef::Env("BILLD_SMTP_PASSWORD".into())
        );
        assert_eq!(
            SecretRef::parse("file:/run/secrets/smtp").unwrap(),
            SecretRef::File("/run/secrets/smtp".into())
        );
        assert_eq!(
            SecretRef::parse("file:smtp.pw").unwrap().to_string(),
            "file:smtp.pw"
        );
    }

    #[test]
    fn refuses_inline_secret_without_echoing_it() {
        let err = SecretRef::parse("hunter2").unwrap_err();
        assert!(matches!(err, SecretError::NotAReference));
        let shown = err.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("secrets by reference only"), "{shown}");
    }

    #[test]
    fn refuses_malformed_references() {
        assert!(matches!(
            SecretRef::parse("env:"),
            Err(SecretError::BadEnvName(_))
        ));
        assert!(matches!(
            SecretRef::parse("env:1ABC"),
            Err(SecretError::BadEnvName(_))
        ));
        assert!(matches!(
            SecretRef::parse("env:A-B"),
            Err(SecretError::BadEnvName(_))
        ));
        assert!(matches!(
            SecretRef::parse("file:"),
            Err(SecretError::EmptyPath)
        ));
        assert!(matches!(
            SecretRef::parse("ENV:X"),
            Err(SecretError::NotAReference)
        ));
    }

    #[test]
    fn resolves_env_from_the_given_environment() {
        let env = HashMap::from([("PW".to_string(), "s3cret\n".to_string())]);
        let secret = SecretRef::Env("PW".into())
            .resolve_with(Path::new("/"), &env)
            .unwrap();
        // Environment values are used exactly as set.
        assert_eq!(secret.expose_secret(), "s3cret\n");
    }

    #[test]
    fn missing_env_names_the_variable() {
        let err = SecretRef::Env("BILLD_TEST_SURELY_UNSET_7f3a".into())
            .resolve(Path::new("/"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable BILLD_TEST_SURELY_UNSET_7f3a is not set"
        );
    }

    #[test]
    fn file_secret_trims_one_trailing_newline_and_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "line1\n\n").unwrap();
        std::fs::write(dir.path().join("crlf"), "abc\r\n").unwrap();
        let secret = SecretRef::parse("file:pw")
            .unwrap()
            .resolve_with(dir.path(), &no_env())
            .unwrap();
        assert_eq!(secret.expose_secret(), "line1\n");
        let secret = SecretRef::parse("file:crlf")
            .unwrap()
            .resolve_with(dir.path(), &no_env())
            .unwrap();
        assert_eq!(secret.expose_secret(), "abc");
    }

    #[test]
    fn unreadable_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = SecretRef::parse("file:absent.pw")
            .unwrap()
            .resolve_with(dir.path(), &no_env())
            .unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("cannot read secret file "), "{shown}");
        assert!(shown.contains("absent.pw"), "{shown}");
    }

    #[test]
    fn empty_secret_is_refused() {
        let env = HashMap::from([("PW".to_string(), String::new())]);
        let err = SecretRef::Env("PW".into())
            .resolve_with(Path::new("/"), &env)
            .unwrap_err();
        assert_eq!(err.to_string(), "secret env:PW is empty");
    }
}
