//! `gateway users ...` (docs/admin.md): operator commands that work at any
//! time. A redb file no process holds is opened directly; one a running
//! gateway holds is managed through that gateway's admin API (so the change
//! applies to it at once); a PostgreSQL store is changed in the database,
//! and its revocation feed carries revocations to every running gateway.
//! Both paths print the same lines, from the admin API's JSON shapes.

use std::fmt::Write;
use std::io::BufRead;

use super::client::{AdminClient, ClientError};
use super::view::{rfc3339, ResetView, UserDetail, UserView};
use crate::config::{Auth, Config};
use crate::identity::accounts::{Accounts, NewUser};
use crate::identity::password::Passwords;
use crate::identity::store::{Store, StoreError};
use crate::identity::AccountError;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum UsersCommand {
    /// List every user, in creation order
    List {
        /// One JSON user object per line
        #[arg(long)]
        json: bool,
    },
    /// Show one user (never the password hash) and their live sessions
    Show {
        email: String,
        /// The user and sessions as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Create a user; the password is read from standard input (one line)
    Create {
        email: String,
        #[arg(long)]
        first_name: String,
        #[arg(long)]
        last_name: String,
        /// A scope to give (repeat for several); without any, `default_scopes`
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
    },
    /// Delete a user and their sessions (the email may sign up again)
    Delete { email: String },
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
    /// Print a single-use password-reset token (for POST /password-reset/confirm)
    ResetPassword { email: String },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("no user with email {0}")]
    NoSuchUser(String),
    #[error("{}", crate::telemetry::logging::error_chain(.0))]
    Account(#[from] AccountError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Remote(#[from] ClientError),
    #[error("the user store {0} is held by a running gateway, and the config has no `admin.token`, so `gateway users` cannot go through its admin API; set admin.token (at least 32 bytes) and reload the gateway, or stop it first")]
    NoAdminToken(String),
    #[error("reading the password from standard input: {0}")]
    Stdin(std::io::Error),
    #[error("bcrypt: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
}

/// Runs one command; the text is what to print on success.
pub async fn run(config: &Config, auth: &Auth, command: UsersCommand) -> Result<String, CliError> {
    let target = Target::open(config, auth).await?;
    let email_of = |c: &UsersCommand| match c {
        UsersCommand::List { .. } => String::new(),
        UsersCommand::Show { email, .. }
        | UsersCommand::Create { email, .. }
        | UsersCommand::Delete { email }
        | UsersCommand::Grant { email, .. }
        | UsersCommand::RevokeScope { email, .. }
        | UsersCommand::Disable { email }
        | UsersCommand::Enable { email }
        | UsersCommand::RevokeSessions { email }
        | UsersCommand::ResetPassword { email } => email.trim().to_lowercase(),
    };
    let email = email_of(&command);
    target.run(command).await.map_err(|e| match e {
        CliError::Account(AccountError::NoSuchUser) => CliError::NoSuchUser(email),
        CliError::Remote(ClientError::Refused { status: 404, .. }) if !email.is_empty() => {
            CliError::NoSuchUser(email)
        }
        e => e,
    })
}

/// Where the commands go: the store itself, or a running gateway's admin API.
enum Target {
    Direct(Direct),
    Remote(AdminClient),
}

/// The store itself, and what creating users there needs.
struct Direct {
    store: Store,
    passwords: Passwords,
    auth: Box<Auth>,
}

impl Direct {
    fn accounts(&self) -> Accounts<'_> {
        Accounts {
            store: &self.store,
            passwords: &self.passwords,
            default_scopes: &self.auth.default_scopes,
            reset_ttl: self.auth.reset_ttl,
            revoked: None,
        }
    }
}

impl Target {
    async fn open(config: &Config, auth: &Auth) -> Result<Target, CliError> {
        let store = match Store::open(&auth.store) {
            Ok(store) => store,
            Err(StoreError::InUse(path)) => {
                let admin = config.admin.as_ref();
                return match admin.and_then(|a| a.token.clone().map(|t| (a.listen, t))) {
                    Some((addr, token)) => Ok(Target::Remote(AdminClient::new(addr, token))),
                    None => Err(CliError::NoAdminToken(path.display().to_string())),
                };
            }
            Err(e) => return Err(e.into()),
        };
        if let Store::Postgres(pg) = &store {
            pg.connect().await?;
        }
        Ok(Target::Direct(Direct {
            store,
            passwords: Passwords::new(auth.bcrypt_cost)?,
            auth: Box::new(auth.clone()),
        }))
    }

    async fn run(&self, command: UsersCommand) -> Result<String, CliError> {
        let mut out = String::new();
        match command {
            UsersCommand::List { json } => {
                let users = self.list().await?;
                if !json {
                    let _ = writeln!(out, "EMAIL\tID\tSTATUS\tSCOPES\tCREATED");
                }
                for u in users {
                    let _ = match json {
                        true => writeln!(out, "{}", to_json(&u)),
                        false => writeln!(
                            out,
                            "{}\t{}\t{}\t{}\t{}",
                            u.email,
                            u.id,
                            status(u.disabled),
                            u.scopes.join(" "),
                            u.created_at
                        ),
                    };
                }
            }
            UsersCommand::Show { email, json } => {
                let d = self.show(&email).await?;
                match json {
                    true => {
                        let _ = writeln!(out, "{}", to_json(&d));
                    }
                    false => shown(&mut out, &d),
                }
            }
            UsersCommand::Create {
                email,
                first_name,
                last_name,
                scopes,
            } => {
                let new = NewUser {
                    email,
                    password: read_password()?,
                    first_name,
                    last_name,
                    scopes: (!scopes.is_empty()).then_some(scopes),
                };
                let u = self.create(new).await?;
                let _ = writeln!(out, "{}", to_json(&u));
            }
            UsersCommand::Delete { email } => {
                let n = self.delete(&email).await?;
                let _ = writeln!(out, "{}: deleted, {} revoked", norm(&email), sessions(n));
            }
            UsersCommand::Grant { email, scope } => {
                let u = self.grant(&email, &scope, true).await?;
                let _ = writeln!(out, "{}: scopes now [{}]", u.email, u.scopes.join(" "));
            }
            UsersCommand::RevokeScope { email, scope } => {
                let u = self.grant(&email, &scope, false).await?;
                let _ = writeln!(out, "{}: scopes now [{}]", u.email, u.scopes.join(" "));
            }
            UsersCommand::Disable { email } => {
                let n = self.revoke_sessions(&email, true).await?;
                let _ = writeln!(out, "{}: disabled, {} revoked", norm(&email), sessions(n));
            }
            UsersCommand::Enable { email } => {
                self.enable(&email).await?;
                let _ = writeln!(out, "{}: enabled", norm(&email));
            }
            UsersCommand::RevokeSessions { email } => {
                let n = self.revoke_sessions(&email, false).await?;
                let _ = writeln!(out, "{}: {} revoked", norm(&email), sessions(n));
            }
            UsersCommand::ResetPassword { email } => {
                let r = self.reset(&email).await?;
                let _ = writeln!(out, "{}", r.token);
            }
        }
        Ok(out)
    }

    /// Every user, in creation order, a page at a time.
    async fn list(&self) -> Result<Vec<UserView>, CliError> {
        const PAGE: usize = 1000;
        let mut all = Vec::new();
        match self {
            Target::Direct(d) => {
                let accounts = d.accounts();
                let mut after = None;
                loop {
                    let (users, next) = accounts
                        .page(after, PAGE, None)
                        .await
                        .map_err(CliError::from)?;
                    all.extend(users.iter().map(UserView::from));
                    match next {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                }
            }
            Target::Remote(c) => {
                let mut after: Option<String> = None;
                loop {
                    let path = match &after {
                        Some(a) => format!("/admin/users?limit={PAGE}&after={a}"),
                        None => format!("/admin/users?limit={PAGE}"),
                    };
                    let page: super::view::Page = c.get(&path).await?;
                    all.extend(page.users);
                    match page.next {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                }
            }
        }
        Ok(all)
    }

    async fn show(&self, email: &str) -> Result<UserDetail, CliError> {
        match self {
            Target::Direct(d) => {
                let (u, s) = d.accounts().show(email).await.map_err(CliError::from)?;
                Ok(UserDetail::of(&u, &s))
            }
            Target::Remote(c) => Ok(c.get(&user_path(email, "")).await?),
        }
    }

    async fn create(&self, new: NewUser) -> Result<UserView, CliError> {
        match self {
            Target::Direct(d) => {
                let accounts = d.accounts();
                let u = accounts.create(new).await.map_err(CliError::from)?;
                Ok(UserView::from(&u))
            }
            Target::Remote(c) => {
                let mut body = serde_json::json!({
                    "email": new.email,
                    "password": new.password,
                    "firstName": new.first_name,
                    "lastName": new.last_name,
                });
                if let Some(scopes) = new.scopes {
                    body["scopes"] = scopes.into();
                }
                Ok(c.post("/admin/users", Some(body)).await?)
            }
        }
    }

    async fn delete(&self, email: &str) -> Result<usize, CliError> {
        match self {
            Target::Direct(d) => d.accounts().delete(email).await.map_err(CliError::from),
            Target::Remote(c) => {
                let live = self.show(email).await?.sessions.len();
                c.send(http::Method::DELETE, &user_path(email, "")).await?;
                Ok(live)
            }
        }
    }

    /// Grants (`give`) or revokes the scope; returns the user after.
    async fn grant(&self, email: &str, scope: &str, give: bool) -> Result<UserView, CliError> {
        match self {
            Target::Direct(d) => {
                let accounts = d.accounts();
                let u = match give {
                    true => accounts.grant(email, scope).await,
                    false => accounts.revoke_scope(email, scope).await,
                }
                .map_err(CliError::from)?;
                Ok(UserView::from(&u))
            }
            Target::Remote(c) => {
                let method = match give {
                    true => http::Method::PUT,
                    false => http::Method::DELETE,
                };
                let scope = super::client::segment(scope);
                c.send(method, &user_path(email, &format!("/scopes/{scope}")))
                    .await?;
                Ok(self.show(email).await?.user)
            }
        }
    }

    /// Revokes every session (`disable`: and disables); returns how many.
    async fn revoke_sessions(&self, email: &str, disable: bool) -> Result<usize, CliError> {
        match self {
            Target::Direct(d) => {
                let accounts = d.accounts();
                let (_, n) = match disable {
                    true => accounts.disable(email).await,
                    false => accounts.revoke_sessions(email).await,
                }
                .map_err(CliError::from)?;
                Ok(n)
            }
            Target::Remote(c) => {
                // The API answers 204; the count is of the sessions live just before.
                let live = self.show(email).await?.sessions.len();
                match disable {
                    true => {
                        c.send(http::Method::POST, &user_path(email, "/disable"))
                            .await?
                    }
                    false => {
                        c.send(http::Method::DELETE, &user_path(email, "/sessions"))
                            .await?
                    }
                }
                Ok(live)
            }
        }
    }

    async fn enable(&self, email: &str) -> Result<(), CliError> {
        match self {
            Target::Direct(d) => d
                .accounts()
                .enable(email)
                .await
                .map(|_| ())
                .map_err(CliError::from),
            Target::Remote(c) => Ok(c
                .send(http::Method::POST, &user_path(email, "/enable"))
                .await?),
        }
    }

    async fn reset(&self, email: &str) -> Result<ResetView, CliError> {
        match self {
            Target::Direct(d) => {
                let (_, r) = d
                    .accounts()
                    .reset_token(email)
                    .await
                    .map_err(CliError::from)?;
                Ok(ResetView {
                    token: r.token,
                    expires_at: rfc3339(r.expires_at),
                })
            }
            Target::Remote(c) => Ok(c.post(&user_path(email, "/password-reset"), None).await?),
        }
    }
}

fn user_path(email: &str, rest: &str) -> String {
    format!("/admin/users/{}{rest}", super::client::segment(email))
}

/// Standard input up to the first newline (never argv: it would show in
/// `ps` and shell history).
fn read_password() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(CliError::Stdin)?;
    if let Some(stripped) = line.strip_suffix('\n') {
        line.truncate(stripped.len());
    }
    Ok(line)
}

fn shown(out: &mut String, d: &UserDetail) {
    let u = &d.user;
    let _ = writeln!(out, "email:    {}", u.email);
    let _ = writeln!(out, "id:       {}", u.id);
    let _ = writeln!(out, "name:     {} {}", u.first_name, u.last_name);
    let _ = writeln!(out, "status:   {}", status(u.disabled));
    let _ = writeln!(out, "scopes:   {}", u.scopes.join(" "));
    let _ = writeln!(out, "created:  {}", u.created_at);
    let _ = writeln!(out, "sessions: {} live", d.sessions.len());
    if !d.sessions.is_empty() {
        let _ = writeln!(out, "  SID\tCREATED\tREFRESHED\tEXPIRES");
        for s in &d.sessions {
            let refreshed = s.refreshed_at.as_deref().unwrap_or("-");
            let _ = writeln!(
                out,
                "  {}\t{}\t{}\t{}",
                s.sid, s.created_at, refreshed, s.expires_at
            );
        }
    }
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn norm(email: &str) -> String {
    email.trim().to_lowercase()
}

/// `1 session`, `2 sessions`.
fn sessions(n: usize) -> String {
    match n {
        1 => "1 session".to_string(),
        n => format!("{n} sessions"),
    }
}

fn status(disabled: bool) -> &'static str {
    match disabled {
        true => "disabled",
        false => "active",
    }
}
