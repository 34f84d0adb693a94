//! `billd tasks assign`: a task moves to a configured biller, on the store
//! directly and through the running daemon, with the same output and exit
//! codes both ways.

use billd_e2e::{Scratch, base_config, stderr, stdout};
use std::time::Duration;

#[test]
fn tasks_are_assigned_to_configured_billers_here_and_through_the_daemon() {
    let s = Scratch::new();
    s.write_config(&format!(
        "{}\n[[billers]]\nname = \"dana\"\nemail = \"dana@example.org\"\nreceives = [\"denial\"]\n\n[[billers]]\nname = \"lee\"\nemail = \"lee@example.org\"\nreceives = [\"digest\"]\n",
        base_config("outbox_dir = \"outbox\"")
    ));
    s.init();
    let out = s.run(&[
        "tasks",
        "add",
        "--kind",
        "denial",
        "--subject",
        "claim C-9 denied: CARC 50",
        "--assignee",
        "dana",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).split_whitespace().last().unwrap().to_string();

    let out = s.run(&["tasks", "assign", &id, "--to", "lee", "--by", "sam"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("assigned {id} to lee\n"));
    let out = s.run(&["tasks", "show", &id]);
    let shown = stdout(&out);
    assert!(shown.contains("assignee  lee\n"), "{shown}");
    assert!(shown.contains("sam: assigned to lee (was dana)"), "{shown}");

    let refusals = |s: &Scratch| {
        let unknown = s.run(&["tasks", "assign", &id, "--to", "nobody"]);
        assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
        assert_eq!(
            stderr(&unknown),
            "billd: configuration error:\nno biller named `nobody`\n"
        );
        let missing = s.run(&["tasks", "assign", "T999999", "--to", "lee"]);
        assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
        assert_eq!(stderr(&missing), "billd: error: no task with id T999999\n");
    };
    refusals(&s);

    let mut d = s.start_daemon_ready("daemon.log", Duration::from_secs(60));
    refusals(&s);
    let out = s.run(&["tasks", "assign", &id, "--to", "dana", "--by", "sam"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("assigned {id} to dana\n"));
    let out = s.run(&["tasks", "list", "--kind", "missed-run", "--json"]);
    assert_eq!(stdout(&out), "[]\n", "{}", stderr(&out));
    let out = s.run(&[
        "tasks",
        "list",
        "--assignee",
        "dana",
        "--kind",
        "denial",
        "--json",
    ]);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["notes"].as_array().unwrap().len(), 2);
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());
}
