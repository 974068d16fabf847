//! One trace on a time axis in the terminal: a row per segment and subsegment, indented
//! by depth, with a bar from its start to its end and marks for what went wrong.

use super::document::Node;
use crate::table::{Align, Table};

const BAR_WIDTH: usize = 40;

/// `!` fault (5xx), `T` throttle (429), `E` error (4xx), `…` still in progress.
pub fn marks(n: &Node) -> String {
    let mut m = String::new();
    if n.fault {
        m.push('!');
    }
    if n.throttle {
        m.push('T');
    }
    if n.error && !n.throttle {
        m.push('E');
    }
    if n.end.is_none() {
        m.push('…');
    }
    m
}

pub fn render(roots: &[Node]) -> String {
    let rows: Vec<(usize, &Node)> = roots.iter().flat_map(Node::walk).collect();
    let Some(t0) = rows.iter().map(|(_, n)| n.start).min_by(f64::total_cmp) else {
        return "(no segments)\n".into();
    };
    let t1 = rows
        .iter()
        .map(|(_, n)| n.end.unwrap_or(n.start))
        .max_by(f64::total_cmp)
        .unwrap_or(t0);
    let span = (t1 - t0).max(1e-6);
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("", Align::Left),
        ("START", Align::Right),
        ("DURATION", Align::Right),
        ("TIMELINE", Align::Left),
    ]);
    for (depth, n) in rows {
        let from = ((n.start - t0) / span * BAR_WIDTH as f64).floor() as usize;
        let to = ((n.end.unwrap_or(t1) - t0) / span * BAR_WIDTH as f64).ceil() as usize;
        let from = from.min(BAR_WIDTH - 1);
        let to = to.clamp(from + 1, BAR_WIDTH);
        let fill = if n.fault || n.throttle || n.error {
            '▓'
        } else {
            '█'
        };
        let bar: String = (0..BAR_WIDTH)
            .map(|i| if i >= from && i < to { fill } else { '·' })
            .collect();
        let status = n.http_status.map(|s| format!(" {s}")).unwrap_or_default();
        table.row(vec![
            format!("{}{}", "  ".repeat(depth), n.name),
            format!("{}{status}", marks(n)),
            format!("{:.0} ms", (n.start - t0) * 1000.0),
            n.duration_ms()
                .map(|d| format!("{d:.0} ms"))
                .unwrap_or_else(|| "in progress".into()),
            format!("|{bar}|"),
        ]);
    }
    let mut out = table.render();
    // The axis under the bars: "0 ms" at the bar's first cell, the span at its last.
    let bar_at = out
        .lines()
        .nth(1)
        .and_then(|l| l.chars().position(|c| c == '|'))
        .unwrap_or(0)
        + 1;
    let end = format!("{:.0} ms", span * 1000.0);
    out.push_str(&format!(
        "{}0 ms{:>pad$}\n",
        " ".repeat(bar_at),
        end,
        pad = BAR_WIDTH.saturating_sub(4)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::super::document::{assemble, parse};
    use super::*;

    #[test]
    fn bars_are_placed_on_the_trace_time_axis() {
        let roots = assemble(vec![
            parse(
                r#"{"name":"api","id":"a","start_time":0,"end_time":2.0,
                    "subsegments":[{"name":"late","id":"l","start_time":1.0,"end_time":2.0,"fault":true,
                                    "http":{"response":{"status":503}}}]}"#,
            )
            .expect("parses"),
        ]);
        let text = render(&roots);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("api "), "{text}");
        assert!(
            lines[1].contains(&format!("|{}|", "█".repeat(40))),
            "{text}"
        );
        assert!(lines[2].starts_with("  late"), "{text}");
        assert!(lines[2].contains("! 503"), "{text}");
        assert!(
            lines[2].contains(&format!("|{}{}|", "·".repeat(20), "▓".repeat(20))),
            "{text}"
        );
        assert!(lines[2].contains("1000 ms"), "{text}");
        let bar = lines[1].chars().position(|c| c == '|').unwrap_or(0);
        assert_eq!(
            lines[3].chars().position(|c| c == '0'),
            Some(bar + 1),
            "{text}"
        );
        assert_eq!(lines[3].chars().count(), bar + 1 + BAR_WIDTH, "{text}");
        assert!(lines[3].ends_with("2000 ms"), "{text}");
    }
}
