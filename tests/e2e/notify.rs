//! Urgent notifications: a job that really fails raises a `job-failing`
//! task, and the daemon POSTs it at once to a webhook on loopback, signed
//! the Standard Webhooks way; a restarted daemon does not send it again.

use billd_e2e::{Scratch, WebhookSink, base_config, era_835, wait_until};
use std::time::Duration;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[test]
fn a_really_failing_job_is_posted_at_once_signed_and_not_again_after_a_restart() {
    let s = Scratch::new();
    let sink = WebhookSink::start(s.path("webhooks.jsonl"), SECRET);
    let port = sink.port;
    std::fs::write(s.path("hook.secret"), format!("{SECRET}\n")).unwrap();
    // `posted` is a file, so every posted 835 fails to move: a real,
    // transient failure of the job's work item, out of attempts at once.
    std::fs::write(s.path("posted-is-a-file"), "").unwrap();
    std::fs::create_dir_all(s.path("inbox")).unwrap();
    std::fs::write(
        s.path("inbox/era.835"),
        era_835(
            "AUTOPAYER",
            "80",
            "TRACE-N",
            "CLP*26463774*1*100*80*20*12*PCN1~CAS*PR*2*20~",
        ),
    )
    .unwrap();
    s.write_config(&format!(
        r#"{}
[notify]
# Look for urgent tasks often, so the test is quick.
interval = "200ms"

[[notify.webhook]]
name = "ops"
# The receiver on loopback; plain http is allowed only there.
url = "http://127.0.0.1:{port}/hook"
# The secret lives in a file, never in the configuration.
secret = "file:hook.secret"

[[notify.route]]
kinds = ["job-failing"]
webhook = "ops"

[[job]]
name = "remits"
kind = "remittance-posting"
schedule = "*/2 * * * * *"

[job.params]
inbox = "inbox"
posted = "posted-is-a-file"
max_attempts = 1
"#,
        base_config("outbox_dir = \"outbox\"")
    ));
    s.init();

    let mut daemon = s.start_daemon("daemon-1.log");
    wait_until(Duration::from_secs(30), "the signed webhook", || {
        !sink.requests().is_empty()
    });
    wait_until(Duration::from_secs(10), "the delivery recorded", || {
        daemon.log_text().contains("notification sent")
    });
    // More failing runs: the same open task, so nothing new to send.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(daemon.stop(), Some(0), "{}", daemon.log_text());

    let got = sink.requests();
    assert_eq!(got.len(), 1, "{got:?}");
    let hit = &got[0];
    let id = hit["id"].as_str().unwrap();
    assert!(id.starts_with('T') && id.ends_with("/webhook:ops"), "{id}");
    assert!(hit["timestamp"].as_str().unwrap().parse::<i64>().is_ok());
    assert!(
        hit["signature"].as_str().unwrap().starts_with("v1,"),
        "{hit}"
    );
    assert_eq!(hit["verified"], true, "the receiver's own check: {hit}");
    let raw = hit["body"].as_str().unwrap();
    let body: serde_json::Value = serde_json::from_str(raw).unwrap();
    assert_eq!(body["type"], "task.raised");
    assert_eq!(body["data"]["kind"], "job-failing");
    assert!(
        body["text"].as_str().unwrap().contains("job remits"),
        "{body}"
    );
    // Nothing about a patient: ids and codes only.
    assert!(!raw.contains("PCN1") && !raw.contains("26463774"), "{raw}");

    // A restarted daemon (the job still failing every other second) sends
    // nothing more.
    let mut again = s.start_daemon("daemon-2.log");
    wait_until(
        Duration::from_secs(20),
        "a failing run after restart",
        || again.log_text().matches("work item failed").count() >= 2,
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(again.stop(), Some(0), "{}", again.log_text());
    assert_eq!(sink.requests().len(), 1, "{:?}", sink.requests());
}
