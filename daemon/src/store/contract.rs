//! The backend contract as plain functions, so that every [`RawStore`]
//! (sled, in-memory, a future PostgreSQL one) proves the same semantics.
//!
//! Test support, compiled into the library so other crates' backends can run
//! it: call [`raw_suite`] with a fresh store and [`db_suite`] with another
//! (or the same one: each check uses collections of its own). They panic
//! with a message on the first broken promise. Record types here are local
//! to the suite; nothing in it is business data.

use super::{Batch, Check, Db, Op, RawStore, Record, StoreError, StoreKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ops::Bound::{self, Excluded, Included, Unbounded};
use std::sync::{Arc, Barrier};

/// Runs every raw-level check on `s`.
pub fn raw_suite(s: &dyn RawStore) {
    basic_ops(s);
    range_scans(s);
    commit_checks(s);
    commit_under_contention(s);
    relaxed_commits(s);
}

/// Runs every check of the typed layer ([`Db`]) over `raw`: transactions,
/// counters, indexes and paged queries.
pub fn db_suite(raw: Arc<dyn RawStore>) {
    let db = Db::new(raw, StoreKey::random());
    transactions(&db);
    prepared_commits(&db);
    counters(&db);
    concurrent_dedupe(&db);
    indexes(&db);
    index_pages(&db);
}

/// Get, put, insert-if-absent, compare-and-swap, remove, prefix scans and
/// visits, flush.
pub fn basic_ops(s: &dyn RawStore) {
    assert_eq!(s.get("a", b"k").unwrap(), None);
    s.put("a", b"k", b"v1").unwrap();
    assert_eq!(s.get("a", b"k").unwrap().unwrap(), b"v1");
    // Collections are separate.
    assert_eq!(s.get("b", b"k").unwrap(), None);
    s.put("a", b"k", b"v2").unwrap();
    assert_eq!(s.get("a", b"k").unwrap().unwrap(), b"v2");

    assert!(s.insert_new("a", b"n", b"first").unwrap());
    assert!(!s.insert_new("a", b"n", b"second").unwrap());
    assert_eq!(s.get("a", b"n").unwrap().unwrap(), b"first");

    assert!(!s.compare_and_swap("a", b"k", Some(b"v1"), b"x").unwrap());
    assert!(!s.compare_and_swap("a", b"k", None, b"x").unwrap());
    assert_eq!(s.get("a", b"k").unwrap().unwrap(), b"v2");
    assert!(s.compare_and_swap("a", b"k", Some(b"v2"), b"v3").unwrap());
    assert_eq!(s.get("a", b"k").unwrap().unwrap(), b"v3");
    assert!(s.compare_and_swap("a", b"new", None, b"z").unwrap());
    assert_eq!(s.get("a", b"new").unwrap().unwrap(), b"z");

    assert!(!s.compare_and_remove("a", b"k", b"v2").unwrap());
    assert!(!s.compare_and_remove("a", b"absent", b"v2").unwrap());
    assert!(!s.compare_and_remove("none", b"k", b"v3").unwrap());
    assert_eq!(s.get("a", b"k").unwrap().unwrap(), b"v3");
    assert!(s.compare_and_remove("a", b"k", b"v3").unwrap());
    assert_eq!(s.get("a", b"k").unwrap(), None);

    assert!(s.remove("a", b"new").unwrap());
    assert!(!s.remove("a", b"new").unwrap());
    assert!(!s.remove("never", b"x").unwrap());

    for k in ["job/003", "job/001", "jo", "job/002", "jobs/1", "joc", "i"] {
        s.put("scan", k.as_bytes(), k.as_bytes()).unwrap();
    }
    let keys = |prefix: &[u8]| -> Vec<String> {
        s.scan_prefix("scan", prefix)
            .unwrap()
            .into_iter()
            .map(|(k, v)| {
                assert_eq!(k, v);
                String::from_utf8(k).unwrap()
            })
            .collect()
    };
    assert_eq!(keys(b"job/"), ["job/001", "job/002", "job/003"]);
    assert_eq!(keys(b"job"), ["job/001", "job/002", "job/003", "jobs/1"]);
    assert_eq!(
        keys(b""),
        ["i", "jo", "job/001", "job/002", "job/003", "jobs/1", "joc"]
    );
    assert!(keys(b"k").is_empty());
    assert!(s.scan_prefix("empty", b"").unwrap().is_empty());

    // visit_prefix: same order, stops when asked, passes errors through.
    let mut seen = Vec::new();
    s.visit_prefix("scan", b"job", &mut |k, v| {
        assert_eq!(k, v);
        seen.push(String::from_utf8(k.to_vec()).unwrap());
        Ok(seen.len() < 3)
    })
    .unwrap();
    assert_eq!(seen, ["job/001", "job/002", "job/003"]);
    let err = s
        .visit_prefix("scan", b"", &mut |_, _| {
            Err(StoreError::Backend("stop here".into()))
        })
        .unwrap_err();
    assert!(err.to_string().contains("stop here"));
    let mut count = 0;
    s.visit_prefix("empty", b"", &mut |_, _| {
        count += 1;
        Ok(true)
    })
    .unwrap();
    assert_eq!(count, 0);
    s.flush().unwrap();
}

fn keys_of(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<String> {
    entries
        .into_iter()
        .map(|(k, _)| String::from_utf8(k).expect("test keys are text"))
        .collect()
}

/// Ordered range scans: every kind of bound, forward and reverse, limits,
/// empty and inverted ranges, streaming visits that stop when asked.
pub fn range_scans(s: &dyn RawStore) {
    const C: &str = "contract_range";
    for k in ["b", "a", "d", "c", "e", "ca", "f"] {
        s.put(C, k.as_bytes(), b"").unwrap();
    }
    let r = |start: Bound<&[u8]>, end: Bound<&[u8]>, limit, reverse| {
        keys_of(s.range(C, start, end, limit, reverse).unwrap())
    };
    assert_eq!(
        r(Unbounded, Unbounded, None, false),
        ["a", "b", "c", "ca", "d", "e", "f"]
    );
    assert_eq!(
        r(Unbounded, Unbounded, None, true),
        ["f", "e", "d", "ca", "c", "b", "a"]
    );
    assert_eq!(
        r(Included(b"c"), Excluded(b"e"), None, false),
        ["c", "ca", "d"]
    );
    assert_eq!(
        r(Excluded(b"c"), Included(b"e"), None, false),
        ["ca", "d", "e"]
    );
    assert_eq!(
        r(Excluded(b"c"), Included(b"e"), None, true),
        ["e", "d", "ca"]
    );
    assert_eq!(r(Included(b"bb"), Unbounded, Some(2), false), ["c", "ca"]);
    // A limit takes from the end the scan starts at.
    assert_eq!(r(Unbounded, Excluded(b"d"), Some(2), true), ["ca", "c"]);
    assert_eq!(
        r(Unbounded, Unbounded, Some(0), false),
        Vec::<String>::new()
    );
    assert_eq!(r(Unbounded, Unbounded, Some(100), false).len(), 7);
    // Paging with the last key as an excluded bound visits each key once.
    let mut paged = Vec::new();
    let mut from: Option<Vec<u8>> = None;
    loop {
        let start = from.as_deref().map_or(Unbounded, Excluded);
        let page = s.range(C, start, Unbounded, Some(3), false).unwrap();
        if page.is_empty() {
            break;
        }
        from = page.last().map(|(k, _)| k.clone());
        paged.extend(keys_of(page));
    }
    assert_eq!(paged, ["a", "b", "c", "ca", "d", "e", "f"]);
    // Empty, inverted, and missing collections give nothing.
    assert!(r(Included(b"d"), Excluded(b"d"), None, false).is_empty());
    assert!(r(Excluded(b"d"), Included(b"d"), None, false).is_empty());
    assert!(r(Included(b"e"), Included(b"b"), None, true).is_empty());
    assert_eq!(r(Included(b"d"), Included(b"d"), None, false), ["d"]);
    assert!(
        s.range("contract_none", Unbounded, Unbounded, None, false)
            .unwrap()
            .is_empty()
    );
    // Visits, both ways, stopping early.
    for (reverse, want) in [(false, ["c", "ca"]), (true, ["f", "e"])] {
        let mut seen = Vec::new();
        s.visit_range(C, Included(b"c"), Unbounded, reverse, &mut |k, _| {
            seen.push(String::from_utf8(k.to_vec()).unwrap());
            Ok(seen.len() < 2)
        })
        .unwrap();
        assert_eq!(seen, want, "visit_range reverse={reverse}");
    }
    let mut none = 0;
    s.visit_range(C, Included(b"z"), Included(b"a"), false, &mut |_, _| {
        none += 1;
        Ok(true)
    })
    .unwrap();
    assert_eq!(none, 0);
}

fn put_op(c: &str, k: &str, v: &str) -> Op {
    Op::Put {
        collection: c.to_owned(),
        key: k.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
    }
}

fn check(c: &str, k: &str, v: Option<&str>) -> Check {
    Check {
        collection: c.to_owned(),
        key: k.as_bytes().to_vec(),
        expected: v.map(|v| v.as_bytes().to_vec()),
    }
}

/// `commit`: all checks hold and all ops apply (across collections, in
/// order), or nothing changes.
pub fn commit_checks(s: &dyn RawStore) {
    const A: &str = "contract_commit_a";
    const B: &str = "contract_commit_b";
    let get = |c: &str, k: &str| {
        s.get(c, k.as_bytes())
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    };
    assert!(s.commit(&Batch::default()).unwrap());
    // Checks of absence, ops in two collections.
    let first = Batch {
        checks: vec![check(A, "x", None), check(B, "y", None)],
        ops: vec![
            put_op(A, "x", "1"),
            put_op(B, "y", "1"),
            put_op(A, "z", "0"),
        ],
    };
    assert!(s.commit(&first).unwrap());
    assert_eq!(get(A, "x").as_deref(), Some("1"));
    assert_eq!(get(B, "y").as_deref(), Some("1"));
    // The same batch again fails its absence checks and changes nothing.
    assert!(
        !s.commit(&Batch {
            ops: vec![put_op(A, "x", "2"), put_op(B, "new", "2")],
            ..first.clone()
        })
        .unwrap()
    );
    assert_eq!(get(A, "x").as_deref(), Some("1"));
    assert_eq!(get(B, "new"), None);
    // One stale check among good ones: nothing at all is written.
    let stale = Batch {
        checks: vec![check(A, "x", Some("1")), check(B, "y", Some("old"))],
        ops: vec![
            put_op(A, "x", "3"),
            Op::Remove {
                collection: A.to_owned(),
                key: b"z".to_vec(),
            },
        ],
    };
    assert!(!s.commit(&stale).unwrap());
    assert_eq!(get(A, "x").as_deref(), Some("1"));
    assert_eq!(get(A, "z").as_deref(), Some("0"));
    // Good checks: puts and removes apply, in order (a put then a remove of
    // one key leaves it removed; a remove of an absent key is no error).
    let good = Batch {
        checks: vec![check(A, "x", Some("1")), check(B, "y", Some("1"))],
        ops: vec![
            put_op(A, "x", "4"),
            put_op(B, "gone", "4"),
            Op::Remove {
                collection: B.to_owned(),
                key: b"gone".to_vec(),
            },
            Op::Remove {
                collection: A.to_owned(),
                key: b"z".to_vec(),
            },
            Op::Remove {
                collection: "contract_commit_none".to_owned(),
                key: b"q".to_vec(),
            },
        ],
    };
    assert!(s.commit(&good).unwrap());
    assert_eq!(get(A, "x").as_deref(), Some("4"));
    assert_eq!(get(B, "gone"), None);
    assert_eq!(get(A, "z"), None);
    // A check-only batch answers whether the values are still there.
    assert!(
        s.commit(&Batch {
            checks: vec![check(A, "x", Some("4"))],
            ops: vec![],
        })
        .unwrap()
    );
    assert!(
        !s.commit(&Batch {
            checks: vec![check(A, "x", Some("1"))],
            ops: vec![],
        })
        .unwrap()
    );
    // A commit checks against single-key writes too.
    s.put(A, b"x", b"5").unwrap();
    assert!(
        !s.commit(&Batch {
            checks: vec![check(A, "x", Some("4"))],
            ops: vec![put_op(A, "x", "6")],
        })
        .unwrap()
    );
    assert_eq!(get(A, "x").as_deref(), Some("5"));
}

/// Threads moving units between two keys in two collections with
/// read-check-commit loops: no update is lost and the sum never changes.
pub fn commit_under_contention(s: &dyn RawStore) {
    const A: &str = "contract_transfer_a";
    const B: &str = "contract_transfer_b";
    const THREADS: usize = 8;
    const EACH: u64 = 50;
    let num = |v: Option<Vec<u8>>| -> u64 {
        String::from_utf8(v.expect("present"))
            .unwrap()
            .parse()
            .unwrap()
    };
    s.put(A, b"acct", b"1000").unwrap();
    s.put(B, b"acct", b"0").unwrap();
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                barrier.wait();
                for _ in 0..EACH {
                    loop {
                        let a = s.get(A, b"acct").unwrap();
                        let b = s.get(B, b"acct").unwrap();
                        let (na, nb) = (num(a.clone()), num(b.clone()));
                        let batch = Batch {
                            checks: vec![
                                Check {
                                    collection: A.to_owned(),
                                    key: b"acct".to_vec(),
                                    expected: a,
                                },
                                Check {
                                    collection: B.to_owned(),
                                    key: b"acct".to_vec(),
                                    expected: b,
                                },
                            ],
                            ops: vec![
                                put_op(A, "acct", &(na - 1).to_string()),
                                put_op(B, "acct", &(nb + 1).to_string()),
                            ],
                        };
                        if s.commit(&batch).unwrap() {
                            break;
                        }
                        std::thread::yield_now();
                    }
                }
            });
        }
    });
    let moved = THREADS as u64 * EACH;
    assert_eq!(num(s.get(A, b"acct").unwrap()), 1000 - moved);
    assert_eq!(num(s.get(B, b"acct").unwrap()), moved);
}

/// `commit_relaxed`: without a crash it behaves as `commit` (checks hold
/// or nothing is written; ops apply in order), and relaxed and atomic
/// commits racing on the same keys lose no update.
pub fn relaxed_commits(s: &dyn RawStore) {
    const A: &str = "contract_relaxed_a";
    const B: &str = "contract_relaxed_b";
    let get = |c: &str, k: &str| {
        s.get(c, k.as_bytes())
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    };
    let first = Batch {
        checks: vec![check(B, "rev", None)],
        ops: vec![
            put_op(B, "entry-1", ""),
            put_op(B, "rev", "1"),
            put_op(A, "rec", "one"),
        ],
    };
    assert!(s.commit_relaxed(&first).unwrap());
    assert_eq!(get(A, "rec").as_deref(), Some("one"));
    assert_eq!(get(B, "rev").as_deref(), Some("1"));
    // A stale check: nothing is written.
    assert!(!s.commit_relaxed(&first).unwrap());
    assert_eq!(get(B, "entry-1").as_deref(), Some(""));
    let second = Batch {
        checks: vec![check(B, "rev", Some("1"))],
        ops: vec![
            Op::Remove {
                collection: B.to_owned(),
                key: b"entry-1".to_vec(),
            },
            put_op(B, "entry-2", ""),
            put_op(B, "rev", "2"),
            put_op(A, "rec", "two"),
        ],
    };
    assert!(s.commit_relaxed(&second).unwrap());
    assert_eq!(get(B, "entry-1"), None);
    assert_eq!(get(B, "entry-2").as_deref(), Some(""));
    assert_eq!(get(A, "rec").as_deref(), Some("two"));

    // Read-check-commit loops on one counter: a third of the threads
    // relaxed, a third atomic, a third reading inside `commit_relaxed_with`.
    const THREADS: usize = 8;
    const EACH: u64 = 40;
    s.put(A, b"count", b"0").unwrap();
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                let mut increment = || {
                    let seen = s.get(A, b"count")?;
                    let n: u64 = String::from_utf8(seen.clone().expect("present"))
                        .unwrap()
                        .parse()
                        .unwrap();
                    Ok(Batch {
                        checks: vec![Check {
                            collection: A.to_owned(),
                            key: b"count".to_vec(),
                            expected: seen,
                        }],
                        ops: vec![put_op(A, "count", &(n + 1).to_string())],
                    })
                };
                for _ in 0..EACH {
                    loop {
                        let done = match t % 3 {
                            0 => s.commit_relaxed(&increment().unwrap()).unwrap(),
                            1 => s.commit(&increment().unwrap()).unwrap(),
                            _ => s.commit_relaxed_with(&mut increment).unwrap(),
                        };
                        if done {
                            break;
                        }
                        std::thread::yield_now();
                    }
                }
            });
        }
    });
    assert_eq!(
        get(A, "count").as_deref(),
        Some((THREADS as u64 * EACH).to_string().as_str())
    );
}

/// An unindexed record local to the suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Note {
    id: String,
    n: i64,
}

impl Record for Note {
    const COLLECTION: &'static str = "contract_notes";
    const SCHEMA_VERSION: u32 = 1;
    fn key(&self) -> String {
        self.id.clone()
    }
}

fn note(id: &str, n: i64) -> Note {
    Note { id: id.into(), n }
}

/// An error type of a caller's own, to show `transact` passes it through.
#[derive(Debug)]
enum CallerError {
    Store(StoreError),
    Refused,
}

impl From<StoreError> for CallerError {
    fn from(e: StoreError) -> Self {
        CallerError::Store(e)
    }
}

/// Transactions: several records change together or not at all, a
/// closure's error commits nothing, reads see the transaction's own writes,
/// a conflicting writer makes the closure run again.
pub fn transactions(db: &Db) {
    db.put(&note("t/a", 100)).unwrap();
    db.put(&note("t/b", 0)).unwrap();
    // Two records and a new one, atomically.
    let moved = db
        .transact(|tx| {
            let mut a: Note = tx.get("t/a")?.expect("a");
            let mut b: Note = tx.get("t/b")?.expect("b");
            a.n -= 30;
            b.n += 30;
            tx.put(&a)?;
            tx.put(&b)?;
            assert!(tx.insert_new(&note("t/log1", 30))?);
            // Own writes are visible, and insert_new sees them.
            assert_eq!(tx.get::<Note>("t/a")?.expect("a").n, 70);
            assert!(!tx.insert_new(&note("t/log1", 99))?);
            Ok::<_, StoreError>(30)
        })
        .unwrap();
    assert_eq!(moved, 30);
    assert_eq!(db.get::<Note>("t/a").unwrap().unwrap().n, 70);
    assert_eq!(db.get::<Note>("t/b").unwrap().unwrap().n, 30);
    assert_eq!(db.get::<Note>("t/log1").unwrap().unwrap().n, 30);

    // The closure's own error: nothing written, error returned as it is.
    let err = db
        .transact(|tx| {
            tx.put(&note("t/a", 0))?;
            tx.put(&note("t/never", 1))?;
            Err::<(), _>(CallerError::Refused)
        })
        .unwrap_err();
    assert!(matches!(err, CallerError::Refused), "{err:?}");
    assert_eq!(db.get::<Note>("t/a").unwrap().unwrap().n, 70);
    assert_eq!(db.get::<Note>("t/never").unwrap(), None);
    let ok: Result<(), CallerError> = db.transact(|tx| {
        tx.get::<Note>("t/a")?;
        Ok(())
    });
    assert!(ok.is_ok());

    // Remove inside a transaction; removing what is absent says so.
    db.transact(|tx| {
        assert!(tx.remove::<Note>("t/log1")?);
        assert!(!tx.remove::<Note>("t/log1")?);
        assert!(!tx.contains::<Note>("t/log1")?);
        assert!(!tx.remove::<Note>("t/absent")?);
        Ok::<_, StoreError>(())
    })
    .unwrap();
    assert_eq!(db.get::<Note>("t/log1").unwrap(), None);

    // A writer between the read and the commit: the closure runs again and
    // its second run sees the other write, which is not lost.
    let mut runs = 0;
    db.transact(|tx| {
        runs += 1;
        let a: Note = tx.get("t/a")?.expect("a");
        if runs == 1 {
            db.put(&note("t/a", a.n + 1000))?;
        }
        tx.put(&note("t/a", a.n + 1))?;
        Ok::<_, StoreError>(())
    })
    .unwrap();
    assert_eq!(runs, 2);
    assert_eq!(db.get::<Note>("t/a").unwrap().unwrap().n, 1071);

    // A writer that always gets in between: bounded, then Conflict, and the
    // transaction's own write never lands.
    let err = db
        .transact(|tx| {
            let a: Note = tx.get("t/a")?.expect("a");
            db.put(&note("t/a", a.n + 1))?;
            tx.put(&note("t/b", -1))?;
            Ok::<_, CallerError>(())
        })
        .unwrap_err();
    assert!(
        matches!(err, CallerError::Store(StoreError::Conflict { attempts }) if attempts == super::txn::MAX_ATTEMPTS),
        "{err:?}"
    );
    assert_eq!(db.get::<Note>("t/b").unwrap().unwrap().n, 30);

    // Blind writes do not conflict with one another: the last one wins.
    db.transact(|tx| {
        db.put(&note("t/blind", 1))?;
        tx.put(&note("t/blind", 2))
    })
    .unwrap();
    assert_eq!(db.get::<Note>("t/blind").unwrap().unwrap().n, 2);

    // The single-record operations keep their meaning.
    assert!(db.insert_new(&note("t/one", 1)).unwrap());
    assert!(!db.insert_new(&note("t/one", 2)).unwrap());
    let got = db
        .update::<Note, _>("t/one", |n| n.map(|n| note(&n.id, n.n + 1)))
        .unwrap();
    assert_eq!(got, Some(note("t/one", 2)));
    assert_eq!(
        db.modify::<Note, _>("t/one", |n| n.n *= 10).unwrap(),
        Some(note("t/one", 20))
    );
    assert!(db.remove::<Note>("t/one").unwrap());
    assert!(!db.remove::<Note>("t/one").unwrap());
}

/// Counters: 1, 2, 3 per name, names independent, values taken only when
/// the transaction commits, and unique and gapless across threads.
pub fn counters(db: &Db) {
    assert_eq!(db.next_counter("contract/a").unwrap(), 1);
    assert_eq!(db.next_counter("contract/a").unwrap(), 2);
    assert_eq!(db.next_counter("contract/b").unwrap(), 1);
    let pair = db
        .transact(|tx| {
            Ok::<_, StoreError>((
                tx.next_counter("contract/a")?,
                tx.next_counter("contract/a")?,
            ))
        })
        .unwrap();
    assert_eq!(pair, (3, 4));
    // A transaction that fails takes no value.
    let _ = db.transact(|tx| {
        tx.next_counter("contract/a")?;
        Err::<(), _>(CallerError::Refused)
    });
    assert_eq!(db.next_counter("contract/a").unwrap(), 5);

    const THREADS: usize = 8;
    const EACH: usize = 40;
    let barrier = Barrier::new(THREADS);
    let all: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    (0..EACH)
                        .map(|_| db.next_counter("contract/shared").unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    let n = (THREADS * EACH) as u64;
    assert_eq!(
        unique.len() as u64,
        n,
        "a counter value was handed out twice"
    );
    assert_eq!(unique, (1..=n).collect::<BTreeSet<_>>());
}

/// An indexed record local to the suite: by state, by due time, and by
/// every tag (several entries in one index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Item {
    id: String,
    state: String,
    due: String,
    tags: Vec<String>,
}

impl Record for Item {
    const COLLECTION: &'static str = "contract_items";
    const SCHEMA_VERSION: u32 = 1;
    const INDEXES: &'static [&'static str] = &["state", "due", "tag"];
    fn key(&self) -> String {
        self.id.clone()
    }
    fn index_keys(&self) -> Vec<(&'static str, String)> {
        let mut keys = vec![
            ("state", self.state.clone()),
            ("due", format!("{}/{}", self.state, self.due)),
        ];
        keys.extend(self.tags.iter().map(|t| ("tag", t.clone())));
        keys
    }
}

fn item(id: &str, state: &str, due: &str, tags: &[&str]) -> Item {
    Item {
        id: id.into(),
        state: state.into(),
        due: due.into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    }
}

fn ids(page: &super::Page<Item>) -> Vec<&str> {
    page.items.iter().map(|i| i.id.as_str()).collect()
}

/// The record keys of an index range, unpaged.
fn by(db: &Db, index: &str, start: Bound<&str>, end: Bound<&str>) -> Vec<String> {
    db.index_range_keys::<Item>(index, start, end, None, false)
        .unwrap()
        .items
}

/// Prepared transactions: nothing is written until the commit; a commit
/// applies records and index entries together; one whose reads changed in
/// between (a record, an absent key now present, a counter) writes nothing
/// and says so; one that neither read nor wrote commits trivially.
pub fn prepared_commits(db: &Db) {
    let (n, first) = db
        .prepare(|tx| {
            tx.upsert(&item("prep/a", "open", "2026-02-01", &["x"]))?;
            tx.put(&note("prep/n", 1))?;
            Ok::<_, StoreError>(7)
        })
        .unwrap();
    assert_eq!(n, 7);
    assert!(first.writes() >= 3, "{first:?}");
    assert_eq!(
        db.get::<Item>("prep/a").unwrap(),
        None,
        "staged, not written"
    );
    // A second unit prepared before the first commits, reading what the
    // first writes: its commit must fail once the first has committed.
    let (_, second) = db
        .prepare(|tx| {
            assert_eq!(tx.get::<Item>("prep/a")?, None);
            tx.put(&item("prep/a", "closed", "2026-02-02", &[]))?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let (_, counter) = db
        .prepare(|tx| {
            let v = tx.next_counter("contract/prepared")?;
            tx.put(&note("prep/c", v as i64))?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert!(db.commit_prepared(&first).unwrap());
    assert_eq!(db.get::<Item>("prep/a").unwrap().unwrap().state, "open");
    assert_eq!(
        by(db, "tag", Bound::Included("x"), Bound::Included("x")),
        ["prep/a"]
    );
    assert!(!db.commit_prepared(&second).unwrap(), "its read is stale");
    assert_eq!(db.get::<Item>("prep/a").unwrap().unwrap().state, "open");
    // The counter moves under the prepared counter unit: it conflicts.
    assert_eq!(db.next_counter("contract/prepared").unwrap(), 1);
    assert!(!db.commit_prepared(&counter).unwrap());
    assert_eq!(db.get::<Note>("prep/c").unwrap(), None);
    // Redone, the second unit commits, and the index follows it.
    let (_, again) = db
        .prepare(|tx| {
            assert!(tx.get::<Item>("prep/a")?.is_some());
            tx.put(&item("prep/a", "closed", "2026-02-02", &[]))?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert!(db.commit_prepared(&again).unwrap());
    assert!(by(db, "tag", Bound::Included("x"), Bound::Included("x")).is_empty());
    assert_eq!(
        by(
            db,
            "state",
            Bound::Included("closed"),
            Bound::Included("closed")
        ),
        ["prep/a"]
    );
    let (_, empty) = db.prepare(|_| Ok::<_, StoreError>(())).unwrap();
    assert_eq!(empty.writes(), 0);
    assert!(db.commit_prepared(&empty).unwrap());
    // The closure's error: nothing staged, the error returned.
    assert!(
        db.prepare(|tx| {
            tx.put(&note("prep/never", 1))?;
            Err::<(), _>(CallerError::Refused)
        })
        .is_err()
    );
    assert_eq!(db.get::<Note>("prep/never").unwrap(), None);
    // Leave the later checks an empty index.
    db.transact(|tx| tx.remove::<Item>("prep/a")).unwrap();
    assert!(by(db, "state", Bound::Unbounded, Bound::Unbounded).is_empty());
}

/// A dedupe-keyed raise: of 16 threads raising with one key, exactly one
/// creates the record (dedupe marker, counter and record in one
/// transaction), and the counter moved exactly once.
pub fn concurrent_dedupe(db: &Db) {
    const THREADS: usize = 16;
    let barrier = Barrier::new(THREADS);
    let raise = |who: usize| -> Option<u64> {
        db.transact(|tx| {
            if !tx.insert_new(&note("dedupe/payer-down", who as i64))? {
                return Ok::<_, StoreError>(None);
            }
            let n = tx.next_counter("contract/raised")?;
            tx.put(&item(&format!("raised/{n:06}"), "open", "2026-01-01", &[]))?;
            Ok(Some(n))
        })
        .unwrap()
    };
    let created: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (barrier, raise) = (&barrier, &raise);
                scope.spawn(move || {
                    barrier.wait();
                    raise(t)
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(created, [1], "raises that created a record");
    let raised = db
        .range::<Item>(Included("raised/"), Excluded("raised0"), None, false)
        .unwrap();
    assert_eq!(ids(&raised), ["raised/000001"]);
    assert_eq!(db.next_counter("contract/raised").unwrap(), 2);
    assert!(db.check_indexes::<Item>().unwrap().is_consistent());
    assert!(db.remove::<Item>("raised/000001").unwrap());
}

/// Indexes follow puts, updates, removals and transactions; queries by
/// value, by prefix, in reverse; the checker finds planted disagreements.
pub fn indexes(db: &Db) {
    db.put(&item("i1", "open", "2026-03-01", &["x"])).unwrap();
    db.put(&item("i2", "open", "2026-03-05", &["x", "y"]))
        .unwrap();
    db.put(&item("i3", "done", "2026-02-01", &[])).unwrap();
    assert!(
        db.insert_new(&item("i4", "open", "2026-03-03", &[]))
            .unwrap()
    );
    assert!(
        !db.insert_new(&item("i4", "done", "2026-01-01", &[]))
            .unwrap()
    );
    assert_eq!(
        by(db, "state", Included("open"), Included("open")),
        ["i1", "i2", "i4"]
    );
    assert_eq!(by(db, "tag", Included("x"), Included("x")), ["i1", "i2"]);
    // A composite key: open items due before 2026-03-04, by due time.
    assert_eq!(
        by(db, "due", Included("open/"), Excluded("open/2026-03-04")),
        ["i1", "i4"]
    );
    let rev = db
        .index_range::<Item>("due", Included("open/"), Excluded("open0"), None, true)
        .unwrap();
    assert_eq!(ids(&rev), ["i2", "i4", "i1"]);
    // A state value that is a prefix of another is not confused with it.
    db.put(&item("i5", "opened", "2026-03-09", &[])).unwrap();
    assert_eq!(
        by(db, "state", Included("open"), Included("open")),
        ["i1", "i2", "i4"]
    );
    assert_eq!(by(db, "state", Excluded("open"), Unbounded), ["i5"]);
    assert_eq!(by(db, "state", Unbounded, Excluded("open")), ["i3"]);

    // Update moves the entries; the old ones go.
    db.modify::<Item, _>("i1", |i| {
        i.state = "done".into();
        i.tags.clear();
    })
    .unwrap();
    assert_eq!(
        by(db, "state", Included("open"), Included("open")),
        ["i2", "i4"]
    );
    assert_eq!(
        by(db, "state", Included("done"), Included("done")),
        ["i1", "i3"]
    );
    assert_eq!(by(db, "tag", Unbounded, Unbounded), ["i2", "i2"]);
    // Removal drops them.
    assert!(db.remove::<Item>("i2").unwrap());
    assert!(by(db, "tag", Unbounded, Unbounded).is_empty());
    // In a transaction, with a record put then changed then removed.
    db.transact(|tx| {
        tx.put(&item("i6", "open", "2026-04-01", &["z"]))?;
        tx.put(&item("i6", "held", "2026-04-02", &["z"]))?;
        tx.put(&item("i7", "open", "2026-04-03", &[]))?;
        tx.remove::<Item>("i7")?;
        Ok::<_, StoreError>(())
    })
    .unwrap();
    assert_eq!(by(db, "state", Included("held"), Included("held")), ["i6"]);
    assert_eq!(by(db, "tag", Included("z"), Included("z")), ["i6"]);
    assert!(!by(db, "state", Included("open"), Included("open")).contains(&"i7".to_owned()));
    // A closure that fails leaves the index alone.
    let _ = db.transact(|tx| {
        tx.put(&item("i8", "open", "2026-04-04", &[]))?;
        Err::<(), _>(CallerError::Refused)
    });
    assert!(!by(db, "state", Unbounded, Unbounded).contains(&"i8".to_owned()));
    // A record the transaction read as absent: its entries go in without
    // its reverse entry being read, and later changes still move them.
    db.transact(|tx| {
        assert!(tx.get::<Item>("i9")?.is_none());
        tx.put(&item("i9", "open", "2026-05-01", &["w"]))?;
        assert!(tx.get::<Item>("i10")?.is_none());
        tx.put(&item("i10", "open", "2026-05-02", &["w"]))?;
        tx.remove::<Item>("i10")?;
        Ok::<_, StoreError>(())
    })
    .unwrap();
    assert_eq!(by(db, "tag", Included("w"), Included("w")), ["i9"]);
    db.modify::<Item, _>("i9", |i| i.tags = vec!["v".into()])
        .unwrap();
    assert_eq!(by(db, "tag", Included("v"), Included("v")), ["i9"]);
    assert!(by(db, "tag", Included("w"), Included("w")).is_empty());
    assert!(db.remove::<Item>("i9").unwrap());
    assert!(by(db, "tag", Included("v"), Included("v")).is_empty());
    // Batched removal by keys.
    assert_eq!(
        db.remove_keys::<Item>(&["i5".into(), "i6".into(), "nope".into()])
            .unwrap(),
        2
    );
    let report = db.check_indexes::<Item>().unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
    assert_eq!(report.records, 3);
    assert_eq!(report.entries, 6);

    // A change that keeps every index key writes the record alone; one
    // that moves a key writes its entries too.
    db.put(&item("i11", "open", "2026-06-01", &["x", "y"]))
        .unwrap();
    let rewrite = |tags: &[&str], state: &str| {
        let next = item("i11", state, "2026-06-01", tags);
        db.prepare(|tx| {
            assert!(tx.get::<Item>("i11")?.is_some());
            tx.put(&next)
        })
        .unwrap()
        .1
    };
    let same_keys = rewrite(&["y", "x"], "open");
    assert_eq!(same_keys.writes(), 1);
    assert!(db.commit_prepared(&same_keys).unwrap());
    assert_eq!(db.get::<Item>("i11").unwrap().unwrap().tags, ["y", "x"]);
    assert!(rewrite(&["y", "x"], "done").writes() > 1);
    assert_eq!(by(db, "tag", Included("y"), Included("y")), ["i11"]);
    assert!(db.check_indexes::<Item>().unwrap().is_consistent());
    assert!(db.remove::<Item>("i11").unwrap());

    // Undeclared indexes are refused, in writes and queries.
    #[derive(Debug, Serialize, Deserialize)]
    struct Wrong {
        id: String,
    }
    impl Record for Wrong {
        const COLLECTION: &'static str = "contract_wrong";
        const SCHEMA_VERSION: u32 = 1;
        const INDEXES: &'static [&'static str] = &["a"];
        fn key(&self) -> String {
            self.id.clone()
        }
        fn index_keys(&self) -> Vec<(&'static str, String)> {
            vec![("b", "1".into())]
        }
    }
    let err = db.put(&Wrong { id: "w".into() }).unwrap_err();
    assert!(matches!(err, StoreError::InvalidIndex { .. }), "{err:?}");
    assert!(err.to_string().contains("`b`"), "{err}");
    assert_eq!(db.get::<Wrong>("w").unwrap().map(|w| w.id), None);
    let bad_value = item("i9", "o\0pen", "d", &[]);
    assert!(matches!(
        db.put(&bad_value),
        Err(StoreError::InvalidIndex { .. })
    ));
    assert!(matches!(
        db.index_range::<Item>("nope", Unbounded, Unbounded, None, false),
        Err(StoreError::InvalidIndex { .. })
    ));

    // The checker sees planted faults: a lost entry, a stray entry, a
    // record written behind the index's back.
    let icoll = super::index::index_collection(Item::COLLECTION);
    let entry = |index: &str, value: &str, key: &str| {
        let mut k = vec![b'e'];
        k.extend_from_slice(index.as_bytes());
        k.push(0);
        k.extend_from_slice(value.as_bytes());
        k.push(0);
        k.extend_from_slice(key.as_bytes());
        k
    };
    assert!(
        db.raw()
            .remove(&icoll, &entry("state", "open", "i4"))
            .unwrap()
    );
    db.raw()
        .put(&icoll, &entry("state", "open", "ghost"), b"")
        .unwrap();
    let sealed = db.raw().get(Item::COLLECTION, b"i3").unwrap().unwrap();
    db.raw().remove(Item::COLLECTION, b"i3").unwrap();
    let report = db.check_indexes::<Item>().unwrap();
    let problems = report.problems.join("\n");
    assert!(
        problems.contains("missing index entry of index `state` for record i4"),
        "{problems}"
    );
    assert!(
        problems.contains("stray index entry of index `state` for record ghost"),
        "{problems}"
    );
    assert!(
        problems.contains("reverse entry for record i3 which does not exist"),
        "{problems}"
    );
    // Repaired, it agrees again.
    db.raw()
        .put(&icoll, &entry("state", "open", "i4"), b"")
        .unwrap();
    db.raw()
        .remove(&icoll, &entry("state", "open", "ghost"))
        .unwrap();
    db.raw().put(Item::COLLECTION, b"i3", &sealed).unwrap();
    assert!(db.check_indexes::<Item>().unwrap().is_consistent());
}

/// Paged index queries: pages of a limit, cursors that resume exactly,
/// both directions, and decoding only what is returned.
pub fn index_pages(db: &Db) {
    for i in 0..25 {
        let state = if i % 5 == 0 { "due" } else { "idle" };
        db.put(&item(
            &format!("p{i:03}"),
            state,
            &format!("2026-05-{:02}", 1 + i % 7),
            &[],
        ))
        .unwrap();
    }
    for reverse in [false, true] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let (start, end) = match (reverse, cursor.as_deref()) {
                (false, None) => (Included("idle/"), Excluded("idle0")),
                (false, Some(c)) => (Excluded(c), Excluded("idle0")),
                (true, None) => (Included("idle/"), Excluded("idle0")),
                (true, Some(c)) => (Included("idle/"), Excluded(c)),
            };
            let before = db.decode_count();
            let page = db
                .index_range::<Item>("due", start, end, Some(6), reverse)
                .unwrap();
            assert_eq!(db.decode_count() - before, page.items.len() as u64);
            assert!(page.items.len() <= 6);
            pages += 1;
            seen.extend(page.items.iter().map(|i| (i.due.clone(), i.id.clone())));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 20, "reverse={reverse}");
        assert_eq!(pages, 4, "20 items in pages of 6");
        let mut sorted = seen.clone();
        sorted.sort();
        if reverse {
            sorted.reverse();
        }
        assert_eq!(seen, sorted, "index order, reverse={reverse}");
    }
    // Record pages by key.
    let page = db
        .range::<Item>(Included("p"), Excluded("q"), Some(10), false)
        .unwrap();
    assert_eq!(page.items.len(), 10);
    assert_eq!(page.next.as_deref(), Some("p009"));
    let rest = db
        .range::<Item>(Excluded("p009"), Excluded("q"), Some(100), false)
        .unwrap();
    assert_eq!(rest.items.len(), 15);
    assert_eq!(rest.next, None);
    let last = db
        .range::<Item>(Included("p"), Excluded("q"), Some(1), true)
        .unwrap();
    assert_eq!(ids(&last), ["p024"]);
    // Keys only: nothing decoded.
    let before = db.decode_count();
    let keys = db
        .index_range_keys::<Item>("state", Included("due"), Included("due"), Some(3), false)
        .unwrap();
    assert_eq!(keys.items, ["p000", "p005", "p010"]);
    assert!(keys.next.is_some());
    assert_eq!(db.decode_count(), before);
}
