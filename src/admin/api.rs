//! `/admin/` on the admin listener (docs/admin.md): the bearer token first,
//! then one action per method and path, each an `identity::accounts`
//! operation; every change is logged as one audit line on stderr and every
//! request counted in `gateway_admin_requests_total{action,status}`.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;

use super::console;
use super::view::{decode_cursor, encode_cursor, rfc3339, Page, ResetView, UserDetail, UserView};
use crate::http::body::ResponseBody;
use crate::identity::accounts::NewUser;
use crate::identity::endpoints::{json_response, read_body};
use crate::identity::input::Fields;
use crate::identity::{AccountError, Identity};
use crate::proxy::error::GatewayError;
use crate::proxy::route::PathError;
use crate::proxy::state::Gateway;

/// How long a request body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Users per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// What one admin request asks for; `{email}` and `{scope}` percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Console,
    ListUsers,
    CreateUser,
    ShowUser(String),
    DeleteUser(String),
    GrantScope(String, String),
    RevokeScope(String, String),
    Disable(String),
    Enable(String),
    RevokeSessions(String),
    RevokeSession(String, String),
    PasswordReset(String),
}

impl Action {
    /// The `action` label of the metric and the audit line.
    fn name(&self) -> &'static str {
        match self {
            Action::Console => "console",
            Action::ListUsers => "list_users",
            Action::CreateUser => "create_user",
            Action::ShowUser(_) => "show_user",
            Action::DeleteUser(_) => "delete_user",
            Action::GrantScope(..) => "grant_scope",
            Action::RevokeScope(..) => "revoke_scope",
            Action::Disable(_) => "disable_user",
            Action::Enable(_) => "enable_user",
            Action::RevokeSessions(_) => "revoke_sessions",
            Action::RevokeSession(..) => "revoke_session",
            Action::PasswordReset(_) => "password_reset",
        }
    }

    /// The action a method and path name.
    fn parse(method: &Method, path: &str) -> Result<Action, GatewayError> {
        let segs = segments(path)?;
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let segs = match segs.as_slice() {
            ["admin"] if path.starts_with("/admin/") => {
                return only(method, &[Method::GET], || Action::Console)
            }
            ["admin", rest @ ..] => rest,
            _ => return Err(GatewayError::NotFound),
        };
        let (get, post, put, delete) = (Method::GET, Method::POST, Method::PUT, Method::DELETE);
        match segs {
            ["users"] => match *method {
                Method::GET | Method::HEAD => Ok(Action::ListUsers),
                Method::POST => Ok(Action::CreateUser),
                _ => Err(GatewayError::MethodNotAllowed(vec![get, post])),
            },
            ["users", e] if !e.is_empty() => match *method {
                Method::GET | Method::HEAD => Ok(Action::ShowUser(e.to_string())),
                Method::DELETE => Ok(Action::DeleteUser(e.to_string())),
                _ => Err(GatewayError::MethodNotAllowed(vec![get, delete])),
            },
            ["users", e, "scopes", s] if !e.is_empty() => match *method {
                Method::PUT => Ok(Action::GrantScope(e.to_string(), s.to_string())),
                Method::DELETE => Ok(Action::RevokeScope(e.to_string(), s.to_string())),
                _ => Err(GatewayError::MethodNotAllowed(vec![put, delete])),
            },
            ["users", e, "disable"] if !e.is_empty() => {
                only(method, &[post], || Action::Disable(e.to_string()))
            }
            ["users", e, "enable"] if !e.is_empty() => {
                only(method, &[post], || Action::Enable(e.to_string()))
            }
            ["users", e, "sessions"] if !e.is_empty() => {
                only(method, &[delete], || Action::RevokeSessions(e.to_string()))
            }
            ["users", e, "sessions", sid] if !e.is_empty() && !sid.is_empty() => {
                only(method, &[delete], || {
                    Action::RevokeSession(e.to_string(), sid.to_string())
                })
            }
            ["users", e, "password-reset"] if !e.is_empty() => {
                only(method, &[post], || Action::PasswordReset(e.to_string()))
            }
            _ => Err(GatewayError::NotFound),
        }
    }
}

/// The action when the method is the one allowed (`HEAD` for `GET` too).
fn only(
    method: &Method,
    allowed: &[Method],
    action: impl FnOnce() -> Action,
) -> Result<Action, GatewayError> {
    let head = method == Method::HEAD && allowed.contains(&Method::GET);
    match allowed.contains(method) || head {
        true => Ok(action()),
        false => Err(GatewayError::MethodNotAllowed(allowed.to_vec())),
    }
}

/// The path's segments, each percent-decoded on its own (so an email with
/// `/` in it is one segment, `%2F`), empty and `.` segments dropped, `..`
/// resolved. The admin API forwards nothing, so this needs none of the
/// proxy's stricter normal form.
fn segments(path: &str) -> Result<Vec<String>, GatewayError> {
    let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut out: Vec<String> = Vec::new();
    for raw in rest.split('/') {
        match decode(raw)?.as_str() {
            "" | "." => {}
            ".." => {
                out.pop().ok_or(PathError::AboveRoot)?;
            }
            seg => out.push(seg.to_string()),
        }
    }
    Ok(out)
}

fn decode(segment: &str) -> Result<String, GatewayError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| AccountError::InvalidInput("the path is not UTF-8 once decoded".into()).into())
}

/// Answers one request under `/admin/`; `client` is the peer, for the audit line.
pub async fn serve(
    gw: &Gateway,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Response<ResponseBody> {
    let state = gw.state.load_full();
    let Some(key) = state.admin_key.clone() else {
        return GatewayError::NotFound.into_response();
    };
    let action = Action::parse(req.method(), req.uri().path());
    let label = action.as_ref().map_or("unknown", Action::name);
    let res = match action {
        // The page holds no data and asks for the token itself.
        Ok(Action::Console) => Ok(console::page()),
        _ if !bearer(&req).is_some_and(|t| key.accepts(t)) => Err(GatewayError::AdminUnauthorized),
        Err(e) => Err(e),
        Ok(action) => match state.identity.as_deref() {
            Some(id) => run(id, action, req, client)
                .await
                .map_err(GatewayError::from),
            None => Err(AccountError::store_not_reached().into()),
        },
    };
    let res = res.unwrap_or_else(|e| {
        if !e.is_client_fault() {
            tracing::warn!(action = label, error = %e.chain(), "admin request failed");
        }
        e.into_response()
    });
    gw.metrics.admin_request(label, res.status().as_u16());
    res
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(req: &Request<Incoming>) -> Option<&[u8]> {
    let value = req.headers().get(http::header::AUTHORIZATION)?.as_bytes();
    let scheme = value.get(..7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| value[7..].trim_ascii())
}

async fn run(
    id: &Identity,
    action: Action,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<Response<ResponseBody>, AccountError> {
    let accounts = id.accounts();
    let name = action.name();
    let audit = |email: &str, detail: &str| {
        tracing::info!(target: "gateway::audit", action = name, email, client = %client, detail, "admin change");
    };
    match action {
        Action::Console => Ok(console::page()),
        Action::ListUsers => {
            let (after, limit, filter) = list_query(req.uri().query())?;
            let (users, next) = accounts.page(after, limit, filter).await?;
            let page = Page {
                users: users.iter().map(UserView::from).collect(),
                next: next.as_ref().map(encode_cursor),
            };
            Ok(json(StatusCode::OK, &page))
        }
        Action::ShowUser(email) => {
            let (user, sessions) = accounts.show(&email).await?;
            Ok(json(StatusCode::OK, &UserDetail::of(&user, &sessions)))
        }
        Action::CreateUser => {
            let body = read_body(req, BODY_TIMEOUT).await?;
            let f = Fields::parse(&body)?;
            let new = NewUser {
                email: f.string("email")?.to_string(),
                password: f.password()?,
                first_name: f.string("firstName")?.to_string(),
                last_name: f.string("lastName")?.to_string(),
                scopes: f.strings("scopes")?,
            };
            let user = accounts.create(new).await?;
            audit(&user.email, &format!("scopes [{}]", user.scopes.join(" ")));
            Ok(json(StatusCode::CREATED, &UserView::from(&user)))
        }
        Action::DeleteUser(email) => {
            let n = accounts.delete(&email).await?;
            audit(
                &email.trim().to_lowercase(),
                &format!("{n} sessions revoked"),
            );
            Ok(no_content())
        }
        Action::GrantScope(email, scope) => {
            let user = accounts.grant(&email, &scope).await?;
            audit(&user.email, &format!("scope {scope}"));
            Ok(no_content())
        }
        Action::RevokeScope(email, scope) => {
            let user = accounts.revoke_scope(&email, &scope).await?;
            audit(&user.email, &format!("scope {scope}"));
            Ok(no_content())
        }
        Action::Disable(email) => {
            let (user, n) = accounts.disable(&email).await?;
            audit(&user.email, &format!("{n} sessions revoked"));
            Ok(no_content())
        }
        Action::Enable(email) => {
            let user = accounts.enable(&email).await?;
            audit(&user.email, "");
            Ok(no_content())
        }
        Action::RevokeSessions(email) => {
            let (user, n) = accounts.revoke_sessions(&email).await?;
            audit(&user.email, &format!("{n} sessions revoked"));
            Ok(no_content())
        }
        Action::RevokeSession(email, sid) => {
            accounts.revoke_session(&email, &sid).await?;
            audit(&email.trim().to_lowercase(), &format!("session {sid}"));
            Ok(no_content())
        }
        Action::PasswordReset(email) => {
            let (user, reset) = accounts.reset_token(&email).await?;
            audit(&user.email, "reset token issued");
            let view = ResetView {
                token: reset.token,
                expires_at: rfc3339(reset.expires_at),
            };
            Ok(json(StatusCode::OK, &view))
        }
    }
}

/// `limit`, `after` and `q` (a part of the email) of `GET /admin/users`.
type ListQuery = (
    Option<crate::identity::store::Cursor>,
    usize,
    Option<String>,
);

fn list_query(query: Option<&str>) -> Result<ListQuery, AccountError> {
    let bad = |m: &str| AccountError::InvalidInput(m.to_string());
    let (mut after, mut limit, mut filter) = (None, DEFAULT_LIMIT, None);
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| bad("the query is not UTF-8 once decoded"))?;
        match name {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad(&format!(
                            "`limit` must be a whole number from 1 to {MAX_LIMIT}"
                        ))
                    })?;
            }
            "after" => {
                after = Some(decode_cursor(&value).ok_or_else(|| {
                    bad("`after` is not a cursor this gateway gave (use `next` of the previous page)")
                })?);
            }
            "q" => filter = Some(value.into_owned()),
            _ => {
                return Err(bad(
                    "unknown query parameter; expected `limit`, `after` or `q`",
                ))
            }
        }
    }
    Ok((after, limit, filter))
}

fn json(status: StatusCode, body: &impl serde::Serialize) -> Response<ResponseBody> {
    let text = serde_json::to_string(body).unwrap_or_default();
    json_response(status, text, "no-store")
}

fn no_content() -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::full(bytes::Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, path: &str) -> Result<Action, u16> {
        Action::parse(&method, path).map_err(|e| e.status().as_u16())
    }

    #[test]
    fn paths_name_actions_with_decoded_parts() {
        let e = || "ann+1@example.com".to_string();
        assert_eq!(parse(Method::GET, "/admin/"), Ok(Action::Console));
        assert_eq!(parse(Method::GET, "/admin/users"), Ok(Action::ListUsers));
        assert_eq!(parse(Method::POST, "/admin/users"), Ok(Action::CreateUser));
        assert_eq!(
            parse(Method::GET, "/admin/users/ann+1%40example.com"),
            Ok(Action::ShowUser(e()))
        );
        assert_eq!(
            parse(
                Method::PUT,
                "/admin/users/ann+1@example.com/scopes/items%3Awrite"
            ),
            Ok(Action::GrantScope(e(), "items:write".into()))
        );
        assert_eq!(
            parse(
                Method::DELETE,
                "/admin/users/ann+1@example.com/sessions/abc"
            ),
            Ok(Action::RevokeSession(e(), "abc".into()))
        );
        assert_eq!(
            parse(Method::POST, "/admin/users/x/../ann+1@example.com/disable"),
            Ok(Action::Disable(e()))
        );
        assert_eq!(parse(Method::GET, "/admin/users/a/disable"), Err(405));
        assert_eq!(parse(Method::GET, "/admin/nope"), Err(404));
        assert_eq!(parse(Method::GET, "/admin/users/a/b/c/d"), Err(404));
        // A `/` or `\` in an email is a character of its one segment.
        assert_eq!(
            parse(Method::GET, "/admin/users/a%2Fb@x.io"),
            Ok(Action::ShowUser("a/b@x.io".into()))
        );
        assert_eq!(
            parse(Method::POST, "/admin/users/c%5Cd@x.io/disable"),
            Ok(Action::Disable("c\\d@x.io".into()))
        );
        assert_eq!(parse(Method::GET, "/admin/users/../../.."), Err(400));
        assert_eq!(parse(Method::GET, "/admin"), Err(404));
        assert_eq!(parse(Method::GET, "/admin/users/%FF"), Err(400));
        assert_eq!(parse(Method::GET, "/admin/../metrics"), Err(404));
    }

    #[test]
    fn list_queries_are_checked() {
        assert_eq!(list_query(None).unwrap().1, DEFAULT_LIMIT);
        let (after, limit, q) = list_query(Some("limit=5&q=ann%40")).unwrap();
        assert_eq!((after, limit, q.as_deref()), (None, 5, Some("ann@")));
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=x",
            "after=zzz",
            "page=2",
            "limit=-1",
        ] {
            assert!(list_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
