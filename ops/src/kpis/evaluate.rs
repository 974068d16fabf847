//! From CloudWatch's answers to a verdict per KPI: the window figure against its target,
//! the per-period series for the sparkline, and a line saying what the figure is made of.

use serde::Serialize;

use super::plan::{self, Inputs, kpi_id, latency_id, series_label};
use super::targets::{Kpi, Target, Targets, format_number};
use crate::cloudwatch::Answers;
use crate::table::thousands;
use crate::window::Window;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Met,
    Missed,
    NoData,
}

#[derive(Debug, Clone, Serialize)]
pub struct KpiResult {
    pub kpi: Kpi,
    pub unit: &'static str,
    pub value: Option<f64>,
    pub target: f64,
    pub higher_is_better: bool,
    pub gate: bool,
    pub status: Status,
    /// What the figure is made of, or why there is none.
    pub detail: String,
    /// One value per period of the window; `None` where CloudWatch had no point.
    pub series: Vec<Option<f64>>,
}

impl KpiResult {
    /// Whether this KPI makes the command fail.
    pub fn fails(&self) -> bool {
        self.gate && self.status != Status::Met
    }
}

pub fn evaluate(
    inputs: &Inputs,
    answers: &Answers,
    window: &Window,
    targets: &Targets,
    namespace: &str,
) -> Vec<KpiResult> {
    let single = |id: &str| answers.get(id).and_then(|p| p.first()).map(|(_, v)| *v);
    Kpi::ALL
        .iter()
        .map(|&kpi| {
            let target = targets.get(&kpi).copied().unwrap_or(Target {
                value: kpi.guide_target(),
                gate: true,
            });
            let value = single(&kpi_id(kpi, true)).filter(|v| v.is_finite());
            let mut series = vec![None; window.points()];
            for (t, v) in answers.get(&kpi_id(kpi, false)).into_iter().flatten() {
                if let Some(slot) = window.slot(*t) {
                    series[slot] = Some(*v);
                }
            }
            let (status, detail) = match value {
                None => (Status::NoData, no_data(kpi, window, namespace)),
                Some(v) => (
                    if kpi.meets(v, target.value) {
                        Status::Met
                    } else {
                        Status::Missed
                    },
                    detail(kpi, inputs, answers, window),
                ),
            };
            KpiResult {
                kpi,
                unit: kpi.unit(),
                value,
                target: target.value,
                higher_is_better: kpi.higher_is_better(),
                gate: target.gate,
                status,
                detail,
                series,
            }
        })
        .collect()
}

/// The wording: say which metric is missing and the likely reason.
pub fn no_data(kpi: Kpi, window: &Window, namespace: &str) -> String {
    format!(
        "no data for {} ({namespace}) in the last {}: is the collector exporting EMF to this \
         account and region?",
        kpi.source_metric(),
        window.last_phrase()
    )
}

fn detail(kpi: Kpi, inputs: &Inputs, answers: &Answers, window: &Window) -> String {
    let total = |id: &str| {
        answers
            .get(id)
            .and_then(|p| p.first())
            .map(|(_, v)| *v)
            .unwrap_or(0.0)
    };
    let requests = total(plan::REQUESTS_TOTAL);
    let errors = total(plan::ERRORS_TOTAL);
    match kpi {
        Kpi::Availability | Kpi::ErrorRate => format!(
            "{} 5xx of {} requests",
            thousands(errors),
            thousands(requests)
        ),
        Kpi::Throughput => format!(
            "{} requests in {}",
            thousands(requests),
            window.length_text()
        ),
        Kpi::CacheHitRate => format!(
            "{} hits of {} lookups",
            thousands(total(plan::HITS_TOTAL)),
            thousands(total(plan::LOOKUPS_TOTAL))
        ),
        Kpi::LatencyP99 => {
            let worst = inputs
                .response_time
                .iter()
                .enumerate()
                .filter_map(|(i, d)| {
                    let v = answers.get(&latency_id(i))?.first()?.1;
                    Some((v, d))
                })
                .max_by(|a, b| a.0.total_cmp(&b.0));
            match worst {
                Some((v, dims)) if inputs.response_time.len() > 1 => format!(
                    "worst of {} series: {} ({} ms)",
                    inputs.response_time.len(),
                    series_label("", dims).trim(),
                    format_number(v)
                ),
                _ => "p99 of APIResponseTime".into(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::targets::guide_targets;
    use super::*;

    fn window() -> Window {
        Window {
            start: 0,
            end: 180,
            period: 60,
        }
    }

    #[test]
    fn figures_statuses_and_sparkline_slots() {
        let mut answers = Answers::new();
        answers.insert("availability_w".into(), vec![(0, 99.5)]);
        answers.insert("availability_s".into(), vec![(0, 100.0), (120, 99.0)]);
        answers.insert("error_rate_w".into(), vec![(0, 0.5)]);
        answers.insert("requests_w".into(), vec![(0, 2000.0)]);
        answers.insert("errors_w".into(), vec![(0, 10.0)]);
        let results = evaluate(
            &Inputs::default(),
            &answers,
            &window(),
            &guide_targets(),
            "AuraStream/Application",
        );
        let a = &results[0];
        assert_eq!(
            (a.kpi, a.value, a.status),
            (Kpi::Availability, Some(99.5), Status::Missed)
        );
        assert_eq!(a.series, vec![Some(100.0), None, Some(99.0)]);
        assert_eq!(a.detail, "10 5xx of 2,000 requests");
        assert!(a.fails());
        let e = &results[2];
        assert_eq!((e.kpi, e.status), (Kpi::ErrorRate, Status::Met));
        let c = &results[4];
        assert_eq!(c.status, Status::NoData);
        assert!(c.fails());
        assert_eq!(
            c.detail,
            "no data for CacheHitCount (AuraStream/Application) in the last 3m: is the \
             collector exporting EMF to this account and region?"
        );
    }

    #[test]
    fn an_ungated_kpi_never_fails() {
        let mut targets = guide_targets();
        targets.insert(
            Kpi::Throughput,
            Target {
                value: 1000.0,
                gate: false,
            },
        );
        let mut answers = Answers::new();
        answers.insert("throughput_w".into(), vec![(0, 1.0)]);
        let r = evaluate(&Inputs::default(), &answers, &window(), &targets, "ns");
        assert_eq!(r[3].status, Status::Missed);
        assert!(!r[3].fails());
    }
}
