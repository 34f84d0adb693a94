//! Notifications: email to billers (and later patients) through lettre, and
//! routed task notifications by email or signed webhook.
//!
//! - [`mail`]: the transports (an SMTP connection pool, or an outbox
//!   directory of `.eml` files for demos and air-gapped installs), and the
//!   delivery of stored [`OutboxMessage`]s with a fixed
//!   Message-ID, so a retry after a crash is recognisably the same message.
//! - [`outbox`]: the stored messages themselves.
//! - [`settings`]: the sender and the transport chosen.
//! - [`templates`]: editable minijinja templates, with built-in defaults
//!   copied from `config/templates`.
//! - [`routing`]: `[notify]`: which tasks go to which biller or webhook,
//!   and which kinds are urgent.
//! - [`webhook`]: Slack-compatible JSON signed the Standard Webhooks way.
//! - [`delivery`]: one stored record per task and destination, written
//!   before it is sent.
//! - [`dispatch`]: the daemon's loop that sends urgent tasks at once.

pub mod delivery;
pub mod dispatch;
pub mod mail;
pub mod outbox;
pub mod routing;
pub mod settings;
pub mod templates;
pub mod webhook;

pub use outbox::{OutboxMessage, OutboxStatus};
