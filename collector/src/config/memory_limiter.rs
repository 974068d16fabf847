//! `service.memory_limiter`: the one memory budget of the process, with the OpenTelemetry
//! Collector's option names, resolved to bytes at start-up.
//!
//! ```yaml
//! service:
//!   memory_limiter:
//!     limit_percentage: 80         # of the cgroup's limit, else of the machine's memory;
//!     spike_limit_percentage: 20   # in Lambda, of the function's memory
//! ```
//!
//! or `limit_mib` / `spike_limit_mib` in MiB. Receivers refuse new requests above
//! `limit − spike`; `limit` is never planned past (see [`crate::model::memory`]).

use std::time::Duration;

use serde::Deserialize;

use crate::component::validate::Invalid;
use crate::model::memory::{MIB, MemoryLimits};

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryLimiterConfig {
    /// Accepted for the Collector's configurations and not needed: the account is checked
    /// on every request, not sampled on a timer.
    #[serde(with = "humantime_serde")]
    pub check_interval: Option<Duration>,
    /// The hard limit in MiB; takes the place of `limit_percentage`.
    pub limit_mib: u64,
    /// Room above the soft limit for requests already admitted; 20 % of the limit if unset.
    pub spike_limit_mib: u64,
    /// The hard limit as a percentage of the memory available to the process.
    pub limit_percentage: u64,
    /// The spike room as a percentage of that memory.
    pub spike_limit_percentage: u64,
}

/// Where the memory available to the process is read from, so the choice can be tested.
#[derive(Debug, Default)]
pub struct AvailableMemory {
    /// `$AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (MB), in Lambda.
    pub lambda_mb: Option<String>,
    /// cgroup v2 `memory.max` or v1 `memory.limit_in_bytes`.
    pub cgroup_limit: Option<String>,
    /// `/proc/meminfo`.
    pub meminfo: Option<String>,
}

impl AvailableMemory {
    /// Reads this process's surroundings.
    pub fn read() -> AvailableMemory {
        let file = |p: &str| std::fs::read_to_string(p).ok();
        AvailableMemory {
            lambda_mb: std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok(),
            cgroup_limit: file("/sys/fs/cgroup/memory.max")
                .or_else(|| file("/sys/fs/cgroup/memory/memory.limit_in_bytes")),
            meminfo: file("/proc/meminfo"),
        }
    }

    /// Bytes, and where they come from (for the start-up log): the function's memory in
    /// Lambda, else the cgroup's limit if it has one, else the machine's.
    pub fn bytes(&self) -> Option<(u64, &'static str)> {
        if let Some(mb) = self
            .lambda_mb
            .as_deref()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some((mb.saturating_mul(1024 * 1024), "Lambda function memory"));
        }
        // v2 says `max` when unlimited; v1 a number near i64::MAX.
        if let Some(limit) = self
            .cgroup_limit
            .as_deref()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|b| *b < 1 << 60)
        {
            return Some((limit, "cgroup memory limit"));
        }
        let kib = self.meminfo.as_deref()?.lines().find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()
        })?;
        Some((kib.saturating_mul(1024), "total memory"))
    }
}

impl MemoryLimiterConfig {
    /// Checked at start-up; errors name the option.
    pub fn validate(&self) -> Result<(), Invalid> {
        match (self.limit_mib, self.limit_percentage) {
            (0, 0) => return Err("set limit_mib or limit_percentage".into()),
            (mib, 0) => {
                if self.spike_limit_percentage > 0 {
                    return Err(
                        "spike_limit_percentage goes with limit_percentage; with limit_mib use \
                         spike_limit_mib"
                            .into(),
                    );
                }
                if usize::try_from(mib)
                    .ok()
                    .and_then(|m| m.checked_mul(MIB))
                    .is_none()
                {
                    return Err(Invalid::TooLarge {
                        option: "limit_mib",
                        value: mib,
                    });
                }
                if self.spike_limit_mib >= mib {
                    return Err(Invalid::Order {
                        option: "spike_limit_mib",
                        value: self.spike_limit_mib.to_string(),
                        relation: "less than",
                        other: "limit_mib",
                        other_value: mib.to_string(),
                    });
                }
            }
            (0, pct) => {
                if self.spike_limit_mib > 0 {
                    return Err(
                        "spike_limit_mib goes with limit_mib; with limit_percentage use \
                         spike_limit_percentage"
                            .into(),
                    );
                }
                if !(1..=100).contains(&pct) {
                    return Err(Invalid::out_of_range(
                        "limit_percentage",
                        1.0,
                        100.0,
                        pct as f64,
                    ));
                }
                if self.spike_limit_percentage >= pct {
                    return Err(Invalid::Order {
                        option: "spike_limit_percentage",
                        value: self.spike_limit_percentage.to_string(),
                        relation: "less than",
                        other: "limit_percentage",
                        other_value: pct.to_string(),
                    });
                }
            }
            _ => return Err("set limit_mib or limit_percentage, not both".into()),
        }
        Ok(())
    }

    /// The limits in bytes; percentages need the memory available to the process.
    pub fn limits(&self, available: &AvailableMemory) -> Result<MemoryLimits, Invalid> {
        let (hard, spike) = if self.limit_mib > 0 {
            let hard = mib_to_bytes(self.limit_mib);
            let spike = if self.spike_limit_mib > 0 {
                mib_to_bytes(self.spike_limit_mib)
            } else {
                hard / 5
            };
            (hard, spike)
        } else {
            let (total, _) = available.bytes().ok_or(Invalid::Rule(
                "limit_percentage: the memory available could not be read (no Lambda memory \
                 size, cgroup limit or /proc/meminfo); set limit_mib",
            ))?;
            let pct = |p: u64| {
                usize::try_from(u128::from(total) * u128::from(p) / 100).unwrap_or(usize::MAX)
            };
            let spike = if self.spike_limit_percentage > 0 {
                pct(self.spike_limit_percentage)
            } else {
                pct(self.limit_percentage) / 5
            };
            (pct(self.limit_percentage), spike)
        };
        Ok(MemoryLimits {
            soft: hard.saturating_sub(spike),
            hard,
        })
    }
}

fn mib_to_bytes(mib: u64) -> usize {
    usize::try_from(mib)
        .unwrap_or(usize::MAX)
        .saturating_mul(MIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> MemoryLimiterConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const MEMINFO: &str = "MemTotal:        1024000 kB\nMemFree:  10 kB\n";

    #[test]
    fn mib_limits_with_the_spike_defaulting_to_a_fifth() {
        let none = AvailableMemory::default();
        let l = cfg("{ limit_mib: 500, spike_limit_mib: 100, check_interval: 1s }");
        l.validate().unwrap();
        assert_eq!(
            l.limits(&none).unwrap(),
            MemoryLimits {
                soft: 400 * MIB,
                hard: 500 * MIB
            }
        );
        let l = cfg("{ limit_mib: 500 }");
        assert_eq!(l.limits(&none).unwrap().soft, 400 * MIB);
    }

    #[test]
    fn percentages_of_lambda_then_cgroup_then_total_memory() {
        let l = cfg("{ limit_percentage: 80, spike_limit_percentage: 20 }");
        l.validate().unwrap();
        let mut m = AvailableMemory {
            lambda_mb: Some("1000".into()),
            cgroup_limit: Some("2097152000\n".into()),
            meminfo: Some(MEMINFO.into()),
        };
        assert_eq!(
            m.bytes(),
            Some((1000 * MIB as u64, "Lambda function memory"))
        );
        let limits = l.limits(&m).unwrap();
        assert_eq!(limits.hard, 800 * MIB);
        assert_eq!(limits.soft, 600 * MIB);
        m.lambda_mb = None;
        assert_eq!(m.bytes(), Some((2_097_152_000, "cgroup memory limit")));
        m.cgroup_limit = Some("max\n".into());
        assert_eq!(m.bytes(), Some((1_024_000 * 1024, "total memory")));
        m.cgroup_limit = Some("9223372036854771712".into());
        assert_eq!(
            m.bytes().unwrap().1,
            "total memory",
            "cgroup v1 without a limit"
        );
        m.meminfo = None;
        assert!(
            l.limits(&m)
                .unwrap_err()
                .to_string()
                .contains("set limit_mib")
        );
    }

    #[test]
    fn bad_combinations_are_refused_with_the_option_named() {
        for (yaml, says) in [
            ("{}", "set limit_mib or limit_percentage"),
            ("{ limit_mib: 10, limit_percentage: 50 }", "not both"),
            (
                "{ limit_mib: 10, spike_limit_mib: 10 }",
                "less than limit_mib",
            ),
            ("{ limit_percentage: 101 }", "between 1 and 100, got 101"),
            (
                "{ limit_percentage: 50, spike_limit_percentage: 60 }",
                "less than",
            ),
            (
                "{ limit_percentage: 50, spike_limit_mib: 6 }",
                "goes with limit_mib",
            ),
            (
                "{ limit_mib: 50, spike_limit_percentage: 6 }",
                "goes with limit_percentage",
            ),
            ("{ limit_mib: 18446744073709551615 }", "too large"),
        ] {
            let e = cfg(yaml).validate().unwrap_err();
            assert!(e.to_string().contains(says), "{yaml}: {e}");
        }
        assert!(serde_yaml_ng::from_str::<MemoryLimiterConfig>("{ limit_mb: 5 }").is_err());
    }
}
