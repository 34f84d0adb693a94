//! Tests of contract 0.3.0's `sftp` import against a real OpenSSH server on
//! loopback ([`super::testing::sshd`]): uploads land under their final name
//! only through a temporary name and a rename, listings, reads, renames and
//! deletes work, an unknown host key and an undeclared server are refused
//! and audited, size caps hold, a password login works and a wrong one is
//! refused, and the plugin never sees the credential.
//!
//! The `sftp-probe` test plugin runs a script of operations (see its
//! source); these tests fail, saying what to run, when sshd is missing.

use super::config::PluginEntry;
use super::sftp::{SftpAuditRecord, SftpServerRef};
use super::testing::sshd::Sshd;
use super::tests::{dist, test_host};
use super::*;
use secrecy::SecretString;
use serde_json::{Value, json};

/// The practice's entry for the probe's `drop` server.
pub(super) fn server_ref(sshd: &Sshd) -> SftpServerRef {
    SftpServerRef {
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: sshd.user.clone(),
        host_key: sshd.host_key.clone(),
        password: None,
        private_key: Some(format!("file:{}", sshd.client_key.display())),
        timeout_secs: Some(10),
        max_file_bytes: None,
    }
}

/// Resolves `file:` references as the daemon does (the test's key files).
fn resolve(r: &str) -> Result<SecretString, String> {
    let path = r.strip_prefix("file:").ok_or("not a file reference")?;
    std::fs::read_to_string(path)
        .map(SecretString::from)
        .map_err(|e| e.to_string())
}

fn probe_spec(server: SftpServerRef) -> PluginSpec {
    probe_spec_at(&dist("sftp-probe"), server)
}

/// The spec of the sftp-probe package at `path` with its `drop` server.
pub(super) fn probe_spec_at(path: &Path, server: SftpServerRef) -> PluginSpec {
    PluginEntry {
        sftp: [("drop".to_string(), server)].into(),
        ..PluginEntry::for_tests("sftp-probe", path)
    }
    .to_spec(0, Path::new("."), &resolve)
    .unwrap()
}

/// Runs a script through the probe; returns each step's result and what
/// the probe could read of the credential.
pub(super) async fn run(p: &LoadedPlugin, script: Value) -> (Vec<Value>, Value) {
    let page = p
        .patients_changed("k", Some(&script.to_string()))
        .await
        .unwrap()
        .unwrap();
    let out: Value = serde_json::from_str(page.next.as_deref().unwrap()).unwrap();
    (
        out["results"].as_array().unwrap().clone(),
        out["seen"].clone(),
    )
}

fn err_kind(v: &Value) -> String {
    v["err"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {v}"))
        .split(':')
        .next()
        .unwrap()
        .to_string()
}

fn names(v: &Value) -> Vec<String> {
    v["ok"]
        .as_array()
        .unwrap_or_else(|| panic!("expected a listing, got {v}"))
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

fn sftp_audit(t: &super::tests::TestHost) -> Vec<SftpAuditRecord> {
    t.audit.sftp_records()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_list_get_rename_and_remove_against_a_real_sshd() {
    let sshd = Sshd::start();
    let inbox = sshd.folder("inbound");
    let t = test_host(PluginTrust::default());
    let p = t.host.load(&probe_spec(server_ref(&sshd))).unwrap();
    let a = format!("{inbox}/batch-1.837");
    let b = format!("{inbox}/batch-1.done");
    let (r, seen) = run(
        &p,
        json!([
            {"op": "put", "path": a, "text": "ISA*first~"},
            {"op": "put", "path": a, "text": "ISA*second try~"},
            {"op": "list", "path": inbox},
            {"op": "get", "path": a},
            {"op": "rename", "path": a, "to": b},
            {"op": "list", "path": inbox},
            {"op": "remove", "path": b},
            {"op": "list", "path": inbox},
            {"op": "get", "path": a},
        ]),
    )
    .await;
    assert_eq!(r[0], json!({"ok": null}), "{r:?}");
    assert_eq!(r[1], json!({"ok": null}), "{r:?}");
    // The retried put replaced the file: one file, the final name, no
    // temporary file left over.
    assert_eq!(names(&r[2]), ["batch-1.837"], "{r:?}");
    assert_eq!(r[2]["ok"][0]["size"], 15);
    assert_eq!(r[2]["ok"][0]["is_dir"], false);
    assert!(r[2]["ok"][0]["mtime"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(r[3]["ok"], "ISA*second try~");
    assert_eq!(names(&r[5]), ["batch-1.done"]);
    assert_eq!(names(&r[7]), Vec::<String>::new());
    assert_eq!(err_kind(&r[8]), "not-found");
    assert_eq!(files_in(&sshd.root().join("inbound")), Vec::<String>::new());
    // The plugin read nothing of the credential.
    assert_eq!(seen, json!([]));
    // Every operation audited: server, op, path, bytes, outcome; never the
    // file's content.
    let audit = sftp_audit(&t);
    let ops: Vec<(&str, &str)> = audit
        .iter()
        .map(|r| (r.op.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        ops,
        [
            ("put", "ok"),
            ("put", "ok"),
            ("list", "ok"),
            ("get", "ok"),
            ("rename", "ok"),
            ("list", "ok"),
            ("remove", "ok"),
            ("list", "ok"),
            ("get", "not-found"),
        ]
    );
    assert!(
        audit
            .iter()
            .all(|r| r.server == "drop" && r.plugin == "sftp-probe")
    );
    assert_eq!(audit[0].path, a);
    assert_eq!(audit[0].bytes, 10);
    assert_eq!(audit[3].bytes, 15);
    assert_eq!(audit[4].path, format!("{a} -> {b}"));
    let text = format!("{audit:?}");
    assert!(!text.contains("ISA*"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_login_works_and_a_wrong_password_is_refused() {
    let sshd = Sshd::start_with_password();
    let inbox = sshd.folder("outbound");
    let password = sshd.password_file.clone().expect("a password server");
    let with_password = |file: &Path| SftpServerRef {
        password: Some(format!("file:{}", file.display())),
        private_key: None,
        ..server_ref(&sshd)
    };
    let t = test_host(PluginTrust::default());
    let p = t.host.load(&probe_spec(with_password(&password))).unwrap();
    let a = format!("{inbox}/era-1.835");
    let (r, seen) = run(
        &p,
        json!([
            {"op": "put", "path": a, "text": "ISA*pw~"},
            {"op": "list", "path": inbox},
            {"op": "get", "path": a},
        ]),
    )
    .await;
    assert_eq!(r[0], json!({"ok": null}), "{r:?}\n{}", sshd.log());
    assert_eq!(names(&r[1]), ["era-1.835"], "{r:?}");
    assert_eq!(r[2]["ok"], "ISA*pw~", "{r:?}");
    // The server saw a password login, for the account configured.
    assert!(
        sshd.log()
            .contains(&format!("Accepted password for {}", sshd.user)),
        "{}",
        sshd.log()
    );
    // The plugin read nothing of the credential, and the audit names no
    // password.
    assert_eq!(seen, json!([]));
    let secret = std::fs::read_to_string(&password).unwrap();
    let audit = format!("{:?}", sftp_audit(&t));
    assert!(!audit.contains(&secret), "{audit}");

    let wrong = sshd.root().join("../wrong-password");
    std::fs::write(&wrong, "not-the-password").unwrap();
    let t = test_host(PluginTrust::default());
    let p = t.host.load(&probe_spec(with_password(&wrong))).unwrap();
    let (r, seen) = run(&p, json!([{"op": "list", "path": inbox}])).await;
    assert_eq!(err_kind(&r[0]), "auth", "{r:?}");
    assert_eq!(seen, json!([]));
    let audit = sftp_audit(&t);
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        (audit[0].op.as_str(), audit[0].outcome.as_str()),
        ("list", "auth")
    );
    assert!(!format!("{audit:?}").contains("not-the-password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_appears_only_whole_under_its_final_name() {
    let sshd = Sshd::start();
    let inbox = sshd.folder("inbound");
    let dir = sshd.root().join("inbound");
    let t = test_host(PluginTrust::default());
    let p = t.host.load(&probe_spec(server_ref(&sshd))).unwrap();
    const SIZE: u64 = 4 << 20;
    // Watch the folder while the upload runs: every name seen, and every
    // size the final name had.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut names = std::collections::BTreeSet::new();
            let mut final_sizes = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for e in std::fs::read_dir(&dir).unwrap().flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name == "big.837" {
                        final_sizes.insert(e.metadata().map(|m| m.len()).unwrap_or(0));
                    }
                    names.insert(name);
                }
            }
            (names, final_sizes)
        })
    };
    let (r, _) = run(
        &p,
        json!([{"op": "put", "path": format!("{inbox}/big.837"), "text": "0123456789abcdef", "repeat": SIZE / 16}]),
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (names, final_sizes) = watcher.join().unwrap();
    assert_eq!(r[0], json!({"ok": null}), "{r:?}");
    let temps: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with(".big.837."))
        .collect();
    assert!(
        !temps.is_empty() && temps.iter().all(|n| n.ends_with(".billd-part")),
        "the upload went through a hidden temporary name beside the target: {names:?}"
    );
    assert!(
        final_sizes.iter().all(|&s| s == SIZE),
        "the final name only ever showed the whole file: {final_sizes:?}"
    );
    assert_eq!(files_in(&dir), ["big.837"]);
    assert_eq!(std::fs::metadata(dir.join("big.837")).unwrap().len(), SIZE);
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_host_key_is_refused_before_anything_is_sent() {
    let sshd = Sshd::start();
    let inbox = sshd.folder("inbound");
    let t = test_host(PluginTrust::default());
    let mut server = server_ref(&sshd);
    server.host_key = sshd.other_host_key.clone();
    let p = t.host.load(&probe_spec(server)).unwrap();
    let (r, _) = run(
        &p,
        json!([{"op": "put", "path": format!("{inbox}/x.837"), "text": "ISA~"}]),
    )
    .await;
    assert_eq!(err_kind(&r[0]), "host-key-mismatch", "{r:?}");
    assert!(
        r[0]["err"].as_str().unwrap().contains("SHA256:"),
        "names the fingerprints: {r:?}"
    );
    assert_eq!(
        std::fs::read_dir(sshd.root().join("inbound"))
            .unwrap()
            .count(),
        0
    );
    let audit = sftp_audit(&t);
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].outcome, "host-key-mismatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_outside_the_allow_list_is_refused_and_audited() {
    let sshd = Sshd::start();
    let inbox = sshd.folder("inbound");
    let t = test_host(PluginTrust::default());
    let p = t.host.load(&probe_spec(server_ref(&sshd))).unwrap();
    let (r, _) = run(
        &p,
        json!([
            {"op": "list", "server": "elsewhere", "path": "/"},
            {"op": "put", "server": "elsewhere", "path": format!("{inbox}/x"), "text": "x"},
        ]),
    )
    .await;
    assert_eq!(err_kind(&r[0]), "not-allowed", "{r:?}");
    assert_eq!(err_kind(&r[1]), "not-allowed", "{r:?}");
    let audit = sftp_audit(&t);
    assert_eq!(audit.len(), 2);
    assert!(
        audit
            .iter()
            .all(|r| r.server == "elsewhere" && r.outcome == "not-allowed"),
        "{audit:?}"
    );
    assert_eq!(audit[0].op, "list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sftp_flood_is_audited_within_the_rate_and_every_operation_counted() {
    // No connection is needed: the server is not allowed, so each
    // operation is refused at once, as fast as a plugin can ask.
    let sshd = Sshd::start();
    let t = test_host(PluginTrust::default());
    let p = t.host.load(&probe_spec(server_ref(&sshd))).unwrap();
    let script: Vec<Value> = (0..600)
        .map(|i| json!({"op": "list", "server": "elsewhere", "path": format!("/{i}")}))
        .collect();
    let (r, _) = run(&p, Value::Array(script)).await;
    assert_eq!(r.len(), 600);
    assert!(r.iter().all(|v| err_kind(v) == "not-allowed"), "{r:?}");
    let audit = sftp_audit(&t);
    // A burst of five seconds' worth at 20 a second, a few more as the
    // bucket refills, and one closing count.
    assert!(audit.len() >= 100, "{} records", audit.len());
    assert!(audit.len() <= 100 + 40 + 1, "{} records", audit.len());
    let last = audit.last().unwrap();
    assert_eq!(last.outcome, "suppressed", "{last:?}");
    let recorded = audit.iter().filter(|r| r.outcome != "suppressed").count() as u64;
    let counted: u64 = audit.iter().map(|r| r.suppressed).sum();
    assert_eq!(
        recorded + counted,
        600,
        "every operation recorded or counted"
    );
    assert!(
        audit[..audit.len() - 1]
            .iter()
            .all(|r| r.outcome == "not-allowed" && r.server == "elsewhere"),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_and_size_caps_are_typed_errors() {
    let sshd = Sshd::start();
    let inbox = sshd.folder("inbound");
    std::fs::write(sshd.root().join("inbound/big.835"), "0123456789").unwrap();
    let t = test_host(PluginTrust::default());
    let mut stranger = server_ref(&sshd);
    stranger.private_key = Some(format!("file:{}", sshd.stranger_key.display()));
    let p = t.host.load(&probe_spec(stranger)).unwrap();
    let (r, _) = run(&p, json!([{"op": "list", "path": inbox}])).await;
    assert_eq!(err_kind(&r[0]), "auth", "{r:?}");

    let mut capped = server_ref(&sshd);
    capped.max_file_bytes = Some(4);
    let p = t.host.load(&probe_spec(capped)).unwrap();
    let (r, _) = run(
        &p,
        json!([
            {"op": "get", "path": format!("{inbox}/big.835")},
            {"op": "put", "path": format!("{inbox}/new.837"), "text": "12345"},
            {"op": "put", "path": format!("{inbox}/ok.837"), "text": "1234"},
            {"op": "list", "path": inbox},
        ]),
    )
    .await;
    assert_eq!(err_kind(&r[0]), "too-large", "{r:?}");
    assert_eq!(err_kind(&r[1]), "too-large", "{r:?}");
    assert_eq!(r[2], json!({"ok": null}));
    assert_eq!(names(&r[3]), ["big.835", "ok.837"]);
}

#[test]
fn servers_must_be_declared_and_configured_both_ways() {
    let t = test_host(PluginTrust::default());
    // Declared by the manifest, not configured by the practice.
    let e = t
        .host
        .load(&PluginSpec::unpinned("sftp-probe", &dist("sftp-probe")))
        .expect_err("refused")
        .to_string();
    assert!(e.contains("sftp.drop"), "{e}");
    // Configured by the practice, not declared by the manifest.
    let dummy = SftpServerRef {
        host: "127.0.0.1".into(),
        port: 22,
        user: "u".into(),
        host_key:
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIME/qqzquF6lU4DPj2kszuaALtyR1rbPDp5OIxn9XOPm x"
                .into(),
        password: Some("env:X".into()),
        private_key: None,
        timeout_secs: None,
        max_file_bytes: None,
    };
    let mut spec = PluginEntry {
        sftp: [("drop".to_string(), dummy.clone())].into(),
        ..PluginEntry::for_tests("sftp-probe", &dist("sftp-probe"))
    }
    .to_spec(0, Path::new("."), &|_| Ok(SecretString::from("pw")))
    .unwrap();
    let extra = spec.sftp["drop"].clone();
    spec.sftp.insert("other".into(), extra);
    let e = t.host.load(&spec).expect_err("refused").to_string();
    assert!(e.contains("sftp.other"), "{e}");
    // A bad entry is located in the configuration, never echoing a secret.
    let bad = PluginEntry {
        sftp: [(
            "drop".to_string(),
            SftpServerRef {
                host_key: "ssh-rsa garbage".into(),
                password: Some("hunter2".into()),
                ..dummy
            },
        )]
        .into(),
        ..PluginEntry::for_tests("sftp-probe", &dist("sftp-probe"))
    };
    let problems = config::validate(&[bad], &PluginTrust::default());
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "plugin[0].sftp.drop.host_key",
            "plugin[0].sftp.drop.password"
        ]
    );
    assert!(!format!("{problems:?}").contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_configures_an_sftp_server_for_plugin_authors() {
    let sshd = Sshd::start();
    let inbox = sshd.folder("inbound");
    std::fs::write(sshd.root().join("inbound/999.x12"), "ISA*ack~").unwrap();
    let h = harness::Harness::builder(dist("sftp-probe"))
        .sftp_server("drop", server_ref(&sshd))
        .build()
        .unwrap();
    let page = h
        .plugin()
        .patients_changed(
            "k",
            Some(&json!([{"op": "get", "path": format!("{inbox}/999.x12")}]).to_string()),
        )
        .await
        .unwrap()
        .unwrap();
    let out: Value = serde_json::from_str(page.next.as_deref().unwrap()).unwrap();
    assert_eq!(out["results"][0]["ok"], "ISA*ack~");
    assert_eq!(h.sftp_audit().len(), 1);
    assert_eq!(h.sftp_audit()[0].bytes, 8);
}

/// sftp-clearinghouse hands a file over with its name in the cursor and
/// deletes it only when asked past that cursor (which billd does after it
/// stored the page): the file is still on the server after the call that
/// returned it, and gone after the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_clearinghouse_deletes_a_file_only_on_the_call_after_it_was_handed_over() {
    let sshd = Sshd::start();
    let outbound = sshd.folder("outbound");
    let dir = sshd.root().join("outbound");
    let era = |trace: &str| {
        format!(
            "ISA*00*          *00*          *ZZ*A              *ZZ*B              *260301*1200*^*00501*000000001*0*P*:~\
             GS*HP*A*B*20260301*1200*1*X*005010X221A1~ST*835*0001~BPR*I*80*C*ACH************20260301~\
             TRN*1*{trace}*P1~N1*PR*SOME PAYER*XV*P1~N1*PE*CLINIC*XX*1912301953~LX*1~\
             CLP*C1*1*100*80*20*12*PCN1~CAS*PR*2*20~SE*9*0001~GE*1*1~IEA*1*000000001~"
        )
    };
    std::fs::write(dir.join("1.835"), era("T-1")).unwrap();
    std::fs::write(dir.join("2.835"), era("T-2")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not X12").unwrap();
    let h = harness::Harness::builder(dist("sftp-clearinghouse"))
        .sftp_server("clearinghouse", server_ref(&sshd))
        .setting("outbound-dir", &outbound)
        .build()
        .unwrap();
    let p = h.plugin();
    let first = p.fetch_remittances("k1", None).await.unwrap().unwrap();
    assert_eq!(first.items.len(), 1);
    assert_eq!(first.items[0].trace_number, "T-1");
    assert_eq!(first.items[0].payer_id, "P1");
    assert_eq!(first.next.as_deref(), Some("835:1.835"));
    assert_eq!(files_in(&dir), ["1.835", "2.835", "notes.txt"]);
    let second = p
        .fetch_remittances("k2", first.next.as_deref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.items[0].trace_number, "T-2");
    assert_eq!(files_in(&dir), ["2.835", "notes.txt"]);
    // Asking past a file a second time (a retry after a crash) is fine.
    let again = p
        .fetch_remittances("k2", first.next.as_deref())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.next.as_deref(), Some("835:2.835"));
    let last = p
        .fetch_remittances("k3", second.next.as_deref())
        .await
        .unwrap()
        .unwrap();
    assert!(last.items.is_empty() && last.next.is_none());
    assert_eq!(files_in(&dir), ["notes.txt"]);
    // The acknowledgment fetch leaves what is not its kind alone.
    let acks = p.fetch_acknowledgments("k4", None).await.unwrap().unwrap();
    assert!(acks.items.is_empty() && acks.next.is_none());
    assert_eq!(files_in(&dir), ["notes.txt"]);
    let removes: Vec<String> = h
        .sftp_audit()
        .into_iter()
        .filter(|r| r.op == "remove")
        .map(|r| r.path)
        .collect();
    assert_eq!(
        removes,
        [
            format!("{outbound}/1.835"),
            format!("{outbound}/1.835"),
            format!("{outbound}/2.835")
        ]
    );
}
