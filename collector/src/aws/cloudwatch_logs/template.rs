//! Log group and stream names from templates over resource and record attributes, shared
//! by the `awscloudwatchlogs` and `awsemf` exporters (and read by `awsxray` to list the
//! groups a service logs to).
//!
//! A template is literal text with `{key}` placeholders:
//!
//! - `key` is one of the OpenTelemetry Collector's placeholder names (`ServiceName`,
//!   `ServiceNamespace`, `TaskId`, `TaskDefinitionFamily`, `ClusterName`,
//!   `ContainerInstanceId`, `FunctionName`, `InstanceId`, `NodeName`): filled from the
//!   resource attributes the Collector's AWS exporters use for it (an ARN gives its last
//!   path segment), so ADOT configurations keep working;
//! - any other `key` is an attribute key (`service.name`, `aws.ecs.cluster.name`,
//!   `log.category`): the log record's attribute (`awscloudwatchlogs` only), else the
//!   resource's;
//! - `{key:-fallback}` names the value used when the attribute is missing; without one a
//!   missing attribute becomes `undefined`, as in the Collector, so events still land in a
//!   predictable group instead of being dropped.
//!
//! Attribute values are made valid for CloudWatch Logs rather than rejected there: in a
//! group name every character outside `[A-Za-z0-9._/#-]` becomes `_`, in a stream name `:`
//! and `*` do, and names are cut at 512 bytes. (`unknown_service:python`, the Python SDK's
//! default service name, would otherwise make every PutLogEvents call fail.)
//!
//! A template over attributes can name an unbounded number of groups (a request id in the
//! template, a misconfigured client). [`GroupLimit`] caps the distinct groups an exporter
//! creates; past the cap, events go to the overflow group (the template with every
//! placeholder replaced by `overflow`) and the `log_group_overflow` event is counted.

use std::collections::HashSet;
use std::sync::Mutex;

use aurastream_proto::otlp::common::KeyValue;
use aurastream_proto::otlp::common::any_value::Value as AnyValueKind;
use prometheus_client::metrics::counter::Counter;

use super::target::LogTarget;

/// CloudWatch's limit on group and stream names, in bytes.
pub const MAX_NAME_BYTES: usize = 512;
/// What a missing attribute without a fallback becomes (as in the Collector).
pub const MISSING: &str = "undefined";
/// What every placeholder becomes in the group that takes events past the cap.
pub const OVERFLOW: &str = "overflow";
/// Distinct log groups an exporter routes to by default before using the overflow group.
pub const DEFAULT_MAX_LOG_GROUPS: usize = 200;

/// The Collector's placeholder names and the resource attributes that fill them (first one
/// present wins): the semantic-convention names, plus the names the Collector's own
/// receivers set where the conventions have none (`aws.ecs.cluster.name`,
/// `aws.ecs.container.instance.id`, `aws.lambda.function.name`).
const NAMED_PLACEHOLDERS: [(&str, &[&str]); 9] = [
    ("ServiceName", &["service.name"]),
    ("ServiceNamespace", &["service.namespace"]),
    ("TaskId", &["aws.ecs.task.id", "aws.ecs.task.arn"]),
    ("TaskDefinitionFamily", &["aws.ecs.task.family"]),
    (
        "ClusterName",
        &[
            "aws.ecs.cluster.name",
            "aws.ecs.cluster.arn",
            "k8s.cluster.name",
        ],
    ),
    (
        "ContainerInstanceId",
        &["aws.ecs.container.instance.id", "aws.ecs.container.arn"],
    ),
    ("FunctionName", &["faas.name", "aws.lambda.function.name"]),
    ("InstanceId", &["host.id"]),
    ("NodeName", &["k8s.node.name"]),
];

/// Which kind of name a template produces: the characters CloudWatch allows differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// `[A-Za-z0-9._/#-]`, 1 to 512 bytes.
    Group,
    /// Anything but `:` and `*`, 1 to 512 bytes.
    Stream,
}

impl NameKind {
    fn allowed(self, c: char) -> bool {
        match self {
            NameKind::Group => c.is_ascii_alphanumeric() || "._/#-".contains(c),
            NameKind::Stream => c != ':' && c != '*',
        }
    }
}

/// A template that cannot be used, said so that the operator can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("must not be empty")]
    Empty,
    #[error("`{{` at byte {0} is not closed by `}}`")]
    Unclosed(usize),
    #[error("`}}` at byte {0} closes no `{{`")]
    Unopened(usize),
    #[error("empty placeholder `{{}}` at byte {0}")]
    EmptyKey(usize),
    #[error(
        "`{0}` is not allowed in a log group name (CloudWatch allows letters, digits and `._/#-`)"
    )]
    GroupChar(char),
    #[error("`{0}` is not allowed in a log stream name")]
    StreamChar(char),
    #[error("is longer than {MAX_NAME_BYTES} bytes")]
    TooLong,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Placeholder {
        key: String,
        fallback: Option<String>,
    },
}

/// A parsed group or stream name template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    kind: NameKind,
    parts: Vec<Part>,
}

/// The attributes a template is filled from: the record's (if any), then the resource's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attributes<'a> {
    pub record: &'a [KeyValue],
    pub resource: &'a [KeyValue],
}

impl<'a> Attributes<'a> {
    /// Resource attributes only (EMF documents, X-Ray segments).
    pub fn resource(resource: &'a [KeyValue]) -> Attributes<'a> {
        Attributes {
            record: &[],
            resource,
        }
    }

    fn get(&self, key: &str) -> Option<String> {
        if let Some((_, keys)) = NAMED_PLACEHOLDERS.iter().find(|(name, _)| *name == key) {
            // ARNs: the id is the part after the last `/`.
            return keys
                .iter()
                .find_map(|k| scalar(self.resource, k))
                .map(|v| v.rsplit('/').next().unwrap_or(&v).to_string());
        }
        scalar(self.record, key).or_else(|| scalar(self.resource, key))
    }
}

/// A non-empty scalar attribute as text.
fn scalar(list: &[KeyValue], key: &str) -> Option<String> {
    let value = list
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    let text = match value {
        AnyValueKind::StringValue(s) => s.clone(),
        AnyValueKind::IntValue(i) => i.to_string(),
        AnyValueKind::DoubleValue(d) => d.to_string(),
        AnyValueKind::BoolValue(b) => b.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

impl Template {
    /// Parses `text`, checking that it can only produce valid names of `kind`: what
    /// configuration validation runs.
    pub fn parse(text: &str, kind: NameKind) -> Result<Template, TemplateError> {
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while !rest.is_empty() {
            let open = rest.find('{');
            let close = rest.find('}');
            if let Some(at) = close.filter(|c| open.is_none_or(|o| *c < o)) {
                return Err(TemplateError::Unopened(offset + at));
            }
            let Some(open) = open else {
                parts.push(Part::Text(literal(rest, kind)?));
                break;
            };
            if open > 0 {
                parts.push(Part::Text(literal(&rest[..open], kind)?));
            }
            let inner_start = open + 1;
            let len = rest[inner_start..]
                .find(['{', '}'])
                .filter(|i| rest[inner_start + i..].starts_with('}'))
                .ok_or(TemplateError::Unclosed(offset + open))?;
            let inner = &rest[inner_start..inner_start + len];
            let (key, fallback) = match inner.split_once(":-") {
                Some((key, fallback)) => (key.trim(), Some(literal(fallback, kind)?)),
                None => (inner.trim(), None),
            };
            if key.is_empty() {
                return Err(TemplateError::EmptyKey(offset + open));
            }
            parts.push(Part::Placeholder {
                key: key.to_string(),
                fallback,
            });
            let consumed = inner_start + len + 1;
            rest = &rest[consumed..];
            offset += consumed;
        }
        Ok(Template { kind, parts })
    }

    /// The template of a validated configuration. Should `text` not have been validated, it
    /// is taken as literal text (and CloudWatch will say what is wrong with the name).
    pub fn new(text: &str, kind: NameKind) -> Template {
        Template::parse(text, kind).unwrap_or_else(|_| Template {
            kind,
            parts: vec![Part::Text(text.to_string())],
        })
    }

    /// Whether the template has no placeholder (it always names the same group).
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The name for `attrs`; a missing attribute takes its fallback, else `undefined`.
    pub fn render(&self, attrs: &Attributes<'_>) -> String {
        self.fill(|key, fallback| {
            Some(
                attrs
                    .get(key)
                    .or_else(|| fallback.map(str::to_string))
                    .unwrap_or_else(|| MISSING.to_string()),
            )
        })
        .unwrap_or_default()
    }

    /// The name for `attrs`, or `None` when an attribute without a fallback is missing:
    /// for naming a group a service *does* write to (X-Ray's `aws.cloudwatch_logs`).
    #[cfg(any(test, feature = "awsxray"))]
    pub fn render_known(&self, attrs: &Attributes<'_>) -> Option<String> {
        self.fill(|key, fallback| attrs.get(key).or_else(|| fallback.map(str::to_string)))
    }

    /// The template with every placeholder replaced by `overflow`.
    pub fn overflow(&self) -> String {
        self.fill(|_, _| Some(OVERFLOW.to_string()))
            .unwrap_or_default()
    }

    fn fill(&self, mut value: impl FnMut(&str, Option<&str>) -> Option<String>) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Placeholder { key, fallback } => {
                    let v = value(key, fallback.as_deref())?;
                    out.extend(
                        v.chars()
                            .map(|c| if self.kind.allowed(c) { c } else { '_' }),
                    );
                }
            }
        }
        Some(truncate(out))
    }
}

/// `text` as a literal part of a `kind` name, if CloudWatch allows its characters.
fn literal(text: &str, kind: NameKind) -> Result<String, TemplateError> {
    if let Some(c) = text.chars().find(|c| !kind.allowed(*c)) {
        return Err(match kind {
            NameKind::Group => TemplateError::GroupChar(c),
            NameKind::Stream => TemplateError::StreamChar(c),
        });
    }
    if text.len() > MAX_NAME_BYTES {
        return Err(TemplateError::TooLong);
    }
    Ok(text.to_string())
}

/// `name` cut to CloudWatch's 512 bytes, at a character boundary.
fn truncate(mut name: String) -> String {
    if name.len() > MAX_NAME_BYTES {
        let mut end = MAX_NAME_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// The cap on the distinct log groups one exporter routes to. Groups are remembered for
/// the life of the process: a group once in use stays usable.
pub struct GroupLimit {
    max: usize,
    seen: Mutex<HashSet<String>>,
    overflowed: Counter,
}

impl GroupLimit {
    /// `overflowed` counts events sent to an overflow group (`log_group_overflow`).
    pub fn new(max: usize, overflowed: Counter) -> GroupLimit {
        GroupLimit {
            max,
            seen: Mutex::new(HashSet::new()),
            overflowed,
        }
    }

    /// The group for an event whose template renders to `group`: `group` itself while the
    /// cap allows, else the template's overflow group (counted).
    fn admit(&self, template: &Template, group: String) -> String {
        if template.is_static() {
            return group;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(&group) {
            return group;
        }
        if seen.len() < self.max {
            seen.insert(group.clone());
            return group;
        }
        drop(seen);
        let overflow = template.overflow();
        // Once per exporter: the counter says how often since.
        if self.overflowed.inc() == 0 {
            tracing::warn!(group = %group, overflow = %overflow, max_log_groups = self.max,
                "log group cap reached; events of further groups go to the overflow group \
                 (counted as component event log_group_overflow)");
        }
        overflow
    }
}

/// Turns templates into targets for one exporter: its stream template and group cap.
pub struct Router {
    stream: Template,
    limit: GroupLimit,
}

impl Router {
    pub fn new(stream: Template, limit: GroupLimit) -> Router {
        Router { stream, limit }
    }

    /// Where an event with `attrs` goes when its group template is `group`.
    pub fn target(
        &self,
        group: &Template,
        attrs: &Attributes<'_>,
        retention_days: u32,
    ) -> LogTarget {
        let name = group.render(attrs);
        LogTarget {
            group: self.limit.admit(group, name),
            stream: self.stream.render(attrs),
            retention_days,
            entity: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurastream_proto::otlp::common::AnyValue;

    fn kvs(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
        pairs
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.to_string(),
                value: Some(AnyValue {
                    value: Some(AnyValueKind::StringValue(v.to_string())),
                }),
                ..Default::default()
            })
            .collect()
    }

    fn group(t: &str) -> Template {
        Template::parse(t, NameKind::Group).expect("valid template")
    }

    #[test]
    fn attribute_placeholders_come_from_the_record_then_the_resource() {
        let resource = kvs(&[
            ("service.name", "sentiment-api"),
            ("aws.ecs.cluster.name", "prod"),
            ("log.category", "resource-level"),
        ]);
        let record = kvs(&[("log.category", "security")]);
        let attrs = Attributes {
            record: &record,
            resource: &resource,
        };
        assert_eq!(
            group("/aws/ecs/{aws.ecs.cluster.name}").render(&attrs),
            "/aws/ecs/prod"
        );
        assert_eq!(
            group("/app/{service.name}/{log.category}").render(&attrs),
            "/app/sentiment-api/security"
        );
        assert_eq!(
            group("/app/{log.category}").render(&Attributes::resource(&resource)),
            "/app/resource-level"
        );
    }

    /// The Collector's placeholders read the semantic conventions' attribute names.
    #[test]
    fn collector_placeholders_keep_working() {
        use opentelemetry_semantic_conventions::attribute as sc;
        let resource = kvs(&[
            (sc::SERVICE_NAME, "sentiment-api"),
            (
                sc::AWS_ECS_TASK_ARN,
                "arn:aws:ecs:us-east-1:1:task/cluster/abc123",
            ),
            (
                sc::AWS_ECS_CLUSTER_ARN,
                "arn:aws:ecs:us-east-1:1:cluster/prod",
            ),
            (sc::K8S_NODE_NAME, "ip-10-0-0-1"),
            (sc::AWS_ECS_TASK_FAMILY, "web"),
            (
                sc::AWS_ECS_CONTAINER_ARN,
                "arn:aws:ecs:us-east-1:1:container-instance/c/ci-7",
            ),
            (sc::FAAS_NAME, "pay"),
            (sc::HOST_ID, "i-0abc"),
            (sc::SERVICE_NAMESPACE, "shop"),
        ]);
        assert_eq!(
            group("{ServiceNamespace}/{TaskDefinitionFamily}/{ContainerInstanceId}/{FunctionName}/{InstanceId}")
                .render(&Attributes::resource(&resource)),
            "shop/web/ci-7/pay/i-0abc"
        );
        let attrs = Attributes::resource(&resource);
        assert_eq!(
            group("/aws/ecs/{ClusterName}/{ServiceName}").render(&attrs),
            "/aws/ecs/prod/sentiment-api"
        );
        let stream = Template::parse("{TaskId}/{NodeName}", NameKind::Stream).expect("valid");
        assert_eq!(stream.render(&attrs), "abc123/ip-10-0-0-1");
        assert_eq!(group("{FunctionName}-x").render(&attrs), "pay-x");
        assert_eq!(
            group("{FunctionName}-x").render(&Attributes::default()),
            "undefined-x"
        );
    }

    #[test]
    fn missing_attributes_take_the_fallback_or_undefined() {
        let attrs = Attributes::default();
        assert_eq!(
            group("/aws/ecs/{aws.ecs.cluster.name:-default}").render(&attrs),
            "/aws/ecs/default"
        );
        assert_eq!(
            group("/aws/ecs/{aws.ecs.cluster.name}").render(&attrs),
            "/aws/ecs/undefined"
        );
        assert_eq!(group("/aws/{x}").render_known(&attrs), None);
        assert_eq!(
            group("/aws/{x:-y}").render_known(&attrs),
            Some("/aws/y".to_string())
        );
        assert_eq!(group("plain").render(&attrs), "plain");
    }

    #[test]
    fn values_are_made_valid_for_cloudwatch() {
        let resource = kvs(&[("service.name", "unknown_service:python *x")]);
        let attrs = Attributes::resource(&resource);
        assert_eq!(
            group("/svc/{service.name}").render(&attrs),
            "/svc/unknown_service_python__x"
        );
        let stream = Template::parse("{service.name}", NameKind::Stream).expect("valid");
        assert_eq!(stream.render(&attrs), "unknown_service_python _x");
        let long = "a".repeat(600);
        let resource = kvs(&[("service.name", &long)]);
        assert_eq!(
            group("/{service.name}")
                .render(&Attributes::resource(&resource))
                .len(),
            MAX_NAME_BYTES
        );
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        let err = |t: &str, kind| Template::parse(t, kind).expect_err(t).to_string();
        assert_eq!(err("", NameKind::Group), "must not be empty");
        assert_eq!(
            err("/a/{service.name", NameKind::Group),
            "`{` at byte 3 is not closed by `}`"
        );
        assert_eq!(err("/a/}", NameKind::Group), "`}` at byte 3 closes no `{`");
        assert_eq!(
            err("/a/{}", NameKind::Group),
            "empty placeholder `{}` at byte 3"
        );
        assert!(err("/a b/{x}", NameKind::Group).contains("` ` is not allowed"));
        assert!(err("s:{x}", NameKind::Stream).contains("`:` is not allowed"));
        assert!(Template::parse("s {x}", NameKind::Stream).is_ok());
    }

    #[test]
    fn groups_past_the_cap_go_to_the_overflow_group_and_are_counted() {
        let counter = Counter::default();
        let router = Router::new(
            Template::parse("s", NameKind::Stream).expect("valid"),
            GroupLimit::new(2, counter.clone()),
        );
        let tpl = group("/app/{service.name}");
        let fixed = group("/app/fixed");
        let target = |svc: &str| {
            let r = kvs(&[("service.name", svc)]);
            router.target(&tpl, &Attributes::resource(&r), 30).group
        };
        assert_eq!(target("a"), "/app/a");
        assert_eq!(target("b"), "/app/b");
        assert_eq!(target("c"), "/app/overflow");
        // Groups in use stay usable; a static group is never capped.
        assert_eq!(target("a"), "/app/a");
        assert_eq!(
            router.target(&fixed, &Attributes::default(), 30).group,
            "/app/fixed"
        );
        assert_eq!(counter.get(), 1);
        let t = router.target(&tpl, &Attributes::default(), 7);
        assert_eq!((t.group.as_str(), t.retention_days), ("/app/overflow", 7));
        assert_eq!(counter.get(), 2);
    }
}
