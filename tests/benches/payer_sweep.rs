//! The payer sweeps against billd-sandbox over loopback, each beside a
//! plain HTTP client sending the same requests to the same sandbox in the
//! same run:
//!
//! - claim status: N claims (default 100,000) imported from an 837P and
//!   submitted, then one `billd jobs run claim-status` through the real
//!   core-clearinghouse plugin (276 batches of 50, the job's default
//!   concurrency); the peer is reqwest posting every 276 the sandbox
//!   archived during that run, as CORE HTTP+MIME requests with the same
//!   concurrency and fresh PayloadIDs (so the sandbox does the same work).
//! - eligibility: M appointments (default 10,000), one coverage each, one
//!   `billd jobs run eligibility` (one real-time 270 per coverage); the peer
//!   replays the archived 270s the same way.
//!
//! Prints, for each sweep: items per second for billd and the peer, the
//! ratio (target at least 0.8), and billd's peak RSS (from
//! `/usr/bin/time -v`). billd's figure is the whole command: start-up,
//! plugin load (its machine code compiled before, by `billd plugins
//! verify`, as a daemon's first start does), selecting the work, the
//! calls, and every state change written to the store.
//!
//! Run: `scripts/build-plugins.sh && cargo bench -p billd-e2e --bench
//! payer_sweep` (it builds release `billd` and `billd-sandbox` itself).
//! `BILLD_BENCH_CLAIMS` and `BILLD_BENCH_APPOINTMENTS` change the sizes;
//! `BILLD_BENCH_WRAP` prefixes each measured billd command (for example
//! `perf record -g -o /tmp/sweep.perf --`; the RSS figure is then the
//! wrapper's).

use billd_e2e::{
    PAYER_SCENARIO_HEAD, PayerSandbox, Scratch, base_config, billd_bin_profile, claims_837,
    core_plugin_table, measured, sandbox_bin_profile,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

/// The job's default concurrency, which the peer matches.
const CONCURRENCY: usize = 4;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn billd(bin: &Path, config: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("billd runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "billd {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The "(N done, 0 failed of N)" a `jobs run` prints; panics unless every
/// item succeeded.
fn done_count(out: &str) -> usize {
    let (head, tail) = out
        .split_once(" done, ")
        .unwrap_or_else(|| panic!("no item counts in {out:?}"));
    let done: usize = head
        .rsplit('(')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no done count in {out:?}"));
    assert!(tail.starts_with("0 failed"), "items failed: {out}");
    done
}

/// One replayed CORE request: the payload and what the envelope needs.
struct Replay {
    payload_type: String,
    processing_mode: &'static str,
    payload: Vec<u8>,
}

/// Posts every replay as a CORE HTTP+MIME request with `CONCURRENCY` in
/// flight; returns the wall seconds. Every answer must be a 200 whose
/// ErrorCode is Success.
fn peer(origin: &str, replays: Vec<Replay>) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!("{origin}/core");
    rt.block_on(async move {
        let client = reqwest::Client::new();
        let replays = Arc::new(replays);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..CONCURRENCY {
            let (client, replays, next, url) =
                (client.clone(), replays.clone(), next.clone(), url.clone());
            set.spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(r) = replays.get(i) else { break };
                    let form = reqwest::multipart::Form::new()
                        .text("PayloadType", r.payload_type.clone())
                        .text("ProcessingMode", r.processing_mode)
                        .text("PayloadID", format!("00000000-0000-4000-8000-{i:012}"))
                        .text(
                            "TimeStamp",
                            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        )
                        .text("SenderID", "BILLD")
                        .text("ReceiverID", "SANDBOXPAYER")
                        .text("CORERuleVersion", "2.2.0")
                        .text("UserName", "billd")
                        .text("Password", "sandbox-password")
                        .part(
                            "Payload",
                            reqwest::multipart::Part::bytes(r.payload.clone()),
                        );
                    let answer = client
                        .post(&url)
                        .multipart(form)
                        .send()
                        .await
                        .expect("send");
                    assert_eq!(answer.status(), 200, "the sandbox refused a replay");
                    let body = answer.bytes().await.expect("body");
                    assert!(
                        body.windows(7).any(|w| w == b"Success"),
                        "the sandbox answered an error: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
            });
        }
        while let Some(r) = set.join_next().await {
            r.expect("peer task");
        }
        t0.elapsed().as_secs_f64()
    })
}

fn replays(sandbox: &PayerSandbox, payload_type: &str, mode: &'static str) -> Vec<Replay> {
    sandbox
        .archived(payload_type)
        .into_iter()
        .map(|(_, path)| Replay {
            payload_type: payload_type.to_string(),
            processing_mode: mode,
            payload: std::fs::read(&path).expect("archived payload"),
        })
        .collect()
}

/// A practice with the core-clearinghouse connector over HTTP+MIME and the
/// three payer jobs. The plugin's request rate limit (10 per second by
/// default, a courtesy to real payers) is lifted: the bench measures what
/// billd costs, not the throttle.
fn practice(s: &Scratch, sandbox: &PayerSandbox) {
    let plugin = core_plugin_table(s, sandbox, "mime", "", "rate_limit_per_second = 1000000\n");
    s.write_config(&format!(
        r#"{}
{plugin}
[[job]]
name = "submission"
kind = "submission"
schedule = "0 3 * * *"
[job.params]
connector = "core-clearinghouse"
batch_size = 500
first_check_days = 0

[[job]]
name = "claim-status"
kind = "claim-status"
schedule = "0 4 * * *"
[job.params]
connector = "core-clearinghouse"

[[job]]
name = "eligibility"
kind = "eligibility"
schedule = "0 2 * * *"
[job.params]
connector = "core-clearinghouse"
window_business_days = 5
rate_per_second = 1000000
"#,
        base_config("outbox_dir = \"outbox\""),
    ));
}

/// The scenario: the sandbox payer, its credentials, and `members` active
/// members `M000000`... named as [`patients_csv`] names them.
fn scenario(members: usize) -> String {
    let mut s = String::from(PAYER_SCENARIO_HEAD);
    for i in 0..members {
        s.push_str(&format!(
            "[[members]]\nmember_id = \"M{i:06}\"\nlast_name = \"{}\"\nfirst_name = \"PAT\"\nbirth_date = \"1980-04-02\"\nstatus = \"active\"\nplan = \"GOLD PPO\"\ngroup = \"GRP100\"\ncoverage_begin = \"2024-01-01\"\n",
            last_name(i)
        ));
    }
    s
}

/// A letters-only last name unique to `i`.
fn last_name(i: usize) -> String {
    let letters: String = format!("{i:06}")
        .bytes()
        .map(|d| char::from(b'A' + (d - b'0')))
        .collect();
    format!("DOE{letters}")
}

/// The next weekday after today, as `YYYY-MM-DD`.
fn next_weekday() -> String {
    use chrono::Datelike;
    let mut d = chrono::Local::now().date_naive() + chrono::Days::new(1);
    while matches!(d.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun) {
        d = d + chrono::Days::new(1);
    }
    d.format("%Y-%m-%d").to_string()
}

fn write_eligibility_data(s: &Scratch, n: usize) -> [PathBuf; 3] {
    let day = next_weekday();
    let mut patients = String::from(
        "id,last_name,first_name,birth_date,sex,email,address_line1,city,state,postal_code\n",
    );
    let mut coverages = String::from(
        "id,patient_id,payer_id,payer_name,member_id,group_number,relationship,priority\n",
    );
    let mut appointments = String::from("id,patient_id,provider_npi,start,minutes\n");
    for i in 0..n {
        patients.push_str(&format!(
            "P{i:06},{},PAT,1980-04-02,F,,1 Main St,Springfield,IL,62701\n",
            last_name(i)
        ));
        coverages.push_str(&format!(
            "C{i:06},P{i:06},SANDBOXPAYER,Sandbox Health Plan,M{i:06},GRP100,self,primary\n"
        ));
        appointments.push_str(&format!(
            "A{i:06},P{i:06},1234567893,{day} {:02}:{:02},15\n",
            8 + (i / 60) % 10,
            i % 60
        ));
    }
    let files = [
        s.path("patients.csv"),
        s.path("coverages.csv"),
        s.path("appointments.csv"),
    ];
    for (f, text) in files.iter().zip([patients, coverages, appointments]) {
        std::fs::write(f, text).unwrap();
    }
    files
}

/// Prints one sweep's line and returns whether the ratio target was met.
fn report(what: &str, items: usize, billd_s: f64, peer_s: f64, peak_kib: u64) -> bool {
    let (ours, theirs) = (items as f64 / billd_s, items as f64 / peer_s);
    let ratio = ours / theirs;
    let met = ratio >= 0.8;
    println!(
        "{what}: {items} items; billd {ours:.0}/s ({billd_s:.1} s, peak RSS {:.1} MiB), \
         plain reqwest {theirs:.0}/s ({peer_s:.1} s); ratio {ratio:.2} (target >= 0.80: {})",
        peak_kib as f64 / 1024.0,
        if met { "met" } else { "MISSED" }
    );
    met
}

fn main() {
    let claims = env_count("BILLD_BENCH_CLAIMS", 100_000);
    let appointments = env_count("BILLD_BENCH_APPOINTMENTS", 10_000);
    let bin = billd_bin_profile(true);
    let sandbox_bin = sandbox_bin_profile(true);
    let s = Scratch::new();
    std::fs::write(s.path("scenario.toml"), scenario(appointments)).unwrap();
    // The sandbox writes a file for every payload it receives, billd's and
    // the peer's alike, while holding its state lock. On the disk billd's
    // store is on, those 10,000+ file creations contend with the store's
    // writes, and both sides' figures swung by a factor of five from run
    // to run: the archive is kept in memory where the machine has /dev/shm.
    let archive_root = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    }
    .expect("archive dir");
    let sandbox = PayerSandbox::start_with(
        sandbox_bin,
        &s.path("scenario.toml"),
        archive_root.path().join("archive"),
    );
    practice(&s, &sandbox);
    let config = s.config();
    billd(bin, &config, &["init"]);
    // A daemon compiles a plugin once and keeps the machine code in its
    // store (`plugin-cache`); `plugins verify` does that compile here, as
    // any earlier start would have, so the figures are the sweeps.
    billd(bin, &config, &["plugins", "verify"]);

    // Eligibility.
    let [patients, coverages, appts] = write_eligibility_data(&s, appointments);
    for (what, file) in [
        ("patients", &patients),
        ("coverages", &coverages),
        ("appointments", &appts),
    ] {
        billd(bin, &config, &["import", what, file.to_str().unwrap()]);
    }
    let (e_wall, e_peak, out) = measured(bin, &config, &["jobs", "run", "eligibility"]);
    assert_eq!(done_count(&out), appointments, "{out}");
    let e_replays = replays(&sandbox, "X12_270_Request_005010X279A1", "RealTime");
    assert_eq!(e_replays.len(), appointments, "one 270 per coverage");
    let e_peer = peer(&sandbox.origin(), e_replays);

    // Claim status: import and submit (timed, for the record), then sweep.
    std::fs::write(s.path("claims.837"), claims_837(claims, "B")).unwrap();
    let t0 = Instant::now();
    billd(
        bin,
        &config,
        &["import", "claims", s.path("claims.837").to_str().unwrap()],
    );
    let import_s = t0.elapsed().as_secs_f64();
    let (submit_s, submit_peak, out) = measured(bin, &config, &["jobs", "run", "submission"]);
    println!(
        "setup: {claims} claims imported in {import_s:.1} s ({:.0}/s); submitted in {submit_s:.1} s \
         ({:.0}/s, peak RSS {:.1} MiB): {}",
        claims as f64 / import_s,
        claims as f64 / submit_s,
        submit_peak as f64 / 1024.0,
        out.trim()
    );
    let before = sandbox.archived("X12_276_Request_005010X212").len();
    let (c_wall, c_peak, out) = measured(bin, &config, &["jobs", "run", "claim-status"]);
    assert_eq!(done_count(&out), claims, "{out}");
    let mut c_replays = replays(&sandbox, "X12_276_Request_005010X212", "RealTime");
    c_replays.drain(..before);
    assert!(!c_replays.is_empty(), "the sweep sent 276s");
    let c_peer = peer(&sandbox.origin(), c_replays);

    let a = report("eligibility sweep", appointments, e_wall, e_peer, e_peak);
    let b = report("claim-status sweep", claims, c_wall, c_peer, c_peak);
    if !(a && b) {
        println!("at least one target MISSED");
    }
}
