//! `${env:VAR}` substitution, applied to the config text before parsing.
//!
//! Substituting in the text (rather than in parsed values) keeps line numbers in error
//! messages pointing at the file the operator wrote. To keep a variable from smuggling YAML
//! structure into the file, values containing a newline are refused.
//!
//! Forms: `${env:VAR}`, `${VAR}` (the OpenTelemetry Collector's older form),
//! `${env:VAR:-default}` (default when unset or empty), and `$$` for a literal `$`.

use std::fmt;

#[derive(Debug, PartialEq, Eq)]
pub struct EnvError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Expands variables in `text` using `lookup` (the process environment in production).
pub fn substitute(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, EnvError> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        substitute_line(line, index + 1, &lookup, &mut out)?;
    }
    Ok(out)
}

fn substitute_line(
    line: &str,
    line_no: usize,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), EnvError> {
    // A YAML comment may mention `${...}` freely; stop substituting at an unquoted `#`
    // that starts a comment (start of line or after whitespace).
    let mut rest = line;
    while let Some(pos) = rest.find('$') {
        let before = &rest[..pos];
        if let Some(comment) = comment_start(before, out) {
            out.push_str(&rest[..comment]);
            out.push_str(&rest[comment..]);
            return Ok(());
        }
        out.push_str(before);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
            continue;
        }
        let Some(body_and_rest) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(close) = body_and_rest.find('}') else {
            return Err(EnvError {
                line: line_no,
                message: "unterminated `${`: expected `${env:NAME}`".into(),
            });
        };
        let body = &body_and_rest[..close];
        out.push_str(&expand(body, line_no, lookup)?);
        rest = &body_and_rest[close + 1..];
    }
    out.push_str(rest);
    Ok(())
}

/// Byte offset of a comment's `#` in `before`, if the text so far on this line (already
/// partly in `out`) is outside quotes. Kept deliberately simple: a `#` preceded by
/// whitespace or at line start, with an even number of quotes before it.
fn comment_start(before: &str, out: &str) -> Option<usize> {
    let line_so_far_start = out.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let emitted = &out[line_so_far_start..];
    let mut prev_ws = emitted.is_empty() || emitted.ends_with(char::is_whitespace);
    let mut quotes = emitted.matches(['"', '\'']).count();
    for (i, c) in before.char_indices() {
        if c == '#' && prev_ws && quotes.is_multiple_of(2) {
            return Some(i);
        }
        if c == '"' || c == '\'' {
            quotes += 1;
        }
        prev_ws = c.is_whitespace();
    }
    None
}

fn expand(
    body: &str,
    line_no: usize,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, EnvError> {
    let spec = body.strip_prefix("env:").unwrap_or(body);
    let (name, default) = match spec.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (spec, None),
    };
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(EnvError {
            line: line_no,
            message: format!(
                "`${{{body}}}` is not a variable reference; use `${{env:NAME}}` or \
                 `${{env:NAME:-default}}` (write `$$` for a literal `$`)"
            ),
        });
    }
    let value = match (lookup(name), default) {
        (Some(v), Some(d)) if v.is_empty() => d.to_string(),
        (Some(v), _) => v,
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            return Err(EnvError {
                line: line_no,
                message: format!(
                    "environment variable `{name}` is not set; set it or give a default \
                     with `${{env:{name}:-value}}`"
                ),
            });
        }
    };
    if value.contains('\n') {
        return Err(EnvError {
            line: line_no,
            message: format!(
                "environment variable `{name}` contains a newline, which could change the YAML structure"
            ),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "REGION" => Some("eu-west-1".into()),
            "EMPTY" => Some(String::new()),
            "MULTI" => Some("a\nb".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_all_forms() {
        let text =
            "a: ${env:REGION}\nb: ${REGION}\nc: ${env:MISSING:-x}\nd: ${env:EMPTY:-y}\ne: $$5 $x\n";
        assert_eq!(
            substitute(text, env).unwrap(),
            "a: eu-west-1\nb: eu-west-1\nc: x\nd: y\ne: $5 $x\n"
        );
    }

    #[test]
    fn missing_variable_names_line_and_variable() {
        let err = substitute("a: 1\nb: ${env:NOPE}\n", env).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("`NOPE` is not set"), "{}", err.message);
    }

    #[test]
    fn refuses_newlines_and_bad_references() {
        assert!(substitute("a: ${env:MULTI}", env).is_err());
        assert!(substitute("a: ${env:1X}", env).is_err());
        assert!(substitute("a: ${env:REGION", env).is_err());
    }

    #[test]
    fn comments_are_left_alone() {
        let text = "a: 1 # use ${env:NOPE} here\n# ${env:NOPE}\nb: \"#${env:REGION}\"\n";
        assert_eq!(
            substitute(text, env).unwrap(),
            "a: 1 # use ${env:NOPE} here\n# ${env:NOPE}\nb: \"#eu-west-1\"\n"
        );
    }
}
