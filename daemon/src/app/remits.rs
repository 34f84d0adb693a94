//! `billd remits`: post an 835 file, and the review queue of payers whose
//! remittances wait for a biller's approval. The work is
//! [`crate::posting`]'s; the posting modes are those of the configured
//! `remittance-posting` job (the first, when there are several), so a file
//! posted by hand posts the way the job would post it.

use std::io::Read;

use super::{App, AppError};
use crate::config::Config;
use crate::domain::posting::{Posting, PostingModes};
use crate::jobs::remittance_posting::{self, RemittancePostingParams};
use crate::posting::{self, PostReport};

/// The posting modes configured for remittance posting (automatic for
/// every payer when no `remittance-posting` job is configured).
pub fn modes(cfg: &Config) -> PostingModes {
    cfg.jobs
        .iter()
        .filter(|j| j.kind == remittance_posting::KIND.name)
        .find_map(|j| {
            crate::jobs::registry::parse_params::<RemittancePostingParams>(&j.params).ok()
        })
        .map(|p| p.modes())
        .unwrap_or_default()
}

/// Posts every 835 transaction set read from `input` (named `file`).
pub fn post(app: &App, file: &str, input: impl Read) -> Result<PostReport, AppError> {
    Ok(posting::post(
        app.db(),
        app.now(),
        file,
        input,
        &modes(app.config()),
    )?)
}

/// The postings waiting for review.
pub fn review(app: &App) -> Result<Vec<Posting>, AppError> {
    Ok(posting::review(app.db())?)
}

/// Approves posting `id` for `by`.
pub fn approve(app: &App, id: &str, by: &str) -> Result<Posting, AppError> {
    Ok(posting::approve(app.db(), app.now(), id, by)?)
}
