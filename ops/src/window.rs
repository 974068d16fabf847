//! The time window a command looks at, and the period of its points.
//!
//! CloudWatch answers per period: the window is split into at most [`MAX_POINTS`] periods
//! (the sparkline's width), each a multiple of 60 s, and laid on period boundaries so two
//! runs a few seconds apart ask for the same buckets. CloudWatch keeps 1-minute data for
//! 15 days, 5-minute data for 63 days and hourly data after that, so older windows get
//! coarser periods.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Points per KPI series: a sparkline fits a terminal line, a chart stays readable.
pub const MAX_POINTS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Seconds since the epoch, inclusive.
    pub start: i64,
    /// Seconds since the epoch, exclusive.
    pub end: i64,
    /// Seconds per point; a multiple of 60.
    pub period: i64,
}

impl Window {
    /// The window of length `since` ending at the period boundary at or after `now`.
    pub fn ending_at(now: SystemTime, since: Duration) -> Window {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let length = round_up(since.as_secs().max(60) as i64, 60);
        let mut period = round_up((length as u64).div_ceil(MAX_POINTS) as i64, 60);
        let age = length; // how far back the window reaches from now
        if age > 63 * 86_400 {
            period = round_up(period, 3600);
        } else if age > 15 * 86_400 {
            period = round_up(period, 300);
        }
        let end = round_up(now, period);
        let start = end - round_up(length, period);
        Window { start, end, period }
    }

    pub fn seconds(&self) -> i64 {
        self.end - self.start
    }

    pub fn points(&self) -> usize {
        (self.seconds() / self.period) as usize
    }

    /// Which point a timestamp falls in, if inside the window.
    pub fn slot(&self, t: i64) -> Option<usize> {
        (t >= self.start && t < self.end).then(|| ((t - self.start) / self.period) as usize)
    }

    /// "1h", "15m": the window's length as the user would type it.
    pub fn length_text(&self) -> String {
        humantime::format_duration(Duration::from_secs(self.seconds() as u64)).to_string()
    }

    /// "hour", "day", "15m": what follows "in the last" in a sentence.
    pub fn last_phrase(&self) -> String {
        match self.seconds() {
            3600 => "hour".into(),
            86_400 => "day".into(),
            _ => self.length_text(),
        }
    }

    /// "2026-12-04 16:00–17:00 UTC".
    pub fn range_text(&self) -> String {
        let start = timestamp_text(self.start);
        let end = timestamp_text(self.end);
        match (start.split_once(' '), end.split_once(' ')) {
            (Some((d1, t1)), Some((d2, t2))) if d1 == d2 => format!("{d1} {t1}–{t2} UTC"),
            _ => format!("{start} – {end} UTC"),
        }
    }
}

/// "2026-12-04 16:00:00" for seconds since the epoch (UTC).
pub fn timestamp_text(secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .trim_end_matches('Z')
        .replacen('T', " ", 1)
}

/// "2026-12-04 16:00:00.123" for milliseconds since the epoch (UTC).
pub fn millis_text(millis: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(millis.max(0) as u64);
    humantime::format_rfc3339_millis(t)
        .to_string()
        .trim_end_matches('Z')
        .replacen('T', " ", 1)
}

fn round_up(value: i64, step: i64) -> i64 {
    (value + step - 1).div_euclid(step) * step
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn an_hour_is_sixty_minute_points_ending_on_the_next_minute() {
        let w = Window::ending_at(at(1_000_030), Duration::from_secs(3600));
        assert_eq!(w.period, 60);
        assert_eq!(w.end, 1_000_080);
        assert_eq!(w.seconds(), 3600);
        assert_eq!(w.points(), 60);
    }

    #[test]
    fn short_and_odd_windows_keep_whole_minutes() {
        let w = Window::ending_at(at(600), Duration::from_secs(900));
        assert_eq!((w.period, w.points(), w.end), (60, 15, 600));
        let w = Window::ending_at(at(600), Duration::from_secs(10));
        assert_eq!((w.period, w.points()), (60, 1));
        // 61 minutes: 2-minute points, the window stretched to 62 minutes.
        let w = Window::ending_at(at(0), Duration::from_secs(61 * 60));
        assert_eq!((w.period, w.seconds()), (120, 62 * 60));
    }

    #[test]
    fn old_data_gets_the_resolution_cloudwatch_keeps() {
        let w = Window::ending_at(at(0), Duration::from_secs(30 * 86_400));
        assert_eq!(w.period % 300, 0);
        let w = Window::ending_at(at(0), Duration::from_secs(90 * 86_400));
        assert_eq!(w.period % 3600, 0);
        assert!(w.points() as u64 <= MAX_POINTS);
    }

    #[test]
    fn slots_and_texts() {
        let w = Window {
            start: 3600,
            end: 7200,
            period: 60,
        };
        assert_eq!(w.slot(3600), Some(0));
        assert_eq!(w.slot(3659), Some(0));
        assert_eq!(w.slot(7199), Some(59));
        assert_eq!(w.slot(7200), None);
        assert_eq!(w.range_text(), "1970-01-01 01:00:00–02:00:00 UTC");
        assert_eq!(w.length_text(), "1h");
    }
}
