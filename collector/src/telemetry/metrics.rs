//! Self-metrics: where every span, data point and log record went.
//!
//! The invariant the counters are built around, per pipeline and exporter:
//!
//! ```text
//! pipeline accepted = exporter sent + exporter withheld + exporter failed
//!                   + pipeline dropped + in flight
//! ```
//!
//! so a test (or an operator) can always tell where each item went. "Withheld" items were
//! not sent on purpose and nothing is lost by it (the first point of a cumulative series
//! only sets the EMF exporter's delta baseline); they are not failures, so alarms on
//! `exporter_failed_items` need no exceptions for them. Receivers count what
//! they accepted and refused (refused items were never acknowledged to the sender, so they
//! are the sender's to retry, not ours to lose). Components get counter handles once at
//! build time; incrementing one on the hot path is a single atomic add.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::model::Signal;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabels {
    pub receiver: String,
    pub transport: String,
    pub signal: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverReasonLabels {
    pub receiver: String,
    pub transport: String,
    pub signal: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineLabels {
    pub pipeline: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineReasonLabels {
    pub pipeline: String,
    pub component: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineComponentLabels {
    pub pipeline: String,
    pub component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    pub component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExporterLabels {
    pub exporter: String,
    pub pipeline: String,
    pub signal: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExporterReasonLabels {
    pub exporter: String,
    pub pipeline: String,
    pub signal: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentEventLabels {
    pub component: String,
    pub signal: String,
    pub event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerEventLabels {
    pub component: String,
    pub event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub component: String,
}

/// What a sampling rule did with a trace.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RuleDecision {
    /// Sampled, by the rule's rate or its reservoir.
    Kept,
    /// Not sampled.
    Dropped,
    /// Kept from the reservoir's borrowed share (one per second while X-Ray's quota is
    /// unknown), counted in `kept` as well.
    Borrowed,
    /// A fault spike raised the rule's rate (adaptive sampling); counted per boost started.
    Boosted,
}

impl RuleDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleDecision::Kept => "kept",
            RuleDecision::Dropped => "dropped",
            RuleDecision::Borrowed => "borrowed",
            RuleDecision::Boosted => "boosted",
        }
    }
}

impl EncodeLabelValue for RuleDecision {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub component: String,
    pub rule: String,
    pub decision: RuleDecision,
}

/// All of the collector's own counters, shared by every component.
pub struct SelfMetrics {
    registry: Registry,
    receiver_accepted: Family<ReceiverLabels, Counter>,
    receiver_refused: Family<ReceiverReasonLabels, Counter>,
    receiver_refused_requests: Family<ReceiverReasonLabels, Counter>,
    pipeline_accepted: Family<PipelineLabels, Counter>,
    pipeline_dropped: Family<PipelineReasonLabels, Counter>,
    queue_items: Family<PipelineLabels, Gauge>,
    queue_capacity: Family<PipelineLabels, Gauge>,
    memory_held: Gauge,
    memory_soft_limit: Gauge,
    memory_limit: Gauge,
    processor_held_bytes: Family<PipelineComponentLabels, Gauge>,
    exporter_held_bytes: Family<ComponentLabels, Gauge>,
    exporter_sent: Family<ExporterLabels, Counter>,
    exporter_failed: Family<ExporterReasonLabels, Counter>,
    exporter_withheld: Family<ExporterReasonLabels, Counter>,
    exporter_retries: Family<ExporterLabels, Counter>,
    component_events: Family<ComponentEventLabels, Counter>,
    sampling_rule_decisions: Family<RuleLabels, Counter>,
    listener_events: Family<ListenerEventLabels, Counter>,
    listener_connections: Family<ListenerLabels, Gauge>,
    rss: Gauge,
}

impl Default for SelfMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SelfMetrics {
    pub fn new() -> SelfMetrics {
        let mut registry = Registry::with_prefix("aurastream");
        let m = SelfMetrics {
            receiver_accepted: Family::default(),
            receiver_refused: Family::default(),
            receiver_refused_requests: Family::default(),
            pipeline_accepted: Family::default(),
            pipeline_dropped: Family::default(),
            queue_items: Family::default(),
            queue_capacity: Family::default(),
            memory_held: Gauge::default(),
            memory_soft_limit: Gauge::default(),
            memory_limit: Gauge::default(),
            processor_held_bytes: Family::default(),
            exporter_held_bytes: Family::default(),
            exporter_sent: Family::default(),
            exporter_failed: Family::default(),
            exporter_withheld: Family::default(),
            exporter_retries: Family::default(),
            component_events: Family::default(),
            sampling_rule_decisions: Family::default(),
            listener_events: Family::default(),
            listener_connections: Family::default(),
            rss: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "receiver_accepted_items",
            "Items (spans, data points, log records) a receiver acknowledged to the sender",
            m.receiver_accepted.clone(),
        );
        registry.register(
            "receiver_refused_items",
            "Items a receiver refused (never acknowledged; the sender may retry), by reason",
            m.receiver_refused.clone(),
        );
        registry.register(
            "receiver_refused_requests",
            "Requests a receiver refused before decoding them, so their items are unknown \
             (over the memory limit, or too large to ever fit it), by reason",
            m.receiver_refused_requests.clone(),
        );
        registry.register(
            "pipeline_accepted_items",
            "Items that entered a pipeline",
            m.pipeline_accepted.clone(),
        );
        registry.register(
            "pipeline_dropped_items",
            "Items a pipeline stage dropped, by component and reason",
            m.pipeline_dropped.clone(),
        );
        registry.register(
            "pipeline_queue_items",
            "Items held by a pipeline between acceptance and export",
            m.queue_items.clone(),
        );
        registry.register(
            "pipeline_queue_capacity_items",
            "Items a pipeline may hold before receivers refuse with UNAVAILABLE / 503",
            m.queue_capacity.clone(),
        );
        registry.register(
            "memory_limiter_held_bytes",
            "Bytes the memory limiter counts as held for requests and batches: requests being \
             decoded (their bound) and batches in the pipelines (as decoded); it adds \
             processor_held_bytes and exporter_held_bytes to these",
            m.memory_held.clone(),
        );
        registry.register(
            "memory_limiter_soft_limit_bytes",
            "Held bytes above which receivers refuse new requests (limit - spike)",
            m.memory_soft_limit.clone(),
        );
        registry.register(
            "memory_limiter_limit_bytes",
            "The memory limiter's hard limit: failed batches are shed above it",
            m.memory_limit.clone(),
        );
        registry.register(
            "processor_held_bytes",
            "Bytes a processor holds between batches (spans waiting in a tail-sampling buffer, \
             with the resources they share and the buffer's bookkeeping)",
            m.processor_held_bytes.clone(),
        );
        registry.register(
            "exporter_held_bytes",
            "Bytes an exporter holds besides the batches it is sending (the EMF exporter's \
             cumulative snapshot per series and dimension sets per metric), estimated",
            m.exporter_held_bytes.clone(),
        );
        registry.register(
            "exporter_sent_items",
            "Items an exporter delivered to its destination",
            m.exporter_sent.clone(),
        );
        registry.register(
            "exporter_failed_items",
            "Items an exporter could not deliver and gave up on, by reason",
            m.exporter_failed.clone(),
        );
        registry.register(
            "exporter_withheld_items",
            "Items an exporter deliberately did not send although nothing is lost by it (the \
             first point of a cumulative series is the baseline of its deltas), by reason; \
             not failures",
            m.exporter_withheld.clone(),
        );
        registry.register(
            "exporter_retries",
            "Export attempts repeated after a retryable error",
            m.exporter_retries.clone(),
        );
        registry.register(
            "component_events",
            "Component-specific events (documents trimmed, segments split, ...)",
            m.component_events.clone(),
        );
        registry.register(
            "sampling_rule_decisions",
            "Traces each sampling rule kept, dropped or borrowed from its reservoir, and its \
             adaptive boosts",
            m.sampling_rule_decisions.clone(),
        );
        registry.register(
            "listener_events",
            "Connections of a listener accepted, refused (max_connections), cut (timeouts, \
             idle, age, TLS handshake failures, shutdown), failed accepts, and requests \
             refused by the authenticator",
            m.listener_events.clone(),
        );
        registry.register(
            "listener_connections",
            "Connections a listener holds open",
            m.listener_connections.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident set size of the collector process",
            m.rss.clone(),
        );
        SelfMetrics { registry, ..m }
    }

    pub fn receiver_accepted(&self, receiver: &str, transport: &str, signal: Signal) -> Counter {
        self.receiver_accepted
            .get_or_create(&ReceiverLabels {
                receiver: receiver.into(),
                transport: transport.into(),
                signal: signal.as_str().into(),
            })
            .clone()
    }

    pub fn receiver_refused(
        &self,
        receiver: &str,
        transport: &str,
        signal: Signal,
        reason: &str,
    ) -> Counter {
        self.receiver_refused
            .get_or_create(&ReceiverReasonLabels {
                receiver: receiver.into(),
                transport: transport.into(),
                signal: signal.as_str().into(),
                reason: reason.into(),
            })
            .clone()
    }

    /// Requests refused before their items could be counted (not decoded yet).
    pub fn receiver_refused_requests(
        &self,
        receiver: &str,
        transport: &str,
        signal: Signal,
        reason: &str,
    ) -> Counter {
        self.receiver_refused_requests
            .get_or_create(&ReceiverReasonLabels {
                receiver: receiver.into(),
                transport: transport.into(),
                signal: signal.as_str().into(),
                reason: reason.into(),
            })
            .clone()
    }

    pub fn pipeline_accepted(&self, pipeline: &str) -> Counter {
        self.pipeline_accepted
            .get_or_create(&PipelineLabels {
                pipeline: pipeline.into(),
            })
            .clone()
    }

    pub fn pipeline_dropped(&self, pipeline: &str, component: &str, reason: &str) -> Counter {
        self.pipeline_dropped
            .get_or_create(&PipelineReasonLabels {
                pipeline: pipeline.into(),
                component: component.into(),
                reason: reason.into(),
            })
            .clone()
    }

    /// The memory limiter's account, and its limits shown beside it.
    pub fn memory_limiter_gauges(&self, soft: usize, hard: usize) -> Gauge {
        self.memory_soft_limit
            .set(i64::try_from(soft).unwrap_or(i64::MAX));
        self.memory_limit
            .set(i64::try_from(hard).unwrap_or(i64::MAX));
        self.memory_held.clone()
    }

    /// Bytes held by processor `component` of `pipeline`.
    pub fn processor_held_bytes(&self, pipeline: &str, component: &str) -> Gauge {
        self.processor_held_bytes
            .get_or_create(&PipelineComponentLabels {
                pipeline: pipeline.into(),
                component: component.into(),
            })
            .clone()
    }

    /// Bytes held by exporter `component` (one instance serves all its pipelines).
    pub fn exporter_held_bytes(&self, component: &str) -> Gauge {
        self.exporter_held_bytes
            .get_or_create(&ComponentLabels {
                component: component.into(),
            })
            .clone()
    }

    pub fn queue_gauges(&self, pipeline: &str) -> (Gauge, Gauge) {
        let l = PipelineLabels {
            pipeline: pipeline.into(),
        };
        (
            self.queue_items.get_or_create(&l).clone(),
            self.queue_capacity.get_or_create(&l).clone(),
        )
    }

    pub fn exporter_sent(&self, exporter: &str, pipeline: &str, signal: Signal) -> Counter {
        self.exporter_sent
            .get_or_create(&ExporterLabels {
                exporter: exporter.into(),
                pipeline: pipeline.into(),
                signal: signal.as_str().into(),
            })
            .clone()
    }

    pub fn exporter_retries(&self, exporter: &str, pipeline: &str, signal: Signal) -> Counter {
        self.exporter_retries
            .get_or_create(&ExporterLabels {
                exporter: exporter.into(),
                pipeline: pipeline.into(),
                signal: signal.as_str().into(),
            })
            .clone()
    }

    pub fn exporter_failed(
        &self,
        exporter: &str,
        pipeline: &str,
        signal: Signal,
        reason: &str,
    ) -> Counter {
        self.exporter_failed
            .get_or_create(&ExporterReasonLabels {
                exporter: exporter.into(),
                pipeline: pipeline.into(),
                signal: signal.as_str().into(),
                reason: reason.into(),
            })
            .clone()
    }

    /// Items not sent on purpose with nothing lost (see the module docs): not failures.
    pub fn exporter_withheld(
        &self,
        exporter: &str,
        pipeline: &str,
        signal: Signal,
        reason: &str,
    ) -> Counter {
        self.exporter_withheld
            .get_or_create(&ExporterReasonLabels {
                exporter: exporter.into(),
                pipeline: pipeline.into(),
                signal: signal.as_str().into(),
                reason: reason.into(),
            })
            .clone()
    }

    /// A counter for something a component wants operators to see that is not an item's
    /// fate (a document trimmed to fit, a batch split, a rule reloaded).
    pub fn component_event(&self, component: &str, signal: Signal, event: &str) -> Counter {
        self.component_events
            .get_or_create(&ComponentEventLabels {
                component: component.into(),
                signal: signal.as_str().into(),
                event: event.into(),
            })
            .clone()
    }

    /// A sampling rule's counter for one kind of decision; `component` is the processor id.
    pub fn listener_event(&self, component: &str, event: &str) -> Counter {
        self.listener_events
            .get_or_create(&ListenerEventLabels {
                component: component.into(),
                event: event.into(),
            })
            .clone()
    }

    pub fn listener_connections(&self, component: &str) -> Gauge {
        self.listener_connections
            .get_or_create(&ListenerLabels {
                component: component.into(),
            })
            .clone()
    }

    pub fn sampling_rule(&self, component: &str, rule: &str, decision: RuleDecision) -> Counter {
        self.sampling_rule_decisions
            .get_or_create(&RuleLabels {
                component: component.into(),
                rule: rule.into(),
                decision,
            })
            .clone()
    }

    /// Prometheus text exposition of every counter, with the RSS sampled now.
    pub fn encode(&self) -> String {
        if let Some(rss) = resident_memory_bytes() {
            self.rss.set(rss as i64);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Resident set size from `/proc/self/statm` (Linux); `None` elsewhere.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
