//! TLS to PostgreSQL over rustls (ring), by `sslmode`: `disable` sends
//! nothing encrypted; `require` encrypts without checking who answers (as
//! libpq's `require` does without a root file); `verify-full` checks the
//! chain against the operating system's roots and the name against the host.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::super::StoreError;
use crate::config::SslMode;

/// The connector for `mode`, and the `sslmode` tokio-postgres must use.
pub fn connector(
    mode: SslMode,
) -> Result<(MakeRustlsConnect, tokio_postgres::config::SslMode), StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Postgres(format!("tls: {e}")))?;
    let (config, pg_mode) = match mode {
        SslMode::Disable => (
            builder
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            tokio_postgres::config::SslMode::Disable,
        ),
        SslMode::Require => (
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
                .with_no_client_auth(),
            tokio_postgres::config::SslMode::Require,
        ),
        SslMode::VerifyFull => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(StoreError::Postgres(
                    "sslmode=verify-full: no root certificates found in the operating system's store".into(),
                ));
            }
            (
                builder.with_root_certificates(roots).with_no_client_auth(),
                tokio_postgres::config::SslMode::Require,
            )
        }
    };
    Ok((MakeRustlsConnect::new(config), pg_mode))
}

/// `sslmode=require`: any certificate, but the handshake itself is still
/// verified (the key that signed it is the certificate's).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
