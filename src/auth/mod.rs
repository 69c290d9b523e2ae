//! Verifying bearer tokens (docs/authorizer.md): `jwt` is the only caller of
//! jsonwebtoken (signing and verifying with pinned algorithms), the
//! `authorizer` caches verified `principal`s and checks `revoked` sessions
//! and scopes on every request.

pub mod admin_token;
pub mod authorizer;
pub mod jwt;
pub mod principal;
pub mod revoked;

pub use authorizer::{AuthError, Authorizer, Settings};
pub use principal::Principal;
pub use revoked::Revoked;
