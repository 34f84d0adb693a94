//! The HTTP side of `billd-sandbox fhir`: FHIR R4 search and read under
//! `/fhir`, update by PUT (for tests that change a resource), the SMART
//! token endpoint at `/auth/token`, and the control API under `/_sandbox`
//! (faults, stats). Test-only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Form, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::fhir::{FhirStore, outcome};
use crate::smart::TokenEndpoint;

/// How the FHIR endpoints check the caller.
pub struct Auth {
    /// A static bearer token accepted as is.
    pub static_token: Option<String>,
    /// The SMART token endpoint, when a client is registered.
    pub smart: Option<TokenEndpoint>,
}

/// A fault armed on demand: the next `count` requests whose path starts
/// with `path` get `status` (with an OperationOutcome, or an OAuth error on
/// the token endpoint), once `after` such requests have gone through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFault {
    /// Path prefix, e.g. `/fhir/Patient` or `/auth/token`.
    pub path: String,
    /// The status to answer.
    pub status: u16,
    /// How many requests it hits (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// `Retry-After` of the answer (a 429 always has one, default 1).
    #[serde(default)]
    pub retry_after_seconds: Option<u32>,
    /// How many matching requests are answered normally first (default 0):
    /// a fault on a listing's third page is `after = 2`.
    #[serde(default)]
    pub after: u32,
}

fn one() -> u32 {
    1
}

/// Everything the server holds.
pub struct Sandbox {
    /// The resources.
    pub store: FhirStore,
    /// The caller checks.
    pub auth: Auth,
    faults: Vec<HttpFault>,
    requests: u64,
    tokens_issued: u64,
    token_refusals: u64,
}

impl Sandbox {
    /// A sandbox over `store`.
    #[must_use]
    pub fn new(store: FhirStore, auth: Auth) -> Self {
        Self {
            store,
            auth,
            faults: Vec::new(),
            requests: 0,
            tokens_issued: 0,
            token_refusals: 0,
        }
    }

    fn take_fault(&mut self, path: &str) -> Option<HttpFault> {
        let i = self.faults.iter().position(|f| path.starts_with(&f.path))?;
        let f = &mut self.faults[i];
        if f.after > 0 {
            f.after -= 1;
            return None;
        }
        f.count -= 1;
        let out = f.clone();
        if f.count == 0 {
            self.faults.remove(i);
        }
        Some(out)
    }
}

type Shared = Arc<Mutex<Sandbox>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Sandbox> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Serves until the process is killed; the token URL assertions must name
/// as `aud` is `token_url`, or `http://<bound address>/auth/token`.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(
    listen: SocketAddr,
    make: impl FnOnce(String) -> anyhow::Result<Sandbox>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("--listen {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let sandbox = make(format!("http://{addr}/auth/token"))?;
    println!("listening on {addr}");
    let state: Shared = Arc::new(Mutex::new(sandbox));
    axum::serve(listener, router(state)).await?;
    Ok(())
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/fhir/{kind}", get(search))
        .route("/fhir/{kind}/{id}", get(read).put(update))
        .route("/auth/token", post(token))
        .route("/_sandbox/faults", post(arm).delete(clear))
        .route("/_sandbox/revoke-tokens", post(revoke))
        .route("/_sandbox/stats", get(stats))
        .with_state(state)
}

fn fhir_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

fn fault_response(f: &HttpFault, token: bool) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = if token {
        (
            status,
            Json(
                json!({"error": "invalid_client", "error_description": "fault armed by the test"}),
            ),
        )
            .into_response()
    } else {
        fhir_json(status, &outcome("transient", "fault armed by the test"))
    };
    if f.status == 429 || f.retry_after_seconds.is_some() {
        let after = f.retry_after_seconds.unwrap_or(1).to_string();
        if let Ok(v) = after.parse() {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

/// Checks the caller and the armed faults before a FHIR request.
fn admit(s: &mut Sandbox, path: &str, headers: &HeaderMap) -> Result<(), Box<Response>> {
    s.requests += 1;
    if let Some(f) = s.take_fault(path) {
        return Err(Box::new(fault_response(&f, false)));
    }
    if s.auth.static_token.is_none() && s.auth.smart.is_none() {
        return Ok(());
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let ok = s.auth.static_token.as_deref() == Some(bearer)
        || s.auth
            .smart
            .as_ref()
            .is_some_and(|t| t.accepts(bearer, now));
    if ok {
        Ok(())
    } else {
        Err(Box::new(fhir_json(
            StatusCode::UNAUTHORIZED,
            &outcome("login", "no valid bearer token"),
        )))
    }
}

fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    url_pairs(query.unwrap_or_default())
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn search(
    State(state): State<Shared>,
    Path(kind): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut s = lock(&state);
    if let Err(r) = admit(&mut s, &format!("/fhir/{kind}"), &headers) {
        return *r;
    }
    let params = pairs(query.as_deref());
    let found = s.store.search(&kind, &params);
    // The page is the sandbox's own copy: the bundle is built and
    // serialised without the lock, so concurrent searches are served
    // concurrently, as a real FHIR server serves them.
    drop(s);
    match found {
        Err(e) => fhir_json(StatusCode::BAD_REQUEST, &outcome("not-supported", &e.0)),
        Ok(page) => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("127.0.0.1");
            let base = format!("http://{host}/fhir/{kind}");
            let kept: Vec<String> = params
                .iter()
                .filter(|(k, _)| k != "_offset")
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            let query = kept.join("&");
            let mut link = vec![json!({"relation": "self", "url": format!("{base}?{query}")})];
            if let Some(next) = page.next_offset {
                let sep = if query.is_empty() { "" } else { "&" };
                link.push(json!({"relation": "next", "url": format!("{base}?{query}{sep}_offset={next}")}));
            }
            let entry: Vec<Value> = page
                .resources
                .into_iter()
                .map(|r| {
                    let url = format!("{base}/{}", r["id"].as_str().unwrap_or_default());
                    json!({"fullUrl": url, "resource": r, "search": {"mode": "match"}})
                })
                .collect();
            fhir_json(
                StatusCode::OK,
                &json!({"resourceType": "Bundle", "type": "searchset",
                        "total": page.total, "link": link, "entry": entry}),
            )
        }
    }
}

async fn read(
    State(state): State<Shared>,
    Path((kind, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut s = lock(&state);
    if let Err(r) = admit(&mut s, &format!("/fhir/{kind}/{id}"), &headers) {
        return *r;
    }
    match s.store.read(&kind, &id) {
        Some(r) => fhir_json(StatusCode::OK, r),
        None => fhir_json(
            StatusCode::NOT_FOUND,
            &outcome("not-found", &format!("{kind}/{id} is not known")),
        ),
    }
}

async fn update(
    State(state): State<Shared>,
    Path((kind, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = lock(&state);
    match s.store.update(&kind, &id, body, chrono::Utc::now()) {
        Ok(version) => fhir_json(StatusCode::OK, &json!({"versionId": version})),
        Err(e) => fhir_json(StatusCode::BAD_REQUEST, &outcome("invalid", &e)),
    }
}

async fn token(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut s = lock(&state);
    if let Some(f) = s.take_fault("/auth/token") {
        s.token_refusals += 1;
        return fault_response(&f, true);
    }
    let now = chrono::Utc::now().timestamp();
    let Some(ep) = s.auth.smart.as_mut() else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "invalid_client", "error_description": "no SMART client is registered"})),
        )
            .into_response();
    };
    let lifetime = ep.lifetime;
    match ep.exchange(&form, now) {
        Ok(token) => {
            s.tokens_issued += 1;
            let scope = form.get("scope").cloned().unwrap_or_default();
            Json(json!({"access_token": token, "token_type": "bearer",
                        "expires_in": lifetime, "scope": scope}))
            .into_response()
        }
        Err(refusal) => {
            s.token_refusals += 1;
            (
                if refusal.error == "invalid_client" {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::BAD_REQUEST
                },
                Json(json!({"error": refusal.error, "error_description": refusal.description})),
            )
                .into_response()
        }
    }
}

async fn arm(State(state): State<Shared>, Json(faults): Json<Vec<HttpFault>>) -> StatusCode {
    let mut s = lock(&state);
    s.faults.extend(faults.into_iter().filter(|f| f.count > 0));
    StatusCode::NO_CONTENT
}

async fn clear(State(state): State<Shared>) -> StatusCode {
    lock(&state).faults.clear();
    StatusCode::NO_CONTENT
}

async fn revoke(State(state): State<Shared>) -> StatusCode {
    if let Some(ep) = lock(&state).auth.smart.as_mut() {
        ep.revoke_all();
    }
    StatusCode::NO_CONTENT
}

async fn stats(State(state): State<Shared>) -> Json<Value> {
    let s = lock(&state);
    Json(json!({
        "requests": s.requests,
        "tokens_issued": s.tokens_issued,
        "token_refusals": s.token_refusals,
        "faults_pending": s.faults.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_round_trip() {
        let q = format!(
            "_lastUpdated={}&_count=5",
            encode("gt2026-01-01T00:00:00.000+00:00")
        );
        assert_eq!(
            url_pairs(&q),
            [
                (
                    "_lastUpdated".to_owned(),
                    "gt2026-01-01T00:00:00.000+00:00".to_owned()
                ),
                ("_count".to_owned(), "5".to_owned())
            ]
        );
    }
}
