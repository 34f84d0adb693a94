//! The CLI's end of the control socket.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use super::{Outcome, PROTOCOL_VERSION, RequestMessage, ResponseMessage, socket_path};
use crate::app::{AppError, Reply, Request};
use crate::config::Config;

/// The CLI's end of the control socket: sends typed requests, returns typed
/// replies. Blocking (the CLI has no runtime of its own for this).
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    next_id: u64,
}

impl Client {
    /// A client of the socket at `path`.
    pub fn new(path: &Path) -> Client {
        Client {
            path: path.to_path_buf(),
            next_id: 1,
        }
    }

    /// A client of the daemon on `cfg`'s store.
    pub fn for_config(cfg: &Config) -> Client {
        Client::new(&socket_path(cfg))
    }

    /// Sends `op` to the daemon and waits for its answer (a run may take
    /// minutes). The daemon's failures come back as [`AppError::Remote`]
    /// with the daemon's kind and message.
    pub fn call(&mut self, op: Request) -> Result<Reply, AppError> {
        let id = self.next_id;
        self.next_id += 1;
        let unavailable = |what: String| AppError::Unavailable(what);
        let mut stream = std::os::unix::net::UnixStream::connect(&self.path).map_err(|e| {
            unavailable(format!(
                "the store is in use by another billd process and its control socket {} does not answer ({e}); \
                 is a second daemon running on this store?",
                self.path.display()
            ))
        })?;
        let msg = RequestMessage {
            v: PROTOCOL_VERSION,
            id: Some(id),
            op,
        };
        let mut line = serde_json::to_vec(&msg)
            .map_err(|e| AppError::Protocol(format!("encoding a control request: {e}")))?;
        line.push(b'\n');
        stream
            .write_all(&line)
            .map_err(|e| unavailable(format!("sending to {}: {e}", self.path.display())))?;
        let mut answer = String::new();
        std::io::BufReader::new(&stream)
            .read_line(&mut answer)
            .map_err(|e| unavailable(format!("reading from {}: {e}", self.path.display())))?;
        let resp = parse_response(&answer)?;
        match resp.outcome {
            Outcome::Ok(reply) => Ok(reply),
            Outcome::Err(e) => Err(e.into()),
        }
    }
}

fn parse_response(answer: &str) -> Result<ResponseMessage, AppError> {
    let value: serde_json::Value = serde_json::from_str(answer)
        .map_err(|e| AppError::Protocol(format!("the daemon's answer is not understood: {e}")))?;
    if value.get("v").is_none() {
        return Err(AppError::Protocol(
            "the daemon speaks an older control protocol (no version); restart it with this billd"
                .into(),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| AppError::Protocol(format!("the daemon's answer is not understood: {e}")))
}
