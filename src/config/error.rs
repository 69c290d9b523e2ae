//! Config errors: each one positioned (line, column, YAML path) so that
//! `gateway check` and reload logs print `PATH:LINE:COLUMN: path: message`.

use std::fmt;
use std::path::{Path, PathBuf};

/// A 1-based line and column in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub const fn new(line: usize, col: usize) -> Pos {
        Pos { line, col }
    }
}

/// One problem in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub pos: Pos,
    /// YAML path of the offending node, like `routes[2].upstream` (may be empty).
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(pos: Pos, path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            pos,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Every problem found in one load, in file order, with the file they came from.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub fn new(file: &Path, mut errors: Vec<ConfigError>) -> ConfigErrors {
        errors.sort_by_key(|e| e.pos);
        ConfigErrors {
            file: file.to_path_buf(),
            errors,
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: ", self.file.display(), e.pos.line, e.pos.col)?;
            if !e.path.is_empty() {
                write!(f, "{}: ", e.path)?;
            }
            write!(f, "{}", e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
