//! Which log group and stream a log record goes to: its `log.category` (or the configured
//! attribute) picks a category's group and retention, else the default group; the names
//! are templates over the record's and resource's attributes (`template.rs`). Shared by
//! `awscloudwatchlogs` (PutLogEvents) and `otlphttp` (CloudWatch Logs' OTLP endpoint), so
//! a record lands in the same group whichever way it is sent.

use std::collections::BTreeMap;

use serde::Deserialize;

use aurastream_proto::otlp::common::KeyValue;
use aurastream_proto::otlp::common::any_value::Value as AnyValueKind;
use aurastream_proto::otlp::logs::LogRecord;
use aurastream_proto::otlp::resource::Resource;

use super::target::{LogTarget, validate_retention};
use crate::component::validate::Invalid;
use prometheus_client::metrics::counter::Counter;

use super::template::{Attributes, GroupLimit, NameKind, Router, Template};

/// Where the records of one log category go.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CategoryConfig {
    pub log_group_name: String,
    #[serde(default)]
    pub retention_in_days: u32,
}

/// Checks where events go, as every exporter to CloudWatch Logs configures it: the default
/// group and stream templates, the retention, and each category's group and retention.
pub fn validate_routing(
    log_group_name: &str,
    log_stream_name: &str,
    log_retention: u32,
    categories: &BTreeMap<String, CategoryConfig>,
) -> Result<(), Invalid> {
    Template::parse(log_group_name, NameKind::Group)
        .map_err(|e| Invalid::unparsable("log_group_name", log_group_name, e))?;
    Template::parse(log_stream_name, NameKind::Stream)
        .map_err(|e| Invalid::unparsable("log_stream_name", log_stream_name, e))?;
    validate_retention(log_retention).map_err(|e| Invalid::cause("log_retention", e))?;
    for (name, c) in categories {
        Template::parse(&c.log_group_name, NameKind::Group).map_err(|e| {
            Invalid::unparsable(
                format!("categories.{name}.log_group_name"),
                &c.log_group_name,
                e,
            )
        })?;
        validate_retention(c.retention_in_days)
            .map_err(|e| Invalid::cause(format!("categories.{name}.retention_in_days"), e))?;
    }
    Ok(())
}

/// The monitoring guide's log categories and retention (`7 years` = 2557 days, the nearest
/// value CloudWatch accepts; `1 year` = 365 days).
pub fn seed_categories() -> BTreeMap<String, CategoryConfig> {
    [
        ("security", 2557),
        ("audit", 2557),
        ("application", 30),
        ("performance", 90),
        ("business", 365),
    ]
    .into_iter()
    .map(|(name, days)| {
        (
            name.to_string(),
            CategoryConfig {
                log_group_name: format!("/aws/aurastream/{name}"),
                retention_in_days: days,
            },
        )
    })
    .collect()
}

/// A string attribute of the record, else of its resource.
pub fn record_attribute<'a>(
    record: &'a LogRecord,
    resource: Option<&'a Resource>,
    key: &str,
) -> Option<&'a str> {
    let find = |kvs: &'a [KeyValue]| {
        kvs.iter().find(|kv| kv.key == key).and_then(|kv| {
            match kv.value.as_ref()?.value.as_ref()? {
                AnyValueKind::StringValue(s) => Some(s.as_str()),
                _ => None,
            }
        })
    };
    find(&record.attributes).or_else(|| resource.and_then(|r| find(&r.attributes)))
}

/// One exporter's routing: the default group, the categories, and its stream template and
/// group cap (in `router`).
pub struct CategoryRouter {
    default_group: Template,
    default_retention: u32,
    category_attribute: String,
    /// Each category's group template and retention, by lower-case category.
    categories: BTreeMap<String, (Template, u32)>,
    router: Router,
}

impl CategoryRouter {
    pub fn new(
        default_group: &str,
        default_retention: u32,
        category_attribute: &str,
        categories: &BTreeMap<String, CategoryConfig>,
        stream_name: &str,
        max_log_groups: usize,
        group_overflow: Counter,
    ) -> CategoryRouter {
        CategoryRouter {
            default_group: Template::new(default_group, NameKind::Group),
            default_retention,
            category_attribute: category_attribute.to_string(),
            categories: categories
                .iter()
                .map(|(name, c)| {
                    (
                        name.to_ascii_lowercase(),
                        (
                            Template::new(&c.log_group_name, NameKind::Group),
                            c.retention_in_days,
                        ),
                    )
                })
                .collect(),
            router: Router::new(
                Template::new(stream_name, NameKind::Stream),
                GroupLimit::new(max_log_groups, group_overflow),
            ),
        }
    }

    /// The group, stream and retention for one record: its category's group if the
    /// category is configured, else the default group. No entity is set.
    pub fn route(&self, record: &LogRecord, resource: Option<&Resource>) -> LogTarget {
        let (group, retention_days) = record_attribute(record, resource, &self.category_attribute)
            .map(str::to_ascii_lowercase)
            .and_then(|c| self.categories.get(&c))
            .map(|(t, days)| (t, *days))
            .unwrap_or((&self.default_group, self.default_retention));
        let attrs = Attributes {
            record: &record.attributes,
            resource: resource.map_or(&[], |r| r.attributes.as_slice()),
        };
        self.router.target(group, &attrs, retention_days)
    }
}
