//! A small client for the Lambda Extensions API and Telemetry API.
//!
//! Both live on the local `AWS_LAMBDA_RUNTIME_API` endpoint over plain HTTP/1.1; a few
//! requests per invocation do not justify a framework, and a hand-written client on the
//! hyper connection pool the collector already links keeps the cold start to a couple of
//! loopback round trips (and the lean Lambda layer free of a second HTTP client).

use std::time::Duration;

use aurastream_proto::lambda::{
    LifecycleEvent, LifecycleEventType, RegisterRequest, TelemetrySubscription,
};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::net::error_chain;

const EXTENSION_PATH: &str = "2020-01-01/extension";
const TELEMETRY_PATH: &str = "2022-07-01/telemetry";
const NAME_HEADER: &str = "Lambda-Extension-Name";
const ID_HEADER: &str = "Lambda-Extension-Identifier";
const ERROR_TYPE_HEADER: &str = "Lambda-Extension-Function-Error-Type";

/// What went wrong talking to Lambda.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{call}: cannot reach the Lambda API at {endpoint}: {message}")]
    Unreachable {
        call: &'static str,
        endpoint: String,
        message: String,
    },
    #[error("{call}: Lambda answered {status}: {body}")]
    Status {
        call: &'static str,
        status: StatusCode,
        body: String,
    },
    #[error("{call}: unexpected answer: {message}")]
    Invalid { call: &'static str, message: String },
}

/// Plain HTTP/1.1 to loopback: no TLS, and no proxy (a user's HTTP(S)_PROXY must not be
/// used for the local Runtime API; hyper's client never reads it).
type Http = Client<HttpConnector, Full<Bytes>>;

/// One answer, read whole (the API's bodies are small).
struct Answer {
    headers: HeaderMap,
    body: Bytes,
}

/// A registered extension.
pub struct ExtensionClient {
    api: Api,
    id: String,
}

/// The local API endpoint and its connection pool.
struct Api {
    http: Http,
    base: String,
}

/// One request to the API: which call (for errors), what to send, how long to wait.
struct Call<'a> {
    name: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, &'a str)>,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

impl<'a> Call<'a> {
    fn new(name: &'static str, method: Method, path: String) -> Call<'a> {
        Call {
            name,
            method,
            path,
            headers: Vec::new(),
            body: None,
            timeout: None,
        }
    }

    fn header(mut self, name: &'static str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A JSON body.
    fn json<T: serde::Serialize>(mut self, value: &T) -> Self {
        self.body = Some(serde_json::to_vec(value).expect("the API's request types serialize"));
        self
    }

    fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }
}

impl ExtensionClient {
    /// Registers for INVOKE and SHUTDOWN as `name`, which must be the executable's file
    /// name (Lambda matches it against `/opt/extensions/<name>`).
    pub async fn register(runtime_api: &str, name: &str) -> Result<ExtensionClient, ApiError> {
        let api = Api {
            http: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            base: format!("http://{runtime_api}"),
        };
        let call = Call::new(
            "register",
            Method::POST,
            format!("{EXTENSION_PATH}/register"),
        )
        .header(NAME_HEADER, name)
        .json(&RegisterRequest {
            events: vec![LifecycleEventType::Invoke, LifecycleEventType::Shutdown],
        });
        let answer = api.send(call).await?;
        let id = answer
            .headers
            .get(ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::Invalid {
                call: "register",
                message: format!("no {ID_HEADER} header"),
            })?
            .to_string();
        Ok(ExtensionClient { api, id })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Long-polls for the next lifecycle event. Calling it tells Lambda this extension is
    /// done with the current invocation, after which the sandbox may be frozen.
    pub async fn next_event(&self) -> Result<LifecycleEvent, ApiError> {
        const CALL: &str = "event/next";
        let answer = self
            .send(Call::new(
                CALL,
                Method::GET,
                format!("{EXTENSION_PATH}/event/next"),
            ))
            .await?;
        serde_json::from_slice(&answer.body).map_err(|e| ApiError::Invalid {
            call: CALL,
            message: format!("{e}: {}", String::from_utf8_lossy(&answer.body)),
        })
    }

    /// Subscribes to the Telemetry API (only allowed during init).
    pub async fn subscribe(&self, subscription: &TelemetrySubscription) -> Result<(), ApiError> {
        let call = Call::new("telemetry subscribe", Method::PUT, TELEMETRY_PATH.into())
            .json(subscription)
            .timeout(Duration::from_secs(5));
        self.send(call).await.map(drop)
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
        let call = Call::new(path, Method::POST, format!("{EXTENSION_PATH}/{path}"))
            .header(ERROR_TYPE_HEADER, error_type)
            .json(&serde_json::json!({
                "errorMessage": message,
                "errorType": error_type,
                "stackTrace": [],
            }))
            .timeout(Duration::from_secs(2));
        self.send(call).await.map(drop)
    }

    /// A call as this extension (with its identifier header).
    async fn send(&self, call: Call<'_>) -> Result<Answer, ApiError> {
        self.api.send(call.header(ID_HEADER, &self.id)).await
    }
}

impl Api {
    /// One request; any status but 2xx is an error carrying Lambda's answer.
    async fn send(&self, call: Call<'_>) -> Result<Answer, ApiError> {
        let name = call.name;
        let unreachable = |message: String| ApiError::Unreachable {
            call: name,
            endpoint: self.base.clone(),
            message,
        };
        let mut request = Request::builder()
            .method(call.method)
            .uri(format!("{}/{}", self.base, call.path));
        for (k, v) in &call.headers {
            request = request.header(*k, *v);
        }
        if call.body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(call.body.unwrap_or_default())))
            .map_err(|e| unreachable(e.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| unreachable(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| unreachable(error_chain(&e)))?
                .to_bytes();
            Ok((parts, body))
        };
        let (parts, body) = match call.timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .map_err(|_| unreachable(format!("no answer within {limit:?}")))??,
            None => exchange.await?,
        };
        if !parts.status.is_success() {
            return Err(ApiError::Status {
                call: name,
                status: parts.status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(Answer {
            headers: parts.headers,
            body,
        })
    }
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
