//! Grouping documents into `PutTraceSegments` calls.
//!
//! A call carries at most 50 documents, and we keep its body under ~480 KB so a full
//! batch of large documents never hits the API's request size limit. Each document
//! travels as a JSON string inside the request, so its size there is its escaped length.

/// X-Ray's limit on documents per `PutTraceSegments` call.
pub(crate) const MAX_DOCUMENTS_PER_CALL: usize = 50;
/// Request body budget per call, below the API's limit with room for the envelope.
pub(crate) const MAX_CALL_BYTES: usize = 480 * 1024;

/// The size a document adds to a request body: its JSON-escaped form plus a comma.
pub(crate) fn request_size(document: &str) -> usize {
    serde_json::to_string(document).map_or(document.len() * 2, |s| s.len()) + 1
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
}
