//! Token keys: HS256 with a secret (refresh tokens always, access tokens by
//! default), or, for access tokens, EdDSA / ES256 / RS256 with a PEM private
//! key (PKCS#8; RSA also PKCS#1). Asymmetric keys get a `kid`
//! (the RFC 7638 thumbprint of their public JWK); `previous_keys` (public
//! PEMs) keep verifying tokens signed before a rotation, and every public
//! key is published as a JWK set. Keys come in as PEM text; the loading
//! step (`crate::load`) reads their files.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{self, KeyPair};
use serde_json::{json, Value};

use crate::config::Algorithm as Alg;

/// What a token must pass besides its signature (built by `SigningKeys::validation`).
pub struct Rules(Validation);

/// Signing a token failed (a key the library refused, claims that do not serialise).
#[derive(Debug, thiserror::Error)]
#[error("signing a token: {0}")]
pub struct SignError(#[source] jsonwebtoken::errors::Error);

/// A key PEM that is no key of the configured algorithm.
#[derive(Debug, thiserror::Error)]
#[error("{why}")]
pub struct BadKey {
    /// Which: `None` the private key, `Some(i)` the `i`th previous key.
    pub previous: Option<usize>,
    pub why: String,
}

/// A public key that verifies access tokens.
pub struct Verifying {
    pub kid: Option<String>,
    pub key: DecodingKey,
    /// Its JWK (asymmetric keys only).
    pub jwk: Option<Value>,
}

pub struct SigningKeys {
    pub algorithm: Algorithm,
    header: Header,
    encoding: EncodingKey,
    /// The current key first, then the previous ones.
    pub verifying: Vec<Verifying>,
}

impl SigningKeys {
    pub fn hs256(secret: &[u8]) -> SigningKeys {
        SigningKeys {
            algorithm: Algorithm::HS256,
            header: Header::new(Algorithm::HS256),
            encoding: EncodingKey::from_secret(secret),
            verifying: vec![Verifying {
                kid: None,
                key: DecodingKey::from_secret(secret),
                jwk: None,
            }],
        }
    }

    /// The asymmetric key pair in the PEM `private`, plus the public
    /// `previous` PEMs; every key that does not parse is reported.
    pub fn asymmetric(
        alg: Alg,
        private: &[u8],
        previous: &[Vec<u8>],
    ) -> Result<SigningKeys, Vec<BadKey>> {
        let algorithm = match alg {
            Alg::EdDSA => Algorithm::EdDSA,
            Alg::ES256 => Algorithm::ES256,
            Alg::RS256 => Algorithm::RS256,
            Alg::HS256 => unreachable!("HS256 keys are secrets"),
        };
        let mut bad = Vec::new();
        let current = key_pair(algorithm, private)
            .and_then(|(encoding, jwk)| Ok((encoding, verifying_key(algorithm, jwk)?)))
            .map_err(|why| {
                bad.push(BadKey {
                    previous: None,
                    why,
                })
            })
            .ok();
        let mut verifying = Vec::with_capacity(previous.len() + 1);
        for (i, pem) in previous.iter().enumerate() {
            match public_jwk(algorithm, pem).and_then(|jwk| verifying_key(algorithm, jwk)) {
                Ok(v) => verifying.push(v),
                Err(why) => bad.push(BadKey {
                    previous: Some(i),
                    why,
                }),
            }
        }
        let Some((encoding, first)) = current.filter(|_| bad.is_empty()) else {
            return Err(bad);
        };
        verifying.insert(0, first);
        let mut header = Header::new(algorithm);
        header.kid = verifying[0].kid.clone();
        Ok(SigningKeys {
            algorithm,
            header,
            encoding,
            verifying,
        })
    }

    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, SignError> {
        jsonwebtoken::encode(&self.header, claims, &self.encoding).map_err(SignError)
    }

    /// What every token of these keys must pass: this algorithm only (never
    /// the token's choice), `iss`, `exp` and `nbf` with `leeway` seconds.
    pub fn validation(&self, issuer: &str, leeway: u64) -> Rules {
        let mut v = Validation::new(self.algorithm);
        v.set_issuer(&[issuer]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        v.validate_nbf = true;
        v.validate_aud = false;
        v.leeway = leeway;
        Rules(v)
    }

    /// The claims of a token signed by one of these keys (the one its `kid`
    /// names) that passes `validation`.
    pub fn verify<T: serde::de::DeserializeOwned>(&self, token: &str, rules: &Rules) -> Option<T> {
        let kid = strict_header(token)?.kid;
        let key = self.for_kid(kid.as_deref())?;
        Some(jsonwebtoken::decode::<T>(token, key, &rules.0).ok()?.claims)
    }

    /// The key a token's `kid` names; with HS256 (tokens without `kid`) the secret.
    fn for_kid(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        match self.algorithm {
            Algorithm::HS256 => self
                .verifying
                .first()
                .map(|v| &v.key)
                .filter(|_| kid.is_none()),
            _ => self
                .verifying
                .iter()
                .find(|v| v.kid.as_deref() == kid && kid.is_some())
                .map(|v| &v.key),
        }
    }

    /// `{"keys":[...]}` of every public key (empty for HS256).
    pub fn jwks(&self) -> Value {
        let keys: Vec<&Value> = self
            .verifying
            .iter()
            .filter_map(|v| v.jwk.as_ref())
            .collect();
        json!({ "keys": keys })
    }
}

/// A JOSE header with only the members the gateway itself writes. Anything
/// else (`jku`, `x5u`, `jwk`, `crit`, `b64`, a duplicated member) is a token
/// the gateway did not issue, refused before any key is chosen.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictHeader {
    #[allow(dead_code)]
    alg: String,
    #[allow(dead_code)]
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

fn strict_header(token: &str) -> Option<StrictHeader> {
    let (head, _) = token.split_once('.')?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).ok()?).ok()
}

/// The encoding key and public JWK of a private key PEM (PKCS#8; RSA also PKCS#1).
fn key_pair(algorithm: Algorithm, pem: &[u8]) -> Result<(EncodingKey, Value), String> {
    let (label, der) = pem_der(pem).ok_or("not a PEM file")?;
    match algorithm {
        Algorithm::EdDSA => {
            let pair = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                .map_err(|e| format!("not an Ed25519 PKCS#8 private key: {e}"))?;
            Ok((
                EncodingKey::from_ed_der(&der),
                okp_jwk(pair.public_key().as_ref()),
            ))
        }
        Algorithm::ES256 => {
            let rng = ring::rand::SystemRandom::new();
            let pair = signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &der,
                &rng,
            )
            .map_err(|e| format!("not a P-256 PKCS#8 private key: {e}"))?;
            let jwk = ec_jwk(pair.public_key().as_ref()).ok_or("bad P-256 point")?;
            Ok((EncodingKey::from_ec_der(&der), jwk))
        }
        _ => {
            let pair = match label.as_str() {
                "RSA PRIVATE KEY" => signature::RsaKeyPair::from_der(&der),
                _ => signature::RsaKeyPair::from_pkcs8(&der),
            }
            .map_err(|e| format!("not an RSA private key: {e}"))?;
            let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
            let encoding = EncodingKey::from_rsa_pem(pem).map_err(|e| e.to_string())?;
            Ok((encoding, rsa_jwk(&c.n, &c.e)))
        }
    }
}

/// The label and DER bytes of the first PEM block.
fn pem_der(text: &[u8]) -> Option<(String, Vec<u8>)> {
    let block = pem::parse(text).ok()?;
    Some((block.tag().to_string(), block.into_contents()))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn okp_jwk(x: &[u8]) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(x)})
}

/// From an uncompressed P-256 point (0x04 || x || y).
fn ec_jwk(point: &[u8]) -> Option<Value> {
    (point.len() == 65 && point[0] == 4).then(
        || json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])}),
    )
}

fn rsa_jwk(n: &[u8], e: &[u8]) -> Value {
    let strip = |b: &[u8]| {
        b.iter()
            .position(|&x| x != 0)
            .map_or(vec![0], |i| b[i..].to_vec())
    };
    json!({"kty": "RSA", "n": b64(&strip(n)), "e": b64(&strip(e))})
}

/// The RFC 7638 thumbprint: SHA-256 over the required members in order.
fn thumbprint(jwk: &Value) -> String {
    let canonical = match jwk["kty"].as_str() {
        Some("OKP") => format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            jwk["x"].as_str().unwrap_or("")
        ),
        Some("EC") => format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap_or(""),
            jwk["y"].as_str().unwrap_or("")
        ),
        _ => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            jwk["e"].as_str().unwrap_or(""),
            jwk["n"].as_str().unwrap_or("")
        ),
    };
    b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
}

/// A verifying key from its JWK, which also gets its `kid`, `alg` and `use`.
fn verifying_key(alg: Algorithm, mut jwk: Value) -> Result<Verifying, String> {
    let s = |k: &str| jwk[k].as_str().unwrap_or_default().to_string();
    let key = match alg {
        Algorithm::EdDSA => DecodingKey::from_ed_components(&s("x")),
        Algorithm::ES256 => DecodingKey::from_ec_components(&s("x"), &s("y")),
        _ => DecodingKey::from_rsa_components(&s("n"), &s("e")),
    }
    .map_err(|e| e.to_string())?;
    let kid = thumbprint(&jwk);
    let alg_name = match alg {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::ES256 => "ES256",
        _ => "RS256",
    };
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg_name);
    jwk["use"] = json!("sig");
    Ok(Verifying {
        kid: Some(kid),
        key,
        jwk: Some(jwk),
    })
}

/// The JWK of a public key PEM (SubjectPublicKeyInfo; RSA also PKCS#1).
fn public_jwk(alg: Algorithm, pem: &[u8]) -> Result<Value, String> {
    let (label, der) = pem_der(pem).ok_or("not a PEM file")?;
    let key = match label.as_str() {
        "RSA PUBLIC KEY" => der,
        "PUBLIC KEY" => spki_key(&der).ok_or("not a SubjectPublicKeyInfo")?,
        other => return Err(format!("a public key PEM was expected, found {other:?}")),
    };
    match alg {
        Algorithm::EdDSA if key.len() == 32 => Ok(okp_jwk(&key)),
        Algorithm::ES256 => ec_jwk(&key).ok_or_else(|| "not a P-256 public key".into()),
        Algorithm::RS256 => {
            let (seq, _) = der_tlv(&key, 0x30).ok_or("not an RSA public key")?;
            let (n, rest) = der_tlv(seq, 0x02).ok_or("not an RSA public key")?;
            let (e, _) = der_tlv(rest, 0x02).ok_or("not an RSA public key")?;
            Ok(rsa_jwk(n, e))
        }
        _ => Err("not an Ed25519 public key".into()),
    }
}

/// The key bytes of a SubjectPublicKeyInfo: SEQ { SEQ alg, BIT STRING key }.
fn spki_key(der: &[u8]) -> Option<Vec<u8>> {
    let (spki, _) = der_tlv(der, 0x30)?;
    let (_, rest) = der_tlv(spki, 0x30)?;
    let (bits, _) = der_tlv(rest, 0x03)?;
    (bits.first() == Some(&0)).then(|| bits[1..].to_vec())
}

/// One DER element of `tag` at the start of `input`: (contents, rest).
fn der_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        n if n < 0x80 => (n as usize, rest),
        n => {
            let count = (n & 0x7f) as usize;
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let len = rest[..count]
                .iter()
                .fold(0usize, |a, &b| (a << 8) | b as usize);
            (len, &rest[count..])
        }
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Seconds since the Unix epoch, the unit of every token time claim.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
