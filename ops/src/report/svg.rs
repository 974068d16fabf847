//! Hand-written SVG line charts (a few dozen lines instead of a plotting crate): one KPI
//! over its window, gaps left open, the target as a dashed line.

use std::fmt::Write as _;

use super::escape;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 170.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 26.0;

pub struct Chart<'a> {
    pub title: &'a str,
    pub unit: &'a str,
    pub points: &'a [Option<f64>],
    pub target: f64,
    pub start_label: &'a str,
    pub end_label: &'a str,
}

pub fn line_chart(c: &Chart) -> String {
    let values: Vec<f64> = c
        .points
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let lo = values.iter().copied().fold(c.target, f64::min);
    let hi = values.iter().copied().fold(c.target, f64::max);
    let margin = ((hi - lo) * 0.1).max(hi.abs() * 0.01).max(1e-9);
    let (lo, hi) = (lo - margin, hi + margin);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slots = c.points.len().max(2) - 1;
    let x = |i: usize| LEFT + plot_w * i as f64 / slots as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - (v - lo) / (hi - lo));

    let mut path = String::new();
    let mut pen_down = false;
    let mut dots = String::new();
    for (i, p) in c.points.iter().enumerate() {
        match p {
            Some(v) if v.is_finite() => {
                let _ = write!(
                    path,
                    "{}{:.1},{:.1} ",
                    if pen_down { "L" } else { "M" },
                    x(i),
                    y(*v)
                );
                let _ = write!(
                    dots,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2"/>"#,
                    x(i),
                    y(*v)
                );
                pen_down = true;
            }
            _ => pen_down = false,
        }
    }
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}">"##,
        title = escape(c.title)
    );
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>"##
    );
    let ty = y(c.target);
    let _ = write!(
        svg,
        r##"<line class="target" x1="{LEFT}" x2="{:.1}" y1="{ty:.1}" y2="{ty:.1}" stroke="#c0392b" stroke-dasharray="5,4"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#c0392b" text-anchor="end">target {}</text>"##,
        WIDTH - RIGHT,
        WIDTH - RIGHT - 2.0,
        ty - 3.0,
        escape(&format!("{} {}", short(c.target), c.unit))
    );
    if path.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="13" text-anchor="middle" fill="#777">no data</text>"##,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    } else {
        let _ = write!(
            svg,
            r##"<path class="series" d="{}" fill="none" stroke="#2c6fbb" stroke-width="2"/><g fill="#2c6fbb">{dots}</g>"##,
            path.trim_end()
        );
    }
    // The data's top and bottom on the axis; the bottom one only where it does not
    // overlap the top one.
    let (top, bottom) = (hi - margin, lo + margin);
    let mut labels = vec![top];
    if y(bottom) - y(top) > 12.0 {
        labels.push(bottom);
    }
    for v in labels {
        let label = short(v);
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end" fill="#555">{}</text>"##,
            LEFT - 4.0,
            y(v) + 3.0,
            escape(&label)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{LEFT}" y="{:.1}" font-size="10" fill="#555">{}</text><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end" fill="#555">{}</text></svg>"##,
        HEIGHT - 8.0,
        escape(c.start_label),
        WIDTH - RIGHT,
        HEIGHT - 8.0,
        escape(c.end_label)
    );
    svg
}

fn short(v: f64) -> String {
    super::super::kpis::targets::format_number(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_start_a_new_stroke_and_the_target_is_drawn() {
        let svg = line_chart(&Chart {
            title: "availability <%>",
            unit: "%",
            points: &[Some(100.0), Some(99.0), None, Some(99.5)],
            target: 99.9,
            start_label: "16:00",
            end_label: "17:00",
        });
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<circle").count(), 3);
        let d = svg
            .split("d=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
        assert!(svg.contains("target 99.9 %"));
        assert!(svg.contains("availability &lt;%&gt;"));
    }

    #[test]
    fn an_empty_series_says_no_data() {
        let svg = line_chart(&Chart {
            title: "t",
            unit: "ms",
            points: &[None, None],
            target: 1000.0,
            start_label: "",
            end_label: "",
        });
        assert!(svg.contains(">no data<"));
        assert!(!svg.contains("class=\"series\""));
    }
}
