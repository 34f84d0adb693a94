//! The `digest` job: emails each biller a summary of their open tasks.
//!
//! One work item per biller who receives digests. The email carries counts
//! and task ids only, never patient details. It is rendered and stored in the
//! outbox (flushed) before it is sent, under the item's idempotency key, so a
//! retry after a crash sends the stored message again (same Message-ID, same
//! outbox file) rather than a second, different digest.
//!
//! A biller's digest lists the open tasks assigned to them, the unassigned
//! ones of a kind their `receives` lists, and the unassigned ones a
//! `[[notify.route]]` sends to them (by kind and/or payer).
//!
//! Params (`[job.params]`): `subject_template`, `body_template` (paths,
//! relative to the configuration file), `max_listed` (task ids listed per
//! email, default 50), `send_when_empty` (default true: an empty digest tells
//! the office billd is alive).

use chrono::Utc;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::registry::{BuildError, JobSetup, KindEntry, Services, check_params, parse_params};
use super::{BoxFuture, JobError, JobKind, RunContext};
use crate::domain::practice::Biller;
use crate::domain::task as tasks;
use crate::domain::{Priority, Task};
use crate::notify::mail::Mailer;
use crate::notify::routing::{Destination, NotifyConfig};
use crate::notify::templates::MailTemplates;
use crate::notify::{OutboxMessage, OutboxStatus};

/// Settings of one digest job.
pub struct DigestJob {
    billers: Vec<Biller>,
    notify: Arc<NotifyConfig>,
    mailer: Arc<Mailer>,
    templates: MailTemplates,
    practice: String,
    tz: Tz,
    max_listed: usize,
    send_when_empty: bool,
}

/// `[job.params]` of a digest job.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestParams {
    /// Subject template file, relative to the configuration file.
    #[serde(default)]
    pub subject_template: Option<String>,
    /// Body template file, relative to the configuration file.
    #[serde(default)]
    pub body_template: Option<String>,
    /// Task ids listed per email (default 50).
    #[serde(default)]
    pub max_listed: Option<u32>,
    /// Whether to send when a biller has no open tasks (default true).
    #[serde(default)]
    pub send_when_empty: Option<bool>,
}

/// The digest kind in the job registry.
pub const KIND: KindEntry = KindEntry {
    name: "digest",
    check: check_params::<DigestParams>,
    build: |params, setup, services| {
        let params = parse_params::<DigestParams>(params)?;
        Ok(Arc::new(DigestJob::new(params, setup, services)?))
    },
};

impl DigestJob {
    /// Builds the job from its params; template paths resolve against the
    /// configuration file's directory.
    pub fn new(
        params: DigestParams,
        setup: &JobSetup,
        services: &Services,
    ) -> Result<Self, BuildError> {
        let path = |p: &Option<String>| p.as_ref().map(|s| services.base_dir.join(s));
        let templates = MailTemplates::digest(
            path(&params.subject_template).as_deref(),
            path(&params.body_template).as_deref(),
        )
        .map_err(|e| BuildError {
            key: "body_template".into(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            billers: services.billers.clone(),
            notify: services.notify.clone(),
            mailer: services.mailer.clone(),
            templates,
            practice: services.practice.name.clone(),
            tz: setup.timezone,
            max_listed: params.max_listed.unwrap_or(50) as usize,
            send_when_empty: params.send_when_empty.unwrap_or(true),
        })
    }

    fn biller(&self, name: &str) -> Option<&Biller> {
        self.billers.iter().find(|b| b.name == name)
    }

    /// The open tasks `biller` should see: assigned to them, of a kind
    /// they receive, or routed to them by `[[notify.route]]`; by id.
    fn open_tasks(&self, db: &crate::store::Db, biller: &Biller) -> Result<Vec<Task>, JobError> {
        let mut open = tasks::open_for(db, &biller.name, &biller.receives)?;
        let to = Destination::Biller(biller.name.clone());
        if self.notify.routes.iter().any(|r| r.to == to) {
            let have: std::collections::BTreeSet<String> =
                open.iter().map(|t| t.id.clone()).collect();
            open.extend(
                tasks::with_status_for(db, tasks::TaskStatus::Open, None)?
                    .into_iter()
                    .filter(|t| {
                        !have.contains(&t.id) && self.notify.routes_to_biller(t, &biller.name)
                    }),
            );
            open.sort_by(|a, b| a.id.cmp(&b.id));
        }
        Ok(open)
    }

    fn render(
        &self,
        biller: &Biller,
        open: &[Task],
        now: chrono::DateTime<Utc>,
    ) -> Result<(String, String), JobError> {
        #[derive(Serialize)]
        struct Count {
            name: String,
            count: usize,
        }
        #[derive(Serialize)]
        struct Line {
            id: String,
            kind: String,
            priority: String,
            age_days: i64,
            due: Option<String>,
        }
        let mut sorted: Vec<&Task> = open.iter().collect();
        sorted.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.created_at.cmp(&b.created_at))
        });
        let mut by_priority: BTreeMap<std::cmp::Reverse<Priority>, usize> = BTreeMap::new();
        let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
        for t in &sorted {
            *by_priority
                .entry(std::cmp::Reverse(t.priority))
                .or_default() += 1;
            *by_kind.entry(&t.kind).or_default() += 1;
        }
        let lines: Vec<Line> = sorted
            .iter()
            .take(self.max_listed)
            .map(|t| Line {
                id: t.id.clone(),
                kind: t.kind.clone(),
                priority: t.priority.name().to_string(),
                age_days: (now - t.created_at).num_days(),
                due: t
                    .due
                    .map(|d| d.with_timezone(&self.tz).format("%Y-%m-%d").to_string()),
            })
            .collect();
        let ctx = serde_json::json!({
            "biller": biller.name,
            "practice": self.practice,
            "generated": now.with_timezone(&self.tz).format("%Y-%m-%d %H:%M %Z").to_string(),
            "total": sorted.len(),
            "by_priority": by_priority.iter().map(|(p, c)| Count { name: p.0.name().into(), count: *c }).collect::<Vec<_>>(),
            "by_kind": by_kind.iter().map(|(k, c)| Count { name: (*k).into(), count: *c }).collect::<Vec<_>>(),
            "shown": lines.len(),
            "omitted": sorted.len() - lines.len(),
            "tasks": lines,
        });
        self.templates
            .render(&ctx)
            .map_err(|e| JobError::Permanent(e.to_string()))
    }
}

impl JobKind for DigestJob {
    fn kind(&self) -> &'static str {
        "digest"
    }

    fn list_items<'a>(
        &'a self,
        _ctx: &'a RunContext,
    ) -> BoxFuture<'a, Result<Vec<String>, JobError>> {
        Box::pin(async move {
            Ok(self
                .billers
                .iter()
                .filter(|b| b.receives.iter().any(|r| r == "digest"))
                .map(|b| b.name.clone())
                .collect())
        })
    }

    fn work_item<'a>(
        &'a self,
        ctx: &'a RunContext,
        item: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let key = ctx.effect_key(item);
            let db = &ctx.db;
            let msg = match db.get::<OutboxMessage>(&key)? {
                Some(m) => m,
                None => {
                    let biller = self.biller(item).ok_or_else(|| {
                        JobError::Permanent(format!("biller {item} is no longer configured"))
                    })?;
                    let open = self.open_tasks(db, biller)?;
                    if open.is_empty() && !self.send_when_empty {
                        return Ok(());
                    }
                    let now = ctx.clock.now();
                    let (subject, body) = self.render(biller, &open, now)?;
                    let msg = OutboxMessage {
                        key: key.clone(),
                        to: vec![biller.email.to_string()],
                        subject,
                        body,
                        created_at: now,
                        status: OutboxStatus::Queued,
                        attempts: 0,
                        headers: Vec::new(),
                    };
                    db.insert_new(&msg)?;
                    db.get::<OutboxMessage>(&key)?.unwrap_or(msg)
                }
            };
            if msg.status == OutboxStatus::Sent {
                return Ok(());
            }
            // The message must be durable before it leaves the building.
            db.flush()?;
            let result = self.mailer.deliver(&msg).await;
            let status = match &result {
                Ok(()) => OutboxStatus::Sent,
                Err(e) if e.is_transient() => OutboxStatus::Queued,
                Err(_) => OutboxStatus::Failed,
            };
            db.modify::<OutboxMessage, _>(&key, |m| {
                m.status = status;
                m.attempts += 1;
            })?;
            db.flush()?;
            result.map_err(|e| {
                if e.is_transient() {
                    JobError::Transient(e.to_string())
                } else {
                    JobError::Permanent(e.to_string())
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NewTask;
    use crate::notify::routing::Route;
    use crate::store::Db;

    fn raise(db: &Db, kind: &str, payer: Option<&str>, key: &str) -> String {
        tasks::raise(
            db,
            Utc::now(),
            NewTask {
                kind: kind.into(),
                subject: format!("claim C-{key}: {kind}"),
                priority: Priority::Normal,
                due: None,
                assignee: None,
                payer: payer.map(Into::into),
                dedupe_key: key.into(),
            },
        )
        .unwrap()
        .0
        .id
    }

    #[test]
    fn a_digest_lists_the_tasks_routed_to_its_biller_by_kind_or_payer() {
        let db = Db::in_memory();
        let clock: crate::clock::SharedClock = Arc::new(crate::clock::SystemClock);
        let dir = tempfile::tempdir().unwrap();
        let mut services = super::super::registry::test_services(&db, clock, dir.path());
        let biller = |name: &str| Biller {
            name: name.into(),
            email: format!("{name}@example.org").parse().unwrap(),
            receives: vec!["digest".into(), "missed-run".into()],
        };
        services.billers = vec![biller("dana"), biller("lee")];
        services.notify = Arc::new(NotifyConfig {
            routes: vec![
                Route {
                    kinds: vec!["denial".into()],
                    payers: vec!["60054".into()],
                    to: Destination::Biller("dana".into()),
                },
                Route {
                    kinds: vec!["claim-rejected".into()],
                    payers: vec![],
                    to: Destination::Biller("lee".into()),
                },
            ],
            ..Default::default()
        });
        let setup = JobSetup {
            name: "digest".into(),
            timezone: chrono_tz::UTC,
        };
        let job = DigestJob::new(DigestParams::default(), &setup, &services).unwrap();
        let missed = raise(&db, "missed-run", None, "1");
        let aetna = raise(&db, "denial", Some("60054"), "2");
        let _other_payer = raise(&db, "denial", Some("99999"), "3");
        let rejected = raise(&db, "claim-rejected", Some("60054"), "4");
        let ids = |name: &str| -> Vec<String> {
            job.open_tasks(&db, job.biller(name).unwrap())
                .unwrap()
                .into_iter()
                .map(|t| t.id)
                .collect()
        };
        assert_eq!(ids("dana"), [missed.clone(), aetna]);
        assert_eq!(ids("lee"), [missed, rejected]);
    }
}
