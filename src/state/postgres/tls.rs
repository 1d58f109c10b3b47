//! TLS to the database with rustls, checked as libpq's `sslmode` says.
//!
//! libpq's modes differ in what they check, not only in whether they encrypt:
//! `prefer` and `require` encrypt without checking the certificate (unless `require` is
//! given an `sslrootcert`, when it checks the chain like `verify-ca`), `verify-ca` checks
//! the chain but not the name, `verify-full` checks both. Operators rely on those
//! meanings from every other PostgreSQL client, so they are kept exactly; whether TLS
//! is demanded at all is tokio-postgres's `ssl_mode`, set in `database_url.rs`.
//! The crypto provider is named (aws-lc-rs, the one reqwest already uses) rather than
//! taken from a process default that nothing here installs.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::database_url::{RootCerts, SslMode};
use crate::state::StateError;

/// The connector tokio-postgres negotiates TLS with, for `mode` and `roots`.
pub fn connector(
    mode: SslMode,
    roots: Option<&RootCerts>,
) -> Result<MakeRustlsConnect, StateError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StateError::Connect(format!("TLS set-up: {e}")))?;
    let config = match (mode, roots) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        (SslMode::Require | SslMode::VerifyCa, roots) => {
            let chain = verifier(load_roots(roots)?, provider)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(chain)))
                .with_no_client_auth()
        }
        (SslMode::VerifyFull, roots) => builder
            .with_webpki_verifier(verifier(load_roots(roots)?, provider)?)
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

fn verifier(
    roots: RootCertStore,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, StateError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| StateError::Connect(format!("TLS set-up: {e}")))
}

/// The trusted roots: the `sslrootcert` file, else the system's store.
fn load_roots(roots: Option<&RootCerts>) -> Result<RootCertStore, StateError> {
    let mut store = RootCertStore::empty();
    match roots {
        Some(RootCerts::File(path)) => {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| StateError::Connect(format!("sslrootcert {shown}: {e}")))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(StateError::Connect(format!(
                    "sslrootcert {shown} holds no usable CA certificate"
                )));
            }
        }
        Some(RootCerts::System) | None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(StateError::Connect(
                    "no system CA certificates found to check the database's certificate; install ca-certificates or set sslrootcert=<file> in TWOBOT_DATABASE_URL".to_owned(),
                ));
            }
        }
    }
    Ok(store)
}

/// `verify-ca` (and `require` with a root file): the chain must reach a trusted root; the
/// name in the certificate is not compared with the host.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root file: encrypted against eavesdropping, the
/// certificate not checked (libpq's meaning; `verify-full` is the mode that resists an
/// active attacker). The handshake's signatures are still verified.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_missing_or_empty_root_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = connector(SslMode::VerifyFull, Some(&RootCerts::File(missing)))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("sslrootcert") && err.contains("nope.pem"),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = connector(SslMode::VerifyCa, Some(&RootCerts::File(empty)))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no usable CA certificate"), "{err}");
    }

    #[test]
    fn modes_that_check_nothing_need_no_roots() {
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require] {
            assert!(connector(mode, None).is_ok(), "{mode:?}");
        }
    }
}
