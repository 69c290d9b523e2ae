//! What a signed-in user does with their account: `GET /sessions`,
//! `DELETE /sessions/{sid}`, `POST /password`; and the password reset,
//! `POST /password-reset` (mailed through the webhook) and
//! `POST /password-reset/confirm`.

use std::time::Instant;

use http::{Response, StatusCode};
use serde::Serialize;

use super::{json_response, no_content};
use crate::auth::jwt::now_unix;
use crate::auth::Principal;
use crate::http::body::ResponseBody;
use crate::identity::accounts::reset_hash;
use crate::identity::error::AccountError;
use crate::identity::input::{check_new_password, Fields};
use crate::identity::store::{PasswordChange, StoreError, UserRef};
use crate::identity::view::SessionView;
use crate::identity::Identity;

/// One of the caller's sessions; `current` for the token's own.
#[derive(Serialize)]
struct OwnSession {
    #[serde(flatten)]
    session: SessionView,
    current: bool,
}

/// The bearer's live sessions, newest first.
pub(super) async fn sessions(
    id: &Identity,
    caller: &Principal,
) -> Result<Response<ResponseBody>, AccountError> {
    let who = UserRef::Id(caller.sub.to_string());
    let (_, sessions) = id.store().user_sessions(who, now_unix()).await?;
    let data: Vec<OwnSession> = sessions
        .iter()
        .map(|listed| OwnSession {
            session: SessionView::from(listed),
            current: listed.0 == caller.sid,
        })
        .collect();
    let body = serde_json::json!({ "success": true, "data": data });
    Ok(json_response(StatusCode::OK, body.to_string(), "no-store"))
}

/// Revokes one of the bearer's live sessions (its own included).
pub(super) async fn delete_session(
    id: &Identity,
    caller: &Principal,
    sid: &str,
) -> Result<Response<ResponseBody>, AccountError> {
    let who = UserRef::Id(caller.sub.to_string());
    match id
        .store()
        .revoke_session(who, sid.to_string(), now_unix())
        .await
    {
        Ok(true) => {
            id.revoke(sid);
            Ok(no_content())
        }
        Ok(false) | Err(StoreError::NoSuchUser(_)) => Err(AccountError::NoSuchSession),
        Err(e) => Err(e.into()),
    }
}

/// The current password replaced; every other session revoked. A wrong
/// current password counts as a failed sign-in of the email.
pub(super) async fn change_password(
    id: &Identity,
    caller: &Principal,
    f: &Fields,
) -> Result<Response<ResponseBody>, AccountError> {
    let current = f.string("currentPassword")?.to_string();
    let new = f.string("newPassword")?.to_string();
    check_new_password("newPassword", &new)?;
    let user = id
        .store()
        .user_by_id(caller.sub.to_string())
        .await?
        .ok_or(AccountError::WrongPassword)?;
    let mut turn = id.throttle.turn(&user.email).await;
    turn.admit(Instant::now()).await?;
    let checked_hash = user.password_hash.clone();
    if !id
        .passwords
        .verify(current, Some(checked_hash.clone()))
        .await?
    {
        turn.failed(Instant::now());
        return Err(AccountError::WrongPassword);
    }
    turn.accept().await?;
    let change = PasswordChange {
        user_id: user.id,
        keep_sid: caller.sid.clone(),
        checked_hash,
        new_hash: id.passwords.hash(new).await?,
    };
    // `None`: the session was revoked or the password changed meanwhile.
    let (_, revoked) = id
        .store()
        .change_password(change, now_unix())
        .await?
        .ok_or(AccountError::WrongPassword)?;
    revoked.iter().for_each(|sid| id.revoke(sid));
    tracing::info!(sessions_revoked = revoked.len(), "password changed");
    Ok(no_content())
}

/// 202 at once, whatever the email: the token is made and delivered
/// afterwards, so neither the answer nor its time tells whether the email
/// has an account.
pub(super) fn request_reset(
    id: &Identity,
    f: &Fields,
) -> Result<Response<ResponseBody>, AccountError> {
    let email = f.string("email")?.trim().to_lowercase();
    if let Some(mailer) = &id.mailer {
        mailer.request(email);
    }
    let body = serde_json::json!({ "success": true });
    Ok(json_response(
        StatusCode::ACCEPTED,
        body.to_string(),
        "no-store",
    ))
}

/// A reset token (from an operator, or mailed) sets a new password, voids
/// itself and revokes every session; the email's failed sign-ins are forgotten.
pub(super) async fn confirm_reset(
    id: &Identity,
    f: &Fields,
) -> Result<Response<ResponseBody>, AccountError> {
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
    Ok(no_content())
}
