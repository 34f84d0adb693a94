//! A dunning run over 1,000 accounts to a real SMTP server (aiosmtpd on
//! 127.0.0.1), killed with -9 in the middle and restarted: one notice per
//! account that owes, each sent under one Message-ID, none missing, and no
//! message carries a diagnosis, a procedure, a birth date, a member id or
//! another patient's name.
//!
//! The balances come the way a practice's do: patients (with their email
//! addresses) and coverages from CSV exports, one 837P with a claim per
//! patient, then an 835 that pays 80.00 of each 100.00 and leaves 20.00
//! coinsurance to the patient.

use billd_e2e::{
    CLAIMS_837_BIRTH_DATE, CLAIMS_837_DIAGNOSES, CLAIMS_837_PAYER, CLAIMS_837_PROCEDURES, Scratch,
    SmtpSink, base_config, claims_837_named, control_number, distinct_names, era_835, stderr,
    stdout, wait_until,
};
use chrono::{Timelike, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::time::Duration;

const ACCOUNTS: usize = 1000;
/// Accounts per batch and batches at once: at most this many notices are
/// between "handed to the SMTP server" and "recorded as sent" at a time,
/// so at most this many can go again after a kill -9 (same Message-ID).
const BATCH: usize = 25;
const CONCURRENCY: usize = 4;
const PREFIX: &str = "DN";

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

fn account(i: usize) -> String {
    format!("P{i:04}")
}

/// Imports the patients, their coverages and one claim each, and posts
/// the 835 that leaves each patient 20.00.
fn seed(s: &Scratch, names: &[(String, String)]) {
    let mut patients = String::from("id,last_name,first_name,birth_date,sex,email\n");
    let mut coverages =
        String::from("id,patient_id,payer_id,payer_name,member_id,relationship,priority\n");
    let mut clps = String::new();
    for (i, (first, last)) in names.iter().enumerate() {
        let id = account(i);
        let number = control_number(PREFIX, i, names.len());
        patients.push_str(&format!(
            "{id},{last},{first},{CLAIMS_837_BIRTH_DATE},M,{}@example.org\n",
            id.to_lowercase()
        ));
        coverages.push_str(&format!(
            "V{i:04},{id},{CLAIMS_837_PAYER},KEY INSURANCE COMPANY,M{number},self,primary\n"
        ));
        clps.push_str(&format!(
            "CLP*{number}*1*100*80*20*12*PCN{i:04}~CAS*PR*2*20~"
        ));
    }
    let files = [
        ("patients", "patients.csv", patients),
        ("coverages", "coverages.csv", coverages),
        ("claims", "claims.837", claims_837_named(PREFIX, names)),
    ];
    for (kind, name, text) in files {
        std::fs::write(s.path(name), text).unwrap();
        let r = json(&s.run(&["import", kind, s.path(name).to_str().unwrap(), "--json"]));
        assert_eq!(r["created"], ACCOUNTS as u64, "{kind}: {r:#}");
        if kind == "claims" {
            assert_eq!(r["patients_created"], 0, "bound to the patients on record");
        }
    }
    let paid = (80 * names.len()).to_string();
    std::fs::write(
        s.path("payment.835"),
        era_835(CLAIMS_837_PAYER, &paid, "TRACE-DUN", &clps),
    )
    .unwrap();
    let r = json(&s.run(&[
        "remits",
        "post",
        s.path("payment.835").to_str().unwrap(),
        "--json",
    ]));
    let posted = r["remittances"][0]["posted"].as_array().unwrap().len();
    assert_eq!(posted, ACCOUNTS, "{:#}", r["remittances"][0]["unapplied"]);
}

/// Lines the sink has written whole so far.
fn received(sink: &SmtpSink) -> usize {
    std::fs::read_to_string(&sink.spool)
        .unwrap_or_default()
        .matches('\n')
        .count()
}

/// The words of a text, upper-cased (names are matched as whole words).
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect()
}

#[test]
fn a_dunning_run_killed_mid_way_sends_one_notice_per_account_and_nothing_clinical() {
    let s = Scratch::new();
    let sink = SmtpSink::start(s.path("spool.jsonl"));
    let mail = format!(
        "smtp_url = \"smtp://127.0.0.1:{}\"\ntls = \"none\"",
        sink.port
    );
    // The practice in UTC: the cadence counts days from the posting's UTC
    // date, so elsewhere a balance posted in the practice's evening is not
    // due until its next day (and this test would wait for it).
    let config = |jobs: &str| {
        format!(
            "{}{jobs}",
            base_config(&mail).replace("America/New_York", "UTC")
        )
    };
    s.write_config(&config(""));
    s.init();
    let names = distinct_names(ACCOUNTS);
    seed(&s, &names);
    let since = Utc::now().date_naive().format("%Y-%m-%d").to_string();

    // A daily run a few seconds after start-up, inside a sending window
    // around now.
    let fire = Utc::now() + chrono::Duration::seconds(12);
    let window = format!(
        "{}-{}",
        (fire - chrono::Duration::hours(1)).format("%H:%M"),
        (fire + chrono::Duration::hours(3)).format("%H:%M")
    );
    s.write_config(&config(&format!(
        "\n[[job]]\nname = \"dunning\"\nkind = \"dunning\"\nschedule = \"{} {} {} * * *\"\nconcurrency = {CONCURRENCY}\n\n[job.params]\nwindow = \"{window}\"\nbatch = {BATCH}\ncontact_phone = \"555-0100\"\n",
        fire.second(),
        fire.minute(),
        fire.hour()
    )));

    let mut d = s.start_daemon("first.log");
    wait_until(Duration::from_secs(180), "the run to send a few", || {
        received(&sink) >= 150
    });
    d.kill9();
    let at_kill = received(&sink);
    assert!(
        at_kill < ACCOUNTS,
        "the run finished before the kill ({at_kill} of {ACCOUNTS}); the test needs more accounts"
    );

    let mut d = s.start_daemon("second.log");
    wait_until(
        Duration::from_secs(300),
        "the resumed run to finish",
        || d.log_text().contains("run ended"),
    );
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());

    // The notice each account is due: its statement, keyed by the day the
    // balance became the patient's (the 835 posting).
    let expected: BTreeMap<String, usize> = (0..ACCOUNTS)
        .map(|i| {
            (
                format!("<dunning_{}_{since}_statement@billd>", account(i)),
                i,
            )
        })
        .collect();

    let msgs = sink.messages();
    let mut by_id: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for m in &msgs {
        let id = m["message_id"].as_str().unwrap().to_string();
        by_id.entry(id).or_default().push(m);
    }
    let unexpected: Vec<&String> = by_id
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(unexpected.is_empty(), "not a due notice: {unexpected:?}");
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !by_id.contains_key(*k))
        .collect();
    assert!(missing.is_empty(), "never sent: {missing:?}");
    assert_eq!(by_id.len(), ACCOUNTS);

    // A notice sent again after the kill is the same message (same
    // Message-ID, recipient and body), and only one that was in flight.
    let again: usize = by_id.values().map(|v| v.len() - 1).sum();
    assert!(
        again <= BATCH * CONCURRENCY,
        "{again} notices went twice; at most {} can be in flight",
        BATCH * CONCURRENCY
    );
    for copies in by_id.values() {
        for c in &copies[1..] {
            assert_eq!(c["body"], copies[0]["body"]);
            assert_eq!(c["rcpt_tos"], copies[0]["rcpt_tos"]);
            assert_eq!(c["subject"], copies[0]["subject"]);
        }
    }

    // Every message: to its patient, naming its patient by first name and
    // nobody else, with nothing clinical and no other identifier.
    let mut name_of: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (first, last)) in names.iter().enumerate() {
        name_of.insert(first.clone(), i);
        name_of.insert(last.clone(), i);
    }
    let mut clinical: Vec<String> = Vec::new();
    for code in CLAIMS_837_DIAGNOSES {
        clinical.push(code.to_string());
        clinical.push(format!("{}.{}", &code[..3], &code[3..]));
    }
    clinical.extend(CLAIMS_837_PROCEDURES.iter().map(|c| c.to_string()));
    let birth = chrono::NaiveDate::parse_from_str(CLAIMS_837_BIRTH_DATE, "%Y-%m-%d").unwrap();
    for fmt in ["%Y-%m-%d", "%Y%m%d", "%m/%d/%Y", "%B %-d, %Y"] {
        clinical.push(birth.format(fmt).to_string());
    }
    for m in &msgs {
        let i = expected[m["message_id"].as_str().unwrap()];
        let body = m["body"].as_str().unwrap();
        let subject = m["subject"].as_str().unwrap_or_default();
        let text = format!("{subject}\n{body}");
        assert_eq!(
            m["rcpt_tos"],
            serde_json::json!([format!("{}@example.org", account(i).to_lowercase())])
        );
        assert!(body.contains("$20.00"), "{body}");
        assert!(body.contains("555-0100"), "{body}");
        let seen = words(&text);
        assert!(seen.contains(&names[i].0), "greets its patient: {body}");
        let others: Vec<&String> = seen
            .iter()
            .filter(|w| name_of.get(*w).is_some_and(|&j| j != i))
            .collect();
        assert!(
            others.is_empty(),
            "message to {} names other patients {others:?}: {body}",
            account(i)
        );
        assert!(
            !seen.contains(&names[i].1),
            "the last name is not needed: {body}"
        );
        for code in &clinical {
            assert!(!text.contains(code.as_str()), "{code} in: {text}");
        }
        // Every member id is `M` and a CLM01 of this prefix.
        assert!(
            !text.contains(&format!("M{PREFIX}")),
            "a member id in: {text}"
        );
    }

    // The store agrees: every notice recorded as sent, one run, resumed.
    let outbox = json(&s.run(&["outbox", "list", "--json"]));
    let sent: BTreeSet<String> = outbox
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["status"] == "sent")
        .map(|m| {
            format!(
                "<{}@billd>",
                m["key"].as_str().unwrap().replace(['#', '/'], "_")
            )
        })
        .collect();
    assert_eq!(sent, expected.keys().cloned().collect::<BTreeSet<_>>());
    let h: Vec<Value> = json(&s.run(&["jobs", "history", "dunning", "--json"]))
        .as_array()
        .unwrap()
        .clone();
    let runs: Vec<_> = h.iter().filter(|e| e["entry"] == "run").collect();
    assert_eq!(runs.len(), 1, "one run, resumed, not a second run: {h:#?}");
    assert_eq!(runs[0]["outcome"], "succeeded", "{h:#?}");
    assert_eq!(runs[0]["items_done"], ACCOUNTS as u64);
    assert!(runs[0]["resumes"].as_u64().unwrap() >= 1, "{h:#?}");
    eprintln!(
        "dunning e2e: {at_kill} of {ACCOUNTS} received at the kill, {again} sent again with their Message-ID"
    );
}
