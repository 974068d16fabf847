//! Delivery markers: how a replayed batch avoids landing in CloudWatch Logs twice.
//!
//! PutLogEvents has no idempotency key, so a request that reached CloudWatch just before the
//! collector was killed (or whose answer was lost) would be stored again when the batch is
//! replayed from the queue on disk. With markers on, every PutLogEvents request carries one
//! extra, small event, last in the request and with its latest timestamp:
//!
//! ```json
//! {"aurastream.delivery_marker":"<32 hex digits>","events":<events in the request>}
//! ```
//!
//! The marker id is a hash of what identifies the request: the exporter, the queue record
//! the batch came from (its sequence number, stable across restarts), the log group and
//! stream, and every event's timestamp and message. A request is applied whole or not at
//! all, so before resending one that may already be there (a batch replayed after a restart,
//! or a retry after a timeout) the exporter looks for its marker with GetLogEvents at the
//! marker's timestamp, and skips the request if it is found.
//!
//! The markers are ordinary log events in the user's log groups: Logs Insights queries that
//! filter on the application's fields never match them, but `stats count(*)` over a whole
//! group counts one extra event per request (at most one per 10,000 events).

use sha2::{Digest, Sha256};

use super::request_builder::{EVENT_OVERHEAD_BYTES, LogEvent};
use super::target::LogTarget;
use crate::component::Provenance;
use crate::component::SendingQueueConfig;

/// The JSON member that names a delivery marker.
pub const MARKER_FIELD: &str = "aurastream.delivery_marker";
/// Bytes a marker takes from a request's budget (message + CloudWatch's per-event 26),
/// rounded up: `{"aurastream.delivery_marker":"<32>","events":10000}` is 72 bytes.
pub const MARKER_BILLED_BYTES: usize = 128;

/// `origin` of a marker event: it stands for no input item.
const NO_ORIGIN: usize = usize::MAX;

/// The markers for a batch from the queue on disk, if the `delivery_markers` option is on:
/// when asked for, and by default with a queue on disk (without one, nothing is replayed
/// after a restart).
pub fn for_queued(
    option: Option<bool>,
    queue: &SendingQueueConfig,
    exporter: &str,
    provenance: Provenance,
) -> Option<Markers> {
    option
        .unwrap_or(queue.storage.is_some())
        .then(|| Markers::new(exporter, provenance.key, provenance.replayed))
}

/// Markers for one batch taken from the queue on disk.
#[derive(Debug, Clone)]
pub struct Markers {
    exporter: String,
    key: u64,
    /// Look for each request's marker before sending it: the batch may be there already.
    pub check_first: bool,
}

impl Markers {
    pub fn new(exporter: &str, key: u64, check_first: bool) -> Markers {
        Markers {
            exporter: exporter.to_string(),
            key,
            check_first,
        }
    }

    /// The marker event of one request (`batch` is sorted by timestamp and not empty). It
    /// goes last with the latest timestamp: the request stays in order and within 24 hours,
    /// the events keep their indexes in `rejectedLogEventsInfo`, and CloudWatch rejects the
    /// marker as too old only if it rejects every event (nothing stored, nothing to skip).
    pub fn event(&self, target: &LogTarget, batch: &[LogEvent]) -> LogEvent {
        let mut h = Sha256::new();
        let field = |h: &mut Sha256, bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(&mut h, self.exporter.as_bytes());
        h.update(self.key.to_le_bytes());
        field(&mut h, target.group.as_bytes());
        field(&mut h, target.stream.as_bytes());
        for e in batch {
            h.update(e.timestamp_ms.to_le_bytes());
            field(&mut h, e.message.as_bytes());
        }
        let digest = h.finalize();
        let id: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let message = format!(r#"{{"{MARKER_FIELD}":"{id}","events":{}}}"#, batch.len());
        debug_assert!(message.len() + EVENT_OVERHEAD_BYTES <= MARKER_BILLED_BYTES);
        LogEvent {
            timestamp_ms: batch.last().map_or(0, |e| e.timestamp_ms),
            message,
            origin: NO_ORIGIN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(stream: &str) -> LogTarget {
        LogTarget {
            group: "/aurastream/application".into(),
            stream: stream.into(),
            retention_days: 30,
        }
    }

    fn events(messages: &[&str]) -> Vec<LogEvent> {
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| LogEvent {
                timestamp_ms: 1_700_000_000_000 + i as i64,
                message: m.to_string(),
                origin: i,
            })
            .collect()
    }

    #[test]
    fn a_marker_is_a_small_json_event_with_the_latest_timestamp() {
        let batch = events(&["a", "b", "c"]);
        let m = Markers::new("awscloudwatchlogs", 7, false).event(&target("s"), &batch);
        assert_eq!(m.timestamp_ms, 1_700_000_000_002);
        let doc: serde_json::Value = serde_json::from_str(&m.message).unwrap();
        assert_eq!(doc["events"], 3);
        let id = doc[MARKER_FIELD].as_str().unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(m.billed_size() <= MARKER_BILLED_BYTES);
    }

    #[test]
    fn the_same_request_gets_the_same_marker_and_any_difference_another() {
        let batch = events(&["a", "b"]);
        let marker = |exporter: &str, key: u64, stream: &str, batch: &[LogEvent]| {
            Markers::new(exporter, key, true)
                .event(&target(stream), batch)
                .message
        };
        let base = marker("x", 1, "s", &batch);
        assert_eq!(base, marker("x", 1, "s", &batch), "stable across calls");
        assert_ne!(base, marker("y", 1, "s", &batch), "exporter");
        assert_ne!(base, marker("x", 2, "s", &batch), "queue record");
        assert_ne!(base, marker("x", 1, "t", &batch), "stream");
        assert_ne!(base, marker("x", 1, "s", &events(&["a", "c"])), "message");
        assert_ne!(base, marker("x", 1, "s", &batch[..1]), "event count");
        // Length-prefixed fields: moving bytes between neighbours changes the id.
        assert_ne!(
            marker("x", 1, "s", &events(&["ab", ""])),
            marker("x", 1, "s", &events(&["a", "b"]))
        );
    }

    #[test]
    fn the_longest_marker_fits_its_reserved_room() {
        let batch = events(&vec!["x"; 10_000]);
        let m = Markers::new("e", u64::MAX, false).event(&target("s"), &batch);
        assert!(m.billed_size() <= MARKER_BILLED_BYTES, "{}", m.message);
    }
}
