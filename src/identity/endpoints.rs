//! `POST /signup`, `/signin`, `/refresh-token`, `/signout`, with the wire
//! format of the service the gateway replaces (docs/identity.md).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::accounts::reset_hash;
use super::error::AccountError;
use super::input::{check_new_password, Fields};
use super::records::{Session, User};
use super::store::{Presentation, Presented};
use super::tokens::{new_id, Issued, RefreshClaims};
use super::Identity;
use crate::auth::jwt::now_unix;
use crate::config::Endpoint;
use crate::http::body::{check_declared_length, BodyTooLarge, RequestStats, ResponseBody};
use crate::http::headers;
use crate::telemetry::metrics::SigninOutcome;

/// Largest request body the endpoints read.
pub const MAX_BODY: usize = 64 * 1024;

/// Answers one endpoint request. The body must arrive within `read_timeout`.
pub async fn serve(
    id: &Identity,
    endpoint: Endpoint,
    req: Request<Incoming>,
    read_timeout: Duration,
    stats: &RequestStats,
) -> Result<Response<ResponseBody>, AccountError> {
    let allowed = endpoint.method();
    let head = allowed == Method::GET && req.method() == Method::HEAD;
    if req.method() != allowed && !head {
        return Err(AccountError::Method(allowed));
    }
    if endpoint == Endpoint::Jwks {
        return Ok(json_response(
            StatusCode::OK,
            id.access_keys.jwks().to_string(),
            "max-age=300",
        ));
    }
    let body = read_body(req, read_timeout).await?;
    stats
        .bytes_in
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let fields = Fields::parse(&body)?;
    match endpoint {
        Endpoint::Signup => {
            let res = signup(id, &fields).await;
            if res.is_ok() {
                id.metrics.signups.inc();
            }
            res
        }
        Endpoint::Signin => {
            let res = signin(id, &fields).await;
            id.metrics.signin(match &res {
                Ok(_) => SigninOutcome::Success,
                Err(AccountError::Throttled(_)) => SigninOutcome::Throttled,
                Err(_) => SigninOutcome::Failure,
            });
            res
        }
        Endpoint::RefreshToken => refresh(id, &fields).await,
        Endpoint::Signout => signout(id, &fields).await,
        Endpoint::PasswordResetConfirm => confirm_reset(id, &fields).await,
        Endpoint::Jwks => unreachable!("answered above"),
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

async fn signup(id: &Identity, f: &Fields) -> Result<Response<ResponseBody>, AccountError> {
    let email = f.email()?;
    let password = f.password()?;
    let first_name = f.name("firstName")?;
    let last_name = f.name("lastName")?;
    check_new_password("password", &password)?;
    // Refuse a taken email before spending a hash on it; the write below
    // checks again, atomically.
    if id.store().email_taken(email.clone()).await? {
        return Err(AccountError::EmailTaken);
    }
    let now = now_unix();
    let user = User {
        id: new_id(),
        email,
        first_name,
        last_name,
        password_hash: id.passwords.hash(password).await?,
        scopes: id.default_scopes.clone(),
        disabled: false,
        created_at: now,
        reset: None,
    };
    let (sid, issued, session) = new_session(id, &user, now)?;
    id.store().create_user(user, Some((sid, session))).await?;
    Ok(tokens_response(StatusCode::CREATED, &issued))
}

async fn signin(id: &Identity, f: &Fields) -> Result<Response<ResponseBody>, AccountError> {
    // No syntax check here: a malformed email is just an unknown one.
    let email = f.string("email")?.trim().to_lowercase();
    let password = f.password()?;
    // This email's other attempts wait until this one has its verdict.
    let mut turn = id.throttle.turn(&email).await;
    turn.admit(Instant::now()).await?;
    let user = id.store().user_by_email(email.clone()).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let matches = id.passwords.verify(password, hash).await?;
    // Unknown, wrong and disabled all took one hash and look the same.
    let user = match user {
        Some(user) if matches && !user.disabled => user,
        _ => {
            turn.failed(Instant::now());
            return Err(AccountError::WrongCredentials);
        }
    };
    turn.accept().await?;
    let now = now_unix();
    let (sid, issued, session) = new_session(id, &user, now)?;
    id.store().start_session(sid, session).await?;
    Ok(tokens_response(StatusCode::OK, &issued))
}

async fn refresh(id: &Identity, f: &Fields) -> Result<Response<ResponseBody>, AccountError> {
    let claims = id
        .tokens
        .verify_refresh(f.string("refreshToken")?)
        .ok_or(AccountError::RefreshRejected)?;
    let now = now_unix();
    let next_jti = new_id();
    let expires_at = id.tokens.refresh_expiry(now);
    let presented = id
        .store()
        .rotate(presentation(&claims), next_jti.clone(), expires_at, now)
        .await?;
    let sid = claims.sid;
    let user = accepted(id, presented, &sid)?;
    let issued = id.tokens.issue(&user, &sid, next_jti, now)?;
    Ok(tokens_response(StatusCode::OK, &issued))
}

async fn signout(id: &Identity, f: &Fields) -> Result<Response<ResponseBody>, AccountError> {
    let claims = id
        .tokens
        .verify_refresh(f.string("refreshToken")?)
        .ok_or(AccountError::RefreshRejected)?;
    let now = now_unix();
    let presented = id.store().end_session(presentation(&claims), now).await?;
    accepted(id, presented, &claims.sid)?;
    // Its access tokens stop working now, not when they expire.
    id.revoke(&claims.sid);
    let mut res = Response::new(ResponseBody::full(Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    Ok(res)
}

/// A reset token (from an operator, or mailed) sets a new password, voids
/// itself and revokes every session; the email's failed sign-ins are forgotten.
async fn confirm_reset(id: &Identity, f: &Fields) -> Result<Response<ResponseBody>, AccountError> {
    let token = f.string("token")?;
    let password = f.string("newPassword")?.to_string();
    check_new_password("newPassword", &password)?;
    let hash = reset_hash(token);
    let now = now_unix();
    // Checked before hashing, so a wrong token costs no bcrypt; the write
    // below checks again, atomically (single use).
    if id.store().user_by_reset(hash.clone(), now).await?.is_none() {
        return Err(AccountError::ResetRejected);
    }
    let password_hash = id.passwords.hash(password).await?;
    let (user, revoked) = id
        .store()
        .confirm_reset(hash, password_hash, now)
        .await?
        .ok_or(AccountError::ResetRejected)?;
    revoked.iter().for_each(|sid| id.revoke(sid));
    id.throttle.clear(&user.email).await?;
    tracing::info!(sessions_revoked = revoked.len(), "password reset confirmed");
    let mut res = Response::new(ResponseBody::full(Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    Ok(res)
}

fn presentation(claims: &RefreshClaims) -> Presentation {
    Presentation {
        sid: claims.sid.clone(),
        user_id: claims.sub.clone(),
        jti: claims.jti.clone(),
    }
}

/// The user a presented refresh token belongs to, if the session took it.
fn accepted(id: &Identity, presented: Presented, sid: &str) -> Result<User, AccountError> {
    match presented {
        Presented::Current(user) => Ok(user),
        Presented::Reused => {
            id.revoke(sid);
            tracing::warn!(
                sid,
                "a rotated refresh token was presented again: session revoked"
            );
            Err(AccountError::RefreshRejected)
        }
        Presented::Dead => Err(AccountError::RefreshRejected),
    }
}

/// A new session id, its first tokens, and the record that remembers them.
fn new_session(
    id: &Identity,
    user: &User,
    now: u64,
) -> Result<(String, Issued, Session), AccountError> {
    let sid = new_id();
    let issued = id.tokens.issue(user, &sid, new_id(), now)?;
    let session = Session {
        user_id: user.id.clone(),
        refresh_jti: issued.refresh_jti.clone(),
        revoked: false,
        expires_at: issued.refresh_exp,
        created_at: now,
        refreshed_at: None,
    };
    Ok((sid, issued, session))
}

fn tokens_response(status: StatusCode, issued: &Issued) -> Response<ResponseBody> {
    let body = serde_json::json!({
        "success": true,
        "data": {
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token,
        }
    });
    // Tokens must not sit in any cache (RFC 6749 section 5.1).
    json_response(status, body.to_string(), "no-store")
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
