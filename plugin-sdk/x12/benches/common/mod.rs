//! Helpers the bench binaries share.

#![allow(dead_code)]

/// CPU seconds used so far by this process and by its waited-for children
/// (Linux /proc; clock ticks of 1/100 s). The machine this runs on is shared,
/// so CPU time is the fair measure; wall time is printed too.
pub fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // After the command name: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let get = |n: usize| f.get(n - 3).copied().unwrap_or(0.0) / 100.0;
    (get(14) + get(15), get(16) + get(17))
}

/// The first 835 transaction set of the public fixture
/// tasty__profee-multiple.edi as a one-interchange, one-group document,
/// with every claim it holds (to repeat into larger files).
pub fn fixture_835() -> (billd_x12::Document, Vec<billd_x12::t835::ClaimPayment>) {
    use billd_x12::{Body, Mode, parse};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/x12/835/tasty__profee-multiple.edi");
    let src = std::fs::read(&root).expect("fixture");
    let mut doc = parse(&src, Mode::Strict).expect("fixture parses").document;
    doc.interchanges.truncate(1);
    let group = &mut doc.interchanges[0].groups[0];
    group.transactions.truncate(1);
    let Body::Remittance(r) = &mut group.transactions[0].body else {
        panic!("not an 835")
    };
    let claims = r
        .header_numbers
        .iter()
        .flat_map(|h| h.claims.clone())
        .collect();
    (doc, claims)
}
