//! Flush on demand: "send everything you hold now, and tell me when it has arrived".
//!
//! A long-running collector can let the batch processor wait for `timeout` or
//! `send_batch_size`; an AWS Lambda extension cannot, because the sandbox is frozen as soon
//! as the extension asks for its next event, and whatever it still holds would wait,
//! frozen, until the next invocation (or be lost with the sandbox). So the extension asks
//! every batch processor to send what it holds ([`FlushControl::request`]) and then waits
//! until every pipeline's [`ItemBudget`] is empty, i.e. every exporter is done with every
//! item ([`flush_pipelines`]).

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::model::ItemBudget;

/// How often a flush that is still waiting asks the processors again. Data that reaches a
/// batch processor *after* it answered a request (a request still being decoded by a
/// receiver, or a second batch processor in the same pipeline) is sent on the next ask.
const REPEAT_REQUEST: Duration = Duration::from_millis(5);

/// The sending side: held by whoever decides when to flush (the Lambda extension).
#[derive(Clone)]
pub struct FlushControl {
    requests: watch::Sender<u64>,
}

/// The receiving side, one per batch processor.
pub struct FlushSignal {
    requests: watch::Receiver<u64>,
}

impl Default for FlushControl {
    fn default() -> Self {
        FlushControl::new()
    }
}

impl FlushControl {
    pub fn new() -> FlushControl {
        FlushControl {
            requests: watch::Sender::new(0),
        }
    }

    pub fn subscribe(&self) -> FlushSignal {
        FlushSignal {
            requests: self.requests.subscribe(),
        }
    }

    /// Asks every subscribed processor to send what it holds. Requests made while a
    /// processor is busy are coalesced into one.
    pub fn request(&self) {
        self.requests.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl FlushSignal {
    /// Resolves on the next flush request. Never resolves once the control is gone (a
    /// collector without a flush driver simply never flushes early).
    pub async fn requested(&mut self) {
        if self.requests.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// What a flush that ran out of time left behind: `(pipeline, items)` still held. They
/// stay queued and go out with the next flush; nothing is dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("flush deadline reached with items still held: {}", describe(.0))]
pub struct Unflushed(pub Vec<(String, usize)>);

fn describe(held: &[(String, usize)]) -> String {
    held.iter()
        .map(|(p, n)| format!("{p}={n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Asks the processors to flush and waits until every budget is empty or `deadline` passes.
pub async fn flush_pipelines(
    control: &FlushControl,
    budgets: &[(String, ItemBudget)],
    deadline: Instant,
) -> Result<(), Unflushed> {
    loop {
        control.request();
        let all_empty = async {
            for (_, budget) in budgets {
                budget.wait_empty().await;
            }
        };
        let wake = (Instant::now() + REPEAT_REQUEST).min(deadline);
        if tokio::time::timeout_at(wake, all_empty).await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let held = budgets
                .iter()
                .map(|(name, b)| (name.clone(), b.held()))
                .filter(|(_, n)| *n > 0)
                .collect::<Vec<_>>();
            return if held.is_empty() {
                Ok(())
            } else {
                Err(Unflushed(held))
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::gauge::Gauge;

    use super::*;

    fn budget(capacity: usize) -> ItemBudget {
        ItemBudget::new(capacity, Gauge::default(), Gauge::default())
    }

    #[tokio::test]
    async fn a_request_reaches_every_subscriber_and_requests_coalesce() {
        let control = FlushControl::new();
        let mut a = control.subscribe();
        let mut b = control.subscribe();
        control.request();
        control.request();
        a.requested().await;
        b.requested().await;
        let again = tokio::time::timeout(Duration::from_millis(20), a.requested()).await;
        assert!(
            again.is_err(),
            "two requests before a wake-up are one flush"
        );
    }

    #[tokio::test]
    async fn a_dropped_control_never_wakes_a_processor() {
        let control = FlushControl::new();
        let mut signal = control.subscribe();
        drop(control);
        let woke = tokio::time::timeout(Duration::from_millis(20), signal.requested()).await;
        assert!(woke.is_err());
    }

    #[tokio::test]
    async fn flush_returns_once_the_held_items_are_released() {
        let control = FlushControl::new();
        let mut signal = control.subscribe();
        let b = budget(100);
        let ticket = b.try_admit(7).unwrap();
        // A stand-in processor: on the request, "exports" the held batch.
        tokio::spawn(async move {
            signal.requested().await;
            drop(ticket);
        });
        let budgets = vec![("traces".to_string(), b.clone())];
        flush_pipelines(&control, &budgets, Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(b.held(), 0);
    }

    #[tokio::test]
    async fn flush_reports_what_is_left_at_the_deadline_and_keeps_it() {
        let control = FlushControl::new();
        let b = budget(100);
        let ticket = b.try_admit(3).unwrap();
        let budgets = vec![("logs".to_string(), b.clone())];
        let err = flush_pipelines(
            &control,
            &budgets,
            Instant::now() + Duration::from_millis(30),
        )
        .await
        .unwrap_err();
        assert_eq!(err, Unflushed(vec![("logs".into(), 3)]));
        assert_eq!(b.held(), 3, "nothing is dropped by a late flush");
        drop(ticket);
    }
}
