//! Authentication at the door: every request on a listener with `auth:` goes through its
//! [`ServerAuthenticator`] before any handler reads the body. A refused request gets HTTP
//! 401 (gRPC `UNAUTHENTICATED`), or 503 (`UNAVAILABLE`) when the authenticator cannot work
//! at the moment; the credential is never logged. An accepted one carries its
//! [`Principal`] in the request's extensions, for authorization further in.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::metrics::counter::Counter;

use crate::component::auth::{AuthError, Principal, ServerAuthenticator};
use crate::net::server::PeerSubject;

/// Who sent the request being handled: what authorization inside the receiver decides on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// Set by the listener's authenticator.
    pub principal: Option<Principal>,
    /// The client certificate's subject (mTLS).
    pub certificate: Option<PeerSubject>,
}

impl Caller {
    /// The names the caller is known by: its authenticated subject and its certificate's.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.principal
            .iter()
            .map(|p| p.subject.as_str())
            .chain(self.certificate.iter().map(|c| &*c.0))
    }
}

tokio::task_local! {
    /// The caller of the request the current task is handling. Handlers run inside the
    /// request's future, so code they call reads it without every signature carrying it.
    static CALLER: Caller;
}

/// The caller of the request being handled, if any is known.
pub fn current_caller() -> Caller {
    CALLER.try_with(Caller::clone).unwrap_or_default()
}

/// `router` with the caller (principal, certificate subject) of each request available to
/// its handlers through [`current_caller`]. Applied inside [`require`], which sets the
/// principal.
pub fn with_caller(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(scope_caller))
}

async fn scope_caller(request: Request, next: Next) -> Response {
    let caller = Caller {
        principal: request.extensions().get::<Principal>().cloned(),
        certificate: request.extensions().get::<PeerSubject>().cloned(),
    };
    CALLER.scope(caller, next.run(request)).await
}

#[derive(Clone)]
struct Door {
    authenticator: Arc<dyn ServerAuthenticator>,
    refused: Counter,
    grpc: bool,
}

/// `router` with every request authenticated first. `refused` counts refusals; `grpc`
/// chooses how a refusal is said (gRPC status in headers, or an HTTP status).
pub fn require(
    router: Router,
    authenticator: Arc<dyn ServerAuthenticator>,
    refused: Counter,
    grpc: bool,
) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        Door {
            authenticator,
            refused,
            grpc,
        },
        check,
    ))
}

async fn check(State(door): State<Door>, mut request: Request, next: Next) -> Response {
    // A CORS preflight carries no data and, by the browser's rules, no credentials.
    if request.method() == http::Method::OPTIONS {
        return next.run(request).await;
    }
    match door.authenticator.authenticate(request.headers()) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) => {
            door.refused.inc();
            tracing::debug!(error = %e, "request refused by the authenticator");
            refusal(&e, door.grpc)
        }
    }
}

fn refusal(e: &AuthError, grpc: bool) -> Response {
    let unavailable = matches!(e, AuthError::Unavailable(_));
    let message = e.to_string();
    if grpc {
        // A trailers-only gRPC answer: HTTP 200 with the status in the headers.
        let code = if unavailable { "14" } else { "16" };
        return Response::builder()
            .status(http::StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header("grpc-status", code)
            .header("grpc-message", percent_encode(&message))
            .body(Body::empty())
            .expect("static response parts");
    }
    let status = if unavailable {
        http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        http::StatusCode::UNAUTHORIZED
    };
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(message))
        .expect("static response parts")
}

/// `grpc-message` is percent-encoded outside printable ASCII (gRPC over HTTP/2 spec).
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
