//! `billd-sandbox`: a CAQH CORE payer for billd's tests and demo. It speaks
//! CORE Connectivity vC2.2.0 (SOAP 1.2 and HTTP+MIME) with X12 written by
//! billd-x12, follows a scenario file, archives every payload it receives
//! and injects faults on demand. Never part of the `billd` binary.

mod envelope;
mod faults;
mod payer;
mod scenario;
mod server;
mod x12out;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "billd-sandbox",
    about = "Test servers for billd (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A CAQH CORE payer (SOAP and HTTP+MIME) driven by a scenario file.
    Payer {
        /// The scenario (TOML; see sandbox/README.md).
        #[arg(long)]
        scenario: PathBuf,
        /// Loopback address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Directory every received payload is archived in.
        #[arg(long)]
        archive: PathBuf,
    },
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Payer {
            scenario,
            listen,
            archive,
        } => {
            if !listen.ip().is_loopback() {
                anyhow::bail!("--listen {listen}: the sandbox listens on loopback only");
            }
            let scenario = scenario::Scenario::load(&scenario)?;
            std::fs::create_dir_all(&archive)
                .map_err(|e| anyhow::anyhow!("--archive {}: {e}", archive.display()))?;
            server::serve(scenario, listen, archive).await
        }
    }
}
