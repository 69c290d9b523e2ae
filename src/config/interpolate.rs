//! `${VAR}` / `${VAR:-default}` replacement inside scalars, before they are
//! interpreted (so `bcrypt_cost: ${COST:-10}` is still a number), with shell
//! semantics: `:-` applies when VAR is unset or empty; `$${` is a literal `${`.

use super::error::ConfigError;
use super::yaml::{Kind, Node};

/// Replaces variables in every scalar of the tree, collecting one error per
/// scalar that names an unset variable or is malformed, with the scalar's
/// YAML path (`path` is the node's own). Such a scalar keeps its text.
pub fn tree(
    node: &mut Node,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    match &mut node.kind {
        Kind::Scalar { value, .. } => {
            if value.contains('$') {
                match expand(value, env) {
                    Ok(v) => *value = v,
                    Err(msg) => errors.push(ConfigError::new(node.pos, path, msg)),
                }
            }
        }
        Kind::Seq(items) => {
            for (i, n) in items.iter_mut().enumerate() {
                tree(n, &format!("{path}[{i}]"), env, errors);
            }
        }
        Kind::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                // The key first: the value's path is the key as replaced,
                // the way deserialization and validation name it.
                tree(k, &child(path, k.key_text()), env, errors);
                tree(v, &child(path, k.key_text()), env, errors);
            }
        }
    }
}

fn child(path: &str, key: &str) -> String {
    match path.is_empty() {
        true => key.to_string(),
        false => format!("{path}.{key}"),
    }
}

/// Is `path` the node at `root` or inside it (`routes[0]` holds
/// `routes[0].path` and `routes[0][1]`, not `routes[01]`)?
pub fn is_within(path: &str, root: &str) -> bool {
    match path.strip_prefix(root) {
        Some(rest) => root.is_empty() || rest.is_empty() || rest.starts_with(['.', '[']),
        None => false,
    }
}

/// Expands one scalar's text.
pub fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {text:?}"))?;
            out.push_str(&substitute(&tail[..end], env)?);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// One `NAME` or `NAME:-default` between the braces.
fn substitute(inner: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, default) = match inner.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (inner, None),
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "`${{{inner}}}` is not a variable reference (NAME or NAME:-default)"
        ));
    }
    match (env(name), default) {
        (Some(v), Some(d)) if v.is_empty() => Ok(d.to_string()),
        (Some(v), _) => Ok(v),
        (None, Some(d)) => Ok(d.to_string()),
        (None, None) => Err(format!(
            "environment variable {name} is not set (write ${{{name}:-default}} to give a default)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_with_shell_semantics() {
        let cases = [
            ("plain", "plain"),
            ("${SET}", "value"),
            ("a${SET}b", "avalueb"),
            ("${UNSET:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${SET:-d}", "value"),
            ("${EMPTY}", ""),
            ("$${SET}", "${SET}"),
            ("cost $5", "cost $5"),
            ("${UNSET:-}", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &env).as_deref(), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn within_follows_path_steps_not_text() {
        assert!(is_within("routes[0].path", "routes[0]"));
        assert!(is_within("routes[0]", "routes[0]"));
        assert!(is_within("routes[0][1]", "routes[0]"));
        assert!(!is_within("routes[01]", "routes[0]"));
        assert!(!is_within("listener", "listen"));
        assert!(is_within("anything", ""));
    }

    #[test]
    fn unset_without_default_names_the_variable() {
        let err = expand("${NOPE}", &env).unwrap_err();
        assert!(err.contains("NOPE"), "{err}");
        assert!(expand("${SET", &env).is_err());
        assert!(expand("${1BAD}", &env).is_err());
    }
}
