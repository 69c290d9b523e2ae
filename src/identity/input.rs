//! The endpoints' request bodies: a JSON object whose fields are checked one
//! by one, so each bad input gets a 400 that names the field.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::error::Category;
use serde_json::{Map, Value};

use super::password;

/// Why a body was refused; the text is the 400's `message`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

pub struct Fields(Map<String, Value>);

impl Fields {
    /// A JSON object whose top-level keys are unique: with a key given twice,
    /// a filter in front of the gateway may read the first while a
    /// last-one-wins parser reads the other, so such a body is refused.
    pub fn parse(body: &[u8]) -> Result<Fields, Invalid> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let parsed = de
            .deserialize_any(TopLevel)
            .and_then(|b| de.end().map(|()| b));
        match parsed {
            Ok(TopLevelBody::Object(map)) => Ok(Fields(map)),
            Ok(TopLevelBody::Repeated(key)) if is_plain(&key) => {
                Err(Invalid(format!("`{key}` is given more than once")))
            }
            Ok(TopLevelBody::Repeated(_)) => Err(Invalid("a key is given more than once".into())),
            // Values are `Value`s, which take any JSON: a data error is the
            // top level being something else than an object.
            Err(e) if e.classify() == Category::Data => {
                Err(Invalid("the body must be a JSON object".into()))
            }
            Err(_) => Err(Invalid("the body is not valid JSON".into())),
        }
    }

    /// A string field that is present and not empty.
    pub fn string(&self, name: &str) -> Result<&str, Invalid> {
        match self.0.get(name) {
            None | Some(Value::Null) => Err(Invalid(format!("`{name}` is required"))),
            Some(Value::String(s)) if s.is_empty() => {
                Err(Invalid(format!("`{name}` must not be empty")))
            }
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(Invalid(format!("`{name}` must be a string"))),
        }
    }

    /// A string field that may be absent (or null).
    pub fn optional_string(&self, name: &str) -> Result<Option<&str>, Invalid> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Invalid(format!("`{name}` must be a string"))),
        }
    }

    /// Trimmed and lower-cased; at most 254 bytes, one `@`, a non-empty local
    /// part, a domain with a dot and no empty labels, no whitespace or controls.
    pub fn email(&self) -> Result<String, Invalid> {
        email(self.string("email")?)
    }

    /// Trimmed; 1 to 100 characters.
    pub fn name(&self, field: &str) -> Result<String, Invalid> {
        name(field, self.string(field)?)
    }

    /// A password as given (never trimmed).
    pub fn password(&self) -> Result<String, Invalid> {
        Ok(self.string("password")?.to_string())
    }

    /// An optional list of strings (`None` when absent or null).
    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>, Invalid> {
        let wrong = || Invalid(format!("`{name}` must be a list of strings"));
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(wrong))
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(wrong()),
        }
    }
}

/// Trimmed and lower-cased; at most 254 bytes, one `@`, a non-empty local
/// part, a domain with a dot and no empty labels, no whitespace or controls.
pub fn email(text: &str) -> Result<String, Invalid> {
    let email = text.trim().to_lowercase();
    let bad = || Invalid("`email` is not a valid email address".into());
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let domain_ok = domain.contains('.') && domain.split('.').all(|l| !l.is_empty());
    if local.is_empty() || domain.contains('@') || !domain_ok {
        return Err(bad());
    }
    Ok(email)
}

/// Trimmed; 1 to 100 characters, no control characters.
pub fn name(field: &str, text: &str) -> Result<String, Invalid> {
    let name = text.trim();
    if name.is_empty() {
        return Err(Invalid(format!("`{field}` must not be empty")));
    }
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Invalid(format!(
            "`{field}` must be at most 100 characters, without control characters"
        )));
    }
    Ok(name.to_string())
}

enum TopLevelBody {
    Object(Map<String, Value>),
    /// The first key seen twice (after unescaping).
    Repeated(String),
}

/// Reads the top-level object, keeping the first repeated key.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = TopLevelBody;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<TopLevelBody, A::Error> {
        let mut map = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            if map.contains_key(&key) {
                // The rest is read (and so still syntax-checked), not kept.
                entries.next_value::<IgnoredAny>()?;
                while entries.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                return Ok(TopLevelBody::Repeated(key));
            }
            let value = entries.next_value::<Value>()?;
            map.insert(key, value);
        }
        Ok(TopLevelBody::Object(map))
    }
}

/// A key short and plain enough to quote back in a message.
fn is_plain(key: &str) -> bool {
    key.len() <= 64 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Rules for a new password (the `field` named in the message): 8 to 72
/// bytes, no NUL (C bcrypts stop there), and not a common one.
pub fn check_new_password(field: &str, password: &str) -> Result<(), Invalid> {
    if password.contains('\0') {
        return Err(Invalid(format!("`{field}` must not contain NUL")));
    }
    if !(password::MIN_BYTES..=password::MAX_BYTES).contains(&password.len()) {
        return Err(Invalid(format!(
            "`{field}` must be {} to {} bytes long",
            password::MIN_BYTES,
            password::MAX_BYTES
        )));
    }
    if password::is_common(password) {
        return Err(Invalid(format!(
            "`{field}` is one of the most common passwords; choose another"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Fields {
        Fields::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn bodies_that_are_not_objects_are_refused() {
        let not_json = "the body is not valid JSON";
        let not_object = "the body must be a JSON object";
        for (body, why) in [
            ("", not_json),
            ("{", not_json),
            ("{\"a\":1,}", not_json),
            ("{\"a\":1} {}", not_json),
            ("{\"a\":1,\"a\":2,", not_json),
            ("[1]", not_object),
            ("\"x\"", not_object),
            ("null", not_object),
            ("7", not_object),
        ] {
            assert_eq!(
                Fields::parse(body.as_bytes()).err(),
                Some(Invalid(why.into())),
                "{body}"
            );
        }
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        for (body, key) in [
            (r#"{"email":"a@x.io","email":"b@x.io"}"#, "email"),
            (r#"{"email":"a@x.io","email":"a@x.io"}"#, "email"),
            (r#"{"email":"a@x.io","em\u0061il":"b@x.io"}"#, "email"),
            (r#"{"password":1,"x":{},"password":"p"}"#, "password"),
        ] {
            let err = Fields::parse(body.as_bytes()).err();
            assert_eq!(
                err,
                Some(Invalid(format!("`{key}` is given more than once"))),
                "{body}"
            );
        }
        let long = format!(r#"{{"{0}":1,"{0}":2}}"#, "k".repeat(65));
        for body in [long.as_str(), r#"{"a\nb":1,"a\nb":2}"#] {
            let err = Fields::parse(body.as_bytes()).err();
            assert_eq!(err, Some(Invalid("a key is given more than once".into())));
        }
        // Only the top level is read, so only it is checked.
        assert!(Fields::parse(br#"{"x":{"a":1,"a":2},"email":"a@x.io"}"#).is_ok());
    }

    #[test]
    fn fields_must_be_present_non_empty_strings() {
        let f = fields(r#"{"a":"x","n":null,"e":"","num":1,"arr":["x"]}"#);
        assert_eq!(f.string("a"), Ok("x"));
        for name in ["missing", "n", "e", "num", "arr"] {
            let err = f.string(name).unwrap_err();
            assert!(err.0.contains(name), "{err}");
        }
    }

    #[test]
    fn emails_are_trimmed_lowercased_and_checked() {
        let ok = |e: &str| fields(&serde_json::json!({ "email": e }).to_string()).email();
        assert_eq!(ok("  Ann@Example.COM "), Ok("ann@example.com".into()));
        assert_eq!(ok("a+b@x.io"), Ok("a+b@x.io".into()));
        let long = format!("{}@x.io", "a".repeat(250));
        for bad in [
            "plain",
            "@x.io",
            "a@",
            "a@x",
            "a@@x.io",
            "a@b@x.io",
            "a b@x.io",
            "a@x..io",
            "a@.x.io",
            "a@x.io.",
            "a\u{0}@x.io",
            " ",
            long.as_str(),
        ] {
            assert!(ok(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        let name =
            |n: &str| fields(&serde_json::json!({ "firstName": n }).to_string()).name("firstName");
        assert_eq!(name("  Zoë "), Ok("Zoë".into()));
        assert_eq!(name(&"é".repeat(100)), Ok("é".repeat(100)));
        assert!(name("   ").is_err());
        assert!(name(&"é".repeat(101)).is_err());
    }

    #[test]
    fn passwords_are_bounded_in_bytes_and_not_common() {
        assert!(check_new_password("password", "Tr0ub4dor&3x").is_ok());
        assert!(check_new_password("password", "short7!").is_err());
        assert!(check_new_password("password", &"x".repeat(72)).is_ok());
        assert!(check_new_password("password", &"x".repeat(73)).is_err());
        // 36 two-byte characters are 72 bytes; 37 are too many.
        assert!(check_new_password("password", &"é".repeat(36)).is_ok());
        assert!(check_new_password("password", &"é".repeat(37)).is_err());
        assert!(check_new_password("password", "password1").is_err());
        assert!(check_new_password("password", "Password1").is_err());
        assert!(check_new_password("password", "abc\0defghij").is_err());
    }
}
