//! What differs between an intended alarm and the deployed one, field by field, in words
//! an operator can act on ("threshold 20, intended 10").

use super::spec::{Action, AlarmSpec};

pub fn differences(intended: &AlarmSpec, deployed: &AlarmSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |what: &str, want: String, got: String| {
        if want != got {
            out.push(format!("{what} {got}, intended {want}"));
        }
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    let num = |v: Option<f64>| v.map(|n| n.to_string()).unwrap_or_else(|| "none".into());
    let int = |v: Option<i32>| v.map(|n| n.to_string()).unwrap_or_else(|| "none".into());
    field(
        "threshold",
        num(intended.threshold),
        num(deployed.threshold),
    );
    field(
        "comparison",
        opt(&intended.comparison),
        opt(&deployed.comparison),
    );
    field(
        "evaluation periods",
        int(intended.evaluation_periods),
        int(deployed.evaluation_periods),
    );
    field("period", int(intended.period), int(deployed.period));
    field(
        "statistic",
        opt(&intended.statistic),
        opt(&deployed.statistic),
    );
    field(
        "extended statistic",
        opt(&intended.extended_statistic),
        opt(&deployed.extended_statistic),
    );
    let metric = |s: &AlarmSpec| {
        s.metric
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| "none".into())
    };
    field("metric", metric(intended), metric(deployed));
    // CloudWatch's default for TreatMissingData is `missing`.
    let missing = |v: &Option<String>| v.clone().unwrap_or_else(|| "missing".into());
    field(
        "treat missing data",
        missing(&intended.treat_missing_data),
        missing(&deployed.treat_missing_data),
    );
    let queries = |s: &AlarmSpec| {
        s.metrics
            .iter()
            .map(|q| {
                format!(
                    "{}={}",
                    q.id,
                    match (&q.expression, &q.metric) {
                        (Some(e), _) => e.clone(),
                        (None, Some(m)) => format!(
                            "{} {} {}s",
                            m,
                            q.stat.clone().unwrap_or_default(),
                            q.period.unwrap_or_default()
                        ),
                        (None, None) => "?".into(),
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    field("metric math", queries(intended), queries(deployed));
    // Actions can be compared only where the intended ARN is known.
    let arns = |a: &[Action]| -> Option<Vec<String>> {
        a.iter()
            .map(|x| match x {
                Action::Arn(s) => Some(s.clone()),
                Action::Resource(_) => None,
            })
            .collect()
    };
    if let (Some(mut want), Some(mut got)) =
        (arns(&intended.alarm_actions), arns(&deployed.alarm_actions))
    {
        want.sort();
        got.sort();
        field("alarm actions", want.join(","), got.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::spec::MetricRef;
    use super::*;

    fn spec() -> AlarmSpec {
        AlarmSpec {
            name: "a".into(),
            description: None,
            metric: Some(MetricRef {
                namespace: "AWS/Lambda".into(),
                name: "Duration".into(),
                dimensions: [("FunctionName".to_string(), "f".to_string())].into(),
            }),
            statistic: Some("Average".into()),
            extended_statistic: None,
            period: Some(300),
            evaluation_periods: Some(2),
            threshold: Some(5000.0),
            comparison: Some("GreaterThanThreshold".into()),
            treat_missing_data: Some("notBreaching".into()),
            metrics: vec![],
            alarm_actions: vec![Action::Resource("WarningAlertsTopic".into())],
            ok_actions: vec![],
        }
    }

    #[test]
    fn equal_alarms_have_no_differences_and_unknown_actions_are_not_compared() {
        let mut deployed = spec();
        deployed.alarm_actions = vec![Action::Arn("arn:aws:sns:us-east-1:1:t".into())];
        assert!(differences(&spec(), &deployed).is_empty());
    }

    #[test]
    fn each_drift_is_named() {
        let mut deployed = spec();
        deployed.threshold = Some(9000.0);
        deployed.treat_missing_data = None;
        deployed.metric = None;
        assert_eq!(
            differences(&spec(), &deployed),
            vec![
                "threshold 9000, intended 5000".to_string(),
                "metric none, intended AWS/Lambda/Duration{FunctionName=f}".to_string(),
                "treat missing data missing, intended notBreaching".to_string(),
            ]
        );
    }
}
