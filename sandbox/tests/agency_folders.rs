//! The sandbox agency as an SFTP client sees it, without the sshd in front:
//! a placement file dropped into `--sftp-root`'s `placements/` is placed
//! and removed, its refused line comes back as a CAN in `updates/`, a
//! scripted payment as the next updates file, a recall file dropped into
//! `recalls/` recalls its account, the same placement file again under its
//! name places and says nothing again, and files still being uploaded
//! (hidden names) are left alone.

mod common;

use common::{files, spawn_listening, wait_for};
use std::ffi::OsStr;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use serde_json::{Value, json};

const CLIENT: &str = "BILLD01";

/// A running agency sandbox; killed on drop.
struct Agency {
    child: Child,
    base: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Agency {
    /// A control or agency API read.
    fn get(&self, path: &str) -> Value {
        self.rt.block_on(async {
            let r = self
                .http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "GET {path}");
            r.json().await.unwrap()
        })
    }

    /// A control API post; its status.
    fn post(&self, path: &str, body: &Value) -> u16 {
        self.rt.block_on(async {
            let r = self
                .http
                .post(format!("{}{path}", self.base))
                .json(body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        })
    }
}

impl Drop for Agency {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(root: &Path) -> Agency {
    let mut args = [
        "agency",
        "--listen",
        "127.0.0.1:0",
        "--client-number",
        CLIENT,
        "--sftp-root",
    ]
    .map(OsStr::new)
    .to_vec();
    args.push(root.as_os_str());
    let (child, addr) = spawn_listening(&args);
    Agency {
        child,
        base: format!("http://{addr}"),
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        http: reqwest::Client::new(),
    }
}

/// Uploads as a client does: a hidden name first, then renamed.
fn upload(dir: &Path, name: &str, text: &str) {
    let part = dir.join(format!(".{name}.part"));
    std::fs::write(&part, text).unwrap();
    std::fs::rename(&part, dir.join(name)).unwrap();
}

fn detail(debtor: &str, zip: &str, cents: i64) -> String {
    format!(
        "D|{CLIENT}|{debtor}|SMITH|TED|Q||236 N MAIN ST||MIAMI|FL|{zip}|3055550142|19730501|20260701|{cents}||20260610|20260612"
    )
}

#[test]
fn placements_and_recalls_are_taken_from_folders_and_updates_written_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sftp");
    let agency = start(&root);
    let (placements, recalls, updates) = (
        root.join("placements"),
        root.join("recalls"),
        root.join("updates"),
    );
    assert!(placements.is_dir() && recalls.is_dir() && updates.is_dir());

    // An upload in progress is not touched.
    std::fs::write(
        placements.join(".later.txt.part"),
        format!(
            "H|BCP1|{CLIENT}|20261202|1|100\n{}\n",
            detail("PX", "33413", 100)
        ),
    )
    .unwrap();
    // Two good lines and one with a bad zip.
    let file = format!(
        "H|BCP1|{CLIENT}|20261202|3|13100\n{}\n{}\n{}\nT|3|13100\n",
        detail("PA", "33413", 12_345),
        detail("PB", "336021234", 655),
        detail("PC", "3360", 100),
    );
    upload(&placements, "billd-20261202-1.txt", &file);
    wait_for("the placement file to be taken", || {
        files(&placements) == [".later.txt.part"]
    });
    let accounts = agency.get("/_sandbox/accounts")["accounts"].clone();
    let held: Vec<&String> = accounts.as_object().unwrap().keys().collect();
    assert_eq!(held, ["PA", "PB"], "{accounts}");
    assert_eq!(accounts["PA"]["agency_account"], "AG000001");

    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    wait_for("the first updates file", || {
        files(&updates) == ["000001-updates.txt"]
    });
    assert_eq!(
        std::fs::read_to_string(updates.join("000001-updates.txt")).unwrap(),
        format!(
            "H|BCU1|{CLIENT}|{today}|1\n\
             U|1|CAN|PC||{today}||||placement refused: line 4: field 12 (zip): must be 5 or 9 digits\n\
             T|1\n"
        )
    );

    // A scripted payment: a new file with only that update.
    let scripted = agency.post(
        "/_sandbox/updates",
        &json!({"code": "PAY", "debtor_ref": "PA", "gross_cents": 1000,
            "fee_cents": 250, "date": "2026-12-05"}),
    );
    assert_eq!(scripted, 200);
    wait_for("the second updates file", || files(&updates).len() == 2);
    assert_eq!(
        files(&updates),
        ["000001-updates.txt", "000002-updates.txt"]
    );
    assert_eq!(
        std::fs::read_to_string(updates.join("000002-updates.txt")).unwrap(),
        format!("H|BCU1|{CLIENT}|{today}|1\nU|2|PAY|PA|AG000001|20261205|1000|250|750|\nT|1\n")
    );
    // The HTTP listing holds both, from the same counter.
    let page = agency.get(&format!("/updates?client={CLIENT}"));
    let codes: Vec<(u64, &str)> = page["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["seq"].as_u64().unwrap(), u["code"].as_str().unwrap()))
        .collect();
    assert_eq!(codes, [(1, "CAN"), (2, "PAY")], "{page}");

    // A recall file for PB.
    upload(
        &recalls,
        "billd-recalls-1.txt",
        &format!("H|BCR1|{CLIENT}|20261206|1\nR|{CLIENT}|PB|AG000002|REQ\nT|1\n"),
    );
    wait_for("PB to be recalled", || {
        agency.get("/_sandbox/accounts")["accounts"]["PB"]["standing"] == "recalled"
    });
    assert!(files(&recalls).is_empty(), "{:?}", files(&recalls));
    let got = agency.get("/_sandbox/recalls")["recalls"].clone();
    assert_eq!(got[0]["key"], "billd-recalls-1.txt", "{got}");
    assert_eq!(got[0]["accepted"], true, "{got}");
    assert_eq!(
        agency.get("/_sandbox/accounts")["accounts"]["PA"]["standing"],
        "open"
    );

    // The client deletes what it downloaded; the same placement file is
    // sent again under its name: a replay, nothing placed or said again.
    std::fs::remove_file(updates.join("000001-updates.txt")).unwrap();
    upload(&placements, "billd-20261202-1.txt", &file);
    wait_for("the resent file to be taken", || {
        files(&placements) == [".later.txt.part"]
    });
    std::thread::sleep(Duration::from_millis(400));
    let received = agency.get("/_sandbox/placements");
    assert_eq!(received["files"].as_array().unwrap().len(), 1, "{received}");
    assert_eq!(received["replays"], 1, "{received}");
    let accounts = agency.get("/_sandbox/accounts")["accounts"].clone();
    assert_eq!(accounts.as_object().unwrap().len(), 2, "{accounts}");
    assert_eq!(files(&updates), ["000002-updates.txt"]);
    assert_eq!(
        agency.get(&format!("/updates?client={CLIENT}"))["next_cursor"],
        "2"
    );
    // The upload still in progress was left alone throughout.
    assert_eq!(
        files(&placements),
        [".later.txt.part"],
        "the hidden upload stays"
    );
    assert!(accounts.get("PX").is_none());
}
