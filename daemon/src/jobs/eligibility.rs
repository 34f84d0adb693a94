//! The `eligibility` job: the overnight sweep that checks coverage for the
//! patients on the schedule before they arrive.
//!
//! A run takes the appointments in its window (by default the next two
//! business days in the job's timezone, business days per the configured
//! holidays), and for each booked patient every coverage in force on the
//! visit's date that was not verified within the freshness window. One 270
//! per coverage goes through the configured payer connector, at most
//! `rate_per_second` of them. The verdict (active, inactive, not found, or
//! the payer's refusal with its AAA code; plan, copay, deductible,
//! coinsurance) is stored on the coverage, and each problem becomes a
//! biller task: inactive, not found, a member id or name/birth-date
//! mismatch, or a refusal. A connector failing after the runner's retries
//! raises the runner's one task per job and cause.
//!
//! Params: `connector` (required, a payer plugin's name),
//! `window_business_days` (default 2), `holidays` (dates, `"2026-12-25"`),
//! `fresh_hours` (default 24), `service_types` (default `["30"]`),
//! `rate_per_second` (default 10).
//! `max_attempts` and `retry_delay` (default 5 and `"2s"`) tune the runner's
//! retries of a failing item.

use chrono::NaiveDate;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::Arc;

use super::business_days::{Calendar, local_midnight};
use super::registry::{BuildError, JobSetup, KindEntry, Services, check_params, parse_params};
use super::{BoxFuture, JobError, JobKind, RunContext};
use crate::domain::appointment::starting_between;
use crate::domain::patient::coverages_of_patient;
use crate::domain::practice::Practice;
use crate::domain::{
    AppointmentStatus, Coverage, EligibilityStatus, EligibilityVerdict, NewTask, Patient, Priority,
};
use crate::mapping;
use crate::plugin::PluginRegistry;
use crate::plugin::bindings::types::ConnectorError;

/// `[job.params]` of an eligibility job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EligibilityParams {
    /// The payer connector plugin to ask.
    pub connector: String,
    /// How many business days ahead to look (default 2).
    #[serde(default)]
    pub window_business_days: Option<u32>,
    /// Days that are not business days besides weekends (`YYYY-MM-DD`).
    #[serde(default)]
    pub holidays: Vec<String>,
    /// A coverage verified this many hours ago or less is not asked again
    /// (default 24).
    #[serde(default)]
    pub fresh_hours: Option<u32>,
    /// X12 service type codes to ask about (default `["30"]`).
    #[serde(default)]
    pub service_types: Vec<String>,
    /// At most this many inquiries a second (default 10).
    #[serde(default)]
    pub rate_per_second: Option<u32>,
    /// Attempts per work item before it fails (default 5).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Delay before the first retry, doubling after (default `"2s"`).
    #[serde(default)]
    pub retry_delay: Option<String>,
}

/// The eligibility kind in the job registry.
pub const KIND: KindEntry = KindEntry {
    name: "eligibility",
    check: check_params::<EligibilityParams>,
    build: |params, setup, services| {
        let params = parse_params::<EligibilityParams>(params)?;
        Ok(Arc::new(EligibilityJob::new(params, setup, services)?))
    },
};

/// AAA reject reasons meaning the payer has no such member.
const NOT_FOUND_CODES: [&str; 2] = ["67", "75"];
/// Member fields a payer may say do not match its records.
const MEMBER_FIELDS: [&str; 2] = ["subscriber", "dependent"];
/// AAA reject reasons meaning what billd sent does not match the payer's
/// record of the member (id, name, birth date).
const MISMATCH_CODES: [&str; 8] = ["58", "64", "65", "68", "71", "72", "73", "76"];

/// The verdict of an inquiry the payer refused, with what it named.
fn refused(
    now: chrono::DateTime<chrono::Utc>,
    date: NaiveDate,
    status: EligibilityStatus,
    problem: String,
) -> EligibilityVerdict {
    EligibilityVerdict {
        checked_at: now,
        active: false,
        plan: None,
        problems: vec![problem],
        status: Some(status),
        service_date: Some(date),
        copay_cents: None,
        deductible_cents: None,
        deductible_remaining_cents: None,
        coinsurance_basis_points: None,
        payer_reference: None,
    }
}

/// A configured eligibility job.
pub struct EligibilityJob {
    connector: String,
    plugins: Option<Arc<PluginRegistry>>,
    practice: Practice,
    timezone: chrono_tz::Tz,
    window: u32,
    calendar: Calendar,
    fresh: chrono::Duration,
    service_types: Vec<String>,
    limiter: governor::DefaultDirectRateLimiter,
    retry: super::RetryPolicy,
}

impl std::fmt::Debug for EligibilityJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EligibilityJob")
            .field("connector", &self.connector)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl EligibilityJob {
    /// Builds the job from its params.
    pub fn new(
        params: EligibilityParams,
        setup: &JobSetup,
        services: &Services,
    ) -> Result<Self, BuildError> {
        let bad = |key: &str, reason: String| BuildError {
            key: key.into(),
            reason,
        };
        if let Some(p) = &services.plugins
            && p.get(&params.connector).is_none()
        {
            return Err(bad(
                "connector",
                format!("no plugin named `{}` is configured", params.connector),
            ));
        }
        let mut holidays = Vec::new();
        for h in &params.holidays {
            holidays.push(
                NaiveDate::parse_from_str(h, "%Y-%m-%d")
                    .map_err(|_| bad("holidays", format!("`{h}` is not a date (YYYY-MM-DD)")))?,
            );
        }
        let window = params.window_business_days.unwrap_or(2);
        if !(1..=30).contains(&window) {
            return Err(bad("window_business_days", "must be 1 to 30".into()));
        }
        let rate = params.rate_per_second.unwrap_or(10);
        let rate = NonZeroU32::new(rate)
            .ok_or_else(|| bad("rate_per_second", "must be at least 1".into()))?;
        let service_types = if params.service_types.is_empty() {
            vec!["30".to_string()]
        } else {
            params.service_types
        };
        let retry =
            super::RetryPolicy::from_params(params.max_attempts, params.retry_delay.as_deref())?;
        Ok(EligibilityJob {
            retry,
            connector: params.connector,
            plugins: services.plugins.clone(),
            practice: services.practice.clone(),
            timezone: setup.timezone,
            window,
            calendar: Calendar::new(holidays),
            fresh: chrono::Duration::hours(params.fresh_hours.unwrap_or(24).into()),
            service_types,
            limiter: governor::RateLimiter::direct(governor::Quota::per_second(rate)),
        })
    }

    /// Whether `c`'s verdict is recent enough to skip asking again.
    fn is_fresh(&self, c: &Coverage, now: chrono::DateTime<chrono::Utc>) -> bool {
        c.verdict.as_ref().is_some_and(|v| {
            v.status != Some(EligibilityStatus::Error) && now - v.checked_at < self.fresh
        })
    }

    /// The items of a run: `coverage@date` for every coverage to check.
    fn items(&self, ctx: &RunContext) -> Result<Vec<String>, JobError> {
        let now = ctx.clock.now();
        let (from, to) = self.calendar.window_ahead(now, self.timezone, self.window);
        let mut by_patient: std::collections::BTreeMap<String, NaiveDate> = Default::default();
        for a in starting_between(&ctx.db, from, to)? {
            if matches!(
                a.status,
                AppointmentStatus::Booked | AppointmentStatus::Arrived
            ) {
                let d = a.start.with_timezone(&self.timezone).date_naive();
                by_patient
                    .entry(a.patient_id)
                    .and_modify(|e| *e = (*e).min(d))
                    .or_insert(d);
            }
        }
        let mut items = BTreeSet::new();
        for (patient, date) in by_patient {
            for c in coverages_of_patient(&ctx.db, &patient)? {
                let in_force =
                    c.terminated.is_none_or(|t| t >= date) && c.effective.is_none_or(|e| e <= date);
                if in_force && !self.is_fresh(&c, now) {
                    items.insert(format!("{}@{date}", c.id));
                }
            }
        }
        Ok(items.into_iter().collect())
    }

    async fn check(&self, ctx: &RunContext, item: &str) -> Result<(), JobError> {
        let (coverage_id, date) = item
            .rsplit_once('@')
            .and_then(|(c, d)| Some((c, NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()?)))
            .ok_or_else(|| JobError::Permanent(format!("malformed item {item}")))?;
        let Some(coverage) = ctx.db.get::<Coverage>(coverage_id)? else {
            // Removed since the run listed it: nothing to check.
            return Ok(());
        };
        let patient = ctx
            .db
            .get::<Patient>(&coverage.patient_id)?
            .ok_or_else(|| {
                JobError::Permanent(format!(
                    "coverage {coverage_id}: patient {} is not on record",
                    coverage.patient_id
                ))
            })?;
        let plugin = super::connector(&self.plugins, &self.connector, "payer")?;
        let provider = mapping::provider(
            &self.practice.npi,
            &self.practice.name,
            Some(&self.practice.tax_id),
        );
        let inquiry =
            mapping::eligibility_inquiry(&patient, &coverage, &provider, date, &self.service_types);
        self.limiter.until_ready().await;
        let answer = plugin
            .check_eligibility(&ctx.effect_key(item), &inquiry)
            .await;
        let now = ctx.clock.now();
        let verdict = match answer {
            Ok(Ok(e)) => mapping::verdict_from(&e, now, date),
            Ok(Err(ConnectorError::Rejected(r))) => {
                let status = if NOT_FOUND_CODES.contains(&r.code.as_str()) {
                    EligibilityStatus::NotFound
                } else {
                    EligibilityStatus::Error
                };
                refused(now, date, status, format!("AAA {}", r.code))
            }
            // The payer named a field of the member it does not accept.
            Ok(Err(ConnectorError::InvalidRequest(f)))
                if MEMBER_FIELDS.iter().any(|m| f.field.starts_with(m)) =>
            {
                refused(now, date, EligibilityStatus::Error, f.field)
            }
            Ok(Err(e)) => return Err(super::connector_error(Ok(e))),
            Err(e) => return Err(super::connector_error(Err(e))),
        };
        let task = self.problem_task(&coverage, &verdict, date);
        ctx.db.transact(|tx| {
            let Some(mut c) = tx.get::<Coverage>(coverage_id)? else {
                return Ok(());
            };
            c.verdict = Some(verdict.clone());
            tx.put(&c)?;
            if let Some(t) = &task {
                crate::domain::task::raise_in(tx, now, t)?;
            }
            Ok::<_, crate::store::StoreError>(())
        })?;
        tracing::info!(
            job = %ctx.job,
            coverage = coverage_id,
            status = verdict.status.map_or("-", |s| s.name()),
            "eligibility checked"
        );
        Ok(())
    }

    /// The biller task a verdict calls for, if any.
    fn problem_task(
        &self,
        c: &Coverage,
        v: &EligibilityVerdict,
        date: NaiveDate,
    ) -> Option<NewTask> {
        let problem = v.problems.first().map(String::as_str).unwrap_or("");
        let aaa = problem.strip_prefix("AAA ");
        let named = |what: &str| {
            if problem.is_empty() {
                what.to_string()
            } else {
                format!("{what} ({problem})")
            }
        };
        let (kind, what) = match v.status? {
            EligibilityStatus::Active => return None,
            EligibilityStatus::Inactive => {
                ("eligibility-inactive", "coverage inactive".to_string())
            }
            EligibilityStatus::NotFound => ("eligibility-not-found", named("member not found")),
            EligibilityStatus::Error
                if aaa.is_some_and(|c| MISMATCH_CODES.contains(&c))
                    || MEMBER_FIELDS.iter().any(|m| problem.starts_with(m)) =>
            {
                (
                    "eligibility-mismatch",
                    named("member id, name or birth date does not match the payer's"),
                )
            }
            EligibilityStatus::Error => (
                "eligibility-rejected",
                named("the payer refused the inquiry"),
            ),
        };
        Some(NewTask {
            kind: kind.into(),
            subject: format!(
                "coverage {} of patient {} (payer {}): {what}, visit {date}",
                c.id, c.patient_id, c.payer_id
            ),
            priority: Priority::High,
            due: Some(local_midnight(date, self.timezone)),
            assignee: None,
            payer: None,
            dedupe_key: format!("{kind}:{}:{date}", c.id),
        })
    }
}

impl JobKind for EligibilityJob {
    fn effects_outside(&self) -> bool {
        // Inquiries only ask; what they learn is written in one
        // transaction with the item's outcome coming after it.
        false
    }

    fn retry_policy(&self) -> super::RetryPolicy {
        self.retry
    }

    fn kind(&self) -> &'static str {
        "eligibility"
    }

    fn list_items<'a>(
        &'a self,
        ctx: &'a RunContext,
    ) -> BoxFuture<'a, Result<Vec<String>, JobError>> {
        Box::pin(async move { self.items(ctx) })
    }

    fn work_item<'a>(
        &'a self,
        ctx: &'a RunContext,
        item: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.check(ctx, item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::import;
    use crate::intake::csv_rows::CsvKind;

    /// An app (clock Monday 2026-03-02 09:00 in New York) with five
    /// patients, their coverages and appointments from CSV.
    fn setup() -> (crate::app::App, EligibilityJob, RunContext) {
        let app = crate::app::testing::app("");
        let patients = "id,last_name,first_name,birth_date,sex\n\
            P1,A,A,1980-01-01,F\nP2,B,B,1980-01-01,F\nP3,C,C,1980-01-01,F\n\
            P4,D,D,1980-01-01,F\nP5,E,E,1980-01-01,F\n";
        let coverages = "id,patient_id,payer_id,payer_name,member_id,relationship,priority,terminated\n\
            C1,P1,60054,Aetna,W1,self,primary,\nC1B,P1,87726,UHC,U1,self,secondary,\n\
            C2,P2,60054,Aetna,W2,self,primary,\nC3,P3,60054,Aetna,W3,self,primary,2026-03-01\n\
            C4,P4,60054,Aetna,W4,self,primary,\nC5,P5,60054,Aetna,W5,self,primary,\n";
        // P1 tomorrow (twice), P2 Wednesday, P3 tomorrow but terminated,
        // P4 cancelled, P5 Thursday: outside two business days.
        let appointments = "id,patient_id,provider_npi,start,status\n\
            A1,P1,1234567893,2026-03-03 09:00,booked\nA1B,P1,1234567893,2026-03-04 09:00,booked\n\
            A2,P2,1234567893,2026-03-04 16:00,booked\nA3,P3,1234567893,2026-03-03 10:00,booked\n\
            A4,P4,1234567893,2026-03-03 11:00,cancelled\nA5,P5,1234567893,2026-03-05 08:00,booked\n";
        import::csv(&app, CsvKind::Patients, "p.csv", patients).unwrap();
        import::csv(&app, CsvKind::Coverages, "c.csv", coverages).unwrap();
        import::csv(&app, CsvKind::Appointments, "a.csv", appointments).unwrap();
        let clock: crate::clock::SharedClock = Arc::new(crate::clock::ManualClock::new(
            crate::app::testing::START.parse().unwrap(),
        ));
        let mailer = Arc::new(crate::notify::mail::Mailer::outbox(
            "b <b@example.invalid>".parse().unwrap(),
            std::path::Path::new("/nonexistent"),
        ));
        let services =
            crate::jobset::services(app.config(), app.db().clone(), clock.clone(), mailer, None);
        let setup = JobSetup {
            name: "eligibility".into(),
            timezone: chrono_tz::America::New_York,
        };
        let params: EligibilityParams =
            parse_params(&"connector = 'payer'".parse::<toml::Table>().unwrap()).unwrap();
        let job = EligibilityJob::new(params, &setup, &services).unwrap();
        let ctx = RunContext {
            db: app.db().clone(),
            clock,
            job: "eligibility".into(),
            run_id: "eligibility/1".into(),
            occurrence: None,
            cancel: tokio_util::sync::CancellationToken::new(),
        };
        (app, job, ctx)
    }

    #[test]
    fn a_run_checks_every_coverage_in_force_for_the_next_business_days() {
        let (_app, job, ctx) = setup();
        assert_eq!(
            job.items(&ctx).unwrap(),
            ["C1@2026-03-03", "C1B@2026-03-03", "C2@2026-03-04"]
        );
    }

    #[test]
    fn fresh_verdicts_are_not_asked_again_but_refusals_are() {
        let (app, job, ctx) = setup();
        let now = ctx.clock.now();
        let verdict = |status| EligibilityVerdict {
            checked_at: now - chrono::Duration::hours(2),
            active: status == EligibilityStatus::Active,
            plan: None,
            problems: vec![],
            status: Some(status),
            service_date: None,
            copay_cents: None,
            deductible_cents: None,
            deductible_remaining_cents: None,
            coinsurance_basis_points: None,
            payer_reference: None,
        };
        for (id, status) in [
            ("C1", EligibilityStatus::Active),
            ("C2", EligibilityStatus::Error),
        ] {
            let mut c = app.db().get::<Coverage>(id).unwrap().unwrap();
            c.verdict = Some(verdict(status));
            app.db().put(&c).unwrap();
        }
        assert_eq!(
            job.items(&ctx).unwrap(),
            ["C1B@2026-03-03", "C2@2026-03-04"]
        );
    }

    #[test]
    fn bad_params_name_the_param() {
        let table = |t: &str| t.parse::<toml::Table>().unwrap();
        let problems = check_params::<EligibilityParams>("eligibility", &table("conector = 'x'"));
        assert!(
            problems
                .iter()
                .any(|p| p.param.as_deref() == Some("conector"))
        );
        let (app, _, _) = setup();
        let services = crate::jobset::services(
            app.config(),
            app.db().clone(),
            Arc::new(crate::clock::SystemClock),
            Arc::new(crate::notify::mail::Mailer::outbox(
                "b <b@example.invalid>".parse().unwrap(),
                std::path::Path::new("/nonexistent"),
            )),
            None,
        );
        let setup = JobSetup {
            name: "e".into(),
            timezone: chrono_tz::UTC,
        };
        let p: EligibilityParams =
            parse_params(&table("connector = 'x'\nholidays = ['2026-02-30']")).unwrap();
        let e = EligibilityJob::new(p, &setup, &services).unwrap_err();
        assert_eq!(e.key, "holidays");
    }
}
