//! `listen`, `tls` and `admin`: where the gateway listens.

use std::net::SocketAddr;

use crate::config::model::Tls;
use crate::config::raw;

use super::Validator;

impl Validator<'_> {
    pub(super) fn tls(&mut self, t: raw::Tls) -> Option<Tls> {
        let listen = self.addr("tls.listen", &t.listen)?;
        let (cert, key) = (self.file_path(&t.cert), self.file_path(&t.key));
        if let Err(msg) = crate::tls::load_certified_key(&cert, &key) {
            self.err("tls.cert", msg);
        }
        Some(Tls { listen, cert, key })
    }

    pub(super) fn admin(&mut self, a: raw::Admin) -> Option<SocketAddr> {
        self.addr("admin.listen", &a.listen)
    }
}
