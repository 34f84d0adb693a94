//! Sandbox tests: each hostile plugin runs while a well-behaved call runs
//! beside it, and each test fails if the protection it names is removed.
//!
//! The plugins are real components built by `scripts/build-plugins.sh` into
//! `plugins/dist`; the tests refuse to run without them.

use super::bindings::payer_api::{self as pay, CoverageStatus, EligibilityInquiry};
use super::bindings::types::{Date, PersonName, Provider, Sex, Subscriber};
use super::http::HttpOutcome;
use super::*;
use crate::store::MemStore;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("daemon/ has a parent")
        .to_path_buf()
}

/// The built package of a plugin in `plugins/dist`.
pub(crate) fn dist(name: &str) -> PathBuf {
    let p = workspace_root().join("plugins/dist").join(name);
    assert!(
        p.join("plugin.toml").is_file(),
        "plugin package {} is missing: run scripts/build-plugins.sh (it builds every plugin for wasm32-wasip2)",
        p.display()
    );
    p
}

/// A copy of a built package whose manifest allows `hosts`.
fn package_with_hosts(name: &str, hosts: &[String]) -> tempfile::TempDir {
    let src = dist(name);
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let m = dir.path().join("plugin.toml");
    let text = std::fs::read_to_string(&m).unwrap();
    let list = hosts
        .iter()
        .map(|h| format!("{h:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("allowed-hosts") || l.starts_with("allowed_hosts") {
                format!("allowed_hosts = [{list}]\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&m, text).unwrap();
    dir
}

pub(crate) fn test_cache_dir() -> PathBuf {
    workspace_root().join("target/plugin-test-cache")
}

/// The fixed key authenticating the tests' shared code cache (a test
/// stand-in for a practice's store key, so test runs share compiled code).
pub(crate) fn test_cache_key() -> Arc<crate::store::StoreKey> {
    Arc::new(crate::store::StoreKey::from_bytes(&[0x42; 32]))
}

pub(crate) struct TestHost {
    pub(crate) host: PluginHost,
    pub(crate) audit: Arc<MemoryAudit>,
    events: Arc<RecordedEvents>,
    kv: Arc<MemStore>,
}

/// Limit breaches as the host reported them.
#[derive(Default)]
pub(crate) struct RecordedEvents(std::sync::Mutex<Vec<(String, Limit)>>);

impl PluginEvents for RecordedEvents {
    fn limit_reached(&self, plugin: &str, limit: Limit) {
        self.0.lock().unwrap().push((plugin.to_string(), limit));
    }
}

impl RecordedEvents {
    /// The limits reported for `plugin`, in order.
    pub(crate) fn of(&self, plugin: &str) -> Vec<Limit> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == plugin)
            .map(|(_, l)| *l)
            .collect()
    }
}

pub(crate) fn test_host(trust: PluginTrust) -> TestHost {
    test_host_with(trust, Arc::new(TracingLog))
}

fn test_host_with(trust: PluginTrust, log: Arc<dyn LogOutput>) -> TestHost {
    let audit = Arc::new(MemoryAudit::new());
    let events = Arc::new(RecordedEvents::default());
    let kv = Arc::new(MemStore::new());
    let mut opts = HostOptions::new(kv.clone()).unwrap();
    opts.engine = EngineSettings {
        max_memory_bytes: 16 << 20,
        ..EngineSettings::small()
    };
    opts.cache_dir = Some(test_cache_dir());
    opts.cache_key = Some(test_cache_key());
    opts.audit = audit.clone();
    opts.trust = trust;
    opts.events = events.clone();
    opts.log = log;
    TestHost {
        host: PluginHost::new(opts).unwrap(),
        audit,
        events,
        kv,
    }
}

fn spec(name: &str, path: &Path) -> PluginSpec {
    PluginSpec::unpinned(name, path)
}

pub(crate) fn inquiry(member: &str) -> EligibilityInquiry {
    EligibilityInquiry {
        payer_id: "60054".into(),
        provider: Provider {
            npi: "1234567893".into(),
            name: "Riverside Family Medicine".into(),
            first_name: None,
            tax_id: Some("123456789".into()),
            taxonomy: None,
        },
        subscriber: Subscriber {
            member_id: member.into(),
            name: PersonName {
                last: "Doe".into(),
                first: "Jane".into(),
                middle: None,
                suffix: None,
            },
            birth_date: Date {
                year: 1980,
                month: 2,
                day: 29,
            },
            sex: Sex::Female,
            group_number: Some("GRP-1".into()),
            address: None,
        },
        dependent: None,
        service_date: Date {
            year: 2026,
            month: 11,
            day: 2,
        },
        service_types: vec!["30".into(), "98".into()],
    }
}

/// A one-line claim `claim_id` to the inquiry's payer, for its subscriber.
pub(crate) fn claim(claim_id: &str) -> pay::Claim {
    let q = inquiry("M1");
    pay::Claim {
        claim_id: claim_id.into(),
        payer_id: q.payer_id,
        billing_provider: q.provider,
        rendering_provider: None,
        subscriber: q.subscriber,
        dependent: None,
        frequency: pay::ClaimFrequency::Original,
        original_payer_claim_id: None,
        place_of_service: "11".into(),
        diagnoses: vec!["J029".into()],
        service_lines: vec![pay::ServiceLine {
            line_number: 1,
            procedure: super::bindings::types::Procedure {
                code_set: super::bindings::types::ProcedureCodeSet::Cpt,
                code: "99213".into(),
                modifiers: vec![],
            },
            diagnosis_pointers: vec![1],
            charge: 10_000,
            units: 1,
            service_date: q.service_date,
            place_of_service: None,
            ndc: None,
        }],
        total_charge: 10_000,
        prior_authorization: None,
    }
}

/// Runs `hostile` while well-behaved eligibility calls keep running beside
/// it; asserts every well-behaved call succeeded, and, for a hostile call
/// that takes a while (`long`), that some finished while it still ran.
async fn beside_good_calls<T>(
    host: &PluginHost,
    long: bool,
    hostile: impl std::future::Future<Output = T>,
) -> T {
    let good = host.load(&spec("echo-payer", &dist("echo-payer"))).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let good_calls = async {
        let mut finished_during = 0;
        for i in 0..20 {
            let r = good
                .check_eligibility(&format!("good-{i}"), &inquiry("W123"))
                .await
                .expect("the well-behaved call failed")
                .expect("the well-behaved plugin answered an error");
            assert_eq!(r.status, CoverageStatus::Active);
            if !done.load(std::sync::atomic::Ordering::SeqCst) {
                finished_during += 1;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        finished_during
    };
    let hostile = async {
        let r = hostile.await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        r
    };
    let (r, finished_during) = tokio::join!(hostile, good_calls);
    assert!(
        !long || finished_during > 0,
        "no well-behaved call completed while the hostile call ran"
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_is_stopped_at_the_deadline() {
    let t = test_host(PluginTrust::default());
    let mut s = spec("hostile-spin", &dist("hostile-spin"));
    s.limits.call_timeout = Duration::from_millis(300);
    let spin = t.host.load(&s).unwrap();
    let started = Instant::now();
    let err = beside_good_calls(&t.host, true, spin.check_eligibility("k", &inquiry("M1")))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        err,
        CallError::Deadline {
            plugin: "hostile-spin".into(),
            limit: Duration::from_millis(300)
        }
    );
    assert!(err.to_string().contains("deadline of 300ms"), "{err}");
    assert!(
        took >= Duration::from_millis(300),
        "stopped early: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "stopped late: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_is_stopped_at_the_cap() {
    let t = test_host(PluginTrust::default());
    let bomb = t
        .host
        .load(&spec("hostile-memory-bomb", &dist("hostile-memory-bomb")))
        .unwrap();
    let err = beside_good_calls(&t.host, false, bomb.check_eligibility("k", &inquiry("M1")))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CallError::MemoryLimit {
            plugin: "hostile-memory-bomb".into(),
            limit_bytes: 16 << 20
        }
    );
    assert!(
        err.to_string().contains("memory limit of 16777216 bytes"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_a_host_not_allowed_is_refused_and_audited() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = test_host(PluginTrust::default());
    let mut s = spec("hostile-forbidden-host", &dist("hostile-forbidden-host"));
    // The manifest allows 127.0.0.1:9, and so does the practice: the
    // listener's port is allowed by neither.
    s.allowed_hosts = vec![Origin::parse("http://127.0.0.1:9").unwrap()];
    s.settings.insert(
        "target-url".into(),
        toml::Value::String(format!("http://127.0.0.1:{port}/submit?member=123")),
    );
    let p = t.host.load(&s).unwrap();
    let answer = beside_good_calls(&t.host, false, p.check_eligibility("k", &inquiry("M1")))
        .await
        .unwrap()
        .unwrap();
    let report = answer.plan_name.unwrap();
    assert!(report.starts_with("http:not-allowed;"), "{report}");
    assert!(report.contains("socket:refused"), "{report}");
    // Nothing reached the listener, by either route.
    std::thread::sleep(Duration::from_millis(50));
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the listener received a connection: {other:?}"),
    }
    let audit = t.audit.records();
    assert_eq!(audit.len(), 1, "{audit:?}");
    let r = &audit[0];
    assert_eq!(r.plugin, "hostile-forbidden-host");
    assert_eq!(r.outcome, HttpOutcome::NotAllowed);
    assert_eq!(r.method, "POST");
    assert_eq!(r.host, format!("http://127.0.0.1:{port}"));
    assert_eq!(r.path, "/submit", "the query string must not be audited");
    assert_eq!((r.status, r.bytes_received), (None, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_the_manifest_allows_but_the_practice_does_not_is_refused() {
    let t = test_host(PluginTrust::default());
    let mut s = spec("hostile-forbidden-host", &dist("hostile-forbidden-host"));
    s.allowed_hosts = Vec::new();
    s.settings.insert(
        "target-url".into(),
        toml::Value::String("http://127.0.0.1:9/".into()),
    );
    let p = t.host.load(&s).unwrap();
    assert!(p.info().allowed_hosts.is_empty());
    let answer = p
        .check_eligibility("k", &inquiry("M1"))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.plan_name.unwrap().starts_with("http:not-allowed;"));
    assert_eq!(t.audit.records()[0].outcome, HttpOutcome::NotAllowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_environment_variables_are_not_there() {
    let t = test_host(PluginTrust::default());
    let p = t
        .host
        .load(&spec("hostile-snoop", &dist("hostile-snoop")))
        .unwrap();
    // The host process has these; the plugin must not.
    assert!(std::env::var_os("PATH").is_some());
    assert!(std::path::Path::new("/etc/passwd").exists());
    let answer = beside_good_calls(&t.host, false, p.check_eligibility("k", &inquiry("M1")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        answer.plan_name.as_deref(),
        Some("[]"),
        "the plugin found things"
    );
    assert!(!std::path::Path::new("/tmp/billd-snoop-was-here").exists());
}

/// The pool keeps the pages a call wrote resident for the next instance in
/// its slot (`memory_keep_resident_bytes`), reset in place: nothing one call
/// wrote (a static, heap pages inside and past the resident bound) reaches
/// the next call. The same probe in one reused instance does find the
/// earlier call, so it would catch a reset that kept data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_memory_crosses_calls_though_pages_stay_resident() {
    let t = test_host(PluginTrust::default());
    assert!(t.host.engine().settings().memory_keep_resident_bytes > 0);
    let p = t
        .host
        .load(&spec("hostile-snoop", &dist("hostile-snoop")))
        .unwrap();
    for i in 0..5 {
        let answer = p
            .check_eligibility(&format!("k{i}"), &inquiry(&format!("M{i}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer.plan_name.as_deref(), Some("[]"), "call {i}");
    }
    let mut reused = p.payer().await.unwrap();
    reused
        .check_eligibility("r1", &inquiry("M-first"))
        .await
        .unwrap()
        .unwrap();
    let second = reused
        .check_eligibility("r2", &inquiry("M-second"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        second
            .plan_name
            .as_deref()
            .unwrap()
            .contains("an earlier member id"),
        "{:?}",
        second.plan_name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_becomes_a_typed_error_without_the_message() {
    let t = test_host(PluginTrust::default());
    let p = t
        .host
        .load(&spec("hostile-panic", &dist("hostile-panic")))
        .unwrap();
    let err = beside_good_calls(
        &t.host,
        false,
        p.check_eligibility("k", &inquiry("MEMBER-98765")),
    )
    .await
    .unwrap_err();
    match &err {
        CallError::Panic { plugin, location } => {
            assert_eq!(plugin, "hostile-panic");
            assert!(location.contains("src/lib.rs"), "{location}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    assert!(
        !format!("{err} {err:?}").contains("98765"),
        "patient data leaked into the error: {err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_result_becomes_a_typed_error_without_the_data() {
    let t = test_host(PluginTrust::default());
    let p = t
        .host
        .load(&spec("hostile-malformed", &dist("hostile-malformed")))
        .unwrap();
    // The plugin answers with a plan name of invalid UTF-8 that holds the
    // member id: billd must refuse to lift it, and not repeat it.
    let err = beside_good_calls(
        &t.host,
        false,
        p.check_eligibility("k", &inquiry("MEMBER-98765")),
    )
    .await
    .unwrap_err();
    match &err {
        CallError::Failed { plugin, reason } => {
            assert_eq!(plugin, "hostile-malformed");
            assert!(reason.contains("utf-8"), "{reason}");
        }
        other => panic!("expected a failed call, got {other:?}"),
    }
    assert!(!err.retryable(), "a malformed result is not worth retrying");
    assert!(
        !format!("{err} {err:?}").contains("98765"),
        "patient data leaked into the error: {err:?}"
    );
    // The plugin is still usable: the next call fails the same typed way.
    assert!(matches!(
        p.check_eligibility("k2", &inquiry("W123")).await,
        Err(CallError::Failed { .. })
    ));
}

/// Serves one endless HTTP response (no content-length) and counts the
/// bytes it managed to write.
fn endless_server() -> (u16, std::thread::JoinHandle<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n");
        let chunk = vec![b'x'; 64 << 10];
        let mut sent = 0u64;
        // At most 64 MiB, so the server stops on its own.
        for _ in 0..1024 {
            if s.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    (port, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_response_is_cut_at_the_cap() {
    let (port, server) = endless_server();
    let origin = format!("http://127.0.0.1:{port}");
    let pkg = package_with_hosts("hostile-oversized", std::slice::from_ref(&origin));
    let t = test_host(PluginTrust::default());
    let mut s = spec("hostile-oversized", pkg.path());
    s.allowed_hosts = vec![Origin::parse(&origin).unwrap()];
    s.limits.max_response_bytes = 1 << 20;
    s.settings
        .insert("url".into(), toml::Value::String(format!("{origin}/835")));
    let p = t.host.load(&s).unwrap();
    let answer = beside_good_calls(&t.host, false, p.check_eligibility("k", &inquiry("M1")))
        .await
        .unwrap();
    match answer {
        Err(ConnectorError::Rejected(r)) => assert_eq!(r.code, "response-too-large"),
        other => panic!("expected the cap to refuse the response, got {other:?}"),
    }
    let audit = t.audit.records();
    assert_eq!(audit.len(), 1, "{audit:?}");
    let r = &audit[0];
    assert_eq!(r.outcome, HttpOutcome::TooLarge);
    assert_eq!(r.status, Some(200));
    assert!(r.bytes_received > 1 << 20, "{r:?}");
    assert!(
        r.bytes_received < (1 << 20) + (1 << 20),
        "read far past the cap: {r:?}"
    );
    let sent = server.join().unwrap();
    assert!(
        sent < 64 << 20,
        "the host kept reading to the end ({sent} bytes)"
    );
}

#[test]
fn a_component_that_does_not_match_its_pin_is_refused() {
    let t = test_host(PluginTrust::default());
    let mut s = spec("echo-payer", &dist("echo-payer"));
    s.pin = Pin::Sha256("0".repeat(64));
    let err = t.host.load(&s).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LoadError::PinMismatch { .. }), "{err:?}");
    assert!(
        msg.contains("echo-payer") && msg.contains("pins 0000"),
        "{msg}"
    );
    assert!(msg.contains("echo_payer.wasm"), "{msg}");

    // The right pin loads.
    let (_, _, sha, _) = package_hashes(&dist("echo-payer")).unwrap();
    s.pin = Pin::Sha256(sha.clone());
    assert_eq!(t.host.load(&s).unwrap().info().sha256, sha);
}

fn signed_copy(name: &str, key: &ed25519_dalek::SigningKey) -> tempfile::TempDir {
    let dir = package_with_hosts(name, &[]);
    let (_, _, c, m) = package_hashes(dir.path()).unwrap();
    let sig = signing::sign(key, &c, &m);
    std::fs::write(
        dir.path().join(manifest::SIGNATURE_FILE),
        toml::to_string(&sig).unwrap(),
    )
    .unwrap();
    dir
}

fn trust_in(key: &ed25519_dalek::SigningKey, required: bool) -> PluginTrust {
    PluginTrust {
        require_signatures: required,
        keys: BTreeMap::from([(
            "billd-dev".to_string(),
            signing::public_key_text(&key.verifying_key()),
        )]),
    }
}

#[test]
fn signatures_are_verified_at_load() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let t = test_host(trust_in(&key, true));

    let good = signed_copy("echo-payer", &key);
    let p = t.host.load(&spec("echo-payer", good.path())).unwrap();
    assert_eq!(
        p.info().signature,
        SignatureStatus::Trusted {
            key_name: "billd-dev".into()
        }
    );

    // A manifest changed after signing (here: a widened allow-list).
    let tampered = signed_copy("echo-payer", &key);
    let m = tampered.path().join("plugin.toml");
    let text = std::fs::read_to_string(&m).unwrap().replace(
        "allowed_hosts = []",
        "allowed_hosts = [\"https://evil.example\"]",
    );
    std::fs::write(&m, text).unwrap();
    let err = t
        .host
        .load(&spec("echo-payer", tampered.path()))
        .unwrap_err();
    assert!(matches!(err, LoadError::Signature { .. }), "{err:?}");
    assert!(err.to_string().contains("signature is invalid"), "{err}");

    // A component swapped after signing.
    let swapped = signed_copy("echo-payer", &key);
    std::fs::copy(
        dist("hostile-spin").join("hostile_spin.wasm"),
        swapped.path().join("echo_payer.wasm"),
    )
    .unwrap();
    let err = t
        .host
        .load(&spec("echo-payer", swapped.path()))
        .unwrap_err();
    assert!(err.to_string().contains("different component"), "{err}");

    // Signed by someone the practice does not trust, signatures required.
    let foreign = signed_copy("echo-payer", &stranger);
    let err = t
        .host
        .load(&spec("echo-payer", foreign.path()))
        .unwrap_err();
    assert!(
        err.to_string().contains("not listed in [plugin_trust]"),
        "{err}"
    );

    // Unsigned, signatures required.
    let err = t
        .host
        .load(&spec("echo-payer", &dist("echo-payer")))
        .unwrap_err();
    assert!(err.to_string().contains("unsigned"), "{err}");

    // Without the requirement an unsigned plugin loads and says so.
    let lax = test_host(trust_in(&key, false));
    let p = lax
        .host
        .load(&spec("echo-payer", &dist("echo-payer")))
        .unwrap();
    assert_eq!(p.info().signature, SignatureStatus::Unsigned);
    // ...but an invalid signature is refused all the same.
    assert!(lax.host.load(&spec("echo-payer", tampered.path())).is_err());
}

#[test]
fn settings_and_secrets_must_fit_the_manifest() {
    let t = test_host(PluginTrust::default());
    let mut s = spec("echo-payer", &dist("echo-payer"));
    s.settings
        .insert("generation".into(), toml::Value::String("two".into()));
    let err = t.host.load(&s).unwrap_err().to_string();
    assert!(err.contains("settings.generation"), "{err}");

    let mut s = spec("echo-payer", &dist("echo-payer"));
    s.secrets
        .insert("api-key".into(), secrecy::SecretString::from("k"));
    let err = t.host.load(&s).unwrap_err().to_string();
    assert!(
        err.contains("secrets.api-key") && err.contains("declares no such secret"),
        "{err}"
    );

    let s = spec("hostile-forbidden-host", &dist("hostile-forbidden-host"));
    let err = t.host.load(&s).unwrap_err().to_string();
    assert!(
        err.contains("settings.target-url") && err.contains("requires"),
        "{err}"
    );

    let s = spec("someone-else", &dist("echo-payer"));
    let err = t.host.load(&s).unwrap_err().to_string();
    assert!(err.contains("is plugin \"echo-payer\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_for_another_world_is_a_typed_error() {
    let t = test_host(PluginTrust::default());
    let p = t
        .host
        .load(&spec("echo-payer", &dist("echo-payer")))
        .unwrap();
    let err = p.patients_changed("k", None).await.unwrap_err();
    assert_eq!(
        err,
        CallError::WrongWorld {
            plugin: "echo-payer".into(),
            wanted: World::EhrConnector,
            actual: World::PayerConnector
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_go_in_and_come_out_and_state_persists_per_plugin() {
    let t = test_host(PluginTrust::default());
    let p = t
        .host
        .load(&spec("echo-payer", &dist("echo-payer")))
        .unwrap();
    let e = p
        .check_eligibility("idem-1", &inquiry("W1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.status, CoverageStatus::Active);
    assert_eq!(e.benefits.len(), 2);
    assert_eq!(e.benefits[1].service_type, "98");
    assert_eq!(e.payer_reference.as_deref(), Some("echo-idem-1"));
    assert_eq!(e.group_number.as_deref(), Some("GRP-1"));
    let inactive = p
        .check_eligibility("idem-2", &inquiry("X1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inactive.status, CoverageStatus::Inactive);
    // The plugin's own validation comes back as its error, not a CallError.
    let invalid = p.check_eligibility("idem-3", &inquiry(" ")).await.unwrap();
    assert_eq!(
        invalid.unwrap_err(),
        ConnectorError::InvalidRequest(bindings::types::InvalidField {
            field: "subscriber.member-id".into(),
            message: "must not be empty".into()
        })
    );
    // Each call is a fresh instance, but the key-value state persists.
    let a = p.fetch_remittances("r1", Some("c")).await.unwrap().unwrap();
    let b = p.fetch_remittances("r2", Some("c")).await.unwrap().unwrap();
    assert_eq!(
        (a.next.as_deref(), b.next.as_deref()),
        (Some("c-1"), Some("c-2"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_for_new_calls_while_in_flight_calls_finish_on_the_old() {
    let t = test_host(PluginTrust::default());
    let host = Arc::new(t.host);
    let gen_spec = |generation: i64, busy_ms: i64| {
        let mut s = spec("echo-payer", &dist("echo-payer"));
        s.settings
            .insert("generation".into(), toml::Value::Integer(generation));
        s.settings
            .insert("busy-ms".into(), toml::Value::Integer(busy_ms));
        s
    };
    let registry = Arc::new(PluginRegistry::load(host.clone(), &[gen_spec(1, 2000)]).unwrap());

    let old = registry.get("echo-payer").unwrap();
    let in_flight = tokio::spawn(async move {
        old.check_eligibility("old", &inquiry("W1"))
            .await
            .unwrap()
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = registry.reload(&[gen_spec(2, 0)]).unwrap();
    assert_eq!(report.replaced, ["echo-payer"]);
    assert!(
        !in_flight.is_finished(),
        "the old call should still be running"
    );

    let new = registry
        .get("echo-payer")
        .unwrap()
        .check_eligibility("new", &inquiry("W1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.plan_name.as_deref(), Some("generation 2"));
    let old = in_flight.await.unwrap();
    assert_eq!(old.plan_name.as_deref(), Some("generation 1"));

    // A reload with a broken plugin changes nothing.
    let mut bad = gen_spec(3, 0);
    bad.pin = Pin::Sha256("f".repeat(64));
    let errs = registry.reload(&[bad]).unwrap_err();
    assert!(matches!(errs[0], LoadError::PinMismatch { .. }));
    let still = registry
        .get("echo-payer")
        .unwrap()
        .check_eligibility("after", &inquiry("W1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.plan_name.as_deref(), Some("generation 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_by_name_take_and_give_json() {
    let t = test_host(PluginTrust::default());
    let p = t
        .host
        .load(&spec("echo-payer", &dist("echo-payer")))
        .unwrap();
    let kebab = inquiry_json("W7");
    let out = dynamic::call_json(&p, "check-eligibility", "key-1", &kebab)
        .await
        .unwrap();
    assert_eq!(out["ok"]["status"], "active");
    assert_eq!(out["ok"]["plan-name"], "generation 1");
    assert_eq!(out["ok"]["benefits"][0]["amount"], 2500);
    assert_eq!(out["ok"]["payer-reference"], "echo-key-1");

    let mut broken = inquiry_json("W7");
    broken["subscriber"]["birth-date"]["month"] = serde_json::json!(300);
    let err = dynamic::call_json(&p, "check-eligibility", "k", &broken)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("inquiry.subscriber.birth-date.month"), "{err}");

    let err = dynamic::call_json(&p, "check-elegibility", "k", &kebab)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("check-eligibility"), "{err}");
}

/// An eligibility inquiry as `billd plugins call` takes it (WIT names).
pub(crate) fn inquiry_json(member: &str) -> serde_json::Value {
    serde_json::json!({
        "payer-id": "60054",
        "provider": { "npi": "1234567893", "name": "Riverside Family Medicine",
                      "tax-id": "123456789" },
        "subscriber": {
            "member-id": member,
            "name": { "last": "Doe", "first": "Jane" },
            "birth-date": { "year": 1980, "month": 2, "day": 29 },
            "sex": "female",
            "group-number": "GRP-1"
        },
        "service-date": { "year": 2026, "month": 11, "day": 2 },
        "service-types": ["30"]
    })
}

/// The sandbox payer connector against the local payer sandbox
/// (`scripts/payer-sandbox.py`, run with the workspace's `.venv` Python).
mod payer_sandbox {
    use super::*;
    use crate::plugin::bindings::payer_api::{
        BenefitKind, ClaimState, CoverageLevel, Network, StatusInquiry,
    };
    use crate::plugin::bindings::types::{InvalidField, RateLimit};
    use std::io::BufRead;
    use std::process::{Child, Command, Stdio};

    /// The sandbox server, stopped when dropped.
    struct Sandbox {
        child: Child,
        origin: String,
    }

    impl Drop for Sandbox {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn start_sandbox() -> Sandbox {
        let root = workspace_root();
        let python = root.join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/test to create .venv",
            python.display()
        );
        let mut child = Command::new(python)
            .arg(root.join("scripts/payer-sandbox.py"))
            .args(["--port", "0", "--api-key", "test-key"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the payer sandbox");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected sandbox output {line:?}"))
            .to_string();
        Sandbox {
            child,
            origin: format!("http://{addr}"),
        }
    }

    struct Connected {
        _sandbox: Sandbox,
        _pkg: tempfile::TempDir,
        t: TestHost,
        plugin: Arc<LoadedPlugin>,
    }

    fn connect(api_key: &str) -> Connected {
        let sandbox = start_sandbox();
        let pkg = package_with_hosts("sandbox-payer", std::slice::from_ref(&sandbox.origin));
        let t = test_host(PluginTrust::default());
        let mut s = spec("sandbox-payer", pkg.path());
        s.allowed_hosts = vec![Origin::parse(&sandbox.origin).unwrap()];
        s.settings.insert(
            "base-url".into(),
            toml::Value::String(sandbox.origin.clone()),
        );
        s.secrets
            .insert("api-key".into(), secrecy::SecretString::from(api_key));
        let plugin = t.host.load(&s).unwrap();
        Connected {
            _sandbox: sandbox,
            _pkg: pkg,
            t,
            plugin,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn eligibility_is_parsed_into_billing_records() {
        let c = connect("test-key");
        let e = c
            .plugin
            .check_eligibility("elig-1", &inquiry("W1234"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.status, CoverageStatus::Active);
        assert_eq!(e.plan_name.as_deref(), Some("GOLD PPO"));
        assert_eq!(e.group_number.as_deref(), Some("GRP-1234"));
        assert_eq!(
            (e.coverage_begin, e.coverage_end),
            (
                Some(Date {
                    year: 2026,
                    month: 1,
                    day: 1
                }),
                Some(Date {
                    year: 2026,
                    month: 12,
                    day: 31
                })
            )
        );
        let find = |kind: BenefitKind, st: &str| {
            e.benefits
                .iter()
                .find(|b| b.kind == kind && b.service_type == st)
                .unwrap_or_else(|| panic!("no {kind:?} for {st} in {:?}", e.benefits))
        };
        let remaining = find(BenefitKind::DeductibleRemaining, "30");
        assert_eq!(remaining.amount, Some(120_050));
        assert_eq!(remaining.network, Network::InNetwork);
        assert_eq!(find(BenefitKind::Deductible, "30").amount, Some(150_000));
        let oop = find(BenefitKind::OutOfPocketMaximum, "30");
        assert_eq!(
            (oop.amount, oop.level),
            (Some(600_000), CoverageLevel::Family)
        );
        assert_eq!(find(BenefitKind::Copay, "98").amount, Some(2_500));
        let co = find(BenefitKind::Coinsurance, "30");
        assert_eq!(
            (co.percent_basis_points, co.network),
            (Some(2_000), Network::OutOfNetwork)
        );
        // Audited: host and path, status, sizes; never the body.
        let audit = c.t.audit.records();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].path, "/eligibility/v3");
        assert_eq!(audit[0].status, Some(200));
        assert!(audit[0].bytes_sent > 0 && audit[0].bytes_received > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn payer_answers_and_failures_map_to_the_error_variant() {
        let c = connect("test-key");
        let call = |member: &'static str| {
            let p = c.plugin.clone();
            async move { p.check_eligibility(member, &inquiry(member)).await.unwrap() }
        };
        assert_eq!(
            call("NF0001").await.unwrap().status,
            CoverageStatus::NotFound
        );
        assert_eq!(
            call("INACTIVE1").await.unwrap().status,
            CoverageStatus::Inactive
        );
        assert_eq!(
            call("DOB0001").await.unwrap_err(),
            ConnectorError::InvalidRequest(InvalidField {
                field: "subscriber.birth-date".into(),
                message: "Patient Birth Date Does Not Match That for the Patient on the Database"
                    .into()
            })
        );
        assert!(matches!(call("").await.unwrap_err(),
            ConnectorError::InvalidRequest(f) if f.field == "subscriber.member-id"));
        assert!(matches!(
            call("BUSY1").await.unwrap_err(),
            ConnectorError::Transient(_)
        ));
        assert!(
            matches!(call("DOWN1").await.unwrap_err(), ConnectorError::Transient(m) if m.contains("AAA 42"))
        );
        assert_eq!(
            call("SLOW1").await.unwrap_err(),
            ConnectorError::RateLimited(RateLimit {
                retry_after_seconds: 7,
                message: "the server asked to slow down (HTTP 429)".into()
            })
        );
        assert!(matches!(call("GARBLED1").await.unwrap_err(),
            ConnectorError::Rejected(r) if r.code == "malformed-response"));

        let wrong_key = connect("not-the-key");
        let err = wrong_key
            .plugin
            .check_eligibility("k", &inquiry("W1"))
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Authentication(_)), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claim_status_answers_one_per_inquiry() {
        let c = connect("test-key");
        let q = |claim_id: &str| StatusInquiry {
            claim_id: claim_id.into(),
            payer_id: "60054".into(),
            payer_claim_id: None,
            provider: inquiry("W1").provider,
            subscriber: inquiry("W1").subscriber,
            dependent: None,
            service_from: Date {
                year: 2026,
                month: 10,
                day: 1,
            },
            service_to: Date {
                year: 2026,
                month: 10,
                day: 1,
            },
            billed: 12_500,
        };
        let answers = c
            .plugin
            .claim_status(
                "cs-1",
                &[q("CLM000123"), q("DENY000124"), q("UNKNOWN1"), q("PEND1")],
            )
            .await
            .unwrap()
            .unwrap();
        let states: Vec<_> = answers
            .iter()
            .map(|a| (a.claim_id.as_str(), a.state))
            .collect();
        assert_eq!(
            states,
            [
                ("CLM000123", ClaimState::Paid),
                ("DENY000124", ClaimState::Denied),
                ("UNKNOWN1", ClaimState::NotFound),
                ("PEND1", ClaimState::Pending)
            ]
        );
        assert_eq!(answers[0].paid, Some(10_000));
        assert_eq!(answers[0].category_code, "F1");
        assert_eq!(answers[0].payer_claim_id.as_deref(), Some("SBX000123"));
        assert_eq!(
            answers[0].effective_date,
            Some(Date {
                year: 2026,
                month: 10,
                day: 1
            })
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_per_plugin_rate_limit_refuses_and_audits() {
        let sandbox = start_sandbox();
        let pkg = package_with_hosts("sandbox-payer", std::slice::from_ref(&sandbox.origin));
        let t = test_host(PluginTrust::default());
        let mut s = spec("sandbox-payer", pkg.path());
        s.allowed_hosts = vec![Origin::parse(&sandbox.origin).unwrap()];
        s.settings.insert(
            "base-url".into(),
            toml::Value::String(sandbox.origin.clone()),
        );
        s.secrets
            .insert("api-key".into(), secrecy::SecretString::from("test-key"));
        s.limits.requests_per_second = 1;
        let p = t.host.load(&s).unwrap();
        let q = StatusInquiry {
            claim_id: "CLM1".into(),
            payer_id: "60054".into(),
            payer_claim_id: None,
            provider: inquiry("W1").provider,
            subscriber: inquiry("W1").subscriber,
            dependent: None,
            service_from: Date {
                year: 2026,
                month: 10,
                day: 1,
            },
            service_to: Date {
                year: 2026,
                month: 10,
                day: 1,
            },
            billed: 100,
        };
        // Two requests in one call: the second is over 1 per second.
        let err = p
            .claim_status("rl", &[q.clone(), q])
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(&err, ConnectorError::RateLimited(r) if r.retry_after_seconds == 1),
            "{err:?}"
        );
        let outcomes: Vec<_> = t.audit.records().iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes, [HttpOutcome::Completed, HttpOutcome::RateLimited]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_harness_runs_the_connector_against_fixtures() {
        let root = workspace_root().join("plugins/sandbox-payer/fixtures");
        let h = harness::Harness::builder(dist("sandbox-payer"))
            .fixtures_dir(root.join("http"))
            .secret("api-key", "fixture-key")
            .build()
            .unwrap();
        let input: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("eligibility-inquiry.json")).unwrap(),
        )
        .unwrap();
        let out = h.call_json("check-eligibility", &input).await.unwrap();
        assert_eq!(out["ok"]["status"], "active");
        assert_eq!(out["ok"]["payer-reference"], "fixture-001");
        let sent = h.requests();
        assert_eq!(sent.len(), 1);
        assert!(
            sent[0]
                .headers
                .contains(&("authorization".into(), "Bearer fixture-key".into()))
        );
        let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
        assert_eq!(body["subscriber"]["dateOfBirth"], "19800229");
        assert_eq!(
            body["encounter"]["serviceTypeCodes"],
            serde_json::json!(["30", "98"])
        );
        // Without the secret the connector reports an authentication problem.
        let h = harness::Harness::builder(dist("sandbox-payer"))
            .fixtures_dir(root.join("http"))
            .build();
        assert!(h.unwrap_err().to_string().contains("secrets.api-key"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ehr_and_collections_worlds_work_end_to_end() {
    use bindings::collections_api::{Debtor, Placement};
    use bindings::ehr_api::Window;
    use bindings::types::{Address, Timestamp};
    let t = test_host(PluginTrust::default());
    let ehr = t.host.load(&spec("echo-ehr", &dist("echo-ehr"))).unwrap();
    assert_eq!(ehr.info().world, World::EhrConnector);
    let ts = |seconds| Timestamp {
        seconds,
        nanoseconds: 0,
    };
    let appts = ehr
        .appointments(
            "a",
            Window {
                start: ts(1_800_000_000),
                end: ts(1_800_086_400),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(appts.len(), 1);
    assert_eq!(appts[0].start, ts(1_800_000_000));
    let bad = ehr
        .appointments(
            "b",
            Window {
                start: ts(5),
                end: ts(5),
            },
        )
        .await
        .unwrap();
    assert!(matches!(bad, Err(ConnectorError::InvalidRequest(f)) if f.field == "window.end"));
    let page = ehr.patients_changed("c", None).await.unwrap().unwrap();
    assert_eq!(page.items[0].patient_id, "P-1");
    assert_eq!(page.next.as_deref(), Some("cursor-1"));
    assert!(matches!(
        ehr.coverages_changed("d", None).await.unwrap(),
        Err(ConnectorError::Unsupported(_))
    ));

    let agency = t
        .host
        .load(&spec("echo-collections", &dist("echo-collections")))
        .unwrap();
    let placement = |id: &str, balance| Placement {
        account_id: id.into(),
        debtor: Debtor {
            name: inquiry("M").subscriber.name,
            birth_date: Date {
                year: 1970,
                month: 1,
                day: 1,
            },
            address: Address {
                line1: "1 Main St".into(),
                line2: None,
                city: "Springfield".into(),
                state: "IL".into(),
                postal_code: "62701".into(),
            },
            phone: None,
            email: None,
        },
        balance,
        first_statement_date: Date {
            year: 2026,
            month: 1,
            day: 5,
        },
        last_payment_date: None,
        services_from: Date {
            year: 2025,
            month: 12,
            day: 1,
        },
        services_to: Date {
            year: 2025,
            month: 12,
            day: 1,
        },
    };
    let receipts = agency
        .place_accounts("p", &[placement("ACC-1", 45_000), placement("ACC-2", 0)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipts[0].agency_account_id.as_deref(), Some("AG-ACC-1"));
    assert!(receipts[0].accepted && !receipts[1].accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_runs_against_its_fixtures() {
    let root = workspace_root().join("plugins/template/fixtures");
    let h = harness::Harness::builder(dist("connector-template"))
        .fixtures_dir(root.join("http"))
        .secret("api-key", "test")
        .build()
        .unwrap();
    let input: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("eligibility-inquiry.json")).unwrap(),
    )
    .unwrap();
    let out = h.call_json("check-eligibility", &input).await.unwrap();
    assert_eq!(out["ok"]["status"], "active");
    assert_eq!(out["ok"]["plan-name"], "SILVER HMO");
    let audit = h.audit();
    assert_eq!(audit[0].host, "https://api.payer.example:443");
    assert_eq!(audit[0].path, "/coverage");
}

#[test]
fn inspect_accepts_a_bare_component() {
    let engine = PluginEngine::new(EngineSettings::small(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("echo_ehr.wasm");
    std::fs::copy(dist("echo-ehr").join("echo_ehr.wasm"), &wasm).unwrap();
    let i = dynamic::inspect(&engine, &wasm).unwrap();
    assert!(i.manifest.is_none());
    assert_eq!(i.world, Some(World::EhrConnector));
    assert!(i.implements_world);
    let (_, _, sha, _) = package_hashes(&dist("echo-ehr")).unwrap();
    assert_eq!(i.sha256, sha);
    // A file that is not a component is refused, naming the file.
    std::fs::write(&wasm, b"not wasm").unwrap();
    let e = dynamic::inspect(&engine, &wasm).unwrap_err().to_string();
    assert!(
        e.contains("echo_ehr.wasm") && e.contains("not a valid component"),
        "{e}"
    );
}

#[test]
fn a_load_error_is_said_once_in_a_printed_chain() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plugin.toml"), "name = 'x'\n").unwrap();
    let e = anyhow::Error::from(package_hashes(dir.path()).unwrap_err());
    let text = format!("{e:#}");
    let first = text.find("plugin.toml").unwrap();
    assert!(!text[first + 1..].contains("plugin.toml"), "{text}");
}

#[test]
fn inspect_describes_manifest_imports_and_exports() {
    let engine = PluginEngine::new(EngineSettings::small(), None).unwrap();
    let i = dynamic::inspect(&engine, &dist("sandbox-payer")).unwrap();
    assert_eq!(i.manifest.as_ref().unwrap().world, World::PayerConnector);
    assert_eq!(i.world, Some(World::PayerConnector));
    assert!(i.implements_world);
    assert!(
        i.imports.iter().any(|n| n == "billd:connector/host@0.1.0"),
        "{:?}",
        i.imports
    );
    let (name, funcs) = i
        .exports
        .iter()
        .find(|(n, _)| n == "billd:connector/payer@0.1.0")
        .expect("exports the payer interface");
    assert_eq!(name, World::PayerConnector.export_interface());
    assert!(
        funcs
            .iter()
            .any(|f| f.starts_with("check-eligibility: func(key: string, inquiry: record {")),
        "{funcs:?}"
    );
    let (_, _, sha, _) = package_hashes(&dist("sandbox-payer")).unwrap();
    assert_eq!(i.sha256, sha);
}

/// A host caching compiled code in `dir`, authenticated by `key` (none: no
/// cache).
fn cached_host(
    dir: &Path,
    key: Option<&Arc<crate::store::StoreKey>>,
    engine: EngineSettings,
) -> PluginHost {
    let mut opts = HostOptions::new(Arc::new(MemStore::new())).unwrap();
    opts.engine = engine;
    opts.cache_dir = Some(dir.to_path_buf());
    opts.kv_key = key.cloned();
    PluginHost::new(opts).unwrap()
}

#[test]
fn compiled_code_is_cached_by_hash_and_a_broken_cache_file_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let key = Arc::new(crate::store::StoreKey::random());
    let host = || cached_host(cache.path(), Some(&key), EngineSettings::small());
    let from_cache = |h: PluginHost, s: &PluginSpec| h.load(s).unwrap().info().from_cache;
    let s = spec("echo-ehr", &dist("echo-ehr"));
    assert!(!from_cache(host(), &s));
    let files: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let (_, _, sha, _) = package_hashes(&dist("echo-ehr")).unwrap();
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&sha) && name.ends_with(".cwasm"), "{name}");
    assert!(from_cache(host(), &s));
    // Other engine settings, other cache entry.
    let other = EngineSettings {
        max_memory_bytes: 8 << 20,
        ..EngineSettings::small()
    };
    assert!(!from_cache(
        cached_host(cache.path(), Some(&key), other),
        &s
    ));
    // A damaged file is not trusted: it is thrown away and rebuilt.
    std::fs::write(&files[0], b"not machine code").unwrap();
    assert!(!from_cache(host(), &s));
    assert!(from_cache(host(), &s));
    // Without a key to authenticate it, nothing is cached or trusted.
    assert!(!from_cache(
        cached_host(cache.path(), None, EngineSettings::small()),
        &s
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_planted_or_corrupted_cache_file_is_refused_and_rebuilt() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("plugin-cache");
    let key = Arc::new(crate::store::StoreKey::random());
    let host_with =
        |key: &Arc<crate::store::StoreKey>| cached_host(&cache, Some(key), EngineSettings::small());
    let host = || host_with(&key);
    let pinned = |name: &str| {
        let (_, _, sha, _) = package_hashes(&dist(name)).unwrap();
        let mut s = spec(name, &dist(name));
        s.pin = Pin::Sha256(sha.clone());
        (s, sha)
    };
    let (a, sha_a) = pinned("identity-a");
    let (b, sha_b) = pinned("identity-b");
    let who = |p: Arc<LoadedPlugin>| async move {
        p.check_eligibility("k", &inquiry("M1"))
            .await
            .unwrap()
            .unwrap()
            .plan_name
            .unwrap()
    };
    assert!(!host().load(&a).unwrap().info().from_cache);
    assert!(!host().load(&b).unwrap().info().from_cache);
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "cache directory mode {mode:o}");
    let file = |sha: &str| {
        std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(sha))
            .unwrap()
    };
    let (file_a, file_b) = (file(&sha_a), file(&sha_b));
    let fmode = std::fs::metadata(&file_a).unwrap().permissions().mode() & 0o777;
    assert_eq!(fmode, 0o600, "cache file mode {fmode:o}");
    let p = host().load(&b).unwrap();
    assert!(p.info().from_cache);
    assert_eq!(who(p).await, "identity-b");

    // Swapped: A's code under B's name. Refused, B's own code runs, and
    // B's file is rebuilt.
    std::fs::copy(&file_a, &file_b).unwrap();
    let p = host().load(&b).unwrap();
    assert!(!p.info().from_cache, "the swapped file was trusted");
    assert_eq!(who(p).await, "identity-b");
    let p = host().load(&b).unwrap();
    assert!(p.info().from_cache, "the cache was not rebuilt");
    assert_eq!(who(p).await, "identity-b");

    // Corrupted: one byte of the machine code changed.
    let mut bytes = std::fs::read(&file_b).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x55;
    std::fs::write(&file_b, &bytes).unwrap();
    let p = host().load(&b).unwrap();
    assert!(!p.info().from_cache, "the corrupted file was trusted");
    assert_eq!(who(p).await, "identity-b");
    assert!(host().load(&b).unwrap().info().from_cache);

    // Planted: written by a host with another store key.
    let other = Arc::new(crate::store::StoreKey::random());
    std::fs::remove_file(&file_a).unwrap();
    assert!(!host_with(&other).load(&a).unwrap().info().from_cache);
    std::fs::copy(file(&sha_a), &file_b).unwrap();
    let p = host().load(&b).unwrap();
    assert!(!p.info().from_cache, "the planted file was trusted");
    assert_eq!(who(p).await, "identity-b");
    // And A, cached under the other key, is rebuilt for this one.
    let p = host().load(&a).unwrap();
    assert!(!p.info().from_cache);
    assert_eq!(who(p).await, "identity-a");
}

/// What [`recording_server`] received: each request's head and body length.
type Received = Arc<std::sync::Mutex<Vec<(String, usize)>>>;

/// A plain HTTP/1.1 server on 127.0.0.1 answering every request `200 ok`
/// (connection: close); returns its port and what it received (the head as
/// text, and the body's length).
fn recording_server() -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { break };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let head_end = loop {
                match c.read(&mut chunk) {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let want = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() - head_end < want {
                match c.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            s.lock().unwrap().push((head, buf.len() - head_end));
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (port, seen)
}

fn plan(e: Result<pay::Eligibility, ConnectorError>) -> String {
    e.expect("the plugin answered an error")
        .plan_name
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_flood_stops_at_the_quota() {
    let t = test_host(PluginTrust::default());
    let mut s = spec("hostile-state-flood", &dist("hostile-state-flood"));
    s.limits.max_state_bytes = 1 << 20;
    let p = t.host.load(&s).unwrap();
    let answer = beside_good_calls(&t.host, false, p.check_eligibility("a", &inquiry("M1")))
        .await
        .unwrap();
    let report = plan(answer);
    assert!(report.contains("state quota"), "{report}");
    assert!(report.contains("1048576 bytes"), "{report}");
    let held = |prefix: &[u8]| -> u64 {
        t.kv.scan_prefix(kv::COLLECTION, prefix)
            .unwrap()
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum()
    };
    let bytes = held(b"hostile-state-flood/");
    assert!(bytes <= 1 << 20, "the store holds {bytes} bytes");
    assert!(bytes > (1 << 20) - 8192, "stopped early at {bytes} bytes");
    // Again: still refused, still reported once.
    let again = plan(p.check_eligibility("b", &inquiry("M1")).await.unwrap());
    assert!(again.starts_with("wrote 0;"), "{again}");
    assert_eq!(t.events.of("hostile-state-flood"), [Limit::StateBytes]);

    // The key quota, with one-byte values.
    let t = test_host(PluginTrust::default());
    let mut s = spec("hostile-state-flood", &dist("hostile-state-flood"));
    s.limits.max_state_keys = 300;
    s.settings
        .insert("value-bytes".into(), toml::Value::Integer(1));
    let p = t.host.load(&s).unwrap();
    let report = plan(p.check_eligibility("a", &inquiry("M1")).await.unwrap());
    assert!(report.starts_with("wrote 300;"), "{report}");
    assert!(report.contains("300 keys"), "{report}");
    assert_eq!(t.events.of("hostile-state-flood"), [Limit::StateKeys]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_flood_is_refused_without_a_panic() {
    let (port, seen) = recording_server();
    let origin = format!("http://127.0.0.1:{port}");
    let pkg = package_with_hosts("hostile-header-flood", std::slice::from_ref(&origin));
    let t = test_host(PluginTrust::default());
    let load = |count: i64| {
        let mut s = spec("hostile-header-flood", pkg.path());
        s.allowed_hosts = vec![Origin::parse(&origin).unwrap()];
        s.settings
            .insert("url".into(), toml::Value::String(format!("{origin}/x")));
        s.settings
            .insert("count".into(), toml::Value::Integer(count));
        t.host.load(&s).unwrap()
    };
    // 30,000 distinct names overflow an unchecked header map.
    let flood = load(30_000);
    let report = plan(
        beside_good_calls(&t.host, false, flood.check_eligibility("k", &inquiry("M1")))
            .await
            .unwrap(),
    );
    assert!(report.contains("InvalidRequest"), "{report}");
    assert!(report.contains("over the limit of 64"), "{report}");
    // Just over the count, and within the count but over the bytes.
    let over = plan(
        load(65)
            .check_eligibility("k", &inquiry("M1"))
            .await
            .unwrap(),
    );
    assert!(over.contains("over the limit of 64"), "{over}");
    let mut s = spec("hostile-header-flood", pkg.path());
    s.allowed_hosts = vec![Origin::parse(&origin).unwrap()];
    s.settings
        .insert("url".into(), toml::Value::String(format!("{origin}/x")));
    s.settings.insert("count".into(), toml::Value::Integer(60));
    s.limits.max_request_header_bytes = 200;
    let bytes = plan(
        t.host
            .load(&s)
            .unwrap()
            .check_eligibility("k", &inquiry("M1"))
            .await
            .unwrap(),
    );
    assert!(bytes.contains("over the limit of 200 bytes"), "{bytes}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "a flooded request was sent"
    );
    // Within the limits the request goes out, headers and all.
    let ok = plan(
        load(10)
            .check_eligibility("k", &inquiry("M1"))
            .await
            .unwrap(),
    );
    assert_eq!(ok, "sent; status 200");
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert!(got[0].0.contains("x-flood-9: v"), "{}", got[0].0);
    assert_eq!(
        t.events.of("hostile-header-flood").len(),
        3,
        "one report per loaded plugin that ran into it"
    );
    assert!(
        t.events
            .of("hostile-header-flood")
            .iter()
            .all(|l| *l == Limit::RequestHeaders)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_framing_headers_are_refused_and_bytes_sent_are_exact() {
    let (port, seen) = recording_server();
    let origin = format!("http://127.0.0.1:{port}");
    let pkg = package_with_hosts("hostile-framing", std::slice::from_ref(&origin));
    let t = test_host(PluginTrust::default());
    let mut s = spec("hostile-framing", pkg.path());
    s.allowed_hosts = vec![Origin::parse(&origin).unwrap()];
    s.settings.insert(
        "url".into(),
        toml::Value::String(format!("{origin}/claims")),
    );
    let p = t.host.load(&s).unwrap();
    let report = plan(
        beside_good_calls(&t.host, false, p.check_eligibility("k", &inquiry("M1")))
            .await
            .unwrap(),
    );
    assert_eq!(
        report,
        "Host:refused;content-length:refused;Transfer-Encoding:refused;connection:refused;\
         upgrade:refused;TE:refused;keep-alive:refused;plain:200"
    );
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "only the plain request was sent: {got:?}");
    let (head, body) = &got[0];
    assert!(
        head.contains(&format!("host: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
    assert!(
        !head.contains("internal.example") && !head.contains("chunked"),
        "{head}"
    );
    let audit = t.audit.records();
    assert_eq!(audit.len(), 8, "{audit:?}");
    for r in &audit[..7] {
        assert_eq!(
            (r.outcome, r.bytes_sent),
            (HttpOutcome::Invalid, 0),
            "{r:?}"
        );
    }
    let plain = &audit[7];
    assert_eq!(plain.outcome, HttpOutcome::Completed);
    assert_eq!(plain.bytes_sent, *body as u64);
    assert_eq!(plain.bytes_sent, 52);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_flood_with_huge_paths_is_rate_limited_cut_and_counted() {
    let t = test_host(PluginTrust::default());
    let mut s = spec("hostile-audit-flood", &dist("hostile-audit-flood"));
    s.settings.insert(
        "url".into(),
        toml::Value::String("http://127.0.0.1:1".into()),
    );
    s.settings.insert("count".into(), toml::Value::Integer(600));
    s.settings
        .insert("path-bytes".into(), toml::Value::Integer(8000));
    let p = t.host.load(&s).unwrap();
    let report = plan(
        beside_good_calls(&t.host, false, p.check_eligibility("k", &inquiry("M1")))
            .await
            .unwrap(),
    );
    assert_eq!(report, "refused 600");
    let audit: Vec<_> = t
        .audit
        .records()
        .into_iter()
        .filter(|r| r.plugin == "hostile-audit-flood")
        .collect();
    // A burst of five seconds' worth at 20 a second, a few more as the
    // bucket refills, and one closing count.
    assert!(audit.len() <= 100 + 40 + 1, "{} records", audit.len());
    assert!(audit.len() >= 100, "{} records", audit.len());
    let last = audit.last().unwrap();
    assert_eq!(last.outcome, HttpOutcome::Suppressed);
    let recorded = audit
        .iter()
        .filter(|r| r.outcome != HttpOutcome::Suppressed)
        .count() as u64;
    let counted: u64 = audit.iter().map(|r| r.suppressed).sum();
    assert_eq!(
        recorded + counted,
        600,
        "every attempt is recorded or counted"
    );
    for r in &audit[..audit.len() - 1] {
        assert_eq!(r.outcome, HttpOutcome::NotAllowed);
        assert!(
            r.path.len() <= http::MAX_AUDIT_FIELD + 32,
            "{}",
            r.path.len()
        );
        assert!(
            r.path
                .ends_with(&format!("[cut {} bytes]", 8001 - http::MAX_AUDIT_FIELD)),
            "{}",
            &r.path[r.path.len() - 40..]
        );
    }
    assert_eq!(t.events.of("hostile-audit-flood"), [Limit::AuditRate]);

    // A 1 MiB path is refused before the URL is even parsed.
    let mut s = spec("hostile-audit-flood", &dist("hostile-audit-flood"));
    s.settings.insert(
        "url".into(),
        toml::Value::String("http://127.0.0.1:1".into()),
    );
    s.settings.insert("count".into(), toml::Value::Integer(20));
    let p = t.host.load(&s).unwrap();
    assert_eq!(
        plan(p.check_eligibility("k", &inquiry("M1")).await.unwrap()),
        "refused 20"
    );
    let last = t.audit.records().pop().unwrap();
    assert_eq!(last.outcome, HttpOutcome::Invalid);
    assert!(last.path.is_empty() && last.host.len() < 64, "{last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_never_blocks_the_call_and_is_limited() {
    let stuck = Arc::new(logpump::tests::Stuck::default());
    let t = test_host_with(PluginTrust::default(), stuck.clone());
    // The log writer is blocked (an undrained stderr) and the per-call and
    // per-minute limits are high: the queue fills and the rest is dropped,
    // and the call still ends well within its deadline.
    let mut s = spec("hostile-log-flood", &dist("hostile-log-flood"));
    s.limits.call_timeout = Duration::from_secs(10);
    s.limits.max_log_lines_per_call = 1_000_000;
    s.limits.max_log_bytes_per_call = u64::MAX;
    s.limits.max_log_lines_per_minute = u32::MAX;
    s.limits.max_log_bytes_per_minute = u32::MAX;
    s.settings
        .insert("lines".into(), toml::Value::Integer(20_000));
    let p = t.host.load(&s).unwrap();
    let started = Instant::now();
    let report = plan(
        beside_good_calls(&t.host, false, p.check_eligibility("k", &inquiry("M1")))
            .await
            .unwrap(),
    );
    // A call held up by the writer would run into its deadline and end in
    // a timeout instead (the margin covers a loaded test machine).
    assert_eq!(report, "logged 20000");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(stuck.lines.lock().unwrap().is_empty());

    // With the default-style limits (here 100 a call, 250 a minute) and the
    // writer open again: at most that many lines reach the log.
    stuck.open();
    let mut s = spec("hostile-log-flood", &dist("hostile-log-flood"));
    s.limits.max_log_lines_per_call = 100;
    s.limits.max_log_lines_per_minute = 250;
    s.limits.max_log_bytes_per_call = u64::MAX;
    s.limits.max_log_bytes_per_minute = u32::MAX;
    s.settings
        .insert("lines".into(), toml::Value::Integer(5_000));
    let p = t.host.load(&s).unwrap();
    let wait_written = || {
        // The pump writes on its own thread; wait until it settles (no new
        // line for half a second: a loaded machine can pause it briefly).
        let (mut last, mut still) = (usize::MAX, 0);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let n = stuck.lines.lock().unwrap().len();
            if n == last {
                still += 1;
                if still == 5 {
                    return n;
                }
            } else {
                (last, still) = (n, 0);
            }
        }
    };
    let before = wait_written();
    for i in 0..3 {
        let r = plan(
            p.check_eligibility(&format!("k{i}"), &inquiry("M1"))
                .await
                .unwrap(),
        );
        assert_eq!(r, "logged 5000");
    }
    let written = wait_written() - before;
    // 250 lines a minute, plus one "lines dropped" note per call.
    assert!(written <= 250 + 3, "{written} lines reached the log");
    assert!(written >= 250, "{written} lines reached the log");
    let notes = stuck
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("dropped by the plugin's log limits"))
        .count();
    assert_eq!(notes, 3);
    assert_eq!(
        t.events.of("hostile-log-flood"),
        [Limit::LogPerCall, Limit::LogPerMinute]
    );
    assert!(
        stuck.dropped.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the blocked writer's drops were reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_amplification_stops_at_the_transfer_limit() {
    let t = test_host(PluginTrust::default());
    let load = |count: i64| {
        let mut s = spec("hostile-result-bomb", &dist("hostile-result-bomb"));
        s.limits.max_transfer_bytes = 1 << 20;
        s.settings
            .insert("count".into(), toml::Value::Integer(count));
        t.host.load(&s).unwrap()
    };
    let inq = pay::StatusInquiry {
        claim_id: "C1".into(),
        payer_id: "60054".into(),
        provider: inquiry("M1").provider,
        subscriber: inquiry("M1").subscriber,
        dependent: None,
        payer_claim_id: None,
        service_from: inquiry("M1").service_date,
        service_to: inquiry("M1").service_date,
        billed: 100,
    };
    // About 3 MB in the guest, several times that lifted into the host.
    let bomb = load(20_000);
    let err = beside_good_calls(
        &t.host,
        false,
        bomb.claim_status("k", std::slice::from_ref(&inq)),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        CallError::TransferLimit {
            plugin: "hostile-result-bomb".into(),
            limit_bytes: 1 << 20
        }
    );
    // Small results pass; the plugin stays usable.
    assert_eq!(
        bomb.check_eligibility("k", &inquiry("M1"))
            .await
            .unwrap()
            .unwrap()
            .plan_name
            .as_deref(),
        Some("small")
    );
    let fine = load(1_000)
        .claim_status("k", &[inq])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fine.len(), 1_000);
    assert_eq!(t.events.of("hostile-result-bomb"), [Limit::TransferSize]);

    // Through the JSON path the harness and `plugins call` use, too.
    let h = harness::Harness::builder(dist("hostile-result-bomb"))
        .setting("count", "60000")
        .limits(CallLimits {
            max_transfer_bytes: 4 << 20,
            ..CallLimits::default()
        })
        .build()
        .unwrap();
    let err = h
        .call_json("claim-status", &serde_json::json!([]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("transfer limit of 4194304 bytes"),
        "{err}"
    );
}

/// A call that finds every slot of the instance pool taken fails with
/// [`CallError::PoolExhausted`] (retryable, naming the setting to raise);
/// the calls holding the slots are unharmed, and once one ends the next
/// call runs.
#[tokio::test]
async fn a_full_instance_pool_fails_only_the_call_that_finds_it_full() {
    let mut opts = HostOptions::new(Arc::new(MemStore::new())).unwrap();
    opts.engine = EngineSettings {
        max_concurrent_instances: 2,
        max_memory_bytes: 16 << 20,
        ..EngineSettings::small()
    };
    opts.cache_dir = Some(test_cache_dir());
    opts.cache_key = Some(test_cache_key());
    let host = PluginHost::new(opts).unwrap();
    let echo = host.load(&spec("echo-payer", &dist("echo-payer"))).unwrap();
    let mut first = echo.payer().await.unwrap();
    let second = echo.payer().await.unwrap();
    let err = echo
        .check_eligibility("k-full", &inquiry("W1"))
        .await
        .expect_err("a third instance fits in a pool of two");
    match &err {
        CallError::PoolExhausted { plugin, limit, .. } => {
            assert_eq!(plugin, "echo-payer");
            assert_eq!(*limit, 2);
        }
        other => panic!("expected PoolExhausted, got {other:?}"),
    }
    assert!(err.retryable());
    let text = err.to_string();
    assert!(text.contains("[plugin_pool] instances"), "{text}");
    // The instances holding the slots still answer.
    let r = first
        .check_eligibility("k-held", &inquiry("W1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, CoverageStatus::Active);
    drop(second);
    let r = echo
        .check_eligibility("k-after", &inquiry("W1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.payer_reference.as_deref(), Some("echo-k-after"));
}
