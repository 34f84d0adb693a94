//! A second daemon on the same store refuses to start, so it cannot run an
//! occurrence the first one runs.

use billd_e2e::{Scratch, base_config, stderr, stdout, wait_until};
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn second_daemon_on_the_same_store_is_refused() {
    let s = Scratch::new();
    s.write_config(&format!(
        "{}\n[[billers]]\nname = \"dana\"\nemail = \"dana@example.org\"\nreceives = [\"digest\"]\n\n[[job]]\nname = \"tick\"\nkind = \"digest\"\nschedule = \"* * * * * *\"\n",
        base_config("outbox_dir = \"outbox\"")
    ));
    s.init();
    let mut first = s.start_daemon("first.log");
    wait_until(Duration::from_secs(20), "the first daemon to start", || {
        first.log_text().contains("billd started")
    });

    let second = s.billd().arg("run").output().expect("second daemon");
    assert_eq!(
        second.status.code(),
        Some(1),
        "second daemon must fail at start: {}",
        stderr(&second)
    );
    let msg = stderr(&second);
    assert!(
        msg.contains("in use by another billd process"),
        "unclear refusal: {msg}"
    );
    assert!(first.running(), "the first daemon must carry on");

    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(first.stop(), Some(0), "{}", first.log_text());

    let out = s.run(&["jobs", "history", "tick", "--json", "--limit", "1000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let h: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let mut per_instant: BTreeMap<String, usize> = BTreeMap::new();
    for e in h.iter().filter(|e| e["entry"] == "run") {
        *per_instant
            .entry(e["scheduled_for"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(
        !per_instant.is_empty(),
        "the first daemon ran the job: {h:#?}"
    );
    assert!(
        per_instant.values().all(|n| *n == 1),
        "an occurrence ran twice: {per_instant:?}"
    );
}
