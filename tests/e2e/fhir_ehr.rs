//! The fhir-ehr connector against `billd-sandbox fhir` over loopback,
//! through the real `billd plugins call` with a practice configuration (so
//! the plugin's state, where it keeps its SMART access token, persists
//! between calls as in the daemon): `*-changed` listings paged by Bundle
//! `next` links and resumed from a `_lastUpdated` cursor, a changed
//! resource coming back, encounters with their ChargeItem and Claim
//! charges, a static bearer token, and SMART Backend Services with a client
//! assertion billd signs (token reuse, early renewal, revocation, a refused
//! exchange and the recovery after it).

use billd_e2e::{
    FhirSandbox, Scratch, base_config, fhir_package, fhir_plugin_table, stderr, workspace_root,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The kid the test key is registered under.
pub(crate) const KID: &str = "fhir-e2e-p384";

/// The kid the RSA test key is registered under.
const RSA_KID: &str = "fhir-e2e-rsa";

/// The SMART client id.
pub(crate) const CLIENT: &str = "billd-e2e";

pub(crate) fn testdata(name: &str) -> PathBuf {
    workspace_root()
        .join("daemon/src/plugin/testdata")
        .join(name)
}

/// The DER of a public test key (`testdata/NAME.pub.pem`).
fn public_der(name: &str) -> Vec<u8> {
    use base64::Engine as _;
    let pem = std::fs::read_to_string(testdata(&format!("{name}.pub.pem"))).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The JWK of the P-384 test key, as an EHR registers a backend client's
/// key.
fn ec_jwk(kid: &str) -> Value {
    let der = public_der("ec-p384");
    // A P-384 SubjectPublicKeyInfo ends with the uncompressed point 04||X||Y.
    assert_eq!(der.len(), 120, "not a P-384 public key");
    assert_eq!(der[23], 0x04, "not an uncompressed point");
    json!({"kty": "EC", "crv": "P-384", "kid": kid, "use": "sig", "alg": "ES384",
           "x": b64url(&der[24..72]), "y": b64url(&der[72..120])})
}

/// The JWK of the RSA-2048 test key.
fn rsa_jwk(kid: &str) -> Value {
    let der = public_der("rsa-2048");
    // An RSA-2048 SubjectPublicKeyInfo: the 256-byte modulus after its
    // INTEGER header, then the exponent 65537.
    assert_eq!(der.len(), 294, "not an RSA-2048 public key");
    assert_eq!(
        der[28..33],
        [0x02, 0x82, 0x01, 0x01, 0x00],
        "modulus header"
    );
    assert_eq!(der[289..], [0x02, 0x03, 0x01, 0x00, 0x01], "exponent 65537");
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS384",
           "n": b64url(&der[33..289]), "e": b64url(&[0x01, 0x00, 0x01])})
}

pub(crate) fn hl7(name: &str) -> Value {
    let p = workspace_root()
        .join("tests/fixtures/fhir/hl7-r4-examples")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// A practice configured with the connector against a FHIR sandbox.
struct Practice {
    s: Scratch,
    calls: std::cell::Cell<u32>,
}

impl Practice {
    /// `settings` and `extra` lines go into the `[[plugin]]` table; `files`
    /// (name, text) are written beside the configuration first.
    fn new(fhir: &FhirSandbox, settings: &str, extra: &str, files: &[(&str, &str)]) -> Practice {
        let s = Scratch::new();
        for (name, text) in files {
            std::fs::write(s.path(name), text).unwrap();
        }
        s.write_config(&format!(
            "{}\n{}",
            base_config("outbox_dir = \"outbox\""),
            fhir_plugin_table(
                &fhir.origin(),
                &format!(", timeout-ms = 5000{settings}"),
                extra
            ),
        ));
        s.init();
        Practice {
            s,
            calls: std::cell::Cell::new(0),
        }
    }

    /// A static bearer token, `page_size` resources a page.
    fn bearer(fhir: &FhirSandbox, token: &str, page_size: u32) -> Practice {
        Practice::new(
            fhir,
            &format!(", auth = \"bearer\", page-size = {page_size}"),
            "secrets = { bearer-token = \"file:bearer.token\" }",
            &[("bearer.token", &format!("{token}\n"))],
        )
    }

    fn smart(fhir: &FhirSandbox) -> Practice {
        Practice::smart_with(fhir, "ec-p384.pem", KID)
    }

    /// SMART with the test key `key` (in testdata) under `kid`.
    fn smart_with(fhir: &FhirSandbox, key: &str, kid: &str) -> Practice {
        Practice::new(
            fhir,
            &format!(
                ", auth = \"smart\", page-size = 10, token-url = \"{}/auth/token\", client-id = \"{CLIENT}\", scopes = \"system/Patient.rs system/Encounter.rs\"",
                fhir.origin()
            ),
            &format!(
                "signing_keys = {{ client-key = {{ key = \"file:{}\", kid = \"{kid}\" }} }}",
                testdata(key).display()
            ),
            &[],
        )
    }

    /// `billd plugins call` with `extra` arguments; the `ok` or `err` JSON
    /// and billd's stderr.
    fn call_input(&self, func: &str, input: &Value, extra: &[&str]) -> (Value, String) {
        let n = self.calls.get() + 1;
        self.calls.set(n);
        let file = self.s.path(&format!("call-{n}.json"));
        std::fs::write(&file, input.to_string()).unwrap();
        let out = self
            .s
            .billd()
            .args(["plugins", "call", "--plugin"])
            .arg(fhir_package())
            .args(["--func", func, "--input"])
            .arg(&file)
            .args(["--idempotency-key", &format!("call-{n}")])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{func}: {}", stderr(&out));
        let v = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{func}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
        (v, stderr(&out))
    }

    /// A `*-changed` call from `since`.
    fn call_with(&self, func: &str, since: Option<&str>, extra: &[&str]) -> (Value, String) {
        self.call_input(func, &json!(since), extra)
    }

    fn call(&self, func: &str, since: Option<&str>) -> Value {
        self.call_with(func, since, &[]).0
    }

    /// One page: its items and the cursor after it.
    fn page(&self, func: &str, since: Option<&str>) -> (Vec<Value>, String) {
        let v = self.call(func, since);
        let ok = v.get("ok").unwrap_or_else(|| panic!("{func}: {v}"));
        let next = ok["next"]
            .as_str()
            .unwrap_or_else(|| panic!("{func} gave no cursor: {v}"))
            .to_owned();
        (ok["items"].as_array().unwrap().clone(), next)
    }

    /// Pages from `since` until the cursor stops moving: every item, the
    /// number of calls, and the final cursor.
    fn listing(&self, func: &str, since: Option<String>) -> (Vec<Value>, usize, String) {
        let mut items = Vec::new();
        let mut cursor = since;
        for calls in 1..=200 {
            let (page, next) = self.page(func, cursor.as_deref());
            items.extend(page);
            if cursor.as_deref() == Some(next.as_str()) {
                return (items, calls, next);
            }
            cursor = Some(next);
        }
        panic!("{func}: the cursor kept moving for 200 pages");
    }

    fn err(&self, func: &str, since: Option<&str>) -> Value {
        let v = self.call(func, since);
        v.get("err")
            .cloned()
            .unwrap_or_else(|| panic!("{func} should fail: {v}"))
    }
}

fn ids(items: &[Value], field: &str) -> Vec<String> {
    items
        .iter()
        .map(|i| i[field].as_str().unwrap().to_owned())
        .collect()
}

/// The patients of the fixtures, every one with an id.
pub(crate) fn fixture_patients() -> BTreeSet<String> {
    let dir = workspace_root().join("tests/fixtures/fhir");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir.join("hl7-r4-examples")).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Patient-")
        {
            // A patient without a birth date reaches billd too (which
            // refuses it with a task), so every patient with an id counts.
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            out.insert(v["id"].as_str().unwrap().to_owned());
        }
    }
    let synthea =
        std::fs::read_to_string(dir.join("synthea-bulk-10patients/Patient.000.ndjson")).unwrap();
    for line in synthea.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        out.insert(v["id"].as_str().unwrap().to_owned());
    }
    out
}

#[test]
fn patients_page_through_next_links_and_a_changed_patient_comes_back_from_the_cursor() {
    let fhir = FhirSandbox::start(&["--static-token", "e2e-static-token"]);
    let p = Practice::bearer(&fhir, "e2e-static-token", 4);

    let (items, calls, cursor) = p.listing("patients-changed", None);
    let got = ids(&items, "patient-id");
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique.len(), got.len(), "a patient listed twice: {got:?}");
    assert_eq!(unique, fixture_patients());
    // 25 patients at 4 a page: 7 pages, then one call finding nothing new.
    assert_eq!(calls, 8, "{calls} calls");
    let cur: Value = serde_json::from_str(&cursor).unwrap();
    assert!(cur.get("next").is_none(), "{cur}");
    assert_eq!(cur["since"], "2026-01-01T00:00:00Z", "{cur}");

    // A second listing from the final cursor finds nothing.
    let (again, again_cursor) = p.page("patients-changed", Some(&cursor));
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(again_cursor, cursor);

    // A changed patient comes back, with its change, and only it.
    let mut example = hl7("Patient-example.json");
    example["name"][0]["family"] = json!("Changedname");
    fhir.put(&example);
    let (changed, calls, after) = p.listing("patients-changed", Some(cursor.clone()));
    assert_eq!(ids(&changed, "patient-id"), ["example"]);
    assert_eq!(changed[0]["name"]["last"], "Changedname");
    assert_eq!(calls, 2);
    assert_ne!(after, cursor, "the high-water mark moved to the change");
    let (none, _) = p.page("patients-changed", Some(&after));
    assert!(none.is_empty(), "{none:?}");

    // Nothing a patient is named by reached billd's log.
    let (_, log) = p.call_with("patients-changed", None, &[]);
    for name in ["Chalmers", "Changedname", "Peter"] {
        assert!(!log.contains(name), "{name} in the log: {log}");
    }
}

#[test]
fn a_changed_encounter_comes_back_with_its_charge_item_and_claim_charges() {
    let fhir = FhirSandbox::start(&["--static-token", "e2e-static-token"]);
    let p = Practice::bearer(&fhir, "e2e-static-token", 500);
    let (all, calls, cursor) = p.listing("encounters-changed", None);
    assert!(all.len() > 1000, "{} encounters", all.len());
    assert_eq!(calls, 4, "1225 encounters at 500 a page, then nothing new");

    // Encounter/example has no period in the HL7 example; give it one and
    // finish it: it comes back with the ChargeItem whose context it is and
    // the Claim whose item names it.
    let mut enc = hl7("Encounter-example.json");
    enc["status"] = json!("finished");
    enc["period"] = json!({"start": "2026-11-30T09:00:00Z", "end": "2026-11-30T09:30:00Z"});
    fhir.put(&enc);
    let (changed, _, _) = p.listing("encounters-changed", Some(cursor));
    assert_eq!(ids(&changed, "encounter-id"), ["example"]);
    let e = &changed[0];
    assert_eq!(e["signed"], true);
    assert_eq!(e["patient-id"], "example");
    let charge_ids = ids(e["charges"].as_array().unwrap(), "charge-id");
    assert!(
        charge_ids.contains(&"ChargeItem/example".to_owned()),
        "{charge_ids:?}"
    );
    assert!(
        charge_ids.iter().any(|c| c.starts_with("Claim/960150/")),
        "{charge_ids:?}"
    );
}

#[test]
fn a_bad_static_token_is_an_authentication_error() {
    let fhir = FhirSandbox::start(&["--static-token", "the-right-token"]);
    let p = Practice::bearer(&fhir, "a-wrong-token", 4);
    let err = p.err("patients-changed", None);
    let msg = err["authentication"]
        .as_str()
        .unwrap_or_else(|| panic!("{err}"));
    assert!(msg.contains("HTTP 401"), "{msg}");
    assert!(!msg.contains("a-wrong-token"), "{msg}");
    assert_eq!(fhir.stats()["tokens_issued"], 0);
}

pub(crate) fn smart_sandbox(lifetime: &str) -> (FhirSandbox, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.jwks.json");
    let keys = json!({"keys": [ec_jwk(KID), rsa_jwk(RSA_KID)]});
    std::fs::write(&file, keys.to_string()).unwrap();
    let fhir = FhirSandbox::start(&[
        "--jwks",
        file.to_str().unwrap(),
        "--client-id",
        CLIENT,
        "--token-lifetime",
        lifetime,
    ]);
    (fhir, dir)
}

#[test]
fn smart_backend_services_reuses_its_token_renews_a_revoked_one_and_recovers_from_a_refusal() {
    let (fhir, _dir) = smart_sandbox("300");
    let p = Practice::smart(&fhir);
    let issued = || fhir.stats()["tokens_issued"].as_u64().unwrap();

    // The first call exchanges a signed assertion for a token; the next
    // reuses it from the plugin's state.
    let (page, cursor) = p.page("patients-changed", None);
    assert_eq!(page.len(), 10);
    assert_eq!(issued(), 1);
    let (page, cursor) = p.page("patients-changed", Some(&cursor));
    assert_eq!(page.len(), 10);
    assert_eq!(issued(), 1, "the cached token was reused");

    // The server forgets its tokens: the 401 drops the cached one and the
    // call succeeds with a new one.
    fhir.post("/_sandbox/revoke-tokens", "");
    let (page, cursor) = p.page("patients-changed", Some(&cursor));
    assert!(!page.is_empty());
    assert_eq!(issued(), 2);
    assert!(
        !cursor.contains("next"),
        "25 patients, 10 a page: the third page is the last"
    );

    // Revoked again, and the token endpoint refuses the next exchange: an
    // authentication error naming the refusal.
    fhir.post("/_sandbox/revoke-tokens", "");
    fhir.post(
        "/_sandbox/faults",
        r#"[{"path": "/auth/token", "status": 401}]"#,
    );
    let err = p.err("patients-changed", Some(&cursor));
    let msg = err["authentication"]
        .as_str()
        .unwrap_or_else(|| panic!("{err}"));
    assert!(msg.contains("invalid_client"), "{msg}");
    assert_eq!(fhir.stats()["token_refusals"], 1);
    assert_eq!(issued(), 2);

    // The next call recovers with a new token, which serves a whole
    // listing.
    let (all, _, _) = p.listing("patients-changed", None);
    assert_eq!(all.len(), fixture_patients().len());
    assert_eq!(issued(), 3);

    // A client the EHR does not know is refused at the token endpoint.
    let (v, _) = p.call_with(
        "patients-changed",
        None,
        &["--setting", "client-id=someone-else"],
    );
    let msg = v["err"]["authentication"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(msg.contains("invalid_client"), "{msg}");
    assert_eq!(fhir.stats()["token_refusals"], 2);
}

#[test]
fn a_token_within_a_minute_of_expiry_is_renewed_before_use() {
    // Tokens living 30 s are always inside the one-minute margin: every
    // call asks for a new one, each with a fresh jti the sandbox accepts.
    let (fhir, _dir) = smart_sandbox("30");
    let p = Practice::smart(&fhir);
    let (_, cursor) = p.page("patients-changed", None);
    p.page("patients-changed", Some(&cursor));
    p.page("patients-changed", Some(&cursor));
    let stats = fhir.stats();
    assert_eq!(stats["tokens_issued"], 3, "{stats}");
    assert_eq!(stats["token_refusals"], 0, "{stats}");
}

#[test]
fn appointments_of_a_window_come_from_every_page() {
    let fhir = FhirSandbox::start(&[
        "--static-token",
        "e2e-static-token",
        "--generate",
        "30",
        "--generate-day",
        "2026-12-03",
    ]);
    let p = Practice::bearer(&fhir, "e2e-static-token", 4);
    let day = |d: u32| {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 12, d)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        json!({"seconds": t, "nanoseconds": 0})
    };
    let window = |from: u32, to: u32| {
        let input = json!({"start": day(from), "end": day(to)});
        p.call_input("appointments", &input, &[]).0
    };
    let v = window(3, 4);
    let got = v["ok"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(got.len(), 30, "30 appointments at 4 a page");
    let unique: BTreeSet<&str> = got
        .iter()
        .map(|a| a["appointment-id"].as_str().unwrap())
        .collect();
    assert_eq!(unique.len(), 30);
    assert!(got.iter().all(|a| a["provider-npi"] == "1234567893"), "{v}");
    assert_eq!(window(4, 5)["ok"], json!([]));
    assert!(
        window(4, 3)["err"]["invalid-request"]["field"] == "window.end",
        "an empty window is refused"
    );
}

#[test]
fn a_dependents_coverage_carries_the_subscriber_read_by_reference() {
    let fhir = FhirSandbox::start(&["--static-token", "e2e-static-token"]);
    let p = Practice::bearer(&fhir, "e2e-static-token", 10);
    let (all, _, cursor) = p.listing("coverages-changed", None);
    assert_eq!(all.len(), 4, "the four HL7 example coverages");

    // Two children covered under Patient/example's policy, and a spouse
    // under a RelatedPerson the server does not have.
    let mut child = hl7("Coverage-9876B1.json");
    child["relationship"] = json!({"coding": [{"code": "child"}]});
    child["subscriber"] = json!({"reference": "Patient/example"});
    fhir.put(&child);
    let mut spouse = hl7("Coverage-7546D.json");
    spouse["relationship"] = json!({"coding": [{"code": "spouse"}]});
    spouse["subscriber"] = json!({"reference": "RelatedPerson/nobody"});
    fhir.put(&spouse);
    let mut sibling = hl7("Coverage-7547E.json");
    sibling["relationship"] = json!({"coding": [{"code": "child"}]});
    sibling["subscriber"] = json!({"reference": "Patient/example"});
    fhir.put(&sibling);
    let before = fhir.stats()["requests"].as_u64().unwrap();
    let (changed, calls, _) = p.listing("coverages-changed", Some(cursor));
    // Two searches, and one read for each subscriber: the siblings' shared
    // subscriber is read once.
    assert_eq!(calls, 2);
    assert_eq!(fhir.stats()["requests"].as_u64().unwrap() - before, 4);
    let by_id = |id: &str| {
        changed
            .iter()
            .find(|c| c["coverage-id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id} in {changed:?}"))
    };
    assert_eq!(changed.len(), 3);
    assert_eq!(by_id("7547E")["subscriber"]["name"]["last"], "Chalmers");
    let c = by_id("9876B1");
    assert_eq!(c["relationship"], "child");
    assert_eq!(c["subscriber"]["name"]["last"], "Chalmers");
    assert_eq!(
        c["subscriber"]["birth-date"],
        json!({"year": 1974, "month": 12, "day": 25})
    );
    let s = by_id("7546D");
    assert_eq!(s["relationship"], "spouse");
    assert_eq!(
        s["subscriber"]["name"]["last"], "",
        "not readable: left empty"
    );
}

#[test]
fn server_failures_map_onto_the_contracts_errors() {
    let fhir = FhirSandbox::start(&["--static-token", "e2e-static-token"]);
    let p = Practice::bearer(&fhir, "e2e-static-token", 4);
    let fault = |status: u16, retry: Option<u32>| {
        let mut f = json!({"path": "/fhir/Patient", "status": status});
        if let Some(r) = retry {
            f["retry_after_seconds"] = json!(r);
        }
        fhir.post("/_sandbox/faults", &json!([f]).to_string());
        p.err("patients-changed", None)
    };
    let e = fault(503, Some(7));
    assert_eq!(e["rate-limited"]["retry-after-seconds"], 7, "{e}");
    let e = fault(429, Some(3));
    assert_eq!(e["rate-limited"]["retry-after-seconds"], 3, "{e}");
    let e = fault(503, None);
    assert!(
        e["transient"]
            .as_str()
            .unwrap_or_default()
            .contains("HTTP 503"),
        "{e}"
    );
    let e = fault(500, None);
    assert!(e["transient"].is_string(), "{e}");
    let e = fault(403, None);
    assert!(e["authentication"].is_string(), "{e}");
    let e = fault(400, None);
    let msg = e["invalid-request"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("HTTP 400"), "{e}");
    assert!(msg.contains("fault armed by the test"), "{e}");
    // Faults spent, the listing works.
    let (page, _) = p.page("patients-changed", None);
    assert_eq!(page.len(), 4);
}

#[test]
fn an_rsa_key_signs_rs384_assertions_and_an_unregistered_kid_is_refused() {
    let (fhir, _dir) = smart_sandbox("300");
    let rsa = Practice::smart_with(&fhir, "rsa-2048.pem", RSA_KID);
    let (page, _) = rsa.page("patients-changed", None);
    assert_eq!(page.len(), 10);
    assert_eq!(fhir.stats()["tokens_issued"], 1);
    let stranger = Practice::smart_with(&fhir, "ec-p384.pem", "not-registered");
    let err = stranger.err("patients-changed", None);
    let msg = err["authentication"]
        .as_str()
        .unwrap_or_else(|| panic!("{err}"));
    assert!(msg.contains("invalid_client"), "{msg}");
    assert!(msg.contains("not-registered"), "{msg}");
}

#[test]
fn an_expired_next_link_restarts_the_listing_from_its_high_water_mark() {
    let fhir = FhirSandbox::start(&["--static-token", "e2e-static-token"]);
    let p = Practice::bearer(&fhir, "e2e-static-token", 4);
    let (first, cursor) = p.page("patients-changed", None);
    let (second, cursor) = p.page("patients-changed", Some(&cursor));
    assert!(cursor.contains("next"), "mid-listing: {cursor}");
    // The server forgets its search: the next link answers 410 Gone.
    fhir.post(
        "/_sandbox/faults",
        r#"[{"path": "/fhir/Patient", "status": 410}]"#,
    );
    let (rest, _, _) = p.listing("patients-changed", Some(cursor));
    let all: Vec<Value> = first.into_iter().chain(second).chain(rest).collect();
    let got = ids(&all, "patient-id");
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique, fixture_patients(), "nothing is skipped");
    assert!(got.len() > unique.len(), "the restart delivers some again");
}
