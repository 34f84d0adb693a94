//! The configuration file exactly as written.
//!
//! These structs mirror the TOML sections one to one, refuse unknown keys
//! (`deny_unknown_fields`) and keep the byte span of every value that a later
//! check may need to point at. Checking and defaulting happen in
//! [`super::check`]; nothing outside the config module sees these types.

use serde::Deserialize;
use toml::Spanned;

/// `[practice]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPractice {
    pub name: Spanned<String>,
    pub npi: Spanned<String>,
    pub tax_id: Spanned<String>,
    pub timezone: Spanned<String>,
}

/// `[store]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub path: Spanned<String>,
    pub key_file: Spanned<String>,
    pub cache_bytes: Option<Spanned<i64>>,
}

/// `[mail]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMail {
    pub from: Spanned<String>,
    pub smtp_url: Option<Spanned<String>>,
    pub tls: Option<Spanned<String>>,
    pub username: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    pub pool_max: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub outbox_dir: Option<Spanned<String>>,
}

/// One `[[billers]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBiller {
    pub name: Spanned<String>,
    pub email: Spanned<String>,
    pub receives: Spanned<Vec<Spanned<String>>>,
}

/// One `[[job]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJob {
    pub name: Spanned<String>,
    pub kind: Spanned<String>,
    pub schedule: Spanned<String>,
    pub timezone: Option<Spanned<String>>,
    pub misfire: Option<Spanned<String>>,
    pub catch_up_window: Option<Spanned<String>>,
    pub enabled: Option<bool>,
    pub concurrency: Option<Spanned<i64>>,
    pub params: Option<toml::Table>,
}

/// `[notify]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub urgent: Option<Spanned<Vec<Spanned<String>>>>,
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub webhook: Vec<Spanned<RawWebhook>>,
    #[serde(default)]
    pub route: Vec<Spanned<RawRoute>>,
}

/// One `[[notify.webhook]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub name: Spanned<String>,
    pub url: Spanned<String>,
    pub secret: Spanned<String>,
    pub timeout: Option<Spanned<String>>,
}

/// One `[[notify.route]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub kinds: Option<Spanned<Vec<Spanned<String>>>>,
    pub payers: Option<Spanned<Vec<Spanned<String>>>>,
    pub biller: Option<Spanned<String>>,
    pub webhook: Option<Spanned<String>>,
}
