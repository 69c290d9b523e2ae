//! Routing: path normalisation (`path`), templates (`template`) and the
//! precedence-ordered table (`table`).

mod path;
mod table;
mod template;

pub use path::{normalize, PathError};
pub use table::{Match, RouteTable};
pub use template::Template;
