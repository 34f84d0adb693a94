//! Runs the connector in billd's plugin host (the daemon's sandbox) against
//! the scripted HTTP answers in `fixtures/http`, with its state in memory.

use billd_plugin_test::Harness;
use serde_json::{Value, json};
use std::path::Path;

{% include "test_helpers.rs" %}
#[test]
fn a_placement_is_accepted_and_remembered() {
    let h = harness();
    let out = h.call_ok("place-accounts", &input()).unwrap();
    assert_eq!(out[0]["account-id"], "ACC-1");
    assert_eq!(out[0]["accepted"], true);
    assert_eq!(out[0]["agency-account-id"], "AG-77");
    let sent = h.requests().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json().unwrap()[0]["balance"], "125.50");
    assert_eq!(
        h.state_json("agency-id/ACC-1").unwrap(),
        Some(json!("AG-77"))
    );
}

#[test]
fn an_account_placed_before_is_not_sent_again() {
    let h = harness();
    h.call_ok("place-accounts", &input()).unwrap();
    let again = h.call_ok("place-accounts", &input()).unwrap();
    assert_eq!(again[0]["agency-account-id"], "AG-77");
    assert_eq!(again[0]["message"], "placed before");
    assert_eq!(h.requests().unwrap().len(), 1);
}

#[test]
fn nothing_patient_identifying_is_logged() {
    let h = harness();
    h.call_ok("place-accounts", &input()).unwrap();
    assert!(h.logs().iter().any(|l| l.contains("1 accounts placed")));
    for line in h.logs() {
        assert!(!line.contains("Doe") && !line.contains("62701"), "{line}");
    }
}
