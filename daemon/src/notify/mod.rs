//! Notifications: email to billers (and later patients) through lettre.
//!
//! - [`mail`]: the transports (an SMTP connection pool, or an outbox
//!   directory of `.eml` files for demos and air-gapped installs), and the
//!   delivery of stored [`OutboxMessage`]s with a fixed
//!   Message-ID, so a retry after a crash is recognisably the same message.
//! - [`outbox`]: the stored messages themselves.
//! - [`settings`]: the sender and the transport chosen.
//! - [`templates`]: editable minijinja templates, with built-in defaults
//!   copied from `config/templates`.

pub mod mail;
pub mod outbox;
pub mod settings;
pub mod templates;

pub use outbox::{OutboxMessage, OutboxStatus};
