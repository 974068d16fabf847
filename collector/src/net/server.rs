//! The one accept loop of every HTTP and gRPC listener: TLS, a cap on connections, backoff
//! when `accept` fails (file descriptors exhausted), header / body / response timeouts,
//! idle and maximum connection age, HTTP/2 keepalive and stream limits, and a shutdown that
//! a stuck connection cannot hold up. Every cut connection is counted on `/metrics` as
//! `listener_events{component,event}`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::limits::Limits;
use super::tls_server::ServerTls;
use crate::telemetry::metrics::SelfMetrics;

/// First and longest pause after a failed `accept`, doubling in between (as Go's
/// `net/http` does), so a process out of file descriptors does not spin.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// On shutdown, a connection with no request in flight gets this long to close by itself.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// One listener: what it serves and how.
pub struct Listener {
    /// Names it on `/metrics`, e.g. `receiver/otlp/grpc`.
    pub component: String,
    pub tls: Option<ServerTls>,
    pub limits: Limits,
}

/// The certificate subject of a client that presented one (mTLS), for authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSubject(pub Arc<str>);

/// Serves `app` on `listener` until `stop` is cancelled; the task ends when every
/// connection has closed (connections idle at shutdown are closed after a short grace).
pub fn serve(
    listener: TcpListener,
    spec: Listener,
    app: Router,
    metrics: Arc<SelfMetrics>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let shared = Arc::new(Shared::new(spec, app, metrics));
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(shared.limits.max_connections));
        let mut connections = JoinSet::new();
        let mut backoff = ACCEPT_BACKOFF_MIN;
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    stream
                }
                Err(e) => {
                    shared.event("accept_error");
                    tracing::warn!(component = %shared.component, error = %e, pause = ?backoff,
                        "accepting a connection failed; pausing");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                shared.event("refused_max_connections");
                continue;
            };
            shared.event("accepted");
            let (shared, stop) = (shared.clone(), stop.clone());
            connections.spawn(async move {
                shared.connections.inc();
                shared.connection(stream, stop).await;
                shared.connections.dec();
                drop(slot);
            });
        }
        drop(listener);
        while connections.join_next().await.is_some() {}
    })
}

struct Shared {
    component: String,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    app: Router,
    builder: auto::Builder<TokioExecutor>,
    metrics: Arc<SelfMetrics>,
    connections: prometheus_client::metrics::gauge::Gauge,
    read_timeouts: Counter,
    write_timeouts: Counter,
}

impl Shared {
    fn new(spec: Listener, app: Router, metrics: Arc<SelfMetrics>) -> Shared {
        let limits = spec.limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        if limits.http2_only {
            builder = builder.http2_only();
        }
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.read_header_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .keep_alive_interval(limits.keepalive_time)
            .keep_alive_timeout(limits.keepalive_timeout);
        let connections = metrics.listener_connections(&spec.component);
        let read_timeouts = metrics.listener_event(&spec.component, "read_timeout");
        let write_timeouts = metrics.listener_event(&spec.component, "write_timeout");
        Shared {
            read_timeouts,
            write_timeouts,
            tls: spec.tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config)),
            component: spec.component,
            limits,
            app,
            builder,
            metrics,
            connections,
        }
    }

    fn event(&self, event: &str) {
        self.metrics.listener_event(&self.component, event).inc();
    }

    async fn connection(&self, stream: TcpStream, stop: CancellationToken) {
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = &self.tls else {
            return self.drive(stream, None, stop).await;
        };
        match tokio::time::timeout(self.limits.read_header_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let subject = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|cert| subject_of(cert.as_ref()));
                self.drive(tls, subject, stop).await
            }
            Ok(Err(e)) => {
                self.event("tls_handshake_failed");
                tracing::debug!(component = %self.component, error = %e, "TLS handshake failed");
            }
            Err(_) => self.event("tls_handshake_timeout"),
        }
    }

    /// Serves one connection until it closes, is cut for idleness or age, or shutdown.
    async fn drive<I>(&self, io: I, subject: Option<PeerSubject>, stop: CancellationToken)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let service = {
            let activity = activity.clone();
            let app = self.app.clone();
            let limits = self.limits.clone();
            let read_timeouts = self.read_timeouts.clone();
            let write_timeouts = self.write_timeouts.clone();
            hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                let busy = activity.begin();
                if let Some(s) = &subject {
                    request.extensions_mut().insert(s.clone());
                }
                let request = request.map(|body| match limits.read_timeout {
                    Some(d) => Body::new(Deadline::new(body, d, read_timeouts.clone())),
                    None => Body::new(body),
                });
                let answer = app.clone().oneshot(request);
                let write_timeout = limits.write_timeout;
                let write_timeouts = write_timeouts.clone();
                async move {
                    let response = match write_timeout {
                        None => answer.await,
                        Some(d) => match tokio::time::timeout(d, answer).await {
                            Ok(r) => r,
                            Err(_) => {
                                write_timeouts.inc();
                                return Err(std::io::Error::new(
                                    std::io::ErrorKind::TimedOut,
                                    "no response within write_timeout",
                                ));
                            }
                        },
                    };
                    drop(busy);
                    Ok::<_, std::io::Error>(response.unwrap_or_else(|e: Infallible| match e {}))
                }
            })
        };
        let connection = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        let age_limit = self.limits.max_connection_age.map(|a| Instant::now() + a);
        let mut closing: Option<(Instant, bool)> = None;
        loop {
            let idle_at = self.limits.idle_timeout.map(|d| activity.last() + d);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        let timed_out = e
                            .downcast_ref::<hyper::Error>()
                            .is_some_and(hyper::Error::is_timeout);
                        if timed_out {
                            self.event("read_header_timeout");
                        }
                        tracing::debug!(component = %self.component, error = %e, "connection ended");
                    }
                    return;
                }
                _ = stop.cancelled(), if closing.is_none() => {
                    connection.as_mut().graceful_shutdown();
                    closing = Some((Instant::now() + SHUTDOWN_GRACE, true));
                }
                _ = sleep_until(age_limit), if closing.is_none() && age_limit.is_some() => {
                    self.event("max_connection_age");
                    connection.as_mut().graceful_shutdown();
                    closing = Some((Instant::now() + self.limits.max_connection_age_grace, false));
                }
                _ = sleep_until(idle_at), if closing.is_none() && idle_at.is_some() => {
                    if activity.idle_for(self.limits.idle_timeout) {
                        self.event("idle_timeout");
                        connection.as_mut().graceful_shutdown();
                        closing = Some((Instant::now() + SHUTDOWN_GRACE, false));
                    }
                }
                _ = sleep_until(closing.map(|c| c.0)), if closing.is_some() => {
                    let (_, shutdown) = closing.expect("guarded");
                    if shutdown && activity.in_flight() > 0 {
                        // A request being admitted finishes; the service's own deadline
                        // bounds the wait.
                        closing = Some((Instant::now() + SHUTDOWN_GRACE, true));
                        continue;
                    }
                    self.event("forced_close");
                    return;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The certificate's subject as text (`CN=sidecar-a,O=example`).
fn subject_of(der: &[u8]) -> Option<PeerSubject> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(PeerSubject(cert.subject().to_string().into()))
}

/// Requests in flight on one connection and when the last one began or ended.
struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    fn begin(self: &Arc<Self>) -> BusyGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        BusyGuard(self.clone())
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn idle_for(&self, limit: Option<Duration>) -> bool {
        limit.is_some_and(|d| self.in_flight() == 0 && self.last().elapsed() >= d)
    }
}

/// Marks a request in flight until dropped (the response is ready or the request was cut).
struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// A request body that fails once `read_timeout` has passed since its headers: a client
/// trickling a body cannot hold a connection and a handler forever.
struct Deadline {
    body: Incoming,
    timer: Pin<Box<Sleep>>,
    timeouts: Counter,
}

impl Deadline {
    fn new(body: Incoming, limit: Duration, timeouts: Counter) -> Deadline {
        Deadline {
            body,
            timer: Box::pin(tokio::time::sleep(limit)),
            timeouts,
        }
    }
}

impl hyper::body::Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.timeouts.inc();
                Poll::Ready(Some(Err(
                    "request body not received within read_timeout".into()
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
