use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;

use super::*;
use crate::component::flush::FlushControl;
use crate::model::ItemBudget;
use crate::model::SignalData;
use aurastream_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

fn batch(budget: &ItemBudget, spans: usize) -> Batch {
    let data = SignalData::Traces(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![Span::default(); spans],
            ..Default::default()
        }],
        ..Default::default()
    }]);
    Batch {
        ticket: budget.try_admit(spans).unwrap(),
        data,
    }
}

fn start(config: BatchConfig) -> (mpsc::Sender<Batch>, mpsc::Receiver<Batch>) {
    let (tx, rx, control) = start_with_flush(config);
    // Dropping the control leaves the processor without flush requests, as in a sidecar.
    drop(control);
    (tx, rx)
}

fn start_with_flush(
    config: BatchConfig,
) -> (mpsc::Sender<Batch>, mpsc::Receiver<Batch>, FlushControl) {
    let control = FlushControl::new();
    let (in_tx, in_rx) = mpsc::channel(16);
    let (out_tx, out_rx) = mpsc::channel(16);
    let p = Box::new(BatchProcessor::new(
        config,
        Counter::default(),
        control.subscribe(),
    ));
    tokio::spawn(p.run(in_rx, out_tx));
    (in_tx, out_rx, control)
}

fn budget() -> ItemBudget {
    ItemBudget::new(10_000, Gauge::default(), Gauge::default())
}

#[tokio::test(start_paused = true)]
async fn sends_when_size_reached_and_splits_at_max() {
    let b = budget();
    let (tx, mut rx) = start(BatchConfig {
        send_batch_size: 10,
        send_batch_max_size: 15,
        timeout: Duration::from_secs(60),
    });
    tx.send(batch(&b, 4)).await.unwrap();
    tx.send(batch(&b, 30)).await.unwrap();
    let sizes: Vec<usize> = vec![
        rx.recv().await.unwrap().item_count(),
        rx.recv().await.unwrap().item_count(),
    ];
    assert_eq!(sizes, vec![15, 15]);
    // 4 left, below send_batch_size: held until the timeout.
    assert!(rx.try_recv().is_err());
    tokio::time::advance(Duration::from_secs(61)).await;
    let last = rx.recv().await.unwrap();
    assert_eq!(last.item_count(), 4);
    assert_eq!(last.ticket.items(), 4);
}

#[tokio::test(start_paused = true)]
async fn timeout_flushes_a_small_batch() {
    let b = budget();
    let (tx, mut rx) = start(BatchConfig {
        send_batch_size: 100,
        send_batch_max_size: 0,
        timeout: Duration::from_millis(200),
    });
    tx.send(batch(&b, 3)).await.unwrap();
    tx.send(batch(&b, 2)).await.unwrap();
    let got = rx.recv().await.unwrap();
    assert_eq!(got.item_count(), 5);
    assert_eq!(
        b.held(),
        5,
        "items stay counted until the exporter drops the batch"
    );
    drop(got);
    assert_eq!(b.held(), 0);
}

#[tokio::test]
async fn closing_the_input_flushes_everything() {
    let b = budget();
    let (tx, mut rx) = start(BatchConfig {
        send_batch_size: 100,
        send_batch_max_size: 0,
        timeout: Duration::from_secs(3600),
    });
    tx.send(batch(&b, 7)).await.unwrap();
    drop(tx);
    assert_eq!(rx.recv().await.unwrap().item_count(), 7);
    assert!(rx.recv().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_flush_request_sends_everything_held_at_once() {
    let b = budget();
    let (tx, mut rx, control) = start_with_flush(BatchConfig {
        send_batch_size: 100,
        send_batch_max_size: 0,
        timeout: Duration::from_secs(3600),
    });
    tx.send(batch(&b, 3)).await.unwrap();
    tokio::task::yield_now().await;
    // Still in the channel when the request comes: flushed with the rest.
    tx.send(batch(&b, 4)).await.unwrap();
    control.request();
    let got = rx.recv().await.unwrap();
    assert_eq!(got.item_count(), 7);
    assert!(rx.try_recv().is_err());
    drop(got);
    assert_eq!(b.held(), 0);

    // The processor keeps working (and batching) after a flush.
    tx.send(batch(&b, 2)).await.unwrap();
    tokio::task::yield_now().await;
    assert!(
        rx.try_recv().is_err(),
        "no flush requested: held until timeout"
    );
    control.request();
    assert_eq!(rx.recv().await.unwrap().item_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_flush_still_respects_send_batch_max_size() {
    let b = budget();
    let (tx, mut rx, control) = start_with_flush(BatchConfig {
        send_batch_size: 100,
        send_batch_max_size: 100,
        timeout: Duration::from_secs(3600),
    });
    tx.send(batch(&b, 90)).await.unwrap();
    tx.send(batch(&b, 60)).await.unwrap();
    tokio::task::yield_now().await;
    control.request();
    let sizes = vec![
        rx.recv().await.unwrap().item_count(),
        rx.recv().await.unwrap().item_count(),
    ];
    assert_eq!(sizes.iter().sum::<usize>(), 150);
    assert!(sizes.iter().all(|&n| n <= 100), "{sizes:?}");
}
