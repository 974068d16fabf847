//! Why items were not delivered, or were held back on purpose: the `reason` label of the
//! exporter counters (`exporter_failed_items_total`, `exporter_withheld_items_total`) and the
//! `reason` of an [`ExportError`](super::ExportError).
//!
//! The collector's own causes are `&'static str` names, each written once where it is
//! detected, so recording one allocates nothing and a counter's label cannot drift from the
//! code that counts it. What a destination answered is kept as it said it (an AWS error code,
//! an HTTP status, a gRPC code): operators search for `ThrottlingException`, not for a name
//! of ours. A destination's code becomes a metric label, and a destination is not trusted to
//! keep its codes short or tidy, so it is cut to [`MAX_CODE`] bytes of `[A-Za-z0-9_.-]`.

use std::borrow::Cow;
use std::fmt;

/// Longest destination error code kept; AWS's longest are about 45 bytes.
pub const MAX_CODE: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A reason from a fixed set, named in the code: the collector's own causes (`io`,
    /// `nan_value`, `retries_exhausted`) and the names of fixed code sets (gRPC status
    /// codes such as `unavailable`).
    Named(&'static str),
    /// The destination's own error code (`ThrottlingException`, `invalid_argument`).
    Destination(Box<str>),
    /// An HTTP status the destination answered without an error code (`http_413`).
    HttpStatus(u16),
}

impl Reason {
    /// A destination's error code, kept to what is safe as a metric label.
    pub fn destination(code: &str) -> Reason {
        let kept: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            .take(MAX_CODE)
            .collect();
        if kept.is_empty() {
            return Reason::Named("unnamed_error");
        }
        Reason::Destination(kept.into_boxed_str())
    }

    /// The label this reason is counted under.
    pub fn label(&self) -> Cow<'static, str> {
        match self {
            Reason::Named(name) => Cow::Borrowed(name),
            other => Cow::Owned(other.to_string()),
        }
    }
}

/// Counts by fixed reason names, as an [`ExportReport`](super::ExportReport)
/// holds them.
pub fn named_counts<C: FromIterator<(Reason, usize)>>(
    counts: impl IntoIterator<Item = (&'static str, usize)>,
) -> C {
    counts
        .into_iter()
        .map(|(name, n)| (Reason::Named(name), n))
        .collect()
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Named(name) => f.write_str(name),
            Reason::Destination(code) => f.write_str(code),
            Reason::HttpStatus(status) => write!(f, "http_{status}"),
        }
    }
}

impl From<&'static str> for Reason {
    fn from(name: &'static str) -> Reason {
        Reason::Named(name)
    }
}

/// Compares by label, so tests and checks read `reason == "throttled"` whatever the kind.
impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.label() == other
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_names_codes_and_statuses() {
        assert_eq!(Reason::Named("io").label(), "io");
        assert_eq!(
            Reason::destination("ThrottlingException").label(),
            "ThrottlingException"
        );
        assert_eq!(Reason::HttpStatus(413).label(), "http_413");
        assert_eq!(Reason::HttpStatus(413), "http_413");
        assert_ne!(Reason::HttpStatus(413), "http_4130");
        assert_eq!(Reason::from("nan_value").to_string(), "nan_value");
    }

    #[test]
    fn a_destination_code_is_cut_to_a_safe_label() {
        let hostile = format!("Bad\"Code\n{{x=\"1\"}} {}", "A".repeat(500));
        let label = Reason::destination(&hostile).label();
        assert_eq!(label.len(), MAX_CODE);
        assert!(label.starts_with("BadCodex1AAA"), "{label}");
        assert!(
            label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        );
        assert_eq!(Reason::destination("\"\n").label(), "unnamed_error");
    }
}
