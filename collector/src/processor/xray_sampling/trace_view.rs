//! What the rules look at in a buffered trace.
//!
//! X-Ray rules describe the request that entered the service: service name (the resource's
//! `service.name`), host, method and path come from the root span. The HTTP attributes are
//! read under both the current OpenTelemetry semantic conventions and the older ones, since
//! both are emitted by instrumentation in the field. A trace cut short by `max_wait` or
//! eviction may have no root yet; then the first SERVER span received stands in for it, or
//! the first span at all, which is the best that is known at that moment.

use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::{ResourceSpans, Span, span::SpanKind, status::StatusCode};

use super::glob::Glob;
use super::rules::Rule;

/// Attribute names that mean the same thing under the old and new HTTP conventions. A rule
/// on either name matches a span carrying the other (the guide's rule asks for
/// `http.status_code`, which current instrumentation calls `http.response.status_code`).
const ALIASES: &[(&str, &str)] = &[
    ("http.status_code", "http.response.status_code"),
    ("http.method", "http.request.method"),
    ("http.url", "url.full"),
    ("http.target", "url.path"),
    ("http.scheme", "url.scheme"),
    ("http.user_agent", "user_agent.original"),
    ("http.host", "server.address"),
    ("net.host.name", "server.address"),
];

/// One buffered trace, as the rules see it.
pub struct TraceView<'a> {
    /// The trace's spans with the resource each came with.
    parts: Vec<(Option<&'a Resource>, &'a [Span])>,
    root: Option<(&'a Resource, &'a Span)>,
    /// The request fields, read once: every rule is matched against them.
    fields: Fields,
}

#[derive(Default)]
struct Fields {
    service_name: String,
    http_method: String,
    url_path: String,
    host: String,
    service_type: String,
    resource_arn: String,
}

impl<'a> TraceView<'a> {
    /// A view of a trace held as OTLP `ResourceSpans`.
    pub fn new(fragments: &'a [ResourceSpans]) -> TraceView<'a> {
        TraceView::from_parts(
            fragments
                .iter()
                .flat_map(|rs| {
                    rs.scope_spans
                        .iter()
                        .map(move |ss| (rs.resource.as_ref(), ss.spans.as_slice()))
                })
                .collect(),
        )
    }

    /// A view of a trace held as runs of spans, each with the resource it came with.
    pub fn from_parts(parts: Vec<(Option<&'a Resource>, &'a [Span])>) -> TraceView<'a> {
        let spans = || {
            parts
                .iter()
                .flat_map(|&(resource, spans)| spans.iter().map(move |s| (resource, s)))
        };
        let pick = |pred: &dyn Fn(&Span) -> bool| spans().find(|(_, s)| pred(s));
        let root = pick(&|s| s.parent_span_id.is_empty())
            .or_else(|| pick(&|s| s.kind == SpanKind::Server as i32))
            .or_else(|| spans().next());
        static EMPTY: Resource = Resource {
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        };
        let root = root.map(|(r, s)| (r.unwrap_or(&EMPTY), s));
        let mut view = TraceView {
            parts,
            root,
            fields: Fields::default(),
        };
        view.fields = Fields {
            service_name: view.service_name(),
            http_method: view.http_method(),
            url_path: view.url_path(),
            host: view.host(),
            service_type: view.service_type(),
            resource_arn: view.resource_arn(),
        };
        view
    }

    /// The root span, or the span standing in for it.
    pub fn root(&self) -> Option<&'a Span> {
        self.root.map(|(_, s)| s)
    }

    /// The service the trace is about: the root's resource `service.name`.
    pub fn service(&self) -> &str {
        &self.fields.service_name
    }

    fn spans(&self) -> impl Iterator<Item = &'a Span> + '_ {
        self.parts.iter().flat_map(|&(_, spans)| spans.iter())
    }

    /// The trace shows a fault: some span has an HTTP status of 500 to 599 (under either
    /// convention's name) or the span status `ERROR`. This is what adaptive sampling
    /// counts as an anomaly (X-Ray's default anomaly is a 5xx status; a failed span
    /// without HTTP, a database call say, counts too).
    pub fn has_fault(&self) -> bool {
        self.spans().any(|s| {
            s.status
                .as_ref()
                .is_some_and(|st| st.code == StatusCode::Error as i32)
                || s.attributes
                    .iter()
                    .filter(|kv| {
                        kv.key == "http.response.status_code" || kv.key == "http.status_code"
                    })
                    .filter_map(|kv| kv.value.as_ref())
                    .any(is_5xx)
        })
    }

    fn service_name(&self) -> String {
        self.root
            .and_then(|(r, _)| find_str(&r.attributes, &["service.name"]))
            .unwrap_or_default()
    }

    fn http_method(&self) -> String {
        self.root_attr(&["http.request.method", "http.method"])
            .unwrap_or_default()
    }

    /// `url.path`, else the path of `http.target`, `url.full` or `http.url` (query and
    /// fragment cut off: X-Ray matches the path alone).
    fn url_path(&self) -> String {
        if let Some(p) = self.root_attr(&["url.path"]) {
            return p;
        }
        if let Some(t) = self.root_attr(&["http.target"]) {
            return strip_query(&t).to_string();
        }
        self.root_attr(&["url.full", "http.url"])
            .map(|u| strip_query(split_url(&u).1).to_string())
            .unwrap_or_default()
    }

    /// `server.address`, else `http.host` or `net.host.name` (port removed), else the host
    /// of `url.full` / `http.url`.
    fn host(&self) -> String {
        if let Some(h) = self.root_attr(&["server.address", "http.host", "net.host.name"]) {
            return strip_port(&h).to_string();
        }
        self.root_attr(&["url.full", "http.url"])
            .map(|u| strip_port(split_url(&u).0).to_string())
            .unwrap_or_default()
    }

    /// X-Ray's origin names, derived from the resource's `cloud.platform`.
    fn service_type(&self) -> String {
        let platform = self
            .root
            .and_then(|(r, _)| find_str(&r.attributes, &["cloud.platform"]))
            .unwrap_or_default();
        match platform.as_str() {
            "aws_ec2" => "AWS::EC2::Instance",
            "aws_ecs" => "AWS::ECS::Container",
            "aws_eks" => "AWS::EKS::Container",
            "aws_elastic_beanstalk" => "AWS::ElasticBeanstalk::Environment",
            "aws_lambda" => "AWS::Lambda::Function",
            _ => "",
        }
        .to_string()
    }

    /// The ARN of the resource the service runs on, when the resource names one.
    fn resource_arn(&self) -> String {
        self.root
            .and_then(|(r, _)| {
                find_str(
                    &r.attributes,
                    &["cloud.resource_id", "aws.ecs.task.arn", "faas.id"],
                )
            })
            .unwrap_or_default()
    }

    /// True if some span of the trace has `key` (or its alias) with a value matching `glob`.
    pub fn any_span_attribute_matches(&self, key: &str, glob: &Glob) -> bool {
        let alias = ALIASES.iter().find_map(|&(a, b)| {
            if a == key {
                Some(b)
            } else if b == key {
                Some(a)
            } else {
                None
            }
        });
        self.spans()
            .flat_map(|s| &s.attributes)
            .filter(|kv| kv.key == key || Some(kv.key.as_str()) == alias)
            .filter_map(|kv| kv.value.as_ref().and_then(render))
            .any(|v| glob.matches(&v))
    }

    /// Every matcher of `rule` accepts this trace.
    pub fn matches(&self, rule: &Rule) -> bool {
        let f = &self.fields;
        rule.service_name.matches(&f.service_name)
            && rule.http_method.matches(&f.http_method)
            && rule.url_path.matches(&f.url_path)
            && rule.host.matches(&f.host)
            && rule.service_type.matches(&f.service_type)
            && rule.resource_arn.matches(&f.resource_arn)
            && rule
                .attributes
                .iter()
                .all(|(k, g)| self.any_span_attribute_matches(k, g))
    }

    fn root_attr(&self, keys: &[&str]) -> Option<String> {
        self.root.and_then(|(_, s)| find_str(&s.attributes, keys))
    }
}

/// An HTTP status code from 500 to 599, as an integer or as text.
fn is_5xx(v: &AnyValue) -> bool {
    let code = match v.value.as_ref() {
        Some(Value::IntValue(i)) => *i,
        Some(Value::StringValue(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    };
    (500..600).contains(&code)
}

/// The first of `keys` (in order of preference) present in `attributes`, as text.
fn find_str(attributes: &[KeyValue], keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| {
        attributes
            .iter()
            .find(|kv| kv.key == *k)
            .and_then(|kv| kv.value.as_ref().and_then(render))
    })
}

/// Scalar attribute values as the text a glob is matched against.
fn render(v: &AnyValue) -> Option<String> {
    match v.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `(host[:port], /path?query)` of an absolute URL; a relative one is all path.
fn split_url(url: &str) -> (&str, &str) {
    match url.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        },
        None => ("", url),
    }
}

fn strip_query(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}

/// `example.com:8080` → `example.com`; IPv6 literals without brackets are left alone.
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']')) =>
        {
            h
        }
        _ => host,
    }
}
