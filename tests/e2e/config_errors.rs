//! Each bad configuration stops the binary with exit code 2 and a message
//! naming the file, line and key.

use billd_e2e::{Scratch, base_config, stderr};

fn check(body: &str) -> (i32, String) {
    let s = Scratch::new();
    s.write_config(body);
    let out = s.run(&["check-config"]);
    let code = out.status.code().expect("exit code");
    if code != 0 {
        // The daemon refuses to start on the same file, with the same code.
        let run = s.run(&["run"]);
        assert_eq!(
            run.status.code(),
            Some(code),
            "run and check-config disagree: {}",
            stderr(&run)
        );
    }
    (code, stderr(&out))
}

/// The base config is 13 lines (one mail line); a job appended after it
/// starts at line 15: name 16, kind 17, schedule 18, timezone 19.
fn with_job(job: &str) -> String {
    format!("{}\n{job}", base_config("outbox_dir = \"outbox\""))
}

fn assert_names(msg: &str, line: usize, key: &str, what: &str) {
    assert!(
        msg.contains(&format!("billd.toml:{line}:")),
        "no line {line} in: {msg}"
    );
    assert!(msg.contains(key), "key {key} not named in: {msg}");
    assert!(
        msg.to_lowercase().contains(&what.to_lowercase()),
        "`{what}` not said in: {msg}"
    );
}

#[test]
fn good_config_passes() {
    let (code, msg) = check(&with_job(
        "[[job]]\nname = \"d\"\nkind = \"digest\"\nschedule = \"0 7 * * 1-5\"\n",
    ));
    assert_eq!(code, 0, "{msg}");
}

#[test]
fn bad_cron_expression() {
    let (code, msg) = check(&with_job(
        "[[job]]\nname = \"d\"\nkind = \"digest\"\nschedule = \"61 7 * * *\"\n",
    ));
    assert_eq!(code, 2);
    assert_names(&msg, 18, "schedule", "cron");
}

#[test]
fn unknown_timezone() {
    let (code, msg) = check(&with_job(
        "[[job]]\nname = \"d\"\nkind = \"digest\"\nschedule = \"0 7 * * *\"\ntimezone = \"America/Gotham\"\n",
    ));
    assert_eq!(code, 2);
    assert_names(&msg, 19, "timezone", "timezone");
}

#[test]
fn duplicate_job_name() {
    let (code, msg) = check(&with_job(
        "[[job]]\nname = \"d\"\nkind = \"digest\"\nschedule = \"0 7 * * *\"\n\n[[job]]\nname = \"d\"\nkind = \"digest\"\nschedule = \"0 8 * * *\"\n",
    ));
    assert_eq!(code, 2);
    assert_names(&msg, 21, "name", "duplicate");
}

#[test]
fn missing_secret() {
    let body = base_config(
        "smtp_url = \"smtp://127.0.0.1:2525\"\nusername = \"billd\"\npassword = \"env:BILLD_TEST_SECRET_THAT_IS_NOT_SET\"",
    );
    let (code, msg) = check(&body);
    assert_eq!(code, 2);
    assert_names(&msg, 15, "password", "BILLD_TEST_SECRET_THAT_IS_NOT_SET");
}

#[test]
fn unknown_key() {
    let (code, msg) = check(&with_job(
        "[[job]]\nname = \"d\"\nkind = \"digest\"\nschedul = \"0 7 * * *\"\n",
    ));
    assert_eq!(code, 2);
    assert_names(&msg, 18, "schedul", "unknown");
}

#[test]
fn inline_secret_is_refused() {
    let body = base_config(
        "smtp_url = \"smtp://127.0.0.1:2525\"\nusername = \"billd\"\npassword = \"hunter2\"",
    );
    let (code, msg) = check(&body);
    assert_eq!(code, 2);
    assert_names(&msg, 15, "password", "reference");
    assert!(
        !msg.contains("hunter2"),
        "the secret itself was printed: {msg}"
    );
}
