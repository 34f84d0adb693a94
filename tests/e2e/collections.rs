//! The `collections` job through the real `billd` binary with the
//! collections-agency connector against `billd-sandbox agency` on
//! loopback: accounts seeded from an 837P and an 835 leaving patient
//! responsibility, statements and final notices sent by a real `dunning`
//! job, then placement (once, audited, no patient data in the log), the
//! hold and payment-plan gates, an account refused before sending (its
//! street holds the layout's delimiter), a recall of an account held after
//! placement, agency payments posted to the ledger once (paid in full:
//! closed, not recalled) and an agency dispute putting a dispute hold on
//! the account and calling it back.
//!
//! Over SFTP (the connector's `sftp` transport against a real sshd whose
//! folders the agency sandbox feeds): the placement file and a recall file
//! go up, the agency's update files come down, post once and are deleted
//! from the server only after billd stored them; the credential never
//! enters the plugin and the audit names every operation.
//!
//! The dunning cadence used here is a statement on day 0 and a final notice
//! on day 1, and the collections job's day gates are 0. The day between
//! them passes without waiting: the 835 is posted and the statements sent
//! with the wall clock a day back (libfaketime, [`Scratch::run_shifted`]),
//! the final notices and everything after at the real time.

use crate::sshd::Sshd;
use billd_e2e::{
    Scratch, base_config, claims_837, file_names, loopback_request, sandbox_bin, sha256_file,
    start_listening, stderr, stdout, wait_until, workspace_root,
};
use chrono::Timelike as _;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

/// The ports the collections-agency manifest allows.
const PORTS: std::ops::Range<u16> = 8280..8290;

/// The practice's client number at the agency.
const CLIENT: &str = "RFM001";

/// The agency's API key.
const API_KEY: &str = "agency-e2e-key";

/// The built collections-agency package; panics with the fix if missing.
fn package() -> PathBuf {
    let p = workspace_root().join("plugins/dist/collections-agency");
    assert!(
        p.join("plugin.toml").exists(),
        "{} is missing: run scripts/build-plugins.sh",
        p.display()
    );
    p
}

/// `billd-sandbox agency` on the first free allowed port; killed on drop.
struct Agency {
    child: Child,
    port: u16,
}

impl Agency {
    fn start() -> Agency {
        let args = ["agency", "--client-number", CLIENT, "--api-key", API_KEY].map(OsStr::new);
        let (child, port) = start_listening(sandbox_bin(), &args, PORTS, "the agency sandbox");
        Agency { child, port }
    }

    /// The agency also taking files in the folders under `root` (an
    /// sshd's, sandbox/README.md `--sftp-root`).
    fn start_sftp(root: &std::path::Path) -> Agency {
        let args = [
            OsStr::new("agency"),
            OsStr::new("--client-number"),
            OsStr::new(CLIENT),
            OsStr::new("--sftp-root"),
            root.as_os_str(),
        ];
        let (child, port) = start_listening(sandbox_bin(), &args, PORTS, "the agency sandbox");
        Agency { child, port }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn get(&self, path: &str) -> Value {
        serde_json::from_str(&loopback_request(self.port, "GET", path, "")).unwrap()
    }

    /// Scripts an update at the agency.
    fn update(&self, body: &Value) {
        loopback_request(self.port, "POST", "/_sandbox/updates", &body.to_string());
    }

    /// Every detail line the agency received (first sends only).
    fn lines(&self) -> Vec<String> {
        self.get("/_sandbox/placements")["files"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|f| f["lines"].as_array().unwrap().clone())
            .map(|l| l.as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Agency {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

fn ok(s: &Scratch, args: &[&str]) -> String {
    let out = s.run(args);
    assert!(
        out.status.success(),
        "billd {args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// A dunning window around the current time of day in UTC (three hours
/// wide; it may run past midnight).
fn window_now() -> String {
    let now = chrono::Utc::now();
    let start = now - chrono::Duration::hours(1);
    let end = now + chrono::Duration::hours(2);
    format!(
        "{:02}:{:02}-{:02}:{:02}",
        start.hour(),
        start.minute(),
        end.hour(),
        end.minute()
    )
}

/// The practice's configuration (in UTC), with the connector over HTTPS,
/// a dunning job (statement day 0, final notice day 1) and the
/// collections job.
fn config(agency: &Agency) -> String {
    let pkg = package();
    let origin = agency.origin();
    practice(&format!(
        r#"[[plugin]]
name = "collections-agency"
path = "{}"
sha256 = "{}"
allowed_hosts = ["{origin}"]
settings = {{ base-url = "{origin}", client-number = "{CLIENT}", page-size = 2, timeout-ms = 5000 }}
secrets = {{ api-key = "file:agency.key" }}
"#,
        pkg.display(),
        sha256_file(&pkg.join("collections_agency.wasm")),
    ))
}

/// [`config`] with the connector over SFTP to `sshd`, whose folders the
/// agency sandbox feeds.
fn config_sftp(sshd: &Sshd) -> String {
    let pkg = package();
    let root = sshd.root();
    let dir = |d: &str| root.join(d).display().to_string();
    practice(&format!(
        r#"[[plugin]]
name = "collections-agency"
path = "{}"
sha256 = "{}"
settings = {{ transport = "sftp", client-number = "{CLIENT}", placements-dir = "{}", recalls-dir = "{}", updates-dir = "{}" }}

[plugin.sftp.agency]
host = "127.0.0.1"
port = {}
user = "{}"
host_key = "{}"
private_key = "file:{}"
timeout_secs = 10
"#,
        pkg.display(),
        sha256_file(&pkg.join("collections_agency.wasm")),
        dir("placements"),
        dir("recalls"),
        dir("updates"),
        sshd.port,
        sshd.user,
        sshd.host_key,
        sshd.client_key.display(),
    ))
}

/// The configuration around `plugin` (a `[[plugin]]` table): a dunning job
/// (statement day 0, final notice day 1) and the collections job.
fn practice(plugin: &str) -> String {
    format!(
        r#"{}
{plugin}
[[job]]
name = "dunning"
kind = "dunning"
schedule = "0 0 3 1 1 *"

[job.params]
min_balance_cents = 100
window = "{}"
steps = [
  {{ name = "statement", day = 0, template = "statement" }},
  {{ name = "final", day = 1, template = "final-notice" }},
]

[[job]]
name = "collections"
kind = "collections"
schedule = "0 0 4 1 1 *"

[job.params]
connector = "collections-agency"
min_balance_cents = 1000
min_days_since_first_statement = 0
min_days_since_final_notice = 0
max_attempts = 3
retry_delay = "1s"
"#,
        base_config("outbox_dir = \"outbox\"").replace("America/New_York", "UTC"),
        window_now(),
    )
}

/// An 835 paying 40.00 of each 100.00 claim and leaving 60.00 to the
/// patient (PR-1, deductible).
fn remit(claims: &[String]) -> String {
    let clps: String = claims
        .iter()
        .enumerate()
        .map(|(i, c)| format!("CLP*{c}*1*100*40*60*12*PCN{i}~CAS*PR*1*60~"))
        .collect();
    let paid = 40 * claims.len();
    let body = format!(
        "BPR*I*{paid}*C*ACH************20261201~TRN*1*AGENCY-E2E*KEYINS~N1*PR*KEY INSURANCE COMPANY~N1*PE*BEN KILDARE SERVICE*XX*1912301953~LX*1~{clps}"
    );
    let n = body.matches('~').count() + 2;
    format!(
        "ISA*00*          *00*          *ZZ*A              *ZZ*B              *261201*1200*^*00501*000000001*0*P*:~GS*HP*A*B*20261201*1200*1*X*005010X221A1~ST*835*0001~{body}SE*{n}*0001~GE*1*1~IEA*1*000000001~"
    )
}

fn patient_cents(s: &Scratch, account: &str) -> i64 {
    let a = json_of(&s.run(&["accounts", "show", account, "--json"]));
    a["balances"]["patient_cents"].as_i64().unwrap()
}

/// `n` claims for `n` patients (control numbers `{prefix}0000`, ...)
/// imported, the patients' addresses from `street`, and an 835 posted
/// yesterday leaving 60.00 on each; their account ids.
fn seed(
    s: &Scratch,
    prefix: &str,
    n: usize,
    street: impl Fn(usize) -> &'static str,
) -> Vec<String> {
    std::fs::write(s.path("claims.837"), claims_837(n, prefix)).unwrap();
    ok(
        s,
        &["import", "claims", s.path("claims.837").to_str().unwrap()],
    );
    let controls: Vec<String> = (0..n).map(|i| format!("{prefix}{i:04}")).collect();
    let ids: Vec<String> = controls
        .iter()
        .map(|c| {
            let claim = json_of(&s.run(&["claims", "show", &format!("1912301953-{c}"), "--json"]));
            claim["patient_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut csv = String::from(
        "id,last_name,first_name,middle_name,birth_date,sex,email,phone,address_line1,city,state,postal_code\n",
    );
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(&format!(
            "{id},SMITH,TED,Q,1973-05-01,M,ted{i}@example.org,305-555-014{i},{},MIAMI,FL,33413\n",
            street(i)
        ));
    }
    std::fs::write(s.path("patients.csv"), csv).unwrap();
    ok(
        s,
        &[
            "import",
            "patients",
            s.path("patients.csv").to_str().unwrap(),
        ],
    );
    std::fs::write(s.path("era.835"), remit(&controls)).unwrap();
    // Posted yesterday, so today is day 1 of the patients' balances.
    let yesterday = s.run_shifted(-1, &["remits", "post", s.path("era.835").to_str().unwrap()]);
    assert!(yesterday.status.success(), "{}", stderr(&yesterday));
    for id in &ids {
        assert_eq!(patient_cents(s, id), 6000, "{id}");
    }
    ids
}

#[test]
fn delinquent_accounts_are_placed_once_gated_recalled_and_the_agencys_news_posts_back() {
    let agency = Agency::start();
    let s = Scratch::new();
    std::fs::write(s.path("agency.key"), format!("{API_KEY}\n")).unwrap();
    s.write_config(&config(&agency));
    s.init();

    // Six claims for six patients; the 835 leaves 60.00 on each. The
    // sixth patient's street holds the layout's delimiter.
    let ids = seed(&s, "AG", 6, |i| {
        if i == 5 {
            "12 ELM ST | APT 3"
        } else {
            "236 N MAIN ST"
        }
    });
    let (placed, held, planned, later_held, paid_off, delimited) =
        (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4], &ids[5]);

    // Nothing has had a statement: the collections job places nothing.
    ok(&s, &["jobs", "run", "collections"]);
    assert!(agency.lines().is_empty(), "{:?}", agency.lines());

    // Statements yesterday, final notices today.
    let yesterday = s.run_shifted(-1, &["jobs", "run", "dunning"]);
    assert!(yesterday.status.success(), "{}", stderr(&yesterday));
    ok(&s, &["jobs", "run", "dunning"]);
    let outbox = json_of(&s.run(&["outbox", "list", "--json"]));
    assert_eq!(outbox.as_array().unwrap().len(), 12, "{outbox:#}");

    // A hold and a payment plan keep two accounts from the agency.
    ok(
        &s,
        &[
            "holds",
            "add",
            held,
            "--kind",
            "other",
            "--reason",
            "practice review",
            "--by",
            "dana",
        ],
    );
    let start = (chrono::Utc::now() + chrono::Duration::days(20))
        .date_naive()
        .to_string();
    ok(
        &s,
        &[
            "plans",
            "create",
            planned,
            "--total",
            "60.00",
            "--installment",
            "20.00",
            "--start",
            &start,
            "--by",
            "dana",
        ],
    );

    // This run goes through the daemon, whose log shows that every
    // placement is audited and that no patient data (nor the key) is logged.
    // The agency's answer to the file is lost on the way back: the run's
    // retry sends the batch again under its key, the same file, and the
    // agency answers it from its idempotency record.
    loopback_request(
        agency.port,
        "POST",
        "/_sandbox/lose-answers",
        r#"{"count": 1}"#,
    );
    let mut d = s.start_daemon_ready("daemon.log", Duration::from_secs(60));
    ok(&s, &["jobs", "run", "collections"]);
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());
    let log = d.log_text();
    assert_eq!(
        log.matches("account placed with the agency").count(),
        3,
        "{log}"
    );
    for private in ["SMITH", "MAIN ST", "19730501", "3055550140", API_KEY] {
        assert!(!log.contains(private), "{private} in the log: {log}");
    }
    let received = agency.get("/_sandbox/placements");
    assert_eq!(
        received["files"].as_array().unwrap().len(),
        1,
        "{received:#}"
    );
    assert_eq!(received["replays"], 1, "the resend was the same file");
    let lines = agency.lines();
    let mut refs: Vec<&str> = lines.iter().map(|l| l.split('|').nth(2).unwrap()).collect();
    refs.sort_unstable();
    let mut want = [placed.as_str(), later_held.as_str(), paid_off.as_str()];
    want.sort_unstable();
    assert_eq!(refs, want, "{lines:#?}");
    let line = lines
        .iter()
        .find(|l| l.split('|').nth(2) == Some(placed.as_str()))
        .unwrap();
    let f: Vec<&str> = line.split('|').collect();
    assert_eq!(f.len(), 19, "{line}");
    assert_eq!(&f[..5], ["D", CLIENT, placed.as_str(), "SMITH", "TED"]);
    assert_eq!(f[10..13], ["FL", "33413", "3055550140"]);
    assert_eq!(f[13], "19730501");
    assert_eq!(f[15], "6000", "the amount due");
    assert_eq!(f[16], "", "no payment by the patient yet");
    assert!(!line.contains("example.org"), "no email: {line}");
    for dx in ["J029", "Z0000"] {
        assert!(!line.contains(dx), "nothing clinical: {line}");
    }

    // A second run places nothing new.
    ok(&s, &["jobs", "run", "collections"]);
    assert_eq!(agency.lines().len(), 3, "{:?}", agency.lines());

    // Held after placement: called back (bankruptcy).
    ok(
        &s,
        &[
            "holds",
            "add",
            later_held,
            "--kind",
            "bankruptcy",
            "--reason",
            "chapter 7",
            "--by",
            "dana",
        ],
    );
    ok(&s, &["jobs", "run", "collections"]);
    let recalls = agency.get("/_sandbox/recalls")["recalls"].clone();
    assert_eq!(recalls.as_array().unwrap().len(), 1, "{recalls:#}");
    assert_eq!(recalls[0]["debtor_ref"], later_held.as_str());
    assert_eq!(recalls[0]["reason"], "BKR");
    assert_eq!(recalls[0]["accepted"], true);
    let accounts = agency.get("/_sandbox/accounts")["accounts"].clone();
    assert_eq!(
        recalls[0]["agency_account"],
        accounts[later_held.as_str()]["agency_account"],
        "billd sent the agency's account number it was given"
    );
    assert_eq!(accounts[later_held.as_str()]["standing"], "recalled");

    // The agency collects 25.00 (fee 7.50): the ledger drops by the gross.
    // A suspension before it changes nothing in billd.
    agency.update(&json!({"code": "SUS", "debtor_ref": placed, "reason": "skip trace"}));
    agency.update(&json!({"code": "REI", "debtor_ref": placed}));
    agency.update(
        &json!({"code": "PAY", "debtor_ref": placed, "gross_cents": 2500, "fee_cents": 750}),
    );
    ok(&s, &["jobs", "run", "collections"]);
    assert_eq!(patient_cents(&s, placed), 3500);
    ok(&s, &["jobs", "run", "collections"]);
    assert_eq!(patient_cents(&s, placed), 3500, "the payment posts once");

    // Paid in full at the agency (60.00, fee 18.00): the balance is gone
    // and the agency closed its file, so nothing is recalled.
    agency.update(&json!({"code": "PIF", "debtor_ref": paid_off, "fee_cents": 1800}));
    ok(&s, &["jobs", "run", "collections"]);
    assert_eq!(patient_cents(&s, paid_off), 0);
    ok(&s, &["jobs", "run", "collections"]);
    let recalls = agency.get("/_sandbox/recalls")["recalls"].clone();
    assert_eq!(recalls.as_array().unwrap().len(), 1, "{recalls:#}");

    // The debtor disputes at the agency: a dispute hold, and the account
    // is called back.
    agency.update(&json!({"code": "DSP", "debtor_ref": placed, "reason": "billed twice"}));
    ok(&s, &["jobs", "run", "collections"]);
    let holds = json_of(&s.run(&["holds", "list", "--account", placed, "--json"]));
    let kinds: Vec<&str> = holds
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["dispute"], "{holds:#}");
    let recalls = agency.get("/_sandbox/recalls")["recalls"].clone();
    assert_eq!(recalls.as_array().unwrap().len(), 2, "{recalls:#}");
    assert_eq!(recalls[1]["debtor_ref"], placed.as_str());
    assert_eq!(recalls[1]["reason"], "DSP");
    let tasks = json_of(&s.run(&["tasks", "list", "--json"]));
    let kinds: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"collections-dispute"), "{kinds:?}");
    assert!(!kinds.contains(&"collections-unknown-update"), "{kinds:?}");
    assert!(!kinds.contains(&"collections-bad-update"), "{kinds:?}");
    assert!(!kinds.contains(&"collections-recall-refused"), "{kinds:?}");

    // The account whose street holds `|` was refused before sending: a
    // task names the field, not the street.
    let refused: Vec<&Value> = tasks
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "collections-refused")
        .collect();
    assert_eq!(refused.len(), 1, "{tasks:#}");
    let subject = refused[0]["subject"].as_str().unwrap();
    assert!(subject.contains(delimited.as_str()), "{subject}");
    assert!(subject.contains("debtor.address.line1"), "{subject}");
    assert!(!subject.contains("ELM"), "{subject}");

    // The held, planned and refused accounts never reached the agency.
    let all = agency.lines().join("\n");
    for never in [held, planned, delimited] {
        assert!(!all.contains(never.as_str()), "{never}: {all}");
    }
}

#[test]
fn over_sftp_placements_and_recalls_go_up_and_the_agencys_update_files_post_once() {
    let sshd = Sshd::start();
    let root = sshd.root();
    let agency = Agency::start_sftp(&root);
    let s = Scratch::new();
    s.write_config(&config_sftp(&sshd));
    s.init();
    let ids = seed(&s, "SA", 3, |_| "236 N MAIN ST");
    let yesterday = s.run_shifted(-1, &["jobs", "run", "dunning"]);
    assert!(yesterday.status.success(), "{}", stderr(&yesterday));
    ok(&s, &["jobs", "run", "dunning"]);

    // The placement file goes up under its key's name; the agency takes
    // it (and removes it) and opens the three accounts.
    ok(&s, &["jobs", "run", "collections"]);
    wait_until(Duration::from_secs(20), "the agency's accounts", || {
        agency.get("/_sandbox/accounts")["accounts"]
            .as_object()
            .is_some_and(|a| a.len() == 3)
    });
    let received = agency.get("/_sandbox/placements");
    let received = received["files"].as_array().unwrap();
    assert_eq!(received.len(), 1, "{received:#?}");
    let name = received[0]["key"].as_str().unwrap();
    assert!(
        name.starts_with(&format!("BCP1-{CLIENT}-")) && name.ends_with(".txt"),
        "{name}"
    );
    assert!(file_names(&root.join("placements")).is_empty());
    let mut refs: Vec<String> = agency
        .lines()
        .iter()
        .map(|l| l.split('|').nth(2).unwrap().to_owned())
        .collect();
    refs.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(refs, want);
    // A second run sends nothing new.
    ok(&s, &["jobs", "run", "collections"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(agency.lines().len(), 3, "{:?}", agency.lines());

    // The agency collects 25.00 (fee 7.50) on the first account: its
    // update file comes down, posts, and is deleted once stored.
    agency.update(
        &json!({"code": "PAY", "debtor_ref": ids[0], "gross_cents": 2500, "fee_cents": 750}),
    );
    let updates = root.join("updates");
    wait_until(Duration::from_secs(20), "the agency's update file", || {
        !file_names(&updates).is_empty()
    });
    ok(&s, &["jobs", "run", "collections"]);
    assert_eq!(patient_cents(&s, &ids[0]), 3500);
    assert!(
        file_names(&updates).is_empty(),
        "{:?}",
        file_names(&updates)
    );
    ok(&s, &["jobs", "run", "collections"]);
    assert_eq!(patient_cents(&s, &ids[0]), 3500, "the payment posts once");

    // A broken update file is refused whole and stays on the server: the
    // run fails naming it, nothing posts; once the agency replaces it, the
    // updates post.
    std::fs::write(
        updates.join("000100-updates.txt"),
        format!(
            "H|BCU1|{CLIENT}|20261201|1\nU|9|PAY|{}||20261201|1000|0|1000|\nT|2\n",
            ids[1]
        ),
    )
    .unwrap();
    let failed = s.run(&["jobs", "run", "collections"]);
    let said = format!("{}{}", stdout(&failed), stderr(&failed));
    assert!(said.contains("000100-updates.txt"), "{said}");
    assert_eq!(patient_cents(&s, &ids[1]), 6000);
    assert_eq!(file_names(&updates), ["000100-updates.txt"]);
    std::fs::write(
        updates.join("000100-updates.txt"),
        format!(
            "H|BCU1|{CLIENT}|20261201|1\nU|9|PAY|{}||20261201|1000|0|1000|\nT|1\n",
            ids[1]
        ),
    )
    .unwrap();
    ok(&s, &["jobs", "run", "collections"]);
    assert_eq!(patient_cents(&s, &ids[1]), 5000);
    assert!(
        file_names(&updates).is_empty(),
        "{:?}",
        file_names(&updates)
    );

    // Held after placement: a recall file goes up and the agency stops.
    ok(
        &s,
        &[
            "holds",
            "add",
            &ids[2],
            "--kind",
            "bankruptcy",
            "--reason",
            "chapter 7",
            "--by",
            "dana",
        ],
    );
    // (Through the daemon, whose log holds the audit.)
    let mut d = s.start_daemon_ready("daemon.log", Duration::from_secs(60));
    ok(&s, &["jobs", "run", "collections"]);
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());
    wait_until(Duration::from_secs(20), "the recall at the agency", || {
        agency.get("/_sandbox/accounts")["accounts"][ids[2].as_str()]["standing"] == "recalled"
    });
    let recalls = agency.get("/_sandbox/recalls")["recalls"].clone();
    assert_eq!(recalls.as_array().unwrap().len(), 1, "{recalls:#}");
    assert_eq!(recalls[0]["reason"], "BKR");
    assert!(file_names(&root.join("recalls")).is_empty());

    // Every SFTP operation is audited (the recall file's upload among
    // them); the credential is billd's alone.
    let log = d.log_plain();
    let audit: Vec<&str> = log.lines().filter(|l| l.contains("plugin sftp")).collect();
    assert!(
        audit
            .iter()
            .any(|l| l.contains("op=put") && l.contains("/recalls/BCR1-")),
        "{log}"
    );
    let key = std::fs::read_to_string(&sshd.client_key).unwrap();
    let secret_line = key.lines().nth(1).unwrap();
    assert!(!log.contains(secret_line), "the key in the log");
    for private in ["SMITH", "MAIN ST", "19730501"] {
        assert!(!log.contains(private), "{private} in the log");
    }
}
