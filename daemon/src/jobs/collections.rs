//! The `collections` job: delinquent accounts handed to a collection
//! agency through a collections connector, called back when they no longer
//! belong there, and the agency's news posted back.
//!
//! One run, in this order:
//! 1. **Agency updates** since the stored cursor: a payment posts to the
//!    ledger (the gross, as an agency payment; the fee is recorded on the
//!    placement), a dispute places a dispute hold (and so a recall) with a
//!    task, a closure closes the placement. Each page commits with the
//!    cursor after it, so nothing posts twice.
//! 2. **Recalls**: every account with the agency that is paid, disputed,
//!    put on hold or on a payment plan in good standing is marked for
//!    recall (durably, with the batch's idempotency key) and then called
//!    back; the agency's refusal becomes a task.
//! 3. **Placements**: first any placement recorded but not confirmed (a
//!    crash between recording and the call: resent in the same batch under
//!    the same key); then every account passing all the gates of
//!    [`crate::domain::collections::qualifies`], in batches, each recorded
//!    and made durable before the agency is called. An account without a
//!    postal address is not placed: a task says so.
//!
//! Every placement and recall is written to the `billd::audit` log target
//! and kept in the placement's event history.
//!
//! Params: `connector` (a collections plugin's name), `min_balance_cents`
//! (default 2500), `min_days_since_first_statement` (default 120),
//! `min_days_since_final_notice` (default 30), `batch_size` (default 100),
//! `max_attempts` and `retry_delay`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::cursor::{self, ConnectorCursor};
use super::registry::{BuildError, JobSetup, KindEntry, Services, check_params, parse_params};
use super::{BoxFuture, JobError, JobKind, RetryPolicy, RunContext, check_connector};
use crate::domain::account::{self, LedgerEntry, LedgerKind};
use crate::domain::collections::{
    self, AccountFacts, Gates, Placement, PlacementStatus, RecallReason,
};
use crate::domain::dunning::{self, final_notice_date, first_statement_date, notices_of};
use crate::domain::hold::{self, HoldKind};
use crate::domain::task::raise_in;
use crate::domain::{Claim, NewTask, Patient, Priority};
use crate::intake::derived_id;
use crate::mapping::{self, AgencyEvent, PlacementTerms};
use crate::plugin::bindings::collections_api as co;
use crate::plugin::{LoadedPlugin, PluginRegistry};
use crate::store::{Db, StoreError, Tx};

/// `[job.params]` of a collections job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionsParams {
    /// The collections connector plugin.
    pub connector: String,
    /// The least patient balance placed, in cents (default 2500).
    #[serde(default)]
    pub min_balance_cents: Option<i64>,
    /// Days from the first statement before placing (default 120).
    #[serde(default)]
    pub min_days_since_first_statement: Option<u32>,
    /// Days from the final notice before placing (default 30).
    #[serde(default)]
    pub min_days_since_final_notice: Option<u32>,
    /// Accounts per placement call (default 100).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Attempts of the run's work before it fails (default 5).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Delay before the first retry, doubling after (default `"2s"`).
    #[serde(default)]
    pub retry_delay: Option<String>,
}

/// The collections kind in the job registry.
pub const KIND: KindEntry = KindEntry {
    name: "collections",
    check: check_params::<CollectionsParams>,
    build: |params, setup, services| {
        let params = parse_params::<CollectionsParams>(params)?;
        Ok(Arc::new(CollectionsJob::new(params, setup, services)?))
    },
};

/// The listing name of the agency's updates.
const UPDATES: &str = "agency-updates";
/// The most update pages one run reads.
const MAX_PAGES: usize = 10_000;
/// Accounts read from the aging index at a time.
const SCAN_PAGE: usize = 500;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionsCounts {
    /// Agency updates applied.
    pub updates: u64,
    /// Accounts placed (confirmed by the agency).
    pub placed: u64,
    /// Placements the agency refused.
    pub refused: u64,
    /// Accounts called back (confirmed).
    pub recalled: u64,
    /// Accounts that qualify but have no postal address.
    pub no_address: u64,
}

/// A configured collections job.
pub struct CollectionsJob {
    job: String,
    connector: String,
    plugins: Option<Arc<PluginRegistry>>,
    gates: Gates,
    batch_size: usize,
    timezone: chrono_tz::Tz,
    retry: RetryPolicy,
}

impl std::fmt::Debug for CollectionsJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectionsJob")
            .field("job", &self.job)
            .field("connector", &self.connector)
            .field("gates", &self.gates)
            .finish_non_exhaustive()
    }
}

/// The one work item (the phases share an order).
const ITEM: &str = "collections";

impl CollectionsJob {
    /// Builds the job from its params.
    pub fn new(
        params: CollectionsParams,
        setup: &JobSetup,
        services: &Services,
    ) -> Result<Self, BuildError> {
        check_connector(services, &params.connector)?;
        let d = Gates::default();
        let min_balance_cents = params.min_balance_cents.unwrap_or(d.min_balance_cents);
        if min_balance_cents < 1 {
            return Err(BuildError {
                key: "min_balance_cents".into(),
                reason: "must be at least 1".into(),
            });
        }
        let batch_size = params.batch_size.unwrap_or(100);
        if !(1..=5000).contains(&batch_size) {
            return Err(BuildError {
                key: "batch_size".into(),
                reason: "must be 1 to 5000".into(),
            });
        }
        Ok(CollectionsJob {
            job: setup.name.clone(),
            connector: params.connector,
            plugins: services.plugins.clone(),
            gates: Gates {
                min_balance_cents,
                min_days_since_first_statement: params
                    .min_days_since_first_statement
                    .map_or(d.min_days_since_first_statement, i64::from),
                min_days_since_final_notice: params
                    .min_days_since_final_notice
                    .map_or(d.min_days_since_final_notice, i64::from),
            },
            batch_size,
            timezone: setup.timezone,
            retry: RetryPolicy::from_params(params.max_attempts, params.retry_delay.as_deref())?,
        })
    }

    fn plugin(&self) -> Result<Arc<LoadedPlugin>, JobError> {
        super::connector(&self.plugins, &self.connector, "collections")
    }

    /// One run: updates, recalls, placements.
    pub async fn cycle(&self, ctx: &RunContext) -> Result<CollectionsCounts, JobError> {
        let plugin = self.plugin()?;
        let mut counts = CollectionsCounts::default();
        self.updates(ctx, &plugin, &mut counts).await?;
        self.recalls(ctx, &plugin, &mut counts).await?;
        self.placements(ctx, &plugin, &mut counts).await?;
        tracing::info!(
            job = %self.job, updates = counts.updates, placed = counts.placed,
            refused = counts.refused, recalled = counts.recalled,
            no_address = counts.no_address, "collections done"
        );
        Ok(counts)
    }

    fn today(&self, ctx: &RunContext) -> NaiveDate {
        ctx.clock.now().with_timezone(&self.timezone).date_naive()
    }

    fn task(
        &self,
        tx: &mut Tx<'_>,
        now: DateTime<Utc>,
        kind: &str,
        dedupe: String,
        subject: String,
    ) -> Result<(), StoreError> {
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
                dedupe_key: dedupe,
            },
        )?;
        Ok(())
    }

    // ---- 1. agency updates -------------------------------------------------

    async fn updates(
        &self,
        ctx: &RunContext,
        plugin: &LoadedPlugin,
        counts: &mut CollectionsCounts,
    ) -> Result<(), JobError> {
        for _ in 0..MAX_PAGES {
            let since = cursor::stored(&ctx.db, &self.connector, UPDATES)?;
            let key = ctx.effect_key(&format!("updates@{}", since.as_deref().unwrap_or("")));
            let page = match plugin.fetch_agency_updates(&key, since.as_deref()).await {
                Ok(Ok(p)) => p,
                Ok(Err(crate::plugin::ConnectorError::Unsupported(_))) => return Ok(()),
                Ok(Err(e)) => return Err(super::connector_error(Ok(e))),
                Err(e) => return Err(super::connector_error(Err(e))),
            };
            let moved = page.next.is_some() && page.next != since;
            if !page.items.is_empty() || moved {
                let now = ctx.clock.now();
                // Entry ids are stable for this page (its cursor and
                // position), so a page applied again posts nothing new.
                let page_id = derived_id("", &[&self.connector, since.as_deref().unwrap_or("")]);
                let touched = ctx.db.transact(|tx| {
                    let mut touched = Vec::new();
                    for (i, u) in page.items.iter().enumerate() {
                        if let Some(a) =
                            self.apply_update(&ctx.db, tx, now, &page_id, i, u.clone())?
                        {
                            touched.push(a);
                        }
                    }
                    if moved {
                        tx.put(&ConnectorCursor {
                            key: ConnectorCursor::key_for(&self.connector, UPDATES),
                            cursor: page.next.clone(),
                        })?;
                    }
                    Ok::<_, StoreError>(touched)
                })?;
                for a in &touched {
                    account::refresh_owing_since(&ctx.db, a, now)?;
                }
                ctx.db.flush()?;
                counts.updates += page.items.len() as u64;
            }
            if !moved {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Applies one update; returns the account whose ledger it changed.
    fn apply_update(
        &self,
        db: &Db,
        tx: &mut Tx<'_>,
        now: DateTime<Utc>,
        page_id: &str,
        i: usize,
        u: co::AgencyUpdate,
    ) -> Result<Option<String>, StoreError> {
        let (account, agency_id, day, event) = match mapping::agency_update_from(u) {
            Ok(x) => x,
            Err(e) => {
                self.task(
                    tx,
                    now,
                    "collections-bad-update",
                    format!("collections/{}/bad-update/{page_id}/{i}", self.connector),
                    format!(
                        "an update from agency connector {} cannot be used: {e}",
                        self.connector
                    ),
                )?;
                return Ok(None);
            }
        };
        let placement = placement_for_update(db, tx, &self.connector, &account)?;
        let Some(mut p) = placement else {
            self.task(
                tx,
                now,
                "collections-unknown-update",
                format!("collections/{}/unknown/{page_id}/{i}", self.connector),
                format!(
                    "agency connector {} reported on account {account}, which billd has not placed with it",
                    self.connector
                ),
            )?;
            return Ok(None);
        };
        if p.agency_account_id.is_none() {
            p.agency_account_id = agency_id;
        }
        let mut ledger = None;
        match event {
            AgencyEvent::Payment {
                gross_cents,
                fee_cents,
                net_cents,
            } => {
                let entry = LedgerEntry {
                    id: format!("{account}/agency/{page_id}/{i:04}"),
                    account_id: account.clone(),
                    claim_id: None,
                    posted_at: now,
                    kind: LedgerKind::AgencyPayment,
                    amount_cents: -gross_cents,
                    source: format!(
                        "agency:{}:{}:{day}",
                        self.connector,
                        p.agency_account_id.as_deref().unwrap_or("")
                    ),
                };
                if tx.insert_new(&entry)? {
                    p.collected_cents += gross_cents;
                    p.agency_fee_cents += fee_cents;
                    p.log(
                        now,
                        "payment",
                        Some(format!(
                            "{day}: gross {gross_cents}, fee {fee_cents}, net {net_cents} cents"
                        )),
                    );
                    ledger = Some(account.clone());
                }
            }
            AgencyEvent::Disputed(why) => {
                let open_dispute = hold::holds_of(db, &account)?
                    .iter()
                    .any(|h| h.is_open() && h.kind == HoldKind::Dispute);
                if !open_dispute {
                    hold::place_in(
                        tx,
                        &account,
                        HoldKind::Dispute,
                        &format!("disputed at the collection agency: {why}"),
                        &format!("agency:{}", self.connector),
                        now,
                    )?;
                }
                p.log(now, "disputed", None);
                self.task(
                    tx,
                    now,
                    "collections-dispute",
                    format!("collections/{}/dispute/{}", self.connector, p.id),
                    format!(
                        "account {account} is disputed at the agency ({}): held, and called back",
                        self.connector
                    ),
                )?;
            }
            AgencyEvent::Closed(why) => {
                if p.status.is_open() {
                    p.status = PlacementStatus::Closed {
                        reason: why.clone(),
                    };
                }
                p.log(now, "closed", Some(why));
            }
        }
        tx.put(&p)?;
        Ok(ledger)
    }

    // ---- 2. recalls --------------------------------------------------------

    async fn recalls(
        &self,
        ctx: &RunContext,
        plugin: &LoadedPlugin,
        counts: &mut CollectionsCounts,
    ) -> Result<(), JobError> {
        let today = self.today(ctx);
        let now = ctx.clock.now();
        // Mark what must come back (durably) before asking.
        let mut marked = Vec::new();
        for p in collections::with_status(&ctx.db, "placed")? {
            if p.connector != self.connector {
                continue;
            }
            let entries = account::entries(&ctx.db, &p.account_id)?;
            let owed = dunning::billable(&entries).map_or(0, |b| b.cents);
            let found = hold::check(&ctx.db, &p.account_id, &entries, today)?;
            if let Some(reason) = collections::recall_reason(owed, found.blocker.as_ref()) {
                marked.push((p.id.clone(), reason));
            }
        }
        if !marked.is_empty() {
            let recall_key = ctx.scoped_effect_key(&format!(
                "recall/{}",
                derived_id(
                    "",
                    &marked.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>()
                )
            ));
            ctx.db.transact(|tx| {
                for (id, reason) in &marked {
                    if let Some(mut p) = tx.get::<Placement>(id)?
                        && p.status == PlacementStatus::Placed
                    {
                        p.status = PlacementStatus::RecallPending { reason: *reason };
                        p.recall_key = Some(recall_key.clone());
                        p.log(now, "recall-requested", Some(reason.name().into()));
                        tx.put(&p)?;
                    }
                }
                Ok::<_, StoreError>(())
            })?;
            ctx.db.flush()?;
        }
        // Every recall not yet confirmed, batch by batch.
        let mut batches: BTreeMap<String, Vec<Placement>> = BTreeMap::new();
        for p in collections::with_status(&ctx.db, "recall-pending")? {
            if p.connector == self.connector {
                batches
                    .entry(p.recall_key.clone().unwrap_or_default())
                    .or_default()
                    .push(p);
            }
        }
        for (key, batch) in batches {
            let recalls: Vec<co::Recall> = batch
                .iter()
                .filter_map(|p| match &p.status {
                    PlacementStatus::RecallPending { reason } => Some(co::Recall {
                        account_id: p.account_id.clone(),
                        agency_account_id: p.agency_account_id.clone(),
                        reason: recall_reason_wit(*reason),
                    }),
                    _ => None,
                })
                .collect();
            let receipts = match plugin.recall_accounts(&key, &recalls).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return Err(super::connector_error(Ok(e))),
                Err(e) => return Err(super::connector_error(Err(e))),
            };
            let now = ctx.clock.now();
            let by_account: BTreeMap<&str, &co::RecallReceipt> = receipts
                .iter()
                .map(|r| (r.account_id.as_str(), r))
                .collect();
            let done = ctx.db.transact(|tx| {
                let mut done = 0;
                for p in &batch {
                    let Some(mut p) = tx.get::<Placement>(&p.id)? else {
                        continue;
                    };
                    let PlacementStatus::RecallPending { reason } = p.status.clone() else {
                        continue;
                    };
                    match by_account.get(p.account_id.as_str()) {
                        Some(r) if r.accepted => {
                            p.status = PlacementStatus::Recalled { reason };
                            p.log(now, "recalled", r.message.clone());
                            tracing::info!(
                                target: "billd::audit", action = "collections-recall",
                                connector = %self.connector, account = %p.account_id,
                                reason = reason.name(), "account recalled from the agency"
                            );
                            done += 1;
                        }
                        answer => {
                            let msg = answer
                                .and_then(|r| r.message.clone())
                                .unwrap_or_else(|| "no answer for this account".into());
                            p.status = PlacementStatus::Placed;
                            p.recall_key = None;
                            p.log(now, "recall-refused", Some(msg.clone()));
                            self.task(
                                tx,
                                now,
                                "collections-recall-refused",
                                format!("collections/{}/recall-refused/{}", self.connector, p.id),
                                format!(
                                    "agency connector {} did not take back account {}: {msg}",
                                    self.connector, p.account_id
                                ),
                            )?;
                        }
                    }
                    tx.put(&p)?;
                }
                Ok::<_, StoreError>(done)
            })?;
            ctx.db.flush()?;
            counts.recalled += done;
        }
        Ok(())
    }

    // ---- 3. placements -----------------------------------------------------

    async fn placements(
        &self,
        ctx: &RunContext,
        plugin: &LoadedPlugin,
        counts: &mut CollectionsCounts,
    ) -> Result<(), JobError> {
        // Recorded, never confirmed: send those batches again, as they were.
        let mut pending: BTreeMap<String, Vec<Placement>> = BTreeMap::new();
        for p in collections::with_status(&ctx.db, "pending")? {
            if p.connector == self.connector {
                pending.entry(p.batch_key.clone()).or_default().push(p);
            }
        }
        for (key, batch) in pending {
            self.send(ctx, plugin, &key, batch, counts).await?;
        }
        let today = self.today(ctx);
        let oldest = today - chrono::Days::new(self.gates.min_days_since_first_statement as u64);
        let mut after: Option<String> = None;
        let mut batch = Vec::new();
        loop {
            let page = account::owing_since(&ctx.db, oldest, after.as_deref(), SCAN_PAGE)?;
            for a in &page.items {
                if let Some(p) = self.candidate(ctx, &a.id, today, counts)? {
                    batch.push(p);
                    if batch.len() == self.batch_size {
                        self.record_and_send(ctx, plugin, std::mem::take(&mut batch), counts)
                            .await?;
                    }
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        if !batch.is_empty() {
            self.record_and_send(ctx, plugin, batch, counts).await?;
        }
        Ok(())
    }

    /// The placement of `account` if it passes every gate today.
    fn candidate(
        &self,
        ctx: &RunContext,
        account: &str,
        today: NaiveDate,
        counts: &mut CollectionsCounts,
    ) -> Result<Option<Placement>, JobError> {
        let db = &ctx.db;
        let entries = account::entries(db, account)?;
        let billable = dunning::billable(&entries);
        let notices = notices_of(db, account)?;
        let found = hold::check(db, account, &entries, today)?;
        hold::record_breaks(db, &found)?;
        let placed = collections::placements_of(db, account)?
            .iter()
            .any(|p| p.status.is_open());
        let facts = AccountFacts {
            patient_cents: billable.as_ref().map_or(0, |b| b.cents),
            insurance_pending: billable.as_ref().err().copied().unwrap_or(false),
            first_statement: first_statement_date(&notices),
            final_notice: final_notice_date(&notices),
            blocker: found.blocker,
            placed,
        };
        if collections::qualifies(&self.gates, &facts, today).is_err() {
            return Ok(None);
        }
        let Ok(b) = billable else { return Ok(None) };
        // The agency's file needs a postal address (the placement itself
        // is built from the record when it is sent).
        let addressed = db
            .get::<Patient>(account)?
            .is_some_and(|p| p.address.is_some());
        if !addressed {
            counts.no_address += 1;
            let now = ctx.clock.now();
            db.transact(|tx| {
                self.task(
                    tx,
                    now,
                    "collections-no-address",
                    format!("collections/{}/no-address/{account}", self.connector),
                    format!(
                        "account {account} qualifies for collections but the patient has no postal address on file"
                    ),
                )
            })?;
            return Ok(None);
        }
        let mut p = Placement {
            id: Placement::id_for(account, b.since),
            account_id: account.to_string(),
            since: b.since,
            balance_cents: b.cents,
            connector: self.connector.clone(),
            batch_key: String::new(),
            recall_key: None,
            agency_account_id: None,
            status: PlacementStatus::Pending,
            collected_cents: 0,
            agency_fee_cents: 0,
            events: Vec::new(),
        };
        if db.get::<Placement>(&p.id)?.is_some() {
            // This balance was placed (and came back) already.
            return Ok(None);
        }
        p.log(
            ctx.clock.now(),
            "recorded",
            Some(format!("{} cents", b.cents)),
        );
        Ok(Some(p))
    }

    async fn record_and_send(
        &self,
        ctx: &RunContext,
        plugin: &LoadedPlugin,
        batch: Vec<Placement>,
        counts: &mut CollectionsCounts,
    ) -> Result<(), JobError> {
        let ids: Vec<&str> = batch.iter().map(|p| p.id.as_str()).collect();
        let key = ctx.scoped_effect_key(&format!("place/{}", derived_id("", &ids)));
        let placements: Vec<Placement> = batch
            .into_iter()
            .map(|mut p| {
                p.batch_key = key.clone();
                p
            })
            .collect();
        ctx.db.transact(|tx| {
            for p in &placements {
                tx.insert_new(p)?;
            }
            Ok::<_, StoreError>(())
        })?;
        // Durable before the agency hears of it.
        ctx.db.flush()?;
        self.send(ctx, plugin, &key, placements, counts).await
    }

    /// Sends recorded placements as one batch and records the receipts.
    async fn send(
        &self,
        ctx: &RunContext,
        plugin: &LoadedPlugin,
        key: &str,
        batch: Vec<Placement>,
        counts: &mut CollectionsCounts,
    ) -> Result<(), JobError> {
        // The wire form is rebuilt from the record and the patient on file.
        let mut wire = Vec::with_capacity(batch.len());
        for p in &batch {
            if let Some(w) = self.wire_of(&ctx.db, p)? {
                wire.push(w);
            }
        }
        let receipts = match plugin.place_accounts(key, &wire).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(super::connector_error(Ok(e))),
            Err(e) => return Err(super::connector_error(Err(e))),
        };
        let now = ctx.clock.now();
        let by_account: BTreeMap<&str, &co::PlacementReceipt> = receipts
            .iter()
            .map(|r| (r.account_id.as_str(), r))
            .collect();
        let (placed, refused) = ctx.db.transact(|tx| {
            let (mut placed, mut refused) = (0, 0);
            for p in &batch {
                let Some(mut p) = tx.get::<Placement>(&p.id)? else {
                    continue;
                };
                if p.status != PlacementStatus::Pending {
                    continue;
                }
                match by_account.get(p.account_id.as_str()) {
                    Some(r) if r.accepted => {
                        p.status = PlacementStatus::Placed;
                        p.agency_account_id = r.agency_account_id.clone();
                        p.log(now, "placed", r.message.clone());
                        tracing::info!(
                            target: "billd::audit", action = "collections-placement",
                            connector = %self.connector, account = %p.account_id,
                            balance_cents = p.balance_cents, "account placed with the agency"
                        );
                        placed += 1;
                    }
                    answer => {
                        let msg = answer
                            .and_then(|r| r.message.clone())
                            .unwrap_or_else(|| "no receipt for this account".into());
                        p.status = PlacementStatus::Refused {
                            message: msg.clone(),
                        };
                        p.log(now, "refused", Some(msg.clone()));
                        self.task(
                            tx,
                            now,
                            "collections-refused",
                            format!("collections/{}/refused/{}", self.connector, p.id),
                            format!(
                                "agency connector {} refused account {}: {msg}",
                                self.connector, p.account_id
                            ),
                        )?;
                        refused += 1;
                    }
                }
                tx.put(&p)?;
            }
            Ok::<_, StoreError>((placed, refused))
        })?;
        ctx.db.flush()?;
        counts.placed += placed;
        counts.refused += refused;
        Ok(())
    }

    /// The contract's placement for a recorded one.
    fn wire_of(&self, db: &Db, p: &Placement) -> Result<Option<co::Placement>, StoreError> {
        let entries = account::entries(db, &p.account_id)?;
        let notices = notices_of(db, &p.account_id)?;
        let first = first_statement_date(&notices)
            .map_or(p.since, |t| t.with_timezone(&self.timezone).date_naive());
        let terms = PlacementTerms {
            balance_cents: p.balance_cents,
            first_statement: first,
            last_payment: last_payment(&entries),
            services: services(db, &entries)?.unwrap_or((p.since, p.since)),
        };
        Ok(db
            .get::<Patient>(&p.account_id)?
            .and_then(|pt| mapping::placement(&pt, &terms)))
    }
}

/// The placement with `connector` an update about `account` is for: its
/// newest one the agency took (open, or recalled or closed since: money
/// the agency collected before a recall still posts), read again inside
/// the transaction so the update commits only if it is still as read.
fn placement_for_update(
    db: &Db,
    tx: &mut Tx<'_>,
    connector: &str,
    account: &str,
) -> Result<Option<Placement>, StoreError> {
    for listed in collections::placements_of(db, account)?.into_iter().rev() {
        if listed.connector != connector {
            continue;
        }
        if let Some(p) = tx.get::<Placement>(&listed.id)?
            && !matches!(p.status, PlacementStatus::Refused { .. })
        {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// The day of the patient's latest payment.
fn last_payment(entries: &[LedgerEntry]) -> Option<NaiveDate> {
    entries
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                LedgerKind::PatientPayment | LedgerKind::AgencyPayment
            )
        })
        .map(|e| e.posted_at.date_naive())
        .max()
}

/// The first and last day of service of the claims on the ledger.
fn services(
    db: &Db,
    entries: &[LedgerEntry],
) -> Result<Option<(NaiveDate, NaiveDate)>, StoreError> {
    let mut claims: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.claim_id.as_deref())
        .collect();
    claims.sort_unstable();
    claims.dedup();
    let mut span: Option<(NaiveDate, NaiveDate)> = None;
    for id in claims {
        if let Some(c) = db.get::<Claim>(id)? {
            for l in &c.lines {
                let d = l.service_date;
                span = Some(span.map_or((d, d), |(a, b)| (a.min(d), b.max(d))));
            }
        }
    }
    Ok(span)
}

fn recall_reason_wit(r: RecallReason) -> co::RecallReason {
    match r {
        RecallReason::PaidInFull => co::RecallReason::PaidInFull,
        RecallReason::Disputed => co::RecallReason::Disputed,
        RecallReason::Bankruptcy => co::RecallReason::Bankruptcy,
        RecallReason::FinancialAssistance => co::RecallReason::FinancialAssistance,
        RecallReason::PracticeRequest => co::RecallReason::PracticeRequest,
    }
}

#[cfg(test)]
#[path = "collections_connector_tests.rs"]
mod connector_tests;

impl JobKind for CollectionsJob {
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
        Box::pin(async move { self.cycle(ctx).await.map(|_| ()) })
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }
}

#[cfg(test)]
mod tests;
