//! A small client for the Lambda Extensions API and Telemetry API.
//!
//! Both live on the local `AWS_LAMBDA_RUNTIME_API` endpoint over plain HTTP/1.1; a few
//! requests per invocation do not justify a framework, and a hand-written client keeps the
//! cold start to a couple of loopback round trips.

use std::time::Duration;

use aurastream_proto::lambda::{
    LifecycleEvent, LifecycleEventType, RegisterRequest, TelemetrySubscription,
};

const EXTENSION_PATH: &str = "2020-01-01/extension";
const TELEMETRY_PATH: &str = "2022-07-01/telemetry";
const NAME_HEADER: &str = "Lambda-Extension-Name";
const ID_HEADER: &str = "Lambda-Extension-Identifier";
const ERROR_TYPE_HEADER: &str = "Lambda-Extension-Function-Error-Type";

/// What went wrong talking to Lambda.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{call}: cannot reach the Lambda API at {endpoint}: {source}")]
    Unreachable {
        call: &'static str,
        endpoint: String,
        source: reqwest::Error,
    },
    #[error("{call}: Lambda answered {status}: {body}")]
    Status {
        call: &'static str,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("{call}: unexpected answer: {message}")]
    Invalid { call: &'static str, message: String },
}

/// A registered extension.
pub struct ExtensionClient {
    http: reqwest::Client,
    base: String,
    id: String,
}

impl ExtensionClient {
    /// Registers for INVOKE and SHUTDOWN as `name`, which must be the executable's file
    /// name (Lambda matches it against `/opt/extensions/<name>`).
    pub async fn register(runtime_api: &str, name: &str) -> Result<ExtensionClient, ApiError> {
        const CALL: &str = "register";
        let http = reqwest::Client::builder()
            // The Runtime API is local: a user's HTTP(S)_PROXY must not be used for it.
            .no_proxy()
            .http1_only()
            .build()
            .map_err(|source| ApiError::Unreachable {
                call: CALL,
                endpoint: runtime_api.into(),
                source,
            })?;
        let base = format!("http://{runtime_api}");
        let response = http
            .post(format!("{base}/{EXTENSION_PATH}/register"))
            .header(NAME_HEADER, name)
            .json(&RegisterRequest {
                events: vec![LifecycleEventType::Invoke, LifecycleEventType::Shutdown],
            })
            .send()
            .await
            .map_err(|source| ApiError::Unreachable {
                call: CALL,
                endpoint: runtime_api.into(),
                source,
            })?;
        let response = ok_or_status(CALL, response).await?;
        let id = response
            .headers()
            .get(ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::Invalid {
                call: CALL,
                message: format!("no {ID_HEADER} header"),
            })?
            .to_string();
        Ok(ExtensionClient { http, base, id })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Long-polls for the next lifecycle event. Calling it tells Lambda this extension is
    /// done with the current invocation, after which the sandbox may be frozen.
    pub async fn next_event(&self) -> Result<LifecycleEvent, ApiError> {
        const CALL: &str = "event/next";
        let response = self
            .http
            .get(format!("{}/{EXTENSION_PATH}/event/next", self.base))
            .header(ID_HEADER, &self.id)
            .send()
            .await
            .map_err(|source| self.unreachable(CALL, source))?;
        let body = ok_or_status(CALL, response)
            .await?
            .bytes()
            .await
            .map_err(|source| self.unreachable(CALL, source))?;
        serde_json::from_slice(&body).map_err(|e| ApiError::Invalid {
            call: CALL,
            message: format!("{e}: {}", String::from_utf8_lossy(&body)),
        })
    }

    /// Subscribes to the Telemetry API (only allowed during init).
    pub async fn subscribe(&self, subscription: &TelemetrySubscription) -> Result<(), ApiError> {
        const CALL: &str = "telemetry subscribe";
        let response = self
            .http
            .put(format!("{}/{TELEMETRY_PATH}", self.base))
            .header(ID_HEADER, &self.id)
            .json(subscription)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|source| self.unreachable(CALL, source))?;
        ok_or_status(CALL, response).await.map(drop)
    }

    /// Reports a failed initialisation; Lambda then fails the init phase with `error_type`
    /// (e.g. `Extension.ConfigInvalid`), which shows in the function's error.
    pub async fn init_error(&self, error_type: &str, message: &str) -> Result<(), ApiError> {
        self.report_error("init/error", error_type, message).await
    }

    /// Reports an error before exiting, so Lambda resets the sandbox knowing why.
    pub async fn exit_error(&self, error_type: &str, message: &str) -> Result<(), ApiError> {
        self.report_error("exit/error", error_type, message).await
    }

    async fn report_error(
        &self,
        path: &'static str,
        error_type: &str,
        message: &str,
    ) -> Result<(), ApiError> {
        let response = self
            .http
            .post(format!("{}/{EXTENSION_PATH}/{path}", self.base))
            .header(ID_HEADER, &self.id)
            .header(ERROR_TYPE_HEADER, error_type)
            .json(&serde_json::json!({
                "errorMessage": message,
                "errorType": error_type,
                "stackTrace": [],
            }))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|source| self.unreachable(path, source))?;
        ok_or_status(path, response).await.map(drop)
    }

    fn unreachable(&self, call: &'static str, source: reqwest::Error) -> ApiError {
        ApiError::Unreachable {
            call,
            endpoint: self.base.clone(),
            source,
        }
    }
}

async fn ok_or_status(
    call: &'static str,
    response: reqwest::Response,
) -> Result<reqwest::Response, ApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(ApiError::Status { call, status, body })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};

    use super::*;

    /// What the fake Extensions API saw: `(path, error type header, body)`.
    type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

    /// A fake of the three Extensions API calls the client makes, on a free loopback port.
    async fn fake_api(seen: Seen) -> String {
        let record = |path: &'static str, seen: Seen| {
            move |headers: HeaderMap, body: String| async move {
                let error_type = headers
                    .get(ERROR_TYPE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                seen.lock().unwrap().push((path.into(), error_type, body));
                StatusCode::ACCEPTED
            }
        };
        let app = Router::new()
            .route(
                "/2020-01-01/extension/register",
                post(|headers: HeaderMap| async move {
                    let name = headers.get(NAME_HEADER).cloned();
                    match name {
                        Some(n) if n == "aurastream-collector" => {
                            (StatusCode::OK, [(ID_HEADER, "ext-1")], "{}").into_response()
                        }
                        _ => (StatusCode::FORBIDDEN, "bad name").into_response(),
                    }
                }),
            )
            .route(
                "/2020-01-01/extension/event/next",
                get(|| async {
                    r#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":1}"#
                }),
            )
            .route(
                "/2020-01-01/extension/init/error",
                post(record("init/error", seen.clone())),
            )
            .route(
                "/2020-01-01/extension/exit/error",
                post(record("exit/error", seen)),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr.to_string()
    }

    #[tokio::test]
    async fn registers_polls_and_reports_errors_with_their_type() {
        let seen = Seen::default();
        let api = fake_api(seen.clone()).await;
        let client = ExtensionClient::register(&api, "aurastream-collector")
            .await
            .unwrap();
        assert_eq!(client.id(), "ext-1");
        assert_eq!(
            client.next_event().await.unwrap(),
            LifecycleEvent::Shutdown {
                shutdown_reason: Some("spindown".into()),
                deadline_ms: 1
            }
        );
        client
            .init_error("Extension.ConfigInvalid", "bad option")
            .await
            .unwrap();
        client.exit_error("Extension.Failed", "gone").await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, "init/error");
        assert_eq!(seen[0].1, "Extension.ConfigInvalid");
        let body: serde_json::Value = serde_json::from_str(&seen[0].2).unwrap();
        assert_eq!(body["errorMessage"], "bad option");
        assert_eq!(seen[1].0, "exit/error");
        assert_eq!(seen[1].1, "Extension.Failed");
    }

    #[tokio::test]
    async fn a_refused_registration_says_what_lambda_answered() {
        let api = fake_api(Seen::default()).await;
        let err = ExtensionClient::register(&api, "wrong-name")
            .await
            .err()
            .expect("refused");
        assert!(
            matches!(&err, ApiError::Status { status, .. } if status.as_u16() == 403),
            "{err}"
        );
        assert!(err.to_string().contains("bad name"), "{err}");
    }
}
