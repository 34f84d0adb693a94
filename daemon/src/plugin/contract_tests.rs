//! Tests of the contract's versions: components built against 0.1.0 and
//! 0.2.0 keep loading on this 0.3.0 host, and 0.2.0's `signing` import
//! signs with a practice key the plugin can never read. (0.3.0's `sftp`
//! import is tested in `sftp_tests`.)

use super::bindings::ehr_api::Window;
use super::bindings::types::Timestamp;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_against_0_1_0_keeps_loading() {
    let t = test_host(PluginTrust::default());
    let old = workspace_root().join("daemon/src/plugin/testdata/contract-0.1.0/echo-payer");
    let inspection = dynamic::inspect(t.host.engine(), &old).unwrap();
    assert!(
        inspection
            .imports
            .iter()
            .any(|i| i == "billd:connector/host@0.1.0"),
        "{:?}",
        inspection.imports
    );
    assert!(
        !inspection.imports.iter().any(|i| i.contains("@0.2.0")),
        "the fixture must be a 0.1.0 build: {:?}",
        inspection.imports
    );
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
    let old = workspace_root().join("daemon/src/plugin/testdata/contract-0.2.0/signer");
    let inspection = dynamic::inspect(t.host.engine(), &old).unwrap();
    assert!(
        inspection
            .imports
            .iter()
            .any(|i| i == "billd:connector/signing@0.2.0"),
        "{:?}",
        inspection.imports
    );
    assert!(
        !inspection.imports.iter().any(|i| i.contains("@0.3.0")),
        "the fixture must be a 0.2.0 build: {:?}",
        inspection.imports
    );
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
async fn new_builds_import_only_what_they_use() {
    // Built with the 0.3.0 SDK: a plugin that uses no SFTP imports none.
    let t = test_host(PluginTrust::default());
    let echo = dynamic::inspect(t.host.engine(), &dist("echo-payer")).unwrap();
    assert!(
        !echo.imports.iter().any(|i| i.contains("sftp")),
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
