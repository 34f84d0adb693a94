//! Times the reading stages on a file (raw read, typed parse, validate):
//! a quick look at where time goes. `cargo run --release --example stages FILE`.
fn main() {
    let path = std::env::args().nth(1).expect("file");
    let bytes = std::fs::read(&path).expect("read");
    let mb = bytes.len() as f64 / 1e6;
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
        println!(
            "raw {:.1} MB/s ({a:.3}s), typed {b:.3}s, drop {c:.3}s",
            mb / a
        );
    }
}
