//! The `dunning` job: statements and reminders to patients, by email.
//!
//! A run's work items are the accounts that owe (the accounts-by-age
//! index). For each, [`crate::domain::dunning::decide`] applies the gates —
//! insurance pending, the hold check ([`crate::domain::hold::check`], which
//! a payment plan in good standing answers too), opt-out, the minimum
//! balance, the cadence — and an account due a notice without an email
//! address becomes a task. A notice is rendered from its step's template,
//! then recorded with its outbox message in one transaction under its key
//! (account, the day the balance became the patient's, step) and flushed
//! before anything is sent, so a retry or a crash sends the stored message
//! again (same Message-ID) and never a second notice. Accounts are worked
//! in batches: one transaction and one flush per batch before sending, the
//! batch's messages sent at once through the SMTP pool, one flush after.
//!
//! Sending window: notices go only between `window` (default
//! `08:00-21:00`) in the practice's timezone. Outside it a run decides
//! nothing and sends nothing: a run that starts outside lists no accounts,
//! and the batches of a run that the window's end overtakes are left
//! undecided (done, nothing recorded) for the next run. A notice recorded
//! before a crash and resumed outside the window waits for the next run
//! inside it. Schedule the job inside the window (for example daily at
//! 10:00).
//!
//! SMTP 4xx answers and connection errors are retried with backoff (the
//! runner's retry policy, `max_attempts` and `retry_delay`); a 5xx marks the
//! notice failed and raises a `dunning-refused` task.
//!
//! Params (`[job.params]`, all optional): `steps` (a list of `{ name, day,
//! template }`, default statement at 0, reminders at 30 and 60, final
//! notice at 90), `min_balance_cents` (default 500), `window`,
//! `template_dir` (files `<template>.txt` and `<template>-subject.txt`;
//! default the built-in copies of config/templates), `due_days` (default
//! 21), `how_to_pay`, `pay_url`, `contact_phone`, `contact_email`,
//! `unsubscribe_mailto` (default the mail `from` address),
//! `unsubscribe_url` (https; `{account}` is replaced by the account id;
//! adds `List-Unsubscribe-Post` for one-click), `batch` (accounts per
//! batch, default 100), `max_attempts`, `retry_delay`.

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::registry::{BuildError, JobSetup, KindEntry, Services, check_params, parse_params};
use super::{BoxFuture, JobError, JobKind, RetryPolicy, RunContext};
use crate::domain::account::{self, Account};
use crate::domain::dunning::{self, Cadence, Decision, Facts, Notice, NoticeStatus, Step, Window};
use crate::domain::hold;
use crate::domain::task::raise;
use crate::domain::{NewTask, Patient, Priority};
use crate::notify::mail::{MailError, Mailer};
use crate::notify::templates::MailTemplates;
use crate::notify::{OutboxMessage, OutboxStatus};
use crate::posting::money;
use crate::store::Db;

/// One step as `[job.params]` writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepParam {
    /// Stable name (part of the notice key).
    pub name: String,
    /// Days after the balance became the patient's.
    pub day: u32,
    /// Template name.
    pub template: String,
}

/// `[job.params]` of a dunning job.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DunningParams {
    /// The cadence (default: statement 0, reminders 30 and 60, final 90).
    #[serde(default)]
    pub steps: Option<Vec<StepParam>>,
    /// No notice under this balance, in cents (default 500).
    #[serde(default)]
    pub min_balance_cents: Option<i64>,
    /// Sending window `HH:MM-HH:MM` in the practice's timezone (default
    /// `08:00-21:00`).
    #[serde(default)]
    pub window: Option<String>,
    /// Directory of the notice templates, relative to the configuration.
    #[serde(default)]
    pub template_dir: Option<String>,
    /// Days from the notice to its due date (default 21).
    #[serde(default)]
    pub due_days: Option<u32>,
    /// How to pay, in the practice's words.
    #[serde(default)]
    pub how_to_pay: Option<String>,
    /// Where to pay online.
    #[serde(default)]
    pub pay_url: Option<String>,
    /// The billing office's phone.
    #[serde(default)]
    pub contact_phone: Option<String>,
    /// The billing office's email.
    #[serde(default)]
    pub contact_email: Option<String>,
    /// The List-Unsubscribe mailto address (default the mail `from`).
    #[serde(default)]
    pub unsubscribe_mailto: Option<String>,
    /// A one-click https unsubscribe URL; `{account}` is replaced.
    #[serde(default)]
    pub unsubscribe_url: Option<String>,
    /// Accounts per batch (default 100).
    #[serde(default)]
    pub batch: Option<u32>,
    /// Attempts per account before it fails (default 5).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Delay before the first retry, doubling after (default `"2s"`).
    #[serde(default)]
    pub retry_delay: Option<String>,
}

/// The dunning kind in the job registry.
pub const KIND: KindEntry = KindEntry {
    name: "dunning",
    check: check_params::<DunningParams>,
    build: |params, setup, services| {
        let params = parse_params::<DunningParams>(params)?;
        Ok(Arc::new(DunningJob::new(params, setup, services)?))
    },
};

/// The settings the job decides and renders with.
#[derive(Debug, Clone)]
pub struct DunningSettings {
    /// The cadence.
    pub cadence: Cadence,
    /// The minimum balance, in cents.
    pub min_balance_cents: i64,
    /// The sending window.
    pub window: Window,
    /// The practice's timezone.
    pub tz: Tz,
    /// The practice's name.
    pub practice: String,
    /// Days to the due date.
    pub due_days: u32,
    /// How to pay.
    pub how_to_pay: String,
    /// Pay online.
    pub pay_url: Option<String>,
    /// Phone.
    pub contact_phone: Option<String>,
    /// Email.
    pub contact_email: Option<String>,
    /// mailto address for List-Unsubscribe.
    pub unsubscribe_mailto: String,
    /// https URL for List-Unsubscribe.
    pub unsubscribe_url: Option<String>,
}

/// A configured dunning job.
pub struct DunningJob {
    settings: DunningSettings,
    templates: Vec<MailTemplates>,
    mailer: Arc<Mailer>,
    batch: usize,
    retry: RetryPolicy,
}

impl std::fmt::Debug for DunningJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DunningJob")
            .field("cadence", &self.settings.cadence)
            .finish_non_exhaustive()
    }
}

fn bad(key: &str, reason: impl Into<String>) -> BuildError {
    BuildError {
        key: key.into(),
        reason: reason.into(),
    }
}

impl DunningJob {
    /// Builds the job; templates are loaded (and checked) now.
    pub fn new(
        params: DunningParams,
        _setup: &JobSetup,
        services: &Services,
    ) -> Result<Self, BuildError> {
        let cadence = match &params.steps {
            None => Cadence::standard(),
            Some(steps) => Cadence::new(
                steps
                    .iter()
                    .map(|s| Step {
                        name: s.name.clone(),
                        day: s.day,
                        template: s.template.clone(),
                    })
                    .collect(),
            )
            .map_err(|e| bad("steps", e))?,
        };
        let window = match &params.window {
            None => Window::default(),
            Some(w) => Window::parse(w).map_err(|e| bad("window", e))?,
        };
        let min = params.min_balance_cents.unwrap_or(500);
        if min < 0 {
            return Err(bad("min_balance_cents", "must be zero or more"));
        }
        if let Some(url) = &params.unsubscribe_url
            && !url.starts_with("https://")
        {
            return Err(bad("unsubscribe_url", "must be an https:// URL"));
        }
        let mailto = match &params.unsubscribe_mailto {
            Some(m) => m
                .parse::<lettre::Address>()
                .map_err(|e| bad("unsubscribe_mailto", format!("not an address: {e}")))?
                .to_string(),
            None => services.mailer.from().email.to_string(),
        };
        let dir: Option<PathBuf> = params
            .template_dir
            .as_ref()
            .map(|d| services.base_dir.join(d));
        let templates = cadence
            .steps()
            .iter()
            .map(|s| MailTemplates::notice(&s.template, dir.as_deref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("template_dir", e.to_string()))?;
        let batch = params.batch.unwrap_or(100);
        if !(1..=10_000).contains(&batch) {
            return Err(bad("batch", "must be 1 to 10000"));
        }
        let settings = DunningSettings {
            cadence,
            min_balance_cents: min,
            window,
            tz: services.practice.timezone,
            practice: services.practice.name.clone(),
            due_days: params.due_days.unwrap_or(21),
            how_to_pay: params
                .how_to_pay
                .clone()
                .unwrap_or_else(|| "by check to the practice, or by card over the phone".into()),
            pay_url: params.pay_url.clone(),
            contact_phone: params.contact_phone.clone(),
            contact_email: params.contact_email.clone(),
            unsubscribe_mailto: mailto,
            unsubscribe_url: params.unsubscribe_url.clone(),
        };
        // Every template must render with the variables it is given.
        for (t, s) in templates.iter().zip(settings.cadence.steps()) {
            t.render(&context(&settings, "Pat", "P0", 12_345, Utc::now()))
                .map_err(|e| bad("template_dir", format!("step {}: {e}", s.name)))?;
        }
        Ok(Self {
            retry: RetryPolicy::from_params(params.max_attempts, params.retry_delay.as_deref())?,
            settings,
            templates,
            mailer: services.mailer.clone(),
            batch: batch as usize,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &DunningSettings {
        &self.settings
    }

    /// Whether `now` is inside the sending window.
    pub fn in_window(&self, now: DateTime<Utc>) -> bool {
        self.settings
            .window
            .contains(now.with_timezone(&self.settings.tz).time())
    }

    /// Decides account `account` and, when a notice is due, records it with
    /// its outbox message (not flushed: the caller flushes the batch).
    /// Returns the message to send: a new one, or one recorded earlier and
    /// not yet sent.
    pub fn prepare(
        &self,
        db: &Db,
        scope: &dyn Fn(&str) -> String,
        account_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OutboxMessage>, JobError> {
        let today = now.with_timezone(&self.settings.tz).date_naive();
        let notices = dunning::notices_of(db, account_id)?;
        if let Some(n) = notices.iter().find(|n| n.status == NoticeStatus::Queued)
            && let Some(m) = db.get::<OutboxMessage>(&n.outbox_key)?
            && m.status == OutboxStatus::Queued
        {
            return Ok(Some(m));
        }
        let entries = account::entries(db, account_id)?;
        let since = dunning::billable(&entries).ok().map(|b| b.since);
        let recorded: Vec<String> = notices
            .iter()
            .filter(|n| Some(n.since) == since)
            .map(|n| n.step.clone())
            .collect();
        let check = hold::check(db, account_id, &entries, today)?;
        hold::record_breaks(db, &check)?;
        let acct = db.get::<Account>(account_id)?;
        let patient = db.get::<Patient>(account_id)?;
        let email = patient.as_ref().and_then(|p| p.email.clone());
        let facts = Facts {
            entries: &entries,
            blocker: check.blocker,
            opted_out: acct.is_some_and(|a| a.opt_out.is_some()),
            has_email: email.is_some(),
            recorded: &recorded,
        };
        let s = &self.settings;
        match dunning::decide(&s.cadence, &facts, s.min_balance_cents, today) {
            Decision::Skip(_) => Ok(None),
            Decision::NoAddress { step, billable } => {
                let step = &s.cadence.steps()[step].name;
                raise(
                    db,
                    now,
                    NewTask {
                        kind: "dunning-no-email".into(),
                        subject: format!(
                            "account {account_id}: the {step} notice is due but the patient has no email address; send it by post or add an address"
                        ),
                        priority: Priority::Normal,
                        due: None,
                        assignee: None,
                        payer: None,
                        dedupe_key: format!(
                            "dunning-no-email/{}",
                            Notice::key_for(account_id, billable.since, step)
                        ),
                    },
                )?;
                Ok(None)
            }
            Decision::Send { step, billable } => {
                let name = &s.cadence.steps()[step].name;
                let key = Notice::key_for(account_id, billable.since, name);
                let outbox_key = scope(&key);
                let first = patient
                    .as_ref()
                    .map(|p| p.name.first.clone())
                    .unwrap_or_default();
                let (subject, body) = self.templates[step]
                    .render(&context(s, &first, account_id, billable.cents, now))
                    .map_err(|e| JobError::Permanent(e.to_string()))?;
                let msg = OutboxMessage {
                    key: outbox_key.clone(),
                    to: vec![email.unwrap_or_default()],
                    subject,
                    body,
                    created_at: now,
                    status: OutboxStatus::Queued,
                    attempts: 0,
                    headers: unsubscribe_headers(s, account_id),
                };
                let notice = Notice {
                    key,
                    account_id: account_id.to_string(),
                    since: billable.since,
                    step: name.clone(),
                    role: s.cadence.role(step),
                    amount_cents: billable.cents,
                    outbox_key,
                    queued_at: now,
                    sent_at: None,
                    status: NoticeStatus::Queued,
                };
                let fresh = db.transact(|tx| {
                    if !tx.insert_new(&notice)? {
                        return Ok::<_, crate::store::StoreError>(false);
                    }
                    tx.put(&msg)?;
                    Ok(true)
                })?;
                Ok(fresh.then_some(msg))
            }
        }
    }

    /// Records the outcome of sending `msg` on its outbox message and its
    /// notice; a refusal for good raises a task.
    pub fn record_outcome(
        &self,
        db: &Db,
        account_id: &str,
        msg: &OutboxMessage,
        result: &Result<(), MailError>,
        now: DateTime<Utc>,
    ) -> Result<(), JobError> {
        let (status, notice_status) = match result {
            Ok(()) => (OutboxStatus::Sent, NoticeStatus::Sent),
            Err(e) if e.is_transient() => (OutboxStatus::Queued, NoticeStatus::Queued),
            Err(_) => (OutboxStatus::Failed, NoticeStatus::Failed),
        };
        db.modify::<OutboxMessage, _>(&msg.key, |m| {
            m.status = status;
            m.attempts += 1;
        })?;
        let notice_key = msg.key.split_once('#').map(|(_, k)| k).unwrap_or(&msg.key);
        db.modify::<Notice, _>(notice_key, |n| {
            n.status = notice_status;
            if notice_status == NoticeStatus::Sent {
                n.sent_at.get_or_insert(now);
            }
        })?;
        if let Err(e) = result
            && !e.is_transient()
        {
            raise(
                db,
                now,
                NewTask {
                    kind: "dunning-refused".into(),
                    subject: format!(
                        "account {account_id}: the mail server refused notice {notice_key}: {e}"
                    ),
                    priority: Priority::Normal,
                    due: None,
                    assignee: None,
                    payer: None,
                    dedupe_key: format!("dunning-refused/{notice_key}"),
                },
            )?;
        }
        Ok(())
    }
}

/// The List-Unsubscribe headers of a notice to `account`.
pub fn unsubscribe_headers(s: &DunningSettings, account: &str) -> Vec<(String, String)> {
    let mut targets = vec![format!(
        "<mailto:{}?subject=unsubscribe%20{}>",
        s.unsubscribe_mailto,
        urlencode(account)
    )];
    let mut out = Vec::new();
    if let Some(url) = &s.unsubscribe_url {
        targets.insert(
            0,
            format!("<{}>", url.replace("{account}", &urlencode(account))),
        );
        out.push((
            "List-Unsubscribe-Post".to_string(),
            "List-Unsubscribe=One-Click".to_string(),
        ));
    }
    out.insert(0, ("List-Unsubscribe".to_string(), targets.join(", ")));
    out
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What a notice template sees: the patient's first name, the amount in
/// dollars, dates and the practice's contact; nothing clinical.
fn context(
    s: &DunningSettings,
    first_name: &str,
    account: &str,
    cents: i64,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let today: NaiveDate = now.with_timezone(&s.tz).date_naive();
    let due = today
        .checked_add_days(Days::new(u64::from(s.due_days)))
        .unwrap_or(today);
    let unsubscribe = match &s.unsubscribe_url {
        Some(url) => format!(
            "To stop these emails, visit {}",
            url.replace("{account}", &urlencode(account))
        ),
        None => format!(
            "To stop these emails, write to {} with the subject \"unsubscribe {account}\".",
            s.unsubscribe_mailto
        ),
    };
    serde_json::json!({
        "first_name": first_name,
        "practice": s.practice,
        "amount": format!("${}", money(cents)),
        "due_date": due.format("%B %-d, %Y").to_string(),
        "statement_date": today.format("%B %-d, %Y").to_string(),
        "account": account,
        "how_to_pay": s.how_to_pay,
        "pay_url": s.pay_url.clone().unwrap_or_default(),
        "contact_phone": s.contact_phone.clone().unwrap_or_default(),
        "contact_email": s.contact_email.clone().unwrap_or_default(),
        "unsubscribe": unsubscribe,
    })
}

/// The accounts owing on `today` (oldest balance first), from the
/// accounts-by-age index.
pub fn owing_accounts(db: &Db, today: NaiveDate) -> Result<Vec<String>, JobError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = account::owing_since(db, today, after.as_deref(), 1000)?;
        out.extend(page.items.iter().map(|a| a.id.clone()));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(out)
}

/// Sends `msgs` (account, message) at once through the mailer's pool.
pub async fn send_all(
    mailer: &Arc<Mailer>,
    msgs: Vec<(String, OutboxMessage)>,
) -> Vec<(String, OutboxMessage, Result<(), MailError>)> {
    let mut set = tokio::task::JoinSet::new();
    for (i, (account, msg)) in msgs.into_iter().enumerate() {
        let mailer = mailer.clone();
        set.spawn(async move {
            let r = mailer.deliver(&msg).await;
            (i, account, msg, r)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(done) = set.join_next().await {
        if let Ok((i, a, m, r)) = done {
            out.insert(i, (a, m, r));
        }
    }
    out.into_values().collect()
}

impl JobKind for DunningJob {
    fn kind(&self) -> &'static str {
        "dunning"
    }

    fn list_items<'a>(
        &'a self,
        ctx: &'a RunContext,
    ) -> BoxFuture<'a, Result<Vec<String>, JobError>> {
        Box::pin(async move {
            let now = ctx.clock.now();
            if !self.in_window(now) {
                tracing::info!(job = %ctx.job, "outside the sending window: this run decides nothing");
                return Ok(Vec::new());
            }
            let today = now.with_timezone(&self.settings.tz).date_naive();
            owing_accounts(&ctx.db, today)
        })
    }

    fn work_item<'a>(
        &'a self,
        ctx: &'a RunContext,
        item: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let items = [item.to_string()];
            self.work_batch(ctx, &items).await.pop().unwrap_or(Ok(()))
        })
    }

    fn batch_size(&self) -> usize {
        self.batch
    }

    fn work_batch<'a>(
        &'a self,
        ctx: &'a RunContext,
        items: &'a [String],
    ) -> BoxFuture<'a, Vec<Result<(), JobError>>> {
        Box::pin(async move {
            let mut results: Vec<Result<(), JobError>> = items.iter().map(|_| Ok(())).collect();
            let now = ctx.clock.now();
            if !self.in_window(now) {
                tracing::info!(run = %ctx.run_id, "the sending window closed: accounts left for the next run");
                return results;
            }
            let scope = |k: &str| ctx.scoped_effect_key(k);
            let mut to_send = Vec::new();
            let mut index = BTreeMap::new();
            for (i, account) in items.iter().enumerate() {
                match self.prepare(&ctx.db, &scope, account, now) {
                    Ok(Some(msg)) => {
                        index.insert(msg.key.clone(), i);
                        to_send.push((account.clone(), msg));
                    }
                    Ok(None) => {}
                    Err(e) => results[i] = Err(e),
                }
            }
            if to_send.is_empty() {
                return results;
            }
            // Every notice of the batch is durable before one leaves.
            if let Err(e) = ctx.db.flush() {
                let msg = e.to_string();
                for (_, m) in &to_send {
                    results[index[&m.key]] = Err(JobError::Transient(msg.clone()));
                }
                return results;
            }
            let sent = send_all(&self.mailer, to_send).await;
            let now = ctx.clock.now();
            for (account, msg, r) in sent {
                let i = index[&msg.key];
                if let Err(e) = self.record_outcome(&ctx.db, &account, &msg, &r, now) {
                    results[i] = Err(e);
                    continue;
                }
                results[i] = r.map_err(|e| {
                    if e.is_transient() {
                        JobError::Transient(e.to_string())
                    } else {
                        JobError::Permanent(e.to_string())
                    }
                });
            }
            if let Err(e) = ctx.db.flush() {
                tracing::warn!(run = %ctx.run_id, error = %e, "flushing sent notices failed");
            }
            results
        })
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::account::LedgerEntry;
    use crate::domain::hold::{Hold, HoldKind};
    use crate::domain::{LedgerKind, PersonName, Sex};
    use tokio_util::sync::CancellationToken;

    fn seed(db: &Db, id: &str, email: Option<&str>, at: DateTime<Utc>) {
        db.put(&Patient {
            id: id.into(),
            name: PersonName {
                last: "Quill".into(),
                first: format!("Ada{id}"),
                middle: None,
                suffix: None,
            },
            birth_date: NaiveDate::from_ymd_opt(1970, 1, 1).unwrap(),
            sex: Sex::Female,
            email: email.map(str::to_string),
            phone: None,
            address: None,
        })
        .unwrap();
        let e = |n: u32, kind, cents| LedgerEntry {
            id: format!("{id}/{n}"),
            account_id: id.into(),
            claim_id: Some(format!("C-{id}")),
            posted_at: at,
            kind,
            amount_cents: cents,
            source: "t".into(),
        };
        db.put(&e(1, LedgerKind::Charge, 10_000)).unwrap();
        db.put(&e(2, LedgerKind::InsurancePayment, -7_500)).unwrap();
        db.put(&e(
            3,
            LedgerKind::Adjustment {
                group: "PR".into(),
                reason: "1".into(),
            },
            -2_500,
        ))
        .unwrap();
        db.put(&e(4, LedgerKind::PatientResponsibility, 2_500))
            .unwrap();
        account::refresh_owing_since(db, id, at).unwrap();
    }

    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[tokio::test]
    async fn a_run_sends_each_due_step_once_inside_the_window_and_holds_stop_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::in_memory();
        let start: DateTime<Utc> = "2026-03-02T14:00:00Z".parse().unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let mut services = super::super::registry::test_services(&db, clock.clone(), dir.path());
        services.mailer = Arc::new(Mailer::outbox(
            "Billing <billing@example.org>".parse().unwrap(),
            &dir.path().join("out"),
        ));
        let params: DunningParams = parse_params(
            &"unsubscribe_url = \"https://pay.example.org/stop/{account}\"\ncontact_phone = \"555-0100\"\n"
                .parse()
                .unwrap(),
        )
        .unwrap();
        let setup = JobSetup {
            name: "dunning".into(),
            timezone: chrono_tz::UTC,
        };
        let job = DunningJob::new(params, &setup, &services).unwrap();
        seed(&db, "P1", Some("ada@example.org"), start);
        seed(&db, "P2", None, start);
        seed(&db, "P3", Some("held@example.org"), start);
        db.put(&Hold {
            id: "P3/H000001".into(),
            account_id: "P3".into(),
            kind: HoldKind::Deceased,
            reason: "estate".into(),
            placed_by: "dana".into(),
            placed_at: start,
            released: None,
        })
        .unwrap();
        let ctx = |run: &str| RunContext {
            db: db.clone(),
            clock: clock.clone(),
            job: "dunning".into(),
            run_id: run.into(),
            occurrence: None,
            cancel: CancellationToken::new(),
        };
        let c = ctx("r1");
        let items = job.list_items(&c).await.unwrap();
        assert_eq!(items, ["P1", "P2", "P3"]);
        for r in job.work_batch(&c, &items).await {
            r.unwrap();
        }
        let out = dir.path().join("out");
        let sent = files(&out);
        assert_eq!(sent.len(), 1, "P2 has no address, P3 is held");
        let m = &sent[0];
        assert!(m.contains("To: ada@example.org"), "{m}");
        assert!(
            m.contains("List-Unsubscribe: <https://pay.example.org/stop/P1>,"),
            "{m}"
        );
        assert!(
            m.contains("<mailto:billing@example.org?subject=unsubscribe%20P1>"),
            "{m}"
        );
        assert!(
            m.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
            "{m}"
        );
        assert!(
            m.contains("$25.00") && m.contains("555-0100") && m.contains("AdaP1"),
            "{m}"
        );
        let tasks = crate::domain::task::open(&db).unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].kind, "dunning-no-email");
        assert!(!tasks[0].subject.contains("Ada"), "{}", tasks[0].subject);
        let notices = dunning::notices_of(&db, "P1").unwrap();
        assert_eq!(notices.len(), 1);
        assert_eq!(dunning::first_statement_date(&notices), Some(start));

        // A second run the same day sends nothing more.
        let c = ctx("r2");
        for r in job.work_batch(&c, &items).await {
            r.unwrap();
        }
        assert_eq!(files(&out).len(), 1);

        // Outside the window a run decides nothing.
        clock.set("2026-04-01T22:30:00Z".parse().unwrap());
        assert!(job.list_items(&ctx("r3")).await.unwrap().is_empty());
        assert!(
            job.work_batch(&ctx("r3"), &items)
                .await
                .iter()
                .all(Result::is_ok)
        );
        assert_eq!(files(&out).len(), 1);

        // Day 30, inside the window: the reminder; opted out P1 gets nothing after.
        clock.set("2026-04-01T12:00:00Z".parse().unwrap());
        for r in job.work_batch(&ctx("r4"), &items).await {
            r.unwrap();
        }
        let sent = files(&out);
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().any(|m| m.contains("reminder")), "{sent:?}");
        let a = db.get::<Account>("P1").unwrap().unwrap();
        db.put(&Account {
            opt_out: Some(account::OptOut {
                by: "dana".into(),
                at: start,
                via: None,
            }),
            ..a
        })
        .unwrap();
        clock.set("2026-05-01T12:00:00Z".parse().unwrap());
        for r in job.work_batch(&ctx("r5"), &items).await {
            r.unwrap();
        }
        assert_eq!(files(&out).len(), 2, "opted out");
    }
}
