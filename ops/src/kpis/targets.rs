//! The monitoring guide's five KPIs (`PerformanceMonitor`) and their targets, which a YAML
//! file can override:
//!
//! ```yaml
//! availability:   {target: 99.95}
//! latency_p99:    {target: 800}
//! throughput:     {target: 50, gate: false}   # shown, but never fails the command
//! ```
//!
//! A value exactly at its target meets it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kpi {
    Availability,
    LatencyP99,
    ErrorRate,
    Throughput,
    CacheHitRate,
}

impl Kpi {
    pub const ALL: [Kpi; 5] = [
        Kpi::Availability,
        Kpi::LatencyP99,
        Kpi::ErrorRate,
        Kpi::Throughput,
        Kpi::CacheHitRate,
    ];

    /// The guide's name (`PerformanceMonitor.kpis` keys).
    pub fn name(self) -> &'static str {
        match self {
            Kpi::Availability => "availability",
            Kpi::LatencyP99 => "latency_p99",
            Kpi::ErrorRate => "error_rate",
            Kpi::Throughput => "throughput",
            Kpi::CacheHitRate => "cache_hit_rate",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Kpi::Availability | Kpi::ErrorRate | Kpi::CacheHitRate => "%",
            Kpi::LatencyP99 => "ms",
            Kpi::Throughput => "req/s",
        }
    }

    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Kpi::Availability | Kpi::Throughput | Kpi::CacheHitRate
        )
    }

    /// The guide's targets: 99.9 % availability, p99 1,000 ms, 1 % errors, 1,000 req/s,
    /// 60 % cache hits.
    pub fn guide_target(self) -> f64 {
        match self {
            Kpi::Availability => 99.9,
            Kpi::LatencyP99 => 1000.0,
            Kpi::ErrorRate => 1.0,
            Kpi::Throughput => 1000.0,
            Kpi::CacheHitRate => 60.0,
        }
    }

    /// The metric whose absence explains "no data" for this KPI.
    pub fn source_metric(self) -> &'static str {
        match self {
            Kpi::Availability | Kpi::ErrorRate | Kpi::Throughput => "APIRequestCount",
            Kpi::LatencyP99 => "APIResponseTime",
            Kpi::CacheHitRate => "CacheHitCount",
        }
    }

    pub fn meets(self, value: f64, target: f64) -> bool {
        if self.higher_is_better() {
            value >= target
        } else {
            value <= target
        }
    }

    /// "≥ 99.9 %", "≤ 1000 ms".
    pub fn target_text(self, target: f64) -> String {
        let op = if self.higher_is_better() {
            "≥"
        } else {
            "≤"
        };
        format!("{op} {} {}", format_number(target), self.unit())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Target {
    pub value: f64,
    /// Whether missing this target (or having no data for it) fails the command.
    pub gate: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetEntry {
    target: Option<f64>,
    gate: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetsError {
    #[error("cannot read targets file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "targets file {path}: {source} (expected e.g. `latency_p99: {{target: 800}}`; KPIs: \
         availability, latency_p99, error_rate, throughput, cache_hit_rate)"
    )]
    Parse {
        path: String,
        source: serde_yaml_ng::Error,
    },
    #[error("targets file {path}: {kpi} target {value} is not a finite number")]
    NotFinite {
        path: String,
        kpi: String,
        value: f64,
    },
}

pub type Targets = BTreeMap<Kpi, Target>;

pub fn guide_targets() -> Targets {
    Kpi::ALL
        .iter()
        .map(|k| {
            (
                *k,
                Target {
                    value: k.guide_target(),
                    gate: true,
                },
            )
        })
        .collect()
}

/// The guide's targets with a file's overrides on top.
pub fn load(path: Option<&Path>) -> Result<Targets, TargetsError> {
    let mut targets = guide_targets();
    let Some(path) = path else {
        return Ok(targets);
    };
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TargetsError::Read {
        path: shown.clone(),
        source,
    })?;
    apply_overrides(&mut targets, &text).map_err(|e| match e {
        OverrideError::Parse(source) => TargetsError::Parse {
            path: shown.clone(),
            source,
        },
        OverrideError::NotFinite(kpi, value) => TargetsError::NotFinite {
            path: shown.clone(),
            kpi: kpi.name().into(),
            value,
        },
    })?;
    Ok(targets)
}

enum OverrideError {
    Parse(serde_yaml_ng::Error),
    NotFinite(Kpi, f64),
}

fn apply_overrides(targets: &mut Targets, text: &str) -> Result<(), OverrideError> {
    let entries: Option<BTreeMap<Kpi, TargetEntry>> =
        serde_yaml_ng::from_str(text).map_err(OverrideError::Parse)?;
    for (kpi, entry) in entries.unwrap_or_default() {
        let t = targets.entry(kpi).or_insert(Target {
            value: kpi.guide_target(),
            gate: true,
        });
        if let Some(v) = entry.target {
            if !v.is_finite() {
                return Err(OverrideError::NotFinite(kpi, v));
            }
            t.value = v;
        }
        if let Some(g) = entry.gate {
            t.gate = g;
        }
    }
    Ok(())
}

/// Up to two decimals, without trailing zeros: 99.9, 1000, 0.17.
pub fn format_number(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guide_targets_and_directions() {
        let t = guide_targets();
        assert_eq!(t[&Kpi::Availability].value, 99.9);
        assert!(Kpi::Availability.meets(99.9, 99.9));
        assert!(!Kpi::Availability.meets(99.89, 99.9));
        assert!(Kpi::LatencyP99.meets(1000.0, 1000.0));
        assert!(!Kpi::LatencyP99.meets(1000.5, 1000.0));
        assert_eq!(Kpi::ErrorRate.target_text(1.0), "≤ 1 %");
        assert_eq!(Kpi::Throughput.target_text(1000.0), "≥ 1000 req/s");
    }

    #[test]
    fn overrides_replace_only_what_they_name() {
        let mut t = guide_targets();
        let ok = apply_overrides(
            &mut t,
            "latency_p99: {target: 800}\nthroughput: {target: 5, gate: false}\n",
        );
        assert!(ok.is_ok());
        assert_eq!(t[&Kpi::LatencyP99].value, 800.0);
        assert_eq!(
            t[&Kpi::Throughput],
            Target {
                value: 5.0,
                gate: false
            }
        );
        assert_eq!(t[&Kpi::ErrorRate].value, 1.0);
    }

    #[test]
    fn bad_files_are_refused() {
        let mut t = guide_targets();
        assert!(matches!(
            apply_overrides(&mut t, "latency: {target: 1}"),
            Err(OverrideError::Parse(_))
        ));
        assert!(matches!(
            apply_overrides(&mut t, "error_rate: {target: 1, gates: true}"),
            Err(OverrideError::Parse(_))
        ));
        assert!(matches!(
            apply_overrides(&mut t, "error_rate: {target: .nan}"),
            Err(OverrideError::NotFinite(Kpi::ErrorRate, _))
        ));
        assert!(apply_overrides(&mut t, "").is_ok());
    }

    #[test]
    fn numbers_print_short() {
        assert_eq!(format_number(99.9), "99.9");
        assert_eq!(format_number(1000.0), "1000");
        assert_eq!(format_number(0.1666), "0.17");
        assert_eq!(format_number(-0.001), "0");
    }
}
