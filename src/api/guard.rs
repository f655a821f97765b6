//! Request hygiene before any handler runs: JSON bodies are read up to a size limit (413),
//! CSV uploads are cut off at theirs, and control characters in the path, the query and every
//! JSON text field are refused naming the field, so none reaches the database.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use poem::{
    Body, Endpoint, IntoResponse, Request, Response,
    http::{StatusCode, header},
};
use poem_openapi::payload::Json;
use tokio::io::{AsyncRead, ReadBuf};

use super::{
    error::{Problem, problem},
    idempotency, spec,
};
use crate::{
    config::LimitsConfig,
    domain::text::{self, Template},
};

/// Longer URLs get a 414 problem from here, well before the HTTP server's own limit (64 KiB),
/// whose 414 has no body.
const MAX_URL_BYTES: usize = 8 * 1024;

/// What the guard needs: the limits and the spec's route templates (to name path parameters).
#[derive(Clone)]
pub struct Guard {
    limits: LimitsConfig,
    routes: Arc<Vec<Template>>,
    spec: spec::Routes,
}

impl Guard {
    /// `doc` is the OpenAPI document; its `paths` name the path parameters.
    pub fn new(limits: LimitsConfig, doc: &serde_json::Value, spec: spec::Routes) -> Guard {
        let routes = doc["paths"]
            .as_object()
            .map(|paths| paths.keys().map(|p| Template::parse(p)).collect())
            .unwrap_or_default();
        Guard {
            limits,
            routes: Arc::new(routes),
            spec,
        }
    }

    pub async fn check<E: Endpoint>(&self, next: E, mut req: Request) -> poem::Result<Response> {
        if let Some(refusal) = self.url_refusal(&req).or_else(|| key_refusal(&req)) {
            return Ok(refusal);
        }
        if is_csv(&req) {
            let limit = self.limits.max_csv_body_bytes;
            if declared_length(&req).is_some_and(|n| n > limit) {
                return Ok(too_large("CSV upload", limit));
            }
            let body = req.take_body().into_async_read();
            req.set_body(Body::from_async_read(Capped {
                inner: body,
                left: limit,
            }));
        } else if req.method() != poem::http::Method::GET {
            match self.json_body(&mut req).await {
                Ok(()) => {}
                Err(refusal) => return Ok(refusal),
            }
        }
        next.call(req).await.map(IntoResponse::into_response)
    }

    fn url_refusal(&self, req: &Request) -> Option<Response> {
        if req.uri().to_string().len() > MAX_URL_BYTES {
            return Some(render(problem(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                format!("the URL is longer than {MAX_URL_BYTES} bytes"),
            )));
        }
        let segments = text::decoded_segments(req.uri().path());
        if let Some(field) = text::control_in_path(&self.routes, &segments) {
            return Some(refuse(StatusCode::BAD_REQUEST, "invalid_parameter", field));
        }
        let field = text::control_in_query(req.uri().query().unwrap_or(""))?;
        Some(refuse(StatusCode::BAD_REQUEST, "invalid_parameter", field))
    }

    /// Reads a JSON (or untyped) body within the limit, refuses control characters in it and
    /// puts it back for the handler.
    async fn json_body(&self, req: &mut Request) -> Result<(), Response> {
        let limit = self.limits.max_json_body_bytes;
        if declared_length(req).is_some_and(|n| n > limit as u64) {
            return Err(too_large("JSON body", limit as u64));
        }
        let bytes = req
            .take_body()
            .into_bytes_limit(limit)
            .await
            .map_err(|_| too_large("JSON body", limit as u64))?;
        if bytes.starts_with(text::BOM) {
            return Err(render(problem(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                "the body starts with a byte-order mark (EF BB BF): send it without one".into(),
            )));
        }
        if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            if let Some(field) = text::control_field(&doc) {
                return Err(refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    field,
                ));
            }
            if let Some(field) = self.spec.not_text(req.method(), req.uri().path(), &doc) {
                let mut p = problem(
                    StatusCode::BAD_REQUEST,
                    "malformed_body",
                    format!("`{field}` must be a string"),
                );
                p.field = Some(field);
                return Err(render(p));
            }
        }
        req.set_body(bytes);
        Ok(())
    }
}

/// An `Idempotency-Key` that could not be stored as sent, on whichever endpoint it arrives.
fn key_refusal(req: &Request) -> Option<Response> {
    let key = req.headers().get(idempotency::HEADER)?;
    if idempotency::is_valid(key.as_bytes()) {
        return None;
    }
    let mut p = problem(
        StatusCode::BAD_REQUEST,
        "invalid_idempotency_key",
        idempotency::rule(),
    );
    p.field = Some(idempotency::HEADER.into());
    Some(render(p))
}

fn is_csv(req: &Request) -> bool {
    req.content_type()
        .is_some_and(|t| t.trim_start().starts_with("text/csv"))
}

fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn render(p: Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
    Json(p)
        .with_content_type("application/problem+json")
        .with_status(status)
        .into_response()
}

fn refuse(status: StatusCode, code: &str, field: String) -> Response {
    let mut p = problem(
        status,
        code,
        format!("`{field}` contains a control character"),
    );
    p.field = Some(field);
    render(p)
}

fn too_large(what: &str, limit: u64) -> Response {
    render(problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the {what} is larger than {limit} bytes"),
    ))
}

/// A CSV body that fails once more than its limit has been read, so an upload streams without
/// ever being held whole.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: AsyncRead + Unpin> AsyncRead for Capped<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > self.left {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the CSV upload is larger than the configured limit",
            )));
        }
        self.left -= read;
        polled
    }
}
