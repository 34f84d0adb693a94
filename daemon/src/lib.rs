//! billd: a medical-billing automation daemon.
//!
//! # Layout
//! - [`config`]: the one TOML file a practice writes, validated with errors
//!   that name file, line and key; secrets by reference only.
//! - [`store`]: the encrypted, crash-safe record store (sled by default).
//! - [`clock`]: the injected clock; billing logic never reads the wall clock.
//! - [`scheduler`]: cron schedules per IANA timezone, DST-exact, with
//!   occurrence claims so no occurrence ever runs twice.
//! - [`jobs`]: the job framework (work items, bounded concurrency, resume
//!   after a crash, graceful shutdown) and one module per job kind.
//! - [`intake`]: CSV and 837P files read into domain records (imports), and
//!   835s into the remittances billd posts.
//! - [`posting`]: remittances onto the ledger (idempotent, reversals,
//!   unapplied money, quarantine, review), for the app and the jobs alike.
//! - [`domain`]: the business model (patients, coverage, appointments,
//!   claims and their state machine, accounts and ledger, biller tasks).
//! - [`notify`]: email (SMTP pool or outbox directory) from editable templates;
//!   `[notify]` routes to billers and Standard Webhooks, and the dispatcher
//!   that sends urgent tasks at once.
//! - [`plugin`]: connector plugins as sandboxed WebAssembly components.
//! - [`mapping`]: the one conversion between domain types and the plugin
//!   contract's types.
//! - [`jobset`]: the configured jobs built into scheduler specs and kinds.
//! - [`app`]: every operation as a typed function (jobs, tasks, plugins),
//!   and the serde requests the adapters carry.
//! - [`control`]: the control socket's versioned protocol, server and client.
//! - [`daemon`]: the daemon's wiring (store, plugins, jobs, scheduler,
//!   notification dispatcher, signals, control socket).
//! - [`schema`]: the indexed record types, brought up to date at open.
//! - [`cli`]: the `billd` command line, an adapter over [`app`].
//!
//! Layers and where new things go: docs/ARCHITECTURE.md.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod domain;
pub mod intake;
pub mod jobs;
pub mod jobset;
pub mod mapping;
pub mod notify;
pub mod plugin;
pub mod posting;
pub mod scheduler;
pub mod schema;
pub mod store;

#[cfg(test)]
mod records_tests;
