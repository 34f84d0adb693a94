//! The control socket: how `billd tasks ...`, `billd jobs list | history |
//! run` and `billd plugins reload` reach the running daemon.
//!
//! sled lets one process open a store. When a verb finds the store locked,
//! it sends its command line to the daemon over a Unix socket in the store
//! directory (mode 0600, so only the daemon's user can use it); the daemon
//! runs the same verb against its own store and returns the output and exit
//! code. `jobs run` then runs inside the daemon, under its one-run-per-job
//! rule.

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::cli::jobs::JobsCommand;
use crate::cli::plugins::PluginsCommand;
use crate::cli::{Cli, Command, Failure, VerbResult};
use crate::config::Config;
use crate::plugin::PluginRegistry;
use crate::scheduler::runtime::Scheduler;
use crate::store::Db;

/// The most bytes a request may have.
const MAX_REQUEST: u64 = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    args: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Response {
    code: u8,
    stdout: String,
    stderr: String,
}

/// Where the daemon listens.
pub fn socket_path(cfg: &Config) -> PathBuf {
    cfg.store.path.join("control.sock")
}

/// Sends this process's command line to the running daemon and relays its
/// answer.
pub fn forward(cfg: &Config) -> VerbResult {
    let path = socket_path(cfg);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fail = |what: String| Failure::Runtime(anyhow::anyhow!(what));
    let mut stream = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        fail(format!(
            "the store is in use by another billd process and its control socket {} does not answer ({e}); \
             is a second daemon running on this store?",
            path.display()
        ))
    })?;
    let mut line = serde_json::to_vec(&Request { args }).map_err(|e| fail(e.to_string()))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|e| fail(format!("sending to {}: {e}", path.display())))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| fail(format!("reading from {}: {e}", path.display())))?;
    let resp: Response = serde_json::from_str(&answer)
        .map_err(|e| fail(format!("the daemon's answer is not understood: {e}")))?;
    print!("{}", resp.stdout);
    eprint!("{}", resp.stderr);
    Ok(ExitCode::from(resp.code))
}

/// Serves the control socket until `cancel` fires.
pub async fn serve(
    cfg: Arc<Config>,
    db: Db,
    scheduler: Arc<Scheduler>,
    plugins: Option<Arc<PluginRegistry>>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(&cfg);
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
        let ctx = Ctx {
            cfg: cfg.clone(),
            db: db.clone(),
            scheduler: scheduler.clone(),
            plugins: plugins.clone(),
            cancel: cancel.clone(),
        };
        tokio::spawn(async move {
            if let Err(e) = handle(stream, ctx).await {
                tracing::warn!(error = %e, "control connection failed");
            }
        });
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// What a control request may use.
struct Ctx {
    cfg: Arc<Config>,
    db: Db,
    scheduler: Arc<Scheduler>,
    plugins: Option<Arc<PluginRegistry>>,
    cancel: CancellationToken,
}

async fn handle(stream: UnixStream, ctx: Ctx) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST))
        .read_line(&mut line)
        .await?;
    let resp = match serde_json::from_str::<Request>(&line) {
        Ok(req) => answer(req, ctx).await,
        Err(e) => Response {
            code: 2,
            stdout: String::new(),
            stderr: format!("billd: malformed control request: {e}\n"),
        },
    };
    let mut bytes = serde_json::to_vec(&resp).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.shutdown().await
}

fn respond(result: VerbResult, out: Vec<u8>) -> Response {
    let stdout = String::from_utf8_lossy(&out).into_owned();
    match result {
        Ok(code) => Response {
            code: if code == ExitCode::SUCCESS { 0 } else { 1 },
            stdout,
            stderr: String::new(),
        },
        Err(failure) => Response {
            code: failure.exit_code(),
            stdout,
            stderr: format!("{}\n", failure.message()),
        },
    }
}

async fn answer(req: Request, ctx: Ctx) -> Response {
    let Ctx {
        cfg,
        db,
        scheduler,
        plugins,
        cancel,
    } = ctx;
    use clap::Parser;
    let cli = match Cli::try_parse_from(std::iter::once("billd".to_string()).chain(req.args)) {
        Ok(cli) => cli,
        Err(e) => {
            return Response {
                code: 2,
                stdout: String::new(),
                stderr: e.to_string(),
            };
        }
    };
    tracing::info!(verb = ?cli.command, "control request");
    match cli.command {
        Command::Jobs {
            cmd: JobsCommand::Run { name },
        } => {
            let mut out = Vec::new();
            let result = match scheduler.run_manual(&name, cancel).await {
                Ok(run) => crate::cli::jobs::report_run(&run, &mut out),
                Err(e) => Err(Failure::Runtime(anyhow::anyhow!(e))),
            };
            respond(result, out)
        }
        Command::Plugins {
            cmd: PluginsCommand::Reload { .. },
        } => reload(&cfg, plugins).await,
        Command::Jobs { cmd } => {
            blocking(move |out| crate::cli::jobs::execute(&cfg, &db, cmd, out)).await
        }
        Command::Tasks { cmd } => {
            blocking(move |out| crate::cli::tasks::execute(&cfg, &db, cmd, out)).await
        }
        other => Response {
            code: 2,
            stdout: String::new(),
            stderr: format!("billd: {other:?} cannot run through the daemon; stop it first\n"),
        },
    }
}

/// `billd plugins reload` through the daemon: re-read the configuration and
/// swap the verified set in.
async fn reload(cfg: &Config, plugins: Option<Arc<PluginRegistry>>) -> Response {
    let Some(registry) = plugins else {
        return Response {
            code: 1,
            stdout: String::new(),
            stderr:
                "billd: the daemon started with no plugins configured; restart it to add some\n"
                    .into(),
        };
    };
    let source = cfg.source.clone();
    let outcome =
        tokio::task::spawn_blocking(move || crate::daemon::reload_plugins(&source, &registry))
            .await
            .unwrap_or_else(|e| Err(format!("reload task failed: {e}")));
    match outcome {
        Ok(report) => Response {
            code: 0,
            stdout: format!("{report}\n"),
            stderr: String::new(),
        },
        Err(e) => Response {
            code: 1,
            stdout: String::new(),
            stderr: format!("billd: {e}\n"),
        },
    }
}

async fn blocking<F>(f: F) -> Response
where
    F: FnOnce(&mut dyn Write) -> VerbResult + Send + 'static,
{
    let joined = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let result = f(&mut out);
        respond(result, out)
    })
    .await;
    joined.unwrap_or_else(|e| Response {
        code: 1,
        stdout: String::new(),
        stderr: format!("billd: the daemon failed to run the verb: {e}\n"),
    })
}
