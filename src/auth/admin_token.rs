//! The admin API's bearer token, checked in constant time: the configured
//! token is kept as an HMAC tag under a random key, and a presented token
//! is checked with `ring::hmac::verify`, whose comparison takes the same
//! time wherever the bytes differ, and whose work does not depend on how
//! much of the token an attacker has guessed.

use ring::hmac;

pub struct AdminKey {
    key: hmac::Key,
    tag: hmac::Tag,
}

impl AdminKey {
    pub fn new(token: &[u8]) -> Result<AdminKey, ring::error::Unspecified> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())?;
        let tag = hmac::sign(&key, token);
        Ok(AdminKey { key, tag })
    }

    /// Is `presented` exactly the configured token?
    pub fn accepts(&self, presented: &[u8]) -> bool {
        hmac::verify(&self.key, presented, self.tag.as_ref()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_accepted() {
        let token = b"0123456789abcdef0123456789abcdef";
        let key = AdminKey::new(token).unwrap();
        assert!(key.accepts(token));
        let mut off = *token;
        off[31] ^= 1;
        assert!(!key.accepts(&off));
        assert!(!key.accepts(&token[..31]));
        assert!(!key.accepts(b""));
        assert!(!key.accepts(&[token.as_slice(), b"x"].concat()));
    }
}
