//! The sandbox payer as a batch SFTP clearinghouse sees it, without the
//! sshd in front: files dropped into `--sftp-root`'s `inbound/` are taken
//! (archived, removed) and answered in `outbound/` with a 999, a 277CA and
//! an 835, each written under a hidden name first; a re-upload under the same
//! name is archived again but not processed twice; files still being
//! uploaded (hidden names) are left alone.

mod common;

use common::*;
use std::ffi::OsStr;
use std::time::Duration;

const SCENARIO: &str = r#"
[payer]
id = "SANDBOXPAYER"
[[credentials]]
username = "billd"
password = "sandbox-password"

[[claims]]
claim_id = "SF1"
[[claims.remittances]]
kind = "payment"
trace_number = "SFTRACE1"
payment_date = "2024-02-01"
paid_cents = 10000
patient_responsibility_cents = 2500

[[claims]]
claim_id = "SF2"
ack_277ca = "rejected"
ack_277ca_text = "MISSING SUBSCRIBER GROUP NUMBER"
"#;

#[test]
fn uploads_are_taken_and_answered_in_the_outbound_folder() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let root = dir.path().join("sftp");
    let sb = start_with(&scenario, &[OsStr::new("--sftp-root"), root.as_os_str()]);
    let (inbound, outbound) = (root.join("inbound"), root.join("outbound"));
    assert!(inbound.is_dir() && outbound.is_dir());

    // An upload in progress (a hidden name) is not touched.
    std::fs::write(inbound.join(".billd-k1.837.tmp"), "ISA*partial").unwrap();
    std::fs::write(inbound.join("billd-k1.837"), x837(&["SF1", "SF2"], 301)).unwrap();
    wait_for("the outbound answers", || files(&outbound).len() == 3);
    assert_eq!(files(&inbound), [".billd-k1.837.tmp"]);
    assert_eq!(
        files(&outbound),
        ["0001-ack.999", "0002-claim-ack.277", "0003-era.835"]
    );
    let texts: Vec<String> = files(&outbound)
        .iter()
        .map(|n| std::fs::read_to_string(outbound.join(n)).unwrap())
        .collect();
    for t in &texts {
        valid(t);
    }
    assert!(segments(&texts[0]).iter().any(|s| s == "AK9*A*1*1*1"));
    let stc: Vec<String> = segments(&texts[1])
        .into_iter()
        .filter(|s| s.starts_with("STC*"))
        .collect();
    assert!(stc.iter().any(|s| s.starts_with("STC*A2:20")), "{stc:?}");
    assert!(
        stc.iter()
            .any(|s| s.starts_with("STC*A7:21") && s.ends_with("MISSING SUBSCRIBER GROUP NUMBER")),
        "{stc:?}"
    );
    let era = segments(&texts[2]);
    assert!(
        era.iter().any(|s| s.starts_with("TRN*1*SFTRACE1*")),
        "{era:?}"
    );
    assert!(
        era.iter().any(|s| s.starts_with("CLP*SF1*1*125*100*25")),
        "{era:?}"
    );

    // The same name again (a retried upload): archived, not answered again.
    std::fs::write(inbound.join("billd-k1.837"), x837(&["SF1", "SF2"], 301)).unwrap();
    wait_for("the re-upload to be taken", || {
        !files(&inbound).contains(&"billd-k1.837".to_string())
    });
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(files(&outbound).len(), 3, "{:?}", files(&outbound));
    let archived: Vec<String> = files(&sb.archive)
        .into_iter()
        .filter(|n| n.contains("-X12_837_Request_005010X222A1-billd-k1"))
        .collect();
    assert_eq!(archived.len(), 2, "{archived:?}");
}
