//! Which CloudWatch queries answer the five KPIs: one `GetMetricData` call holding a
//! `MetricStat` per listed series and metric-math expressions that combine them.
//!
//! Every KPI is asked for twice: per period (the sparkline) and with one period spanning
//! the whole window (the figure in the table), so CloudWatch computes both, percentiles
//! included (a p99 over an hour is not any combination of per-minute p99s).
//!
//! - requests: `APIRequestCount` (Sum) over the dimension set with `StatusCode` that has
//!   the fewest dimensions (the collector's `[Endpoint, StatusCode]`, not the per-customer
//!   set, which counts the same requests again);
//! - errors: the series of that set whose `StatusCode` starts with 5;
//! - availability = 100 − error rate; error rate = 100 × errors / requests;
//! - throughput = requests / period seconds;
//! - p99: `APIResponseTime` p99 per series of its smallest dimension set; with several
//!   (one per endpoint) the KPI is the worst of them, since percentiles do not add up;
//! - cache hit rate = 100 × hits / (hits + misses) from `CacheHitCount` / `CacheMissCount`.

use std::collections::BTreeSet;

use super::targets::Kpi;
use crate::window::Window;

pub const REQUESTS: &str = "APIRequestCount";
pub const RESPONSE_TIME: &str = "APIResponseTime";
pub const CACHE_HITS: &str = "CacheHitCount";
pub const CACHE_MISSES: &str = "CacheMissCount";
pub const STATUS_CODE: &str = "StatusCode";

pub use crate::cloudwatch::Dims;

/// The series `ListMetrics` found for each metric the KPIs read.
#[derive(Debug, Clone, Default)]
pub struct Listed {
    pub requests: Vec<Dims>,
    pub response_time: Vec<Dims>,
    pub hits: Vec<Dims>,
    pub misses: Vec<Dims>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    Stat {
        metric: &'static str,
        dims: Dims,
        stat: &'static str,
        period: i64,
    },
    Expression(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub id: String,
    pub query: Query,
    /// Only what the table and charts show comes back; inputs stay server-side.
    pub return_data: bool,
    pub label: String,
}

/// Ids of the window-level helper results the details line is made of.
pub const REQUESTS_TOTAL: &str = "requests_w";
pub const ERRORS_TOTAL: &str = "errors_w";
pub const HITS_TOTAL: &str = "hits_w";
pub const LOOKUPS_TOTAL: &str = "lookups_w";

/// The id of a KPI's result: `{kpi}_s` per period, `{kpi}_w` for the whole window.
pub fn kpi_id(kpi: Kpi, whole_window: bool) -> String {
    format!("{}_{}", kpi.name(), if whole_window { "w" } else { "s" })
}

/// The id of one `APIResponseTime` series' window p99 (for naming the worst endpoint).
pub fn latency_id(index: usize) -> String {
    format!("lat{index}_w")
}

/// The series of `all` in the dimension set with the fewest dimensions among those
/// containing `required` (ties: the alphabetically first set).
pub fn smallest_set(all: &[Dims], required: Option<&str>) -> Vec<Dims> {
    let sets: BTreeSet<Vec<&String>> = all
        .iter()
        .map(|d| d.keys().collect::<Vec<_>>())
        .filter(|names| required.is_none_or(|r| names.iter().any(|n| n.as_str() == r)))
        .collect();
    let Some(best) = sets.iter().min_by_key(|names| names.len()) else {
        return Vec::new();
    };
    all.iter()
        .filter(|d| d.keys().collect::<Vec<_>>() == *best)
        .cloned()
        .collect()
}

/// The chosen input series: requests (with `StatusCode`), latency, hits, misses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    pub requests: Vec<Dims>,
    pub response_time: Vec<Dims>,
    pub hits: Vec<Dims>,
    pub misses: Vec<Dims>,
}

impl Inputs {
    pub fn choose(listed: &Listed) -> Inputs {
        Inputs {
            requests: smallest_set(&listed.requests, Some(STATUS_CODE)),
            response_time: smallest_set(&listed.response_time, None),
            hits: smallest_set(&listed.hits, None),
            misses: smallest_set(&listed.misses, None),
        }
    }

    fn is_5xx(dims: &Dims) -> bool {
        dims.get(STATUS_CODE).is_some_and(|s| s.starts_with('5'))
    }
}

/// Every query of the one `GetMetricData` call.
pub fn plan(inputs: &Inputs, window: &Window) -> Vec<Spec> {
    let mut specs = Vec::new();
    for (suffix, period) in [("s", window.period), ("w", window.seconds())] {
        let whole = suffix == "w";
        let mut stat = |prefix: &str, metric: &'static str, stat: &'static str, list: &[Dims]| {
            let ids: Vec<String> = (0..list.len())
                .map(|i| format!("{prefix}{i}_{suffix}"))
                .collect();
            for (id, dims) in ids.iter().zip(list) {
                specs.push(Spec {
                    id: id.clone(),
                    query: Query::Stat {
                        metric,
                        dims: dims.clone(),
                        stat,
                        period,
                    },
                    return_data: whole && prefix == "lat",
                    label: series_label(metric, dims),
                });
            }
            ids
        };
        let req = stat("req", REQUESTS, "Sum", &inputs.requests);
        let lat = stat("lat", RESPONSE_TIME, "p99", &inputs.response_time);
        let hit = stat("hit", CACHE_HITS, "Sum", &inputs.hits);
        let miss = stat("miss", CACHE_MISSES, "Sum", &inputs.misses);
        let err: Vec<String> = req
            .iter()
            .zip(&inputs.requests)
            .filter(|(_, d)| Inputs::is_5xx(d))
            .map(|(id, _)| id.clone())
            .collect();

        let mut expr = |id: String, expression: String, return_data: bool, label: &str| {
            specs.push(Spec {
                id,
                query: Query::Expression(expression),
                return_data,
                label: label.to_string(),
            });
        };
        let requests = format!("requests_{suffix}");
        let errors = format!("errors_{suffix}");
        if !req.is_empty() {
            expr(requests.clone(), sum(&req), whole, "requests");
            let errors_expr = if err.is_empty() {
                format!("0 * {requests}")
            } else {
                sum(&err)
            };
            expr(errors.clone(), errors_expr, whole, "5xx responses");
            expr(
                kpi_id(Kpi::ErrorRate, whole),
                format!("100 * FILL({errors}, 0) / {requests}"),
                true,
                "error rate (%)",
            );
            expr(
                kpi_id(Kpi::Availability, whole),
                format!("100 - 100 * FILL({errors}, 0) / {requests}"),
                true,
                "availability (%)",
            );
            expr(
                kpi_id(Kpi::Throughput, whole),
                format!("{requests} / {period}"),
                true,
                "throughput (req/s)",
            );
        }
        if !lat.is_empty() {
            expr(
                kpi_id(Kpi::LatencyP99, whole),
                format!("MAX([{}])", lat.join(", ")),
                true,
                "p99 latency (ms), worst series",
            );
        }
        if !hit.is_empty() || !miss.is_empty() {
            let hits = format!("hits_{suffix}");
            let lookups = format!("lookups_{suffix}");
            let all: Vec<String> = hit.iter().chain(&miss).cloned().collect();
            expr(lookups.clone(), sum(&all), whole, "cache lookups");
            let hits_expr = if hit.is_empty() {
                format!("0 * {lookups}")
            } else {
                sum(&hit)
            };
            expr(hits.clone(), hits_expr, whole, "cache hits");
            expr(
                kpi_id(Kpi::CacheHitRate, whole),
                format!("100 * FILL({hits}, 0) / {lookups}"),
                true,
                "cache hit rate (%)",
            );
        }
    }
    specs
}

fn sum(ids: &[String]) -> String {
    format!("SUM([{}])", ids.join(", "))
}

/// "APIRequestCount Endpoint=/analyze StatusCode=500".
pub fn series_label(metric: &str, dims: &Dims) -> String {
    let mut out = metric.to_string();
    for (k, v) in dims {
        out.push_str(&format!(" {k}={v}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(pairs: &[(&str, &str)]) -> Dims {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn window() -> Window {
        Window {
            start: 0,
            end: 3600,
            period: 60,
        }
    }

    #[test]
    fn the_per_customer_set_is_not_counted_twice() {
        let listed = Listed {
            requests: vec![
                dims(&[
                    ("Endpoint", "/a"),
                    ("CustomerId", "c1"),
                    ("StatusCode", "200"),
                ]),
                dims(&[("Endpoint", "/a"), ("StatusCode", "200")]),
                dims(&[("Endpoint", "/a"), ("StatusCode", "503")]),
                dims(&[("Endpoint", "/a")]),
            ],
            response_time: vec![
                dims(&[("Endpoint", "/a"), ("CustomerId", "c1")]),
                dims(&[("Endpoint", "/a")]),
                dims(&[("Endpoint", "/b")]),
            ],
            hits: vec![dims(&[])],
            misses: vec![],
        };
        let inputs = Inputs::choose(&listed);
        assert_eq!(
            inputs.requests,
            vec![
                dims(&[("Endpoint", "/a"), ("StatusCode", "200")]),
                dims(&[("Endpoint", "/a"), ("StatusCode", "503")]),
            ]
        );
        assert_eq!(inputs.response_time.len(), 2);
        assert_eq!(inputs.hits, vec![dims(&[])]);
    }

    #[test]
    fn expressions_combine_the_series() {
        let inputs = Inputs {
            requests: vec![
                dims(&[("Endpoint", "/a"), ("StatusCode", "200")]),
                dims(&[("Endpoint", "/a"), ("StatusCode", "503")]),
            ],
            response_time: vec![dims(&[("Endpoint", "/a")]), dims(&[("Endpoint", "/b")])],
            hits: vec![dims(&[])],
            misses: vec![],
        };
        let specs = plan(&inputs, &window());
        let find = |id: &str| specs.iter().find(|s| s.id == id).cloned();
        assert_eq!(
            find("errors_s").map(|s| s.query),
            Some(Query::Expression("SUM([req1_s])".into()))
        );
        assert_eq!(
            find("availability_w").map(|s| s.query),
            Some(Query::Expression(
                "100 - 100 * FILL(errors_w, 0) / requests_w".into()
            ))
        );
        assert_eq!(
            find("throughput_w").map(|s| s.query),
            Some(Query::Expression("requests_w / 3600".into()))
        );
        assert_eq!(
            find("throughput_s").map(|s| s.query),
            Some(Query::Expression("requests_s / 60".into()))
        );
        assert_eq!(
            find("latency_p99_s").map(|s| s.query),
            Some(Query::Expression("MAX([lat0_s, lat1_s])".into()))
        );
        assert_eq!(
            find("cache_hit_rate_w").map(|s| s.query),
            Some(Query::Expression(
                "100 * FILL(hits_w, 0) / lookups_w".into()
            ))
        );
        // The window p99 of each series comes back (to name the worst); inputs do not.
        assert!(find("lat1_w").is_some_and(|s| s.return_data));
        assert!(find("req0_w").is_some_and(|s| !s.return_data));
        match find("lat0_w").map(|s| s.query) {
            Some(Query::Stat { stat, period, .. }) => assert_eq!((stat, period), ("p99", 3600)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_5xx_series_means_zero_errors_and_no_series_means_no_query() {
        let inputs = Inputs {
            requests: vec![dims(&[("StatusCode", "200")])],
            ..Inputs::default()
        };
        let specs = plan(&inputs, &window());
        assert!(
            specs.iter().any(
                |s| s.id == "errors_w" && s.query == Query::Expression("0 * requests_w".into())
            )
        );
        assert!(!specs.iter().any(|s| s.id.starts_with("latency")));
        assert!(!specs.iter().any(|s| s.id.starts_with("cache")));
    }
}
