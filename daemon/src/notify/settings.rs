//! Mail settings: the sender and how mail leaves (SMTP with a pool, or an
//! outbox directory). The configuration fills them in; the transports in
//! [`super::mail`] read them.

use std::path::PathBuf;
use std::time::Duration;

/// The sender and the way mail leaves (`[mail]` in the configuration).
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// The `From:` of every message billd sends.
    pub from: lettre::message::Mailbox,
    /// SMTP or an outbox directory.
    pub transport: MailTransport,
}

/// How mail leaves.
#[derive(Debug, Clone)]
pub enum MailTransport {
    /// Through an SMTP server, with a connection pool.
    Smtp {
        /// A lettre connection URL carrying the TLS mode and never any
        /// credentials, ready for `AsyncSmtpTransport::from_url`:
        /// `smtps://host:465`, `smtp://host:587?tls=required` (STARTTLS)
        /// or `smtp://host:25` (no TLS).
        url: String,
        /// The server's host name or address.
        host: String,
        /// The server's port (defaulted from the TLS mode when not given).
        port: u16,
        /// How the connection is protected.
        tls: SmtpTls,
        /// The user to authenticate as, if any.
        username: Option<String>,
        /// The resolved password, if any (set exactly when `username` is).
        password: Option<secrecy::SecretString>,
        /// Most pooled connections open at once.
        pool_max: u32,
        /// Timeout for connecting and for each SMTP command.
        timeout: Duration,
    },
    /// Into a directory, one `.eml` file per message (demo and tests).
    Outbox {
        /// The directory (absolute).
        dir: PathBuf,
    },
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// TLS from the first byte (`smtps://`, port 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS, which is required
    /// (`smtp://`, port 587; the default for `smtp://`).
    StartTls,
    /// No encryption (`tls = "none"`; port 25); only for a local relay.
    None,
}
