//! Where the backends are: a fixed list, or every address a DNS name resolves to (a
//! headless Kubernetes service, a Cloud Map namespace, a Route 53 multivalue record).

use tokio::net::lookup_host;

use crate::component::validate::Invalid;

use super::config::{DnsResolverConfig, ResolverConfig, static_endpoint};

/// Why a DNS round found no backends; the previous list stays in use.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("resolving {hostname}: no answer within {timeout:?}")]
    NoAnswer {
        hostname: String,
        timeout: std::time::Duration,
    },
    #[error("resolving {hostname}: {source}")]
    Lookup {
        hostname: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub enum Resolver {
    Static(Vec<String>),
    Dns(DnsResolverConfig),
}

impl Resolver {
    pub fn new(config: &ResolverConfig) -> Result<Resolver, Invalid> {
        match (&config.static_, &config.dns) {
            (Some(s), None) => Ok(Resolver::Static(
                s.hostnames
                    .iter()
                    .map(|h| static_endpoint(h))
                    .collect::<Result<_, _>>()?,
            )),
            (None, Some(d)) => Ok(Resolver::Dns(d.clone())),
            _ => Err("resolver: set exactly one of `static` and `dns`".into()),
        }
    }

    /// How often to resolve again; `None`: the list never changes.
    pub fn interval(&self) -> Option<std::time::Duration> {
        match self {
            Resolver::Static(_) => None,
            Resolver::Dns(d) => Some(d.interval),
        }
    }

    /// The current backend endpoints (`http://ip:port`), sorted.
    pub async fn resolve(&self) -> Result<Vec<String>, ResolveError> {
        let mut endpoints = match self {
            Resolver::Static(list) => list.clone(),
            Resolver::Dns(d) => {
                let lookup = lookup_host((d.hostname.as_str(), d.port));
                let addrs = tokio::time::timeout(d.timeout, lookup)
                    .await
                    .map_err(|_| ResolveError::NoAnswer {
                        hostname: d.hostname.clone(),
                        timeout: d.timeout,
                    })?
                    .map_err(|source| ResolveError::Lookup {
                        hostname: d.hostname.clone(),
                        source,
                    })?;
                addrs.map(|a| format!("http://{a}")).collect()
            }
        };
        endpoints.sort();
        endpoints.dedup();
        Ok(endpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_hostnames_get_a_scheme_and_the_default_port() {
        assert_eq!(static_endpoint("gw-1:4317").unwrap(), "http://gw-1:4317");
        assert_eq!(static_endpoint("gw-1").unwrap(), "http://gw-1:4317");
        assert_eq!(
            static_endpoint("http://10.0.0.1:55680").unwrap(),
            "http://10.0.0.1:55680"
        );
        assert!(static_endpoint("gw-1:4317/path").is_err());
        assert!(static_endpoint("").is_err());
    }

    #[tokio::test]
    async fn dns_yields_every_address_with_the_port() {
        let r = Resolver::Dns(DnsResolverConfig {
            hostname: "localhost".into(),
            port: 4999,
            ..DnsResolverConfig::default()
        });
        let eps = r.resolve().await.unwrap();
        assert!(!eps.is_empty());
        assert!(
            eps.iter()
                .all(|e| e.starts_with("http://") && e.ends_with(":4999")),
            "{eps:?}"
        );
        let bad = Resolver::Dns(DnsResolverConfig {
            hostname: "no-such-host.invalid".into(),
            ..DnsResolverConfig::default()
        });
        assert!(bad.resolve().await.is_err());
    }
}
