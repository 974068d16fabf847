//! SigV4 signing of requests the AWS SDKs do not send for us: OTLP/HTTP to AWS's OTLP
//! endpoints (`sigv4auth`), and through [`super::signed_http`] X-Ray's `PutTraceSegments` and
//! the sampling proxy's forwarded calls.
//!
//! Credentials come from `aws-config`'s standard chain (environment, profile, web
//! identity, ECS, IMDS), optionally through an STS `AssumeRole`, and are kept until shortly
//! before they expire: asking the chain on every request would put an IMDS or STS call on
//! the hot path.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_types::SdkConfig;
use tokio::sync::{Mutex, OnceCell};

/// Why a build without aws-config cannot take `assume_role`.
pub const ASSUME_ROLE_NEEDS_CHAIN: &str = "assume_role needs STS, which this build leaves out \
     (built without the `credential-chain` cargo feature, as the lean Lambda layer is); \
     use the full build";

/// Credentials are fetched again this long before they expire, so a request signed just
/// before the expiry still arrives with valid ones.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// Why a request could not be signed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignError {
    #[error("no AWS region: set `region` or AWS_REGION")]
    NoRegion,
    #[error(
        "no SigV4 service name: set `service` (xray, logs, monitoring) or send to an AWS endpoint"
    )]
    NoService,
    #[error("no AWS credentials: {0}")]
    Credentials(String),
    #[error("cannot sign the request: {0}")]
    Sign(String),
}

/// `assume_role`: sign with a role's credentials, obtained with the chain's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    pub arn: String,
    /// Region of the STS endpoint; default: the signing region.
    pub sts_region: Option<String>,
    pub session_name: Option<String>,
}

/// A signer: where its credentials come from and what it signs for when the request does
/// not say (an AWS endpoint's host names its service and region).
#[derive(Debug)]
pub struct Signer {
    region: Option<String>,
    service: Option<String>,
    assume_role: Option<AssumeRole>,
    base: Option<SdkConfig>,
    /// Resolved on first use, so the collector starts (and `validate` works) on a machine
    /// without credentials.
    provider: OnceCell<(SharedCredentialsProvider, Option<String>)>,
    cached: Mutex<Option<Credentials>>,
}

impl Signer {
    pub fn new(
        region: Option<String>,
        service: Option<String>,
        assume_role: Option<AssumeRole>,
    ) -> Signer {
        Signer {
            region,
            service,
            assume_role,
            base: None,
            provider: OnceCell::new(),
            cached: Mutex::new(None),
        }
    }

    /// Uses `sdk` (credentials, region) instead of the standard chain; for embedding and
    /// tests.
    pub fn with_sdk_config(mut self, sdk: SdkConfig) -> Signer {
        self.base = Some(sdk);
        self
    }

    /// The credentials provider and the chain's region.
    async fn provider(&self) -> Result<&(SharedCredentialsProvider, Option<String>), SignError> {
        self.provider
            .get_or_try_init(|| async {
                let sdk = match &self.base {
                    Some(sdk) => sdk.clone(),
                    None => super::credentials::load().await,
                };
                let chain_region = sdk.region().map(|r| r.to_string());
                let base = sdk
                    .credentials_provider()
                    .ok_or_else(|| SignError::Credentials(super::credentials::NONE.into()))?;
                let provider = match &self.assume_role {
                    None => base,
                    #[cfg(not(feature = "credential-chain"))]
                    Some(_) => return Err(SignError::Credentials(ASSUME_ROLE_NEEDS_CHAIN.into())),
                    #[cfg(feature = "credential-chain")]
                    Some(role) => {
                        let region = role
                            .sts_region
                            .clone()
                            .or_else(|| self.region.clone())
                            .or_else(|| chain_region.clone())
                            .ok_or(SignError::NoRegion)?;
                        let mut builder = aws_config::sts::AssumeRoleProvider::builder(&role.arn)
                            .configure(&sdk)
                            .region(aws_types::region::Region::new(region));
                        if let Some(name) = &role.session_name {
                            builder = builder.session_name(name);
                        }
                        SharedCredentialsProvider::new(builder.build().await)
                    }
                };
                Ok((provider, chain_region))
            })
            .await
    }

    /// Current credentials, from the cache while they are good for a while longer.
    async fn credentials(&self) -> Result<Credentials, SignError> {
        let (provider, _) = self.provider().await?;
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && c.expiry()
                .is_none_or(|at| at > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
        {
            return Ok(c.clone());
        }
        let fresh = provider
            .provide_credentials()
            .await
            .map_err(|e| SignError::Credentials(e.to_string()))?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    /// The service and region `parts` is signed for: the configured ones, else those the
    /// host names (`xray.us-east-1.amazonaws.com`), else the chain's region.
    async fn scope(&self, parts: &http::request::Parts) -> Result<(String, String), SignError> {
        let from_host = parts.uri.host().and_then(aws_endpoint_scope);
        let service = self
            .service
            .clone()
            .or_else(|| from_host.as_ref().map(|(s, _)| s.clone()))
            .ok_or(SignError::NoService)?;
        let region = match self.region.clone().or_else(|| from_host.map(|(_, r)| r)) {
            Some(r) => r,
            None => self
                .provider()
                .await?
                .1
                .clone()
                .ok_or(SignError::NoRegion)?,
        };
        Ok((service, region))
    }

    /// Adds `x-amz-date`, `x-amz-security-token` (temporary credentials) and
    /// `authorization` to `parts`, signing its method, URI, headers and `body`.
    pub async fn sign(
        &self,
        parts: &mut http::request::Parts,
        body: &[u8],
    ) -> Result<(), SignError> {
        let (service, region) = self.scope(parts).await?;
        let credentials = self.credentials().await?;
        sign_with(
            parts,
            body,
            &credentials,
            &service,
            &region,
            SystemTime::now(),
        )
    }
}

/// Signs `parts` with the given credentials, scope and time. Public so a test peer can
/// compute the signature it expects with the same code path a client uses.
pub fn sign_with(
    parts: &mut http::request::Parts,
    body: &[u8],
    credentials: &Credentials,
    service: &str,
    region: &str,
    time: SystemTime,
) -> Result<(), SignError> {
    if parts.headers.get(http::header::HOST).is_none()
        && let Some(authority) = parts.uri.authority()
    {
        let host = http::HeaderValue::from_str(authority.as_str())
            .map_err(|e| SignError::Sign(e.to_string()))?;
        parts.headers.insert(http::header::HOST, host);
    }
    let identity: Identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SignError::Sign(e.to_string()))?
        .into();
    let uri = parts.uri.to_string();
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let signable = SignableRequest::new(
        parts.method.as_str(),
        &uri,
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SignError::Sign(e.to_string()))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| SignError::Sign(e.to_string()))?
        .into_parts();
    let (headers, _) = instructions.into_parts();
    for header in headers {
        let mut value = http::HeaderValue::from_str(header.value())
            .map_err(|e| SignError::Sign(e.to_string()))?;
        // Kept out of debug output and logs; the signature is as good as a credential
        // for the next few minutes.
        value.set_sensitive(header.sensitive() || header.name() == "authorization");
        parts.headers.insert(header.name(), value);
    }
    Ok(())
}

/// The SigV4 service and region an AWS endpoint's host names:
/// `xray.us-east-1.amazonaws.com` → (`xray`, `us-east-1`); `None` for other hosts.
pub fn aws_endpoint_scope(host: &str) -> Option<(String, String)> {
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let mut labels = rest.split('.');
    let service = labels.next()?;
    let region = labels.next()?;
    if service.is_empty() || region.is_empty() || labels.next().is_some() {
        return None;
    }
    Some((service.to_string(), region.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_hosts_name_their_service_and_region() {
        for (host, want) in [
            ("xray.us-east-1.amazonaws.com", Some(("xray", "us-east-1"))),
            ("logs.eu-west-1.amazonaws.com", Some(("logs", "eu-west-1"))),
            (
                "monitoring.ap-south-1.amazonaws.com",
                Some(("monitoring", "ap-south-1")),
            ),
            (
                "logs.cn-north-1.amazonaws.com.cn",
                Some(("logs", "cn-north-1")),
            ),
            ("127.0.0.1", None),
            ("collector.internal", None),
            ("a.b.c.amazonaws.com", None),
        ] {
            let got = aws_endpoint_scope(host);
            assert_eq!(
                got.as_ref().map(|(s, r)| (s.as_str(), r.as_str())),
                want,
                "{host}"
            );
        }
    }

    #[tokio::test]
    async fn signing_adds_date_token_and_a_scoped_authorization() {
        let credentials = Credentials::new("AKIDTEST", "secret", Some("token".into()), None, "t");
        let sdk = SdkConfig::builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build();
        let signer = Signer::new(None, None, None).with_sdk_config(sdk);
        let (mut parts, ()) = http::Request::post("https://xray.us-west-2.amazonaws.com/v1/traces")
            .header("content-type", "application/x-protobuf")
            .body(())
            .unwrap()
            .into_parts();
        signer.sign(&mut parts, b"body").await.unwrap();
        let auth = parts.headers["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/"),
            "{auth}"
        );
        assert!(auth.contains("/us-west-2/xray/aws4_request"), "{auth}");
        assert!(auth.contains("content-type"), "{auth}");
        assert!(parts.headers.contains_key("x-amz-date"));
        assert_eq!(parts.headers["x-amz-security-token"], "token");
        assert!(parts.headers["authorization"].is_sensitive());

        let (mut local, ()) = http::Request::post("http://127.0.0.1:1/v1/traces")
            .body(())
            .unwrap()
            .into_parts();
        let err = signer.sign(&mut local, b"").await.unwrap_err();
        assert!(matches!(err, SignError::NoService), "{err}");
    }
}
