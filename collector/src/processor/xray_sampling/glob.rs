//! X-Ray's wildcard patterns: `*` is any run of characters, `?` exactly one.
//!
//! Matching ignores case, as the X-Ray SDKs and Envoy's X-Ray tracer do for every rule
//! field: a rule written `GET` or `/Analyze/*` must select the same requests in this
//! collector as in an SDK running the same rule file, or traces would be sampled
//! differently depending on where the decision is made.

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Glob {
    /// Lower-cased characters of the pattern.
    pattern: Vec<char>,
    /// `*` alone: the common case, answered without looking at the text.
    any: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let pattern: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
        let any = !pattern.is_empty() && pattern.iter().all(|&c| c == '*');
        Glob { pattern, any }
    }

    /// True for a pattern that matches every value, including a missing one.
    pub fn is_any(&self) -> bool {
        self.any
    }

    pub fn matches(&self, text: &str) -> bool {
        if self.any {
            return true;
        }
        let text: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
        let pat = &self.pattern;
        let (mut p, mut t) = (0, 0);
        // Where the last `*` was seen, and the text position it currently stands for the
        // end of: on a mismatch the `*` swallows one more character and matching resumes.
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match pat.get(p) {
                Some('*') => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(&c) if c == '?' || c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        pat[p..].iter().all(|&c| c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn glob_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("GET", "get", true),
            ("get", "POST", false),
            ("/analyze/*", "/analyze/sentiment", true),
            ("/analyze/*", "/analyze/", true),
            ("/analyze/*", "/analyze", false),
            ("/Analyze/*", "/ANALYZE/x", true),
            ("4*", "404", true),
            ("4*", "500", false),
            ("4??", "404", true),
            ("4??", "4040", false),
            ("?", "", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("*.example.com", "api.example.com", true),
            ("*.example.com", "example.com", false),
            ("**a", "bba", true),
            ("*a*", "bab", true),
            ("a*a", "aaaa", true),
        ];
        for &(pattern, text, expected) in cases {
            assert_eq!(
                Glob::new(pattern).matches(text),
                expected,
                "{pattern:?} vs {text:?}"
            );
        }
    }
}
