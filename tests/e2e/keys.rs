//! Asymmetric access-token keys (docs/authorizer.md): EdDSA, ES256 and RS256
//! from PEM files made at test time, `kid`, the JWK set an upstream verifies
//! with, rotation with `previous_keys`, and algorithm-confusion attacks.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use ring::signature::{self, KeyPair};
use serde_json::{json, Value};

use crate::harness::auth::{mint, signup, tokens, Key};
use crate::harness::tools::openssl;
use crate::harness::{Gateway, Upstream};

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// (private PEM, public PEM) for `alg`, written into `dir` as NAME.key / NAME.pub.
fn keypair(dir: &Path, alg: &str, name: &str) -> (PathBuf, PathBuf) {
    let rng = ring::rand::SystemRandom::new();
    let (private, public) = match alg {
        "EdDSA" => {
            let der = signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            let pair = signature::Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
            let mut spki = hex("302a300506032b6570032100");
            spki.extend_from_slice(pair.public_key().as_ref());
            (pem("PRIVATE KEY", der.as_ref()), pem("PUBLIC KEY", &spki))
        }
        "ES256" => {
            let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            let der = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            let pair = signature::EcdsaKeyPair::from_pkcs8(alg, der.as_ref(), &rng).unwrap();
            let mut spki = hex("3059301306072a8648ce3d020106082a8648ce3d030107034200");
            spki.extend_from_slice(pair.public_key().as_ref());
            (pem("PRIVATE KEY", der.as_ref()), pem("PUBLIC KEY", &spki))
        }
        _ => {
            let key = format!("{name}.key");
            openssl(
                dir,
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    &key,
                ],
            );
            let public = openssl(dir, &["pkey", "-pubout", "-in", &key]);
            (
                std::fs::read_to_string(dir.join(&key)).unwrap(),
                String::from_utf8(public).unwrap(),
            )
        }
    };
    let (k, p) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    std::fs::write(&k, private).unwrap();
    std::fs::write(&p, public).unwrap();
    (k, p)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

async fn gateway(alg: &str, private: &Path, previous: &[&Path], up: &Upstream) -> Gateway {
    let previous: Vec<String> = previous
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let yaml = format!(
        r#"listen: 127.0.0.1:0
log: {{ access: false }}
auth:
  store: data/users.redb
  issuer: test-issuer
  bcrypt_cost: 4
  access_token:
    algorithm: {alg}
    private_key: {:?}
    previous_keys: [{}]
routes:
  - {{ name: me, path: /me, upstream: "{}" }}
"#,
        private.display().to_string(),
        previous.join(", "),
        up.url()
    );
    Gateway::start(&yaml).await
}

/// What an upstream does: fetch the JWK set and verify the token with the key
/// its `kid` names.
async fn verify_like_an_upstream(gw: &Gateway, token: &str, alg: Algorithm) -> Value {
    let jwks = gw
        .client()
        .get("/.well-known/jwks.json")
        .send()
        .await
        .json();
    let kid = decode_header(token)
        .unwrap()
        .kid
        .expect("asymmetric tokens carry a kid");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("the token's kid is in the JWK set")
        .clone();
    let s = |k: &str| jwk[k].as_str().unwrap().to_string();
    let key = match alg {
        Algorithm::EdDSA => DecodingKey::from_ed_components(&s("x")).unwrap(),
        Algorithm::ES256 => DecodingKey::from_ec_components(&s("x"), &s("y")).unwrap(),
        _ => DecodingKey::from_rsa_components(&s("n"), &s("e")).unwrap(),
    };
    let mut v = Validation::new(alg);
    v.set_issuer(&["test-issuer"]);
    decode::<Value>(token, &key, &v)
        .expect("an upstream can verify the token")
        .claims
}

async fn round_trip(alg_name: &str, alg: Algorithm) {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start().await;
    let (key, public) = keypair(dir.path(), alg_name, "k1");
    let gw = gateway(alg_name, &key, &[], &up).await;
    let c = gw.client();
    let (access, _) = signup(&c, &format!("{}@example.com", alg_name.to_lowercase())).await;
    assert_eq!(decode_header(&access).unwrap().alg, alg);
    assert_eq!(c.get("/me").bearer(&access).send().await.status, 200);
    let claims = verify_like_an_upstream(&gw, &access, alg).await;
    assert_eq!(claims["token_use"], "access");
    let jwks = c.get("/.well-known/jwks.json").send().await;
    assert_eq!(jwks.header("content-type"), Some("application/json"));
    let k = &jwks.json()["keys"][0];
    assert_eq!(
        (k["alg"].as_str(), k["use"].as_str()),
        (Some(alg_name), Some("sig"))
    );
    assert!(k.get("d").is_none(), "private parts in the JWK set: {k}");

    // Algorithm confusion: HS256 over the public key PEM, as if it were a secret.
    let mut forged_claims = crate::harness::auth::claims(&access);
    forged_claims["scope"] = json!("admin");
    let forged_claims = forged_claims.to_string();
    let kid = decode_header(&access).unwrap().kid.unwrap();
    let pub_pem = std::fs::read(&public).unwrap();
    let confused = mint(
        &json!({"typ": "JWT", "alg": "HS256", "kid": kid}).to_string(),
        &forged_claims,
        Key::Secret(&pub_pem),
    );
    // A second key of the same kind the gateway does not know, with and
    // without a forged `kid`.
    let (other, other_pub) = keypair(dir.path(), alg_name, "intruder");
    let other_pem = std::fs::read(&other).unwrap();
    let intruder = |header: Value| mint(&header.to_string(), &forged_claims, Key::Pem(&other_pem));
    let no_kid = intruder(json!({"typ": "JWT", "alg": alg_name}));
    let stolen_kid = intruder(json!({"typ": "JWT", "alg": alg_name, "kid": kid}));
    let odd_kid = intruder(json!({"typ": "JWT", "alg": alg_name, "kid": "../../etc/passwd"}));
    // The forgeries are well signed, each by the key it claims to use: a
    // 401 below is about the key, not a broken token.
    let verifies = |token: &str, key: &DecodingKey, alg: Algorithm| {
        let mut v = Validation::new(alg);
        v.set_issuer(&["test-issuer"]);
        decode::<Value>(token, key, &v).is_ok()
    };
    assert!(verifies(
        &confused,
        &DecodingKey::from_secret(&pub_pem),
        Algorithm::HS256
    ));
    let other_pub = std::fs::read(&other_pub).unwrap();
    let other_key = match alg {
        Algorithm::EdDSA => DecodingKey::from_ed_pem(&other_pub),
        Algorithm::ES256 => DecodingKey::from_ec_pem(&other_pub),
        _ => DecodingKey::from_rsa_pem(&other_pub),
    }
    .unwrap();
    assert!(verifies(&no_kid, &other_key, alg));
    for (what, token) in [
        ("HS256 with the public key", confused),
        ("unknown key, no kid", no_kid),
        ("unknown key, the real kid", stolen_kid),
        ("unknown key, a path as kid", odd_kid),
    ] {
        let r = c.get("/me").bearer(&token).send().await;
        assert_eq!(r.status, 401, "{alg_name}: {what}");
    }
    assert_eq!(
        up.requests().len(),
        1,
        "a forged token reached the upstream"
    );
}

#[tokio::test]
async fn eddsa_tokens_verify_here_and_upstream() {
    round_trip("EdDSA", Algorithm::EdDSA).await;
}

#[tokio::test]
async fn es256_tokens_verify_here_and_upstream() {
    round_trip("ES256", Algorithm::ES256).await;
}

#[tokio::test]
async fn rs256_tokens_verify_here_and_upstream() {
    round_trip("RS256", Algorithm::RS256).await;
}

#[tokio::test]
async fn previous_keys_keep_verifying_after_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start().await;
    let (k1, p1) = keypair(dir.path(), "EdDSA", "old");
    let (k2, _) = keypair(dir.path(), "EdDSA", "new");
    let before = gateway("EdDSA", &k1, &[], &up).await;
    let (old_token, _) = tokens(
        &crate::harness::auth::post(
            &before.client(),
            "/signup",
            &crate::harness::auth::user("rotate@example.com"),
        )
        .await,
    );
    drop(before);
    let after = gateway("EdDSA", &k2, &[&p1], &up).await;
    let c = after.client();
    assert_eq!(c.get("/me").bearer(&old_token).send().await.status, 200);
    let (new_token, _) = signup(&c, "rotated@example.com").await;
    let kid = |t: &str| decode_header(t).unwrap().kid.unwrap();
    assert_ne!(kid(&old_token), kid(&new_token));
    let jwks = c.get("/.well-known/jwks.json").send().await.json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [kid(&new_token), kid(&old_token)]);
    // Without the previous key listed, the old token is refused.
    let dropped = gateway("EdDSA", &k2, &[], &up).await;
    assert_eq!(
        dropped
            .client()
            .get("/me")
            .bearer(&old_token)
            .send()
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn hs256_gateways_publish_an_empty_key_set() {
    let gw = Gateway::start(crate::harness::auth::auth_config()).await;
    let r = gw.client().get("/.well-known/jwks.json").send().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"keys": []}));
    let r = gw.client().post("/.well-known/jwks.json").send().await;
    r.assert_error(405);
    assert_eq!(r.header("allow"), Some("GET"));
}

#[test]
fn check_parses_key_files_and_points_at_the_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let (good, good_pub) = keypair(dir.path(), "EdDSA", "good");
    let (ec_key, _) = keypair(dir.path(), "ES256", "ec");
    std::fs::write(dir.path().join("junk.pem"), "not a key\n").unwrap();
    let run = |private: &Path, previous: &Path| {
        let file = dir.path().join("gw.yaml");
        std::fs::write(
            &file,
            format!(
                "listen: 127.0.0.1:0\nauth:\n  store: data/u.redb\n  access_token:\n    algorithm: EdDSA\n    private_key: {:?}\n    previous_keys: [{:?}]\nroutes:\n  - {{ name: a, path: /a, echo: true }}\n",
                private.display().to_string(),
                previous.display().to_string()
            ),
        )
        .unwrap();
        let out = Command::new(crate::harness::gateway::bin())
            .args(["check", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = run(&good, &good_pub);
    assert_eq!(code, Some(0), "{text}");
    let junk = dir.path().join("junk.pem");
    let (code, text) = run(&junk, &good_pub);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(":6:18: auth.access_token.private_key: ") && text.contains("not a PEM file"),
        "{text}"
    );
    // A P-256 key where an Ed25519 one is configured.
    let (code, text) = run(&ec_key, &good_pub);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("auth.access_token.private_key") && text.contains("Ed25519"),
        "{text}"
    );
    let (code, text) = run(&good, &junk);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("auth.access_token.previous_keys"), "{text}");
}
