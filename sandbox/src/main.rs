//! `billd-sandbox`: a CAQH CORE payer, a FHIR R4 EHR (with a SMART
//! token endpoint) and a collection agency for billd's tests and demo. It speaks
//! CORE Connectivity vC2.2.0 (SOAP 1.2 and HTTP+MIME) with X12 written by
//! billd-x12, follows a scenario file, archives every payload it receives
//! and injects faults on demand. Never part of the `billd` binary.

mod agency;
mod agency_folders;
mod agency_server;
mod envelope;
mod faults;
mod fhir;
mod fhir_server;
mod folders;
mod payer;
mod scenario;
mod server;
mod smart;
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
        /// The folder an sshd serves as this payer's batch clearinghouse:
        /// 837P uploads taken from `DIR/inbound`, 999s, 277CAs and 835s
        /// written to `DIR/outbound` (see sandbox/README.md).
        #[arg(long, value_name = "DIR")]
        sftp_root: Option<PathBuf>,
    },
    /// A FHIR R4 server over fixture files, with a SMART Backend Services
    /// token endpoint (see sandbox/README.md).
    Fhir {
        /// Directory of FHIR JSON (`.json`: a resource or a Bundle;
        /// `.ndjson`: one resource a line), read recursively.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Adds this many generated patients, each with a coverage and an
        /// appointment on `--generate-day` (benchmarks).
        #[arg(long, default_value_t = 0)]
        generate: usize,
        /// The day generated appointments fall on (YYYY-MM-DD).
        #[arg(long, default_value = "2026-12-03")]
        generate_day: chrono::NaiveDate,
        /// Loopback address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// A bearer token accepted as is (the connector's simple mode).
        #[arg(long)]
        static_token: Option<String>,
        /// The SMART client's public keys (a JWKS file); enables the token
        /// endpoint and requires its tokens.
        #[arg(long, requires = "client_id")]
        jwks: Option<PathBuf>,
        /// The SMART client id (`iss` and `sub` of its assertions).
        #[arg(long)]
        client_id: Option<String>,
        /// Lifetime of issued access tokens, in seconds.
        #[arg(long, default_value_t = 300)]
        token_lifetime: i64,
    },
    /// A collection agency: placement files in layout BCP1, recalls,
    /// updates behind a cursor, and a control API to script them (see
    /// sandbox/README.md).
    Agency {
        /// Loopback address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// The practice's client number at the agency.
        #[arg(long, default_value = "BILLD01")]
        client_number: String,
        /// The bearer API key the agency requires (none: no check).
        #[arg(long)]
        api_key: Option<String>,
        /// The folder an sshd serves as this agency's file drop: placement
        /// files (BCP1) taken from `DIR/placements`, recall files (BCR1)
        /// from `DIR/recalls`, updates (BCU1) written to `DIR/updates`
        /// (see sandbox/README.md).
        #[arg(long, value_name = "DIR")]
        sftp_root: Option<PathBuf>,
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
            sftp_root,
        } => {
            if !listen.ip().is_loopback() {
                anyhow::bail!("--listen {listen}: the sandbox listens on loopback only");
            }
            let scenario = scenario::Scenario::load(&scenario)?;
            std::fs::create_dir_all(&archive)
                .map_err(|e| anyhow::anyhow!("--archive {}: {e}", archive.display()))?;
            server::serve(scenario, listen, archive, sftp_root).await
        }
        Command::Fhir {
            data,
            generate,
            generate_day,
            listen,
            static_token,
            jwks,
            client_id,
            token_lifetime,
        } => {
            if !listen.ip().is_loopback() {
                anyhow::bail!("--listen {listen}: the sandbox listens on loopback only");
            }
            let mut store = match &data {
                Some(dir) => fhir::FhirStore::load_dir(dir)?,
                None => fhir::FhirStore::default(),
            };
            store.generate(generate, generate_day);
            let keys = match &jwks {
                None => None,
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| anyhow::anyhow!("--jwks {}: {e}", path.display()))?;
                    let set: jsonwebtoken::jwk::JwkSet =
                        serde_json::from_str(&text).map_err(|e| {
                            anyhow::anyhow!("--jwks {}: not a JWKS: {e}", path.display())
                        })?;
                    Some(set)
                }
            };
            fhir_server::serve(listen, move |token_url| {
                let smart = keys.map(|keys| {
                    smart::TokenEndpoint::new(
                        smart::Client {
                            id: client_id.unwrap_or_default(),
                            keys,
                        },
                        token_url,
                        token_lifetime,
                    )
                });
                Ok(fhir_server::Sandbox::new(
                    store,
                    fhir_server::Auth {
                        static_token,
                        smart,
                    },
                ))
            })
            .await
        }
        Command::Agency {
            listen,
            client_number,
            api_key,
            sftp_root,
        } => {
            if !listen.ip().is_loopback() {
                anyhow::bail!("--listen {listen}: the sandbox listens on loopback only");
            }
            agency_server::serve(
                listen,
                agency_server::Sandbox {
                    agency: agency::Agency::new(&client_number),
                    api_key,
                    lose_answers: 0,
                },
                sftp_root,
            )
            .await
        }
    }
}
