//! The HTTP side: one CORE endpoint (`POST /core`, SOAP or MIME by content
//! type) and the control API under `/_sandbox` (faults, stats).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::envelope::{self, CoreMessage, Operation, Transport};
use crate::faults::{FaultKind, FaultSpec};
use crate::payer::{Answer, Payer};
use crate::scenario::Scenario;

type Shared = Arc<Mutex<Payer>>;

/// Serves until the process is killed.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(
    scenario: Scenario,
    listen: SocketAddr,
    archive: PathBuf,
    sftp_root: Option<PathBuf>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("--listen {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let state: Shared = Arc::new(Mutex::new(Payer::new(scenario, archive)));
    if let Some(root) = sftp_root {
        crate::folders::prepare(&root)?;
        tokio::spawn(crate::folders::feed(state.clone(), root));
    }
    println!("listening on {addr}");
    let app = Router::new()
        .route("/core", post(core))
        .route("/_sandbox/faults", post(arm).delete(clear))
        .route("/_sandbox/stats", get(stats))
        .with_state(state);
    axum::serve(listener, app).await?;
    Ok(())
}

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, Payer> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn core(State(state): State<Shared>, req: Request) -> Response {
    let is_mime = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let parsed: Result<(Operation, CoreMessage, Transport), (String, String)> = if is_mime {
        match Multipart::from_request(req, &()).await {
            Err(e) => Err((
                "EnvelopeError".into(),
                format!("not multipart/form-data: {e}"),
            )),
            Ok(mut form) => {
                let mut msg = CoreMessage::default();
                let mut err = None;
                loop {
                    match form.next_field().await {
                        Ok(Some(field)) => {
                            let name = field.name().unwrap_or("").to_owned();
                            match field.bytes().await {
                                Ok(b) => envelope::set_mime_field(&mut msg, &name, b.to_vec()),
                                Err(e) => {
                                    err = Some(e.to_string());
                                    break;
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            err = Some(e.to_string());
                            break;
                        }
                    }
                }
                match err {
                    Some(e) => Err(("EnvelopeError".into(), format!("a bad MIME part: {e}"))),
                    None => Ok((envelope::mime_operation(&msg), msg, Transport::Mime)),
                }
            }
        }
    } else {
        match Bytes::from_request(req, &()).await {
            Err(e) => Err(("EnvelopeError".into(), e.to_string())),
            Ok(body) => envelope::parse_soap(&body).map(|(op, m)| (op, m, Transport::Soap)),
        }
    };
    let (op, msg, transport) = match parsed {
        Ok(p) => p,
        Err((code, message)) => {
            let msg = CoreMessage {
                error_code: code,
                error_message: message,
                core_rule_version: "2.2.0".into(),
                ..CoreMessage::default()
            };
            let transport = if is_mime {
                Transport::Mime
            } else {
                Transport::Soap
            };
            return render(
                transport,
                Operation::RealTime,
                &msg,
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let fault = {
        let mut payer = lock(&state);
        payer.receive(&msg);
        payer.take_fault()
    };
    if let Some(f) = fault.as_ref().filter(|f| f.kind == FaultKind::Slow) {
        tokio::time::sleep(Duration::from_millis(f.delay_ms.unwrap_or(25_000))).await;
    }
    let answer = lock(&state).handle(op, &msg, fault.as_ref());
    match answer {
        Answer::Status(code, retry_after) => {
            let mut headers = HeaderMap::new();
            if let Some(s) = retry_after
                && let Ok(v) = HeaderValue::from_str(&s.to_string())
            {
                headers.insert(header::RETRY_AFTER, v);
            }
            (
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                headers,
            )
                .into_response()
        }
        Answer::Envelope { msg, unauthorized } => {
            let status = if unauthorized {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            };
            render(transport, op, &msg, status)
        }
    }
}

fn render(transport: Transport, op: Operation, msg: &CoreMessage, status: StatusCode) -> Response {
    match transport {
        Transport::Soap => (
            status,
            [(
                header::CONTENT_TYPE,
                "application/soap+xml; charset=utf-8".to_owned(),
            )],
            envelope::render_soap(op, msg),
        )
            .into_response(),
        Transport::Mime => {
            let (ct, body) = envelope::render_mime(msg);
            (status, [(header::CONTENT_TYPE, ct)], body).into_response()
        }
    }
}

async fn arm(State(state): State<Shared>, axum::Json(spec): axum::Json<FaultSpec>) -> Response {
    lock(&state).arm(spec);
    StatusCode::NO_CONTENT.into_response()
}

async fn clear(State(state): State<Shared>) -> Response {
    lock(&state).clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

async fn stats(State(state): State<Shared>) -> Response {
    axum::Json(lock(&state).stats()).into_response()
}
