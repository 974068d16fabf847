//! X-Ray segment documents as a tree: each segment with its subsegments nested, and
//! segments of downstream services hung under the subsegment that called them
//! (`parent_id`), so a trace reads top-down as the request flowed.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub id: String,
    /// Seconds since the epoch.
    pub start: f64,
    /// `None` while in progress.
    pub end: Option<f64>,
    /// A segment (a service's document) rather than a subsegment inside one.
    pub is_segment: bool,
    pub fault: bool,
    pub error: bool,
    pub throttle: bool,
    pub http_status: Option<u64>,
    /// The first exception message, if the document carries a cause.
    pub cause: Option<String>,
    pub children: Vec<Node>,
    parent_id: Option<String>,
}

impl Node {
    pub fn duration_ms(&self) -> Option<f64> {
        self.end.map(|e| (e - self.start) * 1000.0)
    }

    /// This node and every node under it, depth first, with their depth.
    pub fn walk(&self) -> Vec<(usize, &Node)> {
        let mut out = Vec::new();
        fn go<'a>(n: &'a Node, depth: usize, out: &mut Vec<(usize, &'a Node)>) {
            out.push((depth, n));
            for c in &n.children {
                go(c, depth + 1, out);
            }
        }
        go(self, 0, &mut out);
        out
    }

    fn find_mut(&mut self, id: &str) -> Option<&mut Node> {
        if self.id == id {
            return Some(self);
        }
        self.children.iter_mut().find_map(|c| c.find_mut(id))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("segment document is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("segment document has no {0}")]
    Missing(&'static str),
}

pub fn parse(document: &str) -> Result<Node, DocumentError> {
    let v: Value = serde_json::from_str(document)?;
    node(&v, true)
}

fn node(v: &Value, is_segment: bool) -> Result<Node, DocumentError> {
    let name = v["name"].as_str().ok_or(DocumentError::Missing("name"))?;
    let start = v["start_time"]
        .as_f64()
        .ok_or(DocumentError::Missing("start_time"))?;
    let mut children = Vec::new();
    for c in v["subsegments"].as_array().into_iter().flatten() {
        children.push(node(c, false)?);
    }
    children.sort_by(|a, b| a.start.total_cmp(&b.start));
    let cause = v["cause"]["exceptions"]
        .as_array()
        .and_then(|e| e.first())
        .and_then(|e| e["message"].as_str())
        .map(str::to_owned);
    Ok(Node {
        name: name.to_string(),
        id: v["id"].as_str().unwrap_or_default().to_string(),
        start,
        end: v["end_time"].as_f64(),
        is_segment,
        fault: v["fault"].as_bool().unwrap_or(false),
        error: v["error"].as_bool().unwrap_or(false),
        throttle: v["throttle"].as_bool().unwrap_or(false),
        http_status: v["http"]["response"]["status"].as_u64(),
        cause,
        children,
        parent_id: v["parent_id"].as_str().map(str::to_owned),
    })
}

/// Nests segments under the subsegment whose id is their `parent_id`; what has no parent
/// in the trace stays a root. Roots come out in start order.
pub fn assemble(mut segments: Vec<Node>) -> Vec<Node> {
    segments.sort_by(|a, b| a.start.total_cmp(&b.start));
    let mut roots: Vec<Node> = Vec::new();
    let mut pending: Vec<Node> = Vec::new();
    for s in segments {
        if s.parent_id.is_some() {
            pending.push(s);
        } else {
            roots.push(s);
        }
    }
    // A child may hang under another pending segment: place until nothing moves.
    loop {
        let mut placed_any = false;
        let mut still = Vec::new();
        for s in pending {
            let parent = s.parent_id.clone().unwrap_or_default();
            let target = roots.iter_mut().find_map(|r| r.find_mut(&parent));
            match target {
                Some(t) => {
                    t.children.push(s);
                    t.children.sort_by(|a, b| a.start.total_cmp(&b.start));
                    placed_any = true;
                }
                None => still.push(s),
            }
        }
        pending = still;
        if !placed_any || pending.is_empty() {
            break;
        }
    }
    roots.extend(pending);
    roots.sort_by(|a, b| a.start.total_cmp(&b.start));
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_nest_under_the_subsegment_that_called_them() {
        let front = parse(
            r#"{"name":"api","id":"a1","trace_id":"t","start_time":100.0,"end_time":102.5,
                "http":{"response":{"status":500}},"fault":true,
                "subsegments":[{"id":"s2","name":"cache","start_time":100.5,"end_time":100.6},
                               {"id":"s1","name":"comprehend","start_time":100.1,"end_time":102.4}]}"#,
        )
        .expect("parses");
        let back = parse(
            r#"{"name":"comprehend-svc","id":"b1","parent_id":"s1","start_time":100.2,"end_time":102.3,
                "cause":{"exceptions":[{"message":"boom"}]},"error":true}"#,
        )
        .expect("parses");
        assert_eq!(front.duration_ms().map(f64::round), Some(2500.0));
        assert_eq!(front.http_status, Some(500));
        assert_eq!(front.children[0].name, "comprehend", "sorted by start");
        let roots = assemble(vec![back, front]);
        assert_eq!(roots.len(), 1);
        let names: Vec<(usize, &str)> = roots[0]
            .walk()
            .iter()
            .map(|(d, n)| (*d, n.name.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                (0, "api"),
                (1, "comprehend"),
                (2, "comprehend-svc"),
                (1, "cache")
            ]
        );
        let svc = &roots[0].children[0].children[0];
        assert!(svc.is_segment && svc.error);
        assert_eq!(svc.cause.as_deref(), Some("boom"));
    }

    #[test]
    fn bad_documents_say_what_is_wrong() {
        assert!(matches!(parse("{"), Err(DocumentError::Json(_))));
        assert!(matches!(
            parse(r#"{"name":"x"}"#),
            Err(DocumentError::Missing("start_time"))
        ));
        let orphan =
            parse(r#"{"name":"o","id":"x","parent_id":"zz","start_time":1}"#).expect("parses");
        assert_eq!(assemble(vec![orphan]).len(), 1, "an orphan stays a root");
    }
}
