//! A stand-in for AWS's OTLP endpoints (X-Ray `/v1/traces`, CloudWatch Logs `/v1/logs`,
//! CloudWatch `/v1/metrics`). No local peer serves them (moto does not), so this one is
//! written here, and it is a fake: it models what AWS documents, not AWS itself.
//!
//! It checks every request's SigV4 signature by recomputing it with the test's
//! credentials (the `aws-sigv4` crate over the headers the client says it signed),
//! refusing a mismatch, a date more than 5 minutes off, and a scope with the wrong
//! service or region, with 403 and AWS's error shape. It enforces X-Ray's limits (10,000
//! spans and 5 MB per request, 200 KB per span, 24 hours between a request's spans: 400
//! `ValidationException`; spans more than 14 days old or 2 hours ahead: rejected in an
//! OTLP partial success), requires `x-aws-log-group` / `x-aws-log-stream` on logs, injects
//! throttling (429 `ThrottlingException`) and 503s on a deterministic share of calls, and
//! stores what it accepted for read-back.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aurastream_proto::otlp::logs::ResourceLogs;
use aurastream_proto::otlp::logs_service::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use aurastream_proto::otlp::trace::ResourceSpans;
use aurastream_proto::otlp::trace_service::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;

/// The limits the peer enforces, as X-Ray documents them.
pub const MAX_SPANS: usize = 10_000;
pub const MAX_REQUEST_BYTES: usize = 5_000_000;
pub const MAX_SPAN_BYTES: usize = 200_000;
const DAY_NANOS: u64 = 24 * 3600 * 1_000_000_000;
/// How far a signature's date may be from now (SigV4's rule).
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Who may call, and for what.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub service: String,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            access_key: "testing".into(),
            secret_key: "testing".into(),
            region: "us-east-1".into(),
            service: "xray".into(),
        }
    }
}

/// Failures injected on a share of the calls that pass the signature check.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Percent of calls answered 429 `ThrottlingException`.
    pub throttle_percent: u64,
    /// Percent of calls answered 503.
    pub server_error_percent: u64,
}

/// Log records accepted, with the group and stream their request named.
#[derive(Debug, Clone)]
pub struct StoredLogs {
    pub group: String,
    pub stream: String,
    pub resource_logs: Vec<ResourceLogs>,
}

#[derive(Default)]
struct Stored {
    spans: Vec<ResourceSpans>,
    logs: Vec<StoredLogs>,
    /// Requests refused (not injected faults): status and message.
    refusals: Vec<(u16, String)>,
    /// Spans accepted per request, in order.
    request_sizes: Vec<usize>,
}

struct Shared {
    config: PeerConfig,
    /// X-Ray's `GetTraceSegmentDestination` answer: destination and status.
    segment_destination: Mutex<(String, String)>,
    faults: Mutex<Faults>,
    calls: AtomicU64,
    injected: AtomicU64,
    stored: Mutex<Stored>,
}

/// The running peer; clones share its state.
#[derive(Clone)]
pub struct OtlpPeer(Arc<Shared>);

impl OtlpPeer {
    /// Serves on a free loopback port on the current tokio runtime.
    pub async fn start(config: PeerConfig) -> (OtlpPeer, SocketAddr) {
        let peer = OtlpPeer(Arc::new(Shared {
            config,
            segment_destination: Mutex::new(("XRay".into(), "ACTIVE".into())),
            faults: Mutex::new(Faults::default()),
            calls: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            stored: Mutex::new(Stored::default()),
        }));
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/logs", post(logs))
            .route("/GetTraceSegmentDestination", post(segment_destination))
            .with_state(peer.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP peer");
        let addr = listener.local_addr().expect("peer address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (peer, addr)
    }

    /// What X-Ray's `GetTraceSegmentDestination` answers (`XRay` / `CloudWatchLogs`,
    /// `ACTIVE` / `PENDING`).
    pub fn set_segment_destination(&self, destination: &str, status: &str) {
        *self.0.segment_destination.lock().unwrap() = (destination.into(), status.into());
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.0.faults.lock().unwrap() = faults;
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.0.injected.load(Ordering::Relaxed)
    }

    pub fn resource_spans(&self) -> Vec<ResourceSpans> {
        self.0.stored.lock().unwrap().spans.clone()
    }

    pub fn logs(&self) -> Vec<StoredLogs> {
        self.0.stored.lock().unwrap().logs.clone()
    }

    pub fn refusals(&self) -> Vec<(u16, String)> {
        self.0.stored.lock().unwrap().refusals.clone()
    }

    /// Spans accepted per request.
    pub fn request_sizes(&self) -> Vec<usize> {
        self.0.stored.lock().unwrap().request_sizes.clone()
    }

    /// Accepted spans as OTLP/JSON lines, for [`crate::otlp_json::spans`].
    pub fn spans_as_json(&self) -> Vec<serde_json::Value> {
        self.resource_spans()
            .into_iter()
            .map(|r| {
                serde_json::to_value(ExportTraceServiceRequest {
                    resource_spans: vec![r],
                })
                .expect("spans as JSON")
            })
            .collect()
    }

    /// Accepted log records as OTLP/JSON lines, for [`crate::otlp_json::logs`].
    pub fn logs_as_json(&self) -> Vec<serde_json::Value> {
        self.logs()
            .into_iter()
            .map(|l| {
                serde_json::to_value(ExportLogsServiceRequest {
                    resource_logs: l.resource_logs,
                })
                .expect("logs as JSON")
            })
            .collect()
    }

    fn refuse(&self, status: StatusCode, code: &str, message: String) -> Response {
        self.0
            .stored
            .lock()
            .unwrap()
            .refusals
            .push((status.as_u16(), format!("{code}: {message}")));
        aws_error(status, code, &message)
    }

    /// A fault for this call, if one is due: call `n` falls in bucket `n * 37 mod 100`,
    /// which visits every bucket once per hundred calls, so the shares are exact.
    fn fault(&self) -> Option<Response> {
        let n = self.0.calls.fetch_add(1, Ordering::Relaxed);
        let faults = *self.0.faults.lock().unwrap();
        let bucket = (n * 37) % 100;
        let response = if bucket < faults.throttle_percent {
            let mut r = aws_error(
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottlingException",
                "Rate exceeded",
            );
            r.headers_mut()
                .insert("retry-after", "0".parse().expect("header"));
            r
        } else if bucket < faults.throttle_percent + faults.server_error_percent {
            aws_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                "Service unavailable",
            )
        } else {
            return None;
        };
        self.0.injected.fetch_add(1, Ordering::Relaxed);
        Some(response)
    }
}

/// AWS's JSON error shape, with the code in `x-amzn-ErrorType` as well.
fn aws_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "__type": code, "message": message }).to_string();
    (
        status,
        [
            ("content-type", "application/json".to_string()),
            ("x-amzn-errortype", code.to_string()),
        ],
        body,
    )
        .into_response()
}

/// The body as sent, uncompressed.
fn inflate(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, String> {
    if headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip")
    {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .map_err(|e| format!("bad gzip body: {e}"))?;
        Ok(out)
    } else {
        Ok(body.to_vec())
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

/// Signature, decoding and injected faults, common to every path: the decoded body, or
/// the answer to give.
fn admit<T: Message + Default + serde::de::DeserializeOwned>(
    peer: &OtlpPeer,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(T, usize), Box<Response>> {
    if let Err((code, message)) = verify(&peer.0.config, path, headers, body) {
        return Err(Box::new(peer.refuse(StatusCode::FORBIDDEN, code, message)));
    }
    if let Some(fault) = peer.fault() {
        return Err(Box::new(fault));
    }
    let raw = inflate(headers, body)
        .map_err(|m| Box::new(peer.refuse(StatusCode::BAD_REQUEST, "ValidationException", m)))?;
    let decoded = if is_json(headers) {
        serde_json::from_slice(&raw).map_err(|e| e.to_string())
    } else {
        T::decode(&raw[..]).map_err(|e| e.to_string())
    };
    let request = decoded.map_err(|e| {
        Box::new(peer.refuse(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            format!("cannot decode the request: {e}"),
        ))
    })?;
    Ok((request, raw.len()))
}

fn encode_answer<M: Message + serde::Serialize>(headers: &HeaderMap, answer: M) -> Response {
    if is_json(headers) {
        (
            [("content-type", "application/json")],
            serde_json::to_vec(&answer).expect("answer as JSON"),
        )
            .into_response()
    } else {
        (
            [("content-type", "application/x-protobuf")],
            answer.encode_to_vec(),
        )
            .into_response()
    }
}

async fn traces(State(peer): State<OtlpPeer>, headers: HeaderMap, body: Bytes) -> Response {
    let (request, raw_len): (ExportTraceServiceRequest, usize) =
        match admit(&peer, "/v1/traces", &headers, &body) {
            Ok(r) => r,
            Err(answer) => return *answer,
        };
    let spans = || {
        request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
    };
    let count = spans().count();
    let invalid = |m: String| peer.refuse(StatusCode::BAD_REQUEST, "ValidationException", m);
    if count > MAX_SPANS {
        return invalid(format!("{count} spans in one request; at most {MAX_SPANS}"));
    }
    if raw_len > MAX_REQUEST_BYTES {
        return invalid(format!(
            "request of {raw_len} bytes; at most {MAX_REQUEST_BYTES}"
        ));
    }
    if let Some(s) = spans().find(|s| s.encoded_len() > MAX_SPAN_BYTES) {
        return invalid(format!(
            "span of {} bytes; at most {MAX_SPAN_BYTES}",
            s.encoded_len()
        ));
    }
    let starts: Vec<u64> = spans().map(|s| s.start_time_unix_nano).collect();
    if let (Some(lo), Some(hi)) = (starts.iter().min(), starts.iter().max())
        && hi - lo >= DAY_NANOS
    {
        return invalid("span timestamps more than 24 hours apart in one request".into());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let (oldest, newest) = (now - 14 * DAY_NANOS, now + DAY_NANOS / 12);
    let in_window = |t: u64| (oldest..=newest).contains(&t);
    let mut rejected = 0;
    let mut kept = request.resource_spans.clone();
    for r in &mut kept {
        for s in &mut r.scope_spans {
            let before = s.spans.len();
            s.spans
                .retain(|s| in_window(s.start_time_unix_nano) && in_window(s.end_time_unix_nano));
            rejected += before - s.spans.len();
        }
    }
    {
        let mut stored = peer.0.stored.lock().unwrap();
        stored.request_sizes.push(count - rejected);
        stored.spans.extend(kept);
    }
    let partial_success = (rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: rejected as i64,
        error_message: format!("{rejected} spans outside the accepted timestamp window"),
    });
    encode_answer(&headers, ExportTraceServiceResponse { partial_success })
}

async fn logs(State(peer): State<OtlpPeer>, headers: HeaderMap, body: Bytes) -> Response {
    let (request, _): (ExportLogsServiceRequest, usize) =
        match admit(&peer, "/v1/logs", &headers, &body) {
            Ok(r) => r,
            Err(answer) => return *answer,
        };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(group), Some(stream)) = (header("x-aws-log-group"), header("x-aws-log-stream"))
    else {
        return peer.refuse(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "x-aws-log-group and x-aws-log-stream headers are required".into(),
        );
    };
    peer.0.stored.lock().unwrap().logs.push(StoredLogs {
        group,
        stream,
        resource_logs: request.resource_logs,
    });
    encode_answer(&headers, ExportLogsServiceResponse::default())
}

/// X-Ray's Transaction Search setting (signed like every call).
async fn segment_destination(
    State(peer): State<OtlpPeer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err((code, message)) = verify(
        &peer.0.config,
        "/GetTraceSegmentDestination",
        &headers,
        &body,
    ) {
        return peer.refuse(StatusCode::FORBIDDEN, code, message);
    }
    let (destination, status) = peer.0.segment_destination.lock().unwrap().clone();
    (
        [("content-type", "application/json")],
        serde_json::json!({ "Destination": destination, "Status": status }).to_string(),
    )
        .into_response()
}

/// Recomputes the request's SigV4 signature; the AWS error code and message when it is
/// not the one the test's credentials make for this scope.
fn verify(
    config: &PeerConfig,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), (&'static str, String)> {
    let missing = |what: &str| ("MissingAuthenticationTokenException", format!("no {what}"));
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| missing("Authorization header"))?;
    let date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| missing("X-Amz-Date header"))?;
    let field = |name: &str| {
        auth.split([' ', ','])
            .find_map(|p| p.strip_prefix(name))
            .unwrap_or_default()
    };
    let credential: Vec<&str> = field("Credential=").split('/').collect();
    let signed: Vec<&str> = field("SignedHeaders=").split(';').collect();
    let invalid = |m: String| ("InvalidSignatureException", m);
    if credential.len() != 5 || credential[4] != "aws4_request" {
        return Err(invalid(format!("malformed credential scope in `{auth}`")));
    }
    if credential[0] != config.access_key {
        return Err((
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".into(),
        ));
    }
    if credential[2] != config.region || credential[3] != config.service {
        return Err(invalid(format!(
            "Credential should be scoped to a valid region and service: got {}/{}, want {}/{}",
            credential[2], credential[3], config.region, config.service
        )));
    }
    let time = parse_amz_date(date).ok_or_else(|| invalid(format!("bad X-Amz-Date {date}")))?;
    let skew = SystemTime::now()
        .duration_since(time)
        .unwrap_or_else(|e| e.duration());
    if skew > MAX_CLOCK_SKEW {
        return Err(invalid(format!(
            "Signature expired: {date} is more than 5 minutes from the server's time"
        )));
    }
    let token = headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The signer adds the date and token itself; every other signed header is given.
    let given: Vec<(&str, &str)> = signed
        .iter()
        .filter(|h| !matches!(**h, "x-amz-date" | "x-amz-security-token"))
        .filter_map(|h| Some((*h, headers.get(*h)?.to_str().ok()?)))
        .collect();
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let identity: Identity = Credentials::new(
        &config.access_key,
        &config.secret_key,
        token,
        None,
        "otlp-peer",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&config.region)
        .name(&config.service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| invalid(e.to_string()))?
        .into();
    let url = format!("http://{host}{path}");
    let signable = SignableRequest::new("POST", &url, given.into_iter(), SignableBody::Bytes(body))
        .map_err(|e| invalid(e.to_string()))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| invalid(e.to_string()))?
        .into_parts();
    let want = instructions
        .headers()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    if want != auth {
        return Err(invalid(
            "The request signature we calculated does not match the signature you provided.".into(),
        ));
    }
    Ok(())
}

/// `20251205T070000Z` as a time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || !s.is_ascii() || &s[8..9] != "T" || &s[15..] != "Z" {
        return None;
    }
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().ok();
    let (y, m, d) = (n(0, 4)?, n(4, 6)?, n(6, 8)?);
    let (hh, mm, ss) = (n(9, 11)?, n(11, 13)?, n(13, 15)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_parse() {
        let t = parse_amz_date("20251205T070000Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_764_918_000
        );
        assert!(parse_amz_date("2025-12-05").is_none());
    }
}
