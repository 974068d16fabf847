//! Where the collector's AWS credentials and region come from.
//!
//! The full build asks aws-config's standard chain (environment, profile, SSO, web
//! identity, ECS, IMDS). The lean Lambda layer is built without the `credential-chain`
//! feature, which leaves out aws-config, its STS client and its own HTTP stack (1.9 MB of
//! the lean binary): in Lambda the credentials and region are in the environment, so that
//! is the only place it reads them. The exception is a SnapStart function, whose
//! credentials come from the container credentials endpoint: it needs the full layer.

use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_types::SdkConfig;

/// Why there are no credentials to sign with.
#[cfg(feature = "credential-chain")]
pub const NONE: &str = "no credentials provider configured";
#[cfg(not(feature = "credential-chain"))]
pub const NONE: &str = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set (this build \
     reads credentials from the environment only: built without the `credential-chain` cargo \
     feature, as the lean Lambda layer is; SnapStart functions get theirs from the container \
     credentials endpoint instead: use the full layer)";

/// The configuration to sign with, resolved once per client on first use.
pub async fn load() -> SdkConfig {
    #[cfg(feature = "credential-chain")]
    {
        aws_config::defaults(BehaviorVersion::latest()).load().await
    }
    #[cfg(not(feature = "credential-chain"))]
    {
        from_environment(|name| std::env::var(name).ok())
    }
}

/// Credentials and region from the standard environment variables, read through `var`.
/// Without an access key pair the configuration has no credentials provider, and signing
/// fails with a message saying so.
#[cfg(any(test, not(feature = "credential-chain")))]
pub fn from_environment(var: impl Fn(&str) -> Option<String>) -> SdkConfig {
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_types::region::Region;

    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    let mut builder = SdkConfig::builder().behavior_version(BehaviorVersion::latest());
    if let Some(region) = set("AWS_REGION").or_else(|| set("AWS_DEFAULT_REGION")) {
        builder = builder.region(Region::new(region));
    }
    if let (Some(id), Some(secret)) = (set("AWS_ACCESS_KEY_ID"), set("AWS_SECRET_ACCESS_KEY")) {
        let credentials =
            Credentials::new(id, secret, set("AWS_SESSION_TOKEN"), None, "environment");
        builder = builder.credentials_provider(SharedCredentialsProvider::new(credentials));
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_credential_types::provider::ProvideCredentials;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> SdkConfig {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_environment(|name| vars.get(name).cloned())
    }

    #[tokio::test]
    async fn credentials_and_region_come_from_the_lambda_environment() {
        let sdk = env(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "session"),
        ]);
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        let credentials = sdk
            .credentials_provider()
            .expect("a provider")
            .provide_credentials()
            .await
            .expect("credentials");
        assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "secret");
        assert_eq!(credentials.session_token(), Some("session"));
    }

    #[test]
    fn without_a_key_pair_there_is_no_provider_and_the_default_region_is_the_fallback() {
        let sdk = env(&[
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", ""),
        ]);
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("us-east-1"));
        assert!(sdk.credentials_provider().is_none());
    }
}
