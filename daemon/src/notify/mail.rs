//! Email transports and delivery.

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};

use super::OutboxMessage;
use super::settings::{MailConfig, MailTransport};

/// Why an email could not be built or delivered. Never carries the body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The SMTP settings are unusable.
    #[error("mail configuration: {0}")]
    Config(String),
    /// A recipient or header is malformed.
    #[error("message {key}: {reason}")]
    Message {
        /// The outbox key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The SMTP server could not be reached or refused for now.
    #[error("SMTP delivery of {key} failed: {reason}")]
    Smtp {
        /// The outbox key.
        key: String,
        /// The transport's error.
        reason: String,
        /// Whether a retry may help (4xx and connection problems).
        transient: bool,
    },
    /// The outbox directory could not be written.
    #[error("writing {path}: {source}")]
    Outbox {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl MailError {
    /// Whether retrying later may help.
    pub fn is_transient(&self) -> bool {
        match self {
            MailError::Smtp { transient, .. } => *transient,
            MailError::Outbox { .. } => true,
            _ => false,
        }
    }
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

/// Sends stored outbox messages.
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
    /// One permit per pooled connection: lettre's pool opens extra
    /// connections when all are busy, so deliveries wait here instead.
    slots: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::Outbox(_) => "outbox",
        };
        f.debug_struct("Mailer").field("transport", &kind).finish()
    }
}

/// A file-name-safe form of an outbox key, used for the Message-ID and the
/// outbox file name.
pub fn safe_key(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Mailer {
    /// Builds the transport the configuration names. SMTP connections are
    /// pooled and opened lazily, so this does not touch the network.
    pub fn from_config(cfg: &MailConfig) -> Result<Self, MailError> {
        let transport = match &cfg.transport {
            MailTransport::Outbox { dir } => Transport::Outbox(dir.clone()),
            MailTransport::Smtp {
                url,
                username,
                password,
                pool_max,
                timeout,
                ..
            } => {
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| MailError::Config(format!("smtp_url: {e}")))?
                    .pool_config(PoolConfig::new().max_size(*pool_max))
                    .timeout(Some(*timeout));
                if let Some(user) = username {
                    let pass = password
                        .as_ref()
                        .map(|p| p.expose_secret().to_string())
                        .unwrap_or_default();
                    b = b.credentials(Credentials::new(user.clone(), pass));
                }
                Transport::Smtp(b.build())
            }
        };
        let slots = match &cfg.transport {
            MailTransport::Smtp { pool_max, .. } => (*pool_max).max(1) as usize,
            MailTransport::Outbox { .. } => 16,
        };
        Ok(Self {
            from: cfg.from.clone(),
            transport,
            slots: tokio::sync::Semaphore::new(slots),
        })
    }

    /// A mailer that writes `.eml` files into `dir`.
    pub fn outbox(from: Mailbox, dir: &Path) -> Self {
        Self {
            from,
            transport: Transport::Outbox(dir.to_path_buf()),
            slots: tokio::sync::Semaphore::new(16),
        }
    }

    /// The `From:` of every message.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// The email for a stored message, with a Message-ID fixed by its key.
    pub fn build(&self, msg: &OutboxMessage) -> Result<Message, MailError> {
        let bad = |reason: String| MailError::Message {
            key: msg.key.clone(),
            reason,
        };
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(msg.subject.clone())
            .message_id(Some(format!("<{}@billd>", safe_key(&msg.key))))
            .date(msg.created_at.into())
            .header(ContentType::TEXT_PLAIN);
        for (name, value) in &msg.headers {
            let name = lettre::message::header::HeaderName::new_from_ascii(name.clone())
                .map_err(|e| bad(format!("header name {name:?}: {e}")))?;
            b = b.raw_header(lettre::message::header::HeaderValue::new(
                name,
                value.clone(),
            ));
        }
        for to in &msg.to {
            let mb: Mailbox = to
                .parse()
                .map_err(|e| bad(format!("recipient is not an address: {e}")))?;
            b = b.to(mb);
        }
        b.body(msg.body.clone()).map_err(|e| bad(e.to_string()))
    }

    /// Delivers a stored message. Delivering the same message twice writes
    /// the same outbox file, or sends the same Message-ID.
    pub async fn deliver(&self, msg: &OutboxMessage) -> Result<(), MailError> {
        let email = self.build(msg)?;
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| MailError::Config(e.to_string()))?;
        match &self.transport {
            Transport::Smtp(t) => t
                .send(email)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Smtp {
                    key: msg.key.clone(),
                    transient: e.is_transient() || e.is_timeout() || !e.is_permanent(),
                    reason: e.to_string(),
                }),
            Transport::Outbox(dir) => {
                let name = format!("{}.eml", safe_key(&msg.key));
                let path = dir.join(&name);
                let tmp = dir.join(format!(".{name}.tmp"));
                let io = |source| MailError::Outbox {
                    path: path.clone(),
                    source,
                };
                tokio::fs::create_dir_all(dir).await.map_err(io)?;
                tokio::fs::write(&tmp, email.formatted())
                    .await
                    .map_err(io)?;
                // A rename replaces atomically: a retry leaves one file.
                tokio::fs::rename(&tmp, &path).await.map_err(io)?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::OutboxStatus;

    fn msg(key: &str) -> OutboxMessage {
        OutboxMessage {
            key: key.into(),
            to: vec!["Dana <dana@example.org>".into()],
            subject: "3 open tasks".into(),
            body: "T000001\n".into(),
            created_at: chrono::Utc::now(),
            status: OutboxStatus::Queued,
            attempts: 0,
            headers: Vec::new(),
        }
    }

    #[tokio::test]
    async fn outbox_delivery_is_one_file_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mailer::outbox("billd <billd@example.org>".parse().unwrap(), dir.path());
        m.deliver(&msg("digest/1#dana")).await.unwrap();
        m.deliver(&msg("digest/1#dana")).await.unwrap();
        m.deliver(&msg("digest/1#lee")).await.unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["digest_1_dana.eml", "digest_1_lee.eml"]);
        let text = std::fs::read_to_string(dir.path().join("digest_1_dana.eml")).unwrap();
        assert!(text.contains("Message-ID: <digest_1_dana@billd>"), "{text}");
        assert!(text.contains("To: Dana <dana@example.org>"), "{text}");
    }

    #[test]
    fn bad_recipient_is_a_message_error() {
        let m = Mailer::outbox(
            "billd <billd@example.org>".parse().unwrap(),
            Path::new("/nonexistent"),
        );
        let mut bad = msg("k");
        bad.to = vec!["not an address".into()];
        assert!(matches!(m.build(&bad), Err(MailError::Message { .. })));
    }
}
