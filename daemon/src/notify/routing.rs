//! Where a task's notifications go: the `[notify]` section's routes, its
//! webhooks and the task kinds that are urgent.
//!
//! A route matches a task by kind and/or payer and names one destination:
//! a biller (by name; their email) or a webhook (by name). The
//! configuration fills these in and checks every name; the dispatcher
//! ([`super::dispatch`]) and the digest job read them.
//!
//! Urgent tasks go at once to every destination routed. Other tasks go at
//! once only to webhooks whose route names their kind, and to their routed
//! billers in the digest.

use std::time::Duration;

use crate::domain::Task;

/// The task kinds sent at once when `[notify] urgent` is not given: a job
/// whose work keeps failing, an 835 that could not be posted, a plugin the
/// daemon refused to (re)load.
pub const DEFAULT_URGENT_KINDS: &[&str] = &["job-failing", "quarantined-835", "plugin-refused"];

/// How often the dispatcher looks for urgent tasks and due retries when
/// `[notify] interval` is not given.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// How long one webhook request may take when `timeout` is not given.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// `[notify]`: urgent kinds, webhooks and routes.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Task kinds whose routed notifications go out at once rather than
    /// waiting for the digest.
    pub urgent: Vec<String>,
    /// How often the dispatcher looks for new urgent tasks and due retries.
    pub interval: Duration,
    /// The webhooks routes may name, `[[notify.webhook]]`.
    pub webhooks: Vec<WebhookConfig>,
    /// The routes, `[[notify.route]]`, in file order.
    pub routes: Vec<Route>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            urgent: DEFAULT_URGENT_KINDS.iter().map(|k| k.to_string()).collect(),
            interval: DEFAULT_INTERVAL,
            webhooks: Vec::new(),
            routes: Vec::new(),
        }
    }
}

/// A webhook endpoint (`[[notify.webhook]]`).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// A unique name routes refer to.
    pub name: String,
    /// Where deliveries are POSTed (http or https).
    pub url: url::Url,
    /// The signing secret, decoded from `whsec_<base64>`.
    pub secret: WebhookSecret,
    /// How long one request may take.
    pub timeout: Duration,
}

/// A Standard Webhooks signing key: the bytes of a `whsec_<base64>` secret.
/// Its `Debug` never shows them.
#[derive(Clone)]
pub struct WebhookSecret(zeroize::Zeroizing<Vec<u8>>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// Why a webhook secret is unusable. Never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFormatError {
    /// The value does not start with `whsec_`.
    #[error("a webhook secret is written whsec_<base64>")]
    NoPrefix,
    /// What follows `whsec_` is not base64.
    #[error("what follows whsec_ is not base64")]
    NotBase64,
    /// The key is shorter than the 24 bytes Standard Webhooks asks for.
    #[error("the key is {0} bytes; Standard Webhooks secrets are 24 to 64 bytes")]
    WrongLength(usize),
}

impl WebhookSecret {
    /// Parses `whsec_<base64>` (a key of 24 to 64 bytes).
    pub fn parse(text: &str) -> Result<Self, SecretFormatError> {
        use base64::Engine;
        let b64 = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or(SecretFormatError::NoPrefix)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| SecretFormatError::NotBase64)?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(SecretFormatError::WrongLength(bytes.len()));
        }
        Ok(Self(zeroize::Zeroizing::new(bytes)))
    }

    /// The key bytes, for signing.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Where a routed notification goes.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// A biller's email, by biller name.
    Biller(String),
    /// A configured webhook, by name.
    Webhook(String),
}

impl Destination {
    /// `biller:NAME` or `webhook:NAME`: the destination part of a delivery
    /// key and of log lines.
    pub fn label(&self) -> String {
        match self {
            Destination::Biller(name) => format!("biller:{name}"),
            Destination::Webhook(name) => format!("webhook:{name}"),
        }
    }
}

/// One `[[notify.route]]`: tasks matching `kinds` and `payers` go to
/// `to`. An empty list matches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Task kinds matched (empty: every kind).
    pub kinds: Vec<String>,
    /// Payer ids matched (empty: every task, with a payer or not).
    pub payers: Vec<String>,
    /// Where matching tasks go.
    pub to: Destination,
}

impl Route {
    /// Whether `task` matches this route's kinds and payers.
    pub fn matches(&self, task: &Task) -> bool {
        let kind = self.kinds.is_empty() || self.kinds.iter().any(|k| k == &task.kind);
        let payer = self.payers.is_empty()
            || task
                .payer
                .as_ref()
                .is_some_and(|p| self.payers.iter().any(|x| x == p));
        kind && payer
    }
}

impl NotifyConfig {
    /// Whether tasks of `kind` go out at once.
    pub fn is_urgent(&self, kind: &str) -> bool {
        self.urgent.iter().any(|k| k == kind)
    }

    /// The destinations `task` is routed to, each once, in route order.
    pub fn destinations(&self, task: &Task) -> Vec<Destination> {
        let mut out: Vec<Destination> = Vec::new();
        for r in self.routes.iter().filter(|r| r.matches(task)) {
            if !out.contains(&r.to) {
                out.push(r.to.clone());
            }
        }
        out
    }

    /// The task kinds the dispatcher sends at once: the urgent ones, then
    /// those a webhook route names.
    pub fn watched_kinds(&self) -> Vec<String> {
        let mut kinds = self.urgent.clone();
        for r in &self.routes {
            if matches!(r.to, Destination::Webhook(_)) {
                for k in &r.kinds {
                    if !kinds.contains(k) {
                        kinds.push(k.clone());
                    }
                }
            }
        }
        kinds
    }

    /// Where `task` goes at once, each destination once: every routed
    /// destination of an urgent task; for any other task, the webhooks of
    /// the routes that name its kind (its billers see it in their digest).
    pub fn sent_at_once(&self, task: &Task) -> Vec<Destination> {
        if self.is_urgent(&task.kind) {
            return self.destinations(task);
        }
        let mut out: Vec<Destination> = Vec::new();
        for r in &self.routes {
            let named = r.kinds.iter().any(|k| k == &task.kind);
            if named
                && matches!(r.to, Destination::Webhook(_))
                && r.matches(task)
                && !out.contains(&r.to)
            {
                out.push(r.to.clone());
            }
        }
        out
    }

    /// Whether a route sends `task` to biller `name`.
    pub fn routes_to_biller(&self, task: &Task, name: &str) -> bool {
        self.routes
            .iter()
            .any(|r| matches!(&r.to, Destination::Biller(b) if b == name) && r.matches(task))
    }

    /// The webhook called `name`.
    pub fn webhook(&self, name: &str) -> Option<&WebhookConfig> {
        self.webhooks.iter().find(|w| w.name == name)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{Priority, TaskStatus};

    /// A task of `kind` about `payer`, for routing tests.
    pub(crate) fn task(id: &str, kind: &str, payer: Option<&str>) -> Task {
        Task {
            id: id.into(),
            kind: kind.into(),
            subject: format!("{kind} subject"),
            priority: Priority::High,
            created_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            due: None,
            assignee: None,
            payer: payer.map(Into::into),
            status: TaskStatus::Open,
            notes: Vec::new(),
            dedupe_key: id.into(),
        }
    }

    fn route(kinds: &[&str], payers: &[&str], to: Destination) -> Route {
        Route {
            kinds: kinds.iter().map(|s| s.to_string()).collect(),
            payers: payers.iter().map(|s| s.to_string()).collect(),
            to,
        }
    }

    #[test]
    fn routes_match_by_kind_and_payer_and_name_each_destination_once() {
        let cfg = NotifyConfig {
            routes: vec![
                route(&["denial"], &[], Destination::Biller("dana".into())),
                route(&[], &["60054"], Destination::Webhook("ops".into())),
                route(&["denial"], &["60054"], Destination::Webhook("ops".into())),
                route(&["job-failing"], &[], Destination::Webhook("ops".into())),
            ],
            ..Default::default()
        };
        let aetna_denial = task("T1", "denial", Some("60054"));
        assert_eq!(
            cfg.destinations(&aetna_denial),
            [
                Destination::Biller("dana".into()),
                Destination::Webhook("ops".into())
            ]
        );
        assert_eq!(
            cfg.destinations(&task("T2", "denial", Some("00001"))),
            [Destination::Biller("dana".into())]
        );
        // A payer route never matches a task that has no payer.
        assert!(cfg.destinations(&task("T3", "missed-run", None)).is_empty());
        assert!(cfg.routes_to_biller(&aetna_denial, "dana"));
        assert!(!cfg.routes_to_biller(&aetna_denial, "lee"));
        assert!(cfg.is_urgent("job-failing") && !cfg.is_urgent("denial"));
        // At once: a non-urgent denial reaches the webhook of the route
        // naming its kind, not the payer-only route's, nor the biller.
        assert_eq!(
            cfg.sent_at_once(&aetna_denial),
            [Destination::Webhook("ops".into())]
        );
        assert!(
            cfg.sent_at_once(&task("T4", "denial", Some("1")))
                .is_empty()
        );
        assert_eq!(
            cfg.sent_at_once(&task("T5", "job-failing", Some("60054"))),
            [Destination::Webhook("ops".into())]
        );
        let watched = cfg.watched_kinds();
        assert_eq!(&watched[DEFAULT_URGENT_KINDS.len()..], ["denial"]);
    }

    #[test]
    fn secrets_must_be_whsec_base64_of_a_sensible_length() {
        let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(s.bytes().len(), 24);
        assert_eq!(format!("{s:?}"), "WebhookSecret(..)");
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretFormatError::NoPrefix
        );
        assert_eq!(
            WebhookSecret::parse("whsec_!!!").unwrap_err(),
            SecretFormatError::NotBase64
        );
        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ=").unwrap_err(),
            SecretFormatError::WrongLength(5)
        );
    }
}
