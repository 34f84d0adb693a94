//! `billd plugins session`: one loaded plugin, many calls, as JSON lines on
//! stdin and stdout.
//!
//! It exists so an author's `cargo test` (through the `billd-plugin-test`
//! crate) runs a component in the very host the daemon uses, without
//! linking the daemon: the test starts this verb, scripts HTTP answers, makes
//! calls, and reads back the requests, the audit records and the plugin's
//! state, which stays in memory for the whole session.
//!
//! The first line written is `{"ready": {"plugin": NAME, "world": WORLD}}`
//! once the package has loaded (a load failure exits with the error on
//! stderr instead). Then each request line gets exactly one answer line,
//! `{"ok": VALUE}` or `{"error": MESSAGE}`:
//!
//! | request | answer |
//! | --- | --- |
//! | `{"op": "call", "func": F, "input": JSON, "idempotency-key"?: K, "prior-payers"?: P}` | the result, `{"ok": …}` or `{"err": …}`; `P` (for `submit-claims`) maps claim ids to `prior-payer` lists |
//! | `{"op": "fixture", "fixture": {"request": …, "response": …}}` | `null`; matched before earlier fixtures |
//! | `{"op": "requests"}` | the requests the fixtures received |
//! | `{"op": "audit"}` | the HTTP audit records |
//! | `{"op": "state"}` | the plugin's state, key to value (text, or `{"base64": …}`) |
//! | `{"op": "sync", "mark": N}` | `N`, after writing the line `billd-session-sync N` to stderr |
//!
//! `sync` lets a client that reads stderr on another thread know when it
//! has every log line written before the request: the mark comes after them
//! on the same stream.

use crate::plugin::harness::Harness;
use crate::plugin::http::Fixture;
use crate::plugin::{CallContext, dynamic, kv};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::{BufRead, Write};

/// One request line.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
enum SessionRequest {
    Call {
        func: String,
        #[serde(default)]
        input: Value,
        #[serde(default, rename = "idempotency-key")]
        idempotency_key: Option<String>,
        /// For `submit-claims`: earlier payers by claim id, which the
        /// plugin's `coordination.prior-payers` import answers with.
        #[serde(default, rename = "prior-payers")]
        prior_payers: Option<Value>,
    },
    Fixture {
        fixture: Fixture,
    },
    Requests,
    Audit,
    State,
    Sync {
        mark: u64,
    },
}

/// The stderr line a `sync` request writes, before its mark.
pub const SYNC_LINE: &str = "billd-session-sync";

/// Serves requests from `input` until it ends, answering on `output`.
/// Only I/O errors on the two streams end it early; a bad request or a
/// failed call is answered with `{"error": …}` and the session goes on.
pub fn serve(
    harness: &Harness,
    rt: &tokio::runtime::Runtime,
    input: impl BufRead,
    mut output: impl Write,
) -> std::io::Result<()> {
    let ready = json!({ "ready": {
        "plugin": harness.plugin().name(),
        "world": harness.plugin().manifest().world.to_string(),
    }});
    writeln!(output, "{ready}")?;
    output.flush()?;
    let mut calls = 0u64;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<SessionRequest>(&line) {
            Ok(req) => answer(harness, rt, req, &mut calls),
            Err(e) => Err(format!("not a session request: {e}")),
        };
        let out = match answer {
            Ok(v) => json!({ "ok": v }),
            Err(e) => json!({ "error": e }),
        };
        writeln!(output, "{out}")?;
        output.flush()?;
    }
    Ok(())
}

fn answer(
    harness: &Harness,
    rt: &tokio::runtime::Runtime,
    req: SessionRequest,
    calls: &mut u64,
) -> Result<Value, String> {
    match req {
        SessionRequest::Call {
            func,
            input,
            idempotency_key,
            prior_payers,
        } => {
            *calls += 1;
            let key = idempotency_key
                .unwrap_or_else(|| format!("session-{}-{calls}", std::process::id()));
            let context = match prior_payers {
                None => CallContext::default(),
                Some(_) if func != "submit-claims" => {
                    return Err(format!(
                        "prior-payers is for submit-claims only, not {func}"
                    ));
                }
                Some(json) => dynamic::prior_payers_context(harness.plugin(), &json)
                    .map_err(|e| e.to_string())?,
            };
            rt.block_on(dynamic::call_json_with(
                harness.plugin(),
                &func,
                &key,
                &input,
                context,
            ))
            .map_err(|e| e.to_string())
        }
        SessionRequest::Fixture { fixture } => {
            harness.add_fixture(fixture);
            Ok(Value::Null)
        }
        SessionRequest::Requests => Ok(harness
            .requests()
            .into_iter()
            .map(|r| {
                json!({
                    "method": r.method,
                    "url": r.url,
                    "headers": r.headers,
                    "body": String::from_utf8_lossy(&r.body),
                })
            })
            .collect()),
        SessionRequest::Sync { mark } => {
            // The plugin's lines go out through the log pump's thread:
            // let it catch up, so the mark comes after them.
            harness
                .plugin()
                .settle_logs(std::time::Duration::from_secs(5));
            let mut err = std::io::stderr().lock();
            writeln!(err, "{SYNC_LINE} {mark}")
                .and_then(|()| err.flush())
                .map_err(|e| format!("stderr: {e}"))?;
            Ok(json!(mark))
        }
        SessionRequest::Audit => serde_json::to_value(harness.audit()).map_err(|e| e.to_string()),
        SessionRequest::State => {
            let prefix = format!("{}/", harness.plugin().name());
            let entries = harness
                .state()
                .scan_prefix(kv::COLLECTION, prefix.as_bytes())
                .map_err(|e| format!("state store: {e}"))?;
            Ok(entries
                .into_iter()
                .map(|(k, v)| {
                    let key = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                    let value = match String::from_utf8(v) {
                        Ok(text) => Value::String(text),
                        Err(e) => json!({
                            "base64": base64::engine::general_purpose::STANDARD.encode(e.as_bytes())
                        }),
                    };
                    (key, value)
                })
                .collect::<serde_json::Map<_, _>>()
                .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::tests::{dist, inquiry_json};

    fn lines(harness: &Harness, requests: &[Value]) -> Vec<Value> {
        let rt = crate::cli::runtime().unwrap();
        let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
        let mut out = Vec::new();
        serve(harness, &rt, input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_session_keeps_state_across_calls_and_answers_every_line() {
        let h = Harness::builder(dist("echo-payer")).build().unwrap();
        let out = lines(
            &h,
            &[
                json!({"op": "call", "func": "check-eligibility", "input": inquiry_json("W7"), "idempotency-key": "k1"}),
                json!({"op": "call", "func": "fetch-remittances"}),
                json!({"op": "call", "func": "fetch-remittances"}),
                json!({"op": "state"}),
                json!({"op": "call", "func": "no-such-export"}),
                json!({"op": "launch"}),
                json!({"op": "sync", "mark": 5}),
            ],
        );
        assert_eq!(out.len(), 8, "{out:?}");
        assert_eq!(out[7]["ok"], 5, "a sync answers its mark");
        assert_eq!(out[0]["ready"]["plugin"], "echo-payer");
        assert_eq!(out[0]["ready"]["world"], "payer-connector");
        assert_eq!(out[1]["ok"]["ok"]["payer-reference"], "echo-k1");
        // The second call sees the state the first one left.
        assert_eq!(out[2]["ok"]["ok"]["next"], "-1");
        assert_eq!(out[3]["ok"]["ok"]["next"], "-2");
        assert_eq!(out[4]["ok"]["calls"], "2", "{:?}", out[4]);
        assert!(
            out[5]["error"]
                .as_str()
                .unwrap()
                .contains("no function \"no-such-export\""),
            "{:?}",
            out[5]
        );
        assert!(
            out[6]["error"]
                .as_str()
                .unwrap()
                .contains("not a session request"),
            "{:?}",
            out[6]
        );
    }

    #[test]
    fn a_session_call_hands_submit_claims_its_prior_payers() {
        let h = Harness::builder(dist("cob-probe")).build().unwrap();
        let root = crate::plugin::tests::workspace_root();
        let claims: Value = serde_json::from_slice(
            &std::fs::read(root.join("plugins/core-clearinghouse/fixtures/claims.json")).unwrap(),
        )
        .unwrap();
        let mut claim = claims[0].clone();
        claim["claim-id"] = json!("A");
        let prior = json!({"A": [crate::plugin::contract_tests::primary_json()]});
        let out = lines(
            &h,
            &[
                json!({"op": "call", "func": "submit-claims", "input": [claim], "prior-payers": prior}),
                json!({"op": "call", "func": "submit-claims", "input": [claim]}),
                json!({"op": "call", "func": "claim-status", "input": [], "prior-payers": prior}),
                json!({"op": "call", "func": "submit-claims", "input": [claim], "prior-payers": {"A": [{"sequence": "first"}]}}),
            ],
        );
        assert_eq!(out.len(), 5, "{out:?}");
        let seen = |i: usize| -> Value {
            serde_json::from_str(out[i]["ok"]["ok"]["message"].as_str().unwrap()).unwrap()
        };
        assert_eq!(seen(1)["A"][0]["payer"], "PRIMARY1", "{:?}", out[1]);
        assert_eq!(seen(2)["A"], json!([]), "none given, none told");
        let refused = out[3]["error"].as_str().unwrap();
        assert!(refused.contains("submit-claims only"), "{refused}");
        let bad = out[4]["error"].as_str().unwrap();
        assert!(bad.contains("A[0]"), "{bad}");
    }

    #[test]
    fn a_fixture_added_in_the_session_answers_the_next_request() {
        let root = crate::plugin::tests::workspace_root().join("plugins/template/fixtures");
        let inquiry: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("eligibility-inquiry.json")).unwrap(),
        )
        .unwrap();
        let h = Harness::builder(dist("connector-template"))
            .fixtures_dir(root.join("http"))
            .secret("api-key", "test-key")
            .build()
            .unwrap();
        let call = json!({"op": "call", "func": "check-eligibility", "input": inquiry});
        let out = lines(
            &h,
            &[
                call.clone(),
                json!({"op": "fixture", "fixture": {
                    "request": {"method": "POST", "url": "https://api.payer.example/coverage"},
                    "response": {"status": 200, "json": {"active": false}}
                }}),
                call,
                json!({"op": "requests"}),
                json!({"op": "audit"}),
            ],
        );
        assert_eq!(out[1]["ok"]["ok"]["status"], "active", "{:?}", out[1]);
        assert_eq!(out[2]["ok"], Value::Null);
        assert_eq!(out[3]["ok"]["ok"]["status"], "inactive", "{:?}", out[3]);
        let reqs = out[4]["ok"].as_array().unwrap();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0]["url"], "https://api.payer.example/coverage");
        assert!(reqs[0]["body"].as_str().unwrap().contains("W1234"));
        assert_eq!(out[5]["ok"].as_array().unwrap().len(), 2);
        assert_eq!(out[5]["ok"][0]["status"], 200);
    }
}
