//! The dispatcher: urgent tasks go out at once, not with the next digest.
//!
//! The domain never calls notify. Instead the daemon runs this small loop:
//! every `[notify] interval` it reads the open tasks of each urgent kind
//! (and each kind a webhook route names) through the store's
//! status-and-kind index, turns each task it has not routed yet into one
//! queued [`Delivery`] per destination it goes to at once (and a
//! [`TaskRouted`] mark, in one transaction), flushes, and then sends every
//! queued delivery that is due. A send that fails for now (a 5xx, a
//! connection error, a transient mail error) is retried with exponential
//! backoff; a refusal (a 4xx, a bad address) fails the delivery with a log
//! line. A crash between queueing and sending leaves the delivery queued,
//! and the next daemon sends it under the same key (the same `webhook-id`,
//! the same Message-ID); a sent delivery is never sent again.

use std::ops::Bound::{Included, Unbounded};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::delivery::{Delivery, DeliveryStatus, QUEUED_BY_DUE, TaskRouted, delivery_key};
use super::mail::Mailer;
use super::routing::{Destination, NotifyConfig};
use super::webhook::{WebhookClient, task_payload};
use super::{OutboxMessage, OutboxStatus};
use crate::clock::SharedClock;
use crate::domain::practice::Biller;
use crate::domain::{Task, task};
use crate::store::{Db, StoreError, time_key};

/// Attempts before a delivery that keeps failing for now is given up.
pub const MAX_ATTEMPTS: u32 = 10;
/// The wait before the first retry; it doubles with each attempt.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);
/// The longest wait between two attempts.
pub const LONGEST_RETRY: Duration = Duration::from_secs(3600);
/// Deliveries sent per pass at most (the rest wait for the next pass).
const SEND_BATCH: usize = 200;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Deliveries queued for newly seen urgent tasks.
    pub queued: usize,
    /// Deliveries accepted by their receiver.
    pub sent: usize,
    /// Deliveries left queued for a retry.
    pub retrying: usize,
    /// Deliveries failed for good.
    pub failed: usize,
}

/// Routes urgent tasks and sends queued deliveries.
pub struct Dispatcher {
    db: Db,
    clock: SharedClock,
    cfg: Arc<NotifyConfig>,
    billers: Vec<Biller>,
    mailer: Arc<Mailer>,
    client: WebhookClient,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("urgent", &self.cfg.urgent)
            .field("routes", &self.cfg.routes.len())
            .finish_non_exhaustive()
    }
}

/// The wait before attempt `attempts + 1`, after `attempts` failed ones.
pub fn backoff(attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(20);
    FIRST_RETRY.saturating_mul(factor).min(LONGEST_RETRY)
}

impl Dispatcher {
    /// A dispatcher over the store, sending through `mailer` and its own
    /// HTTP client.
    pub fn new(
        db: Db,
        clock: SharedClock,
        cfg: Arc<NotifyConfig>,
        billers: Vec<Biller>,
        mailer: Arc<Mailer>,
    ) -> Self {
        Self {
            db,
            clock,
            cfg,
            billers,
            mailer,
            client: WebhookClient::new(),
        }
    }

    /// Runs passes every `[notify] interval` until `cancel`; a pass that
    /// fails is logged and the next one tries again.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            match self.pass().await {
                Ok(p) if p != Pass::default() => tracing::info!(
                    queued = p.queued,
                    sent = p.sent,
                    retrying = p.retrying,
                    failed = p.failed,
                    "notifications dispatched"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "notification pass failed; retrying next pass")
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(self.cfg.interval) => {}
            }
        }
    }

    /// One pass: queue deliveries for urgent tasks not routed yet (flushed
    /// before any is sent), then send those due.
    pub async fn pass(&self) -> Result<Pass, StoreError> {
        let queued = self.queue_at_once()?;
        let mut pass = self.send_due().await?;
        pass.queued = queued;
        Ok(pass)
    }

    /// Queues a delivery per destination of every open task that goes out
    /// at once (see [`NotifyConfig::sent_at_once`]) not routed before;
    /// returns how many were queued. Durable on return.
    pub fn queue_at_once(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut queued = 0;
        for kind in &self.cfg.watched_kinds() {
            for id in task::open_ids_of_kind(&self.db, kind)? {
                if self.db.get::<TaskRouted>(&id)?.is_some() {
                    continue;
                }
                queued += self.db.transact(|tx| {
                    if tx.contains::<TaskRouted>(&id)? {
                        return Ok::<_, StoreError>(0);
                    }
                    let Some(task) = tx.get::<Task>(&id)? else {
                        return Ok(0);
                    };
                    let mut n = 0;
                    for to in self.cfg.sent_at_once(&task) {
                        if tx.insert_new(&self.delivery(&task, to, now))? {
                            n += 1;
                        }
                    }
                    tx.put(&TaskRouted {
                        task_id: id.clone(),
                        deliveries: n,
                    })?;
                    Ok(n as usize)
                })?;
            }
        }
        if queued > 0 {
            self.db.flush()?;
        }
        Ok(queued)
    }

    fn delivery(&self, task: &Task, to: Destination, now: DateTime<Utc>) -> Delivery {
        let (subject, body) = match &to {
            Destination::Webhook(_) => (String::new(), task_payload(task)),
            Destination::Biller(_) => (
                format!("[billd] {} {} {}", task.priority.name(), task.kind, task.id),
                format!(
                    "{}\n\nTask {} ({}, {}), raised {}.\nSee it with: billd tasks show {}\n",
                    task.subject,
                    task.id,
                    task.kind,
                    task.priority.name(),
                    task.created_at.format("%Y-%m-%d %H:%M UTC"),
                    task.id
                ),
            ),
        };
        Delivery {
            key: delivery_key(&task.id, &to),
            task_id: task.id.clone(),
            to,
            subject,
            body,
            created_at: now,
            status: DeliveryStatus::Queued,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
        }
    }

    /// Sends the queued deliveries that are due, recording each outcome
    /// (flushed) as it comes.
    pub async fn send_due(&self) -> Result<Pass, StoreError> {
        let now = self.clock.now();
        let due = time_key(now);
        let page = self.db.index_range::<Delivery>(
            QUEUED_BY_DUE,
            Unbounded,
            Included(due.as_str()),
            Some(SEND_BATCH),
            false,
        )?;
        let mut pass = Pass::default();
        for d in page.items {
            let outcome = self.attempt(&d).await;
            let now = self.clock.now();
            let mut updated = d.clone();
            updated.attempts += 1;
            match outcome {
                Ok(()) => {
                    updated.status = DeliveryStatus::Sent;
                    updated.last_error = None;
                    pass.sent += 1;
                    tracing::info!(delivery = %d.key, task = %d.task_id, "notification sent");
                }
                Err((reason, true)) if updated.attempts < MAX_ATTEMPTS => {
                    let wait = backoff(updated.attempts);
                    updated.next_attempt_at =
                        now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                    tracing::warn!(delivery = %d.key, attempts = updated.attempts, retry_in_s = wait.as_secs(), error = %reason, "notification not delivered; will retry");
                    updated.last_error = Some(reason);
                    pass.retrying += 1;
                }
                Err((reason, _)) => {
                    updated.status = DeliveryStatus::Failed;
                    tracing::error!(delivery = %d.key, task = %d.task_id, attempts = updated.attempts, error = %reason, "notification failed; not retried");
                    updated.last_error = Some(reason);
                    pass.failed += 1;
                }
            }
            self.db.put(&updated)?;
            self.db.flush()?;
        }
        Ok(pass)
    }

    /// One attempt: `Err((reason, retry may help))`.
    async fn attempt(&self, d: &Delivery) -> Result<(), (String, bool)> {
        match &d.to {
            Destination::Webhook(name) => {
                let Some(hook) = self.cfg.webhook(name) else {
                    return Err((format!("webhook {name} is no longer configured"), false));
                };
                let timestamp = self.clock.now().timestamp();
                self.client
                    .post(hook, &d.key, timestamp, &d.body)
                    .await
                    .map_err(|e| (e.to_string(), e.is_transient()))
            }
            Destination::Biller(name) => {
                let Some(biller) = self.billers.iter().find(|b| &b.name == name) else {
                    return Err((format!("biller {name} is no longer configured"), false));
                };
                let msg = OutboxMessage {
                    key: d.key.clone(),
                    to: vec![biller.email.to_string()],
                    subject: d.subject.clone(),
                    body: d.body.clone(),
                    created_at: d.created_at,
                    status: OutboxStatus::Queued,
                    attempts: d.attempts,
                    headers: Vec::new(),
                };
                self.mailer
                    .deliver(&msg)
                    .await
                    .map_err(|e| (e.to_string(), e.is_transient()))
            }
        }
    }
}

#[cfg(test)]
mod tests;
