//! The `xray_sampling` processor: tail-based sampling with X-Ray's rules.
//!
//! Spans wait in a [`tail::TailBuffer`] until their trace is complete enough to judge,
//! then the trace is matched against the rules ([`rules`], [`trace_view`]) and kept or
//! dropped as a whole ([`sampler`]). Deciding at the tail, rather than in each SDK at the
//! head, lets a rule ask for what is only known at the end, such as an error status on any
//! span of the trace.
//!
//! The choices that the rule documents leave open, in one place:
//!
//! * Matching ignores case in every field and attribute value, as the X-Ray SDKs do
//!   ([`glob`]); a field the trace does not have is the empty string, which only `*`
//!   matches.
//! * Service name, host, method and path are the root span's (resource `service.name`;
//!   `http.request.method`/`http.method`; `url.path`/`http.target`/`url.full`/`http.url`;
//!   `server.address`/`http.host`/`net.host.name`), see [`trace_view`]. Rule `attributes`
//!   match if some span of the trace carries the attribute (or its old/new convention
//!   alias, so `http.status_code` also reads `http.response.status_code`).
//! * Order: centralized rules by priority, local rules in file order, catch-alls last
//!   ([`rules`]). The first matching rule decides, except that a rule with `attributes`
//!   gets a second turn when an earlier rule dropped the trace ([`sampler`]): a trace a
//!   rule asks for (errors) is never lost to a cheaper rule ahead of it.
//! * `honor_upstream_sampled`: a root span whose OTLP `flags` carry the W3C `sampled` bit
//!   (`flags & 0x01`; `0x100`/`0x200` are the "is remote" bits, not the decision) is kept
//!   without consulting the rules or spending a reservoir.
//! * Evicted traces are decided early, not dropped ([`tail`]); so are traces that reach
//!   `max_spans_per_trace` or `max_bytes_per_trace`; waiting traces are decided when the
//!   input closes (shutdown), not dropped.
//! * Adaptive sampling (`SamplingRateBoost`): a rule's rate is raised to its `MaxRate` while
//!   its traces show a spike of faults, here or by X-Ray in centralized mode ([`sampler`]).
//! * A rules file that does not parse is refused with an error log and counted in
//!   `rules_rejected`; the rules in force stay. New rules start with empty reservoirs.
//!
//! Counted on `/metrics`: per rule,
//! `sampling_rule_decisions{component=ID,rule=NAME,decision=kept|dropped|borrowed}` (traces)
//! and `decision="boosted"` (local boosts started); in `component_events`: `traces_evicted`, `traces_limited/spans`, `traces_limited/bytes`,
//! `upstream_sampled`, `no_matching_rule`, `rules_reloaded` (a rules file or X-Ray's
//! rules taken), `rules_rejected`, `targets_applied` (X-Ray targets, centralized mode);
//! dropped spans in `pipeline_dropped_items` with reason `not_sampled`, `evicted`,
//! `trace_limit` or `unreadable`. The rule counters are labelled by processor id only: one
//! id used in two trace pipelines adds up both instances, as X-Ray's own per-rule
//! statistics add up hosts. What the buffer holds is the gauge
//! `processor_held_bytes{pipeline,component}` ([`XRaySamplingProcessor::held_bytes`]).
//!
//! Whole traces across services: sidecars route every span of a trace to one gateway
//! running this processor with the `loadbalancing` exporter
//! ([`crate::exporter::loadbalancing`]). Without that tier, each collector decides on the
//! spans it sees, and the trace-id draw makes those decisions agree except for reservoir
//! keeps.
//!
//! Centralized mode ([`centralized`], option `centralized`): X-Ray's `GetSamplingRules`
//! replace the local rules once they arrive, and per-rule statistics are reported with
//! `GetSamplingTargets`, whose rates and reservoir quotas the sampler applies. Until X-Ray
//! answers, or when it cannot be reached, the local rules decide.

pub(crate) mod centralized;
/// The calls to X-Ray's sampling API go through aws-sdk-xray, which the lean Lambda layer
/// leaves out (cargo feature `xray-api`); its config validation refuses `centralized`.
#[cfg(feature = "xray-api")]
mod centralized_api;
pub(crate) mod config;
pub(crate) mod glob;
pub mod rules;
pub mod sampler;
pub mod tail;
pub mod trace_view;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use self::centralized::Update;
use self::config::XRaySamplingConfig;
use self::rules::RuleSet;
pub use self::rules::{LoadRulesError, load_rules_file};
use self::sampler::{RuleCounters, Sampler};
use self::tail::{Released, TailBuffer, TailCounters, TailLimits};
use crate::component::Processor;
use crate::component::validate::Invalid;
use crate::model::Batch;
use crate::model::Signal;
use crate::telemetry::metrics::{RuleDecision, SelfMetrics};

/// What identifies a version of the rules file without reading it: modification time and
/// length (the length catches rewrites within the file system's timestamp granularity).
type FileStamp = Option<(Option<SystemTime>, u64)>;

fn stamp(path: &Path) -> FileStamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.modified().ok(), m.len()))
}

pub struct XRaySamplingProcessor {
    id: String,
    config: XRaySamplingConfig,
    metrics: Arc<SelfMetrics>,
    buffer: TailBuffer,
    rules_stamp: FileStamp,
    reloaded: Counter,
    rejected: Counter,
    /// Target documents from X-Ray applied (centralized mode).
    targets_applied: Counter,
    /// Whether X-Ray's rules have replaced the local ones.
    centralized_in_force: bool,
    /// Counted if the next stage has gone away (only possible while shutting down).
    lost: Counter,
    /// The buffer's `held_bytes`, readable after the processor has moved into its task.
    held_bytes: Gauge,
}

impl XRaySamplingProcessor {
    /// Loads the rules (the file, or the guide's rules) and sets up the buffer.
    pub fn new(
        id: &str,
        pipeline: &str,
        config: XRaySamplingConfig,
        metrics: Arc<SelfMetrics>,
    ) -> Result<XRaySamplingProcessor, LoadRulesError> {
        let (rules, rules_stamp) = match &config.rules_file {
            Some(path) => {
                let s = stamp(path);
                (load_rules_file(path)?, s)
            }
            None => (RuleSet::builtin(), None),
        };
        Ok(Self::with_rules(
            id,
            pipeline,
            config,
            rules,
            rules_stamp,
            metrics,
        ))
    }

    /// Sets up the processor with rules already read (`rules_stamp`: the rules file's
    /// stamp when they were read from it).
    fn with_rules(
        id: &str,
        pipeline: &str,
        config: XRaySamplingConfig,
        rules: RuleSet,
        rules_stamp: FileStamp,
        metrics: Arc<SelfMetrics>,
    ) -> XRaySamplingProcessor {
        let event = |e: &str| metrics.component_event(id, Signal::Traces, e);
        let dropped = |reason: &str| metrics.pipeline_dropped(pipeline, id, reason);
        let held_bytes = metrics.processor_held_bytes(pipeline, id);
        let counters = TailCounters {
            not_sampled: dropped("not_sampled"),
            evicted: dropped("evicted"),
            traces_evicted: event("traces_evicted"),
            trace_limit: dropped("trace_limit"),
            traces_limited_spans: event("traces_limited/spans"),
            traces_limited_bytes: event("traces_limited/bytes"),
            unreadable: dropped("unreadable"),
            upstream_sampled: event("upstream_sampled"),
            no_matching_rule: event("no_matching_rule"),
            held_bytes: held_bytes.clone(),
        };
        let limits = TailLimits {
            decision_wait: config.decision_wait,
            max_wait: config.max_wait,
            num_traces: config.num_traces,
            decision_cache_size: config.decision_cache_size,
            honor_upstream_sampled: config.honor_upstream_sampled,
            max_spans_per_trace: config.max_spans_per_trace,
            max_bytes_per_trace: config.max_bytes_per_trace,
        };
        let sampler = Sampler::new(rules, &|name| rule_counters(&metrics, id, name));
        XRaySamplingProcessor {
            buffer: TailBuffer::new(limits, sampler, counters, Instant::now()),
            reloaded: event("rules_reloaded"),
            rejected: event("rules_rejected"),
            targets_applied: event("targets_applied"),
            centralized_in_force: false,
            lost: metrics.pipeline_dropped(pipeline, id, "shutdown"),
            held_bytes,
            id: id.to_string(),
            config,
            metrics,
            rules_stamp,
        }
    }

    /// Bytes the tail buffer holds now: the spans waiting for a decision (encoded), the
    /// resources and scopes they share (each once), and the buffer's bookkeeping. Also on
    /// `/metrics` as `processor_held_bytes`.
    pub fn held_bytes(&self) -> usize {
        usize::try_from(self.held_bytes.get()).unwrap_or(0)
    }

    /// Re-reads the rules file if it changed since it was last read (or always, on
    /// SIGHUP). A bad file is logged and the rules in force stay.
    fn reload(&mut self, forced: bool) {
        if self.centralized_in_force {
            if forced {
                tracing::info!(processor = %self.id,
                    "SIGHUP: X-Ray's sampling rules are in force; the local rules are not applied");
            }
            return;
        }
        let Some(path) = self.config.rules_file.clone() else {
            if forced {
                tracing::info!(
                    processor = %self.id,
                    "SIGHUP: no rules_file is configured; the built-in sampling rules stay"
                );
            }
            return;
        };
        let now = stamp(&path);
        if !forced && now == self.rules_stamp {
            return;
        }
        // Remembered even if the file is bad, so a bad file is reported once, not on
        // every poll.
        self.rules_stamp = now;
        match load_rules_file(&path) {
            Ok(rules) => {
                let count = rules.rules.len();
                let (metrics, id) = (&self.metrics, self.id.as_str());
                let sampler = Sampler::new(rules, &|name| rule_counters(metrics, id, name));
                self.buffer.set_sampler(sampler);
                self.reloaded.inc();
                tracing::info!(processor = %self.id, path = %path.display(), rules = count,
                    "sampling rules reloaded");
            }
            Err(e) => {
                self.rejected.inc();
                tracing::error!(processor = %self.id, error = %e,
                    "sampling rules file rejected; the previous rules stay in force");
            }
        }
    }

    /// Takes what X-Ray's task sends: its rules replace the rules in force, its targets
    /// adjust them.
    fn apply(&mut self, update: Update) {
        match update {
            Update::Rules(rules) => {
                let (metrics, id) = (&self.metrics, self.id.as_str());
                let sampler = Sampler::new(rules, &|name| rule_counters(metrics, id, name))
                    .with_boosts_from_xray();
                self.buffer.set_sampler(sampler);
                self.centralized_in_force = true;
                self.reloaded.inc();
            }
            Update::Targets(assignments) => {
                let second = self.buffer.second(Instant::now());
                let now = SystemTime::now();
                let targets: Vec<_> = assignments
                    .iter()
                    .map(|a| a.to_target(second, now))
                    .collect();
                self.buffer.sampler_mut().apply_targets(&targets);
                self.targets_applied.inc_by(targets.len() as u64);
            }
        }
    }

    /// Hands the rules' statistics to X-Ray's task, unless it is still busy with the last
    /// ones (then they keep adding up for the next report).
    fn report(&mut self, statistics: &mpsc::Sender<Vec<sampler::RuleStatistics>>) {
        if let Ok(permit) = statistics.try_reserve() {
            let stats = self.buffer.sampler_mut().take_statistics();
            if !stats.is_empty() {
                permit.send(stats);
            }
        }
    }

    async fn send(&self, output: &mpsc::Sender<Batch>, released: Released) {
        if let Some(batch) = released.into_batch() {
            let n = batch.item_count();
            if output.send(batch).await.is_err() {
                self.lost.inc_by(n as u64);
            }
        }
    }
}

fn rule_counters(metrics: &SelfMetrics, id: &str, rule: &str) -> RuleCounters {
    let counter = |decision| metrics.sampling_rule(id, rule, decision);
    RuleCounters {
        kept: counter(RuleDecision::Kept),
        dropped: counter(RuleDecision::Dropped),
        borrowed: counter(RuleDecision::Borrowed),
        boosted: counter(RuleDecision::Boosted),
    }
}

/// Resolves on SIGHUP; never, where signals cannot be listened to.
struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    fn new(id: &str) -> Hangup {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal = signal(SignalKind::hangup())
                .map_err(|e| {
                    tracing::warn!(processor = %id, error = %e,
                        "cannot listen for SIGHUP; sampling rules reload on file change only");
                })
                .ok();
            Hangup { signal }
        }
        #[cfg(not(unix))]
        {
            let _ = id;
            Hangup {}
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.signal
            && s.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await
    }
}

#[async_trait]
impl Processor for XRaySamplingProcessor {
    /// The tail buffer's own bytes: the encoded spans waiting for a decision (also charged
    /// through their tickets, so counted twice while they wait: safe, never under), the
    /// resources and scopes they share, and the bookkeeping.
    fn held_bytes_gauge(&self) -> Option<Gauge> {
        Some(self.held_bytes.clone())
    }

    async fn run(
        mut self: Box<Self>,
        mut input: mpsc::Receiver<Batch>,
        output: mpsc::Sender<Batch>,
    ) {
        let mut poll = tokio::time::interval(self.config.rules_poll_interval);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let watch_file = self.config.rules_file.is_some();
        let mut hangup = Hangup::new(&self.id);
        #[cfg(feature = "xray-api")]
        let (statistics, mut updates) = match self.config.centralized.clone() {
            Some(c) => {
                let (tx, rx) = centralized_api::spawn(&self.id, c);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        // Without the X-Ray API the config refuses `centralized`: local rules only.
        #[cfg(not(feature = "xray-api"))]
        let (statistics, mut updates): (
            Option<mpsc::Sender<Vec<sampler::RuleStatistics>>>,
            Option<mpsc::Receiver<Update>>,
        ) = (None, None);
        let mut updates_open = updates.is_some();
        let report_every = self
            .config
            .centralized
            .as_ref()
            .map_or(Duration::from_secs(3600), |c| c.targets_interval);
        let mut report = tokio::time::interval_at(Instant::now() + report_every, report_every);
        report.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let due = self.buffer.next_due();
            let timer = async {
                match due {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = input.recv() => {
                    let Some(batch) = received else { break };
                    let mut released = Released::default();
                    if let Err(other) = self.buffer.ingest(batch, Instant::now(), &mut released) {
                        tracing::warn!(processor = %self.id, "non-trace batch passed on unsampled");
                        if let Err(e) = output.send(other).await {
                            self.lost.inc_by(e.0.item_count() as u64);
                        }
                    }
                    self.send(&output, released).await;
                }
                () = timer => {
                    let mut released = Released::default();
                    self.buffer.expire(Instant::now(), &mut released);
                    self.send(&output, released).await;
                }
                _ = poll.tick(), if watch_file => self.reload(false),
                () = hangup.recv() => self.reload(true),
                _ = report.tick(), if statistics.is_some() => {
                    if let Some(tx) = &statistics {
                        self.report(tx);
                    }
                }
                update = async {
                    match updates.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                }, if updates_open => match update {
                    Some(u) => self.apply(u),
                    None => updates_open = false,
                },
            }
        }
        let mut released = Released::default();
        self.buffer.flush(Instant::now(), &mut released);
        self.send(&output, released).await;
    }
}

impl crate::component::factory::ProcessorFactory for XRaySamplingConfig {
    fn signals(&self) -> &'static [crate::model::Signal] {
        &[crate::model::Signal::Traces]
    }

    fn validate(&self) -> Result<(), Invalid> {
        XRaySamplingConfig::validate(self)
    }

    fn build(
        &self,
        ctx: &crate::component::factory::ProcessorContext<'_>,
    ) -> Result<Box<dyn crate::component::Processor>, crate::component::factory::BuildError> {
        let processor =
            XRaySamplingProcessor::new(ctx.id, ctx.pipeline, self.clone(), ctx.metrics.clone())
                .map_err(|e| crate::component::factory::BuildError::Options(Invalid::own(e)))?;
        Ok(Box::new(processor))
    }
}

#[cfg(test)]
mod tests;
