//! Options of the `awsxray` receiver, named as in the OpenTelemetry Collector's
//! `awsxrayreceiver`.

use crate::component::validate::{Invalid, check_http_url};
use serde::Deserialize;

/// ```yaml
/// receivers:
///   awsxray:
///     endpoint: 127.0.0.1:2000      # UDP, where the X-Ray SDKs send segments
///     transport: udp                # the only transport the daemon protocol has
///     proxy_server:                 # TCP, the SDKs' sampling calls; `null` turns it off
///       endpoint: 127.0.0.1:2000
///       region: eu-west-1           # default: the standard AWS region chain
///       aws_endpoint: http://127.0.0.1:5000  # default: https://xray.{region}.amazonaws.com
/// ```
///
/// Both listeners default to loopback, like the other receivers: a daemon reachable from
/// the network (`0.0.0.0:2000`, as on ECS with `awsvpc`) is a decision to make explicitly.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct XrayReceiverConfig {
    /// UDP address to receive segments on.
    pub endpoint: String,
    pub transport: Transport,
    /// The sampling proxy; on by default because an X-Ray SDK with centralized sampling
    /// calls the daemon address for its rules and falls back to its local default rule
    /// (1 per second + 5 %) when nothing answers.
    pub proxy_server: Option<ProxyServerConfig>,
}

/// The X-Ray daemon protocol is UDP only; the option exists so configurations written for
/// the OpenTelemetry Collector load unchanged.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyServerConfig {
    /// TCP address the SDKs' `GetSamplingRules` / `SamplingTargets` calls arrive on.
    pub endpoint: String,
    /// Region of the X-Ray endpoint and of the request signature.
    pub region: Option<String>,
    /// X-Ray endpoint to forward to, e.g. a VPC endpoint or a test server.
    pub aws_endpoint: Option<String>,
}

impl Default for XrayReceiverConfig {
    fn default() -> Self {
        XrayReceiverConfig {
            endpoint: "127.0.0.1:2000".into(),
            transport: Transport::Udp,
            proxy_server: Some(ProxyServerConfig::default()),
        }
    }
}

impl Default for ProxyServerConfig {
    fn default() -> Self {
        ProxyServerConfig {
            endpoint: "127.0.0.1:2000".into(),
            region: None,
            aws_endpoint: None,
        }
    }
}

impl XrayReceiverConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.endpoint.is_empty() {
            return Err("endpoint must not be empty".into());
        }
        let Some(proxy) = &self.proxy_server else {
            return Ok(());
        };
        if proxy.endpoint.is_empty() {
            return Err("proxy_server.endpoint must not be empty".into());
        }
        if proxy.region.as_deref().is_some_and(str::is_empty) {
            return Err(
                "proxy_server.region must not be empty (leave it out to use the AWS region chain)"
                    .into(),
            );
        }
        if let Some(url) = &proxy.aws_endpoint {
            check_http_url("proxy_server.aws_endpoint", url)?;
        }
        Ok(())
    }
}

impl crate::component::factory::Registered for XrayReceiverConfig {
    const TYPE: &'static str = "awsxray";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<XrayReceiverConfig, String> {
        let c: XrayReceiverConfig = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults_listen_on_loopback_with_the_proxy() {
        let c = parse("{}").unwrap();
        assert_eq!(c.endpoint, "127.0.0.1:2000");
        assert_eq!(c.proxy_server.unwrap().endpoint, "127.0.0.1:2000");
        assert!(parse("proxy_server: null").unwrap().proxy_server.is_none());
    }

    #[test]
    fn go_receiver_option_names_are_accepted() {
        let c = parse(
            "endpoint: 0.0.0.0:2000\ntransport: udp\nproxy_server:\n  endpoint: 0.0.0.0:2000\n  \
             region: eu-west-1\n  aws_endpoint: http://127.0.0.1:5000\n",
        )
        .unwrap();
        let proxy = c.proxy_server.unwrap();
        assert_eq!(proxy.region.as_deref(), Some("eu-west-1"));
        assert_eq!(proxy.aws_endpoint.as_deref(), Some("http://127.0.0.1:5000"));
    }

    /// The receiver as part of a whole configuration: traces only, options checked with
    /// their path.
    #[test]
    fn whole_configurations_place_the_receiver() {
        use crate::config::{ConfigSource, load_sources};
        let load = |pipeline: &str, options: &str| {
            let text = format!(
                "receivers:\n  awsxray:{options}\nexporters:\n  debug:\n\
                 service:\n  pipelines:\n    {pipeline}:\n      receivers: [awsxray]\n      \
                 exporters: [debug]\n"
            );
            load_sources(
                &[ConfigSource {
                    name: "test.yaml".into(),
                    text,
                }],
                |_| None,
            )
            .map_err(|e| e.to_string())
        };
        assert!(load("traces", "").is_ok());
        let err = load("metrics", "").unwrap_err();
        assert!(err.contains("does not receive metrics"), "{err}");
        let err = load("traces", "\n    proxy_server: {aws_endpoint: xray}").unwrap_err();
        assert!(
            err.contains("receivers.awsxray") && err.contains("http://"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for (yaml, want) in [
            ("transport: tcp", "unknown variant"),
            ("endpoint: ''", "endpoint must not be empty"),
            (
                "proxy_server: {aws_endpoint: xray.local}",
                "http:// or https://",
            ),
            ("proxy_server: {region: ''}", "region must not be empty"),
            ("local_mode: true", "unknown field"),
        ] {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
