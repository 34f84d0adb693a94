//! The daemon's end of the control socket: reads request lines, checks
//! their version, runs them through the app layer, writes typed answers.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::{
    MAX_REQUEST, Outcome, PROTOCOL_VERSION, RequestMessage, ResponseMessage, SUPPORTED_VERSIONS,
    WireError, socket_path,
};
use crate::app::App;

/// Answers one request line (without its newline). Never fails: problems
/// with the line itself are answered as `protocol` errors.
pub async fn answer_line(app: &App, line: &str) -> ResponseMessage {
    let refuse = ResponseMessage::refusal;
    let value: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return refuse(None, format!("malformed control request (not JSON): {e}")),
    };
    let id = value.get("id").and_then(serde_json::Value::as_u64);
    let supported = SUPPORTED_VERSIONS
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match value.get("v").map(|v| v.as_u64()) {
        None => {
            return refuse(
                id,
                format!(
                    "malformed control request: no protocol version `v` (this daemon speaks version {supported}); \
                     is this billd older than the daemon?"
                ),
            );
        }
        Some(Some(v)) if SUPPORTED_VERSIONS.iter().any(|s| u64::from(*s) == v) => {}
        Some(v) => {
            let shown = v.map_or_else(|| value["v"].to_string(), |v| v.to_string());
            return refuse(
                id,
                format!(
                    "control protocol version {shown} is not supported; this daemon speaks version {supported}"
                ),
            );
        }
    }
    let msg: RequestMessage = match serde_json::from_value(value) {
        Ok(m) => m,
        Err(e) => return refuse(id, format!("malformed control request: {e}")),
    };
    tracing::info!(op = msg.op.name(), "control request");
    let outcome = match app.execute(msg.op).await {
        Ok(reply) => Outcome::Ok(reply),
        Err(e) => Outcome::Err(WireError::from(&e)),
    };
    ResponseMessage {
        v: PROTOCOL_VERSION,
        id: msg.id,
        outcome,
    }
}

/// Serves the control socket for `app` (the daemon's) until `cancel` fires.
pub async fn serve(app: App, cancel: CancellationToken) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(app.config());
    // A socket file left by a crashed daemon; we hold the store lock, so no
    // other daemon is using it.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).inspect_err(|e| {
        tracing::warn!(socket = %path.display(), error = %e, "cannot open the control socket; CLI verbs will not reach the daemon");
    })?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    tracing::info!(socket = %path.display(), "control socket ready");
    loop {
        let (stream, _) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => r?,
        };
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, app).await {
                tracing::warn!(error = %e, "control connection failed");
            }
        });
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

async fn handle(stream: UnixStream, app: App) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = String::new();
        let n = (&mut reader)
            .take(MAX_REQUEST as u64 + 1)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            break;
        }
        let too_long = n > MAX_REQUEST && !line.ends_with('\n');
        let resp = if too_long {
            ResponseMessage::refusal(
                None,
                format!("control request longer than {MAX_REQUEST} bytes"),
            )
        } else {
            answer_line(&app, line.trim_end()).await
        };
        let mut bytes = serde_json::to_vec(&resp).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        write.write_all(&bytes).await?;
        if too_long {
            break;
        }
    }
    write.shutdown().await
}
