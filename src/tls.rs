//! rustls material from `tls.cert` and `tls.key`: the only place that reads
//! certificates. (The HTTPS listener itself arrives with the operations work.)

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Reads a PEM chain and key and checks that the key belongs to the first certificate.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read private key {}: {e}", key.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, private_key, &provider)
        .map(Arc::new)
        .map_err(|e| {
            format!(
                "certificate {} and key {} do not match: {e}",
                cert.display(),
                key.display()
            )
        })
}
