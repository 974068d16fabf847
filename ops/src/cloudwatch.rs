//! CloudWatch metric reads shared by the commands: `GetMetricData` over all its pages,
//! and dimensions between the SDK's type and a sorted map (what the commands compare).

use std::collections::BTreeMap;

use anyhow::Result;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDataQuery};

use crate::aws::{Clients, classify};

/// Dimension name → value.
pub type Dims = BTreeMap<String, String>;

/// Query id → (timestamp seconds, value) points, oldest first.
pub type Answers = BTreeMap<String, Vec<(i64, f64)>>;

pub fn dims_of(dimensions: &[Dimension]) -> Dims {
    dimensions
        .iter()
        .filter_map(|d| Some((d.name()?.to_string(), d.value()?.to_string())))
        .collect()
}

pub fn dimensions(dims: &Dims) -> Vec<Dimension> {
    dims.iter()
        .map(|(k, v)| Dimension::builder().name(k).value(v).build())
        .collect()
}

/// Raw `GetMetricData` over `[start, end)`, all pages, keyed by query id.
pub async fn fetch(
    clients: &Clients,
    queries: Vec<MetricDataQuery>,
    start: i64,
    end: i64,
) -> Result<Answers> {
    let mut answers: Answers = BTreeMap::new();
    let mut token = None;
    loop {
        let page = clients
            .cloudwatch
            .get_metric_data()
            .set_metric_data_queries(Some(queries.clone()))
            .start_time(DateTime::from_secs(start))
            .end_time(DateTime::from_secs(end))
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify("cloudwatch:GetMetricData", e))?;
        for r in page.metric_data_results() {
            let Some(id) = r.id() else { continue };
            let points = answers.entry(id.to_string()).or_default();
            for (t, v) in r.timestamps().iter().zip(r.values()) {
                points.push((t.secs(), *v));
            }
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    for points in answers.values_mut() {
        points.sort_by_key(|(t, _)| *t);
    }
    Ok(answers)
}
