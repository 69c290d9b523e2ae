//! `AccountError`: why a built-in endpoint refused or failed. The status of
//! each is chosen in `proxy::error`, with every other failure's.

use super::password::HashError;
use super::store::StoreError;
use crate::auth::jwt::SignError;
use crate::http::body::BodyTooLarge;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The method is not the endpoint's (the `Allow` value).
    #[error("this endpoint does not allow the method")]
    Method(http::Method),
    /// Malformed JSON, a missing or empty field, a rule broken; the text is the 400's message.
    #[error("{0}")]
    InvalidInput(String),
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error(transparent)]
    BodyTooLarge(#[from] BodyTooLarge),
    #[error("Email already in use")]
    EmailTaken,
    #[error("Wrong credentials")]
    WrongCredentials,
    /// `POST /password`'s current password is wrong (401 with a challenge).
    #[error("Wrong credentials")]
    WrongPassword,
    /// `POST /password-reset` without `password_reset.webhook`.
    #[error("no route matches this path")]
    NotServed,
    #[error("the refresh token is invalid, expired, revoked or already used")]
    RefreshRejected,
    /// Seconds until the sign-in window lets the email try again.
    #[error("too many failed sign-ins for this email; retry in {0} s")]
    Throttled(u64),
    #[error("the user store failed")]
    Store(#[source] StoreError),
    /// The database cannot be reached now (503, `Retry-After: 5`).
    #[error("user store unavailable")]
    Unavailable(#[source] StoreError),
    #[error("password hashing failed")]
    Hash(#[from] HashError),
    #[error("signing a token failed")]
    Sign(#[from] SignError),
    #[error("User not found")]
    NoSuchUser,
    #[error("Session not found")]
    NoSuchSession,
    /// A password-reset token unknown, used, superseded, expired or voided.
    #[error("Invalid or expired token")]
    ResetRejected,
    #[error("the system's random source failed: {0}")]
    Random(String),
}

impl AccountError {
    /// The store has not been reached since start-up (503).
    pub fn store_not_reached() -> AccountError {
        AccountError::Unavailable(StoreError::Unavailable("not reached yet".into()))
    }
}

impl From<super::input::Invalid> for AccountError {
    fn from(e: super::input::Invalid) -> Self {
        AccountError::InvalidInput(e.0)
    }
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => AccountError::EmailTaken,
            StoreError::NoSuchUser(_) => AccountError::NoSuchUser,
            e @ StoreError::Unavailable(_) => AccountError::Unavailable(e),
            e => AccountError::Store(e),
        }
    }
}
