//! The HTTP side of `billd-sandbox agency`: `POST /placements` (a
//! placement file, `Idempotency-Key` header), `POST /recalls` (JSON, the
//! same header), `GET /updates?client=&since=&limit=`, each behind the
//! bearer API key when one is set; and the control API: `POST
//! /_sandbox/updates` scripts an update (a payment, a dispute, a closure,
//! ...), `GET /_sandbox/placements`, `/_sandbox/recalls` and
//! `/_sandbox/accounts` read what the agency received and holds; `POST
//! /_sandbox/lose-answers {"count": N}` has the next N placement or recall
//! requests worked but answered 503, as if the answer were lost. With
//! `--sftp-root` the same agency is fed through folders as well
//! ([`crate::agency_folders`]).
//! Test-only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::agency::{Agency, Answer, Script};

/// The agency and the API key it requires.
pub struct Sandbox {
    /// The agency.
    pub agency: Agency,
    /// The bearer API key, if the agency requires one.
    pub api_key: Option<String>,
    /// Placement and recall requests still to be worked but answered 503,
    /// as when an answer is lost on the way back (armed by the test).
    pub lose_answers: u32,
}

impl Sandbox {
    /// The answer to send: `answer`, or a 503 when an answer is to be lost.
    fn deliver(&mut self, answer: Answer) -> Response {
        if self.lose_answers > 0 {
            self.lose_answers -= 1;
            return reply((
                503,
                json!({"error": "the answer was lost (fault armed by the test)"}),
            ));
        }
        reply(answer)
    }
}

/// The sandbox as the HTTP handlers and the SFTP folders share it.
pub type Shared = Arc<Mutex<Sandbox>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Sandbox> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Serves until the process is killed; with `sftp_root`, feeds that
/// folder's `placements/`, `recalls/` and `updates/` too (created before
/// the `listening on` line is printed).
///
/// # Errors
/// When the address cannot be bound or the folders cannot be created.
pub async fn serve(
    listen: SocketAddr,
    sandbox: Sandbox,
    sftp_root: Option<PathBuf>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("--listen {listen}: {e}"))?;
    let state: Shared = Arc::new(Mutex::new(sandbox));
    if let Some(root) = sftp_root {
        crate::agency_folders::prepare(&root)?;
        tokio::spawn(crate::agency_folders::feed(state.clone(), root));
    }
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, router(state)).await?;
    Ok(())
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/placements", post(placements))
        .route("/recalls", post(recalls))
        .route("/updates", get(updates))
        .route("/_sandbox/updates", post(script))
        .route("/_sandbox/placements", get(received_placements))
        .route("/_sandbox/recalls", get(received_recalls))
        .route("/_sandbox/accounts", get(accounts))
        .route("/_sandbox/lose-answers", post(lose_answers))
        .with_state(state)
}

fn reply((status, body): Answer) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

/// The API key check; `None` when the caller may go on.
fn refused(s: &Sandbox, headers: &HeaderMap) -> Option<Response> {
    let want = s.api_key.as_deref()?;
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    (got != Some(want))
        .then(|| reply((401, json!({"error": "a valid bearer API key is required"}))))
}

fn idempotency_key(headers: &HeaderMap) -> String {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn placements(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = lock(&state);
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    let answer = s.agency.place(&idempotency_key(&headers), &body);
    s.deliver(answer)
}

async fn recalls(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = lock(&state);
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    let answer = s.agency.recall(&idempotency_key(&headers), &body);
    s.deliver(answer)
}

async fn updates(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = lock(&state);
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(500);
    reply(s.agency.list(
        q.get("client").map(String::as_str).unwrap_or_default(),
        q.get("since").map(String::as_str),
        limit,
    ))
}

async fn script(State(state): State<Shared>, Json(script): Json<Script>) -> Response {
    let today = chrono::Utc::now().date_naive();
    match lock(&state).agency.script(script, today) {
        Ok(v) => reply((200, v)),
        Err(a) => reply(a),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoseAnswers {
    count: u32,
}

async fn lose_answers(State(state): State<Shared>, Json(l): Json<LoseAnswers>) -> StatusCode {
    lock(&state).lose_answers = l.count;
    StatusCode::NO_CONTENT
}

async fn received_placements(State(state): State<Shared>) -> Json<Value> {
    let s = lock(&state);
    Json(json!({"files": s.agency.files, "replays": s.agency.replays}))
}

async fn received_recalls(State(state): State<Shared>) -> Json<Value> {
    Json(json!({"recalls": lock(&state).agency.recalls}))
}

async fn accounts(State(state): State<Shared>) -> Json<Value> {
    Json(json!({"accounts": lock(&state).agency.accounts}))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start(api_key: Option<&str>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(Sandbox {
            agency: Agency::new("CL1"),
            api_key: api_key.map(str::to_owned),
            lose_answers: 0,
        }));
        tokio::spawn(async move { axum::serve(listener, router(state)).await });
        format!("http://{addr}")
    }

    const FILE: &str = "H|BCP1|CL1|20261202|1|12345\nD|CL1|PA|SMITH|TED|Q||236 N MAIN ST||MIAMI|FL|33413|3055550142|19730501|20260701|12345||20260610|20260612\nT|1|12345\n";

    #[tokio::test]
    async fn placements_need_the_api_key_and_updates_scripted_come_back_by_cursor() {
        let base = start(Some("sekrit")).await;
        let http = reqwest::Client::new();
        let no_key = http
            .post(format!("{base}/placements"))
            .header("idempotency-key", "k1")
            .body(FILE)
            .send()
            .await
            .unwrap();
        assert_eq!(no_key.status(), 401);
        let send = || {
            http.post(format!("{base}/placements"))
                .bearer_auth("sekrit")
                .header("idempotency-key", "k1")
                .body(FILE)
                .send()
        };
        let first: Value = send().await.unwrap().json().await.unwrap();
        assert_eq!(first["receipts"][0]["accepted"], true, "{first}");
        let again: Value = send().await.unwrap().json().await.unwrap();
        assert_eq!(again, first);
        // A lost answer: the file is worked, the resend gets its answer.
        let lose = http
            .post(format!("{base}/_sandbox/lose-answers"))
            .json(&json!({"count": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(lose.status(), 204);
        let other = || {
            http.post(format!("{base}/placements"))
                .bearer_auth("sekrit")
                .header("idempotency-key", "k2")
                .body(FILE.replace("|PA|", "|PB|"))
                .send()
        };
        assert_eq!(other().await.unwrap().status(), 503);
        let resent: Value = other().await.unwrap().json().await.unwrap();
        assert_eq!(resent["receipts"][0]["accepted"], true, "{resent}");
        let got: Value = http
            .get(format!("{base}/_sandbox/placements"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["files"].as_array().unwrap().len(), 2);
        assert_eq!(got["replays"], 2);

        let scripted = http
            .post(format!("{base}/_sandbox/updates"))
            .json(
                &json!({"code": "PAY", "debtor_ref": "PA", "gross_cents": 1000, "fee_cents": 250}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(scripted.status(), 200);
        let page: Value = http
            .get(format!("{base}/updates?client=CL1"))
            .bearer_auth("sekrit")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["updates"][0]["net_cents"], 750, "{page}");
        assert_eq!(page["next_cursor"], "1");
        let bad = http
            .post(format!("{base}/_sandbox/updates"))
            .json(&json!({"code": "PAY", "debtor_ref": "NOBODY", "gross_cents": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 404);
    }
}
