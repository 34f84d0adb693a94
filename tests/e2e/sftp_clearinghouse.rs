//! The SFTP clearinghouse end to end: the real `billd` binary with the
//! sftp-clearinghouse connector against a real OpenSSH sshd on loopback.
//! `billd jobs run submission` uploads the 837P batch into the inbound
//! folder under its idempotency-key name (through a temporary name), a 999
//! and an 835 put into the outbound folder move the claims along and post
//! to the ledger, and each outbound file is deleted from the server only
//! after billd stored what it held; a file of another kind stays. With the
//! payer sandbox feeding the sshd's folders, claims go from upload to paid
//! and rejected, and kill -9 of the daemon frozen inside an upload, then a
//! restart, leaves every claim at the payer exactly once (CLM01 counted
//! across distinct uploaded file names); every uploaded 837P passes pyx12.

use crate::sshd::Sshd;
use billd_e2e::{
    PAYER_SCENARIO_HEAD, PayerSandbox, Scratch, base_config, claims_837, era_835, file_names,
    pyx12_passes, sandbox_bin, sha256_file, stderr, stdout, wait_until, workspace_root,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    stdout(out)
}

fn package() -> PathBuf {
    let p = workspace_root().join("plugins/dist/sftp-clearinghouse");
    assert!(
        p.join("plugin.toml").exists(),
        "{} is missing: run scripts/build-plugins.sh",
        p.display()
    );
    p
}

/// A practice with the connector pointed at `sshd`, a submission job and a
/// remittance-posting job on it.
fn practice(s: &Scratch, sshd: &Sshd, inbound: &str, outbound: &str) {
    let pkg = package();
    s.write_config(&format!(
        r#"{base}
[[plugin]]
name = "sftp-clearinghouse"
path = "{path}"
sha256 = "{sha}"
settings = {{ inbound-dir = "{inbound}", outbound-dir = "{outbound}" }}

[plugin.sftp.clearinghouse]
host = "127.0.0.1"
port = {port}
user = "{user}"
host_key = "{host_key}"
private_key = "file:{key}"
timeout_secs = 10

[[job]]
name = "submission"
kind = "submission"
schedule = "0 3 * * *"
concurrency = 1
[job.params]
connector = "sftp-clearinghouse"
batch_size = 25
first_check_days = 0

[[job]]
name = "remits"
kind = "remittance-posting"
schedule = "0 5 * * *"
[job.params]
connector = "sftp-clearinghouse"
"#,
        base = base_config("outbox_dir = \"outbox\""),
        path = pkg.display(),
        sha = sha256_file(&pkg.join("sftp_clearinghouse.wasm")),
        port = sshd.port,
        user = sshd.user,
        host_key = sshd.host_key,
        key = sshd.client_key.display(),
    ));
    s.init();
}

fn claims_by_state(s: &Scratch) -> Vec<(String, String)> {
    let list: Value = serde_json::from_str(&ok(&s.run(&["claims", "list", "--json"]))).unwrap();
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

/// A 999 accepting the batch whose GS06 is `group`.
fn ack_999(group: &str) -> String {
    format!(
        "ISA*00*          *00*          *ZZ*SANDBOXPAYER   *ZZ*BILLDCLINIC    *260301*1200*^*00501*000000501*0*P*:~\
         GS*FA*SANDBOXPAYER*BILLDCLINIC*20260301*1200*501*X*005010X231A1~\
         ST*999*0001*005010X231A1~AK1*HC*{group}*005010X222A1~AK2*837*0001*005010X222A1~IK5*A~\
         AK9*A*1*1*1~SE*6*0001~GE*1*501~IEA*1*000000501~"
    )
}

#[test]
fn batches_go_up_and_acks_and_remittances_come_down_deleted_only_once_stored() {
    let sshd = Sshd::start();
    let inbound = sshd.folder("inbound");
    let outbound = sshd.folder("outbound");
    let (in_dir, out_dir) = (sshd.root().join("inbound"), sshd.root().join("outbound"));
    let s = Scratch::new();
    practice(&s, &sshd, &inbound, &outbound);
    std::fs::write(s.path("batch.837"), claims_837(2, "SF")).unwrap();
    ok(&s.run(&["import", "claims", s.path("batch.837").to_str().unwrap()]));

    // Submission: one 837P in the inbound folder, under its key's name, no
    // temporary file left; nothing to pick up yet.
    let run = s.run(&["jobs", "run", "submission"]);
    let out = ok(&run);
    assert!(out.contains("0 failed"), "{out}\n{}", stderr(&run));
    let uploaded = file_names(&in_dir);
    assert_eq!(uploaded.len(), 1, "{uploaded:?}");
    assert!(
        uploaded[0].starts_with("billd-") && uploaded[0].ends_with(".837"),
        "{uploaded:?}"
    );
    let x12 = std::fs::read_to_string(in_dir.join(&uploaded[0])).unwrap();
    for clm in ["CLM*SF0000*", "CLM*SF0001*"] {
        assert!(x12.contains(clm), "{x12}");
    }
    assert!(
        claims_by_state(&s).iter().all(|(_, st)| st == "submitted"),
        "{:?}",
        claims_by_state(&s)
    );
    let group = x12
        .split('~')
        .find_map(|seg| seg.trim().strip_prefix("GS*"))
        .map(|gs| gs.split('*').nth(5).unwrap().to_string())
        .unwrap();

    // The clearinghouse answers: a 999 and an 835, and a report of its own.
    std::fs::write(out_dir.join("a-ack.999"), ack_999(&group)).unwrap();
    // (The payer named with its id in N1*PR, as clearinghouses send it.)
    let era = era_835(
        "SANDBOXPAYER",
        "160",
        "SFTP-TRACE-1",
        "CLP*SF0000*1*100*80*20*12*PCN1~CAS*PR*2*20~CLP*SF0001*1*100*80*20*12*PCN2~CAS*PR*2*20~",
    )
    .replace("N1*PR*SOME PAYER~", "N1*PR*SOME PAYER*XV*SANDBOXPAYER~");
    std::fs::write(out_dir.join("b-era.835"), &era).unwrap();
    std::fs::write(out_dir.join("c-report.txt"), "weekly summary, not X12").unwrap();

    // The next submission run picks up the 999: the batch is accepted,
    // then the 999 is deleted; the 835 and the report stay.
    let run = s.run(&["jobs", "run", "submission"]);
    ok(&run);
    let states = claims_by_state(&s);
    assert!(
        states.iter().all(|(_, st)| st == "accepted"),
        "{states:?}\n{}",
        stderr(&run)
    );
    assert_eq!(file_names(&out_dir), ["b-era.835", "c-report.txt"]);

    // The remittance job posts the 835, then deletes it.
    let run = s.run(&["jobs", "run", "remits"]);
    ok(&run);
    let states = claims_by_state(&s);
    assert!(
        states.iter().all(|(_, st)| st == "paid"),
        "{states:?}\n{}\n{}\n{:?}\n{}",
        stdout(&run),
        stderr(&run),
        file_names(&out_dir),
        stdout(&s.run(&["tasks", "show", "T000001"]))
    );
    assert_eq!(file_names(&out_dir), ["c-report.txt"]);

    // Nothing is posted twice, nothing else is deleted.
    ok(&s.run(&["jobs", "run", "remits"]));
    ok(&s.run(&["jobs", "run", "submission"]));
    assert_eq!(file_names(&out_dir), ["c-report.txt"]);
    assert_eq!(file_names(&in_dir).len(), 1);
}

/// The payer sandbox behind the sshd: it takes the uploads from the
/// inbound folder and answers in the outbound folder (sandbox/README.md,
/// `--sftp-root`).
fn sandbox_behind(s: &Scratch, sshd: &Sshd, scenario: &str) -> PayerSandbox {
    let file = s.path("scenario.toml");
    std::fs::write(&file, scenario).unwrap();
    let root = sshd.root();
    PayerSandbox::start_args(
        sandbox_bin(),
        &file,
        s.path("archive"),
        &[OsStr::new("--sftp-root"), root.as_os_str()],
    )
}

/// The archived 837Ps, one per distinct uploaded file name.
fn uploads(sandbox: &PayerSandbox) -> BTreeMap<String, PathBuf> {
    sandbox
        .archived("X12_837_Request_005010X222A1")
        .into_iter()
        .fold(BTreeMap::new(), |mut m, (name, path)| {
            m.entry(name).or_insert(path);
            m
        })
}

/// How often each CLM01 reached the payer, across distinct file names.
fn clm01_counts(sandbox: &PayerSandbox) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for path in uploads(sandbox).values() {
        for seg in std::fs::read_to_string(path).unwrap().split('~') {
            if let Some(rest) = seg.trim().strip_prefix("CLM*") {
                *counts
                    .entry(rest.split('*').next().unwrap().to_string())
                    .or_insert(0) += 1;
            }
        }
    }
    counts
}

#[test]
fn the_payer_sandbox_answers_over_sftp_from_upload_to_paid_and_rejected() {
    let sshd = Sshd::start();
    let s = Scratch::new();
    let sandbox = sandbox_behind(
        &s,
        &sshd,
        &format!(
            r#"{PAYER_SCENARIO_HEAD}
[[claims]]
claim_id = "SP0000"
[[claims.remittances]]
kind = "payment"
trace_number = "SP-TRACE-1"
payment_date = "2026-03-01"
paid_cents = 8000
patient_responsibility_cents = 2000

[[claims]]
claim_id = "SP0001"
ack_277ca = "rejected"
ack_277ca_text = "MISSING SUBSCRIBER GROUP NUMBER"
"#
        ),
    );
    let (inbound, outbound) = (sshd.folder("inbound"), sshd.folder("outbound"));
    practice(&s, &sshd, &inbound, &outbound);
    std::fs::write(s.path("batch.837"), claims_837(2, "SP")).unwrap();
    ok(&s.run(&["import", "claims", s.path("batch.837").to_str().unwrap()]));

    ok(&s.run(&["jobs", "run", "submission"]));
    let out_dir = sshd.root().join("outbound");
    // The payer answers within 100 ms: a 999, a 277CA and an 835 (the run
    // may already have picked up the acknowledgments; the 835 waits for
    // the remittance job).
    wait_until(Duration::from_secs(20), "the payer's 835", || {
        file_names(&out_dir).contains(&"0003-era.835".to_string())
    });
    assert!(file_names(&sshd.root().join("inbound")).is_empty());
    assert_eq!(uploads(&sandbox).len(), 1);

    // The 999 and the 277CA come down: one claim acknowledged, one rejected
    // with a task naming the reason; both files gone from the server.
    ok(&s.run(&["jobs", "run", "submission"]));
    let states: BTreeMap<_, _> = claims_by_state(&s).into_iter().collect();
    assert_eq!(states["SP0000"], "acknowledged", "{states:?}");
    assert_eq!(states["SP0001"], "rejected", "{states:?}");
    assert_eq!(file_names(&out_dir), ["0003-era.835"]);
    let tasks = ok(&s.run(&["tasks", "list", "--json"]));
    assert!(
        tasks.contains("claim-rejected") && !tasks.contains("TED") && !tasks.contains("SMITH"),
        "{tasks}"
    );
    let task = ok(&s.run(&["tasks", "show", "T000001"]));
    assert!(task.contains("MISSING SUBSCRIBER GROUP NUMBER"), "{task}");

    // The 835 comes down and posts; the server is left empty.
    ok(&s.run(&["jobs", "run", "remits"]));
    let states: BTreeMap<_, _> = claims_by_state(&s).into_iter().collect();
    assert_eq!(states["SP0000"], "paid", "{states:?}");
    assert!(
        file_names(&out_dir).is_empty(),
        "{:?}",
        file_names(&out_dir)
    );
    assert!(clm01_counts(&sandbox).values().all(|&n| n == 1));
    pyx12_passes(&uploads(&sandbox).into_values().collect::<Vec<_>>());
}

/// The processes whose parent is `pid` (read from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // pid (comm) state ppid ...: comm may hold spaces.
                    let after = stat.rsplit_once(')')?.1.to_string();
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

fn signal(pids: &[u32], sig: &str) {
    for pid in pids {
        let _ = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status();
    }
}

#[test]
fn kill_9_mid_upload_sends_every_claim_exactly_once_over_sftp() {
    let sshd = Sshd::start();
    let s = Scratch::new();
    let sandbox = sandbox_behind(&s, &sshd, PAYER_SCENARIO_HEAD);
    let (inbound, outbound) = (sshd.folder("inbound"), sshd.folder("outbound"));
    practice(&s, &sshd, &inbound, &outbound);
    // Small batches, so the daemon is still uploading when the first
    // batch reaches the payer.
    let config = std::fs::read_to_string(s.config())
        .unwrap()
        .replace("batch_size = 25", "batch_size = 10");
    s.write_config(&config);
    std::fs::write(s.path("batch.837"), claims_837(200, "KS")).unwrap();
    ok(&s.run(&["import", "claims", s.path("batch.837").to_str().unwrap()]));

    let mut daemon = s.start_daemon_ready("daemon1.log", Duration::from_secs(90));
    let mut run = s.spawn(&["jobs", "run", "submission"], "run.log");
    wait_until(
        Duration::from_secs(120),
        "the first upload at the payer",
        || !uploads(&sandbox).is_empty(),
    );
    // Freeze the sshd's sessions, so the daemon is stuck inside an SFTP
    // operation of a batch, and kill it there.
    let sessions = children_of(sshd.pid());
    signal(&sessions, "-STOP");
    daemon.kill9();
    signal(&sessions, "-CONT");
    let _ = run.wait();
    let before = clm01_counts(&sandbox).len();
    assert!(before < 200, "every batch was out before the kill");

    let mut daemon = s.start_daemon("daemon2.log");
    wait_until(
        Duration::from_secs(180),
        "the resumed run to finish",
        || stdout(&s.run(&["jobs", "history", "submission", "--json"])).contains("\"succeeded\""),
    );
    daemon.stop();
    let counts = clm01_counts(&sandbox);
    assert_eq!(
        counts.len(),
        200,
        "{counts:?}\n{}\n---\n{}",
        std::fs::read_to_string(s.path("daemon1.log")).unwrap_or_default(),
        std::fs::read_to_string(s.path("daemon2.log")).unwrap_or_default()
    );
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    let states = claims_by_state(&s);
    assert!(
        states
            .iter()
            .all(|(_, st)| ["submitted", "accepted", "acknowledged"].contains(&st.as_str())),
        "{states:?}"
    );
    pyx12_passes(&uploads(&sandbox).into_values().collect::<Vec<_>>());
}

/// A server file `NAME.toml` for `--sftp` / `sftp_server`: `sshd` pinned to
/// `host_key`.
fn server_toml(dir: &std::path::Path, name: &str, sshd: &Sshd, host_key: &str) -> PathBuf {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(
        &file,
        format!(
            "host = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\nhost_key = \"{host_key}\"\nprivate_key = \"file:{}\"\ntimeout_secs = 10\n",
            sshd.port,
            sshd.user,
            sshd.client_key.display()
        ),
    )
    .unwrap();
    file
}

#[test]
fn an_author_reaches_an_sftp_server_from_plugins_call_and_billd_plugin_test() {
    let sshd = Sshd::start();
    let outbound = sshd.folder("outbound");
    let era = era_835(
        "SANDBOXPAYER",
        "80",
        "AUTHOR-TRACE-1",
        "CLP*AU0000*1*100*80*20*12*PCN1~CAS*PR*2*20~",
    );
    std::fs::write(sshd.root().join("outbound/a-era.835"), &era).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = server_toml(dir.path(), "good", &sshd, &sshd.host_key);
    let input = dir.path().join("null.json");
    std::fs::write(&input, "null").unwrap();
    let call = |server: &std::path::Path| {
        let mut arg = std::ffi::OsString::from("clearinghouse=");
        arg.push(server);
        std::process::Command::new(billd_e2e::billd_bin())
            .current_dir(dir.path())
            .env_remove("BILLD_CONFIG")
            .args(["plugins", "call", "--plugin"])
            .arg(package())
            .args(["--func", "fetch-remittances", "--input"])
            .arg(&input)
            .args(["--setting", &format!("outbound-dir={outbound}")])
            .arg("--sftp")
            .arg(arg)
            .output()
            .unwrap()
    };

    // `billd plugins call --sftp`: the 835 comes down; stderr lists the
    // SFTP operations; the key never shows.
    let out = call(&good);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("AUTHOR-TRACE-1"), "{}", stdout(&out));
    let said = stderr(&out);
    assert!(said.contains("sftp clearinghouse list"), "{said}");
    assert!(said.contains("sftp clearinghouse get"), "{said}");
    let key = std::fs::read_to_string(&sshd.client_key).unwrap();
    let secret_line = key.lines().nth(1).unwrap();
    assert!(!stdout(&out).contains(secret_line) && !said.contains(secret_line));

    // Another server's host key: refused, as an error result.
    let wrong = server_toml(dir.path(), "wrong", &sshd, &sshd.other_host_key);
    let out = call(&wrong);
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(result.get("err").is_some(), "{result}");
    assert!(
        stderr(&out).contains("host-key-mismatch"),
        "{}",
        stderr(&out)
    );

    // The same through billd-plugin-test's session.
    let h = billd_plugin_test::Harness::for_package(package())
        .billd(billd_e2e::billd_bin())
        .setting("outbound-dir", &outbound)
        .sftp_server("clearinghouse", &good)
        .start()
        .unwrap();
    let page = h.call_ok("fetch-remittances", &Value::Null).unwrap();
    assert!(page.to_string().contains("AUTHOR-TRACE-1"), "{page}");

    // A package the configuration lists takes its servers from there.
    let s = Scratch::new();
    practice(&s, &sshd, "/nowhere", &outbound);
    let mut arg = std::ffi::OsString::from("clearinghouse=");
    arg.push(&good);
    let out = s
        .billd()
        .args(["plugins", "call", "--plugin"])
        .arg(package())
        .args(["--func", "fetch-remittances", "--input"])
        .arg(&input)
        .arg("--sftp")
        .arg(arg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("[plugin.sftp.clearinghouse] table applies"),
        "{}",
        stderr(&out)
    );
}
