//! `GatewayError`: every failure on the request path, and the one mapping
//! from a failure to its status, extra headers and JSON body (SPEC section 5).

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};

use crate::body::ResponseBody;
use crate::head::HeadError;
use crate::headers;
use crate::route::PathError;
use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{}", .0.message())]
    BadPath(PathError),
    /// A head hyper parsed but a proxy must refuse (the connection closes).
    #[error("{}", .0.message())]
    BadHead(HeadError),
    #[error("the request has both Content-Length and Transfer-Encoding")]
    ConflictingFraming,
    #[error("no route matches this path")]
    NotFound,
    #[error("this route does not allow the method")]
    MethodNotAllowed(Vec<Method>),
    #[error("the request body is larger than the {0}-byte limit")]
    PayloadTooLarge(u64),
    #[error("this route requires a bearer token")]
    Unauthorized,
    #[error("the bearer token is invalid, expired or revoked")]
    InvalidToken,
    /// The route's required scopes, space separated.
    #[error("the token lacks a scope this route requires: {0}")]
    InsufficientScope(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("CORS preflight refused: {0}")]
    PreflightRefused(&'static str),
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("Email already in use")]
    EmailTaken,
    #[error("Wrong credentials")]
    WrongCredentials,
    #[error("the refresh token is invalid, expired, revoked or already used")]
    RefreshRejected,
    #[error("too many failed sign-ins for this email; retry in {0} s")]
    Throttled(u64),
    /// Our fault (the store, a hashing thread); the detail is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// `/readyz` before start-up finished or once shutdown began.
    #[error("not ready: starting or shutting down")]
    NotReady,
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::BadPath(_)
            | GatewayError::ConflictingFraming
            | GatewayError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            GatewayError::BadHead(e) => e.status(),
            GatewayError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            GatewayError::EmailTaken => StatusCode::CONFLICT,
            GatewayError::WrongCredentials | GatewayError::InvalidToken => StatusCode::UNAUTHORIZED,
            GatewayError::InsufficientScope(_) | GatewayError::PreflightRefused(_) => {
                StatusCode::FORBIDDEN
            }
            GatewayError::RefreshRejected => StatusCode::FORBIDDEN,
            GatewayError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::NotFound => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::Unauthorized => StatusCode::UNAUTHORIZED,
            GatewayError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Upstream(e) => match e {
                UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                UpstreamError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                UpstreamError::ClientBody(_) => StatusCode::BAD_REQUEST,
                UpstreamError::Connect(_)
                | UpstreamError::Reset(_)
                | UpstreamError::Protocol(_) => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// Is this the client's fault (logged at debug) rather than ours or the upstream's?
    pub fn is_client_fault(&self) -> bool {
        self.status().is_client_error()
    }

    /// The response the client sees: status, implied headers, JSON body.
    pub fn into_response(self) -> Response<ResponseBody> {
        let status = self.status();
        let message = match &self {
            GatewayError::Internal(_) => "internal error".to_string(),
            e => e.to_string(),
        };
        let body = error_body(status, &message);
        let mut res = Response::new(ResponseBody::full(body));
        *res.status_mut() = status;
        let h = res.headers_mut();
        h.insert(
            &headers::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match &self {
            GatewayError::MethodNotAllowed(methods) => {
                let list = methods
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Ok(v) = HeaderValue::from_str(&list) {
                    h.insert(&headers::ALLOW, v);
                }
            }
            GatewayError::Unauthorized => {
                h.insert(
                    &headers::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"gateway\""),
                );
            }
            // Smuggling hides in ambiguous framing: never reuse the connection.
            GatewayError::ConflictingFraming | GatewayError::BadHead(_) => {
                h.insert(&headers::CONNECTION, HeaderValue::from_static("close"));
            }
            GatewayError::InvalidToken => {
                h.insert(
                    &headers::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"gateway\", error=\"invalid_token\""),
                );
            }
            GatewayError::InsufficientScope(scopes) => {
                let challenge = format!(
                    "Bearer realm=\"gateway\", error=\"insufficient_scope\", scope=\"{scopes}\""
                );
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    h.insert(&headers::WWW_AUTHENTICATE, v);
                }
            }
            GatewayError::Throttled(secs) => {
                h.insert(&headers::RETRY_AFTER, HeaderValue::from(*secs));
            }
            // A body the client did not finish sending, or that was not read
            // to its end: the stream is desynced.
            GatewayError::RequestTimeout
            | GatewayError::PayloadTooLarge(_)
            | GatewayError::Upstream(
                UpstreamError::BodyTooLarge(_) | UpstreamError::ClientBody(_),
            ) => {
                h.insert(&headers::CONNECTION, HeaderValue::from_static("close"));
            }
            GatewayError::BadPath(_)
            | GatewayError::NotFound
            | GatewayError::InvalidInput(_)
            | GatewayError::PreflightRefused(_)
            | GatewayError::EmailTaken
            | GatewayError::WrongCredentials
            | GatewayError::RefreshRejected
            | GatewayError::Internal(_)
            | GatewayError::NotReady
            | GatewayError::Upstream(_) => {}
        }
        res
    }
}

/// `{"success":false,"statusCode":N,"error":"<reason phrase>","message":"..."}`
pub fn error_body(status: StatusCode, message: &str) -> Bytes {
    let body = serde_json::json!({
        "success": false,
        "statusCode": status.as_u16(),
        "error": status.canonical_reason().unwrap_or("Error"),
        "message": message,
    });
    Bytes::from(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_the_spec() {
        let cases = [
            (GatewayError::BadPath(PathError::AboveRoot), 400),
            (GatewayError::ConflictingFraming, 400),
            (GatewayError::NotFound, 404),
            (GatewayError::MethodNotAllowed(vec![Method::GET]), 405),
            (GatewayError::PayloadTooLarge(1), 413),
            (GatewayError::Unauthorized, 401),
            (GatewayError::InvalidToken, 401),
            (GatewayError::PreflightRefused("x"), 403),
            (GatewayError::InsufficientScope("a".into()), 403),
            (GatewayError::InvalidInput("x".into()), 400),
            (GatewayError::RequestTimeout, 408),
            (GatewayError::EmailTaken, 409),
            (GatewayError::WrongCredentials, 401),
            (GatewayError::RefreshRejected, 403),
            (GatewayError::Throttled(3), 429),
            (GatewayError::Internal("x".into()), 500),
            (GatewayError::Upstream(UpstreamError::Timeout), 504),
            (GatewayError::Upstream(UpstreamError::BodyTooLarge(1)), 413),
            (
                GatewayError::Upstream(UpstreamError::Connect("refused".into())),
                502,
            ),
            (
                GatewayError::Upstream(UpstreamError::Reset("reset".into())),
                502,
            ),
            (
                GatewayError::Upstream(UpstreamError::Protocol("bad".into())),
                502,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.status().as_u16(), want, "{err:?}");
        }
    }

    #[tokio::test]
    async fn throttled_says_when_to_retry_and_internal_hides_its_detail() {
        use http_body_util::BodyExt;
        let res = GatewayError::Throttled(42).into_response();
        assert_eq!(res.headers()[&headers::RETRY_AFTER], "42");
        let res = GatewayError::Internal("disk on fire at /secret/path".into()).into_response();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("internal error") && !body.contains("secret"),
            "{body}"
        );
    }

    #[test]
    fn method_not_allowed_lists_allow() {
        let res = GatewayError::MethodNotAllowed(vec![Method::GET, Method::PUT]).into_response();
        assert_eq!(res.headers()[&headers::ALLOW], "GET, PUT");
    }
}
