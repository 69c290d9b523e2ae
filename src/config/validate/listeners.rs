//! `listen`, `tls` and `admin`: where the gateway listens. The certificate
//! and key are only named here; the loading step (`crate::load`) reads them.

use std::net::SocketAddr;

use crate::config::model::Tls;
use crate::config::raw;

use super::Validator;

impl Validator<'_> {
    pub(super) fn tls(&mut self, t: raw::Tls) -> Option<Tls> {
        let listen = self.addr("tls.listen", &t.listen)?;
        let cert = self.file_ref("tls.cert", &t.cert);
        let key = self.file_ref("tls.key", &t.key);
        Some(Tls { listen, cert, key })
    }

    pub(super) fn admin(&mut self, a: raw::Admin) -> Option<SocketAddr> {
        self.addr("admin.listen", &a.listen)
    }
}
