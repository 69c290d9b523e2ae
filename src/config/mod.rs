//! gateway.yaml: read (`yaml`), interpolate `${VAR}` (`interpolate`),
//! deserialize (`de`, `raw`), validate (`validate`) into `model` types.
//! Only this module touches YAML.

mod builtin;
mod de;
mod error;
mod interpolate;
mod model;
mod raw;
mod template;
mod units;
mod validate;
mod yaml;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, ConfigErrors, Pos};
pub use model::*;
pub use template::Template;

/// Loads and validates the file; every problem is returned, positioned.
pub fn load(file: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ConfigErrors::new(
            file,
            vec![ConfigError::new(
                Pos::new(1, 1),
                "",
                format!("cannot read the file: {e}"),
            )],
        )
    })?;
    parse(&text, file, &|name| std::env::var(name).ok())
}

/// Parses config text as if read from `file` (relative paths resolve against its folder).
pub fn parse(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let fail = |errors| ConfigErrors::new(file, errors);
    let mut root = yaml::parse(text).map_err(|e| fail(vec![e]))?;
    let mut errors = Vec::new();
    interpolate::tree(&mut root, env, &mut errors);
    if !errors.is_empty() {
        return Err(fail(errors));
    }
    let base = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    validate::config(&root, file, &base).map_err(fail)
}

/// The path `serve` and `check` use: `--config`, else `$GATEWAY_CONFIG`, else `./gateway.yaml`.
pub fn default_path() -> PathBuf {
    std::env::var_os("GATEWAY_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("gateway.yaml"))
}

impl Config {
    /// Counts plain, TLS and admin listeners, as `check` reports them.
    pub fn listener_count(&self) -> usize {
        self.listen.is_some() as usize + self.tls.is_some() as usize + self.admin.is_some() as usize
    }
}

#[cfg(test)]
mod tests;
