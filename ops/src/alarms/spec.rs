//! Alarm definitions as one comparable shape, read from a CloudFormation template (the
//! project's `deploy/cloudformation/aurastream-observability.yaml` by default, built into
//! the binary) or from what `DescribeAlarms` returns, so "intended" and "deployed" are
//! compared field by field.
//!
//! The template's short forms (`!Ref`, `!Sub`) and long forms (`Ref`, `Fn::Sub`) are
//! resolved from the parameters' defaults, `--param NAME=VALUE` overrides and
//! `AWS::Region`; a `Ref` to a resource (an SNS topic) stays a named placeholder that
//! `--topic-arn NAME=ARN` fills.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_yaml_ng::Value;

/// The template the project deploys, so `alarms verify` needs no checkout.
pub const BUILT_IN_TEMPLATE: &str =
    include_str!("../../../deploy/cloudformation/aurastream-observability.yaml");
pub const BUILT_IN_NAME: &str = "deploy/cloudformation/aurastream-observability.yaml";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MetricRef {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

impl std::fmt::Display for MetricRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.dimensions.is_empty() {
            let d: Vec<String> = self
                .dimensions
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            write!(f, "{{{}}}", d.join(","))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MathQuery {
    pub id: String,
    pub expression: Option<String>,
    pub metric: Option<MetricRef>,
    pub period: Option<i32>,
    pub stat: Option<String>,
    pub return_data: Option<bool>,
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Action {
    Arn(String),
    /// A resource of the template (its logical id), unknown until `--topic-arn`.
    Resource(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmSpec {
    pub name: String,
    pub description: Option<String>,
    pub metric: Option<MetricRef>,
    pub statistic: Option<String>,
    pub extended_statistic: Option<String>,
    pub period: Option<i32>,
    pub evaluation_periods: Option<i32>,
    pub threshold: Option<f64>,
    pub comparison: Option<String>,
    pub treat_missing_data: Option<String>,
    pub metrics: Vec<MathQuery>,
    pub alarm_actions: Vec<Action>,
    pub ok_actions: Vec<Action>,
}

impl AlarmSpec {
    /// Every metric the alarm reads.
    pub fn metrics_read(&self) -> Vec<MetricRef> {
        self.metric
            .iter()
            .cloned()
            .chain(self.metrics.iter().filter_map(|q| q.metric.clone()))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{0} is not YAML: {1}")]
    Yaml(String, serde_yaml_ng::Error),
    #[error("{0} has no Resources")]
    NoResources(String),
    #[error("{template}: alarm {logical_id}: {what}")]
    Alarm {
        template: String,
        logical_id: String,
        what: String,
    },
}

/// The alarms of a template, with parameters resolved.
pub fn from_template(
    name: &str,
    text: &str,
    overrides: &BTreeMap<String, String>,
    region: &str,
) -> Result<Vec<AlarmSpec>, TemplateError> {
    let doc: Value =
        serde_yaml_ng::from_str(text).map_err(|e| TemplateError::Yaml(name.into(), e))?;
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    if let Some(Value::Mapping(p)) = doc.get("Parameters") {
        for (k, v) in p {
            if let (Some(k), Some(d)) = (k.as_str(), v.get("Default").and_then(scalar)) {
                params.insert(k.into(), d);
            }
        }
    }
    params.extend(overrides.clone());
    params.insert("AWS::Region".into(), region.into());
    params.insert("AWS::Partition".into(), "aws".into());
    let resources = match doc.get("Resources") {
        Some(Value::Mapping(r)) => r,
        _ => return Err(TemplateError::NoResources(name.into())),
    };
    let mut out = Vec::new();
    for (id, res) in resources {
        if res.get("Type").and_then(Value::as_str) != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        let logical_id = id.as_str().unwrap_or_default().to_string();
        let r = Resolver { params: &params };
        let props = res.get("Properties").cloned().unwrap_or(Value::Null);
        let spec = r.alarm(&props).map_err(|what| TemplateError::Alarm {
            template: name.into(),
            logical_id: logical_id.clone(),
            what,
        })?;
        out.push(spec);
    }
    Ok(out)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A template value: text, or a resource that only a deployment knows.
enum Resolved {
    Text(String),
    Resource(String),
}

struct Resolver<'a> {
    params: &'a BTreeMap<String, String>,
}

impl Resolver<'_> {
    fn value(&self, v: &Value) -> Result<Resolved, String> {
        if let Some(s) = scalar(v) {
            return Ok(Resolved::Text(s));
        }
        let (function, arg) = match v {
            Value::Tagged(t) => (
                t.tag.to_string().trim_start_matches('!').to_string(),
                &t.value,
            ),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, a) = m.iter().next().ok_or("empty mapping")?;
                let k = k.as_str().unwrap_or_default();
                (k.trim_start_matches("Fn::").to_string(), a)
            }
            other => return Err(format!("cannot read {other:?}")),
        };
        match function.as_str() {
            "Ref" => {
                let name = arg.as_str().ok_or("Ref takes a name")?;
                Ok(match self.params.get(name) {
                    Some(v) => Resolved::Text(v.clone()),
                    None => Resolved::Resource(name.to_string()),
                })
            }
            "Sub" => {
                let s = arg
                    .as_str()
                    .ok_or("only the one-string form of Sub is read")?;
                self.sub(s).map(Resolved::Text)
            }
            other => Err(format!("{other} is not supported in alarm properties")),
        }
    }

    fn sub(&self, s: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = after.find('}').ok_or("unclosed ${ in Sub")?;
            let name = &after[..end];
            let value = self.params.get(name).ok_or_else(|| {
                format!("${{{name}}} is not a parameter (pass --param {name}=VALUE)")
            })?;
            out.push_str(value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn text(&self, props: &Value, key: &str) -> Result<Option<String>, String> {
        match props.get(key) {
            None => Ok(None),
            Some(v) => match self.value(v)? {
                Resolved::Text(t) => Ok(Some(t)),
                Resolved::Resource(r) => Err(format!("{key} refers to resource {r}")),
            },
        }
    }

    fn number<T: std::str::FromStr>(&self, props: &Value, key: &str) -> Result<Option<T>, String> {
        self.text(props, key)?
            .map(|t| {
                t.parse()
                    .map_err(|_| format!("{key} {t:?} is not a number"))
            })
            .transpose()
    }

    fn metric(&self, props: &Value, ns: &str, name: &str) -> Result<Option<MetricRef>, String> {
        let (Some(namespace), Some(name)) = (self.text(props, ns)?, self.text(props, name)?) else {
            return Ok(None);
        };
        let mut dimensions = BTreeMap::new();
        for d in props
            .get("Dimensions")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let (Some(k), Some(v)) = (self.text(d, "Name")?, self.text(d, "Value")?) else {
                return Err("a dimension needs Name and Value".into());
            };
            dimensions.insert(k, v);
        }
        Ok(Some(MetricRef {
            namespace,
            name,
            dimensions,
        }))
    }

    fn actions(&self, props: &Value, key: &str) -> Result<Vec<Action>, String> {
        let mut out = Vec::new();
        for a in props
            .get(key)
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            out.push(match self.value(a)? {
                Resolved::Text(t) => Action::Arn(t),
                Resolved::Resource(r) => Action::Resource(r),
            });
        }
        Ok(out)
    }

    fn alarm(&self, p: &Value) -> Result<AlarmSpec, String> {
        let mut metrics = Vec::new();
        for q in p
            .get("Metrics")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let stat = q.get("MetricStat").cloned().unwrap_or(Value::Null);
            let metric = match stat.get("Metric") {
                Some(m) => self.metric(m, "Namespace", "MetricName")?,
                None => None,
            };
            metrics.push(MathQuery {
                id: self.text(q, "Id")?.ok_or("a Metrics entry needs an Id")?,
                expression: self.text(q, "Expression")?,
                metric,
                period: self.number(&stat, "Period")?,
                stat: self.text(&stat, "Stat")?,
                return_data: self.text(q, "ReturnData")?.map(|t| t == "true"),
                label: self.text(q, "Label")?,
            });
        }
        Ok(AlarmSpec {
            name: self.text(p, "AlarmName")?.ok_or("no AlarmName")?,
            description: self.text(p, "AlarmDescription")?,
            metric: self.metric(p, "Namespace", "MetricName")?,
            statistic: self.text(p, "Statistic")?,
            extended_statistic: self.text(p, "ExtendedStatistic")?,
            period: self.number(p, "Period")?,
            evaluation_periods: self.number(p, "EvaluationPeriods")?,
            threshold: self.number(p, "Threshold")?,
            comparison: self.text(p, "ComparisonOperator")?,
            treat_missing_data: self.text(p, "TreatMissingData")?,
            metrics,
            alarm_actions: self.actions(p, "AlarmActions")?,
            ok_actions: self.actions(p, "OKActions")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built_in(overrides: &[(&str, &str)]) -> Vec<AlarmSpec> {
        let o = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_template(BUILT_IN_NAME, BUILT_IN_TEMPLATE, &o, "eu-west-1").expect("template reads")
    }

    #[test]
    fn the_project_template_has_the_guide_alarms() {
        let alarms = built_in(&[]);
        let names: Vec<&str> = alarms.iter().map(|a| a.name.as_str()).collect();
        for n in [
            "AuraStream-dev-aurastream-api-High-Error-Rate",
            "AuraStream-dev-aurastream-api-High-Latency",
            "AuraStream-dev-aurastream-api-Low-Cache-Hit-Rate",
            "AuraStream-dev-aurastream-api-High-Lambda-Duration",
        ] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
        let err = &alarms[0];
        assert_eq!(err.threshold, Some(10.0));
        assert_eq!(err.comparison.as_deref(), Some("GreaterThanThreshold"));
        assert_eq!(
            err.metric.as_ref().map(ToString::to_string).as_deref(),
            Some("AWS/ApiGateway/5XXError{ApiName=aurastream-api}")
        );
        assert_eq!(
            err.alarm_actions,
            vec![Action::Resource("CriticalAlertsTopic".into())]
        );
        let latency = &alarms[1];
        assert_eq!(latency.extended_statistic.as_deref(), Some("p99"));
        let cache = alarms
            .iter()
            .find(|a| a.name.ends_with("Low-Cache-Hit-Rate"))
            .expect("cache alarm");
        assert_eq!(cache.metrics.len(), 2);
        assert_eq!(cache.metrics[1].expression.as_deref(), Some("hits * 100"));
        assert_eq!(cache.metrics[0].period, Some(900));
        assert_eq!(cache.metrics[0].return_data, Some(false));
        assert_eq!(
            cache.metrics_read()[0].to_string(),
            "AuraStream/Application/CacheHitRate"
        );
    }

    #[test]
    fn parameters_can_be_overridden() {
        let alarms = built_in(&[("Environment", "prod"), ("ApiName", "shop")]);
        assert_eq!(
            alarms[0].name,
            "AuraStream-prod-aurastream-api-High-Error-Rate"
        );
        assert_eq!(
            alarms[0]
                .metric
                .as_ref()
                .and_then(|m| m.dimensions.get("ApiName"))
                .map(String::as_str),
            Some("shop")
        );
    }

    #[test]
    fn unknown_substitutions_are_refused_with_the_fix() {
        let t = "Resources:\n  A:\n    Type: AWS::CloudWatch::Alarm\n    Properties:\n      AlarmName: !Sub \"x-${Stage}\"\n";
        let e = from_template("t.yaml", t, &BTreeMap::new(), "us-east-1")
            .expect_err("Stage is unknown")
            .to_string();
        assert_eq!(
            e,
            "t.yaml: alarm A: ${Stage} is not a parameter (pass --param Stage=VALUE)"
        );
        let long = "Parameters:\n  Stage: {Type: String, Default: beta}\nResources:\n  A:\n    Type: AWS::CloudWatch::Alarm\n    Properties:\n      AlarmName: {\"Fn::Sub\": \"x-${Stage}\"}\n      Threshold: 3\n";
        let a = from_template("t.yaml", long, &BTreeMap::new(), "us-east-1").expect("reads");
        assert_eq!((a[0].name.as_str(), a[0].threshold), ("x-beta", Some(3.0)));
    }
}
