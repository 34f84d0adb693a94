//! The payer slice end to end with the real connector: claims imported from
//! an 837P, `billd jobs run submission` through core-clearinghouse to
//! billd-sandbox over loopback (both CORE transports), the 999 and 277CA
//! moving them along, `billd jobs run claim-status` following them to paid
//! and denied, a task for each rejection and denial; and kill -9 of the
//! daemon in the middle of a submission batch, after which every claim is
//! in the sandbox's archive exactly once (CLM01 counted across distinct
//! PayloadIDs), and every archived 837P passes pyx12. And coordination of
//! benefits: a primary's 835 posted for a patient with a secondary
//! coverage, the secondary claim submitted through the same connector to
//! the sandbox with the primary's payment and adjustments in its 2320,
//! 2330A, 2330B and 2430 loops, to the cent.

use billd_e2e::{
    PAYER_SCENARIO_HEAD, PayerSandbox, Scratch, base_config, claims_837, core_plugin_table,
    era_835, pyx12_passes, stderr, stdout, wait_until,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The payer sandbox with the test's own scenario.
struct Sandbox(PayerSandbox);

impl std::ops::Deref for Sandbox {
    type Target = PayerSandbox;
    fn deref(&self) -> &PayerSandbox {
        &self.0
    }
}

impl Sandbox {
    fn start(dir: &Path, scenario: &str) -> Sandbox {
        let file = dir.join("scenario.toml");
        std::fs::write(&file, scenario).unwrap();
        Sandbox(PayerSandbox::start(&file, dir.join("archive")))
    }

    /// The archived 837Ps, one per distinct PayloadID.
    fn submissions(&self) -> BTreeMap<String, PathBuf> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(&self.archive)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.split_once("-X12_837_Request_005010X222A1-") {
                out.entry(rest.1.trim_end_matches(".x12").to_string())
                    .or_insert(e.path());
            }
        }
        out
    }

    /// How often each CLM01 was submitted, across distinct PayloadIDs.
    fn clm01_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for path in self.submissions().values() {
            let text = std::fs::read_to_string(path).unwrap();
            for seg in text.split('~') {
                if let Some(rest) = seg.trim().strip_prefix("CLM*") {
                    let id = rest.split('*').next().unwrap().to_string();
                    *counts.entry(id).or_insert(0) += 1;
                }
            }
        }
        counts
    }
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    stdout(out)
}

/// A practice configured with the core-clearinghouse connector against the
/// sandbox over `transport`, and submission and claim-status jobs.
fn practice(s: &Scratch, sandbox: &Sandbox, transport: &str) {
    practice_with(s, sandbox, transport, "");
}

/// [`practice`] with `extra` lines in both jobs' params.
fn practice_with(s: &Scratch, sandbox: &Sandbox, transport: &str, extra: &str) {
    let plugin = core_plugin_table(s, sandbox, transport, "", "");
    s.write_config(&format!(
        r#"{}
{plugin}
[[job]]
name = "submission"
kind = "submission"
schedule = "0 3 * * *"
concurrency = 1
[job.params]
connector = "core-clearinghouse"
batch_size = 25
first_check_days = 0
{extra}

[[job]]
name = "claim-status"
kind = "claim-status"
schedule = "0 4 * * *"
[job.params]
connector = "core-clearinghouse"
{extra}
"#,
        base_config("outbox_dir = \"outbox\""),
    ));
    s.init();
}

fn claims_by_state(s: &Scratch) -> BTreeMap<String, String> {
    let list: serde_json::Value =
        serde_json::from_str(&ok(&s.run(&["claims", "list", "--json"]))).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["control_number"].as_str().unwrap().to_string(),
                c["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn task_kinds(s: &Scratch) -> Vec<String> {
    let tasks: serde_json::Value =
        serde_json::from_str(&ok(&s.run(&["tasks", "list", "--json"]))).unwrap();
    let mut kinds: Vec<String> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    kinds
}

#[test]
fn claims_go_out_and_are_followed_to_paid_denied_and_rejected() {
    let s = Scratch::new();
    let scenario = format!(
        r#"{PAYER_SCENARIO_HEAD}
[[claims]]
claim_id = "FL0000"
status = ["F1:65"]
[[claims]]
claim_id = "FL0001"
ack_277ca = "rejected"
ack_277ca_category = "A7"
ack_277ca_status = "562"
ack_277ca_text = "ENTITY IDENTIFIER INVALID"
[[claims]]
claim_id = "FL0002"
status = ["F2:88"]
[[claims]]
claim_id = "FL0003"
status = ["P1:20"]
"#
    );
    let sandbox = Sandbox::start(s.path("").as_path(), &scenario);
    practice(&s, &sandbox, "soap");
    std::fs::write(s.path("batch.837"), claims_837(4, "FL")).unwrap();
    let out = ok(&s.run(&["import", "claims", s.path("batch.837").to_str().unwrap()]));
    assert!(out.contains("4 new"), "{out}");
    // A second import of the same file changes nothing.
    let out = ok(&s.run(&["import", "claims", s.path("batch.837").to_str().unwrap()]));
    assert!(out.contains("0 new, 0 changed, 4 unchanged"), "{out}");

    // One run: scrubbed, batched, sent, then the 999 and 277CA applied.
    let out = ok(&s.run(&["jobs", "run", "submission"]));
    assert!(out.contains("(2 done, 0 failed of 2)"), "{out}");
    let states = claims_by_state(&s);
    assert_eq!(states["FL0000"], "acknowledged", "{states:?}");
    assert_eq!(states["FL0001"], "rejected", "{states:?}");
    assert_eq!(sandbox.clm01_counts().values().sum::<usize>(), 4);

    let out = ok(&s.run(&["jobs", "run", "claim-status"]));
    assert!(
        out.contains("(4 done, 0 failed of 4)") || out.contains("(3 done, 0 failed of 3)"),
        "{out}\n{}",
        ok(&s.run(&["claims", "show", "1912301953-FL0000"]))
    );
    let states = claims_by_state(&s);
    assert_eq!(
        states.values().map(String::as_str).collect::<Vec<_>>(),
        ["paid", "rejected", "denied", "pending"],
        "{states:?}\n{}",
        ok(&s.run(&["claims", "show", "1912301953-FL0000"]))
    );
    assert_eq!(task_kinds(&s), ["claim-denied", "claim-rejected"]);

    // The claim's history names each step's source.
    let show = ok(&s.run(&["claims", "show", "1912301953-FL0000"]));
    for step in ["[import]", "[billd]", "[999]", "[277CA]", "[277]"] {
        assert!(show.contains(step), "{show}");
    }

    // Nothing is sent twice: another submission run has nothing to send.
    let out = ok(&s.run(&["jobs", "run", "submission"]));
    assert!(out.contains("(1 done, 0 failed of 1)"), "{out}");
    assert!(sandbox.clm01_counts().values().all(|&n| n == 1));
    pyx12_accepts(&sandbox);
}

/// Every archived 837P passes pyx12.
fn pyx12_accepts(sandbox: &Sandbox) {
    let files: Vec<PathBuf> = sandbox.submissions().into_values().collect();
    assert!(!files.is_empty());
    pyx12_passes(&files);
}

fn killed_mid_batch_then_restarted(transport: &str) {
    let s = Scratch::new();
    let sandbox = Sandbox::start(s.path("").as_path(), PAYER_SCENARIO_HEAD);
    practice(&s, &sandbox, transport);
    std::fs::write(s.path("batch.837"), claims_837(60, "KL")).unwrap();
    ok(&s.run(&["import", "claims", s.path("batch.837").to_str().unwrap()]));
    // The first batch's answer is slow (15 s, inside the plugin's 19 s
    // timeout): the daemon dies while it waits.
    sandbox.fault(r#"{"kind": "slow", "count": 1, "delay_ms": 15000}"#);
    let mut daemon = s.start_daemon_ready("daemon1.log", Duration::from_secs(90));
    let mut run = s.spawn(&["jobs", "run", "submission"], "run.log");
    wait_until(
        Duration::from_secs(120),
        "the first 837 in the archive",
        || {
            if let Ok(Some(status)) = run.try_wait() {
                panic!(
                    "jobs run ended before the kill ({status}): {}\n{}",
                    std::fs::read_to_string(s.path("run.log")).unwrap_or_default(),
                    std::fs::read_to_string(s.path("daemon1.log")).unwrap_or_default()
                );
            }
            !sandbox.submissions().is_empty()
        },
    );
    daemon.kill9();
    let _ = run.wait();

    let mut daemon = s.start_daemon("daemon2.log");
    wait_until(
        Duration::from_secs(120),
        "the resumed run to finish",
        || {
            let out = s.run(&["jobs", "history", "submission", "--json"]);
            stdout(&out).contains("\"succeeded\"")
        },
    );
    daemon.stop();
    // The batch in flight at the kill went again after the restart, under
    // its own PayloadID: archived twice, one distinct submission.
    let archived = std::fs::read_dir(&sandbox.archive)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("X12_837_Request"))
        .count();
    assert_eq!(
        archived,
        sandbox.submissions().len() + 1,
        "resent once\n{}\n---\n{}",
        std::fs::read_to_string(s.path("daemon1.log")).unwrap_or_default(),
        std::fs::read_to_string(s.path("daemon2.log")).unwrap_or_default()
    );
    let counts = sandbox.clm01_counts();
    assert_eq!(counts.len(), 60, "{counts:?}");
    let twice: BTreeSet<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    pyx12_accepts(&sandbox);
}

#[test]
fn kill_9_mid_batch_sends_every_claim_exactly_once_over_both_transports() {
    // One after the other: two daemons killed at once would race each
    // other for the machine, not for the claims.
    killed_mid_batch_then_restarted("soap");
    killed_mid_batch_then_restarted("mime");
}

#[test]
fn faults_end_in_retries_then_one_task_and_no_claim_is_lost_or_sent_twice() {
    let s = Scratch::new();
    let sandbox = Sandbox::start(s.path("").as_path(), PAYER_SCENARIO_HEAD);
    practice_with(
        &s,
        &sandbox,
        "mime",
        "max_attempts = 2\nretry_delay = \"1s\"",
    );
    std::fs::write(s.path("batch.837"), claims_837(3, "FT")).unwrap();
    ok(&s.run(&["import", "claims", s.path("batch.837").to_str().unwrap()]));

    // The clearinghouse fails every request: both items (the batch and the
    // acknowledgment fetch) are tried twice, then fail; one task.
    sandbox.fault(r#"{"kind": "http500", "count": 50}"#);
    let out = s.run(&["jobs", "run", "submission"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("(0 done, 2 failed of 2)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(task_kinds(&s), ["job-failing"]);
    let states = claims_by_state(&s);
    assert!(states.values().all(|st| st == "ready"), "{states:?}");

    // Healthy again but rate-limiting once: the next run waits as told
    // and sends the same batch under the same PayloadID.
    sandbox.clear_faults();
    sandbox.fault(r#"{"kind": "http429", "count": 1, "retry_after_seconds": 1}"#);
    let out = ok(&s.run(&["jobs", "run", "submission"]));
    assert!(out.contains("(2 done, 0 failed of 2)"), "{out}");
    let states = claims_by_state(&s);
    assert!(states.values().all(|st| st == "acknowledged"), "{states:?}");
    assert_eq!(sandbox.submissions().len(), 1, "one batch, one PayloadID");
    assert!(sandbox.clm01_counts().values().all(|&n| n == 1));
    assert_eq!(sandbox.clm01_counts().len(), 3);

    // Wrong credentials need a person: no retries, one more task.
    sandbox.fault(r#"{"kind": "bad-credentials", "count": 50}"#);
    let out = s.run(&["jobs", "run", "claim-status"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let tasks: serde_json::Value =
        serde_json::from_str(&ok(&s.run(&["tasks", "list", "--json"]))).unwrap();
    let subjects: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects
            .iter()
            .any(|t| t.contains("claim-status") && t.contains("authentication")),
        "{subjects:?}"
    );
    let states = claims_by_state(&s);
    assert!(states.values().all(|st| st == "acknowledged"), "{states:?}");
}

/// The elements of the segments of `x12` (an archived 837P, `~` ending
/// segments, `*` between elements).
fn segments(x12: &str) -> Vec<Vec<String>> {
    x12.split('~')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.split('*').map(str::to_string).collect())
        .collect()
}

/// Cents of an X12 decimal amount (`52`, `8.5`, `-3.25`).
fn cents(amount: &str) -> i64 {
    let (sign, digits) = match amount.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, amount),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let frac = format!("{frac:0<2}");
    assert_eq!(frac.len(), 2, "finer than a cent: {amount}");
    sign * (whole.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap())
}

/// The sum of the amounts of a CAS segment (CAS03, 06, ... 18).
fn cas_cents(seg: &[String]) -> i64 {
    (3..seg.len()).step_by(3).map(|i| cents(&seg[i])).sum()
}

/// The state of claim `id`.
fn state_of(s: &Scratch, id: &str) -> String {
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&s.run(&["claims", "show", id, "--json"]))).unwrap();
    shown["state"].as_str().unwrap().to_string()
}

#[test]
fn a_secondary_claim_carries_the_primarys_payment_and_adjustments_to_the_cent() {
    let s = Scratch::new();
    let sandbox = Sandbox::start(s.path("").as_path(), PAYER_SCENARIO_HEAD);
    practice(&s, &sandbox, "soap");
    // One claim (CLM01 CB0000): 99213 40.00, 87070 15.00, 99214 35.00,
    // 86663 10.00 to the primary 999996666; the patient is the subscriber.
    std::fs::write(s.path("batch.837"), claims_837(1, "CB")).unwrap();
    ok(&s.run(&["import", "claims", s.path("batch.837").to_str().unwrap()]));
    let shown: serde_json::Value = serde_json::from_str(&ok(&s.run(&[
        "claims",
        "show",
        "1912301953-CB0000",
        "--json",
    ])))
    .unwrap();
    let patient = shown["patient_id"].as_str().unwrap().to_string();
    assert_eq!(state_of(&s, "1912301953-CB0000"), "draft");
    std::fs::write(
        s.path("coverages.csv"),
        format!(
            "id,patient_id,payer_id,payer_name,member_id,group_number,relationship,priority\n\
             COV-SEC,{patient},SECONDPAYER,SECOND MUTUAL,MS42,GS9,self,secondary\n"
        ),
    )
    .unwrap();
    ok(&s.run(&[
        "import",
        "coverages",
        s.path("coverages.csv").to_str().unwrap(),
    ]));

    // The primary claim goes out and is acknowledged.
    ok(&s.run(&["jobs", "run", "submission"]));
    assert_eq!(state_of(&s, "1912301953-CB0000"), "acknowledged");
    assert_eq!(sandbox.submissions().len(), 1);

    // The primary pays 52.00 by line and leaves 20.00 to the patient.
    let dos = (chrono::Utc::now().date_naive() - chrono::Days::new(10))
        .format("%Y%m%d")
        .to_string();
    let era = era_835(
        "999996666",
        "52",
        "PRIMARY-1",
        &format!(
            "CLP*CB0000*1*100*52*20*12*ICN-PRIMARY~\
             SVC*HC:99213*40*24**1~DTM*472*{dos}~CAS*CO*45*8~CAS*PR*2*8~\
             SVC*HC:87070*15*0**1~DTM*472*{dos}~CAS*CO*97*15~\
             SVC*HC:99214*35*20**1~DTM*472*{dos}~CAS*CO*45*5~CAS*PR*1*10~\
             SVC*HC:86663*10*8**1~DTM*472*{dos}~CAS*PR*3*2~"
        ),
    );
    std::fs::write(s.path("primary.835"), &era).unwrap();
    let posted: serde_json::Value = serde_json::from_str(&ok(&s.run(&[
        "remits",
        "post",
        s.path("primary.835").to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    assert_eq!(
        posted["remittances"][0]["secondary_claims"],
        serde_json::json!(["1912301953-CB0000-cob2"]),
        "{posted:#}"
    );

    // The next run scrubs the secondary claim and sends it to its payer.
    ok(&s.run(&["jobs", "run", "submission"]));
    let secondary: Vec<PathBuf> = sandbox
        .submissions()
        .into_values()
        .filter(|p| std::fs::read_to_string(p).unwrap().contains("SBR*S*"))
        .collect();
    assert_eq!(secondary.len(), 1, "{:?}", sandbox.submissions());
    let text = std::fs::read_to_string(&secondary[0]).unwrap();
    let segs = segments(&text);
    let line = |s: &[String]| s.join("*");
    let at = |want: &str| {
        segs.iter()
            .position(|s| line(s) == want)
            .unwrap_or_else(|| panic!("no {want} in\n{text}"))
    };
    // Its own payer is the secondary; the primary is the other payer.
    at("SBR*S*18*GS9******CI");
    at("NM1*IL*1*SMITH*TED****MI*MS42");
    at("NM1*PR*2*SANDBOX HEALTH PLAN*****PI*SECONDPAYER");
    let sbr = at("SBR*P*18*2222-SJ");
    assert!(
        sbr > at("CLM*CB0000*100***11:B:1*Y*A*Y*Y") && sbr < at("LX*1"),
        "{text}"
    );
    let cob: Vec<String> = segs[sbr..at("LX*1")].iter().map(|s| line(s)).collect();
    assert_eq!(
        cob,
        [
            "SBR*P*18*2222-SJ",
            "AMT*D*52",
            "OI***Y***Y",
            "NM1*IL*1*SMITH*TED****MI*MCB0000",
            "NM1*PR*2*KEY INSURANCE COMPANY*****PI*999996666",
            "REF*F8*ICN-PRIMARY",
        ],
        "{text}"
    );
    // One 2430 per line, with the primary's paid amount and adjustments.
    let loop_2430 = |first: &str| {
        let i = at(first);
        let len = 1 + segs[i + 1..]
            .iter()
            .take_while(|s| !["SVD", "LX", "SE"].contains(&s[0].as_str()))
            .count();
        segs[i..i + len].iter().map(|s| line(s)).collect::<Vec<_>>()
    };
    assert_eq!(
        loop_2430("SVD*999996666*24*HC:99213**1"),
        [
            "SVD*999996666*24*HC:99213**1",
            "CAS*CO*45*8",
            "CAS*PR*2*8",
            "DTP*573*D8*20260301",
            "AMT*EAF*8"
        ]
    );
    assert_eq!(
        loop_2430("SVD*999996666*0*HC:87070**1"),
        [
            "SVD*999996666*0*HC:87070**1",
            "CAS*CO*97*15",
            "DTP*573*D8*20260301",
            "AMT*EAF*0"
        ]
    );
    assert_eq!(
        loop_2430("SVD*999996666*20*HC:99214**1"),
        [
            "SVD*999996666*20*HC:99214**1",
            "CAS*CO*45*5",
            "CAS*PR*1*10",
            "DTP*573*D8*20260301",
            "AMT*EAF*10"
        ]
    );
    assert_eq!(
        loop_2430("SVD*999996666*8*HC:86663**1"),
        [
            "SVD*999996666*8*HC:86663**1",
            "CAS*PR*3*2",
            "DTP*573*D8*20260301",
            "AMT*EAF*2"
        ]
    );
    // Balanced to the cent: each SV102 = SVD02 + its CAS, and CLM02 =
    // AMT*D + every CAS (so, no claim-level adjustments, AMT*D = the sum
    // of SVD02).
    let mut charge = 0;
    let mut svd_total = 0;
    let mut cas_total = 0;
    for (i, seg) in segs.iter().enumerate() {
        if seg[0] != "SV1" {
            continue;
        }
        let sv102 = cents(&seg[2]);
        let svd = segs[i..].iter().find(|s| s[0] == "SVD").unwrap();
        let lx_end = segs[i + 1..]
            .iter()
            .position(|s| s[0] == "LX" || s[0] == "SE")
            .unwrap();
        let line_cas: i64 = segs[i + 1..i + 1 + lx_end]
            .iter()
            .filter(|s| s[0] == "CAS")
            .map(|s| cas_cents(s))
            .sum();
        assert_eq!(sv102, cents(&svd[2]) + line_cas, "{}", line(seg));
        charge += sv102;
        svd_total += cents(&svd[2]);
        cas_total += line_cas;
    }
    assert_eq!(charge, 10_000);
    assert_eq!(svd_total, 5_200, "AMT*D = the sum of SVD02");
    assert_eq!(charge, 5_200 + cas_total, "CLM02 = AMT*D + CAS");
    // The primary denied a line: partly paid; the secondary is on its way.
    assert_eq!(state_of(&s, "1912301953-CB0000"), "partially_paid");
    assert_eq!(state_of(&s, "1912301953-CB0000-cob2"), "acknowledged");
    pyx12_passes(&[secondary[0].clone()]);
}
