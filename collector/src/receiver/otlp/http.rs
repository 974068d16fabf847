//! OTLP/HTTP: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with protobuf or JSON bodies,
//! optionally gzipped. Answers in the request's encoding; errors carry a `google.rpc.Status`
//! (in that same encoding) whose message says what to fix.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::{CorsConfig, HttpConfig};
use super::decode::{self, DecodeError};
use super::signal::{Logs, Metrics, OtlpSignal, Traces};
use super::{Ingest, IngestError};
use crate::pipeline::ConsumeError;

#[derive(Clone)]
struct Ctx {
    ingest: Arc<Ingest>,
    limit: usize,
}

pub fn serve(
    listener: TcpListener,
    ingest: Arc<Ingest>,
    config: &HttpConfig,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let ctx = Ctx {
        ingest,
        limit: config.max_request_body_size as usize,
    };
    let mut app = Router::new()
        .route(&config.traces_url_path, post(handle::<Traces>))
        .route(&config.metrics_url_path, post(handle::<Metrics>))
        .route(&config.logs_url_path, post(handle::<Logs>))
        .with_state(ctx);
    if let Some(cors) = &config.cors
        && !cors.allowed_origins.is_empty()
    {
        app = app.layer(cors_layer(cors));
    }
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "OTLP/HTTP server stopped");
        }
    })
}

fn cors_layer(cors: &CorsConfig) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins = if cors.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            cors.allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let mut headers = vec![header::CONTENT_TYPE, header::CONTENT_ENCODING];
    headers.extend(
        cors.allowed_headers
            .iter()
            .filter_map(|h| header::HeaderName::from_bytes(h.as_bytes()).ok()),
    );
    let mut layer = CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([http::Method::POST])
        .allow_headers(headers);
    if let Some(age) = cors.max_age {
        layer = layer.max_age(std::time::Duration::from_secs(age));
    }
    layer
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// `google.rpc.Status`, the body of every OTLP/HTTP error response.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn encode<T: prost::Message + serde::Serialize>(encoding: Encoding, msg: &T) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => msg.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(msg).unwrap_or_default(),
    }
}

fn error(status: StatusCode, grpc_code: tonic::Code, encoding: Encoding, message: String) -> Response {
    let body = encode(
        encoding,
        &RpcStatus {
            code: grpc_code as i32,
            message,
        },
    );
    let mut response = (status, [(header::CONTENT_TYPE, encoding.content_type())], body).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // OTLP clients honour Retry-After on 503 (and on 429).
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

async fn handle<S: OtlpSignal>(State(ctx): State<Ctx>, headers: HeaderMap, body: Body) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let encoding = match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        _ => {
            ctx.ingest.malformed("http", S::SIGNAL);
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                tonic::Code::InvalidArgument,
                Encoding::Json,
                format!(
                    "unsupported Content-Type `{content_type}`; send application/x-protobuf \
                     or application/json"
                ),
            );
        }
    };
    let raw = match axum::body::to_bytes(body, ctx.limit).await {
        Ok(b) => b,
        Err(e) => {
            // `to_bytes` fails either on the length limit or on a broken connection.
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            ctx.ingest.malformed("http", S::SIGNAL);
            return if too_large {
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    tonic::Code::ResourceExhausted,
                    encoding,
                    DecodeError::TooLarge { limit: ctx.limit }.to_string(),
                )
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    tonic::Code::InvalidArgument,
                    encoding,
                    format!("could not read the request body: {e}"),
                )
            };
        }
    };
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let decoded = decode::decompress(raw, content_encoding, ctx.limit).and_then(|body| {
        if body.is_empty() {
            // An empty protobuf message is valid OTLP (no data); an empty JSON body is not.
            return match encoding {
                Encoding::Protobuf => Ok(S::Request::default()),
                Encoding::Json => Err(DecodeError::BadJson {
                    what: S::REQUEST_NAME,
                    detail: "empty body".into(),
                }),
            };
        }
        match encoding {
            Encoding::Protobuf => decode::protobuf::<S::Request>(&body, S::REQUEST_NAME),
            Encoding::Json => decode::json::<S::Request>(&body, S::REQUEST_NAME),
        }
    });
    let request = match decoded {
        Ok(r) => r,
        Err(e) => {
            ctx.ingest.malformed("http", S::SIGNAL);
            let (status, code) = match e {
                DecodeError::TooLarge { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, tonic::Code::ResourceExhausted)
                }
                DecodeError::UnsupportedEncoding(_) => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, tonic::Code::InvalidArgument)
                }
                _ => (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument),
            };
            return error(status, code, encoding, e.to_string());
        }
    };
    match ctx.ingest.ingest::<S>("http", request).await {
        Ok(response) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoding.content_type())],
            encode(encoding, &response),
        )
            .into_response(),
        Err(e) => {
            let (status, code) = match &e {
                IngestError::NoPipeline(_) => (StatusCode::NOT_FOUND, tonic::Code::Unimplemented),
                IngestError::Refused(ConsumeError::TooLarge { .. }) => {
                    (StatusCode::PAYLOAD_TOO_LARGE, tonic::Code::ResourceExhausted)
                }
                IngestError::Refused(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, tonic::Code::Unavailable)
                }
            };
            error(status, code, encoding, e.to_string())
        }
    }
}
