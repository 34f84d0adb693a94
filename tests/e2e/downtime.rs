//! Downtime across scheduled instants: on restart a `run-once` job runs
//! exactly one catch-up and a `skip` job none; both show in `jobs history`.

use billd_e2e::{Scratch, base_config, stderr, stdout, wait_until};
use chrono::{DateTime, Utc};
use std::time::Duration;

fn history(s: &Scratch, job: &str) -> Vec<serde_json::Value> {
    let out = s.run(&["jobs", "history", job, "--json", "--limit", "1000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("history JSON")
}

fn at(v: &serde_json::Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v["scheduled_for"].as_str().expect("scheduled_for"))
        .expect("rfc3339")
        .with_timezone(&Utc)
}

#[test]
fn run_once_catches_up_once_and_skip_runs_none() {
    let s = Scratch::new();
    s.write_config(&format!(
        r#"{}
[[billers]]
name = "dana"
email = "dana@example.org"
receives = ["digest"]

[[job]]
name = "catchup"
kind = "digest"
schedule = "*/2 * * * * *"
misfire = "run-once"
catch_up_window = "1h"

[[job]]
name = "skipper"
kind = "digest"
schedule = "*/2 * * * * *"
misfire = "skip"
"#,
        base_config("outbox_dir = \"outbox\"")
    ));
    s.init();
    let mut d = s.start_daemon("first.log");
    wait_until(Duration::from_secs(60), "the first daemon to start", || {
        d.log_text().contains("billd started")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        d.stop(),
        Some(0),
        "first daemon did not stop cleanly:\n{}",
        d.log_text()
    );
    let stopped = Utc::now();
    // Down for at least two scheduled instants of each job.
    std::thread::sleep(Duration::from_secs(5));
    let restarted = Utc::now();
    let mut d = s.start_daemon("second.log");
    wait_until(
        Duration::from_secs(60),
        "the second daemon to start",
        || d.log_text().contains("billd started"),
    );
    // The scheduler reads the clock for its catch-up just after that line.
    let started = Utc::now();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        d.stop(),
        Some(0),
        "second daemon did not stop cleanly:\n{}",
        d.log_text()
    );

    // Instants while no daemon ran at all.
    let during = |v: &serde_json::Value| at(v) > stopped && at(v) <= restarted;
    // The catch-up serves the latest instant before the second daemon's
    // scheduler read the clock, a moment after `started`.
    let slack = chrono::Duration::seconds(1);
    let missed = |v: &serde_json::Value| at(v) > stopped && at(v) <= started + slack;

    let h = history(&s, "catchup");
    let catch_ups: Vec<_> = h.iter().filter(|e| e["trigger"] == "catch-up").collect();
    assert_eq!(
        catch_ups.len(),
        1,
        "run-once must catch up exactly once: {h:#?}"
    );
    assert!(
        missed(catch_ups[0]),
        "catch-up serves an occurrence from the downtime: {h:#?}"
    );
    assert_eq!(catch_ups[0]["outcome"], "succeeded");
    let superseded = h
        .iter()
        .filter(|e| e["entry"] == "occurrence" && during(e))
        .filter(|e| e["outcome"].as_str().unwrap().contains("superseded"))
        .count();
    assert!(
        superseded >= 1,
        "the other missed instants are recorded as superseded: {h:#?}"
    );

    let h = history(&s, "skipper");
    assert!(
        h.iter().all(|e| e["trigger"] != "catch-up"),
        "skip must not catch up: {h:#?}"
    );
    let skipped = h
        .iter()
        .filter(|e| e["entry"] == "occurrence" && during(e))
        .filter(|e| e["outcome"].as_str().unwrap().contains("misfire = skip"))
        .count();
    assert!(
        skipped >= 2,
        "each missed instant is recorded as skipped: {h:#?}"
    );
    assert!(
        !h.iter().any(|e| e["entry"] == "run" && during(e)),
        "no run for an instant inside the downtime: {h:#?}"
    );

    // The skipped instants did not run: a biller is told, once per downtime.
    let out = s.run(&["tasks", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let tasks: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let missed: Vec<_> = tasks
        .iter()
        .filter(|t| t["kind"] == "missed-run")
        .filter(|t| {
            t["subject"]
                .as_str()
                .unwrap()
                .starts_with("job skipper did not run at")
        })
        .collect();
    assert_eq!(missed.len(), 1, "{tasks:#?}");
    // An overrun task for catchup may appear on a loaded machine (its catch-up
    // run outlasting the next 2-second instant); a missed-run task for its
    // downtime may not.
    assert!(
        !tasks.iter().any(|t| t["dedupe_key"]
            .as_str()
            .unwrap_or_default()
            .starts_with("missed/catchup/")),
        "the catch-up covered run-once's missed instants: {tasks:#?}"
    );
}
