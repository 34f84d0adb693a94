//! Tests for the configuration loader: one valid file read in full, and each
//! kind of bad file reported with its line, column and key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;

/// A small valid configuration; line numbers below refer to it.
const BASE: &str = r#"[practice]
name = "Riverside Family Medicine"
npi = "1234567893"
tax_id = "12-3456789"
timezone = "America/New_York"

[store]
path = "data"
key_file = "keys/store.key"

[mail]
from = "billd <billing@example.org>"
outbox_dir = "outbox"

[[billers]]
name = "ana"
email = "Ana <ana@example.org>"
receives = ["digest", "eligibility-problem"]

[[job]]
name = "morning-digest"
kind = "digest"
schedule = "30 7 * * 1-5"
"#;

const FILE: &str = "/etc/billd/billd.toml";

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(text: &str) -> Config {
    match Config::from_str_with_env(text, Path::new(FILE), &env(&[])) {
        Ok(config) => config,
        Err(err) => panic!("expected a valid config, got:\n{err}"),
    }
}

/// The Display of the error `text` yields.
fn problems(text: &str) -> String {
    problems_with(text, &env(&[]))
}

fn problems_with(text: &str, env: &HashMap<String, String>) -> String {
    match Config::from_str_with_env(text, Path::new(FILE), env) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(err) => err.to_string(),
    }
}

/// 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in text"))
        + 1
}

#[test]
fn base_config_loads_with_defaults() {
    let config = load(BASE);
    assert_eq!(config.source, Path::new(FILE));
    assert_eq!(config.practice.name, "Riverside Family Medicine");
    assert_eq!(config.practice.npi, "1234567893");
    assert_eq!(config.practice.tax_id, "123456789");
    assert_eq!(config.practice.timezone, chrono_tz::America::New_York);
    assert_eq!(config.store.path, Path::new("/etc/billd/data"));
    assert_eq!(
        config.store.key_file,
        Path::new("/etc/billd/keys/store.key")
    );
    assert_eq!(config.store.cache_bytes, 64 * 1024 * 1024);
    assert_eq!(config.mail.from.email.to_string(), "billing@example.org");
    match &config.mail.transport {
        MailTransport::Outbox { dir } => assert_eq!(dir, Path::new("/etc/billd/outbox")),
        other => panic!("expected outbox, got {other:?}"),
    }
    assert_eq!(config.billers.len(), 1);
    assert_eq!(
        config.billers[0].receives,
        ["digest", "eligibility-problem"]
    );
    let job = config.job_named("morning-digest").expect("job");
    assert_eq!(job.kind, "digest");
    assert_eq!(job.schedule, "30 7 * * 1-5");
    assert_eq!(job.timezone, chrono_tz::America::New_York);
    assert_eq!(job.misfire, Misfire::RunOnce);
    assert_eq!(job.catch_up_window, Duration::from_secs(6 * 3600));
    assert!(job.enabled);
    assert_eq!(job.concurrency, 4);
    assert!(job.params.is_empty());
    assert_eq!(
        job.location,
        Location {
            file: FILE.into(),
            line: 20,
            column: 1
        }
    );
    assert!(config.job_named("nope").is_none());
    let digest: Vec<_> = config
        .billers_receiving("digest")
        .map(|b| &b.name)
        .collect();
    assert_eq!(digest, ["ana"]);
    assert_eq!(config.billers_receiving("denial").count(), 0);
}

#[test]
fn full_config_with_smtp_and_every_job_key_loads() {
    let text = r#"
[practice]
name = "Lakeside Pediatrics"
npi = "1245319599"
tax_id = "987654321"
timezone = "America/Chicago"

[store]
path = "/var/lib/billd/store"
key_file = "/etc/billd/store.key"
cache_bytes = 1048576

[mail]
from = "Lakeside Billing <billing@lakeside.example>"
smtp_url = "smtp://mail.lakeside.example"
tls = "starttls"
username = "billd"
password = "env:BILLD_SMTP_PASSWORD"
pool_max = 2
timeout = "45s"

[[billers]]
name = "ana"
email = "ana@lakeside.example"
receives = ["digest"]

[[billers]]
name = "bo"
email = "Bo <bo@lakeside.example>"
receives = ["claim-rejected", "digest"]

[[job]]
name = "digest_eu"
kind = "digest"
schedule = "0 30 7 * * MON-FRI"
timezone = "Europe/Berlin"
misfire = "skip"
catch_up_window = "30m"
enabled = false
concurrency = 8

[job.params]
subject_template = "templates/subject.txt"
max_listed = 20

[[job]]
name = "digest-2"
kind = "digest"
schedule = "*/15 * * * *"
"#;
    let config = Config::from_str_with_env(
        text,
        Path::new("billd.toml"),
        &env(&[("BILLD_SMTP_PASSWORD", "pw-from-env")]),
    )
    .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(config.practice.tax_id, "987654321");
    assert_eq!(config.store.path, Path::new("/var/lib/billd/store"));
    assert_eq!(config.store.cache_bytes, 1_048_576);
    match &config.mail.transport {
        MailTransport::Smtp {
            url,
            host,
            port,
            tls,
            username,
            password,
            pool_max,
            timeout,
        } => {
            assert_eq!(url, "smtp://mail.lakeside.example:587?tls=required");
            assert_eq!(host, "mail.lakeside.example");
            assert_eq!(*port, 587);
            assert_eq!(*tls, SmtpTls::StartTls);
            assert_eq!(username.as_deref(), Some("billd"));
            assert_eq!(
                password.as_ref().map(|p| p.expose_secret()),
                Some("pw-from-env")
            );
            assert_eq!(*pool_max, 2);
            assert_eq!(*timeout, Duration::from_secs(45));
        }
        other => panic!("expected smtp, got {other:?}"),
    }
    // The password never shows in Debug output.
    let debug = format!("{config:?}");
    assert!(!debug.contains("pw-from-env"), "{debug}");

    assert_eq!(config.billers.len(), 2);
    assert_eq!(config.billers[1].email.name.as_deref(), Some("Bo"));
    let digest: Vec<_> = config
        .billers_receiving("digest")
        .map(|b| &b.name)
        .collect();
    assert_eq!(digest, ["ana", "bo"]);

    let job = &config.jobs[0];
    assert_eq!(job.name, "digest_eu");
    assert_eq!(job.timezone, chrono_tz::Europe::Berlin);
    assert_eq!(job.misfire, Misfire::Skip);
    assert_eq!(job.catch_up_window, Duration::from_secs(30 * 60));
    assert!(!job.enabled);
    assert_eq!(job.concurrency, 8);
    assert_eq!(
        job.params["subject_template"].as_str(),
        Some("templates/subject.txt")
    );
    assert_eq!(job.params["max_listed"].as_integer(), Some(20));
    assert_eq!(job.location.line, line_of(text, "name = \"digest_eu\"") - 1);
    let job = config.job_named("digest-2").unwrap();
    assert_eq!(job.timezone, chrono_tz::America::Chicago);
}

#[test]
fn smtp_urls_become_lettre_connection_urls() {
    let cases = [
        (
            "smtps://mail.example.org",
            None,
            "smtps://mail.example.org:465",
        ),
        (
            "smtps://mail.example.org:2465",
            None,
            "smtps://mail.example.org:2465",
        ),
        (
            "smtp://mail.example.org",
            None,
            "smtp://mail.example.org:587?tls=required",
        ),
        (
            "smtp://127.0.0.1:2525",
            Some("none"),
            "smtp://127.0.0.1:2525",
        ),
        ("smtp://relay", Some("none"), "smtp://relay:25"),
        ("smtp://[::1]:2525", Some("none"), "smtp://[::1]:2525"),
    ];
    for (smtp_url, tls, expected) in cases {
        let tls_line = tls.map_or(String::new(), |t| format!("tls = \"{t}\"\n"));
        let text = BASE.replace(
            "outbox_dir = \"outbox\"\n",
            &format!("smtp_url = \"{smtp_url}\"\n{tls_line}"),
        );
        let config = load(&text);
        let MailTransport::Smtp { url, password, .. } = &config.mail.transport else {
            panic!("expected smtp");
        };
        assert_eq!(url, expected);
        assert!(password.is_none());
        // lettre accepts what we hand it.
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
            .unwrap_or_else(|err| panic!("lettre refused {url}: {err}"));
    }
}

#[test]
fn bad_cron_names_line_column_and_what_croner_said() {
    let text = BASE.replace("30 7 * * 1-5", "61 7 * * 1-5");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:23:12: job[0].schedule: bad cron expression \"61 7 * * 1-5\": \
         Component error: Number out of bounds. (5 fields \"min hour day month weekday\", \
         or 6 with seconds first)"
            .replace("         ", "")
    );
    let text = BASE.replace("30 7 * * 1-5", "30 7 * *");
    let shown = problems(&text);
    assert!(
        shown.starts_with("/etc/billd/billd.toml:23:12: job[0].schedule: bad cron expression"),
        "{shown}"
    );
    assert!(shown.contains("Pattern must have"), "{shown}");
}

#[test]
fn schedule_parser_takes_five_or_six_fields_only() {
    assert!(parse_schedule("30 7 * * 1-5").is_ok());
    assert!(parse_schedule("0 30 7 * * 1-5").is_ok());
    assert!(parse_schedule("0 30 7 * * 1-5 2030").is_err());
    assert!(parse_schedule("30 7 * *").is_err());
    assert!(parse_schedule("").is_err());
}

#[test]
fn unknown_timezone_in_practice_and_job() {
    let text = BASE.replace("America/New_York", "America/New_Yrok");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:5:12: practice.timezone: unknown timezone \"America/New_Yrok\" \
         (use an IANA name such as \"America/New_York\")"
            .replace("         ", "")
    );
    let text = format!("{BASE}timezone = \"Mars/Olympus\"\n");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:24:12: job[0].timezone: unknown timezone \"Mars/Olympus\" \
         (use an IANA name such as \"America/New_York\")"
            .replace("         ", "")
    );
}

#[test]
fn duplicate_job_name_points_at_the_second_and_names_the_first() {
    let text = format!(
        "{BASE}\n[[job]]\nname = \"evening\"\nkind = \"digest\"\nschedule = \"0 18 * * *\"\n\
         \n[[job]]\nname = \"morning-digest\"\nkind = \"digest\"\nschedule = \"0 9 * * *\"\n"
    );
    let second = line_of(&text, "schedule = \"0 9") - 2;
    assert_eq!(second, 31);
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:31:8: job[2].name: duplicate job name \"morning-digest\" \
         (first defined at line 21)"
            .replace("         ", "")
    );
}

#[test]
fn duplicate_biller_name_is_refused() {
    let text = BASE.replace(
        "[[job]]",
        "[[billers]]\nname = \"ana\"\nemail = \"a2@example.org\"\nreceives = [\"digest\"]\n\n[[job]]",
    );
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:21:8: billers[1].name: duplicate biller name \"ana\" \
         (first defined at line 16)"
            .replace("         ", "")
    );
}

#[test]
fn missing_secret_env_var_names_key_and_variable() {
    let text = BASE.replace(
        "outbox_dir = \"outbox\"\n",
        "smtp_url = \"smtps://mail.example.org\"\nusername = \"billd\"\n\
         password = \"env:BILLD_TEST_UNSET_SECRET_9c1e\"\n",
    );
    // The process environment, as `billd check-config` sees it.
    let err = Config::from_str(&text, Path::new(FILE)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/etc/billd/billd.toml:15:12: mail.password: environment variable \
         BILLD_TEST_UNSET_SECRET_9c1e is not set"
    );
    // The same file with the variable present loads.
    let config = Config::from_str_with_env(
        &text,
        Path::new(FILE),
        &env(&[("BILLD_TEST_UNSET_SECRET_9c1e", "x")]),
    )
    .unwrap();
    assert!(matches!(
        config.mail.transport,
        MailTransport::Smtp {
            tls: SmtpTls::Implicit,
            port: 465,
            ..
        }
    ));
}

#[test]
fn file_secret_resolves_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/smtp.pw"), "from-file\n").unwrap();
    let text = BASE.replace(
        "outbox_dir = \"outbox\"\n",
        "smtp_url = \"smtps://mail.example.org\"\nusername = \"billd\"\n\
         password = \"file:secrets/smtp.pw\"\n",
    );
    let path = dir.path().join("billd.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::load(&path).unwrap_or_else(|err| panic!("{err}"));
    let MailTransport::Smtp { password, .. } = &config.mail.transport else {
        panic!("expected smtp");
    };
    assert_eq!(password.as_ref().unwrap().expose_secret(), "from-file");
    assert_eq!(config.store.path, dir.path().join("data"));

    std::fs::remove_file(dir.path().join("secrets/smtp.pw")).unwrap();
    let shown = Config::load(&path).unwrap_err().to_string();
    let prefix = format!(
        "{}:15:12: mail.password: cannot read secret file {}",
        path.display(),
        dir.path().join("secrets/smtp.pw").display()
    );
    assert!(shown.starts_with(&prefix), "{shown}\nwanted {prefix}");
}

#[test]
fn unknown_key_at_top_level() {
    let text = format!("{BASE}\n[pratice]\nname = \"x\"\n");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:25:2: pratice: unknown key; expected one of `practice`, `store`, \
         `mail`, `billers`, `notify`, `job`, `plugin`, `plugin_trust`, `plugin_pool`"
            .replace("         ", "")
    );
    let text = format!("{BASE}\n[[jobs]]\nname = \"x\"\n");
    let shown = problems(&text);
    assert!(
        shown.starts_with("/etc/billd/billd.toml:25:3: jobs: unknown key;"),
        "{shown}"
    );
    assert!(shown.ends_with("(did you mean [[job]]?)"), "{shown}");
}

#[test]
fn unknown_key_inside_job() {
    let text = BASE.replace("schedule = ", "shedule = ");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:23:1: job[0].shedule: unknown key; expected one of `name`, \
         `kind`, `schedule`, `timezone`, `misfire`, `catch_up_window`, `enabled`, \
         `concurrency`, `params`"
            .replace("         ", "")
    );
}

#[test]
fn unknown_key_in_a_section_and_missing_required_key() {
    let text = BASE.replace("key_file = ", "keyfile = ");
    let shown = problems(&text);
    assert!(
        shown.starts_with("/etc/billd/billd.toml:9:1: store.keyfile: unknown key; expected one of"),
        "{shown}"
    );
    let text = BASE.replace("kind = \"digest\"\n", "");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:20:1: job[0].kind: missing required key"
    );
}

#[test]
fn wrong_type_names_the_key() {
    let text = format!("{BASE}concurrency = \"many\"\n");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:24:15: job[0].concurrency: invalid type: string \"many\", \
         expected i64"
            .replace("         ", "")
    );
    let text = format!("{BASE}concurrency = 0\n");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:24:15: job[0].concurrency: must be at least 1"
    );
}

#[test]
fn inline_password_is_refused_without_echoing_it() {
    let text = BASE.replace(
        "outbox_dir = \"outbox\"\n",
        "smtp_url = \"smtps://mail.example.org\"\nusername = \"billd\"\npassword = \"hunter2\"\n",
    );
    let shown = problems(&text);
    assert_eq!(
        shown,
        "/etc/billd/billd.toml:15:12: mail.password: secrets by reference only: \
         write \"env:NAME\" or \"file:PATH\", not the secret itself"
    );
    assert!(!shown.contains("hunter2"));
}

#[test]
fn password_inside_smtp_url_is_refused_without_echoing_it() {
    let text = BASE.replace(
        "outbox_dir = \"outbox\"\n",
        "smtp_url = \"smtps://billd:hunter2@mail.example.org\"\n",
    );
    let shown = problems(&text);
    assert_eq!(
        shown,
        "/etc/billd/billd.toml:13:12: mail.smtp_url: secrets by reference only: remove the \
         password from the URL and set mail.password = \"env:NAME\" or \"file:PATH\""
    );
    assert!(!shown.contains("hunter2"));
}

#[test]
fn bad_smtp_settings_are_reported() {
    let with = |mail: &str| BASE.replace("outbox_dir = \"outbox\"\n", mail);
    let shown = problems(&with("smtp_url = \"http://mail.example.org\"\n"));
    assert!(
        shown.starts_with("/etc/billd/billd.toml:13:12: mail.smtp_url: the scheme must be"),
        "{shown}"
    );
    let shown = problems(&with(
        "smtp_url = \"smtps://mail.example.org\"\ntls = \"none\"\n",
    ));
    assert!(
        shown.starts_with("/etc/billd/billd.toml:14:7: mail.tls: smtps:// always uses TLS"),
        "{shown}"
    );
    let shown = problems(&with(
        "smtp_url = \"smtp://mail.example.org\"\ntls = \"ssl\"\n",
    ));
    assert_eq!(
        shown,
        "/etc/billd/billd.toml:14:7: mail.tls: must be \"starttls\" (the default) or \"none\""
    );
    let shown = problems(&with(
        "smtp_url = \"smtp://mail.example.org\"\nusername = \"billd\"\n",
    ));
    assert!(
        shown.starts_with("/etc/billd/billd.toml:14:12: mail.username: needs mail.password"),
        "{shown}"
    );
    let shown = problems_with(
        &with(
            "smtp_url = \"smtp://mail.example.org\"\ntls = \"none\"\nusername = \"u\"\n\
             password = \"env:PW\"\n",
        ),
        &env(&[("PW", "x")]),
    );
    assert!(
        shown.starts_with("/etc/billd/billd.toml:16:12: mail.password: would cross the network"),
        "{shown}"
    );
    let shown = problems(&with(
        "smtp_url = \"smtp://mail.example.org?tls=required\"\n",
    ));
    assert!(
        shown.starts_with("/etc/billd/billd.toml:13:12: mail.smtp_url: write only scheme://host"),
        "{shown}"
    );
    let shown = problems(&with(
        "smtp_url = \"smtp://mail.example.org\"\npool_max = 0\ntimeout = \"soon\"\n",
    ));
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert_eq!(
        lines[0],
        "/etc/billd/billd.toml:14:12: mail.pool_max: must be at least 1"
    );
    assert!(
        lines[1].starts_with("/etc/billd/billd.toml:15:11: mail.timeout: not a duration"),
        "{shown}"
    );
}

#[test]
fn smtp_only_keys_with_outbox_are_refused() {
    let text = BASE.replace(
        "outbox_dir = \"outbox\"\n",
        "outbox_dir = \"outbox\"\npool_max = 3\n",
    );
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:14:12: mail.pool_max: only used with mail.smtp_url; remove it \
         when using mail.outbox_dir"
    );
}

#[test]
fn bad_npi_and_tax_id() {
    let text = BASE.replace("1234567893", "1234567890");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:3:7: practice.npi: not a valid NPI: the check digit (last digit) \
         does not match"
    );
    let text = BASE.replace("1234567893", "12345");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:3:7: practice.npi: an NPI is exactly 10 digits"
    );
    let text = BASE.replace("12-3456789", "123-456789");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:4:10: practice.tax_id: must be 9 digits, optionally written \
         NN-NNNNNNN"
    );
}

#[test]
fn npi_check_digit() {
    // Published valid NPIs (CMS example and NPPES sample records).
    for npi in ["1234567893", "1245319599", "1003000126"] {
        assert_eq!(check_npi(npi), Ok(()), "{npi}");
    }
    // Changing any one digit breaks the check digit.
    for i in 0..10 {
        let mut digits: Vec<u8> = "1234567893".bytes().collect();
        digits[i] = if digits[i] == b'9' {
            b'0'
        } else {
            digits[i] + 1
        };
        let npi = String::from_utf8(digits).unwrap();
        assert!(check_npi(&npi).is_err(), "{npi}");
    }
    assert!(check_npi("123456789a").is_err());
    assert!(check_npi("12345678931").is_err());
}

proptest::proptest! {
    /// Against the CMS method written out independently: double every other
    /// digit of the 9-digit base from the right, add 24 for the 80840
    /// prefix, and the check digit tops the sum up to a multiple of 10.
    #[test]
    fn npi_check_digit_matches_the_cms_method(base in "[12][0-9]{8}", wrong in 1u32..10) {
        let mut sum = 24;
        for (i, c) in base.chars().rev().enumerate() {
            let d = c.to_digit(10).unwrap();
            sum += if i % 2 == 0 { let x = d * 2; x / 10 + x % 10 } else { d };
        }
        let check = (10 - sum % 10) % 10;
        let good = format!("{base}{check}");
        proptest::prop_assert_eq!(check_npi(&good), Ok(()));
        let bad = format!("{base}{}", (check + wrong) % 10);
        proptest::prop_assert!(check_npi(&bad).is_err());
    }

    /// Every byte offset maps to the line and character column a naive
    /// count gives.
    #[test]
    fn locations_match_a_naive_count(text in "[a-zé\n=\" ]{0,80}", pick in 0usize..100) {
        let src = error::SourceText::new(Path::new("f.toml"), &text);
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
        let offset = boundaries[pick % boundaries.len()];
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap().chars().count() + 1;
        let at = src.location(offset);
        proptest::prop_assert_eq!((at.line, at.column), (line, column));
    }
}

#[test]
fn single_job_table_instead_of_array_is_refused() {
    let text = BASE.replace("[[job]]", "[job]");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:20:1: job: expected [[job]] tables"
    );
}

#[test]
fn tax_id_forms() {
    assert_eq!(
        check::normalize_tax_id("12-3456789").as_deref(),
        Some("123456789")
    );
    assert_eq!(
        check::normalize_tax_id("123456789").as_deref(),
        Some("123456789")
    );
    assert_eq!(check::normalize_tax_id("1234-56789"), None);
    assert_eq!(check::normalize_tax_id("12345678"), None);
    assert_eq!(check::normalize_tax_id("12-345678x"), None);
}

#[test]
fn both_mail_transports_are_refused() {
    let text = BASE.replace(
        "outbox_dir = \"outbox\"\n",
        "smtp_url = \"smtps://mail.example.org\"\noutbox_dir = \"outbox\"\n",
    );
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:14:14: mail.outbox_dir: set either mail.smtp_url or \
         mail.outbox_dir, not both"
    );
}

#[test]
fn both_transports_still_check_the_url() {
    let text = BASE.replace(
        "outbox_dir = \"outbox\"\n",
        "smtp_url = \"smtps://u:hunter2@mail.example.org\"\noutbox_dir = \"outbox\"\n",
    );
    let shown = problems(&text);
    let keys: Vec<&str> = shown
        .lines()
        .map(|l| l.split(": ").nth(1).unwrap())
        .collect();
    assert_eq!(keys, ["mail.smtp_url", "mail.outbox_dir"], "{shown}");
    assert!(!shown.contains("hunter2"));
}

#[test]
fn neither_mail_transport_is_refused() {
    let text = BASE.replace("outbox_dir = \"outbox\"\n", "");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:11:2: mail: set one of mail.smtp_url (send through SMTP) or \
         mail.outbox_dir (write .eml files)"
    );
}

#[test]
fn syntax_error_reports_the_parser_position() {
    let text = BASE.replace("receives = [\"digest\", ", "receives = [\"digest\" ");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:18:22: syntax: missing comma between array elements, expected `,`"
    );
    let text = format!("{BASE}name = \"twice\"\n");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:24:1: syntax: duplicate key"
    );
}

#[test]
fn bad_emails_and_receives() {
    let text = BASE
        .replace("Ana <ana@example.org>", "ana at example")
        .replace(
            "[\"digest\", \"eligibility-problem\"]",
            "[\"digest\", \"digest\", \"a b\"]",
        );
    let shown = problems(&text);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3, "{shown}");
    assert!(
        lines[0].starts_with("/etc/billd/billd.toml:17:9: billers[0].email: not an email address"),
        "{shown}"
    );
    assert_eq!(
        lines[1],
        "/etc/billd/billd.toml:18:23: billers[0].receives[1]: \"digest\" is listed twice"
    );
    assert!(
        lines[2].starts_with("/etc/billd/billd.toml:18:33: billers[0].receives[2]: must be"),
        "{shown}"
    );
    let text = BASE.replace("billd <billing@example.org>", "");
    let shown = problems(&text);
    assert!(
        shown.starts_with("/etc/billd/billd.toml:12:8: mail.from: not an email address"),
        "{shown}"
    );
}

#[test]
fn job_field_checks() {
    let text = BASE
        .replace("morning-digest", "morning digest")
        .replace("kind = \"digest\"", "kind = \"digset\"")
        + "misfire = \"always\"\ncatch_up_window = \"6 hours ago\"\n";
    let shown = problems(&text);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 4, "{shown}");
    assert_eq!(
        lines[0],
        "/etc/billd/billd.toml:21:8: job[0].name: must be letters, digits, - and _ only, and not empty"
    );
    assert_eq!(
        lines[1],
        "/etc/billd/billd.toml:22:8: job[0].kind: unknown job kind \"digset\"; known kinds: `digest`, `prune`, `eligibility`, `submission`, `claim-status`, `remittance-posting`, `dunning`, `ehr-sync`, `collections`"
    );
    assert_eq!(
        lines[2],
        "/etc/billd/billd.toml:24:11: job[0].misfire: must be \"run-once\" or \"skip\""
    );
    assert!(
        lines[3].starts_with("/etc/billd/billd.toml:25:19: job[0].catch_up_window: not a duration"),
        "{shown}"
    );
}

#[test]
fn digest_params_are_checked() {
    let text = format!("{BASE}\n[job.params]\nsubjet = \"x\"\nbody_template = 3\n");
    let shown = problems(&text);
    assert_eq!(
        shown,
        "/etc/billd/billd.toml:26:1: job[0].params.subjet: unknown parameter for kind \"digest\"; \
         expected one of `subject_template`, `body_template`, `max_listed`, `send_when_empty`\n\
         /etc/billd/billd.toml:27:17: job[0].params.body_template: must be a string"
    );
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let text = BASE
        .replace("1234567893", "1234567890")
        .replace("schedule = ", "shedule = ")
        .replace("outbox_dir = \"outbox\"\n", "")
        + "\n[[job]]\nname = \"b\"\nkind = \"digest\"\nschedule = \"bad\"\n";
    let shown = problems(&text);
    let keys: Vec<&str> = shown
        .lines()
        .map(|l| l.split(": ").nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        keys,
        ["practice.npi", "mail", "job[0].shedule", "job[1].schedule"],
        "{shown}"
    );
}

#[test]
fn missing_sections_are_named() {
    let text = "[practice]\nname = \"x\"\nnpi = \"1234567893\"\ntax_id = \"123456789\"\n\
                timezone = \"UTC\"\n";
    assert_eq!(
        problems(text),
        "/etc/billd/billd.toml: store: missing section [store]\n\
         /etc/billd/billd.toml: mail: missing section [mail]"
    );
    // No jobs and no billers is a valid (idle) configuration.
    let idle: String = BASE.split("[[billers]]").next().unwrap().to_string();
    let config = load(&idle);
    assert!(config.jobs.is_empty() && config.billers.is_empty());
}

#[test]
fn unreadable_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let err = Config::load(&path).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err.problems().is_empty());
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("cannot read config {}: ", path.display())),
        "{shown}"
    );
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("daemon/ has a parent")
        .to_path_buf()
}

#[test]
fn example_config_loads() {
    let path = workspace_root().join("config/billd.example.toml");
    let config = Config::load_with_env(
        &path,
        &env(&[
            ("BILLD_SMTP_PASSWORD", "example"),
            (
                "BILLD_WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ]),
    )
    .unwrap_or_else(|err| panic!("{err}"));
    let MailTransport::Smtp {
        username, password, ..
    } = &config.mail.transport
    else {
        panic!("the example documents SMTP");
    };
    assert!(username.is_some());
    assert_eq!(password.as_ref().unwrap().expose_secret(), "example");
    let digest = config
        .jobs
        .iter()
        .find(|j| j.kind == "digest")
        .expect("a digest job");
    assert_eq!(digest.schedule, "30 7 * * 1-5");
    assert!(!config.billers.is_empty());
    assert_eq!(config.notify.webhooks[0].name, "billing-chat");
    assert_eq!(config.notify.routes.len(), 2);
    assert!(config.notify.is_urgent("job-failing"));
    // Without the variable the example names it.
    let err = Config::load_with_env(&path, &env(&[])).unwrap_err();
    assert!(
        err.to_string()
            .contains("mail.password: environment variable BILLD_SMTP_PASSWORD is not set"),
        "{err}"
    );
}

#[test]
fn demo_config_loads() {
    let path = workspace_root().join("config/demo.toml");
    let config = Config::load_with_env(
        &path,
        &env(&[
            ("BILLD_DEMO_CORE_USER", "billd"),
            ("BILLD_DEMO_CORE_PASSWORD", "sandbox-password"),
            ("BILLD_DEMO_FHIR_TOKEN", "demo-fhir-token"),
            ("BILLD_DEMO_AGENCY_KEY", "demo-agency-key"),
        ]),
    )
    .unwrap_or_else(|err| panic!("{err}"));
    let config_dir = workspace_root().join("config");
    assert!(config.store.path.starts_with(config_dir.join("demo-run")));
    let MailTransport::Outbox { dir } = &config.mail.transport else {
        panic!("the demo writes to an outbox");
    };
    assert!(dir.starts_with(config_dir.join("demo-run")));
    assert_eq!(config.billers.len(), 2);
    let kinds: Vec<&str> = config.jobs.iter().map(|j| j.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "digest",
            "eligibility",
            "submission",
            "claim-status",
            "ehr-sync",
            "remittance-posting",
            "dunning",
            "collections"
        ]
    );
    let job = &config.jobs[0];
    assert_eq!(job.schedule, "*/20 * * * * *");
    assert_eq!(job.timezone, config.practice.timezone);
    let plugins: Vec<&str> = config.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        plugins,
        ["fhir-ehr", "core-clearinghouse", "collections-agency"]
    );
}

#[test]
fn systemd_unit_keeps_its_hardening() {
    let unit = std::fs::read_to_string(workspace_root().join("config/billd.service")).unwrap();
    let directives: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    for wanted in [
        "User=billd",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/billd -/var/spool/billd",
        "StateDirectory=billd",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=no",
        "KillSignal=SIGTERM",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "EnvironmentFile=-/etc/billd/billd.env",
    ] {
        assert!(
            directives.contains(&wanted),
            "billd.service lacks {wanted:?}"
        );
    }
    let stop = directives
        .iter()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| humantime::parse_duration(v).ok())
        .expect("TimeoutStopSec");
    // Above the jobs' shutdown grace period (60 s), so the store gets flushed.
    assert!(stop > Duration::from_secs(60), "{stop:?}");
}

#[test]
fn plugin_entries_are_checked_with_their_line() {
    let text = format!(
        "{BASE}\n[[plugin]]\nname = \"payer\"\npath = \"plugins/payer\"\nsecrets = {{ api-key = \"env:BILLD_TEST_NO_SUCH_VAR\" }}\n\n[[plugin]]\nname = \"ehr\"\npath = \"plugins/ehr\"\nunpinned = true\nsecrets = {{ token = \"hunter2\" }}\n"
    );
    let base_lines = BASE.lines().count();
    let shown = problems(&text);
    let first = base_lines + 2;
    let second = base_lines + 7;
    assert!(
        shown.contains(&format!(
            "billd.toml:{first}:1: plugin[0].sha256: a sha256 pin is required"
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("billd.toml:{first}:1: plugin[0].secrets.api-key: environment variable BILLD_TEST_NO_SUCH_VAR is not set")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "billd.toml:{second}:1: plugin[1].secrets.token: secrets by reference only"
        )),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn plugin_pool_defaults_and_reads_its_keys() {
    let config = load(BASE);
    assert_eq!(config.plugin_pool, crate::plugin::PluginPool::default());
    assert_eq!(
        config.plugin_pool.engine_settings(),
        crate::plugin::EngineSettings::default()
    );
    let text = format!(
        "{BASE}\n[plugin_pool]\ninstances = 12\nmax_memory_bytes = 33554432\nkeep_resident_bytes = 0\n"
    );
    let pool = load(&text).plugin_pool;
    assert_eq!(pool.instances, 12);
    let engine = pool.engine_settings();
    assert_eq!(engine.max_concurrent_instances, 12);
    assert_eq!(engine.max_memory_bytes, 32 << 20);
    assert_eq!(engine.memory_keep_resident_bytes, 0);
}

#[test]
fn plugin_pool_smaller_than_the_jobs_concurrency_is_refused() {
    // One job of concurrency 4 (the default) and one of 3: 7 at once.
    let text = format!(
        "{BASE}\n[[job]]\nname = \"prune\"\nkind = \"prune\"\nschedule = \"0 3 * * *\"\nconcurrency = 3\n\n\
         [plugin_pool]\ninstances = 6\n"
    );
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:31:2: plugin_pool.instances: is 6 but the jobs may run 7 work items \
         at once (the sum of their concurrency); raise it to at least 7 or lower job concurrency"
    );
    let text = text.replace("instances = 6", "instances = 7");
    assert_eq!(load(&text).plugin_pool.instances, 7);
}

#[test]
fn plugin_pool_bad_values_name_their_key() {
    let text = format!("{BASE}\n[plugin_pool]\ninstances = 0\n");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:25:2: plugin_pool.instances: must be at least 1"
    );
    let text = format!("{BASE}\n[plugin_pool]\ninstances = 5000\n");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:25:2: plugin_pool.instances: must be at most 1024 (each instance \
         reserves address space for its memories at start-up), not 5000"
    );
    let text = format!("{BASE}\n[plugin_pool]\nmax_memory_bytes = 4096\nkeep_resident_bytes = 0\n");
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:25:2: plugin_pool.max_memory_bytes: must be between 1048576 (1 MiB) \
         and 4294967296 (4 GiB), not 4096"
    );
    let text = format!(
        "{BASE}\n[plugin_pool]\nmax_memory_bytes = 2097152\nkeep_resident_bytes = 4194304\n"
    );
    assert_eq!(
        problems(&text),
        "/etc/billd/billd.toml:25:2: plugin_pool.keep_resident_bytes: must be at most \
         max_memory_bytes (2097152), not 4194304"
    );
    let text = format!("{BASE}\n[plugin_pool]\nslots = 3\n");
    assert!(
        problems(&text).contains("plugin_pool.slots: unknown"),
        "{}",
        problems(&text)
    );
}

const SECRET_ENV: (&str, &str) = (
    "BILLD_TEST_HOOK_SECRET",
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
);

/// A `[[notify.webhook]]` named `ops` whose secret is [`SECRET_ENV`].
const OPS_WEBHOOK: &str = r#"[[notify.webhook]]
name = "ops"
url = "http://127.0.0.1:9000/hook"
secret = "env:BILLD_TEST_HOOK_SECRET"
"#;

/// `BASE` with a `[notify]` section appended.
fn with_notify(notify: &str) -> String {
    format!("{BASE}\n{notify}")
}

#[test]
fn notify_routes_and_webhooks_load() {
    let text = with_notify(&format!(
        r#"[notify]
urgent = ["job-failing"]
interval = "2s"

{OPS_WEBHOOK}
[[notify.route]]
kinds = ["job-failing"]
webhook = "ops"

[[notify.route]]
payers = ["60054"]
biller = "ana"
"#
    ));
    let cfg = Config::from_str_with_env(&text, Path::new(FILE), &env(&[SECRET_ENV]))
        .unwrap_or_else(|e| panic!("{e}"));
    let n = &cfg.notify;
    assert_eq!(n.urgent, ["job-failing"]);
    assert_eq!(n.interval, Duration::from_secs(2));
    assert_eq!(n.webhooks[0].secret.bytes().len(), 24);
    assert_eq!(n.webhooks[0].timeout, Duration::from_secs(10));
    assert_eq!(
        n.routes[1].to,
        crate::notify::routing::Destination::Biller("ana".into())
    );
    // Without [notify]: the default urgent kinds and no routes.
    let base = load(BASE);
    assert!(base.notify.routes.is_empty() && base.notify.is_urgent("quarantined-835"));
}

#[test]
fn a_bad_route_or_webhook_is_named_at_its_line() {
    let text = with_notify(
        r#"[[notify.webhook]]
name = "ops"
url = "http://hooks.example.org/x?token=abc"
secret = "env:BILLD_TEST_HOOK_SECRET"

[[notify.webhook]]
name = "ops2"
url = "https://hooks.example.org/y"
secret = "env:BILLD_TEST_HOOK_UNSET"

[[notify.route]]
kinds = ["job failing"]
biller = "nobody"

[[notify.route]]
webhook = "missing"

[[notify.route]]
kinds = ["denial"]

[[notify.route]]
biller = "ana"
webhook = "ops"
"#,
    );
    let shown = problems_with(&text, &env(&[SECRET_ENV]));
    let at = |needle: &str| format!("{FILE}:{}:", line_of(&text, needle));
    for (needle, expected) in [
        (
            "url = \"http://hooks",
            "notify.webhook[0].url: http:// is allowed only to a loopback address",
        ),
        (
            "BILLD_TEST_HOOK_UNSET",
            "notify.webhook[1].secret: environment variable BILLD_TEST_HOOK_UNSET is not set",
        ),
        (
            "job failing",
            "notify.route[0].kinds[0]: must be a task kind",
        ),
        (
            "\"nobody\"",
            "notify.route[0].biller: no biller named \"nobody\" (billers: `ana`)",
        ),
        (
            "\"missing\"",
            "notify.route[1].webhook: no [[notify.webhook]] named \"missing\"",
        ),
        (
            "webhook = \"ops\"",
            "notify.route[3].webhook: a route names one destination",
        ),
    ] {
        let line = shown
            .lines()
            .find(|l| l.contains(expected))
            .unwrap_or_else(|| panic!("no {expected:?} in:\n{shown}"));
        assert!(line.starts_with(&at(needle)), "{line} not at {needle}");
    }
    assert!(
        shown.contains("notify.route[2]: a route needs a destination"),
        "{shown}"
    );
    // The URL (a credential for Slack-style hooks) is never echoed.
    assert!(!shown.contains("token=abc"), "{shown}");
}

#[test]
fn a_webhook_secret_must_be_whsec_base64_and_is_never_echoed() {
    let text = with_notify(OPS_WEBHOOK);
    let shown = problems_with(
        &text,
        &env(&[("BILLD_TEST_HOOK_SECRET", "plain-secret-value")]),
    );
    assert!(
        shown.contains("notify.webhook[0].secret: a webhook secret is written whsec_<base64>"),
        "{shown}"
    );
    assert!(!shown.contains("plain-secret-value"), "{shown}");
    let inline = text.replace(
        "env:BILLD_TEST_HOOK_SECRET",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    );
    let shown = problems(&inline);
    assert!(shown.contains("secrets by reference only"), "{shown}");
    let unknown = with_notify("[[notify.route]]\nbiller = \"ana\"\nkind = [\"denial\"]\n");
    assert!(
        problems(&unknown).contains("notify.route[0].kind: unknown key"),
        "{}",
        problems(&unknown)
    );
}
