//! Dispatcher tests against a real HTTP receiver on 127.0.0.1:0.

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::domain::{NewTask, Priority};
use crate::notify::routing::{Route, WebhookConfig, WebhookSecret};
use crate::notify::webhook::sign;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request the receiver saw: its headers (lower-cased names) and body.
#[derive(Debug, Clone)]
struct Seen {
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// A loopback HTTP receiver answering each request with the next status
/// of `statuses` (the last one repeats), recording what it got.
struct Receiver {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    async fn start(statuses: &[u16]) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (log, statuses) = (seen.clone(), statuses.to_vec());
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut s, _)) = listener.accept().await {
                let status = statuses[n.min(statuses.len() - 1)];
                n += 1;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, len) = loop {
                    let got = s.read(&mut chunk).await.unwrap();
                    assert!(got > 0, "connection closed mid-request");
                    buf.extend_from_slice(&chunk[..got]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let got = s.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..got]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let headers = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_string()))
                    .collect();
                let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
                log.lock().unwrap().push(Seen { headers, body });
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        Receiver { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

struct Setup {
    db: Db,
    clock: Arc<ManualClock>,
    cfg: Arc<NotifyConfig>,
    mailer: Arc<Mailer>,
    outbox: tempfile::TempDir,
}

impl Setup {
    fn new(port: u16, routes: Vec<Route>) -> Setup {
        let outbox = tempfile::tempdir().unwrap();
        let cfg = NotifyConfig {
            webhooks: vec![WebhookConfig {
                name: "ops".into(),
                url: format!("http://127.0.0.1:{port}/hook").parse().unwrap(),
                secret: WebhookSecret::parse(SECRET).unwrap(),
                timeout: Duration::from_secs(5),
            }],
            routes,
            ..Default::default()
        };
        Setup {
            db: Db::in_memory(),
            clock: Arc::new(ManualClock::new(
                DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            )),
            cfg: Arc::new(cfg),
            mailer: Arc::new(Mailer::outbox(
                "billd <billd@example.org>".parse().unwrap(),
                outbox.path(),
            )),
            outbox,
        }
    }

    /// A fresh dispatcher over the same store: what a restarted daemon has.
    fn dispatcher(&self) -> Dispatcher {
        Dispatcher::new(
            self.db.clone(),
            self.clock.clone(),
            self.cfg.clone(),
            vec![Biller {
                name: "dana".into(),
                email: "Dana <dana@example.org>".parse().unwrap(),
                receives: vec!["digest".into()],
            }],
            self.mailer.clone(),
        )
    }

    fn raise(&self, kind: &str, key: &str) -> Task {
        task::raise(
            &self.db,
            self.clock.now(),
            NewTask {
                kind: kind.into(),
                subject: format!("job nightly: {key}"),
                priority: Priority::High,
                due: None,
                assignee: None,
                payer: None,
                dedupe_key: key.into(),
            },
        )
        .unwrap()
        .0
    }
}

fn to_ops(kinds: &[&str]) -> Route {
    Route {
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        payers: vec![],
        to: Destination::Webhook("ops".into()),
    }
}

#[tokio::test]
async fn an_urgent_task_goes_out_once_signed_and_a_restart_sends_nothing_more() {
    let rx = Receiver::start(&[200]).await;
    let s = Setup::new(
        rx.port,
        vec![
            to_ops(&[]),
            to_ops(&["claim-rejected"]),
            Route {
                kinds: vec!["job-failing".into()],
                payers: vec![],
                to: Destination::Biller("dana".into()),
            },
        ],
    );
    let urgent = s.raise("job-failing", "k1");
    // Not urgent, and only the any-kind route sends it to ops: the digest's.
    s.raise("denial", "k2");
    // Not urgent, but a route names its kind for ops: at once, to ops.
    let rejected = s.raise("claim-rejected", "k3");
    let first = s.dispatcher().pass().await.unwrap();
    assert_eq!(
        first,
        Pass {
            queued: 3,
            sent: 3,
            ..Default::default()
        }
    );
    let seen = rx.seen();
    let mut ids: Vec<&str> = seen.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort();
    let id = format!("{}/webhook:ops", urgent.id);
    assert_eq!(ids, [id.clone(), format!("{}/webhook:ops", rejected.id)]);
    let req = seen.iter().find(|r| r.header("webhook-id") == id).unwrap();
    assert_eq!(req.header("webhook-id"), id);
    let ts = req.header("webhook-timestamp");
    assert_eq!(ts, "1800000000");
    assert_eq!(
        req.header("webhook-signature"),
        sign(
            &WebhookSecret::parse(SECRET).unwrap(),
            &id,
            1_800_000_000,
            req.body.as_bytes()
        )
    );
    let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(body["data"]["id"], urgent.id.as_str());
    assert!(body["text"].as_str().unwrap().contains("job-failing"));
    let mail = std::fs::read_to_string(
        s.outbox
            .path()
            .join(format!("{}_biller_dana.eml", urgent.id)),
    )
    .unwrap();
    assert!(
        mail.contains(&urgent.id) && mail.contains("To: Dana"),
        "{mail}"
    );

    // A restarted daemon, later: nothing is queued, nothing is sent again.
    s.clock.advance(chrono::Duration::hours(1));
    assert_eq!(s.dispatcher().pass().await.unwrap(), Pass::default());
    assert_eq!(rx.seen().len(), 2);
}

#[tokio::test]
async fn what_was_queued_before_a_crash_is_sent_after_it_under_the_same_id() {
    let rx = Receiver::start(&[200]).await;
    let s = Setup::new(rx.port, vec![to_ops(&["job-failing"])]);
    let t = s.raise("job-failing", "k1");
    // The first daemon queued it and died before sending.
    assert_eq!(s.dispatcher().queue_at_once().unwrap(), 1);
    assert!(rx.seen().is_empty());
    let after = s.dispatcher().pass().await.unwrap();
    assert_eq!((after.queued, after.sent), (0, 1));
    assert_eq!(
        rx.seen()[0].header("webhook-id"),
        format!("{}/webhook:ops", t.id)
    );
    let d: Delivery = s.db.get(&format!("{}/webhook:ops", t.id)).unwrap().unwrap();
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Sent, 1));
}

#[tokio::test]
async fn a_5xx_is_retried_with_backoff_under_the_same_id_and_a_4xx_fails() {
    let rx = Receiver::start(&[503, 200, 404]).await;
    let s = Setup::new(rx.port, vec![to_ops(&["job-failing"])]);
    s.raise("job-failing", "k1");
    let d = s.dispatcher();
    assert_eq!(d.pass().await.unwrap().retrying, 1);
    // Not due yet: the first retry waits FIRST_RETRY.
    assert_eq!(d.pass().await.unwrap(), Pass::default());
    s.clock
        .advance(chrono::Duration::from_std(FIRST_RETRY).unwrap());
    assert_eq!(d.pass().await.unwrap().sent, 1);
    let seen = rx.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("webhook-id"), seen[1].header("webhook-id"));
    assert_eq!(seen[0].body, seen[1].body);
    assert_ne!(
        seen[0].header("webhook-timestamp"),
        seen[1].header("webhook-timestamp")
    );

    s.raise("job-failing", "k2");
    assert_eq!(
        d.pass().await.unwrap(),
        Pass {
            queued: 1,
            failed: 1,
            ..Default::default()
        }
    );
    s.clock.advance(chrono::Duration::hours(2));
    assert_eq!(d.pass().await.unwrap(), Pass::default());
    assert_eq!(rx.seen().len(), 3);
}

#[tokio::test]
async fn an_unreachable_receiver_is_retried_and_backoff_grows_to_a_cap() {
    // A port nothing listens on: bind, note it, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = Setup::new(port, vec![to_ops(&[])]);
    let t = s.raise("quarantined-835", "k1");
    assert_eq!(s.dispatcher().pass().await.unwrap().retrying, 1);
    let d: Delivery = s.db.get(&format!("{}/webhook:ops", t.id)).unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Queued);
    assert!(d.last_error.unwrap().contains("unreachable"));
    assert_eq!(backoff(1), FIRST_RETRY);
    assert_eq!(backoff(2), FIRST_RETRY * 2);
    assert_eq!(backoff(30), LONGEST_RETRY);
}
