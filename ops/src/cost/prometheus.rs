//! The collector's `/metrics` counters, and what it shipped between two readings of them:
//! spans sent by `awsxray` exporters, traces kept by `xray_sampling`, log records sent by
//! `awscloudwatchlogs` and data points sent by `awsemf` (exporter ids are `type` or
//! `type/name`).

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Prometheus text exposition: `name{label="value",...} number`; comments and lines that
/// do not parse are skipped (they carry no counter we read).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (head, value) = line.trim().rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        None => (head.to_string(), BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}')?;
            let mut labels = BTreeMap::new();
            let mut rest = body;
            while !rest.is_empty() {
                let (k, after) = rest.split_once("=\"")?;
                let mut v = String::new();
                let mut chars = after.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                v.push(if n == 'n' { '\n' } else { n });
                            }
                        }
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        c => v.push(c),
                    }
                }
                let end = end?;
                labels.insert(k.trim_start_matches(',').to_string(), v);
                rest = after[end + 1..].trim_start_matches(',');
            }
            (name.to_string(), labels)
        }
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// What the collector shipped over an interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Shipped {
    pub seconds: f64,
    pub xray_spans: f64,
    /// Traces kept by `xray_sampling` (`sampling_rule_decisions{decision="kept"}` +
    /// `upstream_sampled`); `None` when
    /// no sampler runs, and then every span may start a trace.
    pub sampled_traces: Option<f64>,
    pub log_records: f64,
    pub emf_points: f64,
}

impl Shipped {
    /// Traces recorded in X-Ray: those the sampler kept, else (no sampler) the spans, an
    /// upper bound.
    pub fn traces(&self) -> f64 {
        self.sampled_traces.unwrap_or(self.xray_spans)
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShippedError {
    #[error(
        "the collector's counters went down between the two readings ({0}): it restarted; \
         take the reading again"
    )]
    Restarted(String),
    #[error("the two readings of /metrics are not apart in time")]
    NoInterval,
}

fn exporter_type(labels: &BTreeMap<String, String>) -> &str {
    labels
        .get("exporter")
        .map(|e| e.split('/').next().unwrap_or(e))
        .unwrap_or("")
}

fn totals(samples: &[Sample]) -> BTreeMap<&'static str, f64> {
    let mut t = BTreeMap::new();
    for s in samples {
        let key = match s.name.as_str() {
            "aurastream_exporter_sent_items_total" => match exporter_type(&s.labels) {
                "awsxray" => "xray_spans",
                "awscloudwatchlogs" => "log_records",
                "awsemf" => "emf_points",
                _ => continue,
            },
            "aurastream_sampling_rule_decisions_total" => {
                match s.labels.get("decision").map(String::as_str) {
                    Some("kept") => "sampled_traces",
                    Some("dropped") => "sampler_present",
                    _ => continue,
                }
            }
            // Collectors before 2026-12 counted rule decisions as `rule_kept/NAME` events.
            "aurastream_component_events_total" => {
                let event = s.labels.get("event").map(String::as_str).unwrap_or("");
                if event.starts_with("rule_kept/") || event == "upstream_sampled" {
                    "sampled_traces"
                } else if event.starts_with("rule_dropped/") {
                    "sampler_present"
                } else {
                    continue;
                }
            }
            _ => continue,
        };
        *t.entry(key).or_insert(0.0) += s.value;
    }
    t
}

/// The difference between two readings `seconds` apart.
pub fn shipped(before: &[Sample], after: &[Sample], seconds: f64) -> Result<Shipped, ShippedError> {
    if seconds <= 0.0 {
        return Err(ShippedError::NoInterval);
    }
    let (b, a) = (totals(before), totals(after));
    let delta = |k: &'static str| -> Result<f64, ShippedError> {
        let d = a.get(k).copied().unwrap_or(0.0) - b.get(k).copied().unwrap_or(0.0);
        if d < 0.0 {
            Err(ShippedError::Restarted(k.into()))
        } else {
            Ok(d)
        }
    };
    let sampler = a.contains_key("sampled_traces") || a.contains_key("sampler_present");
    Ok(Shipped {
        seconds,
        xray_spans: delta("xray_spans")?,
        sampled_traces: if sampler {
            Some(delta("sampled_traces")?)
        } else {
            None
        },
        log_records: delta("log_records")?,
        emf_points: delta("emf_points")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# HELP aurastream_exporter_sent_items Items an exporter delivered
# TYPE aurastream_exporter_sent_items counter
aurastream_exporter_sent_items_total{exporter="awsxray",pipeline="traces",signal="traces"} 100
aurastream_exporter_sent_items_total{exporter="awsemf/app",pipeline="metrics",signal="metrics"} 10
aurastream_exporter_sent_items_total{exporter="file/traces",pipeline="traces",signal="traces"} 999
aurastream_sampling_rule_decisions_total{component="xray_sampling",rule="Default sampling rule",decision="kept"} 4
aurastream_sampling_rule_decisions_total{component="xray_sampling",rule="Default sampling rule",decision="dropped"} 40
aurastream_process_resident_memory_bytes 1234
"#;

    #[test]
    fn labels_with_escapes_and_spaces_parse() {
        let s = parse(r#"m{a="x \"y\"",b="p q"} 2.5"#);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].labels["a"], "x \"y\"");
        assert_eq!(s[0].labels["b"], "p q");
        assert_eq!(s[0].value, 2.5);
        assert_eq!(parse(BEFORE).len(), 6);
    }

    #[test]
    fn shipped_items_are_the_differences() {
        let after = BEFORE
            .replace("} 100", "} 700")
            .replace("} 10\n", "} 70\n")
            .replace("kept\"} 4", "kept\"} 64");
        let s = shipped(&parse(BEFORE), &parse(&after), 60.0).expect("no restart");
        assert_eq!(s.xray_spans, 600.0);
        assert_eq!(s.emf_points, 60.0);
        assert_eq!(s.sampled_traces, Some(60.0));
        assert_eq!(s.traces(), 60.0);
        assert_eq!(s.log_records, 0.0);
    }

    #[test]
    fn an_older_collector_counting_rule_events_is_read_the_same() {
        let legacy = |kept: u32| {
            format!(
                "aurastream_component_events_total{{component=\"xray_sampling\",signal=\"traces\",\
                 event=\"rule_kept/Default sampling rule\"}} {kept}\n\
                 aurastream_component_events_total{{component=\"xray_sampling\",signal=\"traces\",\
                 event=\"rule_dropped/Default sampling rule\"}} 40\n"
            )
        };
        let s = shipped(&parse(&legacy(4)), &parse(&legacy(10)), 6.0).expect("no restart");
        assert_eq!(s.sampled_traces, Some(6.0));
    }

    #[test]
    fn without_a_sampler_spans_bound_the_traces_and_restarts_are_refused() {
        let text = "aurastream_exporter_sent_items_total{exporter=\"awsxray\"} 5\n";
        let later = "aurastream_exporter_sent_items_total{exporter=\"awsxray\"} 9\n";
        let s = shipped(&parse(text), &parse(later), 2.0).expect("ok");
        assert_eq!((s.sampled_traces, s.traces()), (None, 4.0));
        assert_eq!(
            shipped(&parse(later), &parse(text), 2.0),
            Err(ShippedError::Restarted("xray_spans".into()))
        );
        assert_eq!(shipped(&[], &[], 0.0), Err(ShippedError::NoInterval));
    }
}
