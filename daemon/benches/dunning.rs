//! A dunning run over 100,000 accounts, in two parts, on the encrypted
//! sled store in a temp dir and a real SMTP server (aiosmtpd, the test
//! suite's sink, on 127.0.0.1):
//!
//! - decide and enqueue: the owing accounts from the accounts-by-age index
//!   ([`owing_accounts`]), then each decided and its notice rendered and
//!   recorded with its outbox message ([`DunningJob::prepare`]), one flush
//!   per batch of 100 as the job does. Prints accounts per second.
//! - send: billd's mailer sending every notice the way a run does (batches
//!   of 100 through [`send_all`], four batches at once, the job's default
//!   concurrency; each outcome recorded and the batch flushed), beside a
//!   plain lettre client ([`AsyncSmtpTransport`] with the same pool size)
//!   sending the same messages (same From, To, Subject, headers, body) to
//!   the same server in the same run, at most the pool size at once.
//!   Prints messages per second for each and billd's ratio to lettre.
//!
//! Every account owes 25.00 since today and has an address, so each is due
//! its statement: the bench checks one notice per account was queued, that
//! every one sent was recorded sent, and that the server received both
//! rounds.
//!
//! Both clients send the first `BILLD_BENCH_SENDS` of the queued notices
//! (default 10,000): over loopback each pooled lettre connection manages
//! about 25 messages a second (lettre writes a message's body and its final
//! `.` separately without TCP_NODELAY, so each message waits out a delayed
//! ACK), and 100,000 would take over 15 minutes per client.
//!
//! Run: `cargo bench -p billd --bench dunning` (release build; needs
//! `.venv` with aiosmtpd, which `scripts/test` creates). Set
//! `BILLD_BENCH_ACCOUNTS` to change the count (`cargo test --benches` runs
//! 200, sending all).

/// The allocator of the `billd` binary, so the figures are the daemon's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use billd::clock::SystemClock;
use billd::domain::account::{Account, LedgerEntry, LedgerKind};
use billd::domain::practice::Practice;
use billd::domain::{Patient, PersonName, Sex};
use billd::jobs::dunning::{DunningJob, DunningParams, owing_accounts, send_all};
use billd::jobs::registry::{JobSetup, Services};
use billd::notify::mail::Mailer;
use billd::notify::settings::{MailConfig, MailTransport, SmtpTls};
use billd::notify::{OutboxMessage, OutboxStatus};
use billd::plugin::TracingAudit;
use billd::store::{Db, SledStore, StoreError, StoreKey};
use chrono::{DateTime, NaiveDate, Utc};
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The job's default batch and concurrency, and the default SMTP pool.
const BATCH: usize = 100;
const CONCURRENCY: usize = 4;
const POOL: u32 = 4;
const FROM: &str = "Riverside Billing <billing@example.org>";

/// The aiosmtpd sink of the end-to-end tests; killed on drop.
struct Sink {
    child: Child,
    port: u16,
    spool: PathBuf,
}

impl Sink {
    fn start(spool: PathBuf) -> Sink {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("daemon/ sits in the workspace")
            .to_path_buf();
        let python = root.join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/test (it creates .venv with aiosmtpd)",
            python.display()
        );
        let mut child = Command::new(python)
            .arg(root.join("tests/support/smtp_sink.py"))
            .arg(&spool)
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the aiosmtpd sink");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("reading the sink's port");
        let port = line.trim().parse().expect("the sink prints its port");
        Sink { child, port, spool }
    }

    /// Messages accepted so far.
    fn received(&self) -> usize {
        std::fs::read_to_string(&self.spool)
            .unwrap_or_default()
            .matches('\n')
            .count()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn account_id(i: usize) -> String {
    format!("P{i:06}")
}

/// `n` accounts that owe 25.00 since `at` (a 100.00 charge, 75.00 paid by
/// the insurer, 25.00 coinsurance), each patient with an address, in
/// transactions of 1,000 accounts.
fn seed(db: &Db, n: usize, at: DateTime<Utc>) -> Result<(), StoreError> {
    let since = at.date_naive();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        db.transact(|tx| {
            for &i in chunk {
                let id = account_id(i);
                tx.put(&Patient {
                    id: id.clone(),
                    name: PersonName {
                        last: format!("Last{i}"),
                        first: format!("First{i}"),
                        middle: None,
                        suffix: None,
                    },
                    birth_date: NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date"),
                    sex: Sex::Female,
                    email: Some(format!("{}@example.org", id.to_lowercase())),
                    phone: None,
                    address: None,
                })?;
                let entries = [
                    (LedgerKind::Charge, 10_000),
                    (LedgerKind::InsurancePayment, -7_500),
                    (
                        LedgerKind::Adjustment {
                            group: "PR".into(),
                            reason: "2".into(),
                        },
                        -2_500,
                    ),
                    (LedgerKind::PatientResponsibility, 2_500),
                ];
                for (k, (kind, cents)) in entries.into_iter().enumerate() {
                    tx.put(&LedgerEntry {
                        id: format!("{id}/{k}"),
                        account_id: id.clone(),
                        claim_id: Some(format!("C-{id}")),
                        posted_at: at,
                        kind,
                        amount_cents: cents,
                        source: "bench".into(),
                    })?;
                }
                tx.put(&Account {
                    id: id.clone(),
                    opened_at: at,
                    owing_since: Some(since),
                    opt_out: None,
                })?;
            }
            Ok::<_, StoreError>(())
        })?;
    }
    db.flush()
}

/// The same message as billd's mailer builds it, with plain lettre.
fn plain(msg: &OutboxMessage) -> Message {
    let mut b = Message::builder()
        .from(FROM.parse().expect("a mailbox"))
        .subject(msg.subject.clone())
        .message_id(Some(format!("<{}@peer>", msg.key.replace(['#', '/'], "_"))))
        .date(msg.created_at.into())
        .header(ContentType::TEXT_PLAIN);
    for (name, value) in &msg.headers {
        let name = HeaderName::new_from_ascii(name.clone()).expect("a header name");
        b = b.raw_header(HeaderValue::new(name, value.clone()));
    }
    for to in &msg.to {
        b = b.to(to.parse::<Mailbox>().expect("an address"));
    }
    b.body(msg.body.clone()).expect("a message")
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then a small run checks the bench still works.
    let benching = std::env::args().any(|a| a == "--bench");
    let count = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name} must be a number"))
            })
            .unwrap_or(default)
    };
    let n = count("BILLD_BENCH_ACCOUNTS", if benching { 100_000 } else { 200 });
    let sends = count("BILLD_BENCH_SENDS", 10_000).min(n);
    let dir = tempfile::tempdir().expect("a temp dir");
    let sink = Sink::start(dir.path().join("spool.jsonl"));
    let db = Db::new(
        Arc::new(SledStore::open(&dir.path().join("store"), 256 * 1024 * 1024).expect("sled")),
        StoreKey::random(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let _guard = rt.enter();
    let mailer = Arc::new(
        Mailer::from_config(&MailConfig {
            from: FROM.parse().expect("a mailbox"),
            transport: MailTransport::Smtp {
                url: format!("smtp://127.0.0.1:{}", sink.port),
                host: "127.0.0.1".into(),
                port: sink.port,
                tls: SmtpTls::None,
                username: None,
                password: None,
                pool_max: POOL,
                timeout: Duration::from_secs(30),
            },
        })
        .expect("a mailer"),
    );
    let services = Services {
        db: db.clone(),
        clock: Arc::new(SystemClock),
        mailer: mailer.clone(),
        plugins: None,
        audit: Arc::new(TracingAudit),
        practice: Practice {
            name: "Riverside Family Medicine".into(),
            npi: "1234567893".into(),
            tax_id: "123456789".into(),
            timezone: chrono_tz::UTC,
        },
        billers: Vec::new(),
        notify: Default::default(),
        base_dir: dir.path().to_path_buf(),
    };
    let setup = JobSetup {
        name: "dunning".into(),
        timezone: chrono_tz::UTC,
    };
    let params = DunningParams {
        contact_phone: Some("555-0100".into()),
        pay_url: Some("https://pay.example.org".into()),
        ..DunningParams::default()
    };
    let job = Arc::new(DunningJob::new(params, &setup, &services).expect("the job builds"));

    let now = Utc::now();
    let t = Instant::now();
    seed(&db, n, now).expect("seeding");
    println!(
        "dunning bench: {n} accounts seeded in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Decide and enqueue.
    let scope = |k: &str| format!("dunning#{k}");
    let t = Instant::now();
    let owing = owing_accounts(&db, now.date_naive()).expect("the owing accounts");
    let listed = t.elapsed();
    let mut queued: Vec<(String, OutboxMessage)> = Vec::with_capacity(n);
    for batch in owing.chunks(BATCH) {
        for a in batch {
            if let Some(m) = job.prepare(&db, &scope, a, now).expect("prepare") {
                queued.push((a.clone(), m));
            }
        }
        db.flush().expect("flush");
    }
    let decided = t.elapsed();
    assert_eq!(owing.len(), n, "every account owes");
    assert_eq!(queued.len(), n, "every account is due its statement");
    println!(
        "  decide + enqueue: {:.2} s ({:.0} accounts/s; listing {:.0} ms)",
        decided.as_secs_f64(),
        rate(n, decided),
        listed.as_secs_f64() * 1e3
    );

    // billd's send path: batches through the pool, outcomes recorded.
    queued.truncate(sends);
    let batches: Vec<Vec<(String, OutboxMessage)>> =
        queued.chunks(BATCH).map(<[_]>::to_vec).collect();
    let t = Instant::now();
    rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let mut set = tokio::task::JoinSet::new();
        for b in batches {
            let permit = sem.clone().acquire_owned().await.expect("open");
            let (mailer, db, job) = (mailer.clone(), db.clone(), job.clone());
            set.spawn(async move {
                let sent = send_all(&mailer, b).await;
                let now = Utc::now();
                for (a, m, r) in &sent {
                    r.as_ref().expect("the server accepts");
                    job.record_outcome(&db, a, m, r, now).expect("recorded");
                }
                db.flush().expect("flush");
                drop(permit);
            });
        }
        while let Some(r) = set.join_next().await {
            r.expect("a batch task");
        }
    });
    let billd_send = t.elapsed();
    wait_for(&sink, sends);
    let sent = db
        .scan::<OutboxMessage>("dunning#")
        .expect("scan")
        .iter()
        .filter(|m| m.status == OutboxStatus::Sent)
        .count();
    assert_eq!(sent, sends, "every notice sent is recorded sent");

    // The plain lettre peer: the same messages, the same pool size.
    let transport: AsyncSmtpTransport<Tokio1Executor> =
        AsyncSmtpTransport::<Tokio1Executor>::from_url(&format!("smtp://127.0.0.1:{}", sink.port))
            .expect("a transport")
            .pool_config(PoolConfig::new().max_size(POOL))
            .build();
    let t = Instant::now();
    rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(POOL as usize));
        let mut set = tokio::task::JoinSet::new();
        for (_, m) in &queued {
            let permit = sem.clone().acquire_owned().await.expect("open");
            let (transport, email) = (transport.clone(), plain(m));
            set.spawn(async move {
                transport.send(email).await.expect("the server accepts");
                drop(permit);
            });
        }
        while let Some(r) = set.join_next().await {
            r.expect("a send task");
        }
    });
    let peer_send = t.elapsed();
    wait_for(&sink, 2 * sends);
    println!(
        "  send {sends} (pool of {POOL}): billd {:.0} msg/s ({:.2} s), plain lettre {:.0} msg/s ({:.2} s); billd/lettre {:.2}",
        rate(sends, billd_send),
        billd_send.as_secs_f64(),
        rate(sends, peer_send),
        peer_send.as_secs_f64(),
        peer_send.as_secs_f64() / billd_send.as_secs_f64()
    );
}

/// Waits until the sink has written `count` messages (it appends each
/// after answering 250, so the last may lag the client by a moment).
fn wait_for(sink: &Sink, count: usize) {
    let start = Instant::now();
    while sink.received() < count {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the sink has {} of {count} messages",
            sink.received()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
