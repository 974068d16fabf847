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

use super::config::{CorsConfig, HttpConfig};
use super::decode::{self, DecodeError, Encoding};
use super::request_limits::LimitError;
use super::signal::{Logs, Metrics, OtlpSignal, Traces};
use super::{Ingest, IngestError, Reserved};
use crate::component::ConsumeError;

#[derive(Clone)]
struct Ctx {
    ingest: Arc<Ingest>,
    limit: usize,
}

/// The OTLP/HTTP routes, served by the shared accept loop ([`crate::net::server`]) with
/// the receiver's TLS, limits and authentication.
pub fn routes(ingest: Arc<Ingest>, config: &HttpConfig) -> Router {
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
    app
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

enum BodyError {
    TooLarge,
    Read(axum::Error),
}

/// How much of an oversize body we read and discard so the sender gets to read our 413
/// (closing mid-upload makes clients report a connection reset instead). Beyond this the
/// connection is simply closed.
const DRAIN_LIMIT: usize = 32 << 20;

/// Reads at most `limit` bytes of body; past that, drains (up to [`DRAIN_LIMIT`]) and
/// reports `TooLarge`.
async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes, BodyError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut too_large = false;
    let mut drained = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if too_large {
            drained += data.len();
            if drained > DRAIN_LIMIT {
                break;
            }
        } else if buf.len() + data.len() > limit {
            too_large = true;
            buf.clear();
        } else {
            buf.extend_from_slice(&data);
        }
    }
    if too_large {
        Err(BodyError::TooLarge)
    } else {
        Ok(buf.freeze())
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
        Encoding::Json => {
            let mut value = serde_json::to_value(msg).unwrap_or_default();
            tidy_json_response(&mut value);
            serde_json::to_vec(&value).unwrap_or_default()
        }
    }
}

/// Fixes up the generated serde output of export responses for OTLP/JSON: an absent
/// `partialSuccess` is left out (not `null`), and its int64 counts are written as strings.
fn tidy_json_response(value: &mut serde_json::Value) {
    if let Some(obj) = value.as_object_mut() {
        obj.retain(|_, v| !v.is_null());
    }
    if let Some(ps) = value
        .get_mut("partialSuccess")
        .and_then(|p| p.as_object_mut())
    {
        for key in ["rejectedSpans", "rejectedDataPoints", "rejectedLogRecords"] {
            if let Some(v) = ps.get_mut(key)
                && let Some(n) = v.as_i64()
            {
                *v = serde_json::Value::String(n.to_string());
            }
        }
    }
}

fn error(
    status: StatusCode,
    grpc_code: tonic::Code,
    encoding: Encoding,
    message: String,
) -> Response {
    let body = encode(
        encoding,
        &RpcStatus {
            code: grpc_code as i32,
            message,
        },
    );
    let mut response = (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response();
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
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
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
    if let Err(e) = ctx.ingest.check_room("http", S::SIGNAL) {
        return ingest_error(e, encoding);
    }
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    // An uncompressed body's decoded size is bounded by its Content-Length: reserve it
    // (or refuse) before reading a byte of it.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|len| decode::is_identity(content_encoding) && *len <= ctx.limit);
    let reserved = match declared {
        Some(len) => match ctx.ingest.reserve_declared("http", S::SIGNAL, len) {
            Ok(r) => r,
            Err(e) => return ingest_error(e, encoding),
        },
        None => Reserved::default(),
    };
    let raw = match read_limited(body, ctx.limit).await {
        Ok(b) => b,
        Err(e) => {
            ctx.ingest.malformed("http", S::SIGNAL);
            return match e {
                BodyError::TooLarge => error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    tonic::Code::ResourceExhausted,
                    encoding,
                    DecodeError::TooLarge { limit: ctx.limit }.to_string(),
                ),
                BodyError::Read(e) => error(
                    StatusCode::BAD_REQUEST,
                    tonic::Code::InvalidArgument,
                    encoding,
                    format!("could not read the request body: {e}"),
                ),
            };
        }
    };
    let mut reservation = None;
    let decoded = decode::decompress(raw, content_encoding, ctx.limit).and_then(|body| {
        // Bounded by the decompressed body, reserved (or refused) before decoding.
        match ctx
            .ingest
            .reserve_body("http", S::SIGNAL, &body, encoding, reserved)
        {
            Ok(r) => reservation = r,
            Err(e) => return Ok(Err(e)),
        }
        decode::message::<S::Request>(&body, encoding, S::REQUEST_NAME).map(Ok)
    });
    let request = match decoded {
        Ok(Ok(r)) => r,
        Ok(Err(refused)) => return ingest_error(refused, encoding),
        Err(e) => {
            ctx.ingest.malformed("http", S::SIGNAL);
            let (status, code) = match e {
                DecodeError::TooLarge { .. } => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    tonic::Code::ResourceExhausted,
                ),
                DecodeError::UnsupportedEncoding(_) => (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    tonic::Code::InvalidArgument,
                ),
                _ => (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument),
            };
            return error(status, code, encoding, e.to_string());
        }
    };
    match ctx.ingest.ingest::<S>("http", request, reservation).await {
        Ok(response) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoding.content_type())],
            encode(encoding, &response),
        )
            .into_response(),
        Err(e) => ingest_error(e, encoding),
    }
}

/// The answer to a request that was decoded (or would have been) but not accepted.
fn ingest_error(e: IngestError, encoding: Encoding) -> Response {
    use crate::model::memory::Refusal;
    let (status, code) = match &e {
        IngestError::NoPipeline(_) => (StatusCode::NOT_FOUND, tonic::Code::Unimplemented),
        IngestError::Refused(ConsumeError::TooLarge { .. })
        | IngestError::Refused(ConsumeError::MemoryLimit(Refusal::TooLarge { .. }))
        | IngestError::Limit(LimitError::TooManyItems { .. }) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            tonic::Code::ResourceExhausted,
        ),
        IngestError::Limit(LimitError::TooManyAttributes { .. }) => {
            (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument)
        }
        IngestError::Refused(_) => (StatusCode::SERVICE_UNAVAILABLE, tonic::Code::Unavailable),
    };
    error(status, code, encoding, e.to_string())
}
