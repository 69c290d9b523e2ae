//! serde mirror of gateway.yaml (docs/configuration.md): text as written, `Option`
//! where a key may be left out. `validate/` turns it into `model.rs` types.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub listen: String,
    pub cert: String,
    pub key: String,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub listen: String,
    pub token: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientIp {
    pub trusted_proxies: Option<Vec<String>>,
    pub proxy_protocol: Option<bool>,
}

/// One policy of `rate_limits:`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub rate: String,
    pub burst: Option<u64>,
    pub key: Option<String>,
}

/// `auth.endpoint_limit`: `off` (or `false`), or a rate and burst.
pub type EndpointLimit = OffOr<EndpointRate>;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct EndpointRate {
    pub rate: String,
    pub burst: Option<u64>,
}

impl Described for EndpointRate {
    const WHAT: &'static str = "`{ rate: N/m, burst: B }`";
    const WHEN_TRUE: &'static str = "give `{ rate: N/m, burst: B }`, or `off`";
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub format: Option<LogFormat>,
    pub access: Option<bool>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_body: Option<Size>,
    pub header_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub max_connections: Option<u64>,
    pub max_connections_per_ip: Option<u64>,
    pub h2_max_streams: Option<u64>,
}

/// A size as written: a bare integer of bytes, or text like `10MiB`.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub store: Option<String>,
    pub issuer: Option<String>,
    pub access_token: Option<Token>,
    pub refresh_token: Option<Token>,
    pub bcrypt_cost: Option<u32>,
    pub cache_ttl: Option<String>,
    pub cache_capacity: Option<u64>,
    pub default_scopes: Option<Vec<String>>,
    pub signin_limit: Option<SigninLimit>,
    pub leeway: Option<String>,
    pub password_reset: Option<PasswordReset>,
    pub endpoint_limit: Option<EndpointLimit>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    pub ttl: Option<String>,
    pub webhook: Option<String>,
    pub webhook_secret: Option<String>,
    pub resend_interval: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub secret: Option<String>,
    pub ttl: Option<String>,
    pub algorithm: Option<String>,
    pub private_key: Option<String>,
    pub previous_keys: Option<Vec<String>>,
    /// `refresh_token` only.
    pub reuse_interval: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct SigninLimit {
    pub failures: u32,
    pub window: String,
}

#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    pub allow_origins: Option<Vec<String>>,
    pub allow_methods: Option<Vec<String>>,
    pub allow_headers: Option<Vec<String>>,
    pub expose_headers: Option<Vec<String>>,
    pub allow_credentials: Option<bool>,
    pub max_age: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub name: String,
    pub path: String,
    pub methods: Option<Vec<String>>,
    pub upstream: Option<OneOrMany>,
    pub echo: Option<bool>,
    pub auth: Option<AuthMode>,
    pub scopes: Option<Vec<String>>,
    pub strip_prefix: Option<String>,
    pub timeout: Option<String>,
    pub max_body: Option<Size>,
    pub cors: Option<RouteCors>,
    pub upstream_protocol: Option<UpstreamProtocol>,
    pub rate_limit: Option<OneOrMany>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    #[default]
    #[serde(rename = "http1")]
    Http1,
    #[serde(rename = "h2")]
    H2,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Required,
    None,
}

/// `upstream:` (URLs) and `rate_limit:` (policy names): one string or a list.
#[derive(Debug)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![s.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<OneOrMany, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(OneOrMany)
            }
        }
        d.deserialize_any(V)
    }
}

/// A route's `cors:` is `off`/`false`, or a policy replacing the global one.
pub type RouteCors = OffOr<Cors>;

impl Described for Cors {
    const WHAT: &'static str = "a policy mapping";
    const WHEN_TRUE: &'static str =
        "`cors: true` is ambiguous; give a policy mapping, or leave the key out to use the global policy";
}

/// What a mapping that may also be `off` is called in errors.
pub trait Described {
    const WHAT: &'static str;
    /// The error for `true`, which turns nothing on by itself.
    const WHEN_TRUE: &'static str;
}

/// `off` (or `false`), or a mapping `T`.
#[derive(Debug)]
pub enum OffOr<T> {
    Off,
    On(T),
}

impl<'de, T: Deserialize<'de> + Described> Deserialize<'de> for OffOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Described> Visitor<'de> for V<T> {
            type Value = OffOr<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "`off`, `false`, or {}", T::WHAT)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<OffOr<T>, E> {
                match b {
                    false => Ok(OffOr::Off),
                    true => Err(E::custom(T::WHEN_TRUE)),
                }
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OffOr<T>, E> {
                match s {
                    "off" => Ok(OffOr::Off),
                    _ => Err(E::custom(format!(
                        "expected `off` or {}, found {s:?}",
                        T::WHAT
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OffOr<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(OffOr::On)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}
