//! When the extension exports: the `flush` strategies and the `adaptive` rule.
//!
//! Lambda bills an invocation until every extension has asked for its next event. Waiting
//! for the invocation's `platform.runtimeDone` first — which the Telemetry API delivers
//! only after its buffering period, 25 ms at the least — and then flushing adds that time
//! to every invocation. Asking at once and exporting in the background adds nothing, but
//! an invocation's data then leaves during a later invocation (or at SHUTDOWN): for a
//! function invoked once an hour, an hour later.
//!
//! `adaptive` takes the best of both with one rule: **an invocation is handed back at once
//! (periodic) when each of the last [`FREQUENT_STREAK`] gaps between invocation starts was
//! shorter than `flush_interval`; otherwise it is flushed at its end.** So the first
//! invocations of a sandbox (the cold start and its warm-up) are flushed at their end, a
//! function invoked more often than the interval exports in the background, and one long
//! pause sends the next invocation back to end-of-invocation until the streak builds up
//! again. Under periodic export, data waits at most about one gap plus one interval, and
//! the gap is under the interval: the delay stays bounded by about twice `flush_interval`.
//!
//! Gaps are measured on the wall clock, which keeps running while the sandbox is frozen
//! (the monotonic clock inside a frozen sandbox need not).

use std::collections::VecDeque;
use std::time::Duration;

use crate::component::factory::LambdaFlush;

/// How many consecutive short gaps make invocations "frequent" under `adaptive`: one short
/// gap can be a retry or a burst, three in a row is a steady rate.
pub const FREQUENT_STREAK: usize = 3;

/// What the extension does with an invocation it has just been handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterInvoke {
    /// Wait for the invocation's runtimeDone, flush, then ask for the next event.
    FlushAtEnd,
    /// Ask for the next event at once; the data goes out in the background.
    HandBack,
}

/// The flush strategy and the recent invocation starts it decides from.
#[derive(Debug)]
pub struct Cadence {
    strategy: LambdaFlush,
    interval: Duration,
    /// Start times (ms since the Unix epoch) of the last `FREQUENT_STREAK + 1` invocations.
    starts: VecDeque<u64>,
}

impl Cadence {
    pub fn new(strategy: LambdaFlush, interval: Duration) -> Cadence {
        Cadence {
            strategy,
            interval,
            starts: VecDeque::with_capacity(FREQUENT_STREAK + 1),
        }
    }

    /// The interval of background exports, `None` when the strategy never hands back.
    pub fn background_interval(&self) -> Option<Duration> {
        match self.strategy {
            LambdaFlush::EndOfInvocation => None,
            LambdaFlush::Periodic | LambdaFlush::Adaptive => Some(self.interval),
        }
    }

    /// Records an invocation that started at `now_ms` (wall clock) and says what to do.
    pub fn on_invoke(&mut self, now_ms: u64) -> AfterInvoke {
        if self.starts.len() > FREQUENT_STREAK {
            self.starts.pop_front();
        }
        self.starts.push_back(now_ms);
        match self.strategy {
            LambdaFlush::EndOfInvocation => AfterInvoke::FlushAtEnd,
            LambdaFlush::Periodic => AfterInvoke::HandBack,
            LambdaFlush::Adaptive if self.frequent() => AfterInvoke::HandBack,
            LambdaFlush::Adaptive => AfterInvoke::FlushAtEnd,
        }
    }

    /// Whether the last `FREQUENT_STREAK` gaps were all shorter than the interval. A clock
    /// stepped backwards gives a gap of zero: short, which at worst delays data by one
    /// interval, never loses it.
    fn frequent(&self) -> bool {
        let interval_ms = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        self.starts.len() > FREQUENT_STREAK
            && self
                .starts
                .iter()
                .zip(self.starts.iter().skip(1))
                .all(|(earlier, later)| later.saturating_sub(*earlier) < interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1000;

    fn adaptive() -> Cadence {
        Cadence::new(LambdaFlush::Adaptive, Duration::from_secs(10))
    }

    /// The decisions for invocations starting at `starts` (seconds).
    fn decisions(cadence: &mut Cadence, starts: &[u64]) -> Vec<AfterInvoke> {
        starts
            .iter()
            .map(|s| cadence.on_invoke(s * SECOND))
            .collect()
    }

    use AfterInvoke::{FlushAtEnd, HandBack};

    #[test]
    fn cold_and_warming_up_invocations_are_flushed_at_their_end() {
        let mut c = adaptive();
        assert_eq!(
            decisions(&mut c, &[100, 101, 102, 103, 104]),
            [FlushAtEnd, FlushAtEnd, FlushAtEnd, HandBack, HandBack],
            "three short gaps are needed: the fourth invocation is the first handed back"
        );
    }

    #[test]
    fn rare_invocations_are_always_flushed_at_their_end() {
        let mut c = adaptive();
        assert_eq!(
            decisions(&mut c, &[0, 10, 20, 30, 40, 100]),
            [FlushAtEnd; 6],
            "a gap equal to the interval is not frequent"
        );
    }

    #[test]
    fn one_long_pause_goes_back_to_the_end_until_the_streak_builds_again() {
        let mut c = adaptive();
        decisions(&mut c, &[0, 1, 2, 3]);
        assert_eq!(
            decisions(&mut c, &[4, 60, 61, 62, 63, 64]),
            [
                HandBack, FlushAtEnd, FlushAtEnd, FlushAtEnd, HandBack, HandBack
            ]
        );
    }

    #[test]
    fn one_short_gap_among_long_ones_changes_nothing() {
        let mut c = adaptive();
        assert_eq!(decisions(&mut c, &[0, 30, 31, 60, 90, 91]), [FlushAtEnd; 6]);
    }

    #[test]
    fn a_clock_stepped_backwards_counts_as_a_short_gap() {
        let mut c = adaptive();
        assert_eq!(
            decisions(&mut c, &[100, 101, 99, 100]),
            [FlushAtEnd, FlushAtEnd, FlushAtEnd, HandBack]
        );
    }

    #[test]
    fn the_fixed_strategies_ignore_the_rate() {
        let mut end = Cadence::new(LambdaFlush::EndOfInvocation, Duration::from_secs(10));
        assert_eq!(decisions(&mut end, &[0, 1, 2, 3, 4]), [FlushAtEnd; 5]);
        assert_eq!(end.background_interval(), None);
        let mut periodic = Cadence::new(LambdaFlush::Periodic, Duration::from_secs(10));
        assert_eq!(decisions(&mut periodic, &[0, 100, 1000]), [HandBack; 3]);
        assert_eq!(
            periodic.background_interval(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            adaptive().background_interval(),
            Some(Duration::from_secs(10))
        );
    }
}
