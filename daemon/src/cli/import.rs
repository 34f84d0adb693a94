//! `billd import`: CSV files of patients, coverages and appointments, and
//! 837P claim batches, into the store (or the running daemon's store).

use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use super::tasks::print_json;
use super::{Backend, Failure, VerbResult, load_config};
use crate::app::{Reply, Request};
use crate::intake::csv_rows::CsvKind;

/// What to import.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Patients from CSV (columns in docs/import.md).
    Patients {
        /// The CSV file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Coverages from CSV; their patients must be imported first.
    Coverages {
        /// The CSV file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Appointments from CSV; their patients must be imported first.
    Appointments {
        /// The CSV file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Claims from an 837P batch file.
    Claims {
        /// The 837P file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn read_text(file: &Path) -> Result<String, Failure> {
    let bytes = std::fs::read(file)
        .map_err(|e| Failure::Config(format!("{}: cannot read: {e}", file.display())))?;
    String::from_utf8(bytes).map_err(|e| {
        Failure::Config(format!(
            "{}: not text (invalid UTF-8 at byte {}); nothing imported",
            file.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Runs an import verb.
pub fn run(cfg_flag: Option<&Path>, cmd: ImportCommand) -> VerbResult {
    let cfg = Arc::new(load_config(cfg_flag)?);
    let (req, json) = match cmd {
        ImportCommand::Claims { file, json } => (
            Request::ImportClaims {
                text: read_text(&file)?,
                file: file.display().to_string(),
            },
            json,
        ),
        ImportCommand::Patients { file, json } => (csv(CsvKind::Patients, &file)?, json),
        ImportCommand::Coverages { file, json } => (csv(CsvKind::Coverages, &file)?, json),
        ImportCommand::Appointments { file, json } => (csv(CsvKind::Appointments, &file)?, json),
    };
    let mut backend = Backend::open(&cfg)?;
    let r = call!(backend, req, Reply::Imported);
    let out = &mut std::io::stdout().lock();
    if json {
        return print_json(&r, out);
    }
    say!(
        out,
        "{}: {} {}: {} new, {} changed, {} unchanged",
        r.file,
        r.created + r.updated + r.unchanged,
        r.kind,
        r.created,
        r.updated,
        r.unchanged
    );
    if r.patients_created > 0 {
        say!(
            out,
            "patients created from the claims: {}",
            r.patients_created
        );
    }
    if !r.flagged.is_empty() {
        say!(
            out,
            "flagged by the scrubber (a task each): {}",
            r.flagged.join(", ")
        );
    }
    if !r.kept_submitted.is_empty() {
        say!(
            out,
            "already submitted, kept as they are: {}",
            r.kept_submitted.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn csv(kind: CsvKind, file: &Path) -> Result<Request, Failure> {
    Ok(Request::ImportCsv {
        kind,
        text: read_text(file)?,
        file: file.display().to_string(),
    })
}
