//! Reads and balances an 8–10 MB 835 built by repeating the claim loops of
//! a public fixture (kept balanced, envelope counts recomputed), and runs
//! pyx12's `x12valid` on the same file in the same run. Prints MB/s for
//! both and the ratio. Run with `cargo bench -p billd-x12 --bench read_835`.
//!
//! pyx12 comes from the workspace `.venv` (scripts/test creates it); set
//! `BILLD_BENCH_SKIP_PYX12=1` to time billd alone.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use billd_x12::balance::balance;
use billd_x12::document::Body;
use billd_x12::fields::Amount;
use billd_x12::writer::{SequentialControlNumbers, WriteOptions, write_document};
use billd_x12::{Mode, parse};

mod common;
use common::cpu_seconds;

const TARGET_BYTES: usize = 9 * 1024 * 1024;

fn build() -> String {
    // One interchange, one group, one transaction: its claims repeated.
    let (mut doc, template) = common::fixture_835();
    let size = |doc: &billd_x12::Document| {
        let mut n = SequentialControlNumbers::starting_at(1);
        write_document(doc, &WriteOptions::default(), &mut n)
            .unwrap()
            .len()
    };
    let with_claims = size(&doc);
    r_claims(&mut doc).clear();
    let without = size(&doc);
    let per_round = (with_claims - without).max(1);
    let rounds = (TARGET_BYTES - without) / per_round + 1;
    let Body::Remittance(r) = &mut doc.interchanges[0].groups[0].transactions[0].body else {
        unreachable!()
    };
    let claims = &mut r.header_numbers[0].claims;
    claims.clear();
    for _ in 0..rounds {
        claims.extend(template.iter().cloned());
    }
    r.header_numbers.truncate(1);
    let paid: i64 = r.claims().map(|c| c.clp.payment.units()).sum();
    let plb: i64 = r.provider_adjustments.iter().map(|p| p.total_units()).sum();
    r.financial.total_payment = Amount::from_units(paid - plb);
    r.financial.credit_debit = "C".into();
    let mut n = SequentialControlNumbers::starting_at(1);
    write_document(&doc, &WriteOptions::default(), &mut n).unwrap()
}

fn r_claims(doc: &mut billd_x12::Document) -> &mut Vec<billd_x12::t835::ClaimPayment> {
    let Body::Remittance(r) = &mut doc.interchanges[0].groups[0].transactions[0].body else {
        unreachable!()
    };
    r.header_numbers.truncate(1);
    &mut r.header_numbers[0].claims
}

fn main() {
    let text = build();
    let bytes = text.as_bytes();
    let mb = bytes.len() as f64 / 1_000_000.0;
    // Correctness first: the file reads strictly and balances. (Dropped
    // before timing so the timed runs start from the same heap.)
    let claims = {
        let p = parse(bytes, Mode::Strict).expect("built 835 reads");
        let mut claims = 0;
        for t in p
            .document
            .interchanges
            .iter()
            .flat_map(|i| &i.groups)
            .flat_map(|g| &g.transactions)
        {
            if let Body::Remittance(r) = &t.body {
                assert!(balance(r).is_empty(), "built 835 does not balance");
                claims += r.claims().count();
            }
        }
        claims
    };
    println!("835: {:.2} MB, {} claims", mb, claims);
    if let Some(out) = std::env::var_os("BILLD_BENCH_WRITE") {
        std::fs::write(out, bytes).unwrap();
    }

    let mut best = Duration::MAX;
    let runs = 10;
    let cpu0 = cpu_seconds().0;
    for _ in 0..runs {
        let t = Instant::now();
        let p = parse(std::hint::black_box(bytes), Mode::Strict).unwrap();
        let mut imbalances = 0;
        for t in p
            .document
            .interchanges
            .iter()
            .flat_map(|i| &i.groups)
            .flat_map(|g| &g.transactions)
        {
            if let Body::Remittance(r) = &t.body {
                imbalances += balance(r).len();
            }
        }
        std::hint::black_box(imbalances);
        drop(p);
        best = best.min(t.elapsed());
    }
    let cpu = (cpu_seconds().0 - cpu0) / f64::from(runs);
    let billd_wall = mb / best.as_secs_f64();
    let billd_cpu = mb / cpu.max(1e-9);
    println!(
        "billd read+balance: {:.3} s wall (best of {runs}) = {billd_wall:.1} MB/s; {cpu:.3} CPU s (mean) = {billd_cpu:.1} MB/s",
        best.as_secs_f64()
    );
    if std::env::var_os("BILLD_BENCH_SKIP_PYX12").is_some() {
        return;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/x12valid");
    assert!(
        venv.exists(),
        "{} missing: run scripts/test to create .venv",
        venv.display()
    );
    let dir = std::env::temp_dir().join(format!("billd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("big.835");
    std::fs::write(&file, bytes).unwrap();
    let t = Instant::now();
    let child0 = cpu_seconds().1;
    let out = Command::new(&venv)
        .arg(&file)
        .output()
        .expect("x12valid runs");
    let secs = t.elapsed().as_secs_f64();
    let child_cpu = cpu_seconds().1 - child0;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{}: ", file.display())))
        .unwrap_or("no verdict")
        .trim()
        .to_owned();
    let _ = std::fs::remove_dir_all(&dir);
    let py_wall = mb / secs;
    let py_cpu = mb / child_cpu.max(1e-9);
    println!(
        "pyx12 x12valid: {secs:.1} s wall = {py_wall:.2} MB/s; {child_cpu:.1} CPU s = {py_cpu:.2} MB/s (verdict: {verdict})"
    );
    println!(
        "ratio billd/pyx12: {:.0}x by wall time, {:.0}x by CPU time (target >= 100x)",
        billd_wall / py_wall,
        billd_cpu / py_cpu
    );
}
