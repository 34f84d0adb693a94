//! Per-call cost of a plugin call, and the plugin host's start-up time.
//!
//! Prints figures; asserts nothing. Needs the plugin packages built by
//! `scripts/build-plugins.sh`.
//!
//! - An eligibility-shaped call (records in and out, no network) to the
//!   `echo-payer` test plugin: with a fresh instance per call (what the
//!   daemon does), with one instance reused (the cost of instantiation
//!   removed), and a native Rust function doing the same work (the floor).
//!   p50 and p99 of each, and the ratios.
//! - Start-up: a new engine plus loading five plugins whose compiled code is
//!   already in the on-disk cache.
//!
//! Run: `cargo bench -p billd --bench plugin_call`; `-- calls` runs only
//! the per-call figures and `-- startup` only the start-up ones.
//!
//! # Where a fresh-instance call's time went (issue 11, part 5)
//!
//! Measured on the 2-core build machine (other builds running, so figures
//! move by ±2 µs between runs), `perf record --call-graph dwarf` of
//! `plugin_call calls`. Before: fresh p50 30–32 µs, instantiate + drop
//! 7.9 µs, reused call 2.4 µs, native 0.32 µs.
//!
//! - Memory reset and first touch (the bulk): with
//!   `linear_memory_keep_resident = 0` every page a call touched was given
//!   back with `madvise` when the instance ended and faulted in again (a
//!   copy-on-write fault for each written data page, a zero-fill fault for
//!   each stack and heap page) by the next call. Keeping pages resident
//!   without the kernel's `PAGEMAP_SCAN` means a `memset` of the whole
//!   kept range per call (1 MiB: 53 µs). With `pagemap_scan` only the pages
//!   the call wrote are found and reset in place, and stay mapped: fresh
//!   p50 31 → 13.1–13.5 µs (keep-resident 256 KiB 12.8, 1 MiB 13.5, 4 MiB
//!   13.1; default 1 MiB). Turning off `table_keep_resident` (tables
//!   returned with `madvise` too) gave 30 µs, so tables stay at 64 KiB.
//!   `decommit_batch_size = 8` was slower (15.9 µs) and
//!   `async_stack_keep_resident = 64 KiB` changed nothing (13.6 µs): async
//!   stacks are not zeroed, so they stay resident already.
//! - Type-checking exports: the world bindings' `instantiate` type-checks
//!   every export of the world (five payer functions and their records,
//!   comparing field names) on each instantiation, about 2.4 µs of the
//!   9 µs instantiation. The fresh-instance calls now instantiate from the
//!   `InstancePre` and type-check only the function called, by an export
//!   index looked up at load: fresh p50 13.3 → 10.9–11.8 µs. The
//!   "instantiate + drop alone" figure is of `LoadedPlugin::payer` (a
//!   session with every export bound), so it still includes the full check.
//! - What remains per fresh call (dwarf profile): dropping the store and
//!   returning its slots (the page scan and reset, ~1.7 µs), component
//!   instantiation (core instances, imports, `ModuleRegistry` registration),
//!   the WASI context (`WasiCtxBuilder::new` seeds two RNGs, ~0.5 µs), the
//!   call itself (lowering, lifting: the reused-call figure) and tokio's
//!   timeout. The pooling allocator, `InstancePre`, copy-on-write memory
//!   images and the epoch deadline were already in place.

use billd::plugin::bindings::payer_api::{
    Benefit, BenefitKind, CoverageLevel, CoverageStatus, Eligibility, EligibilityInquiry, Network,
};
use billd::plugin::bindings::types::{Date, PersonName, Provider, Sex, Subscriber};
use billd::plugin::{EngineSettings, HostOptions, PluginHost, PluginSpec};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CALLS: usize = 20_000;
const WARMUP: usize = 2_000;

fn dist(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(name);
    assert!(
        p.join("plugin.toml").is_file(),
        "{} is missing: run scripts/build-plugins.sh first",
        p.display()
    );
    p
}

fn inquiry(member: &str) -> EligibilityInquiry {
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

/// The same work `echo-payer` does, natively: the floor.
fn native_echo(key: &str, inquiry: EligibilityInquiry) -> Result<Eligibility, String> {
    if inquiry.subscriber.member_id.trim().is_empty() {
        return Err("subscriber.member-id".into());
    }
    let active = !inquiry.subscriber.member_id.starts_with('X');
    let types = if inquiry.service_types.is_empty() {
        vec!["30".to_string()]
    } else {
        inquiry.service_types.clone()
    };
    Ok(Eligibility {
        status: if active {
            CoverageStatus::Active
        } else {
            CoverageStatus::Inactive
        },
        plan_name: Some(format!("generation {}", 1)),
        group_number: inquiry.subscriber.group_number.clone(),
        coverage_begin: Some(Date {
            year: inquiry.service_date.year,
            month: 1,
            day: 1,
        }),
        coverage_end: Some(Date {
            year: inquiry.service_date.year,
            month: 12,
            day: 31,
        }),
        benefits: types
            .into_iter()
            .map(|service_type| Benefit {
                service_type,
                kind: BenefitKind::Copay,
                network: Network::InNetwork,
                level: CoverageLevel::Individual,
                amount: Some(2500),
                percent_basis_points: None,
                message: None,
            })
            .collect(),
        payer_reference: Some(format!("echo-{key}")),
    })
}

struct Stats {
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn host(cache: &Path, key: &Arc<billd::store::StoreKey>) -> PluginHost {
    let mut opts = HostOptions::new(Arc::new(billd::store::MemStore::new())).unwrap();
    opts.engine = EngineSettings::default();
    if let Some(v) = std::env::var("BILLD_BENCH_KEEP_RESIDENT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.engine.memory_keep_resident_bytes = v;
    }
    opts.cache_dir = Some(cache.to_path_buf());
    opts.cache_key = Some(key.clone());
    PluginHost::new(opts).unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument picks a part.
    let picked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |part: &str| picked.is_empty() || picked.iter().any(|p| part.contains(p.as_str()));
    let cache = tempfile::tempdir().unwrap();
    // The key authenticating the cache, as a practice's store key would.
    let key = Arc::new(billd::store::StoreKey::random());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if wants("calls") {
        calls(&rt, cache.path(), &key);
    }
    if wants("startup") {
        startup(cache.path(), &key);
    }
}

fn calls(rt: &tokio::runtime::Runtime, cache: &Path, key: &Arc<billd::store::StoreKey>) {
    let h = host(cache, key);
    let echo = h
        .load(&PluginSpec::unpinned("echo-payer", &dist("echo-payer")))
        .unwrap();
    let inq = inquiry("W123456789");

    let (fresh, reused) = rt.block_on(async {
        let mut fresh = Vec::with_capacity(CALLS);
        for i in 0..WARMUP + CALLS {
            let t = Instant::now();
            let r = echo.check_eligibility("bench-key", &inq).await;
            let d = t.elapsed();
            black_box(r.unwrap().unwrap());
            if i >= WARMUP {
                fresh.push(d);
            }
        }
        let mut inst = Vec::with_capacity(CALLS);
        for i in 0..WARMUP + CALLS {
            let t = Instant::now();
            let s = echo.payer().await.unwrap();
            drop(black_box(s));
            let d = t.elapsed();
            if i >= WARMUP {
                inst.push(d);
            }
        }
        let i = stats(inst);
        println!(
            "  (instantiate + drop alone: p50 {:.2} µs, p99 {:.2} µs)",
            us(i.p50),
            us(i.p99)
        );
        let mut session = echo.payer().await.unwrap();
        let mut reused = Vec::with_capacity(CALLS);
        for i in 0..WARMUP + CALLS {
            let t = Instant::now();
            let r = session.check_eligibility("bench-key", &inq).await;
            let d = t.elapsed();
            black_box(r.unwrap().unwrap());
            if i >= WARMUP {
                reused.push(d);
            }
        }
        (fresh, reused)
    });
    let mut native = Vec::with_capacity(CALLS);
    for i in 0..WARMUP + CALLS {
        // The wasm paths copy the inquiry into the guest; the floor clones
        // it so both start from a borrowed record.
        let t = Instant::now();
        let r = native_echo(black_box("bench-key"), black_box(inq.clone()));
        let d = t.elapsed();
        black_box(r.unwrap());
        if i >= WARMUP {
            native.push(d);
        }
    }
    let (f, r, n) = (stats(fresh), stats(reused), stats(native));
    println!(
        "plugin_call: eligibility-shaped call to echo-payer ({CALLS} calls each, after {WARMUP} warm-up)"
    );
    println!("  {:<34} {:>10} {:>10}", "", "p50 µs", "p99 µs");
    println!(
        "  {:<34} {:>10.2} {:>10.2}",
        "fresh instance per call",
        us(f.p50),
        us(f.p99)
    );
    println!(
        "  {:<34} {:>10.2} {:>10.2}",
        "reused instance",
        us(r.p50),
        us(r.p99)
    );
    println!(
        "  {:<34} {:>10.3} {:>10.3}",
        "native Rust (floor)",
        us(n.p50),
        us(n.p99)
    );
    println!(
        "  ratios (p50): fresh/reused {:.1}x, fresh/native {:.0}x, reused/native {:.0}x",
        us(f.p50) / us(r.p50),
        us(f.p50) / us(n.p50),
        us(r.p50) / us(n.p50)
    );
    println!(
        "  target: fresh-instance p50 <= 15 µs: {}",
        if us(f.p50) <= 15.0 { "met" } else { "NOT met" }
    );
}

/// Start-up with five plugins whose compiled code is cached.
fn startup(cache: &Path, key: &Arc<billd::store::StoreKey>) {
    let five = [
        "echo-payer",
        "sandbox-payer",
        "connector-template",
        "echo-ehr",
        "echo-collections",
    ];
    let specs: Vec<PluginSpec> = five
        .iter()
        .map(|n| {
            let mut s = PluginSpec::unpinned(n, &dist(n));
            if *n == "sandbox-payer" || *n == "connector-template" {
                s.secrets
                    .insert("api-key".into(), secrecy::SecretString::from("k"));
            }
            s
        })
        .collect();
    {
        // Warm the cache (first start compiles).
        let h = host(cache, key);
        let t = Instant::now();
        for s in &specs {
            assert!(!h.load(s).unwrap().info().from_cache || s.name == "echo-payer");
        }
        println!(
            "start-up, five plugins, cold cache (compiling): {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let mut startups = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let h = host(cache, key);
        let registry =
            billd::plugin::PluginRegistry::load(Arc::new(h), &specs).expect("five plugins load");
        let d = t.elapsed();
        assert!(registry.list().iter().all(|p| p.info().from_cache));
        startups.push(d);
    }
    let s = stats(startups);
    println!(
        "start-up, engine + five cached plugins (20 runs): p50 {:.1} ms, p99 {:.1} ms (target < 200 ms: {})",
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        if s.p99 < Duration::from_millis(200) {
            "met"
        } else {
            "NOT met"
        }
    );
}
