//! The guide's `TraceAnalyzer` rules, plus the faults and throttles X-Ray flags:
//!
//! - `slow_segment`: a segment longer than 1,000 ms (the guide's threshold), naming its
//!   slowest subsegment as the likely culprit;
//! - `complex_segment`: a segment with more than 10 subsegments (counted as the guide
//!   counts them: its direct `subsegments`);
//! - `fault` (5xx), `throttle` (429) and `error` (other 4xx): reported where they start,
//!   the deepest flagged node, not every ancestor they propagated to.

use serde::Serialize;

use super::document::Node;

#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub slow_ms: f64,
    pub max_subsegments: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            slow_ms: 1000.0,
            max_subsegments: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Fault,
    Throttle,
    SlowSegment,
    ComplexSegment,
    Error,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Fault => "fault",
            Rule::Throttle => "throttle",
            Rule::SlowSegment => "slow_segment",
            Rule::ComplexSegment => "complex_segment",
            Rule::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bottleneck {
    pub trace_id: String,
    pub rule: Rule,
    /// The segment (service) the finding is in.
    pub segment: String,
    /// Where inside it: the slowest subsegment, or the node a fault starts at.
    pub culprit: Option<String>,
    /// Milliseconds for slow segments, subsegment count for complex ones.
    pub value: f64,
    pub threshold: f64,
    pub detail: String,
}

/// Every finding in one trace's assembled tree.
pub fn find(trace_id: &str, roots: &[Node], rules: &Rules) -> Vec<Bottleneck> {
    let mut out = Vec::new();
    for root in roots {
        visit(trace_id, root, root, rules, &mut out);
    }
    out
}

fn visit(trace_id: &str, node: &Node, segment: &Node, rules: &Rules, out: &mut Vec<Bottleneck>) {
    let segment = if node.is_segment { node } else { segment };
    if node.is_segment {
        if let Some(ms) = node.duration_ms()
            && ms > rules.slow_ms
        {
            let slowest = node
                .walk()
                .into_iter()
                .skip(1)
                .filter(|(_, n)| !n.is_segment)
                .filter_map(|(_, n)| Some((n.duration_ms()?, n)))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            out.push(Bottleneck {
                trace_id: trace_id.into(),
                rule: Rule::SlowSegment,
                segment: node.name.clone(),
                culprit: slowest.map(|(_, n)| n.name.clone()),
                value: ms,
                threshold: rules.slow_ms,
                detail: match slowest {
                    Some((sms, n)) => format!(
                        "{:.0} ms > {:.0} ms; slowest inside: {} {:.0} ms",
                        ms, rules.slow_ms, n.name, sms
                    ),
                    None => format!("{:.0} ms > {:.0} ms", ms, rules.slow_ms),
                },
            });
        }
        let direct = node.children.iter().filter(|c| !c.is_segment).count();
        if direct > rules.max_subsegments {
            out.push(Bottleneck {
                trace_id: trace_id.into(),
                rule: Rule::ComplexSegment,
                segment: node.name.clone(),
                culprit: None,
                value: direct as f64,
                threshold: rules.max_subsegments as f64,
                detail: format!("{direct} subsegments > {}", rules.max_subsegments),
            });
        }
    }
    for (rule, flagged) in [
        (Rule::Fault, node.fault),
        (Rule::Throttle, node.throttle),
        (Rule::Error, node.error && !node.throttle),
    ] {
        let starts_here = flagged && !node.children.iter().any(|c| has_flag(c, rule));
        if starts_here {
            let mut detail = match node.http_status {
                Some(s) => format!("HTTP {s}"),
                None => rule.name().to_string(),
            };
            if let Some(c) = &node.cause {
                detail.push_str(": ");
                detail.push_str(c);
            }
            out.push(Bottleneck {
                trace_id: trace_id.into(),
                rule,
                segment: segment.name.clone(),
                culprit: (!node.is_segment).then(|| node.name.clone()),
                value: node.duration_ms().unwrap_or(0.0),
                threshold: 0.0,
                detail,
            });
        }
    }
    for c in &node.children {
        visit(trace_id, c, segment, rules, out);
    }
}

fn has_flag(n: &Node, rule: Rule) -> bool {
    let own = match rule {
        Rule::Fault => n.fault,
        Rule::Throttle => n.throttle,
        Rule::Error => n.error && !n.throttle,
        Rule::SlowSegment | Rule::ComplexSegment => false,
    };
    own || n.children.iter().any(|c| has_flag(c, rule))
}

#[cfg(test)]
mod tests {
    use super::super::document::{assemble, parse};
    use super::*;

    fn tree(docs: &[&str]) -> Vec<Node> {
        assemble(docs.iter().map(|d| parse(d).expect("parses")).collect())
    }

    #[test]
    fn a_slow_segment_names_its_slowest_subsegment() {
        let roots = tree(&[
            r#"{"name":"api","id":"a","start_time":0,"end_time":2.5,"subsegments":[
            {"name":"cache","id":"c","start_time":0.1,"end_time":0.2},
            {"name":"comprehend_api","id":"d","start_time":0.2,"end_time":2.4}]}"#,
        ]);
        let found = find("1-t", &roots, &Rules::default());
        assert_eq!(found.len(), 1);
        let b = &found[0];
        assert_eq!((b.rule, b.segment.as_str()), (Rule::SlowSegment, "api"));
        assert_eq!(b.culprit.as_deref(), Some("comprehend_api"));
        assert_eq!(
            b.detail,
            "2500 ms > 1000 ms; slowest inside: comprehend_api 2200 ms"
        );
    }

    #[test]
    fn exactly_at_the_thresholds_is_not_a_bottleneck() {
        let subs: Vec<String> = (0..10)
            .map(|i| format!(r#"{{"name":"s{i}","id":"s{i}","start_time":0,"end_time":0.1}}"#))
            .collect();
        let doc = format!(
            r#"{{"name":"api","id":"a","start_time":0,"end_time":1.0,"subsegments":[{}]}}"#,
            subs.join(",")
        );
        assert!(find("t", &tree(&[&doc]), &Rules::default()).is_empty());
        let eleven = doc.replacen(
            "[",
            r#"[{"name":"x","id":"x","start_time":0,"end_time":0.1},"#,
            1,
        );
        let found = find("t", &tree(&[&eleven]), &Rules::default());
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].rule, found[0].value),
            (Rule::ComplexSegment, 11.0)
        );
    }

    #[test]
    fn faults_are_reported_where_they_start() {
        let roots = tree(&[
            r#"{"name":"api","id":"a","start_time":0,"end_time":0.3,"fault":true,
                "http":{"response":{"status":502}},
                "subsegments":[{"name":"db","id":"d","start_time":0.1,"end_time":0.2,"fault":true,
                                "cause":{"exceptions":[{"message":"connection reset"}]}}]}"#,
            r#"{"name":"worker","id":"w","start_time":0,"end_time":0.1,"throttle":true,"error":true,
                "http":{"response":{"status":429}}}"#,
        ]);
        let found = find("t", &roots, &Rules::default());
        let summary: Vec<(Rule, &str, Option<&str>, &str)> = found
            .iter()
            .map(|b| {
                (
                    b.rule,
                    b.segment.as_str(),
                    b.culprit.as_deref(),
                    b.detail.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (Rule::Fault, "api", Some("db"), "fault: connection reset"),
                (Rule::Throttle, "worker", None, "HTTP 429"),
            ]
        );
    }
}
