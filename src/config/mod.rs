//! gateway.yaml, from text to `model` types: read the tree (`yaml`),
//! interpolate `${VAR}` (`interpolate`), deserialize (`de`, `raw`),
//! validate (`validate`). Only this module touches YAML, and it does no
//! I/O: the text and the environment come in as arguments, and the files
//! the config names come out as `FileRef`s (path and position) for the
//! loading step (`crate::load`) to read.

mod builtin;
mod de;
mod error;
mod interpolate;
mod model;
mod raw;
mod suggest;
mod template;
mod units;
mod validate;
mod yaml;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, ConfigErrors, Pos};
pub use model::*;
pub use template::{Segment, Template};

/// Everything validation found: the config as far as it could be built,
/// and every error. The loading step reads the files a config with errors
/// names too, so one `check` reports every problem.
#[derive(Debug)]
pub struct Partial {
    /// `None` when the text is no YAML; with `errors`, parts of it are
    /// defaults standing in for bad values, or the raw text of a scalar
    /// whose `${VAR}` is unset (that scalar's only error is the unset VAR).
    pub config: Option<Config>,
    pub errors: Vec<ConfigError>,
}

/// Parses config text as if read from `file` (relative paths resolve
/// against its folder); `env` looks up `${VAR}`s. Pure: reads no file.
pub fn parse(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    match parse_partial(text, file, env) {
        Partial {
            config: Some(config),
            errors,
        } if errors.is_empty() => Ok(config),
        Partial { errors, .. } => Err(ConfigErrors::new(file, errors)),
    }
}

/// Like `parse`, but gives what was built along with the errors.
pub fn parse_partial(text: &str, file: &Path, env: &dyn Fn(&str) -> Option<String>) -> Partial {
    let failed = |errors| Partial {
        config: None,
        errors,
    };
    let mut root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => return failed(vec![e]),
    };
    let mut unset = Vec::new();
    interpolate::tree(&mut root, "", env, &mut unset);
    let base = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (config, mut errors) = validate::config(&root, file, &base);
    // A scalar whose `${VAR}` could not be replaced still holds its text,
    // which is not the value the operator meant: what validation says of it
    // (a short secret, a bad URL) would be a second, misleading error. Its
    // interpolation error stands alone, and every other error is kept.
    errors.retain(|e| {
        !unset
            .iter()
            .any(|u| interpolate::is_within(&e.path, &u.path))
    });
    errors.extend(unset);
    Partial {
        config: Some(config),
        errors,
    }
}

impl Config {
    /// Counts plain, TLS and admin listeners, as `check` reports them.
    pub fn listener_count(&self) -> usize {
        self.listen.is_some() as usize + self.tls.is_some() as usize + self.admin.is_some() as usize
    }
}

#[cfg(test)]
mod tests;
