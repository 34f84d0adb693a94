//! The connector author's kit, as an integrator outside billd's repository
//! meets it: `billd plugins new` in a temporary directory, `billd plugins
//! build`, the scaffold's own `cargo test` (through `billd-plugin-test`,
//! which runs the component in the real `billd`), and `billd plugins call`
//! on the package. And `billd-plugin-test` itself, on our test plugins.
//!
//! The scaffold builds into the same target directory as
//! scripts/build-plugins.sh (`CARGO_TARGET_DIR`, else plugins/target) with
//! the SDK's lockfile, so its dependencies are compiled already; cargo runs
//! offline.

use billd_e2e::{billd_bin, stderr, stdout, workspace_root};
use billd_plugin_test::{Error, Fixture, Harness};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where the plugins are built, shared with scripts/build-plugins.sh.
fn plugin_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("plugins/target"))
}

/// A command run in `dir` the way an author's shell would: billd found
/// through `$BILLD`, cargo offline, the shared target directory.
fn command(program: &Path, dir: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir)
        .env("BILLD", billd_bin())
        .env("CARGO_TARGET_DIR", plugin_target_dir())
        .env("CARGO_NET_OFFLINE", "true")
        .env_remove("BILLD_CONFIG")
        // What the outer `cargo test` sets for this crate must not leak
        // into the scaffold's cargo.
        .env_remove("CARGO_MANIFEST_DIR")
        .env_remove("CARGO_PKG_NAME");
    c
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn cargo() -> PathBuf {
    PathBuf::from(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn dist(name: &str) -> PathBuf {
    let p = workspace_root().join("plugins/dist").join(name);
    assert!(
        p.join("plugin.toml").exists(),
        "{} is missing: run scripts/build-plugins.sh",
        p.display()
    );
    p
}

#[test]
fn new_build_test_and_call_a_scaffold_outside_the_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(workspace_root()).unwrap();
    let outside = std::fs::canonicalize(tmp.path()).unwrap();
    assert!(!outside.starts_with(&root), "{}", outside.display());
    let billd = billd_bin();

    for (name, world, func, input, expect) in [
        (
            "acme-payer",
            "payer",
            "check-eligibility",
            "fixtures/eligibility-inquiry.json",
            json!({"status": "active", "plan-name": "SILVER HMO"}),
        ),
        (
            "acme-ehr",
            "ehr",
            "appointments",
            "fixtures/window.json",
            json!([{"appointment-id": "A-1"}, {"status": "no-show"}]),
        ),
        (
            "acme-agency",
            "collections",
            "place-accounts",
            "fixtures/placements.json",
            json!([{"agency-account-id": "AG-77"}]),
        ),
    ] {
        let made = ok(
            command(billd, &outside)
                .args(["plugins", "new", name, "--world", world, "--dir"])
                .arg(&outside)
                .output()
                .unwrap(),
            "billd plugins new",
        );
        let dir = outside.join(name);
        assert!(made.contains(&format!("created {name}")), "{made}");

        // What an author starts from is formatted as rustfmt would.
        ok(
            command(&cargo(), &dir)
                .args(["fmt", "--check"])
                .output()
                .unwrap(),
            &format!("cargo fmt --check of the {name} scaffold"),
        );

        let built = ok(
            command(billd, &dir)
                .args(["plugins", "build", "--json"])
                .output()
                .unwrap(),
            "billd plugins build",
        );
        let built: Value = serde_json::from_str(built.trim()).unwrap();
        let package = PathBuf::from(built["package"].as_str().unwrap());
        assert_eq!(package, dir.join("dist").join(name));
        // Names agree with no hand editing: cargo's underscores included.
        let component = package.join(format!("{}.wasm", name.replace('-', "_")));
        assert_eq!(built["component"].as_str(), component.to_str());
        assert_eq!(
            built["sha256"].as_str().unwrap(),
            sha256_hex(&std::fs::read(&component).unwrap())
        );

        let tested = ok(
            command(&cargo(), &dir).arg("test").output().unwrap(),
            &format!("cargo test of the {name} scaffold"),
        );
        assert!(tested.contains("test result: ok. 3 passed"), "{tested}");

        let called = ok(
            command(billd, &dir)
                .args(["plugins", "call", "--plugin"])
                .arg(&package)
                .args(["--func", func, "--input", input])
                .args(["--http-fixtures", "fixtures/http", "--secret", "api-key=k"])
                .output()
                .unwrap(),
            "billd plugins call",
        );
        let result: Value = serde_json::from_str(&called).unwrap();
        assert_contains(&result["ok"], &expect);
    }

    // A manifest naming another world is refused at build, naming the file
    // and the field once, and the package is left as it was.
    let dir = outside.join("acme-payer");
    let manifest = dir.join("plugin.toml");
    let good = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        good.replace("world = \"payer-connector\"", "world = \"ehr-connector\""),
    )
    .unwrap();
    let out = command(billd, &dir)
        .args(["plugins", "build"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("plugin.toml: world = \"ehr-connector\"")
            && err.contains("billd:connector/ehr"),
        "{err}"
    );
    assert_eq!(err.matches("world =").count(), 1, "{err}");
    let packaged = std::fs::read_to_string(dir.join("dist/acme-payer/plugin.toml")).unwrap();
    assert!(
        packaged.contains("world = \"payer-connector\""),
        "{packaged}"
    );
    std::fs::write(&manifest, good).unwrap();

    // The scaffold's test can fail: an answer the connector must report
    // as inactive breaks the test that expects an active member.
    let fixture = dir.join("fixtures/http/coverage.json");
    let text = std::fs::read_to_string(&fixture)
        .unwrap()
        .replace("\"active\": true", "\"active\": false");
    std::fs::write(&fixture, text).unwrap();
    let out = command(&cargo(), &dir).arg("test").output().unwrap();
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("an_active_member_is_covered ... FAILED"),
        "{}",
        stdout(&out)
    );
}

/// Whether every field `expect` names is in `actual` with that value (lists
/// element by element).
fn assert_contains(actual: &Value, expect: &Value) {
    match (actual, expect) {
        (Value::Object(a), Value::Object(e)) => {
            for (k, v) in e {
                assert_contains(&a[k], v);
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            assert!(a.len() >= e.len(), "{actual} vs {expect}");
            for (x, y) in a.iter().zip(e) {
                assert_contains(x, y);
            }
        }
        _ => assert_eq!(actual, expect),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), bytes).unwrap();
    let out = Command::new("sha256sum").arg(tmp.path()).output().unwrap();
    stdout(&out).split_whitespace().next().unwrap().to_string()
}

fn echo_payer() -> Harness {
    Harness::for_package(dist("echo-payer"))
        .billd(billd_bin())
        .setting("generation", "3")
        .start()
        .unwrap()
}

fn inquiry() -> Value {
    let path = workspace_root().join("plugins/template/fixtures/eligibility-inquiry.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_test_harness_keeps_state_for_its_session_and_reports_call_errors() {
    let h = echo_payer();
    assert_eq!(h.plugin(), "echo-payer");
    let out = h
        .call_with_key("check-eligibility", "k-1", &inquiry())
        .unwrap();
    assert_eq!(out["ok"]["plan-name"], "generation 3");
    assert_eq!(out["ok"]["payer-reference"], "echo-k-1");
    for n in 1..=2 {
        let page = h.call_ok("fetch-remittances", &Value::Null).unwrap();
        assert_eq!(page["next"], format!("-{n}"));
    }
    assert_eq!(h.state_json("calls").unwrap(), Some(json!(2)));
    // A second harness is a fresh session: no state carried over.
    assert_eq!(echo_payer().state().unwrap().len(), 0);
    match h.call("no-such-export", &Value::Null) {
        Err(Error::Call(msg)) => assert!(msg.contains("no-such-export"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // The session goes on after a failed call.
    assert!(h.call_ok("fetch-remittances", &Value::Null).is_ok());
}

#[test]
fn the_test_harness_scripts_http_through_the_hosts_sandbox() {
    let h = Harness::for_package(dist("connector-template"))
        .billd(billd_bin())
        .fixtures_dir(workspace_root().join("plugins/template/fixtures/http"))
        .secret("api-key", "t0ken")
        .start()
        .unwrap();
    let out = h.call_ok("check-eligibility", &inquiry()).unwrap();
    assert_eq!(out["status"], "active");
    h.add_fixture(
        Fixture::new("POST", "https://api.payer.example/coverage")
            .status(429)
            .header("retry-after", "30"),
    )
    .unwrap();
    let out = h.call("check-eligibility", &inquiry()).unwrap();
    assert_eq!(
        out["err"]["rate-limited"]["retry-after-seconds"], 30,
        "{out}"
    );
    let sent = h.requests().unwrap();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].header("Authorization"), Some("Bearer t0ken"));
    assert_eq!(sent[0].json().unwrap()["member"], "W1234");
    // The host's audit saw both, with no body.
    let audit = h.audit().unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[1]["status"], 429);
    assert!(!audit[0].to_string().contains("W1234"));
}

#[test]
fn the_test_harness_hands_billd_a_signing_key_the_plugin_only_signs_with() {
    let key = workspace_root().join("daemon/src/plugin/testdata/ec-p384.pem");
    let h = Harness::for_package(dist("signer"))
        .billd(billd_bin())
        .signing_key("assertion", &key, Some("harness-kid"))
        .start()
        .unwrap();
    let window = serde_json::json!({
        "start": {"seconds": 1_800_000_000i64, "nanoseconds": 0},
        "end": {"seconds": 1_800_000_300i64, "nanoseconds": 0},
    });
    let out = h.call_with_key("appointments", "jti-h", &window).unwrap();
    let token = out["ok"][0]["appointment-id"].as_str().expect("a token");
    // A compact JWS: header.claims.signature, the header naming the kid.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[0])
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header["kid"], "harness-kid");
    assert_eq!(header["alg"], "ES384");
    assert_eq!(out["ok"][0]["location"], "nothing");
}

#[test]
fn the_test_harness_says_why_a_plugin_or_billd_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    match Harness::for_package(tmp.path()).billd(billd_bin()).start() {
        Err(Error::Load(msg)) => assert!(msg.contains("plugin.toml"), "{msg}"),
        other => panic!("{other:?}"),
    }
    match Harness::for_package(dist("echo-payer"))
        .billd(tmp.path().join("no-billd-here"))
        .start()
    {
        Err(e @ Error::Billd { .. }) => assert!(e.to_string().contains("BILLD="), "{e}"),
        other => panic!("{other:?}"),
    }
    // A crate that does not build: the build output comes back.
    std::fs::write(tmp.path().join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
    std::fs::write(
        tmp.path().join("plugin.toml"),
        "name = \"x\"\nversion = \"0.1.0\"\nworld = \"ehr-connector\"\nsdk_version = \"0.1.0\"\n",
    )
    .unwrap();
    match Harness::for_crate(tmp.path()).billd(billd_bin()).start() {
        Err(e @ Error::Build { .. }) => assert!(e.to_string().contains("cargo build"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_test_harness_hands_submit_claims_the_prior_payers_it_is_given() {
    let h = Harness::for_package(dist("cob-probe"))
        .billd(billd_bin())
        .start()
        .unwrap();
    let path = workspace_root().join("plugins/core-clearinghouse/fixtures/claims.json");
    let claims: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut claim = claims[0].clone();
    claim["claim-id"] = json!("S-1");
    let date = json!({"year": 2026, "month": 11, "day": 20});
    let prior = json!({"S-1": [{
        "sequence": "primary",
        "payer-id": "FIRST1",
        "payer-name": "First Health",
        "subscriber": {
            "name": {"last": "Doe", "first": "Jane"},
            "member-id": "MP-1",
        },
        "paid": 6000,
        "adjustments": [{"group": "patient-responsibility", "reason-code": "1", "amount": 4000}],
        "lines": [],
        "patient-responsibility": 4000,
        "adjudicated": date,
    }]});
    let out = h
        .submit_claims_with_prior_payers("batch-1", &json!([claim]), &prior)
        .unwrap();
    let seen: Value = serde_json::from_str(out["ok"]["message"].as_str().unwrap()).unwrap();
    assert_eq!(
        seen["S-1"],
        json!([{"payer": "FIRST1", "sequence": "P", "paid": 6000, "lines": 0, "adjusted": 4000}]),
        "{out}"
    );
    // Without them, the plugin is told nothing.
    let out = h
        .call_with_key("submit-claims", "batch-2", &json!([claim]))
        .unwrap();
    let seen: Value = serde_json::from_str(out["ok"]["message"].as_str().unwrap()).unwrap();
    assert_eq!(seen["S-1"], json!([]));
}
