//! The sentiment API's router, shared by `examples/sentiment_api.rs` and the integration
//! test (`tests/collector_e2e.rs`), so the test exercises exactly what the README shows.
//!
//! `POST /analyze {"text": "..."}` answers `{"sentiment", "confidence", "cached"}`. The NLP
//! call (Amazon Comprehend in the guide) is a deterministic word count so the example runs
//! offline; results are cached in memory by text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aurastream_sdk::{CacheHit, RequestId, Sentiment, Telemetry};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// Texts longer than this are refused, as Comprehend refuses over 5 000 bytes.
const MAX_TEXT_BYTES: usize = 5_000;

#[derive(Clone)]
struct AppState {
    telemetry: Telemetry,
    cache: Arc<Mutex<HashMap<String, Analysis>>>,
}

#[derive(Debug, Deserialize)]
pub struct AnalyzeRequest {
    pub text: String,
}

#[derive(Debug, Clone, Copy)]
struct Analysis {
    sentiment: Sentiment,
    confidence: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AnalyzeResponse {
    pub sentiment: String,
    pub confidence: f64,
    pub cached: bool,
}

/// The application's routes with the telemetry layer around them.
///
/// `route_layer` puts the layer inside the router, after routing, so it sees axum's
/// `MatchedPath` and reports `Endpoint=/analyze` instead of raw paths.
///
/// The example trusts `x-customer-id` so that `curl -H 'x-customer-id: ...'` shows the
/// per-customer metrics. A real service turns that on only when a gateway in front of it
/// authenticates the caller and sets the header; otherwise callers pick their own id.
pub fn router(telemetry: Telemetry) -> Router {
    let state = AppState {
        telemetry: telemetry.clone(),
        cache: Arc::new(Mutex::new(HashMap::new())),
    };
    Router::new()
        .route("/analyze", post(analyze))
        .route("/health", get(|| async { "ok" }))
        .route_layer(telemetry.http_layer().trust_customer_id_header(true))
        .with_state(state)
}

async fn analyze(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    Json(request): Json<AnalyzeRequest>,
) -> Response {
    let customer_id = headers
        .get(aurastream_sdk::middleware::CUSTOMER_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(aurastream_sdk::middleware::ANONYMOUS_CUSTOMER)
        .to_owned();
    let text = request.text.trim();
    if text.is_empty() || text.len() > MAX_TEXT_BYTES {
        let message = format!("text must be 1 to {MAX_TEXT_BYTES} bytes");
        state
            .telemetry
            .logs()
            .log_error(&request_id, "ValidationError", &message, None);
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": message})),
        )
            .into_response();
    }

    let cached = check_cache(&state, text);
    state
        .telemetry
        .metrics()
        .record_cache_performance(cached.is_some());
    let (analysis, hit) = match cached {
        Some(analysis) => (analysis, true),
        None => {
            let started = Instant::now();
            let analysis = detect_sentiment(text);
            state.telemetry.metrics().record_sentiment_analysis(
                analysis.sentiment,
                analysis.confidence,
                started.elapsed(),
            );
            store(&state, text, analysis);
            (analysis, false)
        }
    };

    let metrics = state.telemetry.metrics();
    metrics.record_customer_activity(&customer_id, "analysis", 1.0);
    metrics.track_customer_usage(&customer_id, "characters", text.chars().count() as f64);
    state.telemetry.logs().log_business_event(
        "analysis_completed",
        &customer_id,
        &serde_json::json!({
            "request_id": request_id,
            "sentiment": analysis.sentiment.as_str(),
            "characters": text.chars().count(),
            "cached": hit,
        }),
    );

    let mut response = Json(AnalyzeResponse {
        sentiment: analysis.sentiment.as_str().to_owned(),
        confidence: analysis.confidence,
        cached: hit,
    })
    .into_response();
    response.extensions_mut().insert(CacheHit(hit));
    response
}

#[tracing::instrument(name = "cache_operation", skip_all)]
fn check_cache(state: &AppState, text: &str) -> Option<Analysis> {
    let hit = lock(&state.cache).get(text).copied();
    tracing::debug!(cache_hit = hit.is_some(), "cache lookup");
    hit
}

fn store(state: &AppState, text: &str, analysis: Analysis) {
    lock(&state.cache).insert(text.to_owned(), analysis);
}

/// A poisoned lock only means another request panicked mid-insert; the map is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The stand-in for Comprehend's DetectSentiment: counts positive and negative words.
#[tracing::instrument(name = "comprehend_api", skip_all, fields(text_length = text.len() as i64))]
fn detect_sentiment(text: &str) -> Analysis {
    const POSITIVE: &[&str] = &[
        "good",
        "great",
        "love",
        "excellent",
        "happy",
        "amazing",
        "fast",
    ];
    const NEGATIVE: &[&str] = &["bad", "terrible", "hate", "awful", "sad", "slow", "broken"];
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let positive = words
        .iter()
        .filter(|w| POSITIVE.contains(&w.as_str()))
        .count();
    let negative = words
        .iter()
        .filter(|w| NEGATIVE.contains(&w.as_str()))
        .count();
    let (sentiment, confidence) = match (positive, negative) {
        (0, 0) => (Sentiment::Neutral, 0.9),
        (p, n) if p == n => (Sentiment::Mixed, 0.6),
        (p, n) => {
            let margin = p.abs_diff(n) as f64 / (p + n) as f64;
            let sentiment = if p > n {
                Sentiment::Positive
            } else {
                Sentiment::Negative
            };
            (sentiment, 0.5 + margin / 2.0)
        }
    };
    tracing::info!(
        sentiment = sentiment.as_str(),
        confidence,
        "sentiment detected"
    );
    Analysis {
        sentiment,
        confidence,
    }
}
