//! Authentication, the one place for it: extensions (`bearertokenauth`, `sigv4auth`) offer
//! authenticators; receivers check incoming requests with a [`ServerAuthenticator`] and
//! exporters sign outgoing ones with a [`ClientAuthenticator`], both found by the extension's
//! id in [`Authenticators`], as the OpenTelemetry Collector's `auth: { authenticator: ID }`
//! names them.
//!
//! Authenticators are built before the pipelines and receivers, so every component that
//! names one gets it at build time and a missing or unsuitable one fails start-up.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

/// Who sent a request, once authenticated: what authorization decisions (which log groups a
/// client may write) are made on. Never holds the credential itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// A stable name for the client: the token's configured name, a certificate subject.
    pub subject: String,
}

/// Why a request was not authenticated or could not be signed. The message is safe to show
/// to the sender and to log: it never contains the credential.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No credential in the request (HTTP 401 / gRPC `UNAUTHENTICATED`).
    #[error("missing credentials: {0}")]
    Missing(&'static str),
    /// A credential that is not accepted (HTTP 401 / gRPC `UNAUTHENTICATED`).
    #[error("invalid credentials: {0}")]
    Invalid(&'static str),
    /// The authenticator cannot work at the moment (credentials could not be loaded, a
    /// token file could not be read): the exporter retries, the receiver answers 503.
    #[error("authenticator unavailable: {0}")]
    Unavailable(String),
}

/// Checks an incoming request (HTTP headers, or gRPC metadata as headers).
pub trait ServerAuthenticator: Send + Sync + fmt::Debug {
    fn authenticate(&self, headers: &http::HeaderMap) -> Result<Principal, AuthError>;
}

/// Adds credentials to an outgoing request. `body` is the exact payload that will be sent
/// (SigV4 signs its hash); header-only schemes ignore it. gRPC exporters pass an empty body
/// and copy the resulting headers into the call's metadata.
#[async_trait]
pub trait ClientAuthenticator: Send + Sync + fmt::Debug {
    async fn authorize(
        &self,
        request: &mut http::request::Parts,
        body: &[u8],
    ) -> Result<(), AuthError>;
}

/// What one extension offers: an extension may authenticate incoming requests, sign
/// outgoing ones, or both (a bearer token works either way).
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    pub server: Option<Arc<dyn ServerAuthenticator>>,
    pub client: Option<Arc<dyn ClientAuthenticator>>,
}

/// The authenticators of the extensions listed under `service.extensions`, by extension id.
#[derive(Debug, Clone, Default)]
pub struct Authenticators {
    by_id: BTreeMap<String, Authenticator>,
}

/// The `auth` block of a receiver or exporter, with the Collector's name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The id of an extension listed under `service.extensions`.
    pub authenticator: String,
}

impl Authenticators {
    pub fn insert(&mut self, id: &str, authenticator: Authenticator) {
        self.by_id.insert(id.to_string(), authenticator);
    }

    /// The server side of extension `id`, or why it cannot be used.
    pub fn server(&self, id: &str) -> Result<Arc<dyn ServerAuthenticator>, LookupError> {
        self.lookup(id)?
            .server
            .clone()
            .ok_or_else(|| LookupError::NoServerSide(id.into()))
    }

    /// The client side of extension `id`, or why it cannot be used.
    pub fn client(&self, id: &str) -> Result<Arc<dyn ClientAuthenticator>, LookupError> {
        self.lookup(id)?
            .client
            .clone()
            .ok_or_else(|| LookupError::NoClientSide(id.into()))
    }

    fn lookup(&self, id: &str) -> Result<&Authenticator, LookupError> {
        self.by_id
            .get(id)
            .ok_or_else(|| LookupError::Unlisted(id.into()))
    }
}

/// Why `auth: { authenticator: ID }` cannot be used; found at start-up.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error(
        "authenticator `{0}` is not an authentication extension listed under `service.extensions`"
    )]
    Unlisted(String),
    #[error("extension `{0}` cannot authenticate incoming requests")]
    NoServerSide(String),
    #[error("extension `{0}` cannot sign outgoing requests")]
    NoClientSide(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed;

    impl ServerAuthenticator for Fixed {
        fn authenticate(&self, headers: &http::HeaderMap) -> Result<Principal, AuthError> {
            match headers.get("x-key") {
                Some(v) if v == "k" => Ok(Principal {
                    subject: "fixed".into(),
                }),
                Some(_) => Err(AuthError::Invalid("wrong key")),
                None => Err(AuthError::Missing("no x-key header")),
            }
        }
    }

    #[test]
    fn lookups_name_what_is_missing() {
        let mut all = Authenticators::default();
        all.insert(
            "fixed",
            Authenticator {
                server: Some(Arc::new(Fixed)),
                client: None,
            },
        );
        let server = all.server("fixed").unwrap();
        let mut headers = http::HeaderMap::new();
        assert!(matches!(
            server.authenticate(&headers),
            Err(AuthError::Missing(_))
        ));
        headers.insert("x-key", "k".parse().unwrap());
        assert_eq!(server.authenticate(&headers).unwrap().subject, "fixed");

        let err = all.client("fixed").unwrap_err();
        assert_eq!(err, LookupError::NoClientSide("fixed".into()));
        assert!(
            err.to_string().contains("cannot sign outgoing requests"),
            "{err}"
        );
        let err = all.server("other").unwrap_err();
        assert_eq!(err, LookupError::Unlisted("other".into()));
    }
}
