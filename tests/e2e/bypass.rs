//! The committed bypass corpus (`tests/corpus/`): path-normalisation
//! attacks, identity-header spoofing and JWT attacks against a gateway with
//! a public and a protected prefix on one upstream. The oracle is what
//! crosses the wire: the upstream must never receive a request for a
//! protected path without a token, nor an identity header the client chose.

use std::time::Duration;

use serde_json::Value;

use crate::harness::auth::{mint, mint_encoded, unix_now, Base64, Key};
use crate::harness::{raw_keepalive, Gateway, Upstream};

const ACCESS_SECRET: &str = "bypass-access-secret-0123456789abcdef";
const REFRESH_SECRET: &str = "bypass-refresh-secret-0123456789abcdef";
const ATTACKER_SECRET: &str = "attacker-secret-0123456789abcdef";
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

async fn setup() -> (Gateway, Upstream) {
    let up = Upstream::start().await;
    let u = up.url();
    let yaml = format!(
        r#"listen: 127.0.0.1:0
log: {{ access: false }}
auth:
  store: data/users.redb
  issuer: test-issuer
  bcrypt_cost: 4
  access_token: {{ secret: "{ACCESS_SECRET}", ttl: 15m }}
  refresh_token: {{ secret: "{REFRESH_SECRET}" }}
routes:
  - {{ name: home, path: /, upstream: "{u}", auth: none }}
  - {{ name: public, path: "/public/*", upstream: "{u}", auth: none }}
  - {{ name: private, path: "/private/*", upstream: "{u}" }}
  - {{ name: admin, path: /admin, upstream: "{u}" }}
"#
    );
    (Gateway::start(&yaml).await, up)
}

/// Corpus lines: `#` comments and blank lines skipped, `\xNN` and `\\`
/// unescaped, `\r\n` and `\t` as written.
fn corpus_lines(file: &str) -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(format!("{CORPUS}/{file}")).unwrap();
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| (l.to_string(), unescape(l)))
        .collect()
}

fn unescape(line: &str) -> Vec<u8> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                i += 2;
            }
            (b'\\', Some(b'r')) => {
                out.push(b'\r');
                i += 2;
            }
            (b'\\', Some(b'n')) => {
                out.push(b'\n');
                i += 2;
            }
            (b'\\', Some(b't')) => {
                out.push(b'\t');
                i += 2;
            }
            (b'\\', Some(b'x')) => {
                out.push(u8::from_str_radix(&line[i + 2..i + 4], 16).unwrap());
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The path as the most lenient server behind the gateway could read it:
/// escapes decoded once, overlong UTF-8 for `.` `/` `\` decoded, `\` as `/`,
/// `;params` dropped, trailing blanks trimmed, dot segments resolved, case
/// folded.
fn lenient_view(target: &str) -> String {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let mut bytes = Vec::new();
    let raw = path.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        let escaped = (raw[i] == b'%' && i + 2 < raw.len())
            .then(|| u8::from_str_radix(&path[i + 1..i + 3], 16).ok())
            .flatten();
        match escaped {
            Some(c) => {
                bytes.push(c);
                i += 3;
            }
            None => {
                bytes.push(raw[i]);
                i += 1;
            }
        }
    }
    for (form, plain) in [
        (&[0xC0u8, 0xAE][..], "."),
        (&[0xC0, 0xAF], "/"),
        (&[0xC1, 0x9C], "/"),
        (&[0xE0, 0x80, 0xAE], "."),
        (&[0xF0, 0x80, 0x80, 0xAE], "."),
    ] {
        while let Some(p) = find(&bytes, form) {
            bytes.splice(p..p + form.len(), plain.bytes());
        }
    }
    let text = String::from_utf8_lossy(&bytes).replace('\\', "/");
    let mut stack: Vec<String> = Vec::new();
    for seg in text.split('/') {
        let seg = seg.split(';').next().unwrap_or_default().trim_end();
        match seg {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            s => stack.push(s.to_lowercase()),
        }
    }
    format!("/{}", stack.join("/"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_protected(view: &str) -> bool {
    view == "/private" || view.starts_with("/private/") || view == "/admin"
}

fn status_of(reply: &str) -> Option<u16> {
    reply.get(9..12).and_then(|s| s.parse().ok())
}

#[test]
fn the_oracle_reads_paths_leniently() {
    for (target, view) in [
        ("/public/..;/private/x", "/private/x"),
        ("/public/%2e%2e%3b/private/x", "/private/x"),
        ("/public/%c0%ae%c0%ae/private/x", "/private/x"),
        ("/public/..%5cprivate/x", "/private/x"),
        ("/PRIVATE/x?y", "/private/x"),
        ("/public/x", "/public/x"),
    ] {
        assert_eq!(lenient_view(target), view, "{target}");
    }
}

#[tokio::test]
async fn no_path_in_the_corpus_reaches_a_protected_path_without_a_token() {
    let (gw, up) = setup().await;
    let mut failures = Vec::new();
    let mut refused = 0;
    for (line, target) in corpus_lines("paths.txt") {
        let before = up.requests().len();
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(&target);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
        let (reply, _) = raw_keepalive(gw.addr, &req, Duration::from_secs(3)).await;
        let status = status_of(&reply);
        let reached: Vec<String> = up.requests()[before..]
            .iter()
            .map(|r| r.target.clone())
            .collect();
        for got in &reached {
            if is_protected(&lenient_view(got)) {
                failures.push(format!("{line}: upstream got {got} ({status:?})"));
            }
        }
        match status {
            Some(200) if reached.len() == 1 => {}
            Some(400 | 401 | 404 | 414) if reached.is_empty() => refused += 1,
            // Parse-level refusals may close without a response.
            None if reached.is_empty() => refused += 1,
            _ => failures.push(format!(
                "{line}: status {status:?}, upstream got {reached:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(refused > 50, "only {refused} corpus entries were refused");
    // Control: a token opens the protected prefix, so refusals above were
    // about the path, not a broken route.
    let token = valid_token();
    let r = gw.client().get("/private/x").bearer(&token).send().await;
    assert_eq!(r.status, 200);
}

/// Valid access claims as JSON members (without braces).
fn claims() -> String {
    let now = unix_now();
    format!(
        r#""sub":"u-1","email":"u1@example.com","sid":"s-1","iss":"test-issuer","iat":{now},"exp":{},"jti":"j-1","token_use":"access","scope":"items:read""#,
        now + 600
    )
}

/// A valid access token: HS256 over the gateway's secret.
fn valid_token() -> String {
    mint(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &format!("{{{}}}", claims()),
        Key::Secret(ACCESS_SECRET.as_bytes()),
    )
}

/// One corpus entry as the token it describes.
fn jwt_case(case: &Value) -> String {
    let now = unix_now();
    let valid = valid_token();
    let expand = |s: &str| {
        s.replace("$CLAIMS", &claims())
            .replace("$NOW", &now.to_string())
            .replace("$EXP", &(now + 600).to_string())
            .replace("$PAD4000", &"A".repeat(4000))
            .replace("$NEST", &format!("{}{}", "[".repeat(500), "]".repeat(500)))
    };
    if let Some(raw) = case["raw"].as_str() {
        let (head, rest) = valid.split_once('.').unwrap();
        let (body, sig) = rest.split_once('.').unwrap();
        let mut flipped = sig.as_bytes().to_vec();
        let last = flipped.last_mut().unwrap();
        *last = if *last == b'A' { b'B' } else { b'A' };
        return raw
            .replace(
                "$VALID_FLIPPED",
                &format!("{head}.{body}.{}", String::from_utf8(flipped).unwrap()),
            )
            .replace("$VALID_HEAD", head)
            .replace("$VALID_BODY", body)
            .replace("$VALID", &valid);
    }
    let header = expand(case["header"].as_str().unwrap());
    let payload = expand(case["payload"].as_str().unwrap());
    let b64 = match case["encoding"].as_str().unwrap_or("url") {
        "padded" => Base64::UrlPadded,
        "standard" => Base64::Standard,
        _ => Base64::Url,
    };
    let key = match case["key"].as_str().unwrap() {
        "none" => Key::Unsigned,
        "secret" => Key::Secret(ACCESS_SECRET.as_bytes()),
        "refresh" => Key::Secret(REFRESH_SECRET.as_bytes()),
        _ => Key::Secret(ATTACKER_SECRET.as_bytes()),
    };
    mint_encoded(&header, &payload, key, b64)
}

#[tokio::test]
async fn every_jwt_attack_in_the_corpus_is_401_and_never_reaches_the_upstream() {
    let (gw, up) = setup().await;
    let corpus: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{CORPUS}/jwt.json")).unwrap())
            .unwrap();
    let c = gw.client();
    let mut failures = Vec::new();
    for case in corpus["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let expect = case["expect"].as_u64().unwrap_or(401) as u16;
        let token = jwt_case(case);
        let before = up.requests().len();
        let r = c.get("/private/x").bearer(&token).send().await;
        let reached = up.requests().len() - before;
        let ok = match expect {
            401 => {
                r.status == 401
                    && reached == 0
                    && r.header("www-authenticate")
                        == Some("Bearer realm=\"gateway\", error=\"invalid_token\"")
            }
            _ => r.status == expect && reached == 1,
        };
        if !ok {
            failures.push(format!(
                "{name}: {} (upstream reached {reached} times), token {}",
                r.status,
                &token[..token.len().min(120)]
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Header names an upstream might read as an identity header, as one of
/// the other headers the gateway sets (`_` read as `-`, as CGI does), or as
/// the path to route by instead of the authorised one (Symfony, IIS).
fn principal_like(name: &str) -> bool {
    let dashed = name.to_ascii_lowercase().replace('_', "-");
    dashed.starts_with("x-principal-")
        || ["x-original-url", "x-rewrite-url"].contains(&dashed.as_str())
        || (name.contains('_')
            && [
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-request-id",
            ]
            .contains(&dashed.as_str()))
}

#[tokio::test]
async fn no_spoofed_identity_header_reaches_the_upstream() {
    let (gw, up) = setup().await;
    let token = valid_token();
    let mut failures = Vec::new();
    for (line, extra) in corpus_lines("identity_headers.txt") {
        for (path, auth) in [("/public/x", None), ("/private/x", Some(&token))] {
            let before = up.requests().len();
            let mut req = format!("GET {path} HTTP/1.1\r\nHost: gw\r\n").into_bytes();
            if let Some(t) = auth {
                req.extend_from_slice(format!("Authorization: Bearer {t}\r\n").as_bytes());
            }
            req.extend_from_slice(&extra);
            req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
            let (reply, _) = raw_keepalive(gw.addr, &req, Duration::from_secs(3)).await;
            let status = status_of(&reply);
            let seen = up.requests()[before..].to_vec();
            let Some(got) = seen.first() else {
                // Refused at the door is fine; silently dropped is not.
                if !matches!(status, Some(400) | None) {
                    failures.push(format!(
                        "{line} on {path}: {status:?} and nothing forwarded"
                    ));
                }
                continue;
            };
            let mut identity: Vec<(String, String)> = got
                .headers
                .iter()
                .filter(|(n, _)| principal_like(n.as_str()))
                .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect();
            identity.sort();
            let want: Vec<(String, String)> = match auth {
                None => vec![],
                Some(_) => vec![
                    ("x-principal-email".into(), "u1@example.com".into()),
                    ("x-principal-id".into(), "u-1".into()),
                    ("x-principal-scopes".into(), "items:read".into()),
                ],
            };
            if identity != want || status != Some(200) {
                failures.push(format!(
                    "{line} on {path}: {status:?}, upstream got {identity:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
