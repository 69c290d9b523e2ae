//! `gateway users ...`: operator commands against the store. A redb file
//! only while the gateway is stopped (redb lets one process hold it); a
//! PostgreSQL database at any time, and revocations made here reach the
//! running gateways through the revocation feed.

use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use super::records::User;
use super::store::{Store, StoreError};
use crate::auth::jwt::now_unix;
use crate::config::StoreLocation;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum UsersCommand {
    /// List every user
    List,
    /// Show one user (never the password hash) and their live sessions
    Show { email: String },
    /// Give a user a scope (carried by tokens issued from now on)
    Grant { email: String, scope: String },
    /// Take a scope from a user
    RevokeScope { email: String, scope: String },
    /// Refuse the user's sign-ins and refreshes, and revoke their sessions
    Disable { email: String },
    /// Let a disabled user sign in again
    Enable { email: String },
    /// Revoke every session of a user (they must sign in again)
    RevokeSessions { email: String },
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a scope must be non-empty and contain no whitespace: {0:?}")]
    BadScope(String),
}

/// Runs one command; the text is what to print on success.
pub async fn run(location: &StoreLocation, command: UsersCommand) -> Result<String, AdminError> {
    let store = Store::open(location)?;
    if let Store::Postgres(pg) = &store {
        pg.connect().await?;
    }
    let norm = |e: &str| e.trim().to_lowercase();
    let mut out = String::new();
    match command {
        UsersCommand::List => {
            let _ = writeln!(out, "EMAIL\tID\tSTATUS\tSCOPES\tCREATED");
            for u in store.users().await? {
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    u.email,
                    u.id,
                    status(&u),
                    u.scopes.join(" "),
                    rfc3339(u.created_at)
                );
            }
        }
        UsersCommand::Show { email } => {
            let email = norm(&email);
            let u = store.required_user(email.clone()).await?;
            let live = store.session_count(email, now_unix()).await?;
            let shown = serde_json::json!({
                "id": u.id,
                "email": u.email,
                "firstName": u.first_name,
                "lastName": u.last_name,
                "scopes": u.scopes,
                "status": status(&u),
                "createdAt": rfc3339(u.created_at),
                "liveSessions": live,
            });
            let _ = writeln!(out, "{shown:#}");
        }
        UsersCommand::Grant { email, scope } => {
            check_scope(&scope)?;
            let (u, _) = store
                .update_user(norm(&email), false, move |u| {
                    if !u.scopes.contains(&scope) {
                        u.scopes.push(scope);
                    }
                })
                .await?;
            let _ = writeln!(out, "{}: scopes now [{}]", u.email, u.scopes.join(" "));
        }
        UsersCommand::RevokeScope { email, scope } => {
            let (u, _) = store
                .update_user(norm(&email), false, move |u| {
                    u.scopes.retain(|s| *s != scope)
                })
                .await?;
            let _ = writeln!(out, "{}: scopes now [{}]", u.email, u.scopes.join(" "));
        }
        UsersCommand::Disable { email } => {
            let (u, n) = store
                .update_user(norm(&email), true, |u| u.disabled = true)
                .await?;
            let _ = writeln!(out, "{}: disabled, {} revoked", u.email, sessions(n.len()));
        }
        UsersCommand::Enable { email } => {
            let (u, _) = store
                .update_user(norm(&email), false, |u| u.disabled = false)
                .await?;
            let _ = writeln!(out, "{}: enabled", u.email);
        }
        UsersCommand::RevokeSessions { email } => {
            let (u, n) = store.update_user(norm(&email), true, |_| {}).await?;
            let _ = writeln!(out, "{}: {} revoked", u.email, sessions(n.len()));
        }
    }
    Ok(out)
}

/// `1 session`, `2 sessions`.
fn sessions(n: usize) -> String {
    match n {
        1 => "1 session".to_string(),
        n => format!("{n} sessions"),
    }
}

fn check_scope(scope: &str) -> Result<(), AdminError> {
    match scope.is_empty() || scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
        true => Err(AdminError::BadScope(scope.to_string())),
        false => Ok(()),
    }
}

fn status(u: &User) -> &'static str {
    match u.disabled {
        true => "disabled",
        false => "active",
    }
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}
