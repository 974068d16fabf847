//! PEM files for TLS, read so that every failure names the file: missing, unreadable, not
//! PEM, no certificate or key in it, a key that does not match its certificate, or a
//! certificate that has expired (or is not valid yet).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::tls_error::TlsError;

/// Reads the certificate chain in `path`; every certificate must be within its validity.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::NotPem {
            path: path.into(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    for cert in &certs {
        check_validity(path, cert)?;
    }
    Ok(certs)
}

/// Reads the private key in `path` (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|source| TlsError::NoPrivateKey {
        path: path.into(),
        source,
    })
}

/// A trust store of the certificates in `path` (a CA bundle).
pub fn roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certificates(path)? {
        store.add(cert).map_err(|source| TlsError::UnusableCa {
            path: path.into(),
            source,
        })?;
    }
    Ok(store)
}

/// The certificate chain and key as one signing identity, checked to belong together.
pub fn certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = certificates(cert_file)?;
    let key = private_key(key_file)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::UnusableKey {
            path: key_file.into(),
            source,
        })?;
    let certified = CertifiedKey::new(certs, signing);
    certified
        .keys_match()
        .map_err(|source| TlsError::KeyMismatch {
            key_file: key_file.into(),
            cert_file: cert_file.into(),
            source,
        })?;
    Ok(Arc::new(certified))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })
}

fn check_validity(path: &Path, cert: &CertificateDer<'_>) -> Result<(), TlsError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|source| TlsError::NotX509 {
            path: path.into(),
            source,
        })?;
    let validity = parsed.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now > validity.not_after {
        return Err(TlsError::Expired {
            path: path.into(),
            subject: parsed.subject().to_string(),
            not_after: validity.not_after.to_string(),
        });
    }
    if now < validity.not_before {
        return Err(TlsError::NotYetValid {
            path: path.into(),
            subject: parsed.subject().to_string(),
            not_before: validity.not_before.to_string(),
        });
    }
    Ok(())
}
