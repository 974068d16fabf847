//! The AWS side shared by every command: one SDK configuration from the standard chain
//! (environment, profile, SSO, web identity, container and instance metadata) plus the
//! command line's `--region`, `--profile` and `--endpoint-url`, and errors an operator can
//! act on instead of the SDK's debug dumps.

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_cloudwatch::config::http::HttpResponse;
use aws_sdk_cloudwatch::error::{ProvideErrorMetadata, SdkError};

/// Where to find AWS: anything left `None` comes from the standard chain.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
}

/// The three clients the commands use, sharing one configuration.
pub struct Clients {
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub xray: aws_sdk_xray::Client,
    pub region: String,
}

/// Throttled calls are retried by the SDK's standard mode with exponential backoff and
/// jitter; five attempts ride out a burst without making an operator wait minutes.
const MAX_ATTEMPTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("no AWS region: pass --region or set AWS_REGION (or a region in your AWS profile)")]
    NoRegion,
    #[error(
        "no AWS credentials found ({0}): set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
         AWS_PROFILE (or --profile), or run where a role is available (ECS task role, \
         instance profile, web identity)"
    )]
    NoCredentials(String),
    #[error(
        "access denied to {action} ({message}): the caller needs the IAM permission \
         {action}; see deploy/README.md for a read-only operator policy"
    )]
    AccessDenied { action: String, message: String },
    #[error(
        "{action} was throttled {MAX_ATTEMPTS} times in a row (retried with backoff): try \
         again later, or ask for less (a shorter --since)"
    )]
    Throttled { action: String },
    #[error("cannot reach the AWS endpoint for {action}: {detail}")]
    Unreachable { action: String, detail: String },
    #[error("{action} failed: {code}: {message}")]
    Api {
        action: String,
        code: String,
        message: String,
    },
}

pub async fn connect(options: &AwsOptions) -> Result<Clients, AwsError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
    if let Some(region) = &options.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &options.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    let region = config.region().ok_or(AwsError::NoRegion)?.to_string();
    // Resolve credentials once up front: a missing chain then fails here with one clear
    // message instead of inside the first API call's dispatch error.
    let provider = config
        .credentials_provider()
        .ok_or_else(|| AwsError::NoCredentials("no credential provider configured".into()))?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| AwsError::NoCredentials(error_chain(&e)))?;
    Ok(Clients {
        cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
        logs: aws_sdk_cloudwatchlogs::Client::new(&config),
        xray: aws_sdk_xray::Client::new(&config),
        region,
    })
}

/// Turns an SDK error into one that says what to do; `action` is the IAM action name
/// (`cloudwatch:GetMetricData`), which is also what an access-denied message needs.
pub fn classify<E>(action: &str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let action = action.to_string();
    if let SdkError::ServiceError(service) = &err {
        let e = service.err();
        let Some(code) = e.code().map(str::to_owned) else {
            // No error code: the answer could not be read (a proxy, a stand-in that
            // words errors differently). A 403 is still a refusal of these credentials;
            // anything else, the cause chain says what happened.
            if service.raw().status().as_u16() == 403 {
                return AwsError::AccessDenied {
                    action,
                    message: format!("HTTP 403: {}", error_chain(&err)),
                };
            }
            return AwsError::Api {
                action,
                code: "unreadable response".into(),
                message: error_chain(&err),
            };
        };
        let message = e.message().unwrap_or_default().to_string();
        return match code.as_str() {
            "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "ExpiredToken"
            | "ExpiredTokenException" => AwsError::AccessDenied { action, message },
            "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException" => AwsError::Throttled { action },
            _ => AwsError::Api {
                action,
                code,
                message,
            },
        };
    }
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => AwsError::Unreachable {
            action,
            detail: error_chain(&err),
        },
        _ => AwsError::Api {
            action,
            code: "Unknown".into(),
            message: error_chain(&err),
        },
    }
}

/// An error and its sources on one line: the SDK's top-level messages ("dispatch
/// failure") say little without the cause underneath.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
