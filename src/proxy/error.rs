//! `GatewayError`: every failure on the request path, each stage's own
//! error kept whole, and the one mapping from a failure to its status,
//! extra headers and JSON body (docs/routing.md, docs/identity.md, docs/authorizer.md). Every match
//! below is exhaustive with no catch-all arm, so a new variant does not
//! compile until it has a status and its headers.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::auth::AuthError;
use crate::http::body::{BodyTooLarge, ResponseBody};
use crate::http::head::HeadError;
use crate::http::headers;
use crate::identity::AccountError;
use crate::proxy::cors::CorsRefusal;
use crate::proxy::route::PathError;
use crate::proxy::upstream::UpstreamError;
use crate::telemetry::metrics::UpstreamErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A head hyper parsed but a proxy must refuse (the connection closes).
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("no route matches this path")]
    NotFound,
    /// The methods the path's routes allow (the `Allow` value).
    #[error("this route does not allow the method")]
    MethodNotAllowed(Vec<Method>),
    #[error(transparent)]
    Cors(#[from] CorsRefusal),
    /// A declared `Content-Length` over the route's limit.
    #[error(transparent)]
    TooLarge(#[from] BodyTooLarge),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// `/readyz` before start-up finished or once shutdown began.
    #[error("not ready: starting or shutting down")]
    NotReady,
    /// A rate-limit policy of the route refused the request.
    #[error("rate limit exceeded ({}); retry in {} s", .0.policies.join(", "), .0.retry_after)]
    RateLimited(crate::ratelimit::Denied),
    /// The admin API without `Authorization: Bearer <admin.token>`.
    #[error("the admin API needs `Authorization: Bearer <admin.token>`")]
    AdminUnauthorized,
}

/// `Retry-After` while the user store cannot be reached (docs/clusters.md).
const STORE_RETRY_AFTER: u64 = 5;

/// What a failure adds to its response besides the JSON body.
enum Extra {
    None,
    Allow(String),
    Challenge(Cow<'static, str>),
    RetryAfter(u64),
    /// The stream is desynced or ambiguous: never reuse the connection.
    Close,
}

// === impl GatewayError ===

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::Head(e) => head_status(e),
            GatewayError::Path(_) => StatusCode::BAD_REQUEST,
            GatewayError::NotFound => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::Cors(_) => StatusCode::FORBIDDEN,
            GatewayError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::Auth(e) => match e {
                AuthError::MissingToken | AuthError::InvalidToken => StatusCode::UNAUTHORIZED,
                AuthError::InsufficientScope(_) => StatusCode::FORBIDDEN,
                AuthError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            },
            GatewayError::Account(e) => account_status(e),
            GatewayError::Upstream(e) => upstream_status(e),
            GatewayError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::AdminUnauthorized => StatusCode::UNAUTHORIZED,
            GatewayError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The `kind` of `gateway_upstream_errors_total` this failure counts as, if any.
    pub fn upstream_kind(&self) -> Option<UpstreamErrorKind> {
        if let GatewayError::Upstream(e) = self {
            return e.metric_kind();
        }
        None
    }

    /// Is this the client's fault (logged at debug) rather than ours or the upstream's?
    pub fn is_client_fault(&self) -> bool {
        self.status().is_client_error()
    }

    /// The `message` of the JSON body: our own failures keep their detail
    /// for the log and say only "internal error".
    pub fn message(&self) -> Cow<'static, str> {
        match self.status() == StatusCode::INTERNAL_SERVER_ERROR {
            true => Cow::Borrowed("internal error"),
            false => Cow::Owned(self.to_string()),
        }
    }

    fn extra(&self) -> Extra {
        match self {
            GatewayError::Head(_) => Extra::Close,
            GatewayError::MethodNotAllowed(methods) => Extra::Allow(allow(methods)),
            GatewayError::Auth(AuthError::StoreUnavailable) => Extra::RetryAfter(STORE_RETRY_AFTER),
            GatewayError::Auth(e) => Extra::Challenge(challenge(e)),
            GatewayError::RateLimited(d) => Extra::RetryAfter(d.retry_after),
            GatewayError::AdminUnauthorized => {
                Extra::Challenge(Cow::Borrowed("Bearer realm=\"admin\""))
            }
            GatewayError::Account(e) => match e {
                AccountError::Method(m) => Extra::Allow(m.to_string()),
                AccountError::Throttled(secs) => Extra::RetryAfter(*secs),
                AccountError::Unavailable(_) => Extra::RetryAfter(STORE_RETRY_AFTER),
                AccountError::WrongPassword => {
                    Extra::Challenge(challenge(&AuthError::MissingToken))
                }
                AccountError::BodyTimeout | AccountError::BodyTooLarge(_) => Extra::Close,
                AccountError::InvalidInput(_)
                | AccountError::EmailTaken
                | AccountError::WrongCredentials
                | AccountError::NotServed
                | AccountError::RefreshRejected
                | AccountError::Store(_)
                | AccountError::Hash(_)
                | AccountError::Sign(_)
                | AccountError::NoSuchUser
                | AccountError::NoSuchSession
                | AccountError::ResetRejected
                | AccountError::Random(_) => Extra::None,
            },
            // A body not read to its end, or that broke off: the stream is desynced.
            GatewayError::TooLarge(_) => Extra::Close,
            GatewayError::Upstream(e) => match e {
                UpstreamError::BodyTooLarge(_) | UpstreamError::ClientBody(_) => Extra::Close,
                UpstreamError::Connect(_)
                | UpstreamError::Timeout
                | UpstreamError::Reset(_)
                | UpstreamError::Protocol(_) => Extra::None,
            },
            GatewayError::Path(_)
            | GatewayError::NotFound
            | GatewayError::Cors(_)
            | GatewayError::NotReady => Extra::None,
        }
    }

    /// The response the client sees: status, implied headers, JSON body.
    pub fn into_response(self) -> Response<ResponseBody> {
        let status = self.status();
        let mut res = Response::new(ResponseBody::full(error_body(status, &self.message())));
        *res.status_mut() = status;
        let h = res.headers_mut();
        h.insert(
            &headers::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        add_extra(h, self.extra());
        res
    }

    /// The failure and its causes, outermost first, for the error log.
    pub fn chain(&self) -> String {
        crate::telemetry::logging::error_chain(self)
    }
}

fn head_status(e: &HeadError) -> StatusCode {
    match e {
        HeadError::MethodTooLong | HeadError::UnsupportedCoding => StatusCode::NOT_IMPLEMENTED,
        HeadError::TargetTooLong => StatusCode::URI_TOO_LONG,
        HeadError::ChunkedTwice
        | HeadError::ConflictingFraming
        | HeadError::MissingHost
        | HeadError::DuplicateHost
        | HeadError::InvalidHost
        | HeadError::HostMismatch
        | HeadError::UnsupportedTarget => StatusCode::BAD_REQUEST,
    }
}

fn account_status(e: &AccountError) -> StatusCode {
    match e {
        AccountError::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
        AccountError::InvalidInput(_) => StatusCode::BAD_REQUEST,
        AccountError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        AccountError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        AccountError::EmailTaken => StatusCode::CONFLICT,
        AccountError::WrongCredentials | AccountError::WrongPassword => StatusCode::UNAUTHORIZED,
        AccountError::NotServed => StatusCode::NOT_FOUND,
        AccountError::RefreshRejected | AccountError::ResetRejected => StatusCode::FORBIDDEN,
        AccountError::NoSuchUser | AccountError::NoSuchSession => StatusCode::NOT_FOUND,
        AccountError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
        AccountError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        AccountError::Store(_)
        | AccountError::Hash(_)
        | AccountError::Sign(_)
        | AccountError::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn upstream_status(e: &UpstreamError) -> StatusCode {
    match e {
        UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        UpstreamError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        UpstreamError::ClientBody(_) => StatusCode::BAD_REQUEST,
        UpstreamError::Connect(_) | UpstreamError::Reset(_) | UpstreamError::Protocol(_) => {
            StatusCode::BAD_GATEWAY
        }
    }
}

/// The `WWW-Authenticate` challenge of a refused token (docs/authorizer.md).
fn challenge(e: &AuthError) -> Cow<'static, str> {
    match e {
        // A 503 is no refusal of the token; it gets `Retry-After` instead.
        AuthError::MissingToken | AuthError::StoreUnavailable => {
            Cow::Borrowed("Bearer realm=\"gateway\"")
        }
        AuthError::InvalidToken => {
            Cow::Borrowed("Bearer realm=\"gateway\", error=\"invalid_token\"")
        }
        AuthError::InsufficientScope(scopes) => Cow::Owned(format!(
            "Bearer realm=\"gateway\", error=\"insufficient_scope\", scope=\"{scopes}\""
        )),
    }
}

fn allow(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn add_extra(h: &mut HeaderMap, extra: Extra) {
    match extra {
        Extra::None => {}
        Extra::Allow(list) => {
            if let Ok(v) = HeaderValue::from_str(&list) {
                h.insert(&headers::ALLOW, v);
            }
        }
        Extra::Challenge(c) => {
            if let Ok(v) = HeaderValue::from_str(&c) {
                h.insert(&headers::WWW_AUTHENTICATE, v);
            }
        }
        Extra::RetryAfter(secs) => {
            h.insert(&headers::RETRY_AFTER, HeaderValue::from(secs));
        }
        Extra::Close => {
            h.insert(&headers::CONNECTION, HeaderValue::from_static("close"));
        }
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

    fn io() -> std::io::Error {
        std::io::Error::other("disk on fire at /secret/path")
    }

    /// Every variant of every stage enum, with its status (docs/routing.md, docs/identity.md, docs/authorizer.md).
    fn every_failure() -> Vec<(GatewayError, u16)> {
        use crate::identity::store::StoreError;
        let boxed = || -> crate::http::body::BoxError { "x".into() };
        let mut cases: Vec<(GatewayError, u16)> = vec![
            (HeadError::MethodTooLong.into(), 501),
            (HeadError::TargetTooLong.into(), 414),
            (HeadError::UnsupportedCoding.into(), 501),
            (HeadError::ChunkedTwice.into(), 400),
            (HeadError::ConflictingFraming.into(), 400),
            (HeadError::MissingHost.into(), 400),
            (HeadError::DuplicateHost.into(), 400),
            (HeadError::InvalidHost.into(), 400),
            (HeadError::HostMismatch.into(), 400),
            (HeadError::UnsupportedTarget.into(), 400),
            (GatewayError::NotFound, 404),
            (GatewayError::MethodNotAllowed(vec![Method::GET]), 405),
            (CorsRefusal::Origin.into(), 403),
            (CorsRefusal::Method.into(), 403),
            (CorsRefusal::Header.into(), 403),
            (BodyTooLarge(1).into(), 413),
            (AuthError::MissingToken.into(), 401),
            (AuthError::InvalidToken.into(), 401),
            (AuthError::InsufficientScope("a".into()).into(), 403),
            (AccountError::Method(Method::POST).into(), 405),
            (AccountError::InvalidInput("x".into()).into(), 400),
            (AccountError::BodyTimeout.into(), 408),
            (AccountError::BodyTooLarge(BodyTooLarge(1)).into(), 413),
            (AccountError::EmailTaken.into(), 409),
            (AccountError::WrongCredentials.into(), 401),
            (AccountError::RefreshRejected.into(), 403),
            (AccountError::Throttled(3).into(), 429),
            (
                AccountError::Store(StoreError::Folder {
                    path: "/secret/path".into(),
                    source: io(),
                })
                .into(),
                500,
            ),
            (UpstreamError::Timeout.into(), 504),
            (UpstreamError::BodyTooLarge(1).into(), 413),
            (UpstreamError::ClientBody(boxed()).into(), 400),
            (UpstreamError::Connect(boxed()).into(), 502),
            (UpstreamError::Reset(boxed()).into(), 502),
            (UpstreamError::Protocol(boxed()).into(), 502),
            (GatewayError::NotReady, 503),
        ];
        for p in [
            PathError::NotAbsolute,
            PathError::InvalidEscape,
            PathError::ForbiddenEscape,
            PathError::Backslash,
            PathError::AboveRoot,
            PathError::AmbiguousSegment,
        ] {
            cases.push((p.into(), 400));
        }
        cases
    }

    #[test]
    fn statuses_match_the_spec() {
        for (err, want) in every_failure() {
            assert_eq!(err.status().as_u16(), want, "{err:?}");
        }
    }

    #[test]
    fn every_failure_has_the_spec_body_and_headers() {
        for (err, want) in every_failure() {
            let name = format!("{err:?}");
            let res = err.into_response();
            assert_eq!(res.status().as_u16(), want, "{name}");
            assert_eq!(res.headers()[&headers::CONTENT_TYPE], "application/json");
            let h = res.headers();
            let close = h.get(&headers::CONNECTION).is_some_and(|v| v == "close");
            let expect_close = name.starts_with("Head(")
                || name.starts_with("TooLarge(")
                || name.contains("BodyTimeout")
                || name.contains("BodyTooLarge")
                || name.contains("ClientBody");
            assert_eq!(close, expect_close, "Connection: close on {name}");
            let challenged = h.contains_key(&headers::WWW_AUTHENTICATE);
            assert_eq!(
                challenged,
                name.starts_with("Auth("),
                "WWW-Authenticate on {name}"
            );
            assert_eq!(
                h.contains_key(&headers::ALLOW),
                want == 405,
                "Allow on {name}"
            );
            assert_eq!(
                h.contains_key(&headers::RETRY_AFTER),
                want == 429,
                "Retry-After on {name}"
            );
        }
    }

    #[test]
    fn challenges_name_the_error_and_scopes() {
        let h = |e: AuthError| {
            GatewayError::from(e).into_response().headers()[&headers::WWW_AUTHENTICATE].clone()
        };
        assert_eq!(h(AuthError::MissingToken), "Bearer realm=\"gateway\"");
        assert_eq!(
            h(AuthError::InvalidToken),
            "Bearer realm=\"gateway\", error=\"invalid_token\""
        );
        assert_eq!(
            h(AuthError::InsufficientScope("a b".into())),
            "Bearer realm=\"gateway\", error=\"insufficient_scope\", scope=\"a b\""
        );
    }

    #[tokio::test]
    async fn throttled_says_when_to_retry_and_internal_hides_its_detail() {
        use crate::identity::store::StoreError;
        use http_body_util::BodyExt;
        let res = GatewayError::from(AccountError::Throttled(42)).into_response();
        assert_eq!(res.headers()[&headers::RETRY_AFTER], "42");
        let err = GatewayError::from(AccountError::Store(StoreError::Folder {
            path: "/secret/path".into(),
            source: io(),
        }));
        assert!(
            err.chain().contains("disk on fire"),
            "the log keeps the cause: {}",
            err.chain()
        );
        let body = err
            .into_response()
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
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
        let res = GatewayError::from(AccountError::Method(Method::POST)).into_response();
        assert_eq!(res.headers()[&headers::ALLOW], "POST");
    }
}
