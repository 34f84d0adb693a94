//! kill -9 in the middle of a run, then restart: every item's effect
//! happens exactly once, counted by its key.

use billd_e2e::{Scratch, base_config, stderr, stdout, wait_until};
use chrono::{Timelike, Utc};
use std::collections::BTreeSet;
use std::time::Duration;

const BILLERS: usize = 1500;

fn outbox_files(s: &Scratch) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(s.path("outbox")) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn header(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} header"))
        .trim()
        .to_string()
}

#[test]
fn kill_9_mid_run_then_restart_does_every_item_once() {
    let s = Scratch::new();
    // A daily job whose time comes a few seconds after start-up (with room
    // for a slow start on a loaded machine: a job owes nothing for instants
    // before the daemon first saw it).
    let fire = Utc::now() + chrono::Duration::seconds(12);
    let mut cfg = base_config("outbox_dir = \"outbox\"");
    for i in 0..BILLERS {
        cfg.push_str(&format!(
            "\n[[billers]]\nname = \"b{i:04}\"\nemail = \"b{i:04}@example.org\"\nreceives = [\"digest\"]\n"
        ));
    }
    cfg.push_str(&format!(
        "\n[[job]]\nname = \"bulk\"\nkind = \"digest\"\nschedule = \"{} {} {} * * *\"\ntimezone = \"UTC\"\nconcurrency = 2\n",
        fire.second(),
        fire.minute(),
        fire.hour()
    ));
    s.write_config(&cfg);
    s.init();

    let mut d = s.start_daemon("first.log");
    wait_until(Duration::from_secs(120), "the run to make progress", || {
        outbox_files(&s).len() >= 40
    });
    d.kill9();
    let at_kill = outbox_files(&s).len();
    assert!(
        at_kill < BILLERS,
        "the run finished before the kill ({at_kill} of {BILLERS}); the test needs more items"
    );

    let mut d = s.start_daemon("second.log");
    wait_until(
        Duration::from_secs(180),
        "the resumed run to finish",
        || d.log_text().contains("run ended"),
    );
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());

    let files = outbox_files(&s);
    let mut ids = BTreeSet::new();
    let mut recipients = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            ids.insert(header(&text, "Message-ID")),
            "a key was delivered twice: {}",
            f.display()
        );
        recipients.insert(header(&text, "To"));
    }
    assert_eq!(
        files.len(),
        BILLERS,
        "one effect per item (killed at {at_kill})"
    );
    assert_eq!(
        recipients.len(),
        BILLERS,
        "every biller got exactly one digest"
    );

    let out = s.run(&["jobs", "history", "bulk", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let h: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let runs: Vec<_> = h.iter().filter(|e| e["entry"] == "run").collect();
    assert_eq!(runs.len(), 1, "one run, resumed, not a second run: {h:#?}");
    assert_eq!(runs[0]["outcome"], "succeeded");
    assert_eq!(runs[0]["items_done"], BILLERS as u64);
    assert!(runs[0]["resumes"].as_u64().unwrap() >= 1, "{h:#?}");
}
