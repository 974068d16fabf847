//! The `bearertokenauth` extension: a shared secret in a request header. Receivers that
//! name it accept only requests carrying the token (compared in constant time, so the
//! time to refuse says nothing about how much of a guess was right); exporters that name
//! it send the token. The token is never logged or put in an error message.

pub(crate) mod config;
#[cfg(test)]
mod tests;
mod token;

use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use subtle::ConstantTimeEq;

use self::config::BearerTokenAuthConfig;
use self::token::TokenSource;
use crate::component::auth::{
    AuthError, Authenticator, ClientAuthenticator, Principal, ServerAuthenticator,
};
use crate::component::factory::{BuildError, ExtensionContext, ExtensionFactory};
use crate::component::validate::Invalid;

/// Both sides of one configured token.
pub struct BearerToken {
    /// The extension id: the principal's subject for requests it lets in.
    id: String,
    header: HeaderName,
    scheme: String,
    source: TokenSource,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerToken")
            .field("id", &self.id)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl BearerToken {
    pub fn new(id: &str, config: &BearerTokenAuthConfig) -> Result<BearerToken, BuildError> {
        config.validate()?;
        let source = match (&config.token, &config.filename) {
            (Some(t), _) => TokenSource::Fixed(t.trim().to_string()),
            (None, Some(path)) => TokenSource::file(path.clone())
                .map_err(|source| BuildError::unusable("filename", source))?,
            (None, None) => unreachable!("validated"),
        };
        Ok(BearerToken {
            id: id.to_string(),
            header: HeaderName::from_bytes(config.header.as_bytes())
                .map_err(|e| Invalid::cause("header", e))?,
            scheme: config.scheme.clone(),
            source,
        })
    }

    fn expected(&self, token: &str) -> String {
        if self.scheme.is_empty() {
            token.to_string()
        } else {
            format!("{} {token}", self.scheme)
        }
    }
}

impl ServerAuthenticator for BearerToken {
    fn authenticate(&self, headers: &http::HeaderMap) -> Result<Principal, AuthError> {
        let Some(sent) = headers.get(&self.header) else {
            return Err(AuthError::Missing("no bearer token in the request"));
        };
        let expected = self.expected(&self.source.current()?);
        if bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(Principal {
                subject: self.id.clone(),
            })
        } else {
            Err(AuthError::Invalid("bearer token not accepted"))
        }
    }
}

#[async_trait]
impl ClientAuthenticator for BearerToken {
    async fn authorize(
        &self,
        request: &mut http::request::Parts,
        _body: &[u8],
    ) -> Result<(), AuthError> {
        let mut value = HeaderValue::from_str(&self.expected(&self.source.current()?))
            .map_err(|_| AuthError::Unavailable("the token is not a valid header value".into()))?;
        value.set_sensitive(true);
        request.headers.insert(self.header.clone(), value);
        Ok(())
    }
}

#[async_trait]
impl ExtensionFactory for BearerTokenAuthConfig {
    fn validate(&self) -> Result<(), Invalid> {
        BearerTokenAuthConfig::validate(self)
    }

    async fn authenticator(&self, id: &str) -> Result<Option<Authenticator>, BuildError> {
        let token = Arc::new(BearerToken::new(id, self)?);
        Ok(Some(Authenticator {
            server: Some(token.clone()),
            client: Some(token),
        }))
    }

    /// Nothing runs: the authenticator works inside the receivers and exporters.
    async fn start(
        &self,
        _ctx: ExtensionContext<'_>,
    ) -> Result<tokio::task::JoinHandle<()>, BuildError> {
        Ok(tokio::spawn(async {}))
    }
}
