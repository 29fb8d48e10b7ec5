//! TLS client settings for `mqtts://` (and later HTTPS sinks).
//!
//! rustls is built without a bundled crypto provider (aws-lc-sys is a slow C build), so ring is
//! installed as the process default before any TLS configuration is made.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// Installs ring as rustls's process-wide provider (idempotent).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client configuration: the configured CA (or the system's roots) and an optional client
/// certificate.
pub fn client_config(tls: Option<&TlsConfig>) -> Result<Arc<rustls::ClientConfig>, String> {
    install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    match tls.and_then(|t| t.ca.as_deref()) {
        Some(ca) => {
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file {}: {e}", ca.display()))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // Skip the odd unparsable system certificate rather than refuse to start.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no system CA certificates found; set source.tls.ca".into());
            }
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match tls.and_then(|t| t.client_cert.as_deref().zip(t.client_key.as_deref())) {
        Some((cert, key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(|e| format!("client certificate {}: {e}", cert.display()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A PEM file's trouble, saying which file.
fn pem_error(path: &Path, e: pem::Error) -> String {
    match e {
        pem::Error::Io(e) => format!("cannot read {}: {e}", path.display()),
        e => format!("{}: {e}", path.display()),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => format!("{}: no PEM private key found", path.display()),
        e => pem_error(path, e),
    })
}
