//! The built-in endpoints (docs/identity.md), with the wire format of the
//! service the gateway replaces: `tokens` starts, rotates and ends
//! sessions; `account` lists and revokes them for their bearer, changes
//! passwords and resets them.

mod account;
mod tokens;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::error::AccountError;
use super::input::Fields;
use super::Identity;
use crate::auth::Principal;
use crate::config::Endpoint;
use crate::http::body::{check_declared_length, BodyTooLarge, RequestStats, ResponseBody};
use crate::http::headers;
use crate::telemetry::metrics::SigninOutcome;

/// Largest request body the endpoints read.
pub const MAX_BODY: usize = 64 * 1024;

/// One endpoint request as routing hands it over.
pub struct Call<'a> {
    pub endpoint: Endpoint,
    pub req: Request<Incoming>,
    /// The normalised path (`DELETE /sessions/{sid}` reads the `sid`).
    pub path: &'a str,
    /// The verified bearer, on the endpoints that need one.
    pub principal: Option<&'a Principal>,
    /// The body must arrive within it.
    pub read_timeout: Duration,
    pub stats: &'a RequestStats,
}

/// Answers one endpoint request.
pub async fn serve(id: &Identity, call: Call<'_>) -> Result<Response<ResponseBody>, AccountError> {
    let endpoint = call.endpoint;
    let allowed = endpoint.method();
    let head = allowed == Method::GET && call.req.method() == Method::HEAD;
    if call.req.method() != allowed && !head {
        return Err(AccountError::Method(allowed));
    }
    // Routing verified the token of these; without one, fail closed.
    let bearer = || call.principal.ok_or(AccountError::WrongCredentials);
    match endpoint {
        Endpoint::Jwks => {
            return Ok(json_response(
                StatusCode::OK,
                id.access_keys.jwks().to_string(),
                "max-age=300",
            ))
        }
        Endpoint::Sessions => return account::sessions(id, bearer()?).await,
        Endpoint::SessionDelete => {
            let sid = call.path.strip_prefix("/sessions/").unwrap_or_default();
            return account::delete_session(id, bearer()?, sid).await;
        }
        Endpoint::PasswordReset if id.mailer.is_none() => return Err(AccountError::NotServed),
        _ => {}
    }
    let principal = call.principal;
    let body = read_body(call.req, call.read_timeout).await?;
    call.stats
        .bytes_in
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let fields = Fields::parse(&body)?;
    match endpoint {
        Endpoint::Signup => {
            let res = tokens::signup(id, &fields).await;
            if res.is_ok() {
                id.metrics.signups.inc();
            }
            res
        }
        Endpoint::Signin => {
            let res = tokens::signin(id, &fields).await;
            id.metrics.signin(match &res {
                Ok(_) => SigninOutcome::Success,
                Err(AccountError::Throttled(_)) => SigninOutcome::Throttled,
                Err(_) => SigninOutcome::Failure,
            });
            res
        }
        Endpoint::RefreshToken => tokens::refresh(id, &fields).await,
        Endpoint::Signout => tokens::signout(id, &fields).await,
        Endpoint::Password => {
            let principal = principal.ok_or(AccountError::WrongCredentials)?;
            account::change_password(id, principal, &fields).await
        }
        Endpoint::PasswordReset => account::request_reset(id, &fields),
        Endpoint::PasswordResetConfirm => account::confirm_reset(id, &fields).await,
        Endpoint::Jwks | Endpoint::Sessions | Endpoint::SessionDelete => {
            unreachable!("answered above")
        }
    }
}

pub(crate) async fn read_body(
    req: Request<Incoming>,
    timeout: Duration,
) -> Result<Bytes, AccountError> {
    check_declared_length(req.headers(), MAX_BODY as u64)?;
    let read = Limited::new(req.into_body(), MAX_BODY).collect();
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(AccountError::BodyTimeout),
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(BodyTooLarge(MAX_BODY as u64).into())
        }
        Ok(Err(_)) => Err(AccountError::InvalidInput(
            "the request body could not be read".into(),
        )),
    }
}

pub(crate) fn json_response(
    status: StatusCode,
    body: String,
    cache: &'static str,
) -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::full(Bytes::from(body)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        &headers::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(&headers::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

fn no_content() -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::full(Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}
