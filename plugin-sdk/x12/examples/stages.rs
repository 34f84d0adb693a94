//! Times the reading stages on a file (raw read, typed parse, drop) and the
//! streaming validator on it: a quick look at where time goes.
//! `cargo run --release --example stages FILE [--stream]`: with `--stream`,
//! only the streaming validator, once (for `valgrind --tool=callgrind`).
fn main() {
    let path = std::env::args().nth(1).expect("file");
    let bytes = std::fs::read(&path).expect("read");
    let mb = bytes.len() as f64 / 1e6;
    if std::env::args().any(|a| a == "--stream") {
        let t = std::time::Instant::now();
        let mut s = billd_x12::stream::Transactions::validate(&bytes[..]);
        let mut sets = 0;
        for item in &mut s {
            item.unwrap();
            sets += 1;
        }
        s.finish().unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!("{sets} sets, {:.1} MB/s", mb / secs);
        return;
    }
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let raw = billd_x12::read_raw(&bytes, billd_x12::Mode::Lenient).unwrap();
        let a = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let p = billd_x12::document::from_raw(raw, billd_x12::Mode::Lenient).unwrap();
        let b = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        drop(p);
        let c = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let mut s = billd_x12::stream::Transactions::validate(&bytes[..]);
        let issues: usize = s.by_ref().map(|i| i.unwrap().issues.len()).sum();
        let end = s.finish().unwrap();
        let d = t.elapsed().as_secs_f64();
        println!(
            "raw {:.1} MB/s ({a:.3}s), typed {b:.3}s, drop {c:.3}s; streaming validate {:.1} MB/s ({d:.3}s, {} findings)",
            mb / a,
            mb / d,
            issues + end.issues.len()
        );
    }
}
