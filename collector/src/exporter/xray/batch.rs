//! Grouping documents into `PutTraceSegments` calls.
//!
//! A call carries at most 50 documents, and we keep its body under ~480 KB so a full
//! batch of large documents never hits the API's request size limit. Each document
//! travels as a JSON string inside the request, so its size there is its escaped length.

/// X-Ray's limit on documents per `PutTraceSegments` call.
pub(crate) const MAX_DOCUMENTS_PER_CALL: usize = 50;
/// Request body budget per call, below the API's limit with room for the envelope.
pub(crate) const MAX_CALL_BYTES: usize = 480 * 1024;

/// The size a document adds to a request body: its JSON-escaped form (quotes included)
/// plus a comma. Counted, not built: `"` and `\\` and the control characters with a short
/// escape take two bytes, the other control characters six (`\u001f`), the rest one.
pub(crate) fn request_size(document: &str) -> usize {
    let extra: usize = document
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | 0x08 | b'\t' | b'\n' | 0x0C | b'\r' => 1,
            0x00..=0x1F => 5,
            _ => 0,
        })
        .sum();
    document.len() + extra + 2 + 1
}

/// Splits `(index, request_size)` pairs, in order, into calls within both limits.
pub(crate) fn calls(documents: impl IntoIterator<Item = (usize, usize)>) -> Vec<Vec<usize>> {
    let mut calls = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for (index, size) in documents {
        if !current.is_empty()
            && (current.len() == MAX_DOCUMENTS_PER_CALL || bytes + size > MAX_CALL_BYTES)
        {
            calls.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(index);
        bytes += size;
    }
    if !current.is_empty() {
        calls.push(current);
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_fifty_documents_per_call() {
        let calls = calls((0..120).map(|i| (i, 100)));
        let lens: Vec<usize> = calls.iter().map(Vec::len).collect();
        assert_eq!(lens, [50, 50, 20]);
        assert_eq!(calls.concat(), (0..120).collect::<Vec<_>>());
    }

    #[test]
    fn large_documents_split_by_bytes() {
        // 64 KB documents: 7 fit in 480 KB, the 8th starts a new call.
        let calls = calls((0..10).map(|i| (i, 64 * 1024 + 10)));
        let lens: Vec<usize> = calls.iter().map(Vec::len).collect();
        assert_eq!(lens, [7, 3]);
        for call in &calls {
            assert!(call.len() * (64 * 1024 + 10) <= MAX_CALL_BYTES);
        }
    }

    #[test]
    fn escaped_size_counts_quotes() {
        assert_eq!(request_size(r#"{"a":1}"#), r#""{\"a\":1}""#.len() + 1);
        assert!(calls(std::iter::empty()).is_empty());
    }

    #[test]
    fn counted_size_matches_serde_json_escaping() {
        let mut every_ascii: String = (0u8..0x80).map(char::from).collect();
        every_ascii.push_str("é \u{2028} 😀 \\\" \u{7f}");
        for text in [
            "",
            "plain",
            r#"{"name":"GET /a\"b","x":"\\n"}"#,
            every_ascii.as_str(),
        ] {
            let escaped = serde_json::to_string(text).unwrap();
            assert_eq!(request_size(text), escaped.len() + 1, "{text:?}");
        }
    }
}
