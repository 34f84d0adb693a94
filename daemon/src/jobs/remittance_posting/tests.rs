//! The inbox: good files post and move to `posted`, bad ones move whole to
//! `quarantine` with a task, and a second run posts nothing twice.

use super::*;
use crate::clock::ManualClock;
use crate::domain::Task;
use crate::domain::account::LedgerEntry;
use crate::domain::posting::{Posting, PostingState};
use crate::jobs::runner::Runner;
use crate::jobs::{RunOutcome, RunTrigger};
use crate::store::Db;
use chrono::{TimeZone, Utc};
use tokio_util::sync::CancellationToken;

fn services(db: &Db, clock: Arc<ManualClock>, base: &Path) -> Services {
    crate::jobs::registry::test_services(db, clock, base)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/x12/835")
            .join(name),
    )
    .unwrap()
}

async fn run(db: &Db, clock: Arc<ManualClock>, job: Arc<RemittancePostingJob>) -> RunOutcome {
    let runner = Runner::new(db.clone(), clock, std::time::Duration::from_secs(1));
    let run = runner.begin("remits", RunTrigger::Manual, None).unwrap();
    runner
        .execute(&run.id, job, 1, CancellationToken::new())
        .await
        .unwrap()
        .outcome
}

#[tokio::test]
async fn the_inbox_posts_good_files_and_quarantines_bad_ones_whole() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let good = fixture("lfh__managed-care.835");
    std::fs::write(inbox.join("a-good.835"), &good).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    let bad = text.replacen("BPR*I*945.00*", "BPR*I*945.01*", 1);
    std::fs::write(inbox.join("b-unbalanced.835"), &bad).unwrap();
    std::fs::write(inbox.join("c-junk.835"), b"not x12").unwrap();
    let db = Db::in_memory();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 14, 0, 0).unwrap(),
    ));
    crate::posting::tests::submitted_claim(&db, "5554555444", 0, 80_000);
    let params = RemittancePostingParams {
        inbox: Some("inbox".into()),
        ..RemittancePostingParams::default()
    };
    let setup = JobSetup {
        name: "remits".into(),
        timezone: chrono_tz::UTC,
    };
    let job = Arc::new(
        RemittancePostingJob::new(params, &setup, &services(&db, clock.clone(), dir.path()))
            .unwrap(),
    );
    assert_eq!(
        run(&db, clock.clone(), job.clone()).await,
        RunOutcome::Succeeded
    );
    let names = |d: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(inbox.join(d))
            .map(|r| {
                r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    assert_eq!(names("posted"), ["a-good.835"]);
    assert_eq!(names("quarantine"), ["b-unbalanced.835", "c-junk.835"]);
    // Moved whole: the bytes are the file's.
    assert_eq!(
        std::fs::read(inbox.join("quarantine/b-unbalanced.835")).unwrap(),
        bad.as_bytes()
    );
    let postings: Vec<Posting> = db.scan("").unwrap();
    assert_eq!(postings.len(), 2);
    assert_eq!(
        postings
            .iter()
            .filter(|p| p.state == PostingState::Unapplied)
            .count(),
        1
    );
    let tasks: Vec<Task> = db.scan("").unwrap();
    let file_tasks: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.kind == "quarantined-835" && t.subject.starts_with("835 file"))
        .collect();
    assert_eq!(file_tasks.len(), 2, "{tasks:?}");
    let ledger: Vec<LedgerEntry> = db.scan("").unwrap();
    // The same file dropped in again posts nothing twice.
    std::fs::write(inbox.join("a-good-again.835"), &good).unwrap();
    clock.advance(chrono::Duration::minutes(5));
    assert_eq!(run(&db, clock, job).await, RunOutcome::Succeeded);
    assert_eq!(db.scan::<LedgerEntry>("").unwrap(), ledger);
    assert_eq!(db.scan::<Posting>("").unwrap().len(), 2);
    assert_eq!(names("posted"), ["a-good-again.835", "a-good.835"]);
}

#[test]
fn params_need_an_inbox_or_a_connector_and_give_modes() {
    let db = Db::in_memory();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let setup = JobSetup {
        name: "remits".into(),
        timezone: chrono_tz::UTC,
    };
    let s = services(&db, clock, Path::new("/"));
    let err =
        RemittancePostingJob::new(RemittancePostingParams::default(), &setup, &s).unwrap_err();
    assert_eq!(err.key, "inbox");
    let p: RemittancePostingParams = crate::jobs::registry::parse_params(
        &toml::from_str(
            "inbox = \"in\"\nmode = \"review\"\nautomatic_payers = [\"A\"]\nreview_payers = [\"B\"]",
        )
        .unwrap(),
    )
    .unwrap();
    let m = p.modes();
    assert_eq!(m.mode_for("A"), PostingMode::Automatic);
    assert_eq!(m.mode_for("B"), PostingMode::Review);
    assert_eq!(m.mode_for("C"), PostingMode::Review);
    let bad = check_params::<RemittancePostingParams>(
        "remittance-posting",
        &toml::from_str("inbox = \"in\"\nmode = \"sometimes\"").unwrap(),
    );
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].param.as_deref(), Some("mode"));
}
