//! Cutting a batch into one part per backend, by trace id.
//!
//! Each part keeps the resource and scope of its spans (cloned per part), so a gateway
//! sees exactly what the sidecar received, only fewer spans.

use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans};

use super::ring::HashRing;

/// One `Vec<ResourceSpans>` per backend of `ring` (empty where no span goes there).
pub fn split_by_trace(batch: &[ResourceSpans], ring: &HashRing) -> Vec<Vec<ResourceSpans>> {
    let n = ring.backends().len();
    let mut parts: Vec<Vec<ResourceSpans>> = vec![Vec::new(); n];
    if n == 0 {
        return parts;
    }
    for rs in batch {
        let mut resource_parts: Vec<Option<ResourceSpans>> = vec![None; n];
        for ss in &rs.scope_spans {
            let mut scope_parts: Vec<Option<ScopeSpans>> = vec![None; n];
            for span in &ss.spans {
                let Some(b) = ring.route(&span.trace_id) else {
                    continue;
                };
                scope_parts[b]
                    .get_or_insert_with(|| ScopeSpans {
                        scope: ss.scope.clone(),
                        schema_url: ss.schema_url.clone(),
                        spans: Vec::new(),
                    })
                    .spans
                    .push(span.clone());
            }
            for (b, part) in scope_parts.into_iter().enumerate() {
                if let Some(part) = part {
                    resource_parts[b]
                        .get_or_insert_with(|| ResourceSpans {
                            resource: rs.resource.clone(),
                            schema_url: rs.schema_url.clone(),
                            scope_spans: Vec::new(),
                        })
                        .scope_spans
                        .push(part);
                }
            }
        }
        for (b, part) in resource_parts.into_iter().enumerate() {
            if let Some(part) = part {
                parts[b].push(part);
            }
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use aurastream_proto::otlp::common::{InstrumentationScope, KeyValue};
    use aurastream_proto::otlp::resource::Resource;
    use aurastream_proto::otlp::trace::Span;

    use super::*;

    fn span(trace: u8, id: u8) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            ..Span::default()
        }
    }

    #[test]
    fn spans_go_by_trace_id_with_their_resource_and_scope() {
        let ring = HashRing::new(["http://a:1".to_string(), "http://b:1".to_string()]);
        let resource = Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                ..KeyValue::default()
            }],
            ..Resource::default()
        };
        let batch = vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    ..InstrumentationScope::default()
                }),
                spans: (0..40u8).map(|i| span(i % 20, i)).collect(),
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }];
        let parts = split_by_trace(&batch, &ring);
        let mut total = 0;
        for (b, part) in parts.iter().enumerate() {
            for rs in part {
                assert_eq!(rs.resource.as_ref(), Some(&resource));
                for ss in &rs.scope_spans {
                    assert_eq!(ss.scope.as_ref().map(|s| s.name.as_str()), Some("lib"));
                    for s in &ss.spans {
                        assert_eq!(ring.route(&s.trace_id), Some(b));
                        total += 1;
                    }
                }
            }
        }
        assert_eq!(total, 40, "every span in exactly one part");
        assert!(
            parts.iter().all(|p| !p.is_empty()),
            "20 traces reach both backends"
        );
    }
}
