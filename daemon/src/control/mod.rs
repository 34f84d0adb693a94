//! The control socket: how CLI verbs reach the running daemon.
//!
//! sled lets one process open a store. When a verb finds the store locked,
//! it sends its typed request to the daemon over a Unix socket in the store
//! directory (mode 0600, so only the daemon's user can use it); the daemon
//! runs it through the app layer against its own store and parts, and
//! returns typed data for the CLI to render. `jobs run` then runs inside the
//! daemon, under its scheduler's one-run-per-job rule.
//!
//! # Protocol (version 1)
//! JSON lines; a connection may carry several requests, answered in order:
//!
//! ```text
//! → {"v":1,"id":7,"op":{"name":"tasks_show","id":"T000001"}}
//! ← {"v":1,"id":7,"ok":{"type":"task","data":{...}}}
//! ← {"v":1,"id":7,"err":{"kind":"not_found","message":"no task with id T000001"}}
//! ```
//!
//! `op` is an [`app::Request`](crate::app::Request), `ok` an
//! [`app::Reply`](crate::app::Reply), `err.kind` an
//! [`ErrorKind`](crate::app::ErrorKind). A request in a version this end
//! does not speak gets an `err` of kind `protocol` naming the versions it
//! does; so does a line that is not a request.

pub mod client;
pub mod server;

pub use client::Client;
pub use server::{answer_line, serve};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::app::{AppError, ErrorKind, Reply, Request};
use crate::config::Config;

/// The protocol version this build speaks and sends.
pub const PROTOCOL_VERSION: u32 = 1;

/// Every protocol version this build's server answers.
pub const SUPPORTED_VERSIONS: &[u32] = &[PROTOCOL_VERSION];

/// The most bytes one request line may have.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestMessage {
    /// Protocol version.
    pub v: u32,
    /// The caller's id for the request, echoed in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The operation.
    pub op: Request,
}

/// A response line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseMessage {
    /// Protocol version of the answering end.
    pub v: u32,
    /// The request's id, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It succeeded with this data.
    Ok(Reply),
    /// It failed.
    Err(WireError),
}

/// A failure as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// What sort of failure.
    pub kind: ErrorKind,
    /// The message with its causes.
    pub message: String,
}

impl From<&AppError> for WireError {
    fn from(e: &AppError) -> Self {
        WireError {
            kind: e.kind(),
            message: e.message(),
        }
    }
}

impl From<WireError> for AppError {
    fn from(e: WireError) -> Self {
        AppError::Remote {
            kind: e.kind,
            message: e.message,
        }
    }
}

/// Where the daemon listens.
pub fn socket_path(cfg: &Config) -> PathBuf {
    cfg.store.path.join("control.sock")
}

impl ResponseMessage {
    /// A refusal of a line that is not a request this end can answer.
    pub fn refusal(id: Option<u64>, message: String) -> ResponseMessage {
        ResponseMessage {
            v: PROTOCOL_VERSION,
            id,
            outcome: Outcome::Err(WireError {
                kind: ErrorKind::Protocol,
                message,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
