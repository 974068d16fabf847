//! One-line charts from Unicode block characters, so a KPI's trend fits in a table cell.

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One character per slot; a missing point is a space, so gaps in the data stay visible
/// instead of being drawn as zero. A flat series sits at mid height.
pub fn sparkline(points: &[Option<f64>]) -> String {
    let present = points.iter().flatten().copied().filter(|v| v.is_finite());
    let (min, max) = present.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    points
        .iter()
        .map(|p| match p {
            Some(v) if v.is_finite() => {
                if max - min < f64::EPSILON * max.abs().max(1.0) {
                    BARS[3]
                } else {
                    let level = ((v - min) / (max - min) * (BARS.len() - 1) as f64).round();
                    BARS[(level as usize).min(BARS.len() - 1)]
                }
            }
            _ => ' ',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_between_min_and_max_and_keeps_gaps() {
        let s = sparkline(&[Some(0.0), Some(7.0), None, Some(3.5), Some(14.0)]);
        // Levels 0, 3.5 → 4, gap, 1.75 → 2, 7.
        assert_eq!(s, "▁▅ ▃█");
    }

    #[test]
    fn flat_empty_and_non_finite() {
        assert_eq!(sparkline(&[Some(5.0), Some(5.0)]), "▄▄");
        assert_eq!(sparkline(&[]), "");
        assert_eq!(sparkline(&[None, Some(f64::NAN), Some(1.0)]), "  ▄");
    }
}
