//! The control protocol over a real Unix socket in a temporary directory:
//! version refusal, malformed lines, and typed round trips.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::app::tasks::AddTask;
use crate::app::testing::app_in;
use crate::domain::Priority;

/// A served app in a fresh directory; the socket stops when `cancel` fires.
async fn served() -> (tempfile::TempDir, PathBuf, CancellationToken) {
    served_with("").await
}

/// Like [`served`], with `extra` appended to the configuration.
async fn served_with(extra: &str) -> (tempfile::TempDir, PathBuf, CancellationToken) {
    let dir = tempfile::tempdir().unwrap();
    let app = app_in(dir.path(), extra);
    std::fs::create_dir_all(&app.config().store.path).unwrap();
    let path = socket_path(app.config());
    let cancel = CancellationToken::new();
    tokio::spawn(serve(app, cancel.clone()));
    for _ in 0..500 {
        if UnixStream::connect(&path).is_ok() {
            return (dir, path, cancel);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the control socket at {} never answered", path.display());
}

/// Sends raw lines on one connection and returns one parsed answer per line.
fn exchange(path: &Path, lines: &[&str]) -> Vec<serde_json::Value> {
    let mut stream = UnixStream::connect(path).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    lines
        .iter()
        .map(|l| {
            stream.write_all(l.as_bytes()).unwrap();
            stream.write_all(b"\n").unwrap();
            let mut answer = String::new();
            reader.read_line(&mut answer).unwrap();
            serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{answer:?}: {e}"))
        })
        .collect()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_version_is_refused_naming_the_supported_ones() {
    let (_dir, path, cancel) = served().await;
    let answers = blocking(move || {
        exchange(
            &path,
            &[
                r#"{"v":99,"id":5,"op":{"name":"jobs_list"}}"#,
                r#"{"v":"one","op":{"name":"jobs_list"}}"#,
            ],
        )
    })
    .await;
    let a = &answers[0];
    assert_eq!(a["v"], 1, "{a}");
    assert_eq!(a["id"], 5, "the refusal names the request: {a}");
    assert!(a.get("ok").is_none(), "{a}");
    assert_eq!(a["err"]["kind"], "protocol", "{a}");
    assert_eq!(
        a["err"]["message"],
        "control protocol version 99 is not supported; this daemon speaks version 1"
    );
    assert_eq!(
        answers[1]["err"]["message"],
        "control protocol version \"one\" is not supported; this daemon speaks version 1"
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_lines_are_refused_and_the_connection_carries_on() {
    let (_dir, path, cancel) = served().await;
    let answers = blocking(move || {
        exchange(
            &path,
            &[
                "this is not json",
                r#"{"args":["tasks","list"]}"#,
                r#"{"v":1,"id":2,"op":{"name":"tasks_explode"}}"#,
                r#"{"v":1,"id":3,"op":{"name":"tasks_show"}}"#,
                r#"{"v":1,"id":4,"op":{"name":"tasks_list"}}"#,
            ],
        )
    })
    .await;
    let message = |i: usize| answers[i]["err"]["message"].as_str().unwrap().to_string();
    for (i, a) in answers[..4].iter().enumerate() {
        assert_eq!(a["err"]["kind"], "protocol", "line {i}: {a}");
    }
    assert!(message(0).starts_with("malformed control request (not JSON)"));
    assert!(
        message(1).contains("no protocol version `v`"),
        "an old CLI's request gets a clear refusal: {}",
        message(1)
    );
    assert!(message(2).contains("tasks_explode"), "{}", message(2));
    assert_eq!(answers[2]["id"], 2);
    assert!(message(3).contains("missing field `id`"), "{}", message(3));
    assert_eq!(
        answers[4],
        serde_json::json!({"v": 1, "id": 4, "ok": {"type": "tasks", "data": []}}),
        "a good request after bad ones is answered"
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_long_line_is_refused() {
    let (_dir, path, cancel) = served().await;
    let long = format!(
        r#"{{"v":1,"op":{{"name":"tasks_show","id":"{}"}}}}"#,
        "T".repeat(MAX_REQUEST)
    );
    let a = blocking(move || {
        let mut stream = UnixStream::connect(&path).unwrap();
        // The server answers after MAX_REQUEST + 1 bytes and hangs up, so
        // the rest of the line may meet a closed socket.
        let _ = stream.write_all(format!("{long}\n").as_bytes());
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).unwrap();
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()
    })
    .await;
    assert_eq!(a["err"]["kind"], "protocol");
    assert_eq!(
        a["err"]["message"],
        format!("control request longer than {MAX_REQUEST} bytes")
    );
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_requests_round_trip_through_the_socket() {
    let (_dir, path, cancel) = served().await;
    let (added, shown, assigned, missing, listed) = blocking(move || {
        let mut client = Client::new(&path);
        let added = client
            .call(Request::TasksAdd {
                task: AddTask {
                    kind: "denial".into(),
                    subject: "claim C-9 denied: CARC 50".into(),
                    priority: Priority::Urgent,
                    assignee: None,
                },
            })
            .unwrap();
        let Reply::Task(added) = added else {
            panic!("{added:?}")
        };
        let shown = client
            .call(Request::TasksShow {
                id: added.id.clone(),
            })
            .unwrap();
        let assigned = client.call(Request::TasksAssign {
            id: added.id.clone(),
            to: "nobody".into(),
            by: "sam".into(),
        });
        let missing = client.call(Request::TasksShow {
            id: "T999999".into(),
        });
        let listed = client.call(Request::JobsList).unwrap();
        (added, shown, assigned, missing, listed)
    })
    .await;
    assert_eq!(added.subject, "claim C-9 denied: CARC 50");
    assert_eq!(added.priority, Priority::Urgent);
    assert_eq!(
        shown,
        Reply::Task(added),
        "the stored task comes back as typed data"
    );
    match assigned.unwrap_err() {
        AppError::Remote { kind, message } => {
            assert_eq!(kind, ErrorKind::Config);
            assert_eq!(message, "no biller named `nobody`");
        }
        other => panic!("{other:?}"),
    }
    let missing = missing.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert_eq!(missing.message(), "no task with id T999999");
    assert_eq!(listed, Reply::Jobs(Vec::new()));
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_times_keep_their_zone_offsets_through_the_socket() {
    let job = "[[job]]\nname = \"morning\"\nkind = \"digest\"\nschedule = \"0 7 * * *\"\ntimezone = \"America/New_York\"\n";
    let (_dir, path, cancel) = served_with(job).await;
    let reply = blocking(move || {
        Client::new(&path).call(Request::JobsNext {
            job: "morning".into(),
            after: "2026-03-07T13:00:00Z".parse().unwrap(),
            count: 2,
        })
    })
    .await
    .unwrap();
    let Reply::FireTimes(times) = reply else {
        panic!("{reply:?}")
    };
    let shown: Vec<String> = times.iter().map(|t| t.to_rfc3339()).collect();
    assert_eq!(
        shown,
        ["2026-03-08T07:00:00-04:00", "2026-03-09T07:00:00-04:00"],
        "the first instant after the DST change keeps its new offset"
    );
    cancel.cancel();
}

#[test]
fn a_missing_daemon_is_a_clear_runtime_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Client::new(&dir.path().join("control.sock"))
        .call(Request::JobsList)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Runtime);
    assert!(e.message().contains("does not answer"), "{}", e.message());
}

#[test]
fn messages_have_the_documented_shape() {
    let req = RequestMessage {
        v: PROTOCOL_VERSION,
        id: Some(7),
        op: Request::TasksShow {
            id: "T000001".into(),
        },
    };
    assert_eq!(
        serde_json::to_value(&req).unwrap(),
        serde_json::json!({"v": 1, "id": 7, "op": {"name": "tasks_show", "id": "T000001"}})
    );
    let resp = ResponseMessage::refusal(Some(7), "no".into());
    assert_eq!(
        serde_json::to_value(&resp).unwrap(),
        serde_json::json!({"v": 1, "id": 7, "err": {"kind": "protocol", "message": "no"}})
    );
    let back: ResponseMessage =
        serde_json::from_value(serde_json::to_value(&resp).unwrap()).unwrap();
    assert_eq!(back, resp);
}
