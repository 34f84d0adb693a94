//! Runs the connector in billd's plugin host (the daemon's sandbox) against
//! the scripted HTTP answers in `fixtures/http`.

use billd_plugin_test::{Fixture, Harness};
use serde_json::{Value, json};
use std::path::Path;

const LIST_URL: &str = "https://api.ehr.example/appointments?start=1793577600&end=1793664000";

{% include "test_helpers.rs" %}
#[test]
fn the_schedule_becomes_appointments() {
    let h = harness();
    let out = h.call_ok("appointments", &input()).unwrap();
    let list = out.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["appointment-id"], "A-1");
    assert_eq!(list[0]["start"]["seconds"], 1793610000);
    assert_eq!(list[1]["status"], "no-show");
    let sent = h.requests().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header("authorization"), Some("Bearer test-key"));
}

#[test]
fn an_unknown_status_is_rejected_not_guessed() {
    let h = harness();
    h.add_fixture(Fixture::new("GET", LIST_URL).json(json!([
        { "id": "A-3", "patient": "P-3", "npi": "1234567893", "start": 1793610000,
          "minutes": 30, "status": "teleported", "room": null }
    ])))
    .unwrap();
    let out = h.call("appointments", &input()).unwrap();
    assert_eq!(out["err"]["rejected"]["code"], "unknown-status", "{out}");
}

#[test]
fn an_empty_window_is_refused_before_any_request() {
    let h = harness();
    let mut backwards = input();
    backwards["end"] = backwards["start"].clone();
    let out = h.call("appointments", &backwards).unwrap();
    assert!(out["err"].get("invalid-request").is_some(), "{out}");
    assert!(h.requests().unwrap().is_empty());
}
