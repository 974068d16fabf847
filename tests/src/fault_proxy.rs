//! A fault-injecting HTTP/1.1 reverse proxy for AWS APIs, put between the collector and moto.
//!
//! moto always answers promptly and never throttles, so on its own it cannot show what the
//! exporters do when AWS pushes back. The proxy forwards each request to the upstream
//! (moto) unless it decides to fail it, and can stop listening altogether to simulate an
//! outage:
//!
//! - `fault_percent` of the calls get an error *without* being forwarded (the destination
//!   never saw them, as with real throttling): half of them the protocol's throttling error
//!   (`400 {"__type":"ThrottlingException"}` for JSON-1.1 APIs such as CloudWatch Logs,
//!   `429 ThrottledException` for REST-JSON APIs such as X-Ray), half `500 InternalFailure`;
//! - every answer is delayed by a random latency up to `max_latency`;
//! - [`FaultProxy::set_down`] closes the listening socket and every open connection, so
//!   clients get "connection refused" until [`FaultProxy::set_up`] listens again on the same
//!   port.
//!
//! With no faults and [`FaultProxy::record`] on, it is a recording proxy:
//! [`FaultProxy::forwarded_calls`] gives the body of every JSON-1.1 call it forwarded, for
//! checking request fields moto accepts but does not
//! store (PutLogEvents' `entity`).
//!
//! It speaks just enough HTTP/1.1 for the AWS SDK (`Content-Length` or chunked bodies,
//! keep-alive); it is test support, not a general proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to the calls it sees.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Share of calls (0–100) answered with an error instead of being forwarded.
    pub fault_percent: u64,
    /// Each answer waits a random time in `[0, max_latency]`.
    pub max_latency: Duration,
}

/// What the proxy has done so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProxyStats {
    /// Calls received (forwarded or failed).
    pub calls: u64,
    pub forwarded: u64,
    pub throttled: u64,
    pub server_errors: u64,
    /// Connections closed or refused because the proxy was down.
    pub connections_cut: u64,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    forwarded: AtomicU64,
    throttled: AtomicU64,
    server_errors: AtomicU64,
    connections_cut: AtomicU64,
    /// State of the pseudo-random generator (splitmix64): no `rand` dependency needed, and
    /// a run's fault pattern does not matter beyond its proportions.
    random: AtomicU64,
}

impl Counters {
    fn next_random(&self) -> u64 {
        let mut z = self
            .random
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

struct Shared {
    upstream: String,
    faults: std::sync::Mutex<Faults>,
    counters: Counters,
    client: reqwest::Client,
    /// Whether JSON-1.1 calls are kept in `recorded` (off: load tests would pile them up).
    recording: std::sync::atomic::AtomicBool,
    /// Forwarded JSON-1.1 calls: (`X-Amz-Target`, body), in arrival order.
    recorded: std::sync::Mutex<Vec<(String, Vec<u8>)>>,
}

/// A running proxy; its tasks end when it is dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, faults: Faults) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            faults: std::sync::Mutex::new(faults),
            counters: Counters::default(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("reqwest client"),
            recording: std::sync::atomic::AtomicBool::new(false),
            recorded: std::sync::Mutex::new(Vec::new()),
        });
        let (up, up_rx) = watch::channel(true);
        let task = tokio::spawn(serve(listener, addr, shared.clone(), up_rx));
        FaultProxy {
            addr,
            shared,
            up,
            task,
        }
    }

    /// The proxy's URL, for an exporter's `endpoint` option.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// Stops listening and cuts every open connection: the destination is unreachable.
    pub fn set_down(&self) {
        self.up.send_replace(false);
    }

    /// Listens again on the same port.
    pub fn set_up(&self) {
        self.up.send_replace(true);
    }

    /// Keeps the bodies of the JSON-1.1 calls forwarded from now on.
    pub fn record(&self) {
        self.shared.recording.store(true, Ordering::SeqCst);
    }

    /// The JSON bodies of the forwarded calls of one JSON-1.1 operation (`PutLogEvents`),
    /// in arrival order.
    pub fn forwarded_calls(&self, operation: &str) -> Vec<serde_json::Value> {
        let suffix = format!(".{operation}");
        self.shared
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(target, _)| target.ends_with(&suffix))
            .map(|(_, body)| serde_json::from_slice(body).unwrap_or(serde_json::Value::Null))
            .collect()
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            calls: c.calls.load(Ordering::SeqCst),
            forwarded: c.forwarded.load(Ordering::SeqCst),
            throttled: c.throttled.load(Ordering::SeqCst),
            server_errors: c.server_errors.load(Ordering::SeqCst),
            connections_cut: c.connections_cut.load(Ordering::SeqCst),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.up.send_replace(false);
        self.task.abort();
    }
}

/// Accepts connections while up; while down, holds no socket on the port at all.
async fn serve(
    first: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
    mut up: watch::Receiver<bool>,
) {
    let mut listener = Some(first);
    loop {
        let current = match listener.take() {
            Some(l) => l,
            None => {
                // Down: wait to be brought up, then take the port back.
                if up.wait_for(|is_up| *is_up).await.is_err() {
                    return;
                }
                match bind_again(addr).await {
                    Some(l) => l,
                    None => return,
                }
            }
        };
        let for_connections = up.clone();
        loop {
            tokio::select! {
                accepted = current.accept() => {
                    if let Ok((stream, _)) = accepted {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(connection(stream, shared.clone(), for_connections.clone()));
                    }
                }
                changed = up.wait_for(|is_up| !*is_up) => {
                    if changed.is_err() {
                        return;
                    }
                    shared.counters.connections_cut.fetch_add(1, Ordering::SeqCst);
                    break;
                }
            }
        }
        drop(current);
    }
}

/// Binds the proxy's port again after an outage. The port was ours a moment ago, so a
/// failure here is a short-lived race with the kernel; a few attempts settle it.
async fn bind_again(addr: SocketAddr) -> Option<TcpListener> {
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// One client connection: requests one after another (keep-alive) until the client closes
/// it or the proxy goes down.
async fn connection(stream: TcpStream, shared: Arc<Shared>, mut up: watch::Receiver<bool>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let request = tokio::select! {
            r = read_request(&mut read) => r,
            _ = up.wait_for(|is_up| !*is_up) => None,
        };
        let Some(request) = request else { return };
        let response = tokio::select! {
            r = answer(&shared, request) => r,
            _ = up.wait_for(|is_up| !*is_up) => {
                shared.counters.connections_cut.fetch_add(1, Ordering::SeqCst);
                return;
            }
        };
        if write.write_all(&response).await.is_err() {
            return;
        }
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request; `None` when the connection ended or sent something unparseable.
async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(read: &mut R) -> Option<Request> {
    let mut line = String::new();
    if read.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if read.read_line(&mut h).await.ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut request = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if request
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        request.body = read_chunked(read).await?;
    } else if let Some(len) = request.header("content-length") {
        let len: usize = len.parse().ok()?;
        let mut body = vec![0; len];
        read.read_exact(&mut body).await.ok()?;
        request.body = body;
    }
    Some(request)
}

async fn read_chunked<R: tokio::io::AsyncBufRead + Unpin>(read: &mut R) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        read.read_line(&mut size).await.ok()?;
        let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let mut t = String::new();
                if read.read_line(&mut t).await.ok()? == 0 || t.trim().is_empty() {
                    return Some(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        read.read_exact(&mut body[start..]).await.ok()?;
        let mut crlf = [0u8; 2];
        read.read_exact(&mut crlf).await.ok()?;
    }
}

/// Decides the call's fate and builds the raw HTTP response.
async fn answer(shared: &Shared, request: Request) -> Vec<u8> {
    let counters = &shared.counters;
    counters.calls.fetch_add(1, Ordering::SeqCst);
    let faults = *shared.faults.lock().unwrap_or_else(|p| p.into_inner());
    let latency_ms = u64::try_from(faults.max_latency.as_millis()).unwrap_or(u64::MAX);
    if latency_ms > 0 {
        let wait = counters.next_random() % (latency_ms + 1);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let roll = counters.next_random() % 100;
    // JSON-1.1 APIs (CloudWatch Logs) name the operation in X-Amz-Target and put the error
    // type in the body; REST-JSON APIs (X-Ray) use the status code and x-amzn-ErrorType.
    let json_11 = request.header("x-amz-target").is_some();
    if roll < faults.fault_percent / 2 {
        counters.throttled.fetch_add(1, Ordering::SeqCst);
        return if json_11 {
            aws_error(400, "ThrottlingException", "Rate exceeded", true)
        } else {
            aws_error(429, "ThrottledException", "Rate exceeded", false)
        };
    }
    if roll < faults.fault_percent {
        counters.server_errors.fetch_add(1, Ordering::SeqCst);
        return aws_error(500, "InternalFailure", "injected server error", json_11);
    }
    if let Some(target) = request
        .header("x-amz-target")
        .filter(|_| shared.recording.load(Ordering::SeqCst))
    {
        shared
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((target.to_owned(), request.body.clone()));
    }
    match forward(shared, request).await {
        Ok(response) => {
            counters.forwarded.fetch_add(1, Ordering::SeqCst);
            response
        }
        Err(e) => raw_response(
            502,
            &[("content-type", "text/plain")],
            e.to_string().as_bytes(),
        ),
    }
}

async fn forward(shared: &Shared, request: Request) -> Result<Vec<u8>, reqwest::Error> {
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut builder = shared
        .client
        .request(method, format!("{}{}", shared.upstream, request.path));
    for (name, value) in &request.headers {
        let hop = [
            "host",
            "content-length",
            "connection",
            "transfer-encoding",
            "expect",
        ];
        if !hop.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            builder = builder.header(name, value);
        }
    }
    let upstream = builder.body(request.body).send().await?;
    let status = upstream.status().as_u16();
    let headers: Vec<(String, String)> = upstream
        .headers()
        .iter()
        .filter(|(n, _)| {
            ![
                "content-length",
                "connection",
                "transfer-encoding",
                "keep-alive",
            ]
            .contains(&n.as_str())
        })
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let body = upstream.bytes().await?;
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    Ok(raw_response(status, &refs, &body))
}

fn aws_error(status: u16, code: &str, message: &str, json_11: bool) -> Vec<u8> {
    let body = if json_11 {
        serde_json::json!({"__type": code, "message": message})
    } else {
        serde_json::json!({"message": message})
    }
    .to_string();
    let content_type = if json_11 {
        "application/x-amz-json-1.1"
    } else {
        "application/json"
    };
    raw_response(
        status,
        &[("content-type", content_type), ("x-amzn-errortype", code)],
        body.as_bytes(),
    )
}

fn raw_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parses_content_length_and_chunked_bodies() {
        let raw = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nX-Amz-Target: T\r\n\r\nabc\
                    POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n";
        let mut reader = BufReader::new(&raw[..]);
        let first = read_request(&mut reader).await.expect("first request");
        assert_eq!(
            (first.path.as_str(), first.body.as_slice()),
            ("/a", &b"abc"[..])
        );
        assert_eq!(first.header("x-amz-target"), Some("T"));
        let second = read_request(&mut reader).await.expect("second request");
        assert_eq!(
            (second.path.as_str(), second.body.as_slice()),
            ("/b", &b"def"[..])
        );
        assert!(read_request(&mut reader).await.is_none());
    }

    #[test]
    fn throttling_errors_follow_each_protocol() {
        let json = String::from_utf8(aws_error(400, "ThrottlingException", "m", true)).unwrap();
        assert!(json.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(json.contains(r#""__type":"ThrottlingException""#));
        let rest = String::from_utf8(aws_error(429, "ThrottledException", "m", false)).unwrap();
        assert!(rest.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
        assert!(rest.contains("x-amzn-errortype: ThrottledException"));
    }
}
