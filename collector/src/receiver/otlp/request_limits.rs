//! Per-request limits of the OTLP receiver: how many items one request may carry and how
//! many attributes one item may have. Both bound the work and memory one sender can ask
//! for in one request, whatever the memory budget says, and are refused with a message
//! that names the option, so the sender knows to split its batches.

use aurastream_proto::otlp::common::KeyValue;
use aurastream_proto::otlp::metrics::metric::Data;

use crate::model::SignalData;

/// Why a request breaks a per-request limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "request holds {items} items, more than max_items_per_request ({max}); send smaller \
         requests"
    )]
    TooManyItems { items: usize, max: usize },
    #[error(
        "an item (or its resource or scope) has {attributes} attributes, more than \
         max_attributes_per_item ({max})"
    )]
    TooManyAttributes { attributes: usize, max: usize },
}

/// Checks `data` (carrying `items` items before validation) against both limits.
pub fn check(
    data: &SignalData,
    items: usize,
    max_items: usize,
    max_attributes: usize,
) -> Result<(), LimitError> {
    if items > max_items {
        return Err(LimitError::TooManyItems {
            items,
            max: max_items,
        });
    }
    let most = most_attributes(data);
    if most > max_attributes {
        return Err(LimitError::TooManyAttributes {
            attributes: most,
            max: max_attributes,
        });
    }
    Ok(())
}

/// The most attributes any one list in `data` holds: a resource's, a scope's, an item's,
/// or a span event's or link's.
fn most_attributes(data: &SignalData) -> usize {
    let n = |a: &Vec<KeyValue>| a.len();
    let resource = |r: &Option<aurastream_proto::otlp::resource::Resource>| {
        r.as_ref().map_or(0, |r| r.attributes.len())
    };
    let scope = |s: &Option<aurastream_proto::otlp::common::InstrumentationScope>| {
        s.as_ref().map_or(0, |s| s.attributes.len())
    };
    let mut most = 0;
    match data {
        SignalData::Traces(rs) => {
            for r in rs {
                most = most.max(resource(&r.resource));
                for ss in &r.scope_spans {
                    most = most.max(scope(&ss.scope));
                    for s in &ss.spans {
                        most = most.max(n(&s.attributes));
                        for e in &s.events {
                            most = most.max(n(&e.attributes));
                        }
                        for l in &s.links {
                            most = most.max(n(&l.attributes));
                        }
                    }
                }
            }
        }
        SignalData::Metrics(rm) => {
            for r in rm {
                most = most.max(resource(&r.resource));
                for sm in &r.scope_metrics {
                    most = most.max(scope(&sm.scope));
                    for m in &sm.metrics {
                        let points = match &m.data {
                            Some(Data::Gauge(g)) => {
                                g.data_points.iter().map(|p| n(&p.attributes)).max()
                            }
                            Some(Data::Sum(s)) => {
                                s.data_points.iter().map(|p| n(&p.attributes)).max()
                            }
                            Some(Data::Histogram(h)) => {
                                h.data_points.iter().map(|p| n(&p.attributes)).max()
                            }
                            Some(Data::ExponentialHistogram(h)) => {
                                h.data_points.iter().map(|p| n(&p.attributes)).max()
                            }
                            Some(Data::Summary(s)) => {
                                s.data_points.iter().map(|p| n(&p.attributes)).max()
                            }
                            None => None,
                        };
                        most = most.max(points.unwrap_or(0)).max(n(&m.metadata));
                    }
                }
            }
        }
        SignalData::Logs(rl) => {
            for r in rl {
                most = most.max(resource(&r.resource));
                for sl in &r.scope_logs {
                    most = most.max(scope(&sl.scope));
                    for l in &sl.log_records {
                        most = most.max(n(&l.attributes));
                    }
                }
            }
        }
    }
    most
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurastream_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
    use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, span::Event};

    fn attrs(n: usize) -> Vec<KeyValue> {
        vec![KeyValue::default(); n]
    }

    #[test]
    fn items_over_the_cap_are_refused() {
        let data = SignalData::Logs(vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(); 11],
                ..Default::default()
            }],
            ..Default::default()
        }]);
        assert_eq!(check(&data, 11, 11, 5), Ok(()));
        assert_eq!(
            check(&data, 11, 10, 5),
            Err(LimitError::TooManyItems { items: 11, max: 10 })
        );
    }

    #[test]
    fn attributes_are_counted_per_list_including_span_events() {
        let span = Span {
            attributes: attrs(3),
            events: vec![Event {
                attributes: attrs(7),
                ..Default::default()
            }],
            ..Default::default()
        };
        let data = SignalData::Traces(vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }]);
        assert_eq!(check(&data, 1, 10, 7), Ok(()));
        let e = check(&data, 1, 10, 6).unwrap_err();
        assert_eq!(
            e,
            LimitError::TooManyAttributes {
                attributes: 7,
                max: 6
            }
        );
        assert!(e.to_string().contains("max_attributes_per_item (6)"));
    }
}
