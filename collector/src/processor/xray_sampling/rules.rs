//! Rule sets: any accepted rule document, validated and put in evaluation order.
//!
//! Evaluation order is the order X-Ray uses: centralized rules by `Priority` (lower first,
//! ties by name as X-Ray does), local rules in file order. A catch-all rule (every matcher
//! `*`, no attributes) is moved after all other rules whatever its position, because a
//! catch-all early in the list would otherwise shadow every rule behind it; the guide's own
//! document lists its "Default sampling rule" first and means it as the default.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aurastream_proto::sampling::{
    GetSamplingRulesOutput, LocalSamplingRules, SamplingRule, SamplingRulesDocument,
};

use super::glob::Glob;

/// The guide's `SAMPLING_RULES`, verbatim: the rules used when no `rules_file` is set.
pub const DEFAULT_RULES: &str = include_str!("default_rules.json");

/// What is wrong with a rule document, said so that it can be fixed.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("not valid JSON: {0}")]
    Json(serde_json::Error),
    #[error(
        "not a sampling rule document: expected an object with `version` and `rules` \
         (AuraStream / X-Ray SDK local rules), an object with `SamplingRuleRecords` \
         (GetSamplingRules output) or a JSON list of X-Ray SamplingRule objects"
    )]
    UnknownShape,
    #[error("as {format}: {source}")]
    Invalid {
        format: &'static str,
        source: serde_json::Error,
    },
    #[error("unsupported {what} version {found}; expected {expected}")]
    Version {
        what: &'static str,
        found: i64,
        expected: &'static str,
    },
    #[error("rule {rule}: rate {rate} is outside [0, 1]")]
    Rate { rule: String, rate: f64 },
    #[error("rule {rule}: fixed target {value} is negative; use 0 for no reservoir")]
    FixedTarget { rule: String, value: i64 },
    #[error("rule {rule}: SamplingRateBoost MaxRate {rate} is outside [0, 1]")]
    BoostRate { rule: String, rate: f64 },
    #[error("rule {rule}: SamplingRateBoost CooldownWindowMinutes {value} is negative")]
    BoostCooldown { rule: String, value: i64 },
    #[error("rule {rule}: priority {value} is outside 1..=10000")]
    Priority { rule: String, value: i64 },
    #[error("two rules are named `{0}`; rule names label the metrics and must be unique")]
    DuplicateName(String),
    #[error("the document holds no rules; every trace would be dropped")]
    Empty,
}

/// One rule, ready to match.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `RuleName`, or the local rule's `description`, or `rule-N` (1-based file position).
    pub name: String,
    pub service_name: Glob,
    pub service_type: Glob,
    pub host: Glob,
    pub http_method: Glob,
    pub url_path: Glob,
    pub resource_arn: Glob,
    /// Span attribute name and the glob its value must match.
    pub attributes: Vec<(String, Glob)>,
    /// Traces per second kept before `rate` applies.
    pub fixed_target: u32,
    pub rate: f64,
    /// Adaptive sampling: how far and how often `rate` may be raised while the rule's
    /// error traces spike ([`super::sampler`]).
    pub boost: Option<Boost>,
}

/// X-Ray's `SamplingRateBoost` of a rule, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Boost {
    /// The rate a boost raises the rule to (never lowers it).
    pub max_rate: f64,
    /// At most one boost starts within this many seconds.
    pub cooldown_seconds: u64,
}

impl Boost {
    fn new(name: &str, max_rate: f64, cooldown_minutes: i64) -> Result<Boost, RulesError> {
        if !(0.0..=1.0).contains(&max_rate) {
            return Err(RulesError::BoostRate {
                rule: format!("`{name}`"),
                rate: max_rate,
            });
        }
        let minutes = u64::try_from(cooldown_minutes).map_err(|_| RulesError::BoostCooldown {
            rule: format!("`{name}`"),
            value: cooldown_minutes,
        })?;
        Ok(Boost {
            max_rate,
            cooldown_seconds: minutes.saturating_mul(60),
        })
    }
}

impl Rule {
    /// Matches everything and asks for nothing particular.
    pub fn is_catch_all(&self) -> bool {
        self.attributes.is_empty()
            && [
                &self.service_name,
                &self.service_type,
                &self.host,
                &self.http_method,
                &self.url_path,
                &self.resource_arn,
            ]
            .iter()
            .all(|g| g.is_any())
    }
}

/// Rules in evaluation order.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// The guide's rules.
    pub fn builtin() -> RuleSet {
        // The built-in document is checked by a unit test; it cannot fail at run time.
        RuleSet::parse(DEFAULT_RULES).expect("the built-in sampling rules are valid")
    }

    /// Reads any of the accepted documents (recognised by their top-level keys) and
    /// validates every value.
    pub fn parse(text: &str) -> Result<RuleSet, RulesError> {
        let rules = match read_document(text)? {
            SamplingRulesDocument::Local(doc) => local_rules(doc)?,
            SamplingRulesDocument::Centralized(rules) => centralized_rules(rules)?,
        };
        if rules.is_empty() {
            return Err(RulesError::Empty);
        }
        let mut names = BTreeSet::new();
        for r in &rules {
            if !names.insert(r.name.as_str()) {
                return Err(RulesError::DuplicateName(r.name.clone()));
            }
        }
        // Stable: catch-alls keep their relative order behind everything else.
        let (mut ordered, catch_all): (Vec<Rule>, Vec<Rule>) =
            rules.into_iter().partition(|r| !r.is_catch_all());
        ordered.extend(catch_all);
        Ok(RuleSet { rules: ordered })
    }
}

/// Picks the document shape from the top-level keys, then reads the text again strictly so
/// that errors carry the line and column.
fn read_document(text: &str) -> Result<SamplingRulesDocument, RulesError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(RulesError::Json)?;
    let invalid = |format| move |source| RulesError::Invalid { format, source };
    match &value {
        serde_json::Value::Array(_) => serde_json::from_str::<Vec<SamplingRule>>(text)
            .map(SamplingRulesDocument::Centralized)
            .map_err(invalid("a list of X-Ray SamplingRule")),
        serde_json::Value::Object(map) if map.contains_key("SamplingRuleRecords") => {
            serde_json::from_str::<GetSamplingRulesOutput>(text)
                .map(|out| {
                    SamplingRulesDocument::Centralized(
                        out.sampling_rule_records
                            .into_iter()
                            .map(|r| r.sampling_rule)
                            .collect(),
                    )
                })
                .map_err(invalid("X-Ray GetSamplingRules output"))
        }
        serde_json::Value::Object(map)
            if map.contains_key("rules") || map.contains_key("version") =>
        {
            serde_json::from_str::<LocalSamplingRules>(text)
                .map(SamplingRulesDocument::Local)
                .map_err(invalid("local sampling rules"))
        }
        _ => Err(RulesError::UnknownShape),
    }
}

fn check_values(name: &str, fixed_target: i64, rate: f64) -> Result<(u32, f64), RulesError> {
    if !(0.0..=1.0).contains(&rate) {
        return Err(RulesError::Rate {
            rule: format!("`{name}`"),
            rate,
        });
    }
    if fixed_target < 0 {
        return Err(RulesError::FixedTarget {
            rule: format!("`{name}`"),
            value: fixed_target,
        });
    }
    // More than u32::MAX traces a second is "keep everything" in practice.
    let fixed_target = u32::try_from(fixed_target).unwrap_or(u32::MAX);
    Ok((fixed_target, rate))
}

fn glob_or_any(pattern: Option<&str>) -> Glob {
    Glob::new(pattern.unwrap_or("*"))
}

fn local_rules(doc: LocalSamplingRules) -> Result<Vec<Rule>, RulesError> {
    if doc.version != 1 && doc.version != 2 {
        return Err(RulesError::Version {
            what: "local rules",
            found: doc.version,
            expected: "2 (or the X-Ray SDK's older 1)",
        });
    }
    let mut rules = Vec::with_capacity(doc.rules.len() + 1);
    for (i, r) in doc.rules.into_iter().enumerate() {
        let name = match r.description {
            Some(d) if !d.trim().is_empty() => d,
            _ => format!("rule-{}", i + 1),
        };
        let (fixed_target, rate) = check_values(&name, r.fixed_target, r.rate)?;
        let boost = r
            .sampling_rate_boost
            .map(|b| Boost::new(&name, b.max_rate, b.cooldown_window_minutes))
            .transpose()?;
        rules.push(Rule {
            service_name: glob_or_any(r.service_name.as_deref()),
            service_type: Glob::new("*"),
            host: glob_or_any(r.host.as_deref()),
            http_method: glob_or_any(r.http_method.as_deref()),
            url_path: glob_or_any(r.url_path.as_deref()),
            resource_arn: Glob::new("*"),
            attributes: r
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), Glob::new(v)))
                .collect(),
            fixed_target,
            rate,
            boost,
            name,
        });
    }
    if let Some(d) = doc.default {
        let name = "Default".to_string();
        let (fixed_target, rate) = check_values(&name, d.fixed_target, d.rate)?;
        rules.push(Rule {
            service_name: Glob::new("*"),
            service_type: Glob::new("*"),
            host: Glob::new("*"),
            http_method: Glob::new("*"),
            url_path: Glob::new("*"),
            resource_arn: Glob::new("*"),
            attributes: Vec::new(),
            fixed_target,
            rate,
            boost: None,
            name,
        });
    }
    Ok(rules)
}

fn centralized_rules(rules: Vec<SamplingRule>) -> Result<Vec<Rule>, RulesError> {
    let mut out = Vec::with_capacity(rules.len());
    for (i, r) in rules.into_iter().enumerate() {
        let name = match r.rule_name {
            Some(n) if !n.trim().is_empty() => n,
            _ => format!("rule-{}", i + 1),
        };
        if let Some(v) = r.version
            && v != 1
        {
            return Err(RulesError::Version {
                what: "X-Ray SamplingRule",
                found: v,
                expected: "1",
            });
        }
        if !(1..=10_000).contains(&r.priority) {
            return Err(RulesError::Priority {
                rule: format!("`{name}`"),
                value: r.priority,
            });
        }
        let (fixed_target, rate) = check_values(&name, r.reservoir_size, r.fixed_rate)?;
        let boost = r
            .sampling_rate_boost
            .map(|b| Boost::new(&name, b.max_rate, b.cooldown_window_minutes))
            .transpose()?;
        out.push((
            r.priority,
            Rule {
                service_name: Glob::new(&r.service_name),
                service_type: Glob::new(&r.service_type),
                host: Glob::new(&r.host),
                http_method: Glob::new(&r.http_method),
                url_path: Glob::new(&r.url_path),
                resource_arn: Glob::new(&r.resource_arn),
                attributes: r
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), Glob::new(v)))
                    .collect(),
                fixed_target,
                rate,
                boost,
                name,
            },
        ));
    }
    out.sort_by(|(pa, a), (pb, b)| pa.cmp(pb).then_with(|| a.name.cmp(&b.name)));
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

/// Why a rules file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LoadRulesError {
    #[error("cannot read sampling rules file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sampling rules file {}: {source}", path.display())]
    Rules { path: PathBuf, source: RulesError },
}

/// Reads and validates a rules file.
pub fn load_rules_file(path: &Path) -> Result<RuleSet, LoadRulesError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadRulesError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    RuleSet::parse(&text).map_err(|source| LoadRulesError::Rules {
        path: path.to_path_buf(),
        source,
    })
}
