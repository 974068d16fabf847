//! Why TLS could not be set up. Every variant names the file or option at fault, so a
//! start-up failure or a failed reload says what to fix; the causes from rustls and the
//! certificate parser are kept as sources rather than flattened into text.

use std::path::PathBuf;

use rustls::pki_types::InvalidDnsNameError;
use rustls::pki_types::pem::Error as PemError;
use x509_parser::error::X509Error;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A listener's `tls` block names no certificate or no key.
    #[error("cert_file and key_file are both required")]
    CertAndKeyRequired,
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a PEM certificate file: {source}", path.display())]
    NotPem { path: PathBuf, source: PemError },
    #[error("{}: no certificate in the file", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no usable private key in the file: {source}", path.display())]
    NoPrivateKey { path: PathBuf, source: PemError },
    #[error("{}: not a valid X.509 certificate: {source}", path.display())]
    NotX509 {
        path: PathBuf,
        source: x509_parser::nom::Err<X509Error>,
    },
    #[error("{}: certificate `{subject}` expired on {not_after}", path.display())]
    Expired {
        path: PathBuf,
        subject: String,
        not_after: String,
    },
    #[error("{}: certificate `{subject}` is not valid before {not_before}", path.display())]
    NotYetValid {
        path: PathBuf,
        subject: String,
        not_before: String,
    },
    #[error("{}: not a usable CA certificate: {source}", path.display())]
    UnusableCa {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("{}: unusable private key: {source}", path.display())]
    UnusableKey {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error(
        "{} does not match the certificate in {}: {source}",
        key_file.display(),
        cert_file.display()
    )]
    KeyMismatch {
        key_file: PathBuf,
        cert_file: PathBuf,
        source: rustls::Error,
    },
    /// The client CA bundle cannot verify clients (e.g. it holds no usable root).
    #[error("{}: {source}", path.display())]
    ClientCa {
        path: PathBuf,
        source: rustls::server::VerifierBuilderError,
    },
    /// `min_version` / `max_version` asks for TLS 1.0 or 1.1, which rustls does not have:
    /// an error rather than a silent upgrade.
    #[error(
        "{option}: TLS {version} is not supported (insecure; this build speaks TLS 1.2 and 1.3)"
    )]
    InsecureVersion {
        option: &'static str,
        version: String,
    },
    #[error("{option}: `{version}` is not a TLS version (1.2 or 1.3)")]
    UnknownVersion {
        option: &'static str,
        version: String,
    },
    #[error("min_version is above max_version")]
    VersionsInverted,
    #[error("cipher_suites: `{wanted}` is not supported; supported: {}", supported.join(", "))]
    UnknownCipherSuite {
        wanted: String,
        supported: Vec<String>,
    },
    /// rustls refused the combination of provider and protocol versions.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("no ca_file and no usable certificate in the system trust store")]
    NoSystemRoots,
    #[error("server_name_override `{name}`: {source}")]
    ServerName {
        name: String,
        source: InvalidDnsNameError,
    },
}
