//! Keeping every document within X-Ray's 64 KB limit.
//!
//! X-Ray refuses a larger document outright, which would lose the whole span. Instead the
//! least useful parts go first, largest first within each step: attribute and resource
//! metadata, then events, then the attributes of span links (the links themselves stay),
//! then stack frames, then annotations, then the links, last ones first, and at last long
//! strings are shortened. Ids, times, names and the error flags are never touched, so a
//! trimmed document still places the span correctly in its trace.

use aurastream_proto::xray::{MAX_DOCUMENT_BYTES, SegmentDocument};

use super::translate::{EVENTS_KEY, METADATA_NAMESPACE};

/// Longest a free-text field (URL, query, exception message) may stay in the last step.
const SHORT_TEXT_CHARS: usize = 1024;

/// A document that cannot be made small enough (it would have to lose its identity).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FitError {
    #[error("segment document is {0} bytes even after trimming; X-Ray takes at most 64 KB")]
    TooLarge(usize),
    #[error("segment document cannot be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// The serialized document, at most [`MAX_DOCUMENT_BYTES`], and whether parts were dropped.
pub(crate) fn fit(doc: &mut SegmentDocument) -> Result<(String, bool), FitError> {
    fit_within(doc, MAX_DOCUMENT_BYTES)
}

fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

pub(crate) fn fit_within(
    doc: &mut SegmentDocument,
    limit: usize,
) -> Result<(String, bool), FitError> {
    let mut body = serde_json::to_string(doc)?;
    if body.len() <= limit {
        return Ok((body, false));
    }
    let steps: [fn(&mut SegmentDocument, usize) -> bool; 7] = [
        drop_attribute_metadata,
        drop_events,
        drop_link_attributes,
        drop_stacks,
        drop_annotations,
        drop_links,
        shorten_texts,
    ];
    for step in steps {
        if step(doc, body.len() - limit) {
            body = serde_json::to_string(doc)?;
            if body.len() <= limit {
                return Ok((body, true));
            }
        }
    }
    Err(FitError::TooLarge(body.len()))
}

/// Removes metadata entries (other than events), largest first, until about `excess`
/// bytes are gone. Returns whether anything changed.
fn drop_attribute_metadata(doc: &mut SegmentDocument, excess: usize) -> bool {
    let mut sizes: Vec<(usize, String, String)> = doc
        .metadata
        .iter()
        .flat_map(|(ns, entries)| {
            entries
                .iter()
                .filter(move |(k, _)| !(ns == METADATA_NAMESPACE && k.as_str() == EVENTS_KEY))
                .map(|(k, v)| (k.len() + json_len(v) + 4, ns.clone(), k.clone()))
        })
        .collect();
    sizes.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let mut freed = 0;
    let mut changed = false;
    for (size, ns, key) in sizes {
        if freed >= excess {
            break;
        }
        if let Some(entries) = doc.metadata.get_mut(&ns) {
            entries.remove(&key);
            freed += size;
            changed = true;
        }
    }
    doc.metadata.retain(|_, entries| !entries.is_empty());
    changed
}

fn drop_events(doc: &mut SegmentDocument, _excess: usize) -> bool {
    let removed = doc
        .metadata
        .get_mut(METADATA_NAMESPACE)
        .and_then(|entries| entries.remove(EVENTS_KEY))
        .is_some();
    doc.metadata.retain(|_, entries| !entries.is_empty());
    removed
}

/// Empties the attributes of every link; the linked trace and span ids, which make the
/// link, stay.
fn drop_link_attributes(doc: &mut SegmentDocument, _excess: usize) -> bool {
    let mut changed = false;
    for link in &mut doc.links {
        if !link.attributes.is_empty() {
            link.attributes.clear();
            changed = true;
        }
    }
    changed
}

/// Removes links from the end (the span's order puts the first-known relations first)
/// until about `excess` bytes are gone.
fn drop_links(doc: &mut SegmentDocument, excess: usize) -> bool {
    let changed = !doc.links.is_empty();
    let mut freed = 0;
    while freed < excess
        && let Some(link) = doc.links.pop()
    {
        freed += json_len(&link) + 1;
    }
    changed
}

/// Drops stack frames (counting them in `truncated`) of every exception.
fn drop_stacks(doc: &mut SegmentDocument, _excess: usize) -> bool {
    let Some(cause) = &mut doc.cause else {
        return false;
    };
    let mut changed = false;
    for e in &mut cause.exceptions {
        if !e.stack.is_empty() {
            let dropped = u32::try_from(e.stack.len()).unwrap_or(u32::MAX);
            e.truncated = Some(e.truncated.unwrap_or(0).saturating_add(dropped));
            e.stack.clear();
            changed = true;
        }
    }
    changed
}

fn drop_annotations(doc: &mut SegmentDocument, excess: usize) -> bool {
    let mut sizes: Vec<(usize, String)> = doc
        .annotations
        .iter()
        .map(|(k, v)| (k.len() + json_len(v) + 4, k.clone()))
        .collect();
    sizes.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let mut freed = 0;
    let changed = !sizes.is_empty();
    for (size, key) in sizes {
        if freed >= excess {
            break;
        }
        doc.annotations.remove(&key);
        freed += size;
    }
    changed
}

fn shorten(text: &mut Option<String>) -> bool {
    match text {
        Some(t) if t.chars().count() > SHORT_TEXT_CHARS => {
            *t = t.chars().take(SHORT_TEXT_CHARS).collect();
            true
        }
        _ => false,
    }
}

/// Shortens free text that has no size limit of its own, and drops the remaining
/// metadata (events included) and whole exceptions beyond the first.
fn shorten_texts(doc: &mut SegmentDocument, _excess: usize) -> bool {
    let mut changed = !doc.metadata.is_empty();
    doc.metadata.clear();
    if let Some(req) = doc.http.as_mut().and_then(|h| h.request.as_mut()) {
        changed |= shorten(&mut req.url);
        changed |= shorten(&mut req.user_agent);
        changed |= shorten(&mut req.client_ip);
        changed |= shorten(&mut req.method);
    }
    if let Some(sql) = &mut doc.sql {
        changed |= shorten(&mut sql.sanitized_query);
        changed |= shorten(&mut sql.url);
        changed |= shorten(&mut sql.user);
    }
    if let Some(aws) = &mut doc.aws {
        for field in [
            &mut aws.operation,
            &mut aws.queue_url,
            &mut aws.request_id,
            &mut aws.table_name,
        ] {
            changed |= shorten(field);
        }
        if aws.table_names.len() > 1 {
            aws.table_names.truncate(1);
            changed = true;
        }
    }
    if let Some(cause) = &mut doc.cause {
        if cause.exceptions.len() > 1 {
            cause.exceptions.truncate(1);
            changed = true;
        }
        for e in &mut cause.exceptions {
            changed |= shorten(&mut e.message);
            changed |= shorten(&mut e.kind);
        }
    }
    changed |= shorten(&mut doc.user);
    changed
}
