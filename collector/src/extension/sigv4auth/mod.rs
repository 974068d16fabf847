//! The `sigv4auth` extension: signs exporters' requests to AWS's OTLP endpoints (X-Ray,
//! CloudWatch Logs, CloudWatch metrics) with SigV4, as a client authenticator that an
//! exporter names in `auth: { authenticator: sigv4auth }`. The signing itself is the
//! shared [`crate::aws::sigv4`] layer's.

pub(crate) mod config;

use std::sync::Arc;

use async_trait::async_trait;

use self::config::SigV4AuthConfig;
use crate::aws::sigv4::{SignError, Signer};
use crate::component::auth::{AuthError, Authenticator, ClientAuthenticator};
use crate::component::factory::{BuildError, ExtensionContext, ExtensionFactory};
use crate::component::validate::Invalid;

const NO_REGION: &str = "sigv4auth: no AWS region: set `region` or AWS_REGION";
const NO_SERVICE: &str = "sigv4auth: no SigV4 service name: set `service` (xray, logs, \
                          monitoring) when the endpoint is not an AWS host";

/// A [`Signer`] as a client authenticator.
#[derive(Debug)]
pub struct SigV4Authenticator(pub Signer);

#[async_trait]
impl ClientAuthenticator for SigV4Authenticator {
    async fn authorize(
        &self,
        request: &mut http::request::Parts,
        body: &[u8],
    ) -> Result<(), AuthError> {
        self.0.sign(request, body).await.map_err(|e| match e {
            // Options that cannot work: the export fails rather than retrying forever.
            SignError::NoRegion => AuthError::Invalid(NO_REGION),
            SignError::NoService => AuthError::Invalid(NO_SERVICE),
            // Credentials may come later (IMDS starting, a role being assumed): retried.
            SignError::Credentials(_) | SignError::Sign(_) => AuthError::Unavailable(e.to_string()),
        })
    }
}

#[async_trait]
impl ExtensionFactory for SigV4AuthConfig {
    fn validate(&self) -> Result<(), Invalid> {
        SigV4AuthConfig::validate(self)
    }

    async fn authenticator(&self, _id: &str) -> Result<Option<Authenticator>, BuildError> {
        let signer = Signer::new(
            self.region.clone(),
            self.service.clone(),
            self.assume_role(),
        );
        Ok(Some(Authenticator {
            server: None,
            client: Some(Arc::new(SigV4Authenticator(signer))),
        }))
    }

    /// Nothing runs: the extension only signs, on the exporters' tasks.
    async fn start(
        &self,
        ctx: ExtensionContext<'_>,
    ) -> Result<tokio::task::JoinHandle<()>, BuildError> {
        let stop = ctx.stop;
        Ok(tokio::spawn(async move { stop.cancelled().await }))
    }
}
