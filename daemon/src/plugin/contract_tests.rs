//! Tests of the contract's versions: components built against 0.1.0, 0.2.0
//! and 0.3.0 keep loading on this 0.4.0 host, 0.2.0's `signing` import
//! signs with a practice key the plugin can never read, and 0.4.0's
//! `coordination` import answers a payer connector only about the claims
//! of the call it serves. (0.3.0's `sftp` import is tested in
//! `sftp_tests`.)

use super::bindings::coordination_api::{
    LineAdjudication, OtherSubscriber, PayerSequence, PriorPayer,
};
use super::bindings::ehr_api::Window;
use super::bindings::payer_api::StatusInquiry;
use super::bindings::types::{
    Adjustment, AdjustmentGroup, Date, Procedure, ProcedureCodeSet, Timestamp,
};
use super::config::{PluginEntry, PluginSpec};
use super::jwt::SigningKeyRef;
use super::tests::{dist, test_host, workspace_root};
use super::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::SecretString;

const EC_KEY: &str = include_str!("testdata/ec-p384.pem");
const EC_PUB: &str = include_str!("testdata/ec-p384.pub.pem");

fn window() -> Window {
    let ts = |seconds| Timestamp {
        seconds,
        nanoseconds: 0,
    };
    Window {
        start: ts(1_800_000_000),
        end: ts(1_800_000_300),
    }
}

/// The signer test plugin's spec with its `assertion` key configured.
fn signer_spec(kid: Option<&str>) -> PluginSpec {
    let entry = PluginEntry {
        signing_keys: [(
            "assertion".to_string(),
            SigningKeyRef {
                key: "file:ec-p384.pem".into(),
                kid: kid.map(str::to_string),
            },
        )]
        .into(),
        ..PluginEntry::for_tests("signer", &dist("signer"))
    };
    entry
        .to_spec(0, Path::new("."), &|r: &str| {
            assert_eq!(r, "file:ec-p384.pem");
            Ok(SecretString::from(EC_KEY.to_string()))
        })
        .unwrap()
}

/// The frozen build of contract `version` in `testdata`, checked to
/// import that version's own interface and nothing of the next.
fn frozen(t: &super::tests::TestHost, version: &str) -> PathBuf {
    let (name, import, newer) = match version {
        "0.1.0" => ("echo-payer", "billd:connector/host@0.1.0", "@0.2.0"),
        "0.2.0" => ("signer", "billd:connector/signing@0.2.0", "@0.3.0"),
        "0.3.0" => ("sftp-probe", "billd:connector/sftp@0.3.0", "@0.4.0"),
        other => panic!("no frozen build of contract {other}"),
    };
    let dir = workspace_root()
        .join("daemon/src/plugin/testdata")
        .join(format!("contract-{version}"))
        .join(name);
    let inspection = dynamic::inspect(t.host.engine(), &dir).unwrap();
    assert!(
        inspection.imports.iter().any(|i| i == import),
        "{:?}",
        inspection.imports
    );
    assert!(
        !inspection.imports.iter().any(|i| i.contains(newer)),
        "the fixture must be a {version} build: {:?}",
        inspection.imports
    );
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_against_0_1_0_keeps_loading() {
    let t = test_host(PluginTrust::default());
    let old = frozen(&t, "0.1.0");
    let mut spec = PluginSpec::unpinned("echo-payer", &old);
    spec.settings
        .insert("generation".into(), toml::Value::Integer(7));
    let p = t.host.load(&spec).unwrap();
    // The answer depends on a host import (the `generation` setting).
    let e = p
        .check_eligibility("k", &super::tests::inquiry("M1"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        e.plan_name.as_deref().is_some_and(|n| n.contains('7')),
        "{:?}",
        e.plan_name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_against_0_2_0_keeps_loading_and_signing() {
    let t = test_host(PluginTrust::default());
    let old = frozen(&t, "0.2.0");
    let entry = PluginEntry {
        signing_keys: [(
            "assertion".to_string(),
            SigningKeyRef {
                key: "file:ec-p384.pem".into(),
                kid: Some("old".into()),
            },
        )]
        .into(),
        ..PluginEntry::for_tests("signer", &old)
    };
    let spec = entry
        .to_spec(0, Path::new("."), &|_| {
            Ok(SecretString::from(EC_KEY.to_string()))
        })
        .unwrap();
    let p = t.host.load(&spec).unwrap();
    let appts = p.appointments("jti-2", window()).await.unwrap().unwrap();
    let header = jsonwebtoken::decode_header(&appts[0].appointment_id).unwrap();
    assert_eq!(header.kid.as_deref(), Some("old"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_against_0_3_0_keeps_loading_and_reaching_sftp() {
    let sshd = super::testing::sshd::Sshd::start();
    let t = test_host(PluginTrust::default());
    let old = frozen(&t, "0.3.0");
    let p = t
        .host
        .load(&super::sftp_tests::probe_spec_at(
            &old,
            super::sftp_tests::server_ref(&sshd),
        ))
        .unwrap();
    let inbox = sshd.folder("inbound");
    let (out, _) = super::sftp_tests::run(
        &p,
        serde_json::json!([
            {"op": "put", "path": format!("{inbox}/old.txt"), "text": "from 0.3.0"},
            {"op": "get", "path": format!("{inbox}/old.txt")},
        ]),
    )
    .await;
    assert_eq!(out[0], serde_json::json!({"ok": null}), "{out:?}");
    assert!(out[1]["ok"].is_string(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_builds_import_only_what_they_use() {
    // Built with the 0.4.0 SDK: a plugin that uses no SFTP (or no
    // coordination) imports none.
    let t = test_host(PluginTrust::default());
    let echo = dynamic::inspect(t.host.engine(), &dist("echo-payer")).unwrap();
    assert!(
        !echo
            .imports
            .iter()
            .any(|i| i.contains("sftp") || i.contains("coordination")),
        "{:?}",
        echo.imports
    );
    let probe = dynamic::inspect(t.host.engine(), &dist("sftp-probe")).unwrap();
    assert!(
        probe
            .imports
            .iter()
            .any(|i| i == "billd:connector/sftp@0.3.0"),
        "{:?}",
        probe.imports
    );
    let cob = dynamic::inspect(t.host.engine(), &dist("cob-probe")).unwrap();
    assert!(
        cob.imports
            .iter()
            .any(|i| i == "billd:connector/coordination@0.4.0"),
        "{:?}",
        cob.imports
    );
}

/// A primary payer's adjudication of the test claim (100.00 on one line):
/// 70.00 paid by line, 20.00 contractual, 10.00 coinsurance.
fn primary(payer: &str) -> PriorPayer {
    let date = Date {
        year: 2026,
        month: 11,
        day: 20,
    };
    let adj = |group, reason: &str, amount| Adjustment {
        group,
        reason_code: reason.into(),
        amount,
        quantity: None,
    };
    PriorPayer {
        sequence: PayerSequence::Primary,
        payer_id: payer.into(),
        payer_name: "First Health".into(),
        subscriber: OtherSubscriber {
            name: super::tests::inquiry("MP-1").subscriber.name,
            member_id: "MP-1".into(),
            relationship: None,
            group_number: None,
        },
        payer_claim_id: Some("ICN-1".into()),
        paid: 7_000,
        adjustments: vec![],
        lines: vec![LineAdjudication {
            line_number: 1,
            procedure: Procedure {
                code_set: ProcedureCodeSet::Cpt,
                code: "99213".into(),
                modifiers: vec![],
            },
            charge: 10_000,
            paid: 7_000,
            paid_units: 1,
            adjustments: vec![
                adj(AdjustmentGroup::Contractual, "45", 2_000),
                adj(AdjustmentGroup::PatientResponsibility, "2", 1_000),
            ],
            adjudicated: date,
        }],
        patient_responsibility: 1_000,
        adjudicated: date,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_4_0_payer_learns_prior_payers_only_for_the_claims_of_its_call() {
    let t = test_host(PluginTrust::default());
    let mut spec = PluginSpec::unpinned("cob-probe", &dist("cob-probe"));
    spec.settings.insert(
        "also-ask".into(),
        toml::Value::String("OTHER,NOWHERE".into()),
    );
    let p = t.host.load(&spec).unwrap();
    let context = CallContext::new()
        .with_prior_payers("A", vec![primary("PRIMARY1")])
        .with_prior_payers("OTHER", vec![primary("PRIMARY2")]);
    let claims = [super::tests::claim("A"), super::tests::claim("C")];
    let receipt = p
        .submit_claims_with("k-1", &claims, context.clone())
        .await
        .unwrap()
        .unwrap();
    let seen: serde_json::Value =
        serde_json::from_str(receipt.message.as_deref().unwrap()).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({
            "A": [{"payer": "PRIMARY1", "sequence": "P", "paid": 7000, "lines": 1, "adjusted": 3000}],
            "C": [],
            // In the context, but not a claim of the call: nothing.
            "OTHER": [],
            "NOWHERE": [],
        })
    );
    // Another call of the same plugin, without a context: nothing.
    let receipt = p.submit_claims("k-2", &claims).await.unwrap().unwrap();
    let seen: serde_json::Value =
        serde_json::from_str(receipt.message.as_deref().unwrap()).unwrap();
    assert_eq!(seen["A"], serde_json::json!([]), "{seen}");
    // Any other call: nothing either.
    let q = super::tests::inquiry("M1");
    let status = StatusInquiry {
        claim_id: "A".into(),
        payer_id: q.payer_id.clone(),
        payer_claim_id: None,
        provider: q.provider.clone(),
        subscriber: q.subscriber.clone(),
        dependent: None,
        service_from: q.service_date,
        service_to: q.service_date,
        billed: 10_000,
    };
    let answers = p.claim_status("k-3", &[status]).await.unwrap().unwrap();
    assert_eq!(answers[0].message.as_deref(), Some("0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_payer_builds_load_beside_the_coordination_import() {
    // The frozen 0.1.0 payer imports nothing of 0.4.0 and still answers a
    // coordinated submission (it never asks).
    let t = test_host(PluginTrust::default());
    let old = frozen(&t, "0.1.0");
    let p = t
        .host
        .load(&PluginSpec::unpinned("echo-payer", &old))
        .unwrap();
    let context = CallContext::new().with_prior_payers("A", vec![primary("PRIMARY1")]);
    let answer = p
        .submit_claims_with("k", &[super::tests::claim("A")], context)
        .await
        .unwrap();
    // echo-payer does not submit claims: its own answer, not a host failure.
    assert!(answer.is_err(), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_signs_a_jwt_with_the_practice_key_and_the_plugin_cannot_read_it() {
    let t = test_host(PluginTrust::default());
    let inspection = dynamic::inspect(t.host.engine(), &dist("signer")).unwrap();
    assert!(
        inspection
            .imports
            .iter()
            .any(|i| i == "billd:connector/signing@0.2.0"),
        "{:?}",
        inspection.imports
    );
    let p = t.host.load(&signer_spec(Some("kid-7"))).unwrap();
    let appts = p.appointments("jti-1", window()).await.unwrap().unwrap();
    let token = &appts[0].appointment_id;
    let header = jsonwebtoken::decode_header(token).expect(token);
    assert_eq!(header.alg, Algorithm::ES384);
    assert_eq!(header.kid.as_deref(), Some("kid-7"));
    let mut v = Validation::new(Algorithm::ES384);
    v.validate_exp = false;
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        token,
        &DecodingKey::from_ec_pem(EC_PUB.as_bytes()).unwrap(),
        &v,
    )
    .expect("the public key verifies the host's signature")
    .claims;
    assert_eq!(claims["jti"], "jti-1");
    assert_eq!(claims["iss"], "signer-test");
    // Neither secret() nor setting() under the key's name gave it anything.
    assert_eq!(appts[0].location.as_deref(), Some("nothing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_configured_fails_the_signature_not_the_call() {
    let t = test_host(PluginTrust::default());
    let p = t
        .host
        .load(&PluginSpec::unpinned("signer", &dist("signer")))
        .unwrap();
    let appts = p.appointments("k", window()).await.unwrap().unwrap();
    assert!(
        appts[0].appointment_id.contains("Authentication("),
        "{}",
        appts[0].appointment_id
    );
}

#[test]
fn keys_the_manifest_does_not_declare_are_refused_at_load() {
    let t = test_host(PluginTrust::default());
    let mut spec = signer_spec(None);
    let key = spec.signing_keys.remove("assertion").unwrap();
    spec.signing_keys.insert("other".into(), key);
    let e = t.host.load(&spec).expect_err("refused").to_string();
    assert!(e.contains("signing_keys.other"), "{e}");
}

#[test]
fn a_bad_key_file_stops_loading_with_the_field_and_without_the_text() {
    let entry = PluginEntry {
        signing_keys: [(
            "assertion".to_string(),
            SigningKeyRef {
                key: "env:SMART_KEY".into(),
                kid: None,
            },
        )]
        .into(),
        ..PluginEntry::for_tests("signer", &dist("signer"))
    };
    let e = entry
        .to_spec(3, Path::new("."), &|_| {
            Ok(SecretString::from("hunter2 is no key".to_string()))
        })
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("plugin[3].signing_keys.assertion.key"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_configures_signing_keys_for_plugin_authors() {
    let h = harness::Harness::builder(dist("signer"))
        .signing_key("assertion", EC_KEY, Some("author-kid"))
        .build()
        .unwrap();
    let appts = h
        .plugin()
        .appointments("k", window())
        .await
        .unwrap()
        .unwrap();
    let header = jsonwebtoken::decode_header(&appts[0].appointment_id).unwrap();
    assert_eq!(header.kid.as_deref(), Some("author-kid"));
    let bad = harness::Harness::builder(dist("signer"))
        .signing_key("assertion", "not a key", None)
        .build();
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("signing_keys.assertion")
    );
}

/// `primary("PRIMARY1")` as `billd plugins call --prior-payers` takes it:
/// the dynamic JSON convention (kebab-case names and cases).
pub(crate) fn primary_json() -> serde_json::Value {
    serde_json::json!({
        "sequence": "primary",
        "payer-id": "PRIMARY1",
        "payer-name": "First Health",
        "subscriber": {
            "name": {"last": "Doe", "first": "Jane", "middle": null, "suffix": null},
            "member-id": "MP-1",
            "relationship": null,
            "group-number": null
        },
        "payer-claim-id": "ICN-1",
        "paid": 7000,
        "adjustments": [],
        "lines": [{
            "line-number": 1,
            "procedure": {"code-set": "cpt", "code": "99213", "modifiers": []},
            "charge": 10000,
            "paid": 7000,
            "paid-units": 1,
            "adjustments": [
                {"group": "contractual", "reason-code": "45", "amount": 2000, "quantity": null},
                {"group": "patient-responsibility", "reason-code": "2", "amount": 1000, "quantity": null}
            ],
            "adjudicated": {"year": 2026, "month": 11, "day": 20}
        }],
        "patient-responsibility": 1000,
        "adjudicated": {"year": 2026, "month": 11, "day": 20}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prior_payers_given_as_json_reach_a_submit_claims_call_by_name() {
    let t = test_host(PluginTrust::default());
    let p = t
        .host
        .load(&PluginSpec::unpinned("cob-probe", &dist("cob-probe")))
        .unwrap();
    let json = serde_json::json!({"A": [primary_json()]});
    let context = dynamic::prior_payers_context(&p, &json).unwrap();
    assert_eq!(
        context,
        CallContext::new().with_prior_payers("A", vec![primary("PRIMARY1")]),
        "the JSON reads as the typed record it names"
    );

    let claims_file = workspace_root().join("plugins/core-clearinghouse/fixtures/claims.json");
    let one: serde_json::Value =
        serde_json::from_slice(&std::fs::read(claims_file).unwrap()).unwrap();
    let claims: Vec<serde_json::Value> = ["A", "C"]
        .iter()
        .map(|id| {
            let mut c = one[0].clone();
            c["claim-id"] = serde_json::json!(id);
            c
        })
        .collect();
    let answer = dynamic::call_json_with(
        &p,
        "submit-claims",
        "k-1",
        &serde_json::Value::Array(claims),
        context,
    )
    .await
    .unwrap();
    let message = answer["ok"]["message"].as_str().expect("a receipt");
    let seen: serde_json::Value = serde_json::from_str(message).unwrap();
    assert_eq!(
        seen["A"],
        serde_json::json!([{"payer": "PRIMARY1", "sequence": "P", "paid": 7000, "lines": 1, "adjusted": 3000}])
    );
    assert_eq!(seen["C"], serde_json::json!([]));

    // A field that does not fit is named by where it is.
    let mut bad = primary_json();
    bad["lines"][0]["paid-units"] = serde_json::json!("one");
    let err = dynamic::prior_payers_context(&p, &serde_json::json!({"A": [bad]})).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("A[0].lines[0].paid-units"), "{text}");
    let err = dynamic::prior_payers_context(&p, &serde_json::json!([primary_json()])).unwrap_err();
    assert!(err.to_string().contains("claim ids"), "{err}");

    // A plugin built before contract 0.4.0 could never ask: refused.
    let old = frozen(&t, "0.1.0");
    let q = t
        .host
        .load(&PluginSpec::unpinned("echo-payer", &old))
        .unwrap();
    let err = dynamic::prior_payers_context(&q, &json).unwrap_err();
    assert!(err.to_string().contains("does not import"), "{err}");
}
