//! Authorization of sensitive log routes (issue 15): a log record whose category (its
//! `log.category`, the attribute the `awscloudwatchlogs` exporter routes by) is sensitive —
//! the seed's `security`, `audit` and `business` groups, kept for years — is accepted only
//! from a caller allowed that category, by its authenticated name (the `bearertokenauth`
//! extension id) or its client certificate subject (mTLS). Any other such record is refused
//! (reported back through OTLP partial success, counted as refused `unauthorized`) or
//! re-routed to `application`, as configured.
//!
//! Enforced at the door, where the caller is known, so nothing downstream needs to carry
//! who sent a record.

use std::collections::{BTreeMap, BTreeSet};

use aurastream_proto::otlp::common::{AnyValue, KeyValue, any_value};
use serde::Deserialize;

use crate::component::validate::Invalid;
use crate::model::SignalData;
use crate::net::authenticate::Caller;

/// ```yaml
/// receivers:
///   otlp:
///     authorization:
///       sensitive_categories: [security, audit, business]   # the default
///       allow:
///         "bearertokenauth/audit": [audit, security]          # an extension id
///         "CN=billing,O=example": [business]                  # a client certificate subject
///       on_denied: refuse                                     # or reroute (to reroute_to)
///       reroute_to: application
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthorizationConfig {
    pub sensitive_categories: Vec<String>,
    pub category_attribute: String,
    /// Caller name → the sensitive categories it may write.
    pub allow: BTreeMap<String, Vec<String>>,
    pub on_denied: OnDenied,
    pub reroute_to: String,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnDenied {
    #[default]
    Refuse,
    Reroute,
}

impl Default for AuthorizationConfig {
    fn default() -> Self {
        AuthorizationConfig {
            sensitive_categories: vec!["security".into(), "audit".into(), "business".into()],
            category_attribute: "log.category".into(),
            allow: BTreeMap::new(),
            on_denied: OnDenied::Refuse,
            reroute_to: "application".into(),
        }
    }
}

impl AuthorizationConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        let sensitive: BTreeSet<String> = self
            .sensitive_categories
            .iter()
            .map(|c| c.to_lowercase())
            .collect();
        if sensitive.contains(&self.reroute_to.to_lowercase()) {
            return Err(Invalid::value(
                "reroute_to",
                &self.reroute_to,
                "is itself a sensitive category",
            ));
        }
        for (caller, categories) in &self.allow {
            for c in categories {
                if !sensitive.contains(&c.to_lowercase()) {
                    return Err(Invalid::value(
                        format!("allow.{caller}"),
                        c,
                        "is not in sensitive_categories (every other category is open to all)",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What [`Authorization::apply`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub refused: usize,
    pub rerouted: usize,
}

pub struct Authorization {
    sensitive: BTreeSet<String>,
    attribute: String,
    allow: BTreeMap<String, BTreeSet<String>>,
    on_denied: OnDenied,
    reroute_to: String,
}

impl Authorization {
    pub fn new(config: &AuthorizationConfig) -> Authorization {
        let lower = |v: &[String]| v.iter().map(|c| c.to_lowercase()).collect::<BTreeSet<_>>();
        Authorization {
            sensitive: lower(&config.sensitive_categories),
            attribute: config.category_attribute.clone(),
            allow: config
                .allow
                .iter()
                .map(|(k, v)| (k.clone(), lower(v)))
                .collect(),
            on_denied: config.on_denied,
            reroute_to: config.reroute_to.clone(),
        }
    }

    fn allowed(&self, caller: &Caller, category: &str) -> bool {
        caller
            .names()
            .any(|n| self.allow.get(n).is_some_and(|c| c.contains(category)))
    }

    /// Refuses (removes) or re-routes the log records `caller` may not write.
    pub fn apply(&self, data: &mut SignalData, caller: &Caller) -> Outcome {
        let mut outcome = Outcome::default();
        let SignalData::Logs(resource_logs) = data else {
            return outcome;
        };
        for rl in resource_logs.iter_mut() {
            let resource_category = rl
                .resource
                .as_ref()
                .and_then(|r| string_attribute(&r.attributes, &self.attribute));
            for sl in rl.scope_logs.iter_mut() {
                sl.log_records.retain_mut(|record| {
                    let category = string_attribute(&record.attributes, &self.attribute)
                        .or(resource_category.clone())
                        .map(|c| c.to_lowercase());
                    let Some(category) = category.filter(|c| self.sensitive.contains(c)) else {
                        return true;
                    };
                    if self.allowed(caller, &category) {
                        return true;
                    }
                    match self.on_denied {
                        OnDenied::Refuse => {
                            outcome.refused += 1;
                            false
                        }
                        OnDenied::Reroute => {
                            set_string_attribute(
                                &mut record.attributes,
                                &self.attribute,
                                &self.reroute_to,
                            );
                            outcome.rerouted += 1;
                            true
                        }
                    }
                });
            }
        }
        outcome
    }
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        }
    })
}

/// Sets the record's own attribute, which the exporter reads before the resource's.
fn set_string_attribute(attributes: &mut Vec<KeyValue>, key: &str, value: &str) {
    let value = Some(AnyValue {
        value: Some(any_value::Value::StringValue(value.to_string())),
    });
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = value,
        None => attributes.push(KeyValue {
            key: key.to_string(),
            value,
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
    use aurastream_proto::otlp::resource::Resource;

    use super::*;
    use crate::component::auth::Principal;
    use crate::net::server::PeerSubject;

    fn kv(key: &str, value: &str) -> KeyValue {
        let mut attributes = Vec::new();
        set_string_attribute(&mut attributes, key, value);
        attributes.pop().unwrap()
    }

    /// Records in categories `application`, `audit`, `security`, and one whose category is
    /// on its resource (`business`).
    fn logs() -> SignalData {
        let record = |c: &str| LogRecord {
            attributes: vec![kv("log.category", c)],
            ..Default::default()
        };
        SignalData::Logs(vec![
            ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record("application"), record("Audit"), record("security")],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("log.category", "business")],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default()],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ])
    }

    fn categories(data: &SignalData) -> Vec<String> {
        let SignalData::Logs(rl) = data else { panic!() };
        rl.iter()
            .flat_map(|r| {
                let resource = r
                    .resource
                    .as_ref()
                    .and_then(|r| string_attribute(&r.attributes, "log.category"));
                r.scope_logs.iter().flat_map(move |s| {
                    let resource = resource.clone();
                    s.log_records.iter().map(move |l| {
                        string_attribute(&l.attributes, "log.category")
                            .or(resource.clone())
                            .unwrap()
                    })
                })
            })
            .collect()
    }

    fn config(on_denied: OnDenied) -> AuthorizationConfig {
        AuthorizationConfig {
            allow: BTreeMap::from([
                (
                    "bearertokenauth/audit".to_string(),
                    vec!["audit".to_string()],
                ),
                ("CN=billing".to_string(), vec!["business".to_string()]),
            ]),
            on_denied,
            ..Default::default()
        }
    }

    #[test]
    fn only_allowed_callers_write_sensitive_categories() {
        let refuse = Authorization::new(&config(OnDenied::Refuse));
        let mut data = logs();
        let anonymous = Caller::default();
        assert_eq!(
            refuse.apply(&mut data, &anonymous),
            Outcome {
                refused: 3,
                rerouted: 0
            }
        );
        assert_eq!(categories(&data), ["application"]);

        let auditor = Caller {
            principal: Some(Principal {
                subject: "bearertokenauth/audit".into(),
            }),
            certificate: Some(PeerSubject("CN=billing".into())),
        };
        let mut data = logs();
        assert_eq!(
            refuse.apply(&mut data, &auditor).refused,
            1,
            "security only"
        );
        assert_eq!(categories(&data), ["application", "Audit", "business"]);

        let reroute = Authorization::new(&config(OnDenied::Reroute));
        let mut data = logs();
        assert_eq!(
            reroute.apply(&mut data, &anonymous),
            Outcome {
                refused: 0,
                rerouted: 3
            }
        );
        assert_eq!(
            categories(&data),
            ["application", "application", "application", "application"]
        );
    }

    #[test]
    fn options_are_checked() {
        let mut c = AuthorizationConfig {
            reroute_to: "audit".into(),
            ..Default::default()
        };
        assert!(matches!(
            c.validate(),
            Err(Invalid::Value { option, .. }) if option == "reroute_to"
        ));
        c.reroute_to = "application".into();
        c.allow.insert("x".into(), vec!["application".into()]);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("not in sensitive_categories")
        );
    }
}
