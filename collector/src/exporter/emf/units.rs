//! OTLP (UCUM) units into CloudWatch unit names.
//!
//! CloudWatch knows a fixed list of units; a metric sent with anything else is stored
//! without one. OpenTelemetry instruments declare UCUM units (`ms`, `By`, `{request}`), so
//! they are translated here; `metric_descriptors` can override per metric.

/// The CloudWatch unit for a UCUM unit, `None` when there is no counterpart (the metric
/// is then sent without a unit, which CloudWatch shows as `None`).
pub fn cloudwatch_unit(ucum: &str) -> Option<&'static str> {
    let unit = match ucum {
        "" | "1" => return None,
        "ns" => return None, // CloudWatch has no nanoseconds; values are kept as sent.
        "us" | "μs" => "Microseconds",
        "ms" => "Milliseconds",
        "s" => "Seconds",
        "By" => "Bytes",
        "KBy" | "kBy" | "KiBy" => "Kilobytes",
        "MBy" | "MiBy" => "Megabytes",
        "GBy" | "GiBy" => "Gigabytes",
        "TBy" | "TiBy" => "Terabytes",
        "bit" => "Bits",
        "Kibit" | "kbit" | "Kbit" => "Kilobits",
        "Mibit" | "Mbit" => "Megabits",
        "Gibit" | "Gbit" => "Gigabits",
        "Tibit" | "Tbit" => "Terabits",
        "%" => "Percent",
        "By/s" => "Bytes/Second",
        "KBy/s" | "kBy/s" | "KiBy/s" => "Kilobytes/Second",
        "MBy/s" | "MiBy/s" => "Megabytes/Second",
        "GBy/s" | "GiBy/s" => "Gigabytes/Second",
        "TBy/s" | "TiBy/s" => "Terabytes/Second",
        "bit/s" => "Bits/Second",
        "Kibit/s" | "kbit/s" | "Kbit/s" => "Kilobits/Second",
        "Mibit/s" | "Mbit/s" => "Megabits/Second",
        "Gibit/s" | "Gbit/s" => "Gigabits/Second",
        "Tibit/s" | "Tbit/s" => "Terabits/Second",
        "{count}/s" | "1/s" => "Count/Second",
        other => {
            // `{request}`, `{packet}`: UCUM annotations count things.
            if other.starts_with('{') && other.ends_with('}') {
                "Count"
            } else if other.starts_with('{') && other.ends_with("}/s") {
                "Count/Second"
            } else {
                return None;
            }
        }
    };
    Some(unit)
}

/// Every unit name CloudWatch accepts, for validating `metric_descriptors`.
pub const CLOUDWATCH_UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ucum_units_map_to_cloudwatch_units() {
        let cases = [
            ("ms", Some("Milliseconds")),
            ("s", Some("Seconds")),
            ("us", Some("Microseconds")),
            ("By", Some("Bytes")),
            ("KiBy", Some("Kilobytes")),
            ("KBy", Some("Kilobytes")),
            ("MiBy", Some("Megabytes")),
            ("1", None),
            ("", None),
            ("{count}", Some("Count")),
            ("{request}", Some("Count")),
            ("{request}/s", Some("Count/Second")),
            ("%", Some("Percent")),
            ("By/s", Some("Bytes/Second")),
            ("bit/s", Some("Bits/Second")),
            ("furlong", None),
        ];
        for (ucum, want) in cases {
            assert_eq!(cloudwatch_unit(ucum), want, "{ucum}");
        }
    }

    #[test]
    fn every_mapped_unit_is_a_cloudwatch_unit() {
        for ucum in [
            "ms", "s", "us", "By", "KiBy", "%", "By/s", "{x}", "{x}/s", "Tbit/s",
        ] {
            let unit = cloudwatch_unit(ucum).expect("mapped");
            assert!(CLOUDWATCH_UNITS.contains(&unit), "{unit}");
        }
    }
}
