//! Where events go: log group, stream and entity (names come from `template.rs`), and the
//! retention a group is created with.

use std::sync::Arc;

use super::entity::LogEntity;

/// The retention periods (days) CloudWatch Logs accepts; anything else is rejected by
/// PutRetentionPolicy. 0 in our configuration means "never expire" (no policy is set).
pub const ALLOWED_RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// A retention CloudWatch Logs would reject, with the nearest one it accepts.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "retention of {days} days is not accepted by CloudWatch Logs; the nearest allowed value \
     is {nearest} (allowed: 0 = never expire, {})",
    ALLOWED_RETENTION_DAYS.map(|d| d.to_string()).join(", ")
)]
pub struct RetentionNotAllowed {
    pub days: u32,
    pub nearest: u32,
}

/// Checks a retention value, naming the nearest allowed one when it is not allowed. (The
/// monitoring guide's `2555` days for "7 years" is such a value: CloudWatch wants 2557.)
pub fn validate_retention(days: u32) -> Result<(), RetentionNotAllowed> {
    if days == 0 || ALLOWED_RETENTION_DAYS.contains(&days) {
        return Ok(());
    }
    let nearest = ALLOWED_RETENTION_DAYS
        .iter()
        .copied()
        .min_by_key(|d| d.abs_diff(days))
        .unwrap_or(1);
    Err(RetentionNotAllowed { days, nearest })
}

/// A log group and stream, fully resolved, and the entity its requests carry. One
/// PutLogEvents request goes to one target, so events of different entities are never
/// batched together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogTarget {
    pub group: String,
    pub stream: String,
    /// Days, applied when the exporter creates the group; 0 = never expire.
    pub retention_days: u32,
    /// The service the events come from (see `entity.rs`); `None`: no entity is sent.
    /// Shared: every record of a resource has the same one.
    pub entity: Option<Arc<LogEntity>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_retention_values_pass() {
        for d in ALLOWED_RETENTION_DAYS {
            assert_eq!(validate_retention(d), Ok(()));
        }
        assert_eq!(validate_retention(0), Ok(()));
    }

    #[test]
    fn seed_retention_2555_is_rejected_naming_2557() {
        let err = validate_retention(2555).expect_err("2555 is not allowed");
        assert_eq!(err.nearest, 2557);
        assert!(
            err.to_string().contains("nearest allowed value is 2557"),
            "{err}"
        );
        let err = validate_retention(31).expect_err("31 is not allowed");
        assert_eq!(err.nearest, 30);
    }
}
