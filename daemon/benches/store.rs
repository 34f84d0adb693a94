//! Store benchmark: 100,000 realistic claims written, flushed, read back by
//! key and by scan through the encrypting [`Db`] on sled, each verified equal
//! to what was written. Prints throughput, on-disk size and peak RSS.
//!
//! Run with `cargo bench -p billd --bench store` (release build). Set
//! `BILLD_BENCH_CLAIMS` to change the count and `BILLD_BENCH_CACHE_MIB` the
//! sled page cache (default 256 MiB).

use billd::domain::{Claim, ClaimEvent, ClaimEventSource, ClaimState, ServiceLine};
use billd::store::{Db, Record, SledStore, StoreKey};
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

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
            to: ClaimState::Draft,
            source: ClaimEventSource::System,
            note: None,
        },
        ClaimEvent {
            at: submitted - Duration::hours(1),
            from: Some(ClaimState::Draft),
            to: ClaimState::Scrubbed,
            source: ClaimEventSource::System,
            note: None,
        },
        ClaimEvent {
            at: submitted,
            from: Some(ClaimState::Scrubbed),
            to: ClaimState::Submitted,
            source: ClaimEventSource::System,
            note: Some(format!("batch 837-{:06}", i / 500)),
        },
        ClaimEvent {
            at: submitted + Duration::hours(3),
            from: Some(ClaimState::Submitted),
            to: ClaimState::Acknowledged,
            source: ClaimEventSource::Ack277Ca,
            note: Some("A1:20".to_owned()),
        },
    ];
    Claim {
        id: format!("CLM{i:09}"),
        control_number: format!("CLM{i:09}"),
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
        state: ClaimState::Acknowledged,
        history,
        payer_claim_number: Some(format!("PCN{:012}", i * 7919)),
        next_check_at: Some(submitted + Duration::days(7)),
        revision: 0,
        held: false,
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
    // in a debug build. A filter argument is ignored.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: u64 = std::env::var("BILLD_BENCH_CLAIMS")
        .ok()
        .map(|v| v.parse().expect("BILLD_BENCH_CLAIMS must be a number"))
        .unwrap_or(if benching { 100_000 } else { 1_000 });
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
            c.state = ClaimState::Paid;
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
            want.state = ClaimState::Paid;
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
