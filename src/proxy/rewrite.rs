//! The request as the upstream receives it: hop-by-hop, client-sent
//! identity and routing-override headers stripped, `X-Forwarded-*` and
//! `X-Request-Id` set.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::http::headers::{self, HOP_BY_HOP, PRINCIPAL_PREFIX, ROUTING_OVERRIDES};

/// What the rewrite needs to know about the client's connection.
pub struct Origin<'a> {
    /// The client's IP address, as a header value.
    pub client_ip: &'a HeaderValue,
    /// `http` or `https`, as the client connected.
    pub proto: &'static str,
    /// The host the client asked for (`Host`, or the HTTP/2 `:authority`).
    pub host: Option<HeaderValue>,
    pub request_id: &'a HeaderValue,
    /// The peer is a trusted proxy (`client_ip.trusted_proxies`): it
    /// terminated TLS in front, so its `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` are kept.
    pub trusted: bool,
}

/// Rewrites request headers in place, in an order that lets no client header
/// survive where the gateway sets one.
pub fn request(h: &mut HeaderMap, origin: &Origin<'_>) {
    let forwarded_for = forwarded_for(h, origin.client_ip);
    let kept = |name: &HeaderName| origin.trusted.then(|| h.get(name).cloned()).flatten();
    let (proto, host) = (
        kept(&headers::X_FORWARDED_PROTO),
        kept(&headers::X_FORWARDED_HOST),
    );
    strip(h, Strip::HopByHopAndSpoofed);
    h.insert(&headers::X_FORWARDED_FOR, forwarded_for);
    let proto = proto.unwrap_or_else(|| HeaderValue::from_static(origin.proto));
    h.insert(&headers::X_FORWARDED_PROTO, proto);
    match host.or_else(|| origin.host.clone()) {
        Some(v) => h.insert(&headers::X_FORWARDED_HOST, v),
        None => h.remove(&headers::X_FORWARDED_HOST),
    };
    h.insert(&headers::X_REQUEST_ID, origin.request_id.clone());
}

/// What `strip` removes besides hop-by-hop headers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Strip {
    /// Responses: hop-by-hop headers only.
    HopByHop,
    /// Requests: also client-sent identity headers (see `spoofs`).
    HopByHopAndSpoofed,
}

/// Removes hop-by-hop headers (RFC 9110 section 7.6.1) and the names the
/// `Connection` header lists, except framing and credentials, which a client
/// must not be able to drop from the forwarded request. One pass over the
/// names present: most messages carry none of these, and a lookup per
/// candidate name would cost more than the scan (this runs twice per request).
pub fn strip(h: &mut HeaderMap, what: Strip) {
    let listed: Vec<HeaderName> = match h.contains_key(&headers::CONNECTION) {
        true => connection_listed(h),
        false => Vec::new(),
    };
    // `TE: trailers` goes on (RFC 9113 8.2.2; gRPC servers require it).
    let keep_te = what == Strip::HopByHopAndSpoofed && te_is_trailers(h);
    let doomed: Vec<HeaderName> = h
        .keys()
        .filter(|n| {
            (HOP_BY_HOP.contains(n) || listed.contains(n)) && !(keep_te && *n == headers::TE)
                || (what == Strip::HopByHopAndSpoofed && spoofs(n.as_str()))
        })
        .cloned()
        .collect();
    for name in doomed {
        h.remove(&name);
    }
}

/// Exactly one `TE`, and its value is `trailers`.
fn te_is_trailers(h: &HeaderMap) -> bool {
    let mut te = h.get_all(&headers::TE).iter();
    match (te.next(), te.next()) {
        (Some(v), None) => v
            .to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("trailers")),
        _ => false,
    }
}

fn connection_listed(h: &HeaderMap) -> Vec<HeaderName> {
    h.get_all(&headers::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| {
            ![
                &headers::CONTENT_LENGTH,
                &http::header::AUTHORIZATION,
                &headers::HOST,
            ]
            .contains(&name)
        })
        .collect()
}

/// A client-sent `X-Principal-*` or routing-override header (names are
/// lower-case in a `HeaderMap`), or a `_` spelling of one or of a header the
/// gateway sets: nginx, CGI, WSGI and PHP read `X_Principal_Id` as
/// `X-Principal-Id`.
fn spoofs(name: &str) -> bool {
    if name.starts_with(PRINCIPAL_PREFIX) || ROUTING_OVERRIDES.iter().any(|h| h.as_str() == name) {
        return true;
    }
    if !name.contains('_') {
        return false;
    }
    let dashed = name.replace('_', "-");
    dashed.starts_with(PRINCIPAL_PREFIX)
        || [
            &headers::X_FORWARDED_FOR,
            &headers::X_FORWARDED_PROTO,
            &headers::X_FORWARDED_HOST,
            &headers::X_REQUEST_ID,
        ]
        .iter()
        .chain(&ROUTING_OVERRIDES)
        .any(|h| h.as_str() == dashed)
}

/// Client-sent entries stay in front; the client's address goes last, the
/// only entry an upstream should trust.
fn forwarded_for(h: &HeaderMap, client: &HeaderValue) -> HeaderValue {
    let mut sent = h.get_all(&headers::X_FORWARDED_FOR).iter().peekable();
    if sent.peek().is_none() {
        return client.clone();
    }
    let mut value = Vec::new();
    for v in sent {
        value.extend_from_slice(v.as_bytes());
        value.extend_from_slice(b", ");
    }
    value.extend_from_slice(client.as_bytes());
    // Built from valid header values joined by ", ", so it is one too.
    HeaderValue::from_bytes(&value).unwrap_or_else(|_| client.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    static CLIENT: HeaderValue = HeaderValue::from_static("10.0.0.9");

    fn origin(id: &HeaderValue) -> Origin<'_> {
        Origin {
            client_ip: &CLIENT,
            proto: "http",
            host: Some(HeaderValue::from_static("gw.example")),
            request_id: id,
            trusted: false,
        }
    }

    #[test]
    fn forwarded_proto_and_host_are_kept_only_from_a_trusted_peer() {
        let id = HeaderValue::from_static("rid");
        let sent = [
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "api.example"),
        ];
        let mut h = map(&sent);
        request(&mut h, &origin(&id));
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "gw.example");
        let mut h = map(&sent);
        request(
            &mut h,
            &Origin {
                trusted: true,
                ..origin(&id)
            },
        );
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "api.example");
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn client_cannot_drop_gateway_headers_via_connection() {
        let id = HeaderValue::from_static("rid");
        let mut h = map(&[
            (
                "connection",
                "x-forwarded-for, x-request-id, authorization, content-length, x-custom",
            ),
            ("authorization", "Bearer t"),
            ("content-length", "3"),
            ("x-custom", "gone"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
        ]);
        request(&mut h, &origin(&id));
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert_eq!(h["x-request-id"], "rid");
        assert_eq!(h["authorization"], "Bearer t");
        assert_eq!(h["content-length"], "3");
        for gone in ["x-custom", "connection", "keep-alive", "upgrade"] {
            assert!(!h.contains_key(gone), "{gone} survived");
        }
        assert_eq!(h["te"], "trailers", "TE: trailers is forwarded");
    }

    #[test]
    fn te_goes_on_only_as_trailers_and_only_to_upstreams() {
        let id = HeaderValue::from_static("rid");
        for (value, kept) in [
            ("trailers", true),
            (" Trailers ", true),
            ("gzip", false),
            ("trailers, deflate", false),
        ] {
            let mut h = map(&[("te", value), ("connection", "te")]);
            request(&mut h, &origin(&id));
            assert_eq!(h.contains_key("te"), kept, "{value}");
        }
        let mut h = map(&[("te", "trailers"), ("te", "trailers")]);
        request(&mut h, &origin(&id));
        assert!(!h.contains_key("te"), "two TE headers");
        let mut h = map(&[("te", "trailers")]);
        strip(&mut h, Strip::HopByHop);
        assert!(!h.contains_key("te"), "never on a response");
    }

    #[test]
    fn principal_headers_are_stripped_whatever_the_spelling() {
        let id = HeaderValue::from_static("rid");
        let mut h = map(&[
            ("X-Principal-Id", "admin"),
            ("x-PRINCIPAL-scopes", "root"),
            ("x-principal", "keep"),
            ("X_Principal_Id", "admin"),
            ("x-principal_email", "root@x"),
            ("x_forwarded_for", "6.6.6.6"),
            ("x_request_id", "forged"),
            ("x_custom", "keep"),
        ]);
        request(&mut h, &origin(&id));
        assert!(!h.contains_key("x-principal-id"));
        assert!(!h.contains_key("x-principal-scopes"));
        for spoof in [
            "x_principal_id",
            "x-principal_email",
            "x_forwarded_for",
            "x_request_id",
        ] {
            assert!(!h.contains_key(spoof), "{spoof}");
        }
        assert!(h.contains_key("x_custom"));
        assert!(
            h.contains_key("x-principal"),
            "only the X-Principal- prefix is reserved"
        );
    }

    #[test]
    fn rewrite_url_headers_are_stripped_whatever_the_spelling() {
        let id = HeaderValue::from_static("rid");
        let mut h = map(&[
            ("X-Original-URL", "/admin"),
            ("x-rewrite-url", "/admin"),
            ("X_Original_Url", "/admin"),
            ("x-rewrite_url", "/admin"),
            ("x-original-urls", "keep"),
            ("x-original", "keep"),
        ]);
        request(&mut h, &origin(&id));
        for gone in [
            "x-original-url",
            "x-rewrite-url",
            "x_original_url",
            "x-rewrite_url",
        ] {
            assert!(!h.contains_key(gone), "{gone} survived");
        }
        assert!(h.contains_key("x-original-urls"));
        assert!(h.contains_key("x-original"));
    }

    #[test]
    fn forwarded_for_appends_and_proto_host_replace() {
        let id = HeaderValue::from_static("rid");
        let mut h = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2, 3.3.3.3"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
        ]);
        request(&mut h, &origin(&id));
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "gw.example");
    }
}
