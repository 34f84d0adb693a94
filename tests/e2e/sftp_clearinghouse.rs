//! The SFTP clearinghouse end to end: the real `billd` binary with the
//! sftp-clearinghouse connector against a real OpenSSH sshd on loopback.
//! `billd jobs run submission` uploads the 837P batch into the inbound
//! folder under its idempotency-key name (through a temporary name), a 999
//! and an 835 put into the outbound folder move the claims along and post
//! to the ledger, and each outbound file is deleted from the server only
//! after billd stored what it held; a file of another kind stays.

#[path = "../../daemon/src/plugin/testing/sshd.rs"]
mod sshd;

use billd_e2e::{
    Scratch, base_config, claims_837, era_835, sha256_file, stderr, stdout, workspace_root,
};
use serde_json::Value;
use sshd::Sshd;
use std::path::PathBuf;

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

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
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
    let uploaded = files(&in_dir);
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
    assert_eq!(files(&out_dir), ["b-era.835", "c-report.txt"]);

    // The remittance job posts the 835, then deletes it.
    let run = s.run(&["jobs", "run", "remits"]);
    ok(&run);
    let states = claims_by_state(&s);
    assert!(
        states.iter().all(|(_, st)| st == "paid"),
        "{states:?}\n{}\n{}\n{:?}\n{}",
        stdout(&run),
        stderr(&run),
        files(&out_dir),
        stdout(&s.run(&["tasks", "show", "T000001"]))
    );
    assert_eq!(files(&out_dir), ["c-report.txt"]);

    // Nothing is posted twice, nothing else is deleted.
    ok(&s.run(&["jobs", "run", "remits"]));
    ok(&s.run(&["jobs", "run", "submission"]));
    assert_eq!(files(&out_dir), ["c-report.txt"]);
    assert_eq!(files(&in_dir).len(), 1);
}
