//! Reading CloudWatch Embedded Metric Format documents back: each message checked against
//! the EMF rules CloudWatch applies (moto stores any message, so the tests check what
//! CloudWatch would refuse), its data points listed per dimension set, and several data
//! points of one metric combined the way CloudWatch combines them.

use serde_json::Value;

/// CloudWatch refuses longer dimension values (moto does not check).
pub const MAX_DIMENSION_VALUE_CHARS: usize = 1024;

/// A data point as CloudWatch extracts it: (namespace, metric name, `Dim=value,...`).
pub type Key = (String, String, String);

/// Numbers equal within floating-point noise (the SDK and the exporter add in their own
/// order); everything else exactly.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => close(
            x.as_f64().unwrap_or(f64::NAN),
            y.as_f64().unwrap_or(f64::NAN),
        ),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Checks one message is a valid EMF document and returns its data points:
/// `(key, unit, value)` for every metric of every dimension set of every directive.
pub fn emf_points(message: &str) -> Vec<(Key, Option<String>, Value)> {
    let doc: Value = serde_json::from_str(message)
        .unwrap_or_else(|e| panic!("EMF message is not JSON ({e}): {message}"));
    let aws = &doc["_aws"];
    assert!(
        aws["Timestamp"].is_i64(),
        "_aws.Timestamp must be an integer: {message}"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .unwrap_or_else(|| panic!("_aws.CloudWatchMetrics must be an array: {message}"));
    assert!(
        !directives.is_empty(),
        "a document with no metric directive: {message}"
    );
    let mut points = Vec::new();
    for directive in directives {
        let namespace = directive["Namespace"]
            .as_str()
            .unwrap_or_else(|| panic!("Namespace must be a string: {message}"));
        assert!(!namespace.is_empty() && namespace.len() <= 255, "{message}");
        let sets = directive["Dimensions"]
            .as_array()
            .unwrap_or_else(|| panic!("Dimensions must be an array of arrays: {message}"));
        let metrics = directive["Metrics"]
            .as_array()
            .unwrap_or_else(|| panic!("Metrics must be an array: {message}"));
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{message}");
        for set in sets {
            let set = set
                .as_array()
                .unwrap_or_else(|| panic!("a dimension set must be an array: {message}"));
            assert!(set.len() <= 30, "at most 30 dimensions per set: {message}");
            let mut dims: Vec<String> = set
                .iter()
                .map(|d| {
                    let d = d
                        .as_str()
                        .unwrap_or_else(|| panic!("dimension names are strings: {message}"));
                    let v = doc[d].as_str().unwrap_or_else(|| {
                        panic!("dimension {d} needs a string value at the top level: {message}")
                    });
                    let chars = v.chars().count();
                    assert!(
                        (1..=MAX_DIMENSION_VALUE_CHARS).contains(&chars),
                        "dimension {d}: CloudWatch takes 1 to 1,024 characters, got {chars}"
                    );
                    format!("{d}={v}")
                })
                .collect();
            dims.sort();
            for metric in metrics {
                let name = metric["Name"]
                    .as_str()
                    .unwrap_or_else(|| panic!("Metrics[].Name must be a string: {message}"));
                let value = doc[name].clone();
                match &value {
                    Value::Number(_) => {}
                    Value::Object(d) => {
                        let values = d["Values"].as_array().map_or(0, Vec::len);
                        let counts = d["Counts"].as_array().map_or(0, Vec::len);
                        assert!(values > 0 && values == counts && values <= 100, "{message}");
                        for field in ["Min", "Max", "Count", "Sum"] {
                            assert!(d[field].is_number(), "{name}.{field}: {message}");
                        }
                    }
                    _ => panic!("metric {name} has no numeric value at the top level: {message}"),
                }
                if let Some(unit) = metric.get("Unit") {
                    assert!(unit.is_string(), "{message}");
                }
                points.push((
                    (namespace.to_string(), name.to_string(), dims.join(",")),
                    metric["Unit"].as_str().map(str::to_string),
                    value,
                ));
            }
        }
    }
    points
}

/// Data points of one metric and dimension set, combined as CloudWatch combines what it
/// receives in one period: single values and the `Count`/`Sum` of distributions added up,
/// `Min`/`Max` the extremes, distribution values merged with their counts added.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Combined {
    /// How many data points (documents) were combined.
    pub points: usize,
    /// Single values plus distributions' `Sum`.
    pub sum: f64,
    /// Single values count 1 each; distributions their `Count`.
    pub count: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Distribution values in ascending order, with their added counts.
    pub values: Vec<(f64, f64)>,
}

/// Combines data points as returned by [`emf_points`] (numbers or distributions).
pub fn combine<'a>(values: impl IntoIterator<Item = &'a Value>) -> Combined {
    let mut c = Combined::default();
    let number = |v: &Value, field: &str| {
        v[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} must be a number: {v}"))
    };
    for v in values {
        c.points += 1;
        let (sum, count, min, max) = match v {
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                (x, 1.0, x, x)
            }
            Value::Object(_) => {
                let values = v["Values"].as_array().cloned().unwrap_or_default();
                let counts = v["Counts"].as_array().cloned().unwrap_or_default();
                for (value, n) in values.iter().zip(&counts) {
                    let (value, n) = (
                        value.as_f64().unwrap_or(f64::NAN),
                        n.as_f64().unwrap_or(0.0),
                    );
                    match c.values.iter_mut().find(|(x, _)| *x == value) {
                        Some((_, total)) => *total += n,
                        None => c.values.push((value, n)),
                    }
                }
                (
                    number(v, "Sum"),
                    number(v, "Count"),
                    number(v, "Min"),
                    number(v, "Max"),
                )
            }
            other => panic!("not a metric value: {other}"),
        };
        c.sum += sum;
        c.count += count;
        c.min = Some(c.min.map_or(min, |m| m.min(min)));
        c.max = Some(c.max.map_or(max, |m| m.max(max)));
    }
    c.values.sort_by(|a, b| a.0.total_cmp(&b.0));
    c
}

/// Two numbers equal within floating-point noise.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}
