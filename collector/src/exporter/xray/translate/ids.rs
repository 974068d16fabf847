//! X-Ray trace and segment ids from OTLP ids, and timestamps.
//!
//! An X-Ray trace id is the 128-bit OTLP id written as `1-{first 8 hex}-{last 24 hex}`.
//! X-Ray used to read the first 32 bits as the trace's start second and refuse ids that
//! were not recent; it now accepts W3C (random) ids, so the epoch check is optional.

pub use crate::model::ids::hex;

/// How old (in seconds) a legacy X-Ray trace id may be: X-Ray keeps traces 30 days.
const MAX_AGE_SECS: u64 = 30 * 24 * 60 * 60;
/// How far in the future a legacy trace id may be: clock skew between hosts.
const MAX_SKEW_SECS: u64 = 5 * 60;

/// `1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx`, or `None` for a malformed or all-zero id.
pub(crate) fn trace_id(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    let h = hex(bytes);
    Some(format!("1-{}-{}", &h[..8], &h[8..]))
}

/// 16 hex digits, or `None` for a malformed or all-zero id.
pub(crate) fn span_id(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 8 || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(hex(bytes))
}

/// Whether the first 32 bits of a (valid, 16-byte) trace id are an epoch second within the
/// last 30 days, allowing 5 minutes of clock skew.
pub(crate) fn has_recent_epoch(trace_id: &[u8], now_secs: u64) -> bool {
    let Some(head) = trace_id.get(..4) else {
        return false;
    };
    let epoch = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
    epoch + MAX_AGE_SECS >= now_secs && epoch <= now_secs + MAX_SKEW_SECS
}

/// Epoch seconds with microsecond precision, as X-Ray documents carry time.
pub(crate) fn seconds(unix_nanos: u64) -> f64 {
    (unix_nanos / 1_000) as f64 / 1_000_000.0
}

/// A 64-bit id derived from `seed`, as 16 hex digits. Deterministic, so a document sent
/// twice (after a retry) is identical; splitmix64 spreads neighbouring seeds apart.
pub(crate) fn derived_id(seed: u64) -> String {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    format!("{:016x}", z.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_keep_all_128_bits() {
        let id: Vec<u8> = (1..=16).collect();
        assert_eq!(
            trace_id(&id).as_deref(),
            Some("1-01020304-05060708090a0b0c0d0e0f10")
        );
        assert_eq!(trace_id(&[0; 16]), None);
        assert_eq!(trace_id(&[1; 8]), None);
        assert_eq!(span_id(&[0xab; 8]).as_deref(), Some("abababababababab"));
        assert_eq!(span_id(&[0; 8]), None);
        assert_eq!(span_id(&[]), None);
    }

    #[test]
    fn legacy_epoch_window() {
        let now = 1_800_000_000u64;
        let id = |epoch: u64| {
            let mut v = (epoch as u32).to_be_bytes().to_vec();
            v.extend([7u8; 12]);
            v
        };
        for (epoch, ok) in [
            (now, true),
            (now - MAX_AGE_SECS, true),
            (now - MAX_AGE_SECS - 1, false),
            (now + MAX_SKEW_SECS, true),
            (now + MAX_SKEW_SECS + 1, false),
            (0, false),
        ] {
            assert_eq!(has_recent_epoch(&id(epoch), now), ok, "epoch {epoch}");
        }
    }

    #[test]
    fn seconds_keep_microseconds() {
        assert_eq!(seconds(1_700_000_000_123_456_789), 1_700_000_000.123_456);
        assert_eq!(seconds(0), 0.0);
    }

    #[test]
    fn derived_ids_are_hex_and_distinct() {
        let a = derived_id(1);
        let b = derived_id(2);
        assert_ne!(a, b);
        for id in [a, b, derived_id(0), derived_id(u64::MAX)] {
            assert_eq!(id.len(), 16);
            assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        }
    }
}
