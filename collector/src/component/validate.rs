//! Checks that many components' options share, and [`Invalid`], the one error type every
//! options check returns.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;

use crate::model::Signal;

/// Longest timeout an option may set: the collector adds timeouts to the current instant,
/// which panics past the clock's range (a few hundred billion years on Linux, far less on
/// some platforms). A year (365.25 days, what `1y` means in an option) is longer than any
/// sensible timeout.
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600);

/// Why options cannot be used, found before anything starts. The configuration loader
/// shows it after the file and the option's path (`exporters.awsemf: at …`), so each
/// variant names the option relative to the section that checked it.
///
/// The kinds of mistake are variants, the values that make the mistake are data: a rule
/// about an option is written once here, not in each component, and a caller (or a test)
/// can tell a range error from a missing file without reading the sentence.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    /// A rule that needs no values to state: `path is required with output_destination:
    /// file`, `set token or filename, not both`.
    #[error("{0}")]
    Rule(&'static str),
    /// A number outside the range the option accepts (the bounds are inclusive).
    #[error("{option} must be between {low} and {high}, got {got}")]
    OutOfRange {
        option: &'static str,
        low: f64,
        high: f64,
        got: f64,
    },
    /// A number the collector cannot hold once scaled (`limit_mib` in bytes).
    #[error("{option} ({value}) is too large")]
    TooLarge { option: &'static str, value: u64 },
    /// A duration past [`MAX_DURATION`].
    #[error(
        "{option} {} is too long; at most {}",
        humantime::format_duration(*value),
        humantime::format_duration(MAX_DURATION)
    )]
    TooLong {
        option: Cow<'static, str>,
        value: Duration,
    },
    /// One option must stand in an order with another (`max_wait` at least
    /// `decision_wait`); the values are shown as the operator wrote them.
    #[error("{option} ({value}) must be {relation} {other} ({other_value})")]
    Order {
        option: &'static str,
        value: String,
        relation: &'static str,
        other: &'static str,
        other_value: String,
    },
    /// A value the option does not accept, and what it must be instead.
    #[error("{option} `{value}` {why}")]
    Value {
        option: Cow<'static, str>,
        value: String,
        why: &'static str,
    },
    /// A value outside a fixed set (CloudWatch units, storage resolutions).
    #[error("{option} `{value}` is not one of: {}", allowed.join(", "))]
    OneOf {
        option: Cow<'static, str>,
        value: String,
        allowed: &'static [&'static str],
    },
    /// Two entries of a list that must be distinct name the same thing.
    #[error("{option} `{value}` is the same as {first} (names match ignoring case); keep one")]
    Duplicate {
        option: String,
        value: String,
        first: String,
    },
    /// A value another layer parsed and refused (a regex, a URL, a TLS version, a log
    /// group template); `source` is that layer's typed error.
    #[error("{option}: {source}")]
    Cause {
        option: Cow<'static, str>,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A value another layer could not parse (a log group template, a regex), shown with
    /// the value because the cause points into it (`` `{` at byte 7 ``).
    #[error("{option} `{value}`: {source}")]
    Unparsable {
        option: Cow<'static, str>,
        value: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A problem found inside the block at `option` by that block's own check, whose
    /// message starts with the option inside the block (`tls` + `min_version: …`).
    #[error("{option}.{inner}")]
    Within {
        option: &'static str,
        inner: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A component's own typed error that already names its option (`redaction`'s
    /// pattern and key errors).
    #[error(transparent)]
    Own(Box<dyn std::error::Error + Send + Sync>),
    /// A pipeline or the service lists a component that no section defines.
    #[error("{kind} `{id}` is not defined under `{section}`")]
    Undefined {
        kind: &'static str,
        id: String,
        section: &'static str,
    },
    /// A pipeline lists a component for a signal it does not handle.
    #[error("{kind} `{id}` does not {verb} {signal}")]
    WrongSignal {
        kind: &'static str,
        id: String,
        verb: &'static str,
        signal: Signal,
    },
}

impl Invalid {
    /// `option` holds a value another layer refused for the typed reason `source`.
    pub fn cause(
        option: impl Into<Cow<'static, str>>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Invalid {
        Invalid::Cause {
            option: option.into(),
            source: Box::new(source),
        }
    }

    /// `option` holds `value`, which the layer that parses it refused for `source`.
    pub fn unparsable(
        option: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Invalid {
        Invalid::Unparsable {
            option: option.into(),
            value: value.into(),
            source: Box::new(source),
        }
    }

    /// A component's typed error that names its option itself.
    pub fn own(source: impl std::error::Error + Send + Sync + 'static) -> Invalid {
        Invalid::Own(Box::new(source))
    }

    /// `option` holds `value`, which it does not accept because it `why`.
    pub fn value(
        option: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
        why: &'static str,
    ) -> Invalid {
        Invalid::Value {
            option: option.into(),
            value: value.into(),
            why,
        }
    }

    /// The error found by the check of the block at `option`, placed under it.
    pub fn within(
        option: &'static str,
        inner: impl std::error::Error + Send + Sync + 'static,
    ) -> Invalid {
        Invalid::Within {
            option,
            inner: Box::new(inner),
        }
    }

    /// `value` of `option` lies outside `low..=high`.
    pub fn out_of_range(option: &'static str, low: f64, high: f64, got: f64) -> Invalid {
        Invalid::OutOfRange {
            option,
            low,
            high,
            got,
        }
    }
}

impl From<&'static str> for Invalid {
    fn from(rule: &'static str) -> Self {
        Invalid::Rule(rule)
    }
}

/// Refuses a duration option longer than [`MAX_DURATION`], naming it.
pub fn check_duration(option: &'static str, value: Duration) -> Result<(), Invalid> {
    if value > MAX_DURATION {
        return Err(Invalid::TooLong {
            option: option.into(),
            value,
        });
    }
    Ok(())
}

/// Refuses `value` unless it is an `http://` or `https://` URL, naming `option`. (Endpoint
/// overrides of the X-Ray components, which a lean build leaves out.)
#[cfg(any(feature = "awsxray", feature = "tail-sampling"))]
pub fn check_http_url(option: &'static str, value: &str) -> Result<(), Invalid> {
    if value.starts_with("http://") || value.starts_with("https://") {
        return Ok(());
    }
    Err(Invalid::value(
        option,
        value,
        "must be an http:// or https:// URL",
    ))
}

/// Deserializes an optional section where `key:` with no value means "on, with defaults".
pub fn present_or_default<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_option_and_the_values() {
        let too_long = check_duration("max_wait", Duration::from_secs(2 * 31_557_600));
        assert!(matches!(
            too_long,
            Err(Invalid::TooLong { ref option, .. }) if option == "max_wait"
        ));
        assert_eq!(
            too_long.unwrap_err().to_string(),
            "max_wait 2years is too long; at most 1year"
        );
        let url = check_http_url("endpoint", "xray.local:2000").unwrap_err();
        assert_eq!(
            url.to_string(),
            "endpoint `xray.local:2000` must be an http:// or https:// URL"
        );
        let range = Invalid::out_of_range("buffering.max_items", 1000.0, 10000.0, 12.0);
        assert_eq!(
            range.to_string(),
            "buffering.max_items must be between 1000 and 10000, got 12"
        );
        let nested = Invalid::within("retry_on_failure", range);
        assert!(
            nested
                .to_string()
                .starts_with("retry_on_failure.buffering.max_items ")
        );
        assert!(check_http_url("endpoint", "https://xray.eu-west-1.amazonaws.com").is_ok());
    }
}
