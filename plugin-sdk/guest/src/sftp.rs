//! Files on SFTP servers, reached by billd for this plugin (contract
//! `billd:connector@0.3.0`). Declare each server your plugin uses in
//! `plugin.toml` as `[sftp.NAME]`; the practice configures where it is, the
//! account, the pinned host key and the credential on its `[[plugin]]`
//! table. The plugin names the server and never sees the credential: billd
//! connects, refuses a server whose host key is not the pinned one,
//! authenticates, applies the server's timeout and size cap, and audits
//! every operation.
//!
//! ```no_run
//! use billd_plugin_sdk::sftp;
//! for entry in sftp::list("clearinghouse", "/outbound")? {
//!     if !entry.is_dir && entry.name.ends_with(".835") {
//!         let bytes = sftp::get("clearinghouse", &format!("/outbound/{}", entry.name))?;
//!         // … hand it to billd; delete it only once billd has stored it.
//!         # let _ = bytes;
//!     }
//! }
//! sftp::put("clearinghouse", "/inbound/batch-0001.837", b"ISA*00*...~")?;
//! # Ok::<(), billd_plugin_sdk::types::ConnectorError>(())
//! ```
//!
//! Every function returns [`SftpError`], which converts into the
//! [`ConnectorError`] billd retries or raises a task for: `?` does the right
//! thing in a connector function.

use crate::payer_world::billd::connector0_3_0::sftp as wit;
use crate::types::ConnectorError;

pub use wit::{Entry, SftpError};

/// The entries of directory `dir` on `server` (sorted by name, without `.`
/// and `..`).
pub fn list(server: &str, dir: &str) -> Result<Vec<Entry>, SftpError> {
    wit::list(server, dir)
}

/// The whole content of file `path` (at most the server's size cap).
pub fn get(server: &str, path: &str) -> Result<Vec<u8>, SftpError> {
    wit::get(server, path)
}

/// Writes `data` to `path`: billd uploads to a temporary name in the same
/// directory and renames it onto `path` (replacing a file already there),
/// so the server never shows a partial file under that name.
pub fn put(server: &str, path: &str, data: &[u8]) -> Result<(), SftpError> {
    wit::put(server, path, data)
}

/// Renames `from` to `to`.
pub fn rename(server: &str, from: &str, to: &str) -> Result<(), SftpError> {
    wit::rename(server, from, to)
}

/// Deletes file `path`.
pub fn remove(server: &str, path: &str) -> Result<(), SftpError> {
    wit::remove(server, path)
}

impl From<SftpError> for ConnectorError {
    /// A refused server, host key or credential needs a person (an
    /// authentication error); a timeout or an I/O failure can pass (a
    /// transient one); a missing or oversized file is an invalid request.
    fn from(e: SftpError) -> Self {
        match e {
            SftpError::NotAllowed(m) => ConnectorError::authentication(format!("sftp: {m}")),
            SftpError::HostKeyMismatch(m) => {
                ConnectorError::authentication(format!("sftp host key: {m}"))
            }
            SftpError::Auth(m) => ConnectorError::authentication(format!("sftp login: {m}")),
            SftpError::NotFound(m) => ConnectorError::invalid("sftp.path", m),
            SftpError::TooLarge(m) => ConnectorError::invalid("sftp.size", m),
            SftpError::Timeout(m) => ConnectorError::transient(format!("sftp timeout: {m}")),
            SftpError::Io(m) => ConnectorError::transient(format!("sftp: {m}")),
        }
    }
}
