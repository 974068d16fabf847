//! The `http` block, from current and older HTTP semantic conventions.
//!
//! Newer names (`http.request.method`, `url.full`, ...) are read first, then the names
//! instrumentations used before semantic conventions 1.21 (`http.method`, `http.url`, ...),
//! so spans from old and new SDKs render the same in the X-Ray console.

use aurastream_proto::xray::{HttpData, HttpRequest, HttpResponse};

use super::attrs::Attrs;

/// URL attributes only HTTP spans carry. A host and port alone (`server.address`,
/// `net.peer.name`) do not make an HTTP call: database, RPC and messaging spans set them too,
/// and an `http` block on those would make X-Ray draw them as HTTP calls.
const HTTP_URL_KEYS: &[&str] = &[
    "url.full",
    "http.url",
    "url.path",
    "http.target",
    "url.scheme",
    "http.scheme",
    "http.host",
];

/// The `http` block (if the span has HTTP attributes) and the response status code.
pub(crate) fn http(attrs: &Attrs<'_>, is_server: bool) -> (Option<HttpData>, Option<i64>) {
    // `_OTHER` stands for a method outside the well-known set; the original is kept aside.
    let method = match attrs.first_str(&["http.request.method", "http.method"]) {
        Some("_OTHER") => attrs.str("http.request.method_original").or(Some("_OTHER")),
        m => m,
    };
    let status = attrs.first_int(&["http.response.status_code", "http.status_code"]);
    if method.is_none()
        && status.is_none()
        && !HTTP_URL_KEYS.iter().any(|k| attrs.peek(k).is_some())
    {
        return (None, None);
    }
    let url = url(attrs, is_server);
    let user_agent = attrs.first_str(&["user_agent.original", "http.user_agent"]);
    let (client_ip, x_forwarded_for) = match attrs.str("client.address") {
        Some(ip) => (Some(ip), false),
        None => match attrs.str("http.client_ip") {
            Some(ip) => (Some(ip), true),
            None if is_server => (
                attrs.first_str(&["network.peer.address", "net.sock.peer.addr", "net.peer.ip"]),
                false,
            ),
            None => (None, false),
        },
    };
    let content_length = attrs.first_int(&[
        "http.response.body.size",
        "http.response_content_length",
        "http.response_content_length_uncompressed",
    ]);
    if method.is_none() && url.is_none() && status.is_none() {
        return (None, None);
    }
    let request = HttpRequest {
        method: method.map(str::to_owned),
        url,
        user_agent: user_agent.map(str::to_owned),
        client_ip: client_ip.map(str::to_owned),
        x_forwarded_for,
    };
    let response = (status.is_some() || content_length.is_some()).then_some(HttpResponse {
        status,
        content_length,
    });
    let data = HttpData {
        request: Some(request),
        response,
    };
    (Some(data), status)
}

/// `url.full` / `http.url`, or a URL rebuilt from scheme, host, port, path and query.
fn url(attrs: &Attrs<'_>, is_server: bool) -> Option<String> {
    if let Some(full) = attrs.first_str(&["url.full", "http.url"]) {
        return Some(full.to_owned());
    }
    let path = attrs.first_str(&["url.path", "http.target"]);
    let host = if is_server {
        attrs.first_str(&["server.address", "http.host", "net.host.name"])
    } else {
        attrs.first_str(&["server.address", "net.peer.name", "http.host"])
    };
    if path.is_none() && host.is_none() {
        return None;
    }
    let mut url = String::new();
    if let Some(host) = host {
        let scheme = attrs
            .first_str(&["url.scheme", "http.scheme"])
            .unwrap_or("http");
        url.push_str(scheme);
        url.push_str("://");
        url.push_str(host);
        let port = if is_server {
            attrs.first_int(&["server.port", "net.host.port"])
        } else {
            attrs.first_int(&["server.port", "net.peer.port"])
        };
        if let Some(port) = port
            && !matches!((scheme, port), ("http", 80) | ("https", 443))
            && !host.contains(':')
        {
            url.push(':');
            url.push_str(&port.to_string());
        }
    }
    match path {
        Some(p) if p.starts_with('/') => url.push_str(p),
        Some(p) => {
            url.push('/');
            url.push_str(p);
        }
        None => {}
    }
    if let Some(query) = attrs.str("url.query") {
        url.push('?');
        url.push_str(query);
    }
    Some(url)
}

/// `error` / `throttle` / `fault` from the HTTP status and the span status: 4xx is the
/// caller's error (429: throttled), 5xx a fault; a failed span without a status code is
/// a fault too, because nothing says the caller was to blame.
pub(crate) fn flags(status: Option<i64>, span_failed: bool) -> (bool, bool, bool) {
    match status {
        Some(429) => (true, true, false),
        Some(400..=499) => (true, false, false),
        Some(500..=599) => (false, false, true),
        _ => (false, false, span_failed),
    }
}
