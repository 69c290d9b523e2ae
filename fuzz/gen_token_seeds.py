#!/usr/bin/env python3
"""Writes the seed corpus of the `token` fuzz target into seeds/token/.

The keys are the fixed test keys of fuzz_targets/token.rs (an HS256 secret
and an Ed25519 key whose seed is the bytes 0x00..0x1f), so the valid seeds
verify and the fuzzer starts from the accepting path. Needs python3 and, for
the EdDSA seeds, the `cryptography` package. Rerun: python3 gen_token_seeds.py
"""
import base64
import hashlib
import hmac
import json
import os

HS256_SECRET = b"gateway-fuzz-hs256-secret-0123456789abcdef"
ED25519_SEED = bytes(range(32))
ISSUER = "gateway"
FAR = 4102444800  # 2100-01-01: the valid seeds stay valid
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "token")


def b64(b, pad=False):
    s = base64.urlsafe_b64encode(b).decode()
    return s if pad else s.rstrip("=")


def enc(obj):
    if isinstance(obj, (bytes, str)):
        return b64(obj.encode() if isinstance(obj, str) else obj)
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def hs(signing_input, secret=HS256_SECRET):
    return b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def hs256(header, claims, secret=HS256_SECRET):
    si = enc(header) + "." + enc(claims)
    return si + "." + hs(si, secret)


def claims(**over):
    c = {
        "sub": "user-1",
        "email": "ann@example.test",
        "firstName": "Ann",
        "lastName": "Lee",
        "scope": "read items:read",
        "sid": "session-1",
        "iss": ISSUER,
        "iat": 1700000000,
        "exp": FAR,
        "jti": "jti-1",
        "token_use": "access",
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


seeds = {}
H = {"typ": "JWT", "alg": "HS256"}
seeds["hs256_valid"] = hs256(H, claims())
seeds["hs256_no_scope"] = hs256(H, claims(scope="", email=None))
seeds["hs256_revoked_sid"] = hs256(H, claims(sid="revoked-session"))
seeds["hs256_expired"] = hs256(H, claims(exp=1000000000))
seeds["hs256_nbf_future"] = hs256(H, claims(nbf=FAR - 1))
seeds["hs256_refresh_use"] = hs256(H, claims(token_use="refresh"))
seeds["hs256_wrong_issuer"] = hs256(H, claims(iss="evil"))
seeds["hs256_missing_sid"] = hs256(H, claims(sid=None))
seeds["hs256_exp_string"] = hs256(H, claims(exp=str(FAR)))
seeds["hs256_exp_float"] = hs256(H, claims(exp=4102444800.5))
seeds["hs256_exp_huge"] = hs256(H, claims(exp=18446744073709551615))
seeds["hs256_exp_negative"] = hs256(H, claims(exp=-1))
seeds["hs256_control_char_sub"] = hs256(H, claims(sub="a\r\nx-injected: 1"))
seeds["hs256_unicode_claims"] = hs256(H, claims(sub="\u00e9\u202e\ud83d\ude00", scope="\u00a0read"))
seeds["hs256_wrong_secret"] = hs256(H, claims(), b"x" * 32)
seeds["hs256_no_signature"] = enc(H) + "." + enc(claims()) + "."
seeds["hs256_unsigned_two_parts"] = enc(H) + "." + enc(claims())
seeds["hs256_four_parts"] = seeds["hs256_valid"] + ".extra"
# Duplicate keys: the same JSON member twice, in the claims and the header.
dup_claims = json.dumps(claims(), separators=(",", ":"))[:-1] + ',"sub":"admin","exp":1}'
si = enc(H) + "." + b64(dup_claims.encode())
seeds["hs256_duplicate_claims"] = si + "." + hs(si)
si = b64(b'{"alg":"HS256","alg":"none","typ":"JWT"}') + "." + enc(claims())
seeds["header_duplicate_alg"] = si + "." + hs(si)
# alg none, in a few spellings.
for name, alg in [("alg_none", "none"), ("alg_None", "None"), ("alg_NONE", "NONE")]:
    seeds[name] = enc({"alg": alg, "typ": "JWT"}) + "." + enc(claims()) + "."
seeds["alg_none_with_sig"] = enc({"alg": "none"}) + "." + enc(claims()) + "." + hs("x")
seeds["alg_missing"] = hs256({"typ": "JWT"}, claims())
seeds["alg_unknown"] = hs256({"alg": "HS1024"}, claims())
seeds["alg_rs256_header"] = hs256({"alg": "RS256"}, claims())
# Huge headers: one just under the authorizer's 4096-byte limit, one over.
seeds["huge_header_under_limit"] = hs256(dict(H, x="A" * 2500), claims())
seeds["huge_header_over_limit"] = hs256(dict(H, x="A" * 4000), claims())
seeds["deep_header"] = enc("[" * 200 + "]" * 200) + "." + enc(claims()) + ".sig"
# Key-selection headers pointing elsewhere.
seeds["kid_traversal"] = hs256(dict(H, kid="../../../../etc/passwd"), claims())
seeds["kid_sql"] = hs256(dict(H, kid="x' UNION SELECT 'secret"), claims())
seeds["kid_nul"] = hs256(dict(H, kid="a\u0000b"), claims())
seeds["jku_header"] = hs256(dict(H, jku="http://evil.test/jwks.json"), claims())
seeds["x5u_header"] = hs256(dict(H, x5u="http://evil.test/cert.pem"), claims())
seeds["jwk_embedded"] = hs256(dict(H, jwk={"kty": "oct", "k": b64(b"k" * 32)}), claims())
seeds["crit_header"] = hs256(dict(H, crit=["exp"], exp=1), claims())
seeds["x5c_header"] = hs256(dict(H, x5c=["MIIB"]), claims())
# Encoding variations: padding, the standard alphabet, whitespace.
v = seeds["hs256_valid"]
h, p, s = v.split(".")
seeds["b64_padded"] = ".".join(x + "=" * (-len(x) % 4) for x in (h, p, s))
seeds["b64_bad_padding"] = h + "==." + p + "=." + s + "==="
seeds["b64_std_alphabet"] = ".".join(
    base64.b64encode(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))).decode() for x in (h, p, s)
)
seeds["b64_invalid_chars"] = h + ".*!$." + s
seeds["spaces_around"] = "  " + v + "  "
seeds["header_not_json"] = b64(b"not json") + "." + p + "." + s
seeds["header_array"] = enc([1, 2]) + "." + p + "." + s
seeds["payload_not_object"] = enc(H) + "." + enc([claims()]) + ".x"
seeds["empty_parts"] = ".."
seeds["single_dot"] = "."
seeds["scheme_basic"] = "Basic dXNlcjpwYXNz"
seeds["scheme_lower_bearer"] = "bearer " + v
seeds["scheme_double_bearer"] = "Bearer Bearer " + v
seeds["scheme_tab"] = "Bearer\t" + v

# EdDSA, signed with the fixed test key, with the RFC 7638 thumbprint as kid.
try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization

    key = Ed25519PrivateKey.from_private_bytes(ED25519_SEED)
    x = b64(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    kid = b64(hashlib.sha256(('{"crv":"Ed25519","kty":"OKP","x":"%s"}' % x).encode()).digest())

    def ed(header, c):
        si = enc(header) + "." + enc(c)
        return si + "." + b64(key.sign(si.encode()))

    E = {"typ": "JWT", "alg": "EdDSA", "kid": kid}
    seeds["eddsa_valid"] = ed(E, claims())
    seeds["eddsa_revoked_sid"] = ed(E, claims(sid="revoked-session"))
    seeds["eddsa_expired"] = ed(E, claims(exp=1000000000))
    seeds["eddsa_no_kid"] = ed({"alg": "EdDSA"}, claims())
    seeds["eddsa_wrong_kid"] = ed(dict(E, kid="../" + kid), claims())
    seeds["eddsa_jku"] = ed(dict(E, jku="http://evil.test/jwks.json"), claims())
    # Algorithm confusion: HS256 keyed with the public key, under the right kid.
    seeds["confusion_hs256_with_public_key"] = hs256(
        {"alg": "HS256", "kid": kid}, claims(), base64.urlsafe_b64decode(x + "=")
    )
    seeds["confusion_hs256_with_jwk_x"] = hs256({"alg": "HS256", "kid": kid}, claims(), x.encode())
except ImportError:
    print("cryptography not installed: EdDSA seeds skipped")

os.makedirs(OUT, exist_ok=True)
for name, tok in seeds.items():
    with open(os.path.join(OUT, name), "w") as f:
        f.write(tok)
print(f"{len(seeds)} seeds in {OUT}")
