//! Store benchmark, two parts.
//!
//! Figures (printed): 100,000 claim-like records written, flushed, read back
//! by key and by scan through the encrypting [`Db`] on sled, each verified
//! equal to what was written; throughput, on-disk size and peak RSS. Then the
//! same records written with two secondary indexes, as single-record
//! transactions and as batched commits (writes/s).
//!
//! Criterion (`cargo bench` only; `cargo test --benches` runs each once):
//! a page of 100 records by state and by state and time from the indexed
//! store of 100,000, an indexed single-record write, a batched commit of 100,
//! a read by key.
//!
//! Run with `cargo bench -p billd --bench store` (release build). Set
//! `BILLD_BENCH_CLAIMS` to change the count and `BILLD_BENCH_CACHE_MIB` the
//! sled page cache (default 256 MiB). The records are bench-local (shaped
//! like a claim: lines, diagnoses, history), so the bench depends on the
//! store only.

/// The allocator of the `billd` binary, so the figures are the daemon's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use billd::store::{Db, Record, SledStore, StoreError, StoreKey};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use criterion::{BatchSize, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use std::ops::Bound::{Excluded, Included};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// A service line of the bench claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ServiceLine {
    procedure: String,
    modifiers: Vec<String>,
    charge_cents: i64,
    units: u32,
    diagnosis_pointers: Vec<u8>,
    service_date: NaiveDate,
}

/// A state change of the bench claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ClaimEvent {
    at: DateTime<Utc>,
    from: Option<String>,
    to: String,
    source: String,
    note: Option<String>,
}

/// A claim-like record of about 1.1 KB of JSON, unindexed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Claim {
    id: String,
    patient_id: String,
    coverage_id: String,
    payer_id: String,
    billing_npi: String,
    rendering_npi: String,
    place_of_service: String,
    frequency_code: String,
    diagnoses: Vec<String>,
    lines: Vec<ServiceLine>,
    total_charge_cents: i64,
    state: String,
    history: Vec<ClaimEvent>,
    payer_claim_number: Option<String>,
    next_check_at: Option<DateTime<Utc>>,
}

impl Record for Claim {
    const COLLECTION: &'static str = "claims";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// The same claim in a collection with two indexes: by state, and by state
/// and next-check time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
struct IndexedClaim(Claim);

impl Record for IndexedClaim {
    const COLLECTION: &'static str = "claims_indexed";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &["state", "due"];
    fn key(&self) -> String {
        self.0.id.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        let due = self
            .0
            .next_check_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        vec![
            ("state", self.0.state.clone()),
            ("due", format!("{}/{due}", self.0.state)),
        ]
    }
}

/// Ten states, so each holds a tenth of the indexed claims.
const STATES: [&str; 10] = [
    "draft",
    "scrubbed",
    "ready",
    "submitted",
    "accepted",
    "acknowledged",
    "pending",
    "paid",
    "denied",
    "closed",
];

fn indexed(i: u64) -> IndexedClaim {
    let mut c = claim(i);
    c.state = STATES[(i % STATES.len() as u64) as usize].to_owned();
    IndexedClaim(c)
}

fn cache_bytes() -> u64 {
    std::env::var("BILLD_BENCH_CACHE_MIB")
        .ok()
        .map(|v| {
            v.parse::<u64>()
                .expect("BILLD_BENCH_CACHE_MIB must be a number")
        })
        .unwrap_or(256)
        << 20
}

fn claim(i: u64) -> Claim {
    const CPT: [&str; 8] = [
        "99213", "99214", "99203", "36415", "80053", "85025", "93000", "71046",
    ];
    const ICD: [&str; 8] = [
        "E11.9", "I10", "J06.9", "M54.50", "Z00.00", "E78.5", "R05.9", "K21.9",
    ];
    let dos = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + Duration::days((i % 365) as i64);
    let n_lines = 2 + (i % 4) as usize;
    let n_dx = 1 + (i % 4) as usize;
    let lines: Vec<ServiceLine> = (0..n_lines)
        .map(|l| ServiceLine {
            procedure: CPT[(i as usize + l) % CPT.len()].to_owned(),
            modifiers: if l % 2 == 0 {
                vec!["25".to_owned()]
            } else {
                vec![]
            },
            charge_cents: 2_500 + ((i * 37 + l as u64 * 911) % 40_000) as i64,
            units: 1 + (l as u32 % 2),
            diagnosis_pointers: (1..=n_dx.min(4) as u8).collect(),
            service_date: dos,
        })
        .collect();
    let submitted =
        Utc.with_ymd_and_hms(2025, 1, 2, 9, 0, 0).unwrap() + Duration::minutes(i as i64);
    let history = vec![
        ClaimEvent {
            at: submitted - Duration::hours(2),
            from: None,
            to: "built".to_owned(),
            source: "system".to_owned(),
            note: None,
        },
        ClaimEvent {
            at: submitted - Duration::hours(1),
            from: Some("built".to_owned()),
            to: "scrubbed".to_owned(),
            source: "system".to_owned(),
            note: None,
        },
        ClaimEvent {
            at: submitted,
            from: Some("scrubbed".to_owned()),
            to: "submitted".to_owned(),
            source: "system".to_owned(),
            note: Some(format!("batch 837-{:06}", i / 500)),
        },
        ClaimEvent {
            at: submitted + Duration::hours(3),
            from: Some("submitted".to_owned()),
            to: "acknowledged".to_owned(),
            source: "277ca".to_owned(),
            note: Some("A1:20".to_owned()),
        },
    ];
    Claim {
        id: format!("CLM{i:09}"),
        patient_id: format!("P{:07}", i % 20_000),
        coverage_id: format!("COV{:07}", i % 20_000),
        payer_id: format!("{:05}", 60_000 + i % 50),
        billing_npi: "1234567893".to_owned(),
        rendering_npi: format!("{}", 1_000_000_000 + i % 40),
        place_of_service: "11".to_owned(),
        frequency_code: "1".to_owned(),
        diagnoses: (0..n_dx)
            .map(|d| ICD[(i as usize + d) % ICD.len()].to_owned())
            .collect(),
        total_charge_cents: lines.iter().map(|l| l.charge_cents * l.units as i64).sum(),
        lines,
        state: "acknowledged".to_owned(),
        history,
        payer_claim_number: Some(format!("PCN{:012}", i * 7919)),
        next_check_at: Some(submitted + Duration::days(7)),
    }
}

fn per_sec(n: u64, secs: f64) -> String {
    format!("{:>10.0}/s", n as f64 / secs)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_size(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

fn open(path: &Path, key: &StoreKey) -> Db {
    Db::new(
        Arc::new(SledStore::open(path, cache_bytes()).unwrap()),
        key.clone(),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then a small run checks the bench still works without taking minutes
    // in a debug build.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: u64 = std::env::var("BILLD_BENCH_CLAIMS")
        .ok()
        .map(|v| v.parse().expect("BILLD_BENCH_CLAIMS must be a number"))
        .unwrap_or(if benching { 100_000 } else { 1_000 });
    todays_figures(n);
    let (_tmp, db) = indexed_figures(n);
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &db, n);
    c.final_summary();
}

fn todays_figures(n: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("store");
    let key = StoreKey::random();
    let rss_start = peak_rss_kib();

    let sample = claim(12_345);
    let json_len = serde_json::to_vec(&sample).unwrap().len();
    println!(
        "store bench: {n} claims, {} service lines and {} events in the sample, {json_len} bytes of JSON each",
        sample.lines.len(),
        sample.history.len()
    );

    let db = open(&path, &key);
    let t = Instant::now();
    for i in 0..n {
        db.put(&claim(i)).unwrap();
    }
    let write_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    db.flush().unwrap();
    let flush_secs = t.elapsed().as_secs_f64();
    println!(
        "write (build + put):    {}  {:.2} s",
        per_sec(n, write_secs),
        write_secs
    );
    println!("flush:                  {:>10.1} ms", flush_secs * 1e3);

    let t = Instant::now();
    for i in 0..n {
        let c = claim(i);
        let got: Claim = db.get(&c.id).unwrap().expect("claim missing");
        assert_eq!(got, c, "claim {i} read back differs");
    }
    let read_secs = t.elapsed().as_secs_f64();
    println!(
        "read by key (+verify):  {}  {:.2} s",
        per_sec(n, read_secs),
        read_secs
    );

    println!(
        "peak RSS so far:        {:>10.1} MiB",
        peak_rss_kib() as f64 / 1024.0
    );

    let t = Instant::now();
    let mut i = 0u64;
    db.for_each("CLM", |c: Claim| {
        assert_eq!(c, claim(i), "streamed record {i} differs");
        i += 1;
        true
    })
    .unwrap();
    assert_eq!(i, n);
    let stream_secs = t.elapsed().as_secs_f64();
    println!(
        "for_each (+verify):     {}  {:.2} s   peak RSS {:.1} MiB",
        per_sec(n, stream_secs),
        stream_secs,
        peak_rss_kib() as f64 / 1024.0
    );

    let t = Instant::now();
    let all: Vec<Claim> = db.scan("CLM").unwrap();
    let scan_secs = t.elapsed().as_secs_f64();
    assert_eq!(all.len() as u64, n);
    for (i, c) in all.iter().enumerate() {
        assert_eq!(*c, claim(i as u64), "scan record {i} differs");
    }
    println!(
        "scan into Vec:          {}  {:.2} s   peak RSS {:.1} MiB (all {n} decoded claims held)",
        per_sec(n, scan_secs),
        scan_secs,
        peak_rss_kib() as f64 / 1024.0
    );
    drop(all);

    let update_n = n.min(20_000);
    let t = Instant::now();
    for i in 0..update_n {
        db.update::<Claim, _>(&format!("CLM{i:09}"), |c| {
            let mut c = c.expect("claim present");
            c.state = "paid".to_owned();
            Some(c)
        })
        .unwrap();
    }
    let upd_secs = t.elapsed().as_secs_f64();
    println!(
        "update (read-modify-CAS): {} ({update_n} records)",
        per_sec(update_n, upd_secs)
    );
    db.flush().unwrap();
    drop(db);

    let t = Instant::now();
    let db = open(&path, &key);
    let reopen_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in (0..n).step_by(7) {
        let got: Claim = db
            .get(&format!("CLM{i:09}"))
            .unwrap()
            .expect("claim missing");
        let mut want = claim(i);
        if i < update_n {
            want.state = "paid".to_owned();
        }
        assert_eq!(got, want);
    }
    let cold_secs = t.elapsed().as_secs_f64();
    println!("reopen:                 {:>10.1} ms", reopen_secs * 1e3);
    println!(
        "read after reopen:      {}  ({} keys, every 7th)",
        per_sec(n.div_ceil(7), cold_secs),
        n.div_ceil(7)
    );
    drop(db);

    // Where the time goes, per record, outside the store.
    let m = n.min(20_000);
    let claims: Vec<Claim> = (0..m).map(claim).collect();
    let t = Instant::now();
    let built: Vec<Claim> = (0..m).map(claim).collect();
    let build_us = t.elapsed().as_secs_f64() * 1e6 / m as f64;
    drop(built);
    let t = Instant::now();
    let jsons: Vec<Vec<u8>> = claims
        .iter()
        .map(|c| serde_json::to_vec(c).unwrap())
        .collect();
    let enc_us = t.elapsed().as_secs_f64() * 1e6 / m as f64;
    let t = Instant::now();
    let sealed: Vec<Vec<u8>> = claims
        .iter()
        .zip(&jsons)
        .map(|(c, j)| key.seal(Claim::COLLECTION, c.id.as_bytes(), j))
        .collect();
    let seal_us = t.elapsed().as_secs_f64() * 1e6 / m as f64;
    let t = Instant::now();
    for (c, s) in claims.iter().zip(&sealed) {
        key.open(Claim::COLLECTION, c.id.as_bytes(), s).unwrap();
    }
    let open_us = t.elapsed().as_secs_f64() * 1e6 / m as f64;
    let t = Instant::now();
    for j in &jsons {
        let _: Claim = serde_json::from_slice(j).unwrap();
    }
    let dec_us = t.elapsed().as_secs_f64() * 1e6 / m as f64;
    println!(
        "per record ({m} samples): build {build_us:.2} us, JSON encode {enc_us:.2} us, seal {seal_us:.2} us, open {open_us:.2} us, JSON decode {dec_us:.2} us"
    );
    drop((claims, jsons, sealed));

    let disk = dir_size(&path);
    println!(
        "on disk:                {:>10.1} MiB ({:.0} bytes/claim; JSON {} bytes)",
        disk as f64 / (1 << 20) as f64,
        disk as f64 / n as f64,
        json_len
    );
    println!(
        "peak RSS (VmHWM):       {:>10.1} MiB (at start {:.1} MiB; sled cache set to {} MiB)",
        peak_rss_kib() as f64 / 1024.0,
        rss_start as f64 / 1024.0,
        cache_bytes() >> 20
    );
}

/// Writes `n` indexed claims as single-record transactions into one store
/// and as batched commits into another; prints writes/s for both and
/// checks the indexes; returns the first store for the criterion part.
fn indexed_figures(n: u64) -> (tempfile::TempDir, Db) {
    let key = StoreKey::random();
    let single_dir = tempfile::tempdir().unwrap();
    let db = open(&single_dir.path().join("store"), &key);
    let t = Instant::now();
    for i in 0..n {
        db.put(&indexed(i)).unwrap();
    }
    db.flush().unwrap();
    let single_secs = t.elapsed().as_secs_f64();
    println!(
        "indexed write, 2 indexes, one transaction per record (+flush): {}  {:.2} s",
        per_sec(n, single_secs),
        single_secs
    );
    for batch in [100u64, 1_000] {
        let dir = tempfile::tempdir().unwrap();
        let bdb = open(&dir.path().join("store"), &key);
        let t = Instant::now();
        for start in (0..n).step_by(batch as usize) {
            bdb.transact(|tx| {
                for i in start..(start + batch).min(n) {
                    tx.put(&indexed(i))?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        }
        bdb.flush().unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "indexed write, 2 indexes, {batch} records per commit (+flush):  {}  {:.2} s",
            per_sec(n, secs),
            secs
        );
    }
    let t = Instant::now();
    let report = db.check_indexes::<IndexedClaim>().unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
    assert_eq!(report.records, n);
    assert_eq!(report.entries, 2 * n);
    println!(
        "check_indexes:          {}  {:.2} s ({} records, {} entries, consistent)",
        per_sec(n, t.elapsed().as_secs_f64()),
        t.elapsed().as_secs_f64(),
        report.records,
        report.entries
    );
    (single_dir, db)
}

fn criterion_benches(c: &mut Criterion, db: &Db, n: u64) {
    let per_state = (n / STATES.len() as u64).min(100) as usize;
    let mut g = c.benchmark_group("index_page");
    g.throughput(Throughput::Elements(per_state as u64));
    g.bench_function("100_by_state", |b| {
        b.iter(|| {
            let before = db.decode_count();
            let page = db
                .index_range::<IndexedClaim>(
                    "state",
                    Included("pending"),
                    Included("pending"),
                    Some(100),
                    false,
                )
                .unwrap();
            assert_eq!(page.items.len(), per_state);
            assert_eq!(db.decode_count() - before, per_state as u64);
            page
        })
    });
    g.bench_function("100_by_state_and_next_check_newest_first", |b| {
        b.iter(|| {
            let page = db
                .index_range::<IndexedClaim>(
                    "due",
                    Included("submitted/"),
                    Excluded("submitted0"),
                    Some(100),
                    true,
                )
                .unwrap();
            assert_eq!(page.items.len(), per_state);
            page
        })
    });
    g.bench_function("100_keys_by_state_no_decode", |b| {
        b.iter(|| {
            let page = db
                .index_range_keys::<IndexedClaim>(
                    "state",
                    Included("paid"),
                    Included("paid"),
                    Some(100),
                    false,
                )
                .unwrap();
            assert_eq!(page.items.len(), per_state);
            page
        })
    });
    g.finish();

    let mut g = c.benchmark_group("indexed_write");
    let mut i = 0u64;
    g.throughput(Throughput::Elements(1));
    g.bench_function("update_moving_both_indexes", |b| {
        b.iter_batched(
            || {
                i = (i + 7_919) % n;
                let mut r = indexed(i);
                r.0.state = STATES[((i / 3) % STATES.len() as u64) as usize].to_owned();
                r.0.next_check_at = r.0.next_check_at.map(|t| t + Duration::hours(1));
                r
            },
            |r| db.put(&r).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("commit_of_100_updates", |b| {
        b.iter_batched(
            || {
                i = (i + 7_919) % n;
                (0..100).map(|k| indexed((i + k) % n)).collect::<Vec<_>>()
            },
            |rs| {
                db.transact(|tx| {
                    for r in &rs {
                        tx.put(r)?;
                    }
                    Ok::<_, StoreError>(())
                })
                .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    c.bench_function("get_by_key_indexed_collection", |b| {
        b.iter(|| {
            i = (i + 7_919) % n;
            db.get::<IndexedClaim>(&format!("CLM{i:09}"))
                .unwrap()
                .unwrap()
        })
    });
}
