//! `billd x12 validate` on a 100 MB 835 against pyx12's `x12valid` on a
//! smaller file, in the same run. The 835 is built in a temporary directory
//! from a public fixture: one interchange of many transaction sets (each
//! the fixture's claims repeated to about 40 KB, rebalanced, with its own
//! control and trace numbers), so it validates clean.
//!
//! Prints, for each program: wall and CPU seconds, MB/s by each, and peak
//! RSS (from `/usr/bin/time -v`); then the MB/s ratio, each against its
//! target (billd under 64 MiB peak and at least 100 MB/s on 100 MB; at
//! least 100x pyx12). The streaming library is timed in-process too.
//!
//! Run: `cargo build --release -p billd && cargo bench -p billd-x12 --bench
//! validate_large`. `BILLD_BIN` overrides the billd binary
//! (default `<workspace>/target/release/billd`), `BILLD_BENCH_MB` the size
//! (100), `BILLD_BENCH_PYX12_MB` pyx12's file size (3);
//! `BILLD_BENCH_SKIP_PYX12=1` skips pyx12; `BILLD_BENCH_KEEP=PATH` copies
//! the built 835 to PATH (to profile `billd x12 validate PATH` on it).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use billd_x12::document::Body;
use billd_x12::fields::Amount;
use billd_x12::stream::Transactions;
use billd_x12::writer::{SequentialControlNumbers, WriteOptions, write_document};

mod common;
use common::cpu_seconds;

/// About how large each transaction set is.
const SET_BYTES: usize = 40_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One balanced transaction set rendered from the fixture, split into
/// segments (terminators removed): (ISA and GS, ST..SE body without ST and
/// SE, GE02, IEA02, index of the TRN segment in the body).
struct Template {
    head: Vec<String>,
    body: Vec<String>,
    ge02: String,
    iea02: String,
    trn: usize,
    claims: usize,
}

fn template() -> Template {
    let (mut doc, claims) = common::fixture_835();
    let Body::Remittance(r) = &mut doc.interchanges[0].groups[0].transactions[0].body else {
        unreachable!()
    };
    r.header_numbers.truncate(1);
    let render = |doc: &billd_x12::Document| {
        let mut n = SequentialControlNumbers::starting_at(1);
        write_document(doc, &WriteOptions::default(), &mut n).expect("renders")
    };
    // Repeat the claims until the set is about SET_BYTES.
    let one_round = {
        let Body::Remittance(r) = &mut doc.interchanges[0].groups[0].transactions[0].body else {
            unreachable!()
        };
        r.header_numbers[0].claims = claims.clone();
        render(&doc).len()
    };
    let rounds = (SET_BYTES / one_round).max(1);
    let Body::Remittance(r) = &mut doc.interchanges[0].groups[0].transactions[0].body else {
        unreachable!()
    };
    let repeated: Vec<_> = (0..rounds).flat_map(|_| claims.iter().cloned()).collect();
    r.header_numbers[0].claims = repeated;
    let paid: i64 = r.claims().map(|c| c.clp.payment.units()).sum();
    let plb: i64 = r.provider_adjustments.iter().map(|p| p.total_units()).sum();
    r.financial.total_payment = Amount::from_units(paid - plb);
    r.financial.credit_debit = "C".into();
    let n_claims = r.claims().count();
    let text = render(&doc);
    let segs: Vec<String> = text
        .split('~')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let st = segs.iter().position(|s| s.starts_with("ST*")).expect("ST");
    let se = segs.iter().position(|s| s.starts_with("SE*")).expect("SE");
    let last = |id: &str| {
        let s = segs.iter().find(|s| s.starts_with(id)).expect("trailer");
        s.rsplit('*').next().unwrap_or_default().to_owned()
    };
    let body = segs[st + 1..se].to_vec();
    let trn = body
        .iter()
        .position(|s| s.starts_with("TRN*"))
        .expect("TRN");
    Template {
        head: segs[..st].to_vec(),
        ge02: last("GE*"),
        iea02: last("IEA*"),
        body,
        trn,
        claims: n_claims,
    }
}

/// Writes an 835 of at least `target` bytes to `path`; returns (bytes,
/// transaction sets, claims).
fn write_835(t: &Template, path: &Path, target: usize) -> (usize, usize, usize) {
    let mut out = CountingWriter {
        inner: BufWriter::new(std::fs::File::create(path).expect("create")),
        n: 0,
    };
    for s in &t.head {
        write!(out, "{s}~").unwrap();
    }
    let (trn_head, trn_tail) = {
        let s = &t.body[t.trn];
        let mut parts = s.splitn(4, '*');
        let head = format!(
            "{}*{}*{}",
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("")
        );
        let tail = parts.next().map(|r| format!("*{r}")).unwrap_or_default();
        (head, tail)
    };
    let mut sets = 0;
    while out.n < target {
        sets += 1;
        write!(out, "ST*835*{sets:09}~").unwrap();
        for (i, s) in t.body.iter().enumerate() {
            if i == t.trn {
                write!(out, "{trn_head}-{sets}{trn_tail}~").unwrap();
            } else {
                write!(out, "{s}~").unwrap();
            }
        }
        write!(out, "SE*{}*{sets:09}~", t.body.len() + 2).unwrap();
    }
    write!(out, "GE*{sets}*{}~IEA*1*{}~", t.ge02, t.iea02).unwrap();
    out.flush().unwrap();
    (out.n, sets, sets * t.claims)
}

struct CountingWriter<W> {
    inner: W,
    n: usize,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What `/usr/bin/time -v` says about one run of a program.
struct Run {
    wall: f64,
    cpu: f64,
    rss_mib: f64,
    stdout: String,
    /// The program's own stderr lines (before /usr/bin/time's report).
    stderr: String,
    ok: bool,
}

fn timed(program: &Path, args: &[&std::ffi::OsStr]) -> Run {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(program)
        .args(args)
        .output()
        .expect("/usr/bin/time runs (apt-get install time)");
    let report = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no `{name}` in /usr/bin/time output: {report}"))
            .to_owned()
    };
    let secs = |name: &str| field(name).parse::<f64>().unwrap_or(0.0);
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):")
        .split(':')
        .fold(0.0, |acc, p| acc * 60.0 + p.parse::<f64>().unwrap_or(0.0));
    Run {
        wall,
        cpu: secs("User time (seconds):") + secs("System time (seconds):"),
        rss_mib: secs("Maximum resident set size (kbytes):") / 1024.0,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: report
            .split("\tCommand being timed:")
            .next()
            .unwrap_or_default()
            .to_owned(),
        ok: out.status.success(),
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn env_mb(name: &str, default: f64) -> usize {
    let mb = std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(default);
    (mb * 1_000_000.0) as usize
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let t = template();
    let big = dir.path().join("big.835");
    let (bytes, sets, claims) = write_835(&t, &big, env_mb("BILLD_BENCH_MB", 100.0));
    let mb = bytes as f64 / 1e6;
    println!("835: {mb:.1} MB, {sets} transaction sets, {claims} claims");
    if let Some(keep) = std::env::var_os("BILLD_BENCH_KEEP") {
        std::fs::copy(&big, &keep).expect("copy the 835 to BILLD_BENCH_KEEP");
    }

    // In-process: the streaming library alone (and the file is clean).
    let cpu0 = cpu_seconds().0;
    let start = Instant::now();
    let mut stream = Transactions::validate(std::fs::File::open(&big).expect("open"));
    let mut seen = 0;
    for item in &mut stream {
        let item = item.expect("reads");
        assert!(item.issues.is_empty(), "built 835 has findings");
        seen += 1;
    }
    let end = stream.finish().expect("reads");
    let (wall, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds().0 - cpu0);
    assert_eq!((seen, end.errors, end.warnings), (sets, 0, 0));
    println!(
        "billd_x12::stream::Transactions::validate (in process): {wall:.2} s wall = {:.0} MB/s; {cpu:.2} CPU s = {:.0} MB/s",
        mb / wall,
        mb / cpu.max(1e-9)
    );

    let bin = std::env::var_os("BILLD_BIN")
        .map_or_else(|| workspace().join("target/release/billd"), PathBuf::from);
    assert!(
        bin.exists(),
        "{} missing: cargo build --release -p billd",
        bin.display()
    );
    let validate = |file: &Path| {
        let args = ["x12".as_ref(), "validate".as_ref(), file.as_os_str()];
        let r = timed(&bin, &args);
        let clean = format!("{}: 0 error(s), 0 warning(s)", file.display());
        assert!(
            r.ok && r.stdout.trim_end().ends_with(&clean),
            "billd x12 validate did not pass the built 835: {}",
            r.stdout
        );
        r
    };
    // Best of three by wall time (the machine is shared); peak RSS is the
    // largest seen.
    let runs: Vec<Run> = (0..3).map(|_| validate(&big)).collect();
    let rss = runs.iter().map(|r| r.rss_mib).fold(0.0, f64::max);
    let best = runs
        .iter()
        .min_by(|a, b| a.wall.total_cmp(&b.wall))
        .expect("three runs");
    let (billd_wall, billd_cpu) = (mb / best.wall.max(1e-3), mb / best.cpu.max(1e-3));
    println!(
        "billd x12 validate, {mb:.1} MB: {:.2} s wall = {billd_wall:.0} MB/s (target >= 100 MB/s: {}); {:.2} CPU s = {billd_cpu:.0} MB/s; peak RSS {rss:.1} MiB (target < 64 MiB: {})",
        best.wall,
        verdict(billd_wall >= 100.0),
        best.cpu,
        verdict(rss < 64.0)
    );
    if std::env::var_os("BILLD_BENCH_SKIP_PYX12").is_some() {
        return;
    }

    let small = dir.path().join("small.835");
    let (small_bytes, small_sets, _) = write_835(&t, &small, env_mb("BILLD_BENCH_PYX12_MB", 3.0));
    let small_mb = small_bytes as f64 / 1e6;
    let x12valid = workspace().join(".venv/bin/x12valid");
    assert!(
        x12valid.exists(),
        "{} missing: python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-test.txt",
        x12valid.display()
    );
    let py = timed(&x12valid, &[small.as_os_str()]);
    // x12valid logs its verdict ("FILE: OK") on stderr.
    let py_verdict = format!("{}{}", py.stdout, py.stderr)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{}: ", small.display())))
        .unwrap_or("no verdict")
        .trim()
        .to_owned();
    let (py_wall, py_cpu) = (small_mb / py.wall.max(1e-3), small_mb / py.cpu.max(1e-3));
    println!(
        "pyx12 x12valid, {small_mb:.1} MB ({small_sets} sets): {:.1} s wall = {py_wall:.2} MB/s; {:.1} CPU s = {py_cpu:.2} MB/s; peak RSS {:.1} MiB (verdict: {py_verdict})",
        py.wall, py.cpu, py.rss_mib
    );
    let same = validate(&small);
    println!(
        "billd x12 validate, {small_mb:.1} MB: {:.2} s wall = {:.0} MB/s; {:.2} CPU s; peak RSS {:.1} MiB",
        same.wall,
        small_mb / same.wall.max(1e-3),
        same.cpu,
        same.rss_mib
    );
    let (by_wall, by_cpu) = (billd_wall / py_wall, billd_cpu / py_cpu);
    println!(
        "ratio billd ({mb:.0} MB) / pyx12 ({small_mb:.0} MB), MB/s: {by_wall:.0}x by wall time, {by_cpu:.0}x by CPU time (target >= 100x: {})",
        verdict(by_wall.min(by_cpu) >= 100.0)
    );
}
