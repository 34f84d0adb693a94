//! The `ehr-sync` job: the practice's patients, insurance, schedule and
//! signed visits, pulled from its EHR through an EHR connector, so that
//! eligibility runs on the real schedule and claims start from real
//! charges.
//!
//! One run walks, in this order: patients changed since the stored cursor,
//! coverages changed since theirs, what earlier runs held back, the
//! appointments of the coming days, and encounters changed since their
//! cursor. Each page is written in one transaction together with the
//! cursor after it (the schedule in chunks of a thousand), so a crash or a
//! retry resumes where the last page ended and writes nothing twice; a
//! record equal to the one on record is not written at all, so a sync with
//! nothing changed writes nothing.
//!
//! What cannot be used becomes a biller task, never a silent drop:
//! - a resource the domain cannot take (a coverage without payor, a charge
//!   without a procedure code, a birth date that is not a date): one task
//!   per resource; the next version from the EHR replaces it;
//! - a coverage whose payer has no entry in the `payers` table, and a
//!   coverage or signed encounter of a patient billd does not know (or, for
//!   an encounter, with no coverage in force on its date), are held back
//!   with a task and tried again on every run, so fixing the table or the
//!   patient's arriving later brings them in, and closes the task;
//! - an appointment for an unknown patient: a task; it is fetched again on
//!   the next run anyway.
//!
//! A signed encounter without charges bills nothing and raises nothing
//! (it is counted); an unsigned one waits for its signature, which brings
//! it back through the cursor. Signed encounters become draft claims (billd's own patient control
//! number, derived from the encounter id), which the submission job scrubs
//! and sends; a claim already sent is never changed (a task says the visit
//! changed after submission).
//!
//! Params: `connector` (an EHR plugin's name), `payers` (a table from the
//! EHR's payer key, as the connector names it, or the payer's name, to
//! billd's payer id), `appointment_days` (how many days ahead to fetch the
//! schedule, default 14; 0 skips it), `claims` (default true: signed
//! encounters become draft claims), `max_attempts` and `retry_delay`.

use chrono::{DateTime, Days, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use super::business_days::local_midnight;
use super::commit_pipeline::CommitPipeline;
use super::cursor::{self, ConnectorCursor};
use super::registry::{BuildError, JobSetup, KindEntry, Services, check_params, parse_params};
use super::{BoxFuture, JobError, JobKind, RetryPolicy, RunContext, check_connector};
use crate::domain::claim_source::{self, SourceWrite};
use crate::domain::patient::coverages_of_patient;
use crate::domain::practice::Practice;
use crate::domain::scrub::{DEFAULT_TIMELY_FILING_DAYS, ScrubRules};
use crate::domain::task::{TaskDedupe, raise_in, resolve_in};
use crate::domain::{Claim, ClaimState, Coverage, NewTask, Patient, Priority};
use crate::intake::claims837::claim_id;
use crate::intake::derived_id;
use crate::mapping::{self, EncounterBill};
use crate::plugin::bindings::{ehr_api as ehr, types::ConnectorError};
use crate::plugin::{CallError, LoadedPlugin, PluginRegistry};
use crate::store::{Db, Record, StoreError, Tx, Upsert};

/// `[job.params]` of an ehr-sync job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EhrSyncParams {
    /// The EHR connector plugin to read.
    pub connector: String,
    /// The EHR's payer key (or the payer's name) to billd's payer id.
    #[serde(default)]
    pub payers: BTreeMap<String, String>,
    /// Days of the schedule to fetch, from today (default 14; 0: none).
    #[serde(default)]
    pub appointment_days: Option<u32>,
    /// Whether signed encounters become draft claims (default true).
    #[serde(default)]
    pub claims: Option<bool>,
    /// Attempts of the run's work before it fails (default 5).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Delay before the first retry, doubling after (default `"2s"`).
    #[serde(default)]
    pub retry_delay: Option<String>,
}

/// The ehr-sync kind in the job registry.
pub const KIND: KindEntry = KindEntry {
    name: "ehr-sync",
    check: check_params::<EhrSyncParams>,
    build: |params, setup, services| {
        let params = parse_params::<EhrSyncParams>(params)?;
        Ok(Arc::new(EhrSyncJob::new(params, setup, services)?))
    },
};

/// The most days of schedule one run fetches.
const MAX_APPOINTMENT_DAYS: u32 = 366;
/// The most pages one stream reads in a run (a connector that never says
/// "no more" cannot keep a run going forever).
const MAX_PAGES: usize = 100_000;

/// A resource held back until what it needs is there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HeldResource {
    /// A coverage; its `payer_id` is still the EHR's payer key.
    Coverage(Box<Coverage>),
    /// A signed encounter.
    Encounter(EncounterBill),
}

/// A held-back resource and the task that says why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EhrHeld {
    /// `<connector>/<Kind>/<id>`.
    pub key: String,
    /// The dedupe key of its task.
    pub task_key: String,
    /// The resource, in the domain's form.
    pub resource: HeldResource,
}

impl Record for EhrHeld {
    const COLLECTION: &'static str = "ehr_held";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.key.clone()
    }
}

/// The names of the listings read page by page from a cursor.
pub const STREAMS: [&str; 3] = ["patients", "coverages", "encounters"];

/// The listings read page by page from a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Patients,
    Coverages,
    Encounters,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Patients => STREAMS[0],
            Stream::Coverages => STREAMS[1],
            Stream::Encounters => STREAMS[2],
        }
    }
}

/// One page of a listing (or a chunk of the schedule).
enum Items {
    Patients(Vec<ehr::Patient>),
    Coverages(Vec<ehr::Coverage>),
    Encounters(Vec<ehr::Encounter>),
    Appointments(Vec<ehr::Appointment>),
}

/// What one transaction of a run writes.
struct Page {
    items: Items,
    /// The listing's cursor after the page, when it moved.
    cursor: Option<ConnectorCursor>,
    /// The time the page's tasks and holds are stamped with.
    now: DateTime<Utc>,
}

/// How many appointments of the schedule go in one transaction: a
/// practice's schedule for the coming weeks can be tens of thousands,
/// and a transaction's reads and writes are held in memory until it
/// commits.
const APPOINTMENT_CHUNK: usize = 1000;

impl Items {
    fn len(&self) -> usize {
        match self {
            Items::Patients(v) => v.len(),
            Items::Coverages(v) => v.len(),
            Items::Encounters(v) => v.len(),
            Items::Appointments(v) => v.len(),
        }
    }
}

/// A page and the cursor after it, or what the connector said instead.
type PageAnswer = Result<(Items, Option<String>), ConnectorError>;

/// How many pages of a listing are fetched ahead of the one being written.
/// Fetching needs nothing from the store, so the connector's network waits
/// and parsing overlap the store's commits; a few pages keep both busy
/// while bounding what waits in memory.
const READ_AHEAD: usize = 3;

/// A listing read on its own task, page after page from a cursor, at most
/// [`READ_AHEAD`] pages ahead of the job writing them. Each page is asked
/// for under the key of the run and the cursor before it (the key a retry
/// of the run's same page repeats). Dropped (the job stopped, or a write
/// failed), the reading is abandoned; nothing is lost, since the stored
/// cursor moves only with its page.
struct ReadAhead {
    pages: tokio::sync::mpsc::Receiver<Result<PageAnswer, CallError>>,
    task: tokio::task::JoinHandle<()>,
    /// The next answer once waited for ([`ReadAhead::settle`]).
    settled: Option<Result<PageAnswer, JobError>>,
}

impl ReadAhead {
    /// Starts reading `stream` after `since`.
    fn start(
        ctx: &RunContext,
        plugin: &Arc<LoadedPlugin>,
        stream: Stream,
        since: Option<String>,
    ) -> ReadAhead {
        let (tx, pages) = tokio::sync::mpsc::channel(READ_AHEAD);
        let run_id = ctx.run_id.clone();
        let plugin = Arc::clone(plugin);
        let task = tokio::spawn(async move {
            let mut since = since;
            loop {
                let call_key = RunContext::effect_key_in(
                    &run_id,
                    &format!("{}@{}", stream.name(), since.as_deref().unwrap_or("")),
                );
                let got = Self::call(&plugin, stream, &call_key, since.as_deref()).await;
                let next = match &got {
                    Ok(Ok((_, next))) if next.is_some() && *next != since => next.clone(),
                    _ => None,
                };
                if tx.send(got).await.is_err() {
                    return;
                }
                match next {
                    Some(n) => since = Some(n),
                    None => return,
                }
            }
        });
        ReadAhead {
            pages,
            task,
            settled: None,
        }
    }

    /// One listing call.
    async fn call(
        plugin: &LoadedPlugin,
        stream: Stream,
        key: &str,
        since: Option<&str>,
    ) -> Result<PageAnswer, CallError> {
        Ok(match stream {
            Stream::Patients => plugin
                .patients_changed(key, since)
                .await?
                .map(|p| (Items::Patients(p.items), p.next)),
            Stream::Coverages => plugin
                .coverages_changed(key, since)
                .await?
                .map(|p| (Items::Coverages(p.items), p.next)),
            Stream::Encounters => plugin
                .encounters_changed(key, since)
                .await?
                .map(|p| (Items::Encounters(p.items), p.next)),
        })
    }

    /// Waits until the next page's call has ended, keeping its outcome for
    /// [`ReadAhead::answer`].
    async fn settle(&mut self) {
        if self.settled.is_some() {
            return;
        }
        self.settled = Some(match self.pages.recv().await {
            Some(Ok(answer)) => Ok(answer),
            Some(Err(e)) => Err(super::connector_error(Err(e))),
            // The reading task ended without an answer: it panicked.
            None => Err(JobError::Transient(match (&mut self.task).await {
                Err(e) => format!("the connector call stopped: {e}"),
                Ok(()) => "the connector call stopped".to_owned(),
            })),
        });
    }

    /// The connector's next answer; a failed call is the job's error.
    async fn answer(&mut self) -> Result<PageAnswer, JobError> {
        self.settle().await;
        self.settled.take().expect("settled above")
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The schedule call, running on its own task from the start of a run;
/// abandoned when dropped unanswered (an earlier stage failed).
struct Schedule(
    tokio::task::JoinHandle<Result<Result<Vec<ehr::Appointment>, ConnectorError>, CallError>>,
);

impl Drop for Schedule {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a run did, for its log line and `billd ehr status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCounts {
    /// Resources received from the connector.
    pub received: u64,
    /// Records written new.
    pub created: u64,
    /// Records changed.
    pub updated: u64,
    /// Records as they were.
    pub unchanged: u64,
    /// Resources held back (with a task).
    pub held: u64,
    /// Resources refused (with a task).
    pub refused: u64,
    /// Encounters not yet signed (not billable yet).
    pub unsigned: u64,
    /// Signed encounters without charges (nothing to bill).
    pub no_charges: u64,
    /// Held-back resources brought in.
    pub released: u64,
}

impl SyncCounts {
    fn add(&mut self, o: Placed) {
        match o {
            Placed::Written(Upsert::Created) => self.created += 1,
            Placed::Written(Upsert::Updated) => self.updated += 1,
            Placed::Written(Upsert::Unchanged) => self.unchanged += 1,
            Placed::Held => self.held += 1,
            Placed::Refused => self.refused += 1,
            Placed::Unsigned => self.unsigned += 1,
            Placed::NoCharges => self.no_charges += 1,
        }
    }

    fn merge(&mut self, o: &SyncCounts) {
        self.received += o.received;
        self.created += o.created;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.held += o.held;
        self.refused += o.refused;
        self.unsigned += o.unsigned;
        self.no_charges += o.no_charges;
        self.released += o.released;
    }
}

/// What the latest sync of a job did (bookkeeping, like the run record:
/// the one write a sync that found nothing new makes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSync {
    /// The job.
    pub job: String,
    /// The connector.
    pub connector: String,
    /// When it ended.
    pub at: DateTime<Utc>,
    /// What it did.
    pub counts: SyncCounts,
}

impl Record for LastSync {
    const COLLECTION: &'static str = "ehr_last_sync";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.job.clone()
    }
}

/// What became of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    Written(Upsert),
    Held,
    Refused,
    Unsigned,
    NoCharges,
}

/// A configured ehr-sync job.
pub struct EhrSyncJob {
    job: String,
    connector: String,
    plugins: Option<Arc<PluginRegistry>>,
    payers: BTreeMap<String, String>,
    payers_by_name: BTreeMap<String, String>,
    appointment_days: u32,
    claims: bool,
    practice: Practice,
    timezone: chrono_tz::Tz,
    retry: RetryPolicy,
    /// The keys of this connector's ehr tasks and held resources that may
    /// be on record, read at the start of each run ([`EhrSyncJob::learn_problems`])
    /// and added to as the run raises more; `None` before a run read them.
    /// Bringing a resource in closes its problems, which is two or three
    /// point reads (each a commit check) per resource, almost always of
    /// keys that are absent: with the set, only keys in it are read.
    problems: Mutex<Option<HashSet<String>>>,
}

impl std::fmt::Debug for EhrSyncJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EhrSyncJob")
            .field("job", &self.job)
            .field("connector", &self.connector)
            .field("payers", &self.payers.len())
            .finish_non_exhaustive()
    }
}

/// The one work item: the stages share an order (patients before what
/// refers to them), so they are not separate items the runner could run
/// side by side.
const ITEM: &str = "sync";

impl EhrSyncJob {
    /// Builds the job from its params.
    pub fn new(
        params: EhrSyncParams,
        setup: &JobSetup,
        services: &Services,
    ) -> Result<Self, BuildError> {
        check_connector(services, &params.connector)?;
        let appointment_days = params.appointment_days.unwrap_or(14);
        if appointment_days > MAX_APPOINTMENT_DAYS {
            return Err(BuildError {
                key: "appointment_days".into(),
                reason: format!("must be 0 to {MAX_APPOINTMENT_DAYS}"),
            });
        }
        for (key, id) in &params.payers {
            if key.trim().is_empty() || id.trim().is_empty() {
                return Err(BuildError {
                    key: format!("payers.{key}"),
                    reason: "the EHR's payer key and billd's payer id must not be empty".into(),
                });
            }
        }
        let payers_by_name = params
            .payers
            .iter()
            .map(|(k, v)| (k.trim().to_lowercase(), v.clone()))
            .collect();
        Ok(EhrSyncJob {
            job: setup.name.clone(),
            connector: params.connector,
            plugins: services.plugins.clone(),
            payers: params.payers,
            payers_by_name,
            appointment_days,
            claims: params.claims.unwrap_or(true),
            practice: services.practice.clone(),
            timezone: setup.timezone,
            retry: RetryPolicy::from_params(params.max_attempts, params.retry_delay.as_deref())?,
            problems: Mutex::new(None),
        })
    }

    /// Reads which of this connector's task dedupe keys and held resources
    /// are on record, for [`EhrSyncJob::may_exist`]. Only ehr-sync runs of
    /// this connector write under those keys, and a job's runs do not
    /// overlap; a task that another job on the same connector raises at
    /// the same moment is closed by the run after, not this one.
    fn learn_problems(&self, db: &Db) -> Result<(), StoreError> {
        let mut keys = HashSet::new();
        db.for_each(&self.task_key_prefix(), |d: TaskDedupe| {
            keys.insert(d.dedupe_key);
            true
        })?;
        db.for_each(&format!("{}/", self.connector), |h: EhrHeld| {
            keys.insert(h.key);
            true
        })?;
        *self.problems.lock().unwrap_or_else(PoisonError::into_inner) = Some(keys);
        Ok(())
    }

    /// Whether a task dedupe key or held resource key may be on record
    /// (always, before a run has read them).
    fn may_exist(&self, key: &str) -> bool {
        self.problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_none_or(|keys| keys.contains(key))
    }

    /// Notes a key this run may write, so a later resource of the run
    /// reads it.
    fn noted(&self, key: &str) {
        if let Some(keys) = self
            .problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            keys.insert(key.to_owned());
        }
    }

    fn plugin(&self) -> Result<Arc<LoadedPlugin>, JobError> {
        super::connector(&self.plugins, &self.connector, "EHR")
    }

    fn cursor_key(&self, stream: Stream) -> String {
        ConnectorCursor::key_for(&self.connector, stream.name())
    }

    /// One run: every stage in order.
    async fn sync(&self, ctx: &RunContext) -> Result<SyncCounts, JobError> {
        let plugin = self.plugin()?;
        self.learn_problems(&ctx.db)?;
        // The other listings' first pages and the schedule are asked for
        // as soon as the first page of patients is in: fetching needs
        // nothing from the store, so the connector's network waits overlap
        // the writes, which still go in stage order. Waiting for that one
        // answer first lets the connector open its session once (a token
        // exchange, say) rather than once per concurrent call, and a
        // connector that refuses stops the run after one call.
        let mut patients = self.first_page(ctx, &plugin, Stream::Patients)?;
        patients.1.settle().await;
        let coverages = self.first_page(ctx, &plugin, Stream::Coverages)?;
        let schedule = (self.appointment_days > 0).then(|| self.ask_schedule(ctx, &plugin));
        let encounters = if self.claims {
            Some(self.first_page(ctx, &plugin, Stream::Encounters)?)
        } else {
            None
        };
        let mut counts = SyncCounts::default();
        counts.merge(&self.stream(ctx, Stream::Patients, patients).await?);
        counts.merge(&self.stream(ctx, Stream::Coverages, coverages).await?);
        counts.merge(&self.release_held(ctx)?);
        if let Some(schedule) = schedule {
            counts.merge(&self.appointments(ctx, schedule).await?);
        }
        if let Some(first) = encounters {
            counts.merge(&self.stream(ctx, Stream::Encounters, first).await?);
        }
        ctx.db.put(&LastSync {
            job: self.job.clone(),
            connector: self.connector.clone(),
            at: ctx.clock.now(),
            counts: counts.clone(),
        })?;
        ctx.db.flush()?;
        tracing::info!(
            job = %self.job, received = counts.received, created = counts.created,
            updated = counts.updated, unchanged = counts.unchanged, held = counts.held,
            refused = counts.refused, released = counts.released,
            unsigned = counts.unsigned, no_charges = counts.no_charges, "ehr sync done"
        );
        Ok(counts)
    }

    /// The stored cursor of `stream` and the reading already asking for
    /// the pages after it.
    fn first_page(
        &self,
        ctx: &RunContext,
        plugin: &Arc<LoadedPlugin>,
        stream: Stream,
    ) -> Result<(Option<String>, ReadAhead), JobError> {
        let since = cursor::stored(&ctx.db, &self.connector, stream.name())?;
        let fetch = ReadAhead::start(ctx, plugin, stream, since.clone());
        Ok((since, fetch))
    }

    /// Asks for the appointments from today (in the job's timezone) for
    /// `appointment_days` days, on its own task.
    fn ask_schedule(&self, ctx: &RunContext, plugin: &Arc<LoadedPlugin>) -> Schedule {
        let today = ctx.clock.now().with_timezone(&self.timezone).date_naive();
        let end_day = today
            .checked_add_days(Days::new(self.appointment_days.into()))
            .unwrap_or(today);
        let window = ehr::Window {
            start: mapping::timestamp(local_midnight(today, self.timezone)),
            end: mapping::timestamp(local_midnight(end_day, self.timezone)),
        };
        let call_key = ctx.effect_key(&format!("appointments@{today}"));
        let plugin = Arc::clone(plugin);
        Schedule(tokio::spawn(async move {
            plugin.appointments(&call_key, window).await
        }))
    }

    /// Reads a listing from its stored cursor (the pages after it are
    /// already being read, `first`) to its end, one transaction per page
    /// (the records and the cursor after them).
    ///
    /// Pages are fetched up to [`READ_AHEAD`] ahead while earlier ones are
    /// written: the connector's network waits and parsing overlap the
    /// store's commits. Patients and coverages are written through a
    /// [`CommitPipeline`] (a page is mapped while the one before it
    /// commits); encounters one page after the other, since placing one
    /// reads the patient's coverages through an index outside its
    /// transaction. Nothing is lost to a crash in between, since the
    /// stored cursor moves only with its page, and pages commit in order;
    /// a page read ahead is asked for again under the same key after a
    /// restart.
    async fn stream(
        &self,
        ctx: &RunContext,
        stream: Stream,
        first: (Option<String>, ReadAhead),
    ) -> Result<SyncCounts, JobError> {
        let key = self.cursor_key(stream);
        let mut counts = SyncCounts::default();
        let (mut since, mut fetch) = first;
        let mut pipeline = CommitPipeline::new(&ctx.db, |tx: &mut Tx<'_>, page: &Page| {
            self.write_page(&ctx.db, tx, page)
        });
        for _ in 0..MAX_PAGES {
            let got = fetch.answer().await?;
            let (items, next) = match got {
                Ok(page) => page,
                Err(ConnectorError::Unsupported(_)) => {
                    tracing::debug!(job = %self.job, stream = stream.name(), "the connector does not offer this listing");
                    break;
                }
                Err(e) => return Err(super::connector_error(Ok(e))),
            };
            let moved = next.is_some() && next != since;
            if items.len() > 0 || moved {
                let page = Page {
                    items,
                    cursor: moved.then(|| ConnectorCursor {
                        key: key.clone(),
                        cursor: next.clone(),
                    }),
                    now: ctx.clock.now(),
                };
                if stream == Stream::Encounters {
                    counts.merge(&ctx.db.transact(|tx| self.write_page(&ctx.db, tx, &page))?);
                    ctx.db.flush()?;
                } else if let Some(done) = pipeline.push(page).await? {
                    counts.merge(&done);
                }
            }
            if !moved {
                break;
            }
            since = next;
        }
        if let Some(done) = pipeline.finish().await? {
            counts.merge(&done);
        }
        Ok(counts)
    }

    /// Writes one page: its records, and the cursor after it.
    fn write_page(&self, db: &Db, tx: &mut Tx<'_>, page: &Page) -> Result<SyncCounts, StoreError> {
        let now = page.now;
        let mut c = SyncCounts {
            received: page.items.len() as u64,
            ..SyncCounts::default()
        };
        match &page.items {
            Items::Patients(v) => {
                for p in v {
                    c.add(self.place_patient(tx, now, p.clone())?);
                }
            }
            Items::Coverages(v) => {
                for r in v {
                    c.add(self.place_raw_coverage(tx, now, r.clone())?);
                }
            }
            Items::Encounters(v) => {
                for r in v {
                    c.add(self.place_raw_encounter(db, tx, now, r.clone())?);
                }
            }
            Items::Appointments(v) => {
                for a in v {
                    c.add(self.place_appointment(tx, now, a.clone())?);
                }
            }
        }
        if let Some(cursor) = &page.cursor {
            tx.put(cursor)?;
        }
        Ok(c)
    }

    /// Writes the appointments `schedule` brings, [`APPOINTMENT_CHUNK`] to
    /// a transaction, each chunk mapped while the one before commits.
    /// (Writing an appointment is an idempotent upsert, so a crash between
    /// chunks loses nothing: the next run fetches the schedule again.)
    async fn appointments(
        &self,
        ctx: &RunContext,
        mut schedule: Schedule,
    ) -> Result<SyncCounts, JobError> {
        let answer = match (&mut schedule.0).await {
            Ok(answer) => answer,
            Err(e) => {
                return Err(JobError::Transient(format!(
                    "the connector call stopped: {e}"
                )));
            }
        };
        let mut rest = match answer {
            Ok(Ok(v)) => v,
            Ok(Err(ConnectorError::Unsupported(_))) => return Ok(SyncCounts::default()),
            Ok(Err(e)) => return Err(super::connector_error(Ok(e))),
            Err(e) => return Err(super::connector_error(Err(e))),
        };
        let now = ctx.clock.now();
        let mut counts = SyncCounts::default();
        let mut pipeline = CommitPipeline::new(&ctx.db, |tx: &mut Tx<'_>, page: &Page| {
            self.write_page(&ctx.db, tx, page)
        });
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(APPOINTMENT_CHUNK));
            let chunk = std::mem::replace(&mut rest, tail);
            let page = Page {
                items: Items::Appointments(chunk),
                cursor: None,
                now,
            };
            if let Some(done) = pipeline.push(page).await? {
                counts.merge(&done);
            }
        }
        if let Some(done) = pipeline.finish().await? {
            counts.merge(&done);
        }
        Ok(counts)
    }

    /// Tries again what earlier runs held back.
    fn release_held(&self, ctx: &RunContext) -> Result<SyncCounts, JobError> {
        let held = ctx.db.scan::<EhrHeld>(&format!("{}/", self.connector))?;
        let mut counts = SyncCounts::default();
        if held.is_empty() {
            return Ok(counts);
        }
        let now = ctx.clock.now();
        for h in held {
            let c = ctx.db.transact(|tx| {
                // Replaced or released since the scan.
                if tx.get::<EhrHeld>(&h.key)?.as_ref() != Some(&h) {
                    return Ok::<_, StoreError>(SyncCounts::default());
                }
                let placed = match &h.resource {
                    HeldResource::Coverage(c) => self.place_coverage(tx, now, (**c).clone())?,
                    HeldResource::Encounter(e) => {
                        self.place_encounter(&ctx.db, tx, now, e.clone())?
                    }
                };
                let mut c = SyncCounts::default();
                if let Placed::Written(_) = placed {
                    c.released += 1;
                }
                c.add(placed);
                Ok(c)
            })?;
            counts.merge(&c);
        }
        ctx.db.flush()?;
        Ok(counts)
    }

    fn held_key(&self, kind: &str, id: &str) -> String {
        format!("{}/{kind}/{id}", self.connector)
    }

    fn task_key(&self, problem: &str, kind: &str, id: &str) -> String {
        format!("{}{problem}/{kind}/{id}", self.task_key_prefix())
    }

    fn task_key_prefix(&self) -> String {
        format!("ehr/{}/", self.connector)
    }

    /// Drops what is held under `kind`/`id`, if anything is.
    fn drop_held(&self, tx: &mut Tx<'_>, kind: &str, id: &str) -> Result<(), StoreError> {
        let key = self.held_key(kind, id);
        if self.may_exist(&key) {
            tx.remove::<EhrHeld>(&key)?;
        }
        Ok(())
    }

    /// Closes the task raised under `dedupe_key`, if there is one.
    fn resolve(
        &self,
        tx: &mut Tx<'_>,
        now: DateTime<Utc>,
        dedupe_key: &str,
        note: &str,
    ) -> Result<(), StoreError> {
        if self.may_exist(dedupe_key) {
            resolve_in(tx, dedupe_key, now, "ehr-sync", note)?;
        }
        Ok(())
    }

    /// Raises a task about one resource (ids and field names only: the
    /// values are patient data).
    fn task(
        &self,
        tx: &mut Tx<'_>,
        now: DateTime<Utc>,
        dedupe_key: String,
        kind: &str,
        subject: String,
    ) -> Result<(), StoreError> {
        self.noted(&dedupe_key);
        raise_in(
            tx,
            now,
            &NewTask {
                kind: kind.into(),
                subject,
                priority: Priority::Normal,
                due: None,
                assignee: None,
                payer: None,
                dedupe_key,
            },
        )?;
        Ok(())
    }

    /// A resource the domain cannot take: a task; anything held under its
    /// key is dropped (this version replaces it).
    fn refuse(
        &self,
        tx: &mut Tx<'_>,
        now: DateTime<Utc>,
        kind: &str,
        id: &str,
        why: &str,
    ) -> Result<Placed, StoreError> {
        self.drop_held(tx, kind, id)?;
        self.task(
            tx,
            now,
            self.task_key("unusable", kind, id),
            "ehr-unusable",
            format!(
                "EHR {kind} {id} from {} cannot be imported: {why}",
                self.connector
            ),
        )?;
        Ok(Placed::Refused)
    }

    /// Holds a resource back with a task; `resolve` is what closes the
    /// task once the resource is brought in.
    #[allow(clippy::too_many_arguments)]
    fn hold(
        &self,
        tx: &mut Tx<'_>,
        now: DateTime<Utc>,
        kind: &str,
        id: &str,
        problem: &str,
        task_kind: &str,
        subject: String,
        resource: HeldResource,
    ) -> Result<Placed, StoreError> {
        let task_key = self.task_key(problem, kind, id);
        let held = EhrHeld {
            key: self.held_key(kind, id),
            task_key: task_key.clone(),
            resource,
        };
        if let Some(old) = tx.get::<EhrHeld>(&held.key)?
            && old.task_key != task_key
        {
            resolve_in(tx, &old.task_key, now, "ehr-sync", "superseded")?;
        }
        self.noted(&held.key);
        tx.upsert(&held)?;
        self.task(tx, now, task_key, task_kind, subject)?;
        Ok(Placed::Held)
    }

    /// Brought in: whatever held it back is over.
    fn released(
        &self,
        tx: &mut Tx<'_>,
        now: DateTime<Utc>,
        kind: &str,
        id: &str,
    ) -> Result<(), StoreError> {
        let held = self.held_key(kind, id);
        if self.may_exist(&held)
            && let Some(h) = tx.get::<EhrHeld>(&held)?
        {
            tx.remove::<EhrHeld>(&h.key)?;
            resolve_in(
                tx,
                &h.task_key,
                now,
                "ehr-sync",
                "imported by a later EHR sync",
            )?;
        }
        self.resolve(
            tx,
            now,
            &self.task_key("unusable", kind, id),
            "a later version from the EHR was imported",
        )
    }

    fn place_patient(
        &self,
        tx: &mut Tx<'_>,
        now: DateTime<Utc>,
        raw: ehr::Patient,
    ) -> Result<Placed, StoreError> {
        let id = raw.patient_id.clone();
        match mapping::patient_from(raw) {
            Ok(p) => {
                self.released(tx, now, "Patient", &id)?;
                Ok(Placed::Written(tx.upsert(&p)?))
            }
            Err(e) => self.refuse(tx, now, "Patient", &id, &e.to_string()),
        }
    }

    fn place_raw_coverage(
        &self,
        tx: &mut Tx<'_>,
        now: DateTime<Utc>,
        raw: ehr::Coverage,
    ) -> Result<Placed, StoreError> {
        let id = raw.coverage_id.clone();
        match mapping::coverage_from(raw) {
            Ok(c) => self.place_coverage(tx, now, c),
            Err(e) => self.refuse(tx, now, "Coverage", &id, &e.to_string()),
        }
    }

    /// The billd payer id of the EHR's payer key or name.
    fn payer_id(&self, key: &str, name: &str) -> Option<&String> {
        self.payers
            .get(key)
            .or_else(|| self.payers_by_name.get(&name.trim().to_lowercase()))
    }

    /// A coverage whose `payer_id` is the EHR's payer key.
    fn place_coverage(
        &self,
        tx: &mut Tx<'_>,
        now: DateTime<Utc>,
        mut c: Coverage,
    ) -> Result<Placed, StoreError> {
        let id = c.id.clone();
        let Some(payer) = self.payer_id(&c.payer_id, &c.payer_name).cloned() else {
            let named = if c.payer_name.trim().is_empty() {
                String::new()
            } else {
                format!(" ({})", c.payer_name.trim())
            };
            let subject = format!(
                "EHR payer {:?}{named} has no billd payer id in job {}'s `payers` table: coverage {id} is held back",
                c.payer_id, self.job
            );
            return self.hold(
                tx,
                now,
                "Coverage",
                &id,
                "unmapped-payer",
                "ehr-unmapped-payer",
                subject,
                HeldResource::Coverage(Box::new(c)),
            );
        };
        if !tx.contains::<Patient>(&c.patient_id)? {
            let subject = format!(
                "EHR coverage {id} is for patient {}, whom billd does not know: held back",
                c.patient_id
            );
            return self.hold(
                tx,
                now,
                "Coverage",
                &id,
                "unknown-patient",
                "ehr-unknown-patient",
                subject,
                HeldResource::Coverage(Box::new(c)),
            );
        }
        c.payer_id = payer;
        // The EHR carries no verdict: keep the one eligibility found.
        c.verdict = tx.get::<Coverage>(&id)?.and_then(|old| old.verdict);
        self.released(tx, now, "Coverage", &id)?;
        Ok(Placed::Written(tx.upsert(&c)?))
    }

    fn place_appointment(
        &self,
        tx: &mut Tx<'_>,
        now: DateTime<Utc>,
        raw: ehr::Appointment,
    ) -> Result<Placed, StoreError> {
        let id = raw.appointment_id.clone();
        let a = match mapping::appointment_from(raw) {
            Ok(a) => a,
            Err(e) => return self.refuse(tx, now, "Appointment", &id, &e.to_string()),
        };
        let unknown = self.task_key("unknown-patient", "Appointment", &id);
        if !tx.contains::<Patient>(&a.patient_id)? {
            self.task(
                tx,
                now,
                unknown,
                "ehr-unknown-patient",
                format!(
                    "EHR appointment {id} is for patient {}, whom billd does not know",
                    a.patient_id
                ),
            )?;
            return Ok(Placed::Held);
        }
        self.resolve(tx, now, &unknown, "the patient is known now")?;
        self.released(tx, now, "Appointment", &id)?;
        Ok(Placed::Written(tx.upsert(&a)?))
    }

    fn place_raw_encounter(
        &self,
        db: &Db,
        tx: &mut Tx<'_>,
        now: DateTime<Utc>,
        raw: ehr::Encounter,
    ) -> Result<Placed, StoreError> {
        let id = raw.encounter_id.clone();
        if !raw.signed {
            // Not billable yet, whatever else it lacks: its signature is a
            // change the cursor brings back.
            self.drop_held(tx, "Encounter", &id)?;
            return Ok(Placed::Unsigned);
        }
        match mapping::encounter_from(raw) {
            Ok(e) => self.place_encounter(db, tx, now, e),
            Err(e) => self.refuse(tx, now, "Encounter", &id, &e.to_string()),
        }
    }

    /// A signed encounter becomes a draft claim on the coverage in force
    /// on its date.
    fn place_encounter(
        &self,
        db: &Db,
        tx: &mut Tx<'_>,
        now: DateTime<Utc>,
        e: EncounterBill,
    ) -> Result<Placed, StoreError> {
        let id = e.id.clone();
        if !e.signed {
            self.drop_held(tx, "Encounter", &id)?;
            return Ok(Placed::Unsigned);
        }
        if e.lines.is_empty() {
            // Nothing to bill (charges are entered elsewhere, or none
            // were): no claim, and no task for every such visit.
            self.drop_held(tx, "Encounter", &id)?;
            return Ok(Placed::NoCharges);
        }
        if !tx.contains::<Patient>(&e.patient_id)? {
            let subject = format!(
                "EHR encounter {id} is for patient {}, whom billd does not know: not billed yet",
                e.patient_id
            );
            return self.hold(
                tx,
                now,
                "Encounter",
                &id,
                "unknown-patient",
                "ehr-unknown-patient",
                subject,
                HeldResource::Encounter(e),
            );
        }
        let coverage = coverage_in_force(db, tx, &e)?;
        let Some(cov) = coverage else {
            let subject = format!(
                "EHR encounter {id} of {}: patient {} has no coverage in force on that day: not billed yet",
                e.service_date, e.patient_id
            );
            return self.hold(
                tx,
                now,
                "Encounter",
                &id,
                "no-coverage",
                "ehr-no-coverage",
                subject,
                HeldResource::Encounter(e),
            );
        };
        let claim = self.claim_for(&e, &cov);
        let claim_id = claim.id.clone();
        let rules = ScrubRules {
            today: now.with_timezone(&self.timezone).date_naive(),
            timely_filing_days: DEFAULT_TIMELY_FILING_DAYS,
        };
        let origin = format!("from EHR encounter {id} ({})", self.connector);
        let written = claim_source::write(tx, now, claim, &origin, &rules)?;
        self.released(tx, now, "Encounter", &id)?;
        Ok(match written.write {
            SourceWrite::Created => Placed::Written(Upsert::Created),
            SourceWrite::Updated => Placed::Written(Upsert::Updated),
            SourceWrite::Unchanged => Placed::Written(Upsert::Unchanged),
            SourceWrite::KeptSubmitted => {
                self.task(
                    tx,
                    now,
                    self.task_key("changed-after-submission", "Encounter", &id),
                    "ehr-changed-after-submission",
                    format!(
                        "EHR encounter {id} changed after claim {claim_id} was sent: review it and file a corrected claim if needed"
                    ),
                )?;
                Placed::Held
            }
        })
    }

    /// The draft claim for encounter `e` billed to `cov`.
    fn claim_for(&self, e: &EncounterBill, cov: &Coverage) -> Claim {
        let control = derived_id("E", &[&self.connector, &e.id]);
        Claim {
            id: claim_id(&self.practice.npi, &control),
            control_number: control,
            patient_id: e.patient_id.clone(),
            coverage_id: cov.id.clone(),
            payer_id: cov.payer_id.clone(),
            billing_npi: self.practice.npi.clone(),
            rendering_npi: e.rendering_npi.clone(),
            place_of_service: e.place_of_service.clone(),
            frequency_code: "1".into(),
            diagnoses: e.diagnoses.clone(),
            total_charge_cents: e.lines.iter().map(|l| l.charge_cents).sum(),
            lines: e.lines.clone(),
            state: ClaimState::Draft,
            history: Vec::new(),
            payer_claim_number: None,
            next_check_at: None,
            revision: 0,
            held: false,
            problems: Vec::new(),
            billing_name: None,
            billing_tax_id: None,
        }
    }
}

/// The patient's first coverage (primary first) in force on the visit's
/// date; each read again inside the transaction, so the claim commits only
/// if the coverage it bills is still as read.
fn coverage_in_force(
    db: &Db,
    tx: &mut Tx<'_>,
    e: &EncounterBill,
) -> Result<Option<Coverage>, StoreError> {
    let day = e.service_date;
    for listed in coverages_of_patient(db, &e.patient_id)? {
        let Some(c) = tx.get::<Coverage>(&listed.id)? else {
            continue;
        };
        if c.patient_id == e.patient_id
            && c.effective.is_none_or(|s| s <= day)
            && c.terminated.is_none_or(|t| t >= day)
        {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

impl JobKind for EhrSyncJob {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn list_items<'a>(
        &'a self,
        _ctx: &'a RunContext,
    ) -> BoxFuture<'a, Result<Vec<String>, JobError>> {
        Box::pin(async move { Ok(vec![ITEM.to_string()]) })
    }

    fn work_item<'a>(
        &'a self,
        ctx: &'a RunContext,
        _item: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move { self.sync(ctx).await.map(|_| ()) })
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }
}

#[cfg(test)]
mod tests;
