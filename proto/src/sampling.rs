//! X-Ray sampling-rule documents, as plain data.
//!
//! Three shapes are in use and the collector accepts all of them:
//!
//! * [`LocalSamplingRules`]: AuraStream's own rule document (the monitoring guide's
//!   `SAMPLING_RULES`: `version` 2, `rules` with `service_name` and `attributes`) and the
//!   X-Ray SDK's local rules file (`version` 1 with `service_name` or 2 with `host`, plus a
//!   `default` rule). They share one shape: the SDK file is the guide's document plus
//!   `host` and `default`, so one struct reads both.
//! * [`GetSamplingRulesOutput`]: the response of X-Ray's `GetSamplingRules` API, as written
//!   by `aws xray get-sampling-rules`.
//! * A bare JSON list of [`SamplingRule`], as kept in version control next to
//!   CloudFormation's `AWS::XRay::SamplingRule`.
//!
//! [`SamplingRulesDocument`] is whichever of them a file holds; the collector tells them
//! apart by their top-level keys. Values are not checked here (a negative `fixed_target`
//! parses): the collector validates them and says what is wrong.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The guide's rule document or the X-Ray SDK's local rules file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSamplingRules {
    /// 2 for the guide's document and the SDK's current format; 1 for the SDK's older one.
    pub version: i64,
    #[serde(default)]
    pub rules: Vec<LocalSamplingRule>,
    /// The SDK file's catch-all, applied when no rule matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<LocalDefaultRule>,
}

/// One rule of a local document. Matchers left out match anything (`*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSamplingRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_path: Option<String>,
    /// Traces per second kept before `rate` applies.
    pub fixed_target: i64,
    /// Share of the traces beyond `fixed_target` that is kept, in [0, 1].
    pub rate: f64,
    /// Span attribute name to glob; every entry must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Adaptive sampling: raise `rate` while the rule's error traces spike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_rate_boost: Option<LocalSamplingRateBoost>,
}

/// X-Ray's `SamplingRateBoost` in the local documents' snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSamplingRateBoost {
    /// The highest rate a boost may raise the rule to, in [0, 1].
    pub max_rate: f64,
    /// At most one boost starts within this many minutes.
    pub cooldown_window_minutes: i64,
}

/// The SDK file's `default` rule: matches everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDefaultRule {
    pub fixed_target: i64,
    pub rate: f64,
}

/// X-Ray's `GetSamplingRules` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSamplingRulesOutput {
    pub sampling_rule_records: Vec<SamplingRuleRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// One record of [`GetSamplingRulesOutput`]; the timestamps are kept as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamplingRuleRecord {
    pub sampling_rule: SamplingRule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<serde_json::Value>,
}

/// An X-Ray centralized sampling rule (API `SamplingRule`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingRule {
    #[serde(rename = "RuleName", default, skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    #[serde(rename = "RuleARN", default, skip_serializing_if = "Option::is_none")]
    pub rule_arn: Option<String>,
    /// 1 (evaluated first) to 9999; X-Ray's `Default` rule has 10000.
    #[serde(rename = "Priority")]
    pub priority: i64,
    /// Traces per second kept before `FixedRate` applies (for all instances together in
    /// X-Ray; per instance here, see the collector's sampling processor).
    #[serde(rename = "ReservoirSize")]
    pub reservoir_size: i64,
    #[serde(rename = "FixedRate")]
    pub fixed_rate: f64,
    #[serde(rename = "ServiceName")]
    pub service_name: String,
    #[serde(rename = "ServiceType")]
    pub service_type: String,
    #[serde(rename = "Host")]
    pub host: String,
    #[serde(rename = "HTTPMethod")]
    pub http_method: String,
    #[serde(rename = "URLPath")]
    pub url_path: String,
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    #[serde(
        rename = "Attributes",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub attributes: BTreeMap<String, String>,
    /// Format version of the rule; X-Ray only knows 1.
    #[serde(rename = "Version", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Adaptive sampling: how far and how often the rule's rate may be raised while its
    /// error traces spike.
    #[serde(
        rename = "SamplingRateBoost",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sampling_rate_boost: Option<SamplingRateBoost>,
}

/// X-Ray's `SamplingRateBoost` (API `SamplingRateBoost`): a temporary raise of a rule's
/// rate when its traces show anomalies (errors), at most `MaxRate`, at most once per
/// `CooldownWindowMinutes`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingRateBoost {
    /// The highest rate a boost may raise the rule to, in [0, 1].
    #[serde(rename = "MaxRate")]
    pub max_rate: f64,
    /// At most one boost starts within this many minutes.
    #[serde(rename = "CooldownWindowMinutes")]
    pub cooldown_window_minutes: i64,
}

/// Any of the accepted rule documents.
#[derive(Debug, Clone, PartialEq)]
pub enum SamplingRulesDocument {
    /// The guide's document or the SDK's local file.
    Local(LocalSamplingRules),
    /// Centralized rules, from a `GetSamplingRules` response or a bare list.
    Centralized(Vec<SamplingRule>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sdk_local_file_and_a_centralized_record() {
        let local: LocalSamplingRules = serde_json::from_str(
            r#"{"version": 2, "rules": [{"description": "d", "host": "*.example.com",
                "http_method": "GET", "url_path": "/api/*", "fixed_target": 2, "rate": 0.1}],
                "default": {"fixed_target": 1, "rate": 0.05}}"#,
        )
        .unwrap();
        assert_eq!(local.rules[0].host.as_deref(), Some("*.example.com"));
        assert_eq!(local.default.map(|d| d.fixed_target), Some(1));
        let out: GetSamplingRulesOutput = serde_json::from_str(
            r#"{"SamplingRuleRecords": [{"SamplingRule": {"RuleName": "Default",
                "RuleARN": "arn:aws:xray:us-east-1:123456789012:sampling-rule/Default",
                "Priority": 10000, "ReservoirSize": 1, "FixedRate": 0.05, "ServiceName": "*",
                "ServiceType": "*", "Host": "*", "HTTPMethod": "*", "URLPath": "*",
                "ResourceARN": "*", "Attributes": {}, "Version": 1},
                "CreatedAt": 0.0, "ModifiedAt": 1530558121.0}]}"#,
        )
        .unwrap();
        assert_eq!(out.sampling_rule_records[0].sampling_rule.priority, 10000);
    }

    #[test]
    fn sampling_rate_boost_reads_in_both_shapes() {
        let rule: SamplingRule = serde_json::from_str(
            r#"{"RuleName": "api", "Priority": 10, "ReservoirSize": 1, "FixedRate": 0.05,
                "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": "*",
                "URLPath": "*", "ResourceARN": "*",
                "SamplingRateBoost": {"MaxRate": 0.5, "CooldownWindowMinutes": 5}}"#,
        )
        .unwrap();
        assert_eq!(
            rule.sampling_rate_boost,
            Some(SamplingRateBoost {
                max_rate: 0.5,
                cooldown_window_minutes: 5
            })
        );
        let local: LocalSamplingRules = serde_json::from_str(
            r#"{"version": 2, "rules": [{"fixed_target": 1, "rate": 0.1,
                "sampling_rate_boost": {"max_rate": 0.8, "cooldown_window_minutes": 1}}]}"#,
        )
        .unwrap();
        assert_eq!(
            local.rules[0].sampling_rate_boost.map(|b| b.max_rate),
            Some(0.8)
        );
    }

    #[test]
    fn unknown_rule_fields_are_rejected() {
        let err = serde_json::from_str::<LocalSamplingRules>(
            r#"{"version": 2, "rules": [{"fixed_target": 1, "rate": 0.1, "sevice_name": "x"}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("sevice_name"), "{err}");
    }
}
