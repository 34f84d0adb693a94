//! The sandbox payer over loopback, as a clearinghouse client sees it:
//! real SOAP and MIME requests to the real binary, X12 answers checked by
//! billd-x12's validator, the archive counted, every fault kind injected.

mod common;

use common::*;
use serde_json::json;

type Send = for<'a> fn(
    &'a Sandbox,
    &'a Req,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Ans> + 'a>>;

fn via_soap<'a>(
    sb: &'a Sandbox,
    r: &'a Req,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Ans> + 'a>> {
    Box::pin(soap(sb, r))
}

fn via_mime<'a>(
    sb: &'a Sandbox,
    r: &'a Req,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Ans> + 'a>> {
    Box::pin(mime(sb, r))
}

const TRANSPORTS: [(&str, Send); 2] = [("soap", via_soap), ("mime", via_mime)];

/// Sends a 270 and returns the 271's segments (checked by billd-x12).
async fn eligibility(send: Send, sb: &Sandbox, member: &str, last: &str, dob: &str) -> Vec<String> {
    let a = send(
        sb,
        &Req::real_time("X12_270_Request_005010X279A1", x270(member, last, dob)),
    )
    .await;
    assert_eq!((a.status, a.error_code.as_str()), (200, "Success"), "{a:?}");
    assert_eq!(a.payload_type, "X12_271_Response_005010X279A1");
    valid(&a.payload);
    segments(&a.payload)
}

#[tokio::test]
async fn eligibility_answers_active_inactive_and_not_found_members_both_ways() {
    let sb = start(&demo());
    for (name, send) in TRANSPORTS {
        let segs = eligibility(send, &sb, "M1001", "DOE", "19800402").await;
        for want in [
            "EB*1*IND*30**GOLD PPO",
            "EB*C*IND*30***29*500",
            "EB*B*IND*98***27*25",
            "REF*6P*GRP100",
            "TRN*2*TRACE0001",
        ] {
            assert!(
                segs.iter().any(|s| s.starts_with(want)),
                "{name}: {want} in {segs:?}"
            );
        }
        let cases = [
            ("M1002", "ROE", "19751130", "EB*6**30"),
            ("NOSUCH1", "DOE", "19800402", "AAA*N**75*C"),
            ("M1001", "DOE", "19990101", "AAA*N**71*C"),
            ("M1001", "DOUGH", "19800402", "AAA*N**73*C"),
        ];
        for (member, last, dob, want) in cases {
            let segs = eligibility(send, &sb, member, last, dob).await;
            assert!(
                segs.iter().any(|s| s.starts_with(want)),
                "{name} {member}: {want} in {segs:?}"
            );
        }
    }
    let st = stats(&sb).await;
    assert_eq!(st["payloads"]["X12_270_Request_005010X279A1"], 10);
    assert_eq!(std::fs::read_dir(&sb.archive).unwrap().count(), 10);
}

#[tokio::test]
async fn a_claim_goes_through_999_277ca_status_progression_and_835() {
    for (name, send) in TRANSPORTS {
        // The scenario's progression is per inquiry; each transport gets a
        // fresh sandbox so the steps start over.
        let sb = start(&demo());
        let claims = ["PCN1001", "PCN1002", "PCN1003", "PCN9999"];
        let a = send(&sb, &submission(x837(&claims, 201))).await;
        assert_eq!(a.error_code, "Success", "{name}: {a:?}");
        assert_eq!(a.payload_type, "X12_BatchReceiptConfirmation");

        let a = send(&sb, &retrieval("X12_999_RetrievalRequest_005010X231A1")).await;
        assert_eq!(
            a.payload_type, "X12_999_Response_005010X231A1",
            "{name}: {a:?}"
        );
        valid(&a.payload);
        assert!(
            segments(&a.payload).iter().any(|s| s == "AK9*A*1*1*1"),
            "{a:?}"
        );

        let a = send(&sb, &retrieval("X12_277CA_RetrievalRequest_005010X214")).await;
        assert_eq!(a.payload_type, "X12_277CA_Response_005010X214");
        let doc = valid(&a.payload);
        assert!(matches!(
            doc.interchanges[0].groups[0].transactions[0].body,
            billd_x12::Body::ClaimAck(_)
        ));
        let segs = segments(&a.payload);
        assert!(
            segs.iter()
                .any(|s| s.starts_with("STC*A7:21*")
                    && s.ends_with("MISSING SUBSCRIBER GROUP NUMBER")),
            "{segs:?}"
        );
        assert!(segs.iter().any(|s| s == "REF*1K*ICN5550001"), "{segs:?}");

        // Not finalized yet: no 835.
        let a = send(&sb, &retrieval("X12_835_RetrievalRequest_005010X221A1")).await;
        assert_eq!(
            (a.error_code.as_str(), a.payload.as_str()),
            ("Success", ""),
            "{a:?}"
        );

        let mut seen = Vec::new();
        for _ in 0..4 {
            let a = send(
                &sb,
                &Req::real_time(
                    "X12_276_Request_005010X212",
                    x276(&[("PCN1001", 12500), ("PCN7777", 100)]),
                ),
            )
            .await;
            assert_eq!(a.payload_type, "X12_277_Response_005010X212", "{a:?}");
            valid(&a.payload);
            let stc: Vec<String> = segments(&a.payload)
                .into_iter()
                .filter(|s| s.starts_with("STC*"))
                .collect();
            assert!(stc[1].starts_with("STC*A4:35"), "unknown claim: {stc:?}");
            seen.push(stc[0].split('*').nth(1).unwrap().to_owned());
        }
        assert_eq!(seen, ["A1:20", "A2:20", "F1:65", "F1:65"], "{name}");

        let a = send(&sb, &retrieval("X12_835_RetrievalRequest_005010X221A1")).await;
        assert_eq!(a.payload_type, "X12_835_Response_005010X221A1");
        let doc = valid(&a.payload);
        let billd_x12::Body::Remittance(r) = &doc.interchanges[0].groups[0].transactions[0].body
        else {
            panic!("not an 835");
        };
        assert!(billd_x12::balance::balance(r).is_empty());
        let segs = segments(&a.payload);
        assert!(
            segs.iter()
                .any(|s| s.starts_with("CLP*PCN1001*1*125*80*25*12*ICN5550001")),
            "{segs:?}"
        );
        assert!(segs.iter().any(|s| s == "CAS*CO*45*20"), "{segs:?}");
    }
}

#[tokio::test]
async fn denials_reversals_and_999_rejections_are_written_and_valid() {
    let sb = start(&demo());
    let a = soap(&sb, &submission(x837(&["PCN1004"], 301))).await;
    assert_eq!(a.error_code, "Success");
    let a = soap(&sb, &submission(x837(&["PCN1002", "PCN1005"], 302))).await;
    assert_eq!(a.error_code, "Success");
    let a = soap(&sb, &retrieval("X12_999_RetrievalRequest_005010X231A1")).await;
    valid(&a.payload);
    let segs = segments(&a.payload);
    assert!(segs.iter().any(|s| s == "IK5*R*5"), "{segs:?}");
    assert!(segs.iter().any(|s| s == "AK9*R*1*1*0"), "{segs:?}");
    assert!(segs.iter().any(|s| s == "AK9*A*1*1*1"), "{segs:?}");
    // PCN1005 finalizes on its first inquiry; PCN1002 on its second.
    for _ in 0..2 {
        soap(
            &sb,
            &Req::real_time(
                "X12_276_Request_005010X212",
                x276(&[("PCN1002", 12500), ("PCN1005", 12500)]),
            ),
        )
        .await;
    }
    let asked = retrieval("X12_835_RetrievalRequest_005010X221A1");
    let a = soap(&sb, &asked).await;
    let doc = valid(&a.payload);
    assert_eq!(
        doc.interchanges.len(),
        3,
        "a denial, a payment and a reversal"
    );
    let segs = segments(&a.payload);
    assert!(
        segs.iter().any(|s| s.starts_with("CLP*PCN1002*4*125*0*")),
        "{segs:?}"
    );
    assert!(
        segs.iter()
            .any(|s| s.starts_with("CLP*PCN1005*22*-125*-100*")),
        "{segs:?}"
    );
    assert!(
        segs.iter().any(|s| s.starts_with("CLP*PCN1005*1*125*70*")),
        "{segs:?}"
    );
    // Handed out once: the same request again (a retry, the same
    // PayloadID) gets the same answer; a new retrieval finds nothing more.
    let again = soap(&sb, &asked).await;
    assert_eq!(again.payload, a.payload);
    let next = soap(&sb, &retrieval("X12_835_RetrievalRequest_005010X221A1")).await;
    assert_eq!(
        (next.error_code.as_str(), next.payload.as_str()),
        ("Success", ""),
        "{next:?}"
    );
}

#[tokio::test]
async fn a_retrieval_hands_out_at_most_a_page_of_files_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("paged.toml");
    let text = std::fs::read_to_string(demo()).unwrap();
    let text = text.replacen("[payer]", "[payer]\nmailbox_page = 2", 1);
    assert!(
        text.contains("mailbox_page = 2"),
        "the demo scenario has a [payer] table"
    );
    std::fs::write(&scenario, text).unwrap();
    let sb = start(&scenario);
    for (i, pcn) in ["PCN1001", "PCN1002", "PCN1004", "PCN1005", "PCN1003"]
        .iter()
        .enumerate()
    {
        let a = mime(&sb, &submission(x837(&[pcn], 500 + i as u32))).await;
        assert_eq!(a.error_code, "Success", "{a:?}");
    }
    let mut pages = Vec::new();
    loop {
        let a = mime(&sb, &retrieval("X12_999_RetrievalRequest_005010X231A1")).await;
        assert_eq!(a.error_code, "Success", "{a:?}");
        if a.payload.is_empty() {
            break;
        }
        let doc = valid(&a.payload);
        pages.push(
            doc.interchanges
                .iter()
                .map(|i| i.header.control_number.clone())
                .collect::<Vec<_>>(),
        );
        assert!(pages.len() < 10, "the mailbox never empties: {pages:?}");
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1], "{pages:?}");
    let all: Vec<String> = pages.concat();
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(all, sorted, "oldest first, each once: {pages:?}");
}

#[tokio::test]
async fn a_resubmitted_payload_id_is_archived_again_and_answered_the_same() {
    let sb = start(&demo());
    let req = submission(x837(&["PCN1001"], 401));
    let first = mime(&sb, &req).await;
    let second = mime(&sb, &req).await;
    assert_eq!(first.payload, second.payload);
    assert_eq!(first.error_code, "Success");
    let a = mime(&sb, &retrieval("X12_999_RetrievalRequest_005010X231A1")).await;
    assert_eq!(
        valid(&a.payload).interchanges.len(),
        1,
        "one 999 for one batch"
    );
    let st = stats(&sb).await;
    assert_eq!(st["payloads"]["X12_837_Request_005010X222A1"], 2);
    assert_eq!(st["claims"], 1);
    let names: Vec<String> = std::fs::read_dir(&sb.archive)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("X12_837"))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().all(|n| n.contains(&req.payload_id)),
        "{names:?}"
    );
}

#[tokio::test]
async fn envelope_errors_name_the_field() {
    let sb = start(&demo());
    let mut r = Req::real_time("X12_999_Request", x270("M1001", "DOE", "19800402"));
    assert_eq!(soap(&sb, &r).await.error_code, "PayloadTypeIncorrect");
    r.payload_type = "X12_270_Request_005010X279A1".into();
    r.payload_id = "not-a-uuid".into();
    assert_eq!(mime(&sb, &r).await.error_code, "PayloadIDIllegal");
    r.payload_id = new_id();
    r.sender = String::new();
    assert_eq!(soap(&sb, &r).await.error_code, "SenderIDRequired");
    let mut r = Req::real_time(
        "X12_270_Request_005010X279A1",
        x270("M1001", "DOE", "19800402"),
    );
    r.password = "wrong".into();
    for (name, send) in TRANSPORTS {
        let a = send(&sb, &r).await;
        assert_eq!(
            (a.status, a.error_code.as_str()),
            (401, "UnAuthorized"),
            "{name}"
        );
    }
    let r = Req::real_time("X12_270_Request_005010X279A1", "ISA*nonsense~".into());
    assert_eq!(soap(&sb, &r).await.error_code, "X12Invalid");
}

#[tokio::test]
async fn every_fault_kind_is_injected_on_demand() {
    let sb = start(&demo());
    let r = || {
        Req::real_time(
            "X12_270_Request_005010X279A1",
            x270("M1001", "DOE", "19800402"),
        )
    };
    for (name, send) in TRANSPORTS {
        fault(&sb, json!({"kind": "http500"})).await;
        assert_eq!(send(&sb, &r()).await.status, 500, "{name}");
        fault(&sb, json!({"kind": "http429", "retry_after_seconds": 7})).await;
        let a = send(&sb, &r()).await;
        assert_eq!(
            (a.status, a.retry_after.as_deref()),
            (429, Some("7")),
            "{name}"
        );
        fault(&sb, json!({"kind": "malformed-x12"})).await;
        let a = send(&sb, &r()).await;
        assert_eq!(a.error_code, "Success");
        assert!(
            billd_x12::parse(a.payload.as_bytes(), billd_x12::Mode::Strict).is_err(),
            "{a:?}"
        );
        fault(
            &sb,
            json!({"kind": "envelope-error", "error_code": "SenderIDIllegal"}),
        )
        .await;
        assert_eq!(
            send(&sb, &r()).await.error_code,
            "SenderIDIllegal",
            "{name}"
        );
        fault(&sb, json!({"kind": "bad-credentials"})).await;
        assert_eq!(send(&sb, &r()).await.status, 401, "{name}");
        fault(&sb, json!({"kind": "slow", "delay_ms": 300})).await;
        let t = std::time::Instant::now();
        let a = send(&sb, &r()).await;
        assert!(t.elapsed() >= std::time::Duration::from_millis(300));
        assert_eq!(a.error_code, "Success", "{name}");
        // Disarmed after its count: the next request is normal.
        assert_eq!(send(&sb, &r()).await.error_code, "Success", "{name}");
    }
    fault(&sb, json!({"kind": "http500", "count": 2})).await;
    assert_eq!(soap(&sb, &r()).await.status, 500);
    assert_eq!(stats(&sb).await["faults_pending"], 1);
    assert_eq!(soap(&sb, &r()).await.status, 500);
    assert_eq!(soap(&sb, &r()).await.status, 200);
    // DELETE disarms what is armed.
    fault(&sb, json!({"kind": "http500", "count": 5})).await;
    let resp = reqwest::Client::new()
        .delete(format!("{}/_sandbox/faults", sb.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(stats(&sb).await["faults_pending"], 0);
    assert_eq!(soap(&sb, &r()).await.status, 200);
}

#[tokio::test]
async fn archived_837s_pass_pyx12_and_270s_and_276s_read_with_linuxforhealth() {
    let (Some(x12valid), Some(python)) = (venv("x12valid"), venv("python")) else {
        eprintln!(
            "skipped: no .venv (python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-test.txt)"
        );
        return;
    };
    let sb = start(&demo());
    soap(&sb, &submission(x837(&["PCN1001", "PCN1002"], 501))).await;
    soap(
        &sb,
        &Req::real_time(
            "X12_270_Request_005010X279A1",
            x270("M1001", "DOE", "19800402"),
        ),
    )
    .await;
    soap(
        &sb,
        &Req::real_time("X12_276_Request_005010X212", x276(&[("PCN1001", 12500)])),
    )
    .await;
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(&sb.archive)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 3);
    for f in files
        .iter()
        .filter(|f| f.to_string_lossy().contains("X12_837"))
    {
        let out = std::process::Command::new(&x12valid)
            .arg(f)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.lines().any(|l| l.ends_with(": OK")), "pyx12: {text}");
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugin-sdk/x12/tests/lfh_read.py");
    let others: Vec<_> = files
        .iter()
        .filter(|f| !f.to_string_lossy().contains("X12_837"))
        .collect();
    let out = std::process::Command::new(python)
        .arg(script)
        .args(&others)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("OK ")).count(),
        2,
        "linuxforhealth: {text}"
    );
}

#[tokio::test]
async fn faults_in_the_scenario_file_are_armed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("faulty.toml");
    let demo_text = std::fs::read_to_string(demo()).unwrap();
    std::fs::write(
        &scenario,
        format!(
            "{demo_text}\n[[faults]]\nkind = \"http429\"\nretry_after_seconds = 3\ncount = 2\n"
        ),
    )
    .unwrap();
    let sb = start(&scenario);
    let r = || {
        Req::real_time(
            "X12_270_Request_005010X279A1",
            x270("M1001", "DOE", "19800402"),
        )
    };
    for _ in 0..2 {
        let a = mime(&sb, &r()).await;
        assert_eq!((a.status, a.retry_after.as_deref()), (429, Some("3")));
    }
    assert_eq!(mime(&sb, &r()).await.error_code, "Success");
}
