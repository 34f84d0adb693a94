//! Crash safety of transactions on sled: a child process (this test binary
//! run again) makes multi-record, indexed transactions until it is killed
//! with SIGKILL at a random moment; after every kill the store must hold
//! whole transactions only, and (once the repair that follows an unclean
//! shutdown has run) records and indexes must agree. The child also writes
//! single records alone, which sled applies as relaxed commits.

use super::{Db, Record, SledStore, StoreError, StoreKey};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::io::{BufRead as _, BufReader};
use std::ops::Bound;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ACCOUNTS: u64 = 8;
const OPENING: i64 = 1_000;
const CHILD_ENV: &str = "BILLD_TEST_CRASH_DIR";
const READY: &str = "CRASH-CHILD-READY";
const KEY: [u8; 32] = [7; 32];

/// An account: balance, how many transfers touched it. Indexed by balance
/// band, so most transfers move index entries.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Account {
    id: String,
    balance: i64,
    moves: u64,
}

impl Record for Account {
    const COLLECTION: &'static str = "crash_accounts";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &["band"];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        vec![("band", format!("{:06}", self.balance.max(0) / 50))]
    }
}

/// One transfer, numbered by a counter, indexed by both accounts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Transfer {
    id: String,
    from: String,
    to: String,
    amount: i64,
}

impl Record for Transfer {
    const COLLECTION: &'static str = "crash_transfers";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &["account"];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        vec![("account", self.from.clone()), ("account", self.to.clone())]
    }
}

/// A record written alone with [`Db::put`] (a relaxed commit on sled): one
/// of [`MARKERS`] keys, re-keyed in its index on every write, so a kill
/// can cut a write between the record and its index entries.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Marker {
    id: String,
    last: u64,
}

impl Record for Marker {
    const COLLECTION: &'static str = "crash_markers";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &["last", "parity"];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        vec![
            ("last", format!("{:012}", self.last)),
            ("parity", (self.last % 2).to_string()),
        ]
    }
}

const MARKERS: u64 = 16;

/// Builds (first time) or repairs (after a kill) every index of the test.
fn prepare(db: &Db) -> u64 {
    db.ensure_indexed::<Account>().unwrap()
        + db.ensure_indexed::<Transfer>().unwrap()
        + db.ensure_indexed::<Marker>().unwrap()
}

fn open(dir: &Path) -> Db {
    let raw = SledStore::open(dir, 8 << 20).unwrap();
    Db::new(Arc::new(raw), StoreKey::from_bytes(&KEY))
}

fn account_id(i: u64) -> String {
    format!("A{i:02}")
}

/// The child: transfers forever (until killed).
#[test]
#[ignore = "helper process for transactions_survive_sigkill_all_or_nothing"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let db = open(Path::new(&dir));
    let mut rng = rand::thread_rng();
    for n in 0u64.. {
        let a = rng.gen_range(0..ACCOUNTS);
        let b = (a + rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
        let amount = rng.gen_range(1..200);
        db.transact(|tx| {
            let mut from: Account = tx.get(&account_id(a))?.expect("account");
            let mut to: Account = tx.get(&account_id(b))?.expect("account");
            from.balance -= amount;
            to.balance += amount;
            from.moves += 1;
            to.moves += 1;
            let id = tx.next_counter("crash/transfers")?;
            tx.put(&from)?;
            tx.put(&to)?;
            tx.put(&Transfer {
                id: format!("T{id:09}"),
                from: from.id.clone(),
                to: to.id.clone(),
                amount,
            })?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
        for m in 0..4 {
            db.put(&Marker {
                id: format!("M{:02}", (n * 4 + m) % MARKERS),
                last: n * 4 + m,
            })
            .unwrap();
        }
        if n % 25 == 0 {
            db.flush().unwrap();
        }
        if n == 0 {
            println!("{READY}");
        }
    }
}

/// What the store holds after a crash; panics on any broken invariant.
/// Returns the number of transfers.
fn verify(db: &Db) -> u64 {
    let accounts: Vec<Account> = db.scan("").unwrap();
    assert_eq!(accounts.len() as u64, ACCOUNTS);
    let sum: i64 = accounts.iter().map(|a| a.balance).sum();
    assert_eq!(sum, OPENING * ACCOUNTS as i64, "money appeared or vanished");
    let transfers: Vec<Transfer> = db.scan("").unwrap();
    let n = transfers.len() as u64;
    // Counter, transfer records and account updates moved together.
    let counter = db
        .raw()
        .get(super::txn::COUNTERS_COLLECTION, b"crash/transfers")
        .unwrap()
        .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()));
    assert_eq!(counter, n, "counter and transfer records disagree");
    for (i, t) in transfers.iter().enumerate() {
        assert_eq!(
            t.id,
            format!("T{:09}", i + 1),
            "a transfer number is missing"
        );
    }
    let moves: u64 = accounts.iter().map(|a| a.moves).sum();
    assert_eq!(
        moves,
        2 * n,
        "account updates without their transfer, or the reverse"
    );
    // Per account, the index of transfers agrees with the account.
    for a in &accounts {
        let touching = db
            .index_range_keys::<Transfer>(
                "account",
                Bound::Included(&a.id),
                Bound::Included(&a.id),
                None,
                false,
            )
            .unwrap();
        assert_eq!(touching.items.len() as u64, a.moves, "index of {}", a.id);
        let net: i64 = transfers
            .iter()
            .map(|t| {
                if t.to == a.id {
                    t.amount
                } else if t.from == a.id {
                    -t.amount
                } else {
                    0
                }
            })
            .sum();
        assert_eq!(a.balance, OPENING + net, "balance of {}", a.id);
    }
    let markers: Vec<Marker> = db.scan("").unwrap();
    let even = db
        .index_range_keys::<Marker>(
            "parity",
            Bound::Included("0"),
            Bound::Included("0"),
            None,
            false,
        )
        .unwrap();
    assert_eq!(
        even.items.len(),
        markers.iter().filter(|m| m.last % 2 == 0).count(),
        "the parity index of markers disagrees with the markers"
    );
    for report in [
        db.check_indexes::<Account>().unwrap(),
        db.check_indexes::<Transfer>().unwrap(),
        db.check_indexes::<Marker>().unwrap(),
    ] {
        assert!(report.is_consistent(), "{:?}", report.problems);
    }
    n
}

#[test]
fn transactions_survive_sigkill_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    {
        let db = open(&dir);
        for i in 0..ACCOUNTS {
            db.put(&Account {
                id: account_id(i),
                balance: OPENING,
                moves: 0,
            })
            .unwrap();
        }
        db.flush().unwrap();
        prepare(&db);
        assert_eq!(verify(&db), 0);
    }
    {
        // Closed cleanly just now: no repair needed.
        let db = open(&dir);
        assert!(
            !db.raw().needs_repair(),
            "a cleanly closed store needs a repair"
        );
    }
    let budget = Duration::from_secs(18);
    let started = Instant::now();
    let mut rng = rand::thread_rng();
    let (mut rounds, mut last) = (0, 0);
    let mut grew = 0;
    let mut repaired = 0;
    while started.elapsed() < budget || rounds < 5 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::crash_tests::crash_child",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains(READY));
        assert!(ready, "child ended before its first transaction");
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..300)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "child was not killed: {status}");
        let db = open(&dir);
        assert!(
            db.raw().needs_repair(),
            "a killed store was taken as cleanly closed"
        );
        repaired += prepare(&db);
        let n = verify(&db);
        assert!(n >= last, "committed and flushed transfers were lost");
        grew += usize::from(n > last);
        last = n;
        rounds += 1;
    }
    // The test did test something: transfers landed in most rounds.
    assert!(
        last > 0 && grew * 2 >= rounds,
        "{grew} of {rounds} rounds made progress"
    );
    eprintln!("crash test: {rounds} rounds, {last} transfers, {repaired} index keys repaired");
}
