//! `POST /signup`, `/signin`, `/refresh-token`, `/signout`: sessions
//! started, their refresh tokens rotated (with reuse detection and the
//! `reuse_interval` grace), and ended by `scope`.

use std::time::Instant;

use http::{Response, StatusCode};

use super::{json_response, no_content};
use crate::auth::jwt::now_unix;
use crate::http::body::ResponseBody;
use crate::identity::error::AccountError;
use crate::identity::input::{check_new_password, Fields};
use crate::identity::records::{Session, User};
use crate::identity::store::{Presentation, Presented, SignoutScope};
use crate::identity::tokens::{new_id, Issued, RefreshClaims};
use crate::identity::Identity;

pub(super) async fn signup(
    id: &Identity,
    f: &Fields,
) -> Result<Response<ResponseBody>, AccountError> {
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
        reset_sent_at: None,
    };
    let (sid, issued, session) = new_session(id, &user, now)?;
    id.store().create_user(user, Some((sid, session))).await?;
    Ok(tokens_response(StatusCode::CREATED, &issued))
}

pub(super) async fn signin(
    id: &Identity,
    f: &Fields,
) -> Result<Response<ResponseBody>, AccountError> {
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

pub(super) async fn refresh(
    id: &Identity,
    f: &Fields,
) -> Result<Response<ResponseBody>, AccountError> {
    let claims = id
        .tokens
        .verify_refresh(f.string("refreshToken")?)
        .ok_or(AccountError::RefreshRejected)?;
    let now = now_unix();
    let next_jti = new_id();
    let expires_at = id.tokens.refresh_expiry(now);
    let presented = id
        .store()
        .rotate(presentation(id, &claims), next_jti.clone(), expires_at, now)
        .await?;
    let sid = claims.sid;
    let issued = match accepted(id, presented, &sid)? {
        Taken::Current(user) => id.tokens.issue(&user, &sid, next_jti, now)?,
        Taken::Grace(user, session) => id.tokens.reissue(&user, &sid, &session, now)?,
    };
    Ok(tokens_response(StatusCode::OK, &issued))
}

/// Takes what `/refresh-token` would take, then revokes the sessions the
/// `scope` names; their access tokens stop working now, not when they expire.
pub(super) async fn signout(
    id: &Identity,
    f: &Fields,
) -> Result<Response<ResponseBody>, AccountError> {
    let token = f.string("refreshToken")?;
    let scope = match f.optional_string("scope")? {
        None | Some("local") => SignoutScope::Local,
        Some("others") => SignoutScope::Others,
        Some("global") => SignoutScope::Global,
        Some(_) => {
            return Err(AccountError::InvalidInput(
                "`scope` must be \"local\", \"others\" or \"global\"".into(),
            ))
        }
    };
    let claims = id
        .tokens
        .verify_refresh(token)
        .ok_or(AccountError::RefreshRejected)?;
    let (presented, revoked) = id
        .store()
        .end_session(presentation(id, &claims), scope, now_unix())
        .await?;
    accepted(id, presented, &claims.sid)?;
    revoked.iter().for_each(|sid| id.revoke(sid));
    Ok(no_content())
}

fn presentation(id: &Identity, claims: &RefreshClaims) -> Presentation {
    Presentation {
        sid: claims.sid.clone(),
        user_id: claims.sub.clone(),
        jti: claims.jti.clone(),
        grace: id.reuse_interval,
    }
}

/// A refresh token its session took.
enum Taken {
    Current(User),
    /// Replaced by the last rotation, within `reuse_interval`.
    Grace(User, Session),
}

/// What the session took, or why it did not.
fn accepted(id: &Identity, presented: Presented, sid: &str) -> Result<Taken, AccountError> {
    match presented {
        Presented::Current(user) => Ok(Taken::Current(user)),
        Presented::Grace(user, session) => Ok(Taken::Grace(user, session)),
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
        previous_jti: None,
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
