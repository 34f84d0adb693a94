//! Runs the connector in billd's plugin host (the daemon's sandbox) against
//! the scripted HTTP answers in `fixtures/http`.

use billd_plugin_test::{Fixture, Harness};
use serde_json::Value;
use std::path::Path;

const COVERAGE_URL: &str = "https://api.payer.example/coverage";

{% include "test_helpers.rs" %}
#[test]
fn an_active_member_is_covered() {
    let h = harness();
    let out = h.call_ok("check-eligibility", &input()).unwrap();
    assert_eq!(out["status"], "active");
    assert_eq!(out["plan-name"], "SILVER HMO");
    let sent = h.requests().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header("authorization"), Some("Bearer test-key"));
    assert!(sent[0].header("idempotency-key").is_some());
    let body = sent[0].json().unwrap();
    assert_eq!(body["member"], "W1234");
    assert_eq!(body["date"], "2026-11-02");
}

#[test]
fn a_refused_token_is_an_authentication_error() {
    let h = harness();
    h.add_fixture(Fixture::new("POST", COVERAGE_URL).status(401))
        .unwrap();
    let out = h.call("check-eligibility", &input()).unwrap();
    assert!(out["err"].get("authentication").is_some(), "{out}");
}

#[test]
fn nothing_patient_identifying_is_logged() {
    let h = harness();
    h.call_ok("check-eligibility", &input()).unwrap();
    for line in h.logs() {
        assert!(!line.contains("W1234") && !line.contains("Doe"), "{line}");
    }
}
