//! Where the rules apply in each signal: resources, spans with their events and links,
//! metric data points (and their exemplars), log records and their bodies.
//!
//! Each item gets its own summary (on its own attributes), and so does each resource.

use aurastream_proto::otlp::common::any_value::Value;
use aurastream_proto::otlp::logs::LogRecord;
use aurastream_proto::otlp::metrics::{Metric, metric::Data};
use aurastream_proto::otlp::resource::Resource;
use aurastream_proto::otlp::trace::Span;

use super::json_text::InPlace;
use super::rules::Rules;
use super::xray_document;
use crate::aws::xray::SEGMENT_DOCUMENT_ATTRIBUTE;
use crate::model::SignalData;

/// The tally key for a log body's own text.
const BODY: &str = "body";

impl Rules {
    pub fn redact(&self, data: &mut SignalData) {
        match data {
            SignalData::Traces(resources) => {
                for r in resources {
                    self.redact_resource(r.resource.as_mut());
                    for span in r.scope_spans.iter_mut().flat_map(|s| &mut s.spans) {
                        self.redact_span(span);
                    }
                }
            }
            SignalData::Metrics(resources) => {
                for r in resources {
                    self.redact_resource(r.resource.as_mut());
                    for metric in r.scope_metrics.iter_mut().flat_map(|s| &mut s.metrics) {
                        self.redact_metric(metric);
                    }
                }
            }
            SignalData::Logs(resources) => {
                for r in resources {
                    self.redact_resource(r.resource.as_mut());
                    for record in r.scope_logs.iter_mut().flat_map(|s| &mut s.log_records) {
                        self.redact_log(record);
                    }
                }
            }
        }
        self.end_batch();
    }

    fn redact_resource(&self, resource: Option<&mut Resource>) {
        if let Some(resource) = resource {
            let mut tally = self.tally();
            self.redact_attributes(&mut resource.attributes, &mut tally);
            tally.write(&mut resource.attributes);
        }
    }

    /// The span's attributes, its events' and links' attributes, and the X-Ray document it
    /// carries; the summary counts all of them on the span.
    fn redact_span(&self, span: &mut Span) {
        let mut tally = self.tally();
        let document = take_document(&mut span.attributes);
        self.redact_attributes(&mut span.attributes, &mut tally);
        for event in &mut span.events {
            self.redact_attributes(&mut event.attributes, &mut tally);
        }
        for link in &mut span.links {
            self.redact_attributes(&mut link.attributes, &mut tally);
        }
        if let Some(mut document) = document {
            if let Some(Value::StringValue(text)) =
                document.value.as_mut().and_then(|v| v.value.as_mut())
            {
                xray_document::redact(self, text, &mut tally);
            }
            span.attributes.push(document);
        }
        tally.write(&mut span.attributes);
    }

    fn redact_metric(&self, metric: &mut Metric) {
        macro_rules! points {
            ($points:expr, exemplars) => {
                for p in $points {
                    let mut tally = self.tally();
                    self.redact_attributes(&mut p.attributes, &mut tally);
                    for e in &mut p.exemplars {
                        self.redact_attributes(&mut e.filtered_attributes, &mut tally);
                    }
                    tally.write(&mut p.attributes);
                }
            };
            ($points:expr) => {
                for p in $points {
                    let mut tally = self.tally();
                    self.redact_attributes(&mut p.attributes, &mut tally);
                    tally.write(&mut p.attributes);
                }
            };
        }
        match &mut metric.data {
            Some(Data::Gauge(g)) => points!(&mut g.data_points, exemplars),
            Some(Data::Sum(s)) => points!(&mut s.data_points, exemplars),
            Some(Data::Histogram(h)) => points!(&mut h.data_points, exemplars),
            Some(Data::ExponentialHistogram(h)) => points!(&mut h.data_points, exemplars),
            Some(Data::Summary(s)) => points!(&mut s.data_points),
            None => {}
        }
    }

    fn redact_log(&self, record: &mut LogRecord) {
        let mut tally = self.tally();
        self.redact_attributes(&mut record.attributes, &mut tally);
        if let Some(body) = record.body.as_mut() {
            match &mut body.value {
                Some(Value::StringValue(text)) => self.redact_text_body(text, &mut tally),
                value => self.redact_value(BODY, value, &mut tally),
            }
        }
        tally.write(&mut record.attributes);
    }

    /// A string body holding a JSON object is a structured event (the CloudWatch Logs
    /// exporter sends it as one, and the monitoring guide logs requests that way), so its
    /// keys are redacted like a map body's; any other text has `blocked_values` masked.
    fn redact_text_body(&self, text: &mut String, tally: &mut super::summary::Tally) {
        match self.redact_json_text_in_place(text, tally) {
            InPlace::Unchanged => return,
            InPlace::Changed(redacted) => {
                *text = redacted;
                return;
            }
            InPlace::NeedsTree => {}
        }
        if text.trim_start().starts_with('{')
            && let Ok(serde_json::Value::Object(mut object)) = serde_json::from_str(text)
        {
            if self.redact_json_object(&mut object, tally) {
                *text = serde_json::Value::Object(object).to_string();
            }
            return;
        }
        if let Some(masked) = self.mask_matches(BODY, text, tally) {
            *text = masked;
        }
    }
}

/// Takes the X-Ray document attribute out of the list while the key rules run: it is the
/// carrier of a document, not a field of its own, so it is redacted field by field
/// (`xray_document`) rather than removed or masked whole.
fn take_document(
    attributes: &mut Vec<aurastream_proto::otlp::common::KeyValue>,
) -> Option<aurastream_proto::otlp::common::KeyValue> {
    let i = attributes
        .iter()
        .position(|kv| kv.key == SEGMENT_DOCUMENT_ATTRIBUTE)?;
    Some(attributes.remove(i))
}
