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
    wait_until(Duration::from_secs(60), "the first daemon to start", || {
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

#[test]
fn cli_verbs_reach_the_running_daemon() {
    let s = Scratch::new();
    s.write_config(&format!(
        "{}\n[[billers]]\nname = \"dana\"\nemail = \"dana@example.org\"\nreceives = [\"digest\", \"denial\"]\n\n[[job]]\nname = \"digest\"\nkind = \"digest\"\nschedule = \"0 7 1 1 *\"\n",
        base_config("outbox_dir = \"outbox\"")
    ));
    s.init();
    let mut d = s.start_daemon_ready("daemon.log", Duration::from_secs(60));

    let out = s.run(&[
        "tasks",
        "add",
        "--kind",
        "denial",
        "--subject",
        "claim C-9 denied: CARC 50",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).split_whitespace().last().unwrap().to_string();
    let out = s.run(&["tasks", "list"]);
    assert!(
        out.status.success() && stdout(&out).contains(&id),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let out = s.run(&["jobs", "run", "digest"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("succeeded (1 done, 0 failed of 1)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(std::fs::read_dir(s.path("outbox")).unwrap().count(), 1);

    let out = s.run(&["tasks", "close", &id, "--note", "appealed"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = s.run(&["tasks", "show", "T999999"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "errors keep their exit code through the socket"
    );
    assert!(
        stderr(&out).contains("no task with id T999999"),
        "{}",
        stderr(&out)
    );

    assert_eq!(d.stop(), Some(0), "{}", d.log_text());
    let out = s.run(&["jobs", "history", "digest", "--json"]);
    let h: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["trigger"], "manual");
}
