//! Error bodies and request ids.
//!
//! API errors are Problem Details (RFC 9457, `application/problem+json`) carrying the
//! request id. Handlers return a [`Problem`] without knowing that id: the response keeps
//! the problem in an extension and the request-id middleware renders the body, so every
//! error, from any layer, gets the same id as the `X-Request-Id` header.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ids;
use super::ratelimit::RateInfo;

/// Prefix of every problem `type` URI. Only `invalid-request` is documented; the other
/// suffixes are the sandbox's own.
pub(crate) const PROBLEM_TYPE_BASE: &str = "https://developer.api.autodesk.com/problems/";

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) const X_RATE_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub(crate) const X_RATE_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub(crate) const X_RATE_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// A per-field validation problem.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FieldError {
    pub field: String,
    pub title: String,
    pub detail: String,
}

/// A Problem Details error, rendered by [`request_id_layer`]. Boxed: it travels in
/// `Result`s on every handler path and should stay one pointer wide.
#[derive(Clone, Debug)]
pub(crate) struct Problem(Box<ProblemData>);

#[derive(Clone, Debug)]
pub(crate) struct ProblemData {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub headers: HeaderMap,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self(Box::new(ProblemData {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            headers: HeaderMap::new(),
        }))
    }

    /// 400, the documented `invalid-request` type.
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
            detail,
        )
    }

    /// 400 naming the offending field.
    pub fn invalid_field(field: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let mut p = Self::invalid_request(detail.clone());
        p.0.errors.push(FieldError {
            field: field.to_owned(),
            title: "Invalid value".to_owned(),
            detail,
        });
        p
    }

    /// The one 403 for both an unknown team and a team the caller does not administer,
    /// so the answer does not reveal which teams exist.
    pub fn forbidden_team() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "You do not have permission to access this team.",
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 429 with `Retry-After` and the rate headers.
    pub fn rate_limited(info: RateInfo) -> Self {
        let mut p = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limit-exceeded",
            "Too many requests",
            format!(
                "Rate limit of {} requests per minute exceeded; retry after {} seconds.",
                info.limit, info.reset_secs
            ),
        );
        p.0.headers
            .insert(header::RETRY_AFTER, HeaderValue::from(info.reset_secs));
        p.with_rate(info)
    }

    /// Adds the rate-limit headers (the limiter has processed this request).
    pub fn with_rate(mut self, info: RateInfo) -> Self {
        add_rate_headers(&mut self.0.headers, info);
        self
    }
}

/// Writes the rate-limit headers. Autodesk's real header names are unknown; these are the
/// common `X-RateLimit-*` ones, with `Reset` in seconds until the window resets.
pub(crate) fn add_rate_headers(headers: &mut HeaderMap, info: RateInfo) {
    headers.insert(X_RATE_LIMIT, HeaderValue::from(info.limit));
    headers.insert(X_RATE_REMAINING, HeaderValue::from(info.remaining));
    headers.insert(X_RATE_RESET, HeaderValue::from(info.reset_secs));
}

/// Carried on a response until the middleware renders it with the request id.
#[derive(Clone, Debug)]
struct PendingProblem(Problem);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut res = (self.0.status, self.0.headers.clone()).into_response();
        res.extensions_mut().insert(PendingProblem(self));
        res
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    instance: &'a str,
    request_id: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

fn render_problem(p: &ProblemData, request_id: &str, instance: &str, res: &mut Response) {
    let body = ProblemBody {
        kind: format!("{PROBLEM_TYPE_BASE}{}", p.slug),
        title: p.title,
        status: p.status.as_u16(),
        detail: &p.detail,
        instance,
        request_id,
        errors: &p.errors,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res.headers_mut().remove(header::CONTENT_LENGTH);
    *res.body_mut() = axum::body::Body::from(bytes);
}

/// Accepts a client request id if it is 1–128 of `A-Z a-z 0-9 . _ -` after trimming.
pub(crate) fn valid_request_id(raw: &HeaderValue) -> Option<String> {
    let s = raw.to_str().ok()?.trim();
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    ok.then(|| s.to_owned())
}

/// Middleware on every route: drops the `X-RateLimit-*` headers when
/// `quirks.rate_limit_headers` is off (`Retry-After` stays: it is standard HTTP).
pub(crate) async fn rate_headers_layer(
    axum::extract::State(sb): axum::extract::State<super::Sandbox>,
    req: Request,
    next: Next,
) -> Response {
    let mut res = next.run(req).await;
    if !sb.quirks().rate_limit_headers {
        for name in [X_RATE_LIMIT, X_RATE_REMAINING, X_RATE_RESET] {
            res.headers_mut().remove(name);
        }
    }
    res
}

/// Middleware on every route: settles the request id, echoes it, renders problems.
pub(crate) async fn request_id_layer(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(valid_request_id)
        .unwrap_or_else(ids::request_id);
    let instance = req.uri().path().to_owned();
    let mut res = next.run(req).await;
    if let Some(PendingProblem(p)) = res.extensions_mut().remove::<PendingProblem>() {
        render_problem(&p.0, &id, &instance, &mut res);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    res
}

/// The APS gateway error format (`application/json`), used by default for 401 and for a
/// token without the needed scope. Its exact fields on this API are unknown; these are
/// the ones other APS APIs use.
pub(crate) fn aps_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "developerMessage": message,
        "errorCode": code,
        "more info": "https://aps.autodesk.com/en/docs/oauth/v2/developers_guide/error_handling/",
    });
    (status, axum::Json(body)).into_response()
}

/// An OAuth 2.0 error body (RFC 6749 §5.2).
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_rules() {
        let v = |s: &str| valid_request_id(&HeaderValue::from_bytes(s.as_bytes()).unwrap());
        assert_eq!(v("  abc-1.2_3 "), Some("abc-1.2_3".to_owned()));
        assert_eq!(v(""), None);
        assert_eq!(v("has space"), None);
        assert_eq!(v(&"a".repeat(128)), Some("a".repeat(128)));
        assert_eq!(v(&"a".repeat(129)), None);
        assert_eq!(v("ünï"), None);
    }
}
