//! `aurastream-loadgen`: realistic OTLP traffic at a target rate, over gRPC or HTTP, from
//! several connections; reports the achieved rate and every error.
//!
//! Requests are generated up front (a pool of distinct requests, reused round-robin) so the
//! generator measures the collector, not its own protobuf encoding.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use aurastream_loadgen::generate::{self, Pool, Signal};

#[derive(Parser, Debug, Clone)]
#[command(name = "aurastream-loadgen", about, long_about = None)]
/// Sends realistic OTLP traffic (HTTP server spans with client calls and exceptions,
/// metrics of every type, structured JSON logs) to a collector.
struct Args {
    /// Collector endpoint: http://127.0.0.1:4317 for gRPC, http://127.0.0.1:4318 for HTTP.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    protocol: Protocol,
    #[arg(long, value_enum, default_value_t = SignalArg::Traces)]
    signal: SignalArg,
    /// Target items per second (spans, data points or log records) over all connections;
    /// 0 = as fast as the collector accepts.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// How long to send, e.g. 10s, 1m.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Concurrent connections (each sends one request at a time).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Items per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Gzip the requests.
    #[arg(long)]
    gzip: bool,
    /// Distinct requests generated up front and sent round-robin.
    #[arg(long, default_value_t = 256)]
    pool: usize,
    /// Seed for the generated data (same seed, same traffic).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Protocol {
    Grpc,
    Http,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum SignalArg {
    Traces,
    Metrics,
    Logs,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    items: AtomicU64,
    refused_requests: AtomicU64,
    refused_items: AtomicU64,
    errors: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let signal = match args.signal {
        SignalArg::Traces => Signal::Traces,
        SignalArg::Metrics => Signal::Metrics,
        SignalArg::Logs => Signal::Logs,
    };
    let pool = Arc::new(Pool::new(
        signal,
        args.pool.max(1),
        args.batch.max(1),
        args.seed,
    ));
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let deadline = started + args.duration;
    let per_connection_rate = args.rate as f64 / args.connections.max(1) as f64;

    let mut workers = Vec::new();
    for worker in 0..args.connections.max(1) {
        let args = args.clone();
        let pool = pool.clone();
        let counters = counters.clone();
        workers.push(tokio::spawn(async move {
            let sender = Sender::connect(&args, signal).await?;
            let period = if per_connection_rate > 0.0 {
                Some(Duration::from_secs_f64(
                    pool.items_per_request() as f64 / per_connection_rate,
                ))
            } else {
                None
            };
            let mut next = Instant::now();
            let mut i = worker;
            while Instant::now() < deadline {
                if let Some(p) = period {
                    let now = Instant::now();
                    if next > now {
                        tokio::time::sleep(next - now).await;
                    } else if now - next > p * 10 {
                        // Far behind (the collector is slower than the target): don't
                        // burst to catch up, just continue at the target pace from now.
                        next = now;
                    }
                    next += p;
                }
                let (body, items) = pool.get(i);
                i += args.connections.max(1);
                counters.requests.fetch_add(1, Ordering::Relaxed);
                match sender.send(body).await {
                    Outcome::Accepted => {
                        counters.items.fetch_add(items as u64, Ordering::Relaxed);
                    }
                    Outcome::Refused => {
                        counters.refused_requests.fetch_add(1, Ordering::Relaxed);
                        counters
                            .refused_items
                            .fetch_add(items as u64, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Outcome::Error(e) => {
                        if counters.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("error: {e}");
                        }
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let items = counters.items.load(Ordering::Relaxed);
    let summary = serde_json::json!({
        "protocol": format!("{:?}", args.protocol).to_lowercase(),
        "signal": format!("{:?}", args.signal).to_lowercase(),
        "target_items_per_s": args.rate,
        "connections": args.connections,
        "items_per_request": pool.items_per_request(),
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "requests": counters.requests.load(Ordering::Relaxed),
        "accepted_items": items,
        "accepted_items_per_s": (items as f64 / elapsed).round(),
        "refused_requests": counters.refused_requests.load(Ordering::Relaxed),
        "refused_items": counters.refused_items.load(Ordering::Relaxed),
        "errors": counters.errors.load(Ordering::Relaxed),
    });
    println!("{summary}");
    Ok(())
}

enum Outcome {
    Accepted,
    /// 503 / UNAVAILABLE: the collector asked us to come back later.
    Refused,
    Error(String),
}

enum Sender {
    Grpc {
        channel: Channel,
        signal: Signal,
        gzip: bool,
    },
    Http {
        client: reqwest::Client,
        url: String,
        gzip: bool,
    },
}

impl Sender {
    async fn connect(args: &Args, signal: Signal) -> anyhow::Result<Sender> {
        Ok(match args.protocol {
            Protocol::Grpc => Sender::Grpc {
                channel: Channel::from_shared(args.endpoint.clone())?
                    .connect()
                    .await?,
                signal,
                gzip: args.gzip,
            },
            Protocol::Http => Sender::Http {
                client: reqwest::Client::new(),
                url: format!(
                    "{}{}",
                    args.endpoint.trim_end_matches('/'),
                    signal.http_path()
                ),
                gzip: args.gzip,
            },
        })
    }

    async fn send(&self, body: &generate::Request) -> Outcome {
        match self {
            Sender::Grpc {
                channel,
                signal,
                gzip,
            } => {
                let result = match (signal, body) {
                    (Signal::Traces, generate::Request::Traces(r)) => {
                        let mut c = TraceServiceClient::new(channel.clone());
                        if *gzip {
                            c = c.send_compressed(CompressionEncoding::Gzip);
                        }
                        c.export(r.clone()).await.map(|_| ())
                    }
                    (Signal::Metrics, generate::Request::Metrics(r)) => {
                        let mut c = MetricsServiceClient::new(channel.clone());
                        if *gzip {
                            c = c.send_compressed(CompressionEncoding::Gzip);
                        }
                        c.export(r.clone()).await.map(|_| ())
                    }
                    (Signal::Logs, generate::Request::Logs(r)) => {
                        let mut c = LogsServiceClient::new(channel.clone());
                        if *gzip {
                            c = c.send_compressed(CompressionEncoding::Gzip);
                        }
                        c.export(r.clone()).await.map(|_| ())
                    }
                    _ => return Outcome::Error("request of the wrong signal".into()),
                };
                match result {
                    Ok(()) => Outcome::Accepted,
                    Err(s) if s.code() == tonic::Code::Unavailable => Outcome::Refused,
                    Err(s) => Outcome::Error(format!("{:?}: {}", s.code(), s.message())),
                }
            }
            Sender::Http { client, url, gzip } => {
                let raw = body.encode();
                let mut req = client
                    .post(url)
                    .header("content-type", "application/x-protobuf");
                let payload = if *gzip {
                    req = req.header("content-encoding", "gzip");
                    gzip_bytes(&raw)
                } else {
                    raw
                };
                match req.body(payload).send().await {
                    Ok(r) if r.status().is_success() => Outcome::Accepted,
                    Ok(r) if r.status().as_u16() == 503 || r.status().as_u16() == 429 => {
                        Outcome::Refused
                    }
                    Ok(r) => Outcome::Error(format!("HTTP {}", r.status())),
                    Err(e) => Outcome::Error(e.to_string()),
                }
            }
        }
    }
}

fn gzip_bytes(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(raw);
    e.finish().unwrap_or_default()
}
