//! Routing: path normalisation (`path`) and the precedence-ordered table
//! (`table`) of the templates `config` compiled.

mod path;
mod table;

pub use path::{normalize, PathError};
pub use table::{Match, RouteTable};
