//! Posting a 100 MB 835 with `billd remits post`, on the encrypted sled
//! store in a temp dir: claims per second and peak RSS.
//!
//! The 835 is built from the public fixture tasty__profee-multiple.edi:
//! one interchange of many transaction sets (about 40 KB each), each the
//! fixture's claims repeated, every claim with its own patient control
//! number (CLP01), every set with its own trace number (TRN02) and a BPR02
//! that balances. Before the run the store holds one submitted claim per
//! CLP01 (payer and billing provider as the 835 names them), so every
//! claim payment matches its claim and posts: its posting, ledger entries
//! and the claim's move, one transaction per transaction set, as the
//! remittance-posting job posts.
//!
//! billd's figure is the whole command (`/usr/bin/time -v`): start-up,
//! reading and validating the file as a stream, matching and posting. The
//! store's page cache is set to `BILLD_BENCH_CACHE_MB` (default 16) for
//! the run, since sled's cache is memory billd is told it may use; the
//! target is a peak under 64 MiB. The bench then opens the store and
//! checks that every claim payment was posted once.
//!
//! Run: `cargo build --release -p billd && cargo bench -p billd --bench
//! posting`. `BILLD_BIN` overrides the binary (default
//! `<workspace>/target/release/billd`), `BILLD_BENCH_MB` the size (100),
//! `BILLD_BENCH_WRAP` prefixes the measured command (for example `perf
//! record -g -o /tmp/post.perf --`; the RSS figure is then the wrapper's).

use billd::domain::claim::{Claim, ClaimState, ServiceLine};
use billd::domain::posting::Posting;
use billd::store::{Db, StoreError, StoreKey};
use billd_x12::Body;
use billd_x12::stream::Transactions;
use chrono::NaiveDate;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// About how large each transaction set is.
const SET_BYTES: usize = 40_000;
/// Claims seeded per transaction.
const SEED_BATCH: usize = 1_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The fixture's first transaction set, split into segments: everything
/// before the first CLP (ST excluded), the claim loops (each starting at
/// its CLP), and the envelope segments around it.
struct Template {
    isa_gs: Vec<String>,
    head: Vec<String>,
    claims: Vec<Vec<String>>,
    paid_cents: i64,
}

fn cents(amount: &str) -> i64 {
    let (whole, frac) = amount.split_once('.').unwrap_or((amount, ""));
    let frac = format!("{frac:0<2}");
    whole.parse::<i64>().expect("amount") * 100 + frac[..2].parse::<i64>().expect("cents")
}

fn template() -> Template {
    let path = workspace().join("tests/fixtures/x12/835/tasty__profee-multiple.edi");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let first = text.lines().next().expect("a line");
    let segs: Vec<String> = first
        .split('~')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let st = segs.iter().position(|s| s.starts_with("ST*")).expect("ST");
    let se = segs.iter().position(|s| s.starts_with("SE*")).expect("SE");
    let body = &segs[st + 1..se];
    let first_clp = body
        .iter()
        .position(|s| s.starts_with("CLP*"))
        .expect("CLP");
    let mut claims: Vec<Vec<String>> = Vec::new();
    for s in &body[first_clp..] {
        if s.starts_with("CLP*") {
            claims.push(Vec::new());
        }
        claims.last_mut().expect("a claim").push(s.clone());
    }
    let paid_cents = claims
        .iter()
        .map(|c| cents(c[0].split('*').nth(4).expect("CLP04")))
        .sum();
    Template {
        isa_gs: segs[..st].to_vec(),
        head: body[..first_clp].to_vec(),
        claims,
        paid_cents,
    }
}

/// One CLP03 per seeded claim, in order.
struct Built {
    bytes: usize,
    sets: usize,
    charges: Vec<i64>,
}

/// Writes the 835 of at least `target` bytes.
fn write_835(t: &Template, path: &Path, target: usize) -> Built {
    let one: usize = t.claims.iter().flatten().map(|s| s.len() + 1).sum();
    let rounds = (SET_BYTES / one).max(1);
    let mut out = Out {
        w: BufWriter::new(std::fs::File::create(path).expect("create")),
        n: 0,
    };
    let put = |out: &mut Out, s: &str| out.segment(s);
    for s in &t.isa_gs {
        put(&mut out, s);
    }
    let mut charges = Vec::new();
    let mut sets = 0;
    let payment = t.paid_cents * rounds as i64;
    let bpr_amount = format!("{}.{:02}", payment / 100, payment % 100);
    while out.n < target {
        sets += 1;
        let mut n = 1;
        put(&mut out, &format!("ST*835*{sets:09}"));
        for s in &t.head {
            let seg = if s.starts_with("BPR*") {
                let mut f: Vec<&str> = s.split('*').collect();
                f[2] = &bpr_amount;
                f.join("*")
            } else if s.starts_with("TRN*") {
                let mut f: Vec<String> = s.split('*').map(str::to_owned).collect();
                f[2] = format!("BENCH{sets:09}");
                f.join("*")
            } else {
                s.clone()
            };
            put(&mut out, &seg);
            n += 1;
        }
        for _ in 0..rounds {
            for claim in &t.claims {
                for s in claim {
                    if s.starts_with("CLP*") {
                        let mut f: Vec<String> = s.split('*').map(str::to_owned).collect();
                        charges.push(cents(&f[3]));
                        f[1] = control_number(charges.len());
                        put(&mut out, &f.join("*"));
                    } else {
                        put(&mut out, s);
                    }
                    n += 1;
                }
            }
        }
        put(&mut out, &format!("SE*{}*{sets:09}", n + 1));
    }
    let ge = t.isa_gs[1].split('*').nth(6).expect("GS06").to_owned();
    let iea = t.isa_gs[0].split('*').nth(13).expect("ISA13").to_owned();
    put(&mut out, &format!("GE*{sets}*{ge}"));
    put(&mut out, &format!("IEA*1*{iea}"));
    out.w.flush().unwrap();
    Built {
        bytes: out.n,
        sets,
        charges,
    }
}

/// The file being written and its length so far.
struct Out {
    w: BufWriter<std::fs::File>,
    n: usize,
}

impl Out {
    fn segment(&mut self, s: &str) {
        self.w.write_all(s.as_bytes()).unwrap();
        self.w.write_all(b"~").unwrap();
        self.n += s.len() + 1;
    }
}

fn control_number(n: usize) -> String {
    format!("PB{n:09}")
}

/// The payer id and payee NPI billd reads from the 835 (its first set).
fn payer_and_payee(file: &Path) -> (String, String) {
    let mut stream = Transactions::validate(std::fs::File::open(file).expect("open"));
    let item = stream.next().expect("one set").expect("reads");
    let Body::Remittance(r) = &item.transaction.body else {
        panic!("not an 835")
    };
    let era = billd::intake::remit835::era(r).expect("the 835 reads into an ERA");
    (
        era.payer,
        era.payee_npi.expect("the fixture names the payee NPI"),
    )
}

/// One submitted claim per CLP01, as the submission job leaves it.
fn seed(db: &Db, charges: &[i64], payer: &str, npi: &str) -> Result<(), StoreError> {
    let day = NaiveDate::from_ymd_opt(2026, 11, 2).expect("date");
    for (b, chunk) in charges.chunks(SEED_BATCH).enumerate() {
        db.transact(|tx| {
            for (i, charge) in chunk.iter().enumerate() {
                let n = b * SEED_BATCH + i + 1;
                tx.put(&Claim {
                    id: format!("C-{n:09}"),
                    control_number: control_number(n),
                    patient_id: format!("PAT{:07}", n / 3),
                    coverage_id: format!("COV{:07}", n / 3),
                    payer_id: payer.to_owned(),
                    billing_npi: npi.to_owned(),
                    rendering_npi: npi.to_owned(),
                    place_of_service: "11".into(),
                    frequency_code: "1".into(),
                    diagnoses: vec!["Z0000".into()],
                    lines: vec![ServiceLine {
                        procedure: "99213".into(),
                        modifiers: Vec::new(),
                        charge_cents: *charge,
                        units: 1,
                        diagnosis_pointers: vec![1],
                        service_date: day,
                    }],
                    total_charge_cents: *charge,
                    state: ClaimState::Submitted,
                    history: Vec::new(),
                    payer_claim_number: None,
                    next_check_at: None,
                    revision: 1,
                    held: false,
                    problems: Vec::new(),
                    billing_name: None,
                    billing_tax_id: None,
                })?;
            }
            Ok::<_, StoreError>(())
        })?;
    }
    db.flush()
}

/// Wall seconds and peak RSS (MiB) of one run, with its stdout.
fn timed(program: &Path, args: &[&std::ffi::OsStr]) -> (f64, f64, String) {
    let t0 = Instant::now();
    let wrap = std::env::var("BILLD_BENCH_WRAP").unwrap_or_default();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .args(wrap.split_whitespace())
        .arg(program)
        .args(args)
        .output()
        .expect("/usr/bin/time runs (apt-get install time)");
    let wall = t0.elapsed().as_secs_f64();
    let report = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "billd remits post failed:\n{}\n{report}",
        stdout.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    let kib: f64 = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .expect("peak RSS in /usr/bin/time's report");
    (wall, kib / 1024.0, stdout)
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("big.835");
    let t = template();
    let built = write_835(&t, &file, (env_f64("BILLD_BENCH_MB", 100.0) * 1e6) as usize);
    let mb = built.bytes as f64 / 1e6;
    let claims = built.charges.len();
    println!(
        "835: {mb:.1} MB, {} transaction sets, {claims} claim payments",
        built.sets
    );

    let (payer, npi) = payer_and_payee(&file);
    let cache_mb = env_f64("BILLD_BENCH_CACHE_MB", 16.0) as u64;
    let key_file = dir.path().join("store.key");
    StoreKey::generate_to(&key_file).expect("key file");
    let store = dir.path().join("store");
    let started = Instant::now();
    {
        let db = Db::open_sled(&store, &key_file, 64 << 20).expect("store");
        seed(&db, &built.charges, &payer, &npi).expect("seeding");
    }
    println!(
        "seeded {claims} submitted claims in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let config = dir.path().join("billd.toml");
    std::fs::write(
        &config,
        format!(
            r#"[practice]
name = "Riverside Family Medicine"
npi = "{npi}"
tax_id = "12-3456789"
timezone = "America/New_York"

[store]
path = "store"
key_file = "store.key"
cache_bytes = {}

[mail]
from = "billd <billing@example.org>"
outbox_dir = "outbox"
"#,
            cache_mb << 20
        ),
    )
    .expect("config");

    let bin = std::env::var_os("BILLD_BIN")
        .map_or_else(|| workspace().join("target/release/billd"), PathBuf::from);
    assert!(
        bin.exists(),
        "{} missing: cargo build --release -p billd",
        bin.display()
    );
    let (wall, rss, stdout) = timed(
        &bin,
        &[
            "--config".as_ref(),
            config.as_os_str(),
            "remits".as_ref(),
            "post".as_ref(),
            file.as_os_str(),
        ],
    );
    let summary = stdout.lines().next().unwrap_or_default().to_owned();
    let expect = format!("{} posted, 0 awaiting review, 0 unapplied", claims);
    assert!(
        summary.contains(&expect) && summary.ends_with("0 quarantined"),
        "not every claim payment posted: {summary}"
    );
    let db = Db::open_sled(&store, &key_file, 16 << 20).expect("store");
    let postings = db.count::<Posting>().expect("count");
    assert_eq!(postings, claims as u64, "one posting per claim payment");
    println!(
        "billd remits post, {mb:.1} MB ({claims} claims): {wall:.1} s = {:.0} claims/s, {:.1} MB/s; peak RSS {rss:.1} MiB with a {cache_mb} MiB store cache (target < 64 MiB: {})",
        claims as f64 / wall,
        mb / wall,
        if rss < 64.0 { "met" } else { "NOT met" }
    );
}
