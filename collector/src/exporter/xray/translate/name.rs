//! The characters X-Ray allows in segment names and annotation keys.

/// X-Ray's limit on segment names, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 200;
/// X-Ray's limit on annotation keys, in characters.
const MAX_ANNOTATION_KEY_CHARS: usize = 500;
/// Name used when nothing usable is left after sanitizing: X-Ray refuses empty names.
pub(crate) const FALLBACK_NAME: &str = "unknown";

/// Keeps letters, numbers, whitespace and `_ . : / % & # = + \ - @`, at most 200 of them.
/// X-Ray refuses a document whose name has anything else.
pub(crate) fn sanitize_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(*c))
        .take(MAX_NAME_CHARS)
        .collect();
    if name.trim().is_empty() {
        FALLBACK_NAME.to_owned()
    } else {
        name
    }
}

/// Annotation keys may only hold ASCII letters, digits and `_`; anything else becomes `_`
/// (`http.route` → `http_route`), as the other X-Ray exporters do.
pub(crate) fn sanitize_annotation_key(raw: &str) -> String {
    raw.chars()
        .take(MAX_ANNOTATION_KEY_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_only_allowed_characters() {
        for (raw, want) in [
            ("GET /orders/{id}", "GET /orders/id"),
            ("db@host:5432", "db@host:5432"),
            ("a+b=c&d#e%f\\g-h_i.j", "a+b=c&d#e%f\\g-h_i.j"),
            ("café → 東京", "café  東京"),
            ("<>!?*", FALLBACK_NAME),
            ("", FALLBACK_NAME),
        ] {
            assert_eq!(sanitize_name(raw), want, "{raw}");
        }
        assert_eq!(sanitize_name(&"x".repeat(300)).chars().count(), 200);
    }

    #[test]
    fn annotation_keys_become_alphanumeric() {
        assert_eq!(sanitize_annotation_key("http.route"), "http_route");
        assert_eq!(sanitize_annotation_key("order-id/v2"), "order_id_v2");
        assert_eq!(sanitize_annotation_key("ünï"), "_n_");
        assert_eq!(sanitize_annotation_key(&"k".repeat(600)).len(), 500);
    }
}
