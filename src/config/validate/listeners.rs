//! `listen`, `tls` and `admin`: where the gateway listens. The certificate
//! and key are only named here; the loading step (`crate::load`) reads them.

use crate::config::model::{Admin, AdminToken, Tls};
use crate::config::raw;

use super::Validator;

impl Validator<'_> {
    pub(super) fn tls(&mut self, t: raw::Tls) -> Option<Tls> {
        let listen = self.addr("tls.listen", &t.listen)?;
        let cert = self.file_ref("tls.cert", &t.cert);
        let key = self.file_ref("tls.key", &t.key);
        Some(Tls { listen, cert, key })
    }

    pub(super) fn admin(&mut self, a: raw::Admin) -> Option<Admin> {
        let listen = self.addr("admin.listen", &a.listen);
        let token = a.token.filter(|t| !t.is_empty()).map(String::into_bytes);
        if token
            .as_ref()
            .is_some_and(|t| t.len() < Admin::MIN_TOKEN_BYTES)
        {
            self.err(
                "admin.token",
                format!(
                    "the admin token must be at least {} bytes (e.g. `openssl rand -base64 32`)",
                    Admin::MIN_TOKEN_BYTES
                ),
            );
        }
        Some(Admin {
            listen: listen?,
            token: token.map(|t| AdminToken(t.into())),
        })
    }
}
