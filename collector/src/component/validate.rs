//! Checks that many components' options share.

use serde::Deserialize;

/// Longest timeout an option may set: the collector adds timeouts to the current instant,
/// which panics past the clock's range (a few hundred billion years on Linux, far less on
/// some platforms). A year is longer than any sensible timeout.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// Refuses a duration option longer than [`MAX_DURATION`], naming it.
pub fn check_duration(name: &str, value: std::time::Duration) -> Result<(), String> {
    if value > MAX_DURATION {
        return Err(format!(
            "{name} {} is too long; at most {}",
            humantime::format_duration(value),
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(())
}

/// Deserializes an optional section where `key:` with no value means "on, with defaults".
pub fn present_or_default<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}
