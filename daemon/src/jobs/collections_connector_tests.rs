//! Tests of the collections job with two agencies: a job works only the
//! placements of its own connector.

use super::*;
use crate::clock::ManualClock;
use crate::plugin::PluginSpec;
use crate::plugin::tests::{dist, test_host};
use chrono::TimeZone;
use tokio_util::sync::CancellationToken;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 14, 0, 0).unwrap()
}

/// A placement with `connector` of an account that owes nothing now (so
/// it is due a paid-in-full recall).
fn paid_placement(connector: &str) -> Placement {
    Placement {
        id: Placement::id_for("P1", NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()),
        account_id: "P1".into(),
        since: NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
        balance_cents: 6000,
        connector: connector.into(),
        batch_key: "k".into(),
        recall_key: None,
        agency_account_id: Some("AG1".into()),
        status: PlacementStatus::Placed,
        collected_cents: 0,
        agency_fee_cents: 0,
        events: Vec::new(),
    }
}

#[tokio::test]
async fn a_run_leaves_another_agencys_placements_alone() {
    let t = test_host(crate::plugin::PluginTrust::default());
    let registry = Arc::new(
        PluginRegistry::load(
            Arc::new(t.host),
            &[PluginSpec::unpinned(
                "echo-collections",
                &dist("echo-collections"),
            )],
        )
        .unwrap(),
    );
    let db = Db::in_memory();
    let clock = Arc::new(ManualClock::new(now()));
    let mut services =
        super::super::registry::test_services(&db, clock.clone(), &std::env::temp_dir());
    services.plugins = Some(registry);
    let params = CollectionsParams {
        connector: "echo-collections".into(),
        min_balance_cents: None,
        min_days_since_first_statement: None,
        min_days_since_final_notice: None,
        batch_size: None,
        max_attempts: Some(1),
        retry_delay: None,
    };
    let setup = JobSetup {
        name: "collections".into(),
        timezone: chrono_tz::UTC,
    };
    let job = CollectionsJob::new(params, &setup, &services).unwrap();
    let other = paid_placement("second-agency");
    db.transact(|tx| tx.put(&other)).unwrap();
    let ctx = RunContext {
        db: db.clone(),
        clock,
        job: "collections".into(),
        run_id: "r1".into(),
        occurrence: None,
        cancel: CancellationToken::new(),
    };
    let counts = job.cycle(&ctx).await.unwrap();
    assert_eq!(counts, CollectionsCounts::default());
    let after = db.get::<Placement>(&other.id).unwrap().unwrap();
    assert_eq!(
        after.status,
        PlacementStatus::Placed,
        "the second agency's job recalls its own placements"
    );
    assert_eq!(after.recall_key, None);
}
