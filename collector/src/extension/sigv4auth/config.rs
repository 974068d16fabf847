//! Options of the `sigv4auth` extension.

use serde::Deserialize;

use crate::aws::sigv4::AssumeRole;
use crate::component::validate::Invalid;

/// ```yaml
/// extensions:
///   sigv4auth:
///     region: us-east-1        # default: the region in the endpoint's host, then AWS_REGION
///     service: xray            # default: the service in the endpoint's host (xray, logs,
///                              #   monitoring); required for endpoints that are not AWS's
///     assume_role:             # optional: sign with this role's credentials
///       arn: arn:aws:iam::123456789012:role/otlp-writer
///       sts_region: us-east-1  # default: the signing region
///       session_name: aurastream
/// exporters:
///   otlphttp:
///     traces_endpoint: https://xray.us-east-1.amazonaws.com/v1/traces
///     auth: { authenticator: sigv4auth }
/// service:
///   extensions: [sigv4auth]
/// ```
///
/// The names are the OpenTelemetry Collector contrib `sigv4auth` extension's, so ADOT
/// configurations load unchanged. Credentials come from the standard AWS chain.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SigV4AuthConfig {
    pub region: Option<String>,
    pub service: Option<String>,
    pub assume_role: Option<AssumeRoleConfig>,
}

/// `assume_role`, as the contrib extension names it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AssumeRoleConfig {
    pub arn: String,
    pub sts_region: Option<String>,
    pub session_name: Option<String>,
}

impl SigV4AuthConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        for (value, rule) in [
            (
                &self.region,
                "region must not be empty (leave it out to infer it)",
            ),
            (
                &self.service,
                "service must not be empty (leave it out to infer it)",
            ),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(Invalid::Rule(rule));
            }
        }
        if let Some(role) = &self.assume_role {
            if !cfg!(feature = "credential-chain") {
                return Err(crate::aws::sigv4::ASSUME_ROLE_NEEDS_CHAIN.into());
            }
            if !role.arn.starts_with("arn:") {
                return Err(Invalid::value(
                    "assume_role.arn",
                    &role.arn,
                    "is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
                ));
            }
            if role
                .sts_region
                .as_deref()
                .is_some_and(|r| r.trim().is_empty())
            {
                return Err("assume_role.sts_region must not be empty".into());
            }
        }
        Ok(())
    }

    pub fn assume_role(&self) -> Option<AssumeRole> {
        self.assume_role.as_ref().map(|r| AssumeRole {
            arn: r.arn.clone(),
            sts_region: r.sts_region.clone(),
            session_name: r.session_name.clone(),
        })
    }
}

impl crate::component::factory::Registered for SigV4AuthConfig {
    const TYPE: &'static str = "sigv4auth";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<SigV4AuthConfig, String> {
        let c: SigV4AuthConfig = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn contrib_option_names_are_accepted() {
        let c = parse(
            "region: eu-west-1\nservice: logs\nassume_role:\n  arn: arn:aws:iam::1:role/r\n  \
             sts_region: us-east-1\n",
        )
        .unwrap();
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.service.as_deref(), Some("logs"));
        let role = c.assume_role().unwrap();
        assert_eq!(role.arn, "arn:aws:iam::1:role/r");
        assert_eq!(role.sts_region.as_deref(), Some("us-east-1"));
        assert_eq!(parse("{}").unwrap(), SigV4AuthConfig::default());
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for (yaml, want) in [
            ("region: ''", "region must not be empty"),
            ("service: ' '", "service must not be empty"),
            ("assume_role: { arn: role }", "not a role ARN"),
            ("signing: x", "unknown field"),
        ] {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
