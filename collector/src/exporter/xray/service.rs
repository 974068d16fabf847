//! The one API call: `PutTraceSegments`, on a client built on first use.
//!
//! The client is created lazily so the collector starts (and `validate` works) on a
//! machine without AWS credentials or network; the first export resolves the standard
//! credential and region chain. The SDK's own retries are turned off: the exporter retries
//! documents one by one and the pipeline driver retries the rest, so an SDK retry on top
//! would multiply attempts and hide throttling from our counters.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_xray::Client;
use aws_sdk_xray::config::http::HttpResponse;
use aws_sdk_xray::config::retry::RetryConfig;
use aws_sdk_xray::config::timeout::TimeoutConfig;
use aws_sdk_xray::error::{DisplayErrorContext, SdkError};
use aws_sdk_xray::operation::put_trace_segments::PutTraceSegmentsError;
use tokio::sync::OnceCell;

use super::retry::Class;
use crate::aws::retry as aws_retry;

/// A failed call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub(crate) struct CallError {
    pub class: Class,
    /// The AWS error code (`ThrottledException`, `AccessDeniedException`, ...) or what
    /// went wrong before an answer came (`dispatch_failure`, `timeout`).
    pub code: String,
    pub message: String,
    /// The call failed in a way that X-Ray may still have applied it (timeout, broken
    /// connection): a resend may store its documents twice.
    pub maybe_delivered: bool,
}

/// A document X-Ray did not take although the call succeeded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unprocessed {
    pub id: String,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// The X-Ray API endpoint of one exporter.
pub(crate) struct XrayService {
    client: OnceCell<Client>,
    base: Option<SdkConfig>,
    region: Option<String>,
    endpoint: Option<String>,
    timeout: Duration,
}

impl XrayService {
    pub(crate) fn new(
        region: Option<String>,
        endpoint: Option<String>,
        timeout: Duration,
    ) -> XrayService {
        XrayService {
            client: OnceCell::new(),
            base: None,
            region,
            endpoint,
            timeout,
        }
    }

    /// Uses `sdk` instead of the standard chain (credentials, region, HTTP client); the
    /// `region` and `endpoint` options still apply on top.
    pub(crate) fn with_sdk_config(mut self, sdk: SdkConfig) -> XrayService {
        self.base = Some(sdk);
        self
    }

    async fn client(&self) -> Result<&Client, CallError> {
        self.client
            .get_or_try_init(|| async {
                let base = match &self.base {
                    Some(sdk) => sdk.clone(),
                    None => aws_config::defaults(BehaviorVersion::latest()).load().await,
                };
                let mut builder = aws_sdk_xray::config::Builder::from(&base)
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(
                        TimeoutConfig::builder()
                            .operation_timeout(self.timeout)
                            .build(),
                    );
                if let Some(region) = &self.region {
                    builder = builder.region(Region::new(region.clone()));
                }
                if let Some(endpoint) = &self.endpoint {
                    builder = builder.endpoint_url(endpoint);
                }
                let config = builder.build();
                if config.region().is_none() {
                    return Err(CallError {
                        class: Class::Permanent,
                        code: "no_region".into(),
                        message: "no AWS region: set the exporter's `region` option or \
                                  AWS_REGION"
                            .into(),
                        maybe_delivered: false,
                    });
                }
                tracing::debug!(region = ?config.region(), endpoint = ?self.endpoint,
                    "X-Ray client created");
                Ok(Client::from_conf(config))
            })
            .await
    }

    /// Sends one call's documents; the documents X-Ray did not take come back.
    pub(crate) async fn put(&self, documents: Vec<String>) -> Result<Vec<Unprocessed>, CallError> {
        let client = self.client().await?;
        let output = client
            .put_trace_segments()
            .set_trace_segment_documents(Some(documents))
            .send()
            .await
            .map_err(call_error)?;
        Ok(output
            .unprocessed_trace_segments()
            .iter()
            .map(|u| Unprocessed {
                id: u.id().unwrap_or_default().to_owned(),
                code: u.error_code().map(str::to_owned),
                message: u.message().map(str::to_owned),
            })
            .collect())
    }
}

fn call_error(e: SdkError<PutTraceSegmentsError, HttpResponse>) -> CallError {
    let c = aws_retry::classify_sdk(&e);
    CallError {
        class: c.class,
        code: c.code,
        message: DisplayErrorContext(&e).to_string(),
        maybe_delivered: c.maybe_delivered,
    }
}
