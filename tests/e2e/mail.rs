//! The digest reaches a real SMTP server (aiosmtpd on 127.0.0.1) with the
//! right recipients; the outbox variant writes one .eml file per biller.

use billd_e2e::{Scratch, SmtpSink, base_config, stderr, stdout};

const BILLERS: &str = r#"
[[billers]]
name = "dana"
email = "Dana Biller <dana@example.org>"
receives = ["digest", "missed-run"]

[[billers]]
name = "lee"
email = "lee@example.org"
receives = ["digest"]

[[billers]]
name = "sam"
email = "sam@example.org"
receives = ["denial"]

[[job]]
name = "morning"
kind = "digest"
schedule = "30 7 * * 1-5"
"#;

fn add_task(s: &Scratch, kind: &str, subject: &str) -> String {
    let out = s.run(&["tasks", "add", "--kind", kind, "--subject", subject]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).split_whitespace().last().unwrap().to_string()
}

#[test]
fn digest_reaches_a_real_smtp_server() {
    let s = Scratch::new();
    let sink = SmtpSink::start(s.path("spool.jsonl"));
    s.write_config(&format!(
        "{}{BILLERS}",
        base_config(&format!(
            "smtp_url = \"smtp://127.0.0.1:{}\"\ntls = \"none\"",
            sink.port
        ))
    ));
    s.init();
    let task = add_task(
        &s,
        "missed-run",
        "job eligibility did not run at 2027-01-04T06:00:00-05:00",
    );
    let out = s.run(&["jobs", "run", "morning"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let msgs = sink.messages();
    let mut rcpts: Vec<String> = msgs
        .iter()
        .map(|m| m["rcpt_tos"][0].as_str().unwrap().to_string())
        .collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["dana@example.org", "lee@example.org"],
        "digest goes to digest receivers only"
    );
    for m in &msgs {
        assert_eq!(
            m["rcpt_tos"].as_array().unwrap().len(),
            1,
            "one recipient per digest"
        );
        assert_eq!(m["mail_from"], "billing@example.org");
    }
    let dana = msgs
        .iter()
        .find(|m| m["rcpt_tos"][0] == "dana@example.org")
        .unwrap();
    let body = dana["body"].as_str().unwrap();
    assert!(
        body.contains(&task),
        "dana's digest lists the task id: {body}"
    );
    assert!(
        dana["subject"]
            .as_str()
            .unwrap()
            .contains("1 open billing task"),
        "{dana}"
    );
    let lee = msgs
        .iter()
        .find(|m| m["rcpt_tos"][0] == "lee@example.org")
        .unwrap();
    assert!(
        !lee["body"].as_str().unwrap().contains(&task),
        "lee does not receive missed-run tasks"
    );
}

#[test]
fn outbox_variant_writes_one_eml_per_biller() {
    let s = Scratch::new();
    s.write_config(&format!(
        "{}{BILLERS}",
        base_config("outbox_dir = \"outbox\"")
    ));
    s.init();
    let out = s.run(&["jobs", "run", "morning"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mut to: Vec<String> = std::fs::read_dir(s.path("outbox"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .map(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("To: ").map(str::to_string))
                .unwrap()
        })
        .collect();
    to.sort();
    assert_eq!(
        to,
        ["\"Dana Biller\" <dana@example.org>", "lee@example.org"]
    );
}
