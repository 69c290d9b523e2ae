//! The HTTPS listener's rustls set-up: TLS 1.2 and 1.3 only, ALPN `h2` and
//! `http/1.1`, and a certificate a reload can replace without touching
//! connections (new handshakes get the new one). The only place that parses
//! certificates; the loading step (`crate::load`) reads their files.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// The current certificate and key, swapped whole on reload.
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<CertResolver> {
        Arc::new(CertResolver {
            current: ArcSwap::new(key),
        })
    }

    pub fn replace(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertResolver")
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The server side of the HTTPS listener over `resolver`'s certificate.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Why a certificate chain and key cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("no PEM certificate")]
    NoCertificate,
    #[error("{0}")]
    Chain(#[source] rustls::pki_types::pem::Error),
    #[error("{0}")]
    Key(#[source] rustls::pki_types::pem::Error),
    /// The key does not belong to the first certificate.
    #[error("{0}")]
    Mismatch(#[source] rustls::Error),
}

/// The certificates of a PEM chain (file contents), leaf first.
pub fn chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(CertError::Chain)?;
    match chain.is_empty() {
        true => Err(CertError::NoCertificate),
        false => Ok(chain),
    }
}

/// The private key of a PEM file (contents).
pub fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(CertError::Key)
}

/// The chain and key, once the key is checked to belong to the first certificate.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, CertError> {
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(CertError::Mismatch)
}
