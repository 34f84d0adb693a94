//! `billd remits post`, `billd remits review` and `billd accounts`: 835s
//! post once to the imported claims' accounts, a review-mode payer waits
//! for approval, an unbalanced copy is quarantined (exit 1), and the same
//! verbs answer through the running daemon.

use billd_e2e::{Scratch, base_config, era_835, stderr, stdout, workspace_root};
use serde_json::Value;
use std::time::Duration;

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

/// `billd remits post FILE --json` on `name` in the scratch directory.
fn post_json(s: &Scratch, name: &str) -> Value {
    json(&s.run(&["remits", "post", s.path(name).to_str().unwrap(), "--json"]))
}

#[test]
fn remittances_post_once_wait_for_review_and_quarantine_through_the_cli_and_the_daemon() {
    let s = Scratch::new();
    s.write_config(&format!(
        "{}\n[[job]]\nname = \"remits\"\nkind = \"remittance-posting\"\nschedule = \"0 0 3 1 1 *\"\n\n[job.params]\ninbox = \"inbox\"\nreview_payers = [\"REVIEWPAYER\"]\n",
        base_config("outbox_dir = \"outbox\"")
    ));
    s.init();
    let fixtures = workspace_root().join("tests/fixtures/x12/837P");
    for f in ["lfh__demo.example1.837", "lfh__demo.example2.837"] {
        let out = s.run(&["import", "claims", fixtures.join(f).to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let claim = json(&s.run(&["claims", "show", "1912301953-26463774", "--json"]));
    let patient = claim["patient_id"].as_str().unwrap().to_string();

    // 100.00 billed: 80.00 paid, 20.00 coinsurance to the patient.
    let auto = era_835(
        "AUTOPAYER",
        "80",
        "TRACE-A",
        "CLP*26463774*1*100*80*20*12*PCN1~CAS*PR*2*20~",
    );
    std::fs::write(s.path("auto.835"), &auto).unwrap();
    let r = post_json(&s, "auto.835");
    let first = &r["remittances"][0];
    assert_eq!(first["posted"].as_array().unwrap().len(), 1, "{r:#}");
    assert_eq!(first["reconciliation"]["payment_cents"], 8000);
    assert_eq!(first["reconciliation"]["posted_cents"], 8000);
    let again = post_json(&s, "auto.835");
    assert_eq!(again["remittances"][0]["already_posted"], 1, "{again:#}");
    assert!(
        again["remittances"][0]["posted"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let account = json(&s.run(&["accounts", "show", &patient, "--json"]));
    assert_eq!(account["balances"]["patient_cents"], 2000, "{account:#}");
    assert_eq!(account["balances"]["insurance_cents"], 0);
    assert_eq!(account["entries"].as_array().unwrap().len(), 4);
    let shown = stdout(&s.run(&["accounts", "show", &patient]));
    assert!(shown.contains("patient     20.00"), "{shown}");
    assert!(
        shown.contains("835:AUTOPAYER:TRACE-A:26463774:1"),
        "{shown}"
    );

    // A review-mode payer: the posting waits; an unknown claim is held.
    let review = era_835(
        "REVIEWPAYER",
        "75",
        "TRACE-R",
        "CLP*26462967*1*100*70*20*12*PCN2~CAS*CO*45*10~CAS*PR*1*20~CLP*NOSUCHCLAIM*1*10*5**12*PCN3~CAS*CO*45*5~",
    );
    std::fs::write(s.path("review.835"), &review).unwrap();
    let r = post_json(&s, "review.835");
    let rc = &r["remittances"][0];
    assert_eq!(rc["awaiting_review"].as_array().unwrap().len(), 1, "{r:#}");
    assert_eq!(rc["unapplied"].as_array().unwrap().len(), 1);
    assert_eq!(rc["reconciliation"]["unapplied_cents"], 500);
    let queue = json(&s.run(&["remits", "review", "--json"]));
    let queue = queue.as_array().unwrap();
    assert_eq!(queue.len(), 1);
    let id = queue[0]["id"].as_str().unwrap().to_string();
    let listed = stdout(&s.run(&["remits", "review"]));
    assert!(
        listed.contains(&id) && listed.contains("REVIEWPAYER"),
        "{listed}"
    );
    let out = s.run(&["remits", "review", "--approve", &id, "--by", "dana"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("approved {id}: 4 entr(ies) posted")),
        "{}",
        stdout(&out)
    );
    assert!(
        json(&s.run(&["remits", "review", "--json"]))
            .as_array()
            .unwrap()
            .is_empty()
    );
    let missing = s.run(&["remits", "review", "--approve", "R999999"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr(&missing),
        "billd: error: no posting with id R999999\n"
    );

    // An unbalanced copy is quarantined, unposted: exit 1.
    let bad = auto
        .replace("TRACE-A", "TRACE-B")
        .replacen("BPR*I*80*", "BPR*I*81*", 1);
    std::fs::write(s.path("bad.835"), &bad).unwrap();
    let out = s.run(&["remits", "post", s.path("bad.835").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("1 quarantined"), "{text}");
    assert!(text.contains("BPR02 must equal"), "{text}");
    let tasks = json(&s.run(&["tasks", "list", "--json"]));
    let kinds: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"quarantined-835"), "{kinds:?}");
    assert!(kinds.contains(&"unapplied-era"), "{kinds:?}");

    let aging = json(&s.run(&["accounts", "aging", "--json"]));
    let total: i64 = aging["totals"]["patient_cents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(total, 4000, "{aging:#}");

    // Through the daemon: the same answers.
    std::fs::create_dir_all(s.path("inbox")).unwrap();
    let mut d = s.start_daemon_ready("daemon.log", Duration::from_secs(60));
    let again = post_json(&s, "auto.835");
    assert_eq!(again["remittances"][0]["already_posted"], 1, "{again:#}");
    let through = json(&s.run(&["accounts", "aging", "--json"]));
    assert_eq!(through["totals"], aging["totals"]);
    let out = s.run(&["remits", "post", s.path("bad.835").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());
}
