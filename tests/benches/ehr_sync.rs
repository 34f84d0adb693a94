//! The EHR sync against `billd-sandbox fhir` over loopback, beside a plain
//! HTTP client fetching the same pages in the same run.
//!
//! The sandbox serves N generated patients (default 10,000), each with one
//! coverage and one appointment tomorrow. billd's figure is one whole
//! `billd jobs run ehr` (release build): start-up, loading the real
//! fhir-ehr plugin, every page through the sandboxed connector, mapping
//! into the domain and writing each page with its cursor to the store. The
//! plugin's machine code is compiled before (by `billd plugins verify`,
//! into the store's cache, as a daemon's first start does). The
//! peer is reqwest fetching the same searches (Patient, Coverage and
//! Encounter by `_lastUpdated`, Appointment by date, 1,000 a page,
//! following Bundle `next` links) and parsing each page as JSON.
//!
//! The plugin's request rate limit is raised from billd's default of 10
//! a second (which paces a real EHR) to 1,000, as the peer is unthrottled.
//!
//! Both sides share two cores with the sandbox, and one run of either
//! swings by a third from one run to the next on this kind of machine, so
//! the bench alternates them: each round syncs into a fresh store, then
//! the peer fetches. It prints every round, the median of each side and
//! the ratio of the medians (target at least 0.8), and billd's peak RSS.
//! Run: `scripts/build-plugins.sh && cargo bench -p billd-e2e --bench
//! ehr_sync`; `BILLD_BENCH_PATIENTS` changes N (default 10,000),
//! `BILLD_BENCH_ROUNDS` the rounds (default 5).

use billd_e2e::{
    FhirSandbox, Scratch, base_config, billd_bin_profile, fhir_plugin_table, measured,
    sandbox_bin_profile,
};
use std::process::Command;
use std::time::Instant;

const TOKEN: &str = "bench-token";
const PAGE: usize = 1000;

fn rounds() -> usize {
    std::env::var("BILLD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r: &usize| r > 0)
        .unwrap_or(5)
}

/// The middle value (the mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

fn patients() -> usize {
    std::env::var("BILLD_BENCH_PATIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// Fetches every page of each search; returns (resources, seconds).
fn peer(base: &str, window: (&str, &str)) -> (usize, f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let searches = [
        format!("{base}/Patient?_sort=_lastUpdated&_count={PAGE}"),
        format!("{base}/Coverage?_sort=_lastUpdated&_count={PAGE}"),
        format!(
            "{base}/Appointment?date=ge{}&date=lt{}&_count={PAGE}",
            window.0, window.1
        ),
        format!("{base}/Encounter?_sort=_lastUpdated&_count={PAGE}"),
    ];
    rt.block_on(async move {
        let client = reqwest::Client::new();
        let t0 = Instant::now();
        let mut n = 0;
        for first in searches {
            let mut url = Some(first);
            while let Some(u) = url {
                let body = client
                    .get(&u)
                    .bearer_auth(TOKEN)
                    .header("Accept", "application/fhir+json")
                    .send()
                    .await
                    .expect("the sandbox answers")
                    .error_for_status()
                    .expect("a 2xx")
                    .bytes()
                    .await
                    .expect("a body");
                let bundle: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
                n += bundle["entry"].as_array().map_or(0, Vec::len);
                url = bundle["link"].as_array().and_then(|links| {
                    links
                        .iter()
                        .find(|l| l["relation"] == "next")
                        .and_then(|l| l["url"].as_str())
                        .map(str::to_owned)
                });
            }
        }
        (n, t0.elapsed().as_secs_f64())
    })
}

fn main() {
    let n = patients();
    let billd = billd_bin_profile(true);
    let sandbox = sandbox_bin_profile(true);
    let tomorrow = chrono::Utc::now().date_naive() + chrono::Days::new(1);
    let fhir = FhirSandbox::start_with(
        sandbox,
        &[
            "--generate",
            &n.to_string(),
            "--generate-day",
            &tomorrow.to_string(),
            "--static-token",
            TOKEN,
        ],
    );
    let origin = fhir.origin();
    let resources = 3 * n;
    // The same searches over the same window as the job's (today through
    // three days in UTC, the practice's timezone here).
    let today = chrono::Utc::now().date_naive();
    let start = format!("{today}T00:00:00Z");
    let end = format!("{}T00:00:00Z", today + chrono::Days::new(3));

    println!(
        "ehr sync of {n} patients with their coverages and appointments ({resources} resources):"
    );
    let (mut ours, mut theirs, mut peak_kib) = (Vec::new(), Vec::new(), 0);
    for round in 1..=rounds() {
        let (secs, peak) = sync_once(billd, &origin, n);
        let (fetched, peer_secs) = peer(&format!("{origin}/fhir"), (&start, &end));
        assert_eq!(fetched, resources, "the peer fetched what billd synced");
        println!(
            "  round {round}: billd {secs:.2} s (peak RSS {:.1} MiB), reqwest {peer_secs:.2} s, ratio {:.2}",
            peak as f64 / 1024.0,
            peer_secs / secs
        );
        ours.push(secs);
        theirs.push(peer_secs);
        peak_kib = peak_kib.max(peak);
    }
    let (secs, peer_secs) = (median(ours), median(theirs));
    let billd_rate = resources as f64 / secs;
    let peer_rate = resources as f64 / peer_secs;
    println!(
        "  billd jobs run ehr:   {billd_rate:>9.0} resources/s  median {secs:.2} s  peak RSS {:.1} MiB",
        peak_kib as f64 / 1024.0
    );
    println!("  plain reqwest fetch:  {peer_rate:>9.0} resources/s  median {peer_secs:.2} s");
    println!(
        "  ratio billd/peer:     {:.2} (medians; target at least 0.8)",
        billd_rate / peer_rate
    );
}

/// One `billd jobs run ehr` into a fresh store (its plugin code compiled
/// before, as a daemon's first start does); checks what it synced and
/// returns its (seconds, peak RSS in KiB).
fn sync_once(billd: &std::path::Path, origin: &str, n: usize) -> (f64, u64) {
    let s = Scratch::new();
    std::fs::write(s.path("fhir.token"), format!("{TOKEN}\n")).unwrap();
    s.write_config(&format!(
        r#"{}
[[job]]
name = "ehr"
kind = "ehr-sync"
schedule = "0 0 3 1 1 *"

[job.params]
connector = "fhir-ehr"
appointment_days = 3

[job.params.payers]
"Organization/gen-payer" = "60054"

{}"#,
        base_config("outbox_dir = \"outbox\""),
        fhir_plugin_table(
            origin,
            &format!(", auth = \"bearer\", page-size = {PAGE}, timeout-ms = 60000"),
            "rate_limit_per_second = 1000\nsecrets = { bearer-token = \"file:fhir.token\" }",
        ),
    ));
    // A daemon compiles a plugin once and keeps the machine code in its
    // store (`plugin-cache`); `plugins verify` does that compile here, as
    // any earlier start would have, so the figure is the sync itself.
    for args in [&["init"][..], &["plugins", "verify"]] {
        let out = Command::new(billd)
            .arg("--config")
            .arg(s.config())
            .args(args)
            .output()
            .expect("billd runs");
        assert!(
            out.status.success(),
            "billd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (secs, peak_kib, _) = measured(billd, &s.config(), &["jobs", "run", "ehr"]);
    let status = Command::new(billd)
        .arg("--config")
        .arg(s.config())
        .args(["ehr", "status", "--json"])
        .output()
        .expect("billd ehr status");
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let records = &st["records"];
    for kind in ["patients", "coverages", "appointments"] {
        assert_eq!(records[kind], n as u64, "{kind}: {st:#}");
    }
    (secs, peak_kib)
}
