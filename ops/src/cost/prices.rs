//! List prices the estimate uses, with where and when they were read, overridable by a
//! YAML file with any of the fields below (for another region, a price change, or a
//! negotiated rate):
//!
//! ```yaml
//! region: eu-west-1
//! as_of: 2026-01-15
//! log_ingestion_per_gb: 0.57
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One band of the custom-metric price: metrics up to `up_to` (cumulative; `None`: no
/// limit) cost `usd` per metric-month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub up_to: Option<f64>,
    pub usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Prices {
    pub region: String,
    /// When these prices were read from the AWS pricing pages.
    pub as_of: String,
    pub custom_metric_tiers: Vec<Tier>,
    /// CloudWatch Logs standard class ingestion (EMF documents included).
    pub log_ingestion_per_gb: f64,
    pub log_storage_per_gb_month: f64,
    pub xray_recorded_per_million: f64,
    pub xray_scanned_per_million: f64,
}

impl Default for Prices {
    /// us-east-1 list prices from aws.amazon.com/cloudwatch/pricing and
    /// aws.amazon.com/xray/pricing as of 2025-06 (not re-checked since; pass --prices to
    /// correct them). The Free Tier is not deducted.
    fn default() -> Self {
        Prices {
            region: "us-east-1".into(),
            as_of: "2025-06".into(),
            custom_metric_tiers: vec![
                Tier {
                    up_to: Some(10_000.0),
                    usd: 0.30,
                },
                Tier {
                    up_to: Some(250_000.0),
                    usd: 0.10,
                },
                Tier {
                    up_to: Some(1_000_000.0),
                    usd: 0.05,
                },
                Tier {
                    up_to: None,
                    usd: 0.02,
                },
            ],
            log_ingestion_per_gb: 0.50,
            log_storage_per_gb_month: 0.03,
            xray_recorded_per_million: 5.00,
            xray_scanned_per_million: 0.50,
        }
    }
}

impl Prices {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Prices> {
        let Some(path) = path else {
            return Ok(Prices::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read prices file {}: {e}", path.display()))?;
        serde_yaml_ng::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "prices file {}: {e} (fields: region, as_of, custom_metric_tiers, \
                 log_ingestion_per_gb, log_storage_per_gb_month, xray_recorded_per_million, \
                 xray_scanned_per_million)",
                path.display()
            )
        })
    }

    /// The price of `metric_months` custom metric-months, band by band.
    pub fn custom_metrics(&self, metric_months: f64) -> f64 {
        let mut left = metric_months;
        let mut floor = 0.0;
        let mut usd = 0.0;
        for t in &self.custom_metric_tiers {
            if left <= 0.0 {
                break;
            }
            let band = t
                .up_to
                .map(|u| (u - floor).max(0.0))
                .unwrap_or(f64::INFINITY);
            let n = left.min(band);
            usd += n * t.usd;
            left -= n;
            floor = t.up_to.unwrap_or(floor);
        }
        usd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_metrics_are_priced_band_by_band() {
        let p = Prices::default();
        assert!((p.custom_metrics(100.0) - 30.0).abs() < 1e-9);
        assert!((p.custom_metrics(10_000.0) - 3_000.0).abs() < 1e-9);
        // 10,000 at 0.30 + 5,000 at 0.10
        assert!((p.custom_metrics(15_000.0) - 3_500.0).abs() < 1e-9);
        // ... + 240,000 at 0.10 + 750,000 at 0.05 + 1,000,000 at 0.02
        let big = 3_000.0 + 24_000.0 + 37_500.0 + 20_000.0;
        assert!((p.custom_metrics(2_000_000.0) - big).abs() < 1e-6);
    }

    #[test]
    fn a_file_overrides_single_fields() {
        let p: Prices = serde_yaml_ng::from_str("region: eu-west-1\nlog_ingestion_per_gb: 0.57\n")
            .expect("parses");
        assert_eq!(p.region, "eu-west-1");
        assert_eq!(p.log_ingestion_per_gb, 0.57);
        assert_eq!(p.xray_recorded_per_million, 5.0);
        assert!(serde_yaml_ng::from_str::<Prices>("log_ingest: 1").is_err());
    }
}
