//! Errors the transport makes, in JSON: the layer `serve` puts around a service's
//! routes refuses over-long URIs (414), times out stalled request bodies (408), and
//! turns every error answer that is not JSON (axum's rejections: 405 with an empty
//! body, 413 and path/query/body rejections in plain text) into a `TransportError`
//! the service renders in its own error shape. Answers that already are JSON (a
//! route's own error shape) pass untouched.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tower_http::timeout::TimeoutBody;

use crate::server_config::ServerConfig;

/// An error of the transport, for the service to render in its error shape.
#[derive(Debug, Clone)]
pub struct TransportError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, sent as `Retry-After` by the renderer.
    pub retry_after: Option<u64>,
}

impl TransportError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        TransportError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

/// How a service writes a `TransportError` (its `{error, error_code, …}` shape).
pub type Render = fn(TransportError) -> Response;

/// A JSON error answer; with `retry_after` (seconds) the body gains `retry_after` and
/// the answer a `Retry-After` header, so a client that obeys either waits the same.
pub fn error_response(
    status: StatusCode,
    mut body: serde_json::Value,
    retry_after: Option<u64>,
) -> Response {
    if let Some(s) = retry_after {
        body["retry_after"] = serde_json::json!(s);
    }
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(s) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

#[derive(Clone)]
struct Settings {
    max_uri_bytes: usize,
    body_read_timeout: Duration,
    render: Render,
}

/// Puts the transport layer around `app` (done by `serve`).
pub fn layer(app: Router, config: &ServerConfig, render: Render) -> Router {
    let settings = Settings {
        max_uri_bytes: config.max_uri_bytes,
        body_read_timeout: config.body_read_timeout,
        render,
    };
    app.layer(axum::middleware::from_fn_with_state(settings, transport))
}

async fn transport(State(s): State<Settings>, req: Request, next: Next) -> Response {
    let uri_len = req
        .uri()
        .path_and_query()
        .map_or(req.uri().path().len(), |p| p.as_str().len());
    if uri_len > s.max_uri_bytes {
        return (s.render)(TransportError::new(
            StatusCode::URI_TOO_LONG,
            "URI_TOO_LONG",
            format!("request URI longer than {} bytes", s.max_uri_bytes),
        ));
    }
    // A body that stops arriving fails the handler's read (a plain-text 400 from axum);
    // the flag says why, so the answer is 408.
    let timed_out = Arc::new(AtomicBool::new(false));
    let flag = timed_out.clone();
    let (parts, body) = req.into_parts();
    let body = TimeoutBody::new(s.body_read_timeout, body).map_err(move |e| {
        if e.is::<tower_http::timeout::TimeoutError>() {
            flag.store(true, Ordering::Relaxed);
        }
        e
    });
    let resp = next.run(Request::from_parts(parts, Body::new(body))).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&resp) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // axum's rejection texts are short; an error body that is not, is not read.
    let text = match http_body_util::Limited::new(body, 4096).collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
        Err(_) => String::new(),
    };
    let e = if timed_out.load(Ordering::Relaxed) {
        TransportError::new(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            format!(
                "request body not received within {:?} (body_read_timeout)",
                s.body_read_timeout
            ),
        )
    } else {
        classify(status, &text)
    };
    let mut fresh = (s.render)(e);
    // Keep what the original answer said beyond its body (`Allow` of a 405, CORS).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE
            && name != header::CONTENT_LENGTH
            && !fresh.headers().contains_key(name)
        {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}

/// Whether `e` (a body-read rejection a handler got) comes from `body_read_timeout`:
/// for handlers that answer body errors in their own shape (the router's `/inference`).
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The code and message of an error answer a handler did not write itself (axum's
/// rejections): the status decides; for a 400, axum's text tells a path from a query
/// from a body. Server errors never pass their text on.
pub fn classify(status: StatusCode, text: &str) -> TransportError {
    let reason = status.canonical_reason().unwrap_or("error");
    let message = if text.is_empty() || status.is_server_error() {
        reason.to_string()
    } else {
        text.chars().take(500).collect()
    };
    let code = match status {
        StatusCode::BAD_REQUEST if text.starts_with("Invalid URL") => "INVALID_PATH",
        StatusCode::BAD_REQUEST if text.starts_with("Failed to deserialize query string") => {
            "INVALID_QUERY"
        }
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "INVALID_REQUEST",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::REQUEST_TIMEOUT => "REQUEST_TIMEOUT",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::URI_TOO_LONG => "URI_TOO_LONG",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "HEADERS_TOO_LARGE",
        StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
        StatusCode::SERVICE_UNAVAILABLE => "UNAVAILABLE",
        s if s.is_server_error() => "INTERNAL",
        _ => "INVALID_REQUEST",
    };
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED if text.is_empty() => {
            "method not allowed on this route".to_string()
        }
        _ => message,
    };
    TransportError::new(status, code, message)
}

/// A small, fully buffered response as HTTP/1.1 bytes with `Connection: close`, for
/// answers written before (or instead of) hyper.
pub async fn to_http1_bytes(resp: Response) -> Vec<u8> {
    let (parts, body) = resp.into_parts();
    let body = match http_body_util::Limited::new(body, 64 << 10).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Default::default(),
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH || name == header::CONNECTION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_get_codes_by_status_and_kind() {
        let c = |s: u16, t: &str| classify(StatusCode::from_u16(s).unwrap(), t).code;
        assert_eq!(c(400, "Invalid URL: Cannot parse `\\xFF`"), "INVALID_PATH");
        assert_eq!(
            c(400, "Failed to deserialize query string: x"),
            "INVALID_QUERY"
        );
        assert_eq!(
            c(400, "Failed to buffer the request body"),
            "INVALID_REQUEST"
        );
        assert_eq!(c(405, ""), "METHOD_NOT_ALLOWED");
        assert_eq!(c(413, "length limit exceeded"), "PAYLOAD_TOO_LARGE");
        assert_eq!(c(500, "secret detail"), "INTERNAL");
        assert_eq!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, "secret detail").message,
            "Internal Server Error"
        );
    }

    #[tokio::test]
    async fn responses_become_http1_bytes() {
        let resp = (
            StatusCode::URI_TOO_LONG,
            axum::Json(serde_json::json!({"a": 1})),
        );
        let bytes = to_http1_bytes(axum::response::IntoResponse::into_response(resp)).await;
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{text}");
        assert!(text.contains("content-type: application/json\r\n"));
        assert!(text.ends_with("content-length: 7\r\nconnection: close\r\n\r\n{\"a\":1}"));
    }
}
