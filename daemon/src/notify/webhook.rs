//! Webhook deliveries: Slack-compatible JSON, signed the Standard Webhooks
//! way, POSTed with reqwest.
//!
//! Every request carries `webhook-id` (the delivery's stable key, the same
//! on every retry), `webhook-timestamp` (unix seconds of this attempt) and
//! `webhook-signature` (`v1,` + base64 of HMAC-SHA256 over
//! `{id}.{timestamp}.{body}`), so a receiver's Standard Webhooks library
//! verifies it and drops a retry it has already seen.

use base64::Engine;
use serde::Serialize;

use super::routing::{WebhookConfig, WebhookSecret};
use crate::domain::Task;

/// The Standard Webhooks signature of one attempt: `v1,<base64>` of
/// HMAC-SHA256 over `{id}.{timestamp}.{body}`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    )
}

/// The JSON body sent for a task: `text` for Slack-compatible receivers,
/// and the Standard Webhooks `type`/`timestamp`/`data` envelope with the
/// task's ids and codes. The subject is the only free text, and subjects
/// hold ids and codes by design.
pub fn task_payload(task: &Task) -> String {
    #[derive(Serialize)]
    struct Data<'a> {
        id: &'a str,
        kind: &'a str,
        priority: &'static str,
        subject: &'a str,
        created_at: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        due: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        payer: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        assignee: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Payload<'a> {
        text: String,
        #[serde(rename = "type")]
        kind: &'static str,
        timestamp: String,
        data: Data<'a>,
    }
    let rfc3339 = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339();
    let payload = Payload {
        text: format!(
            "[{}] {} {}: {}",
            task.priority.name(),
            task.kind,
            task.id,
            task.subject
        ),
        kind: "task.raised",
        timestamp: rfc3339(task.created_at),
        data: Data {
            id: &task.id,
            kind: &task.kind,
            priority: task.priority.name(),
            subject: &task.subject,
            created_at: rfc3339(task.created_at),
            due: task.due.map(rfc3339),
            payer: task.payer.as_deref(),
            assignee: task.assignee.as_deref(),
        },
    };
    serde_json::to_string(&payload).unwrap_or_else(|_| "{}".into())
}

/// Why a webhook delivery did not succeed. Never carries the body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The receiver answered with an error status.
    #[error("webhook {webhook} answered {status}")]
    Status {
        /// The webhook's name.
        webhook: String,
        /// The HTTP status.
        status: u16,
    },
    /// The receiver could not be reached, or did not answer in time.
    #[error("webhook {webhook} unreachable: {reason}")]
    Connection {
        /// The webhook's name.
        webhook: String,
        /// What reqwest said (no URL query, no body).
        reason: String,
    },
}

impl WebhookError {
    /// Whether a retry may help: a 5xx or a connection problem. A 4xx
    /// means the receiver refused this delivery and will again.
    pub fn is_transient(&self) -> bool {
        match self {
            WebhookError::Status { status, .. } => *status >= 500,
            WebhookError::Connection { .. } => true,
        }
    }
}

/// POSTs signed webhook deliveries.
#[derive(Debug, Clone, Default)]
pub struct WebhookClient {
    http: reqwest::Client,
}

impl WebhookClient {
    /// A client with reqwest's connection pool; each request has its
    /// webhook's timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// POSTs `body` to `hook` as attempt `timestamp` (unix seconds) of
    /// delivery `id`; any 2xx is success.
    pub async fn post(
        &self,
        hook: &WebhookConfig,
        id: &str,
        timestamp: i64,
        body: &str,
    ) -> Result<(), WebhookError> {
        let signature = sign(&hook.secret, id, timestamp, body.as_bytes());
        let response = self
            .http
            .post(hook.url.clone())
            .timeout(hook.timeout)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| WebhookError::Connection {
                webhook: hook.name.clone(),
                reason: e.without_url().to_string(),
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(WebhookError::Status {
                webhook: hook.name.clone(),
                status: status.as_u16(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::routing::tests::task;

    #[test]
    fn signatures_match_the_standard_webhooks_published_example() {
        // The example published with the Standard Webhooks reference
        // libraries (and Svix's): any receiver library verifies this.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // Id, timestamp and body are all signed.
        let base = sign(&secret, "a", 1, b"{}");
        assert_ne!(base, sign(&secret, "b", 1, b"{}"));
        assert_ne!(base, sign(&secret, "a", 2, b"{}"));
        assert_ne!(base, sign(&secret, "a", 1, b"{ }"));
    }

    #[test]
    fn the_payload_is_slack_text_plus_the_task_in_ids_and_codes() {
        let mut t = task("T000007", "job-failing", Some("60054"));
        t.subject = "job nightly: work items failing after 3 attempts (timeout)".into();
        let v: serde_json::Value = serde_json::from_str(&task_payload(&t)).unwrap();
        assert_eq!(
            v["text"],
            "[high] job-failing T000007: job nightly: work items failing after 3 attempts (timeout)"
        );
        assert_eq!(v["type"], "task.raised");
        assert_eq!(v["data"]["id"], "T000007");
        assert_eq!(v["data"]["payer"], "60054");
        assert!(v["data"].get("due").is_none());
        let mut keys: Vec<&String> = v["data"].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["created_at", "id", "kind", "payer", "priority", "subject"]
        );
    }

    #[test]
    fn only_5xx_and_connection_errors_are_retried() {
        let status = |status| WebhookError::Status {
            webhook: "w".into(),
            status,
        };
        assert!(status(503).is_transient());
        assert!(!status(404).is_transient());
        assert!(!status(400).is_transient());
        assert!(
            WebhookError::Connection {
                webhook: "w".into(),
                reason: "refused".into()
            }
            .is_transient()
        );
    }
}
