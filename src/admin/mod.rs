//! Managing users on a running gateway (docs/admin.md): the admin API on
//! the admin listener (`api`, which routes to the shared account operations
//! of `identity::accounts`), the console page it serves (`console`), the
//! JSON shapes both sides read (`view`), and `gateway users` (`cli`), which
//! works on the store directly or through a running gateway's API (`client`).

pub mod api;
pub mod cli;
pub mod client;
pub mod console;
pub mod view;
