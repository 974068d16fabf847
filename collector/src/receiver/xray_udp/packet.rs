//! One UDP datagram of the X-Ray daemon protocol: a header line, then one document.
//!
//! The SDKs send `{"format":"json","version":1}\n` followed by a segment or an independent
//! subsegment, one per datagram. The header is read as JSON rather than compared byte for
//! byte, so SDKs that put spaces in it (`{"format": "json", "version": 1}`) or end it with
//! `\r\n` are understood too.

use serde::Deserialize;

use aurastream_proto::xray::MAX_DOCUMENT_BYTES;

/// Largest datagram the receiver reads. X-Ray refuses documents over 64 KB and the daemon
/// reads with a 64 KB buffer; the receive buffer is one byte larger so a longer datagram is
/// seen as too long instead of silently cut.
pub const MAX_PACKET_BYTES: usize = MAX_DOCUMENT_BYTES;

/// Why a datagram was refused; [`PacketError::reason`] is the `reason` label of the
/// refused counter.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("datagram of {bytes} bytes is over the {MAX_PACKET_BYTES}-byte limit")]
    TooLarge { bytes: usize },
    #[error(
        "no daemon header line; X-Ray SDKs send `{{\"format\":\"json\",\"version\":1}}` and a \
         newline before the document"
    )]
    NoHeader,
    #[error("unsupported daemon header `{0}`; only format `json` version 1 exists")]
    BadHeader(String),
    #[error("the document is not valid JSON: {0}")]
    BadJson(#[from] serde_json::Error),
    #[error("not a valid segment document: {0}")]
    InvalidSegment(String),
}

impl PacketError {
    pub fn reason(&self) -> &'static str {
        match self {
            PacketError::TooLarge { .. } => "too_large",
            PacketError::NoHeader => "no_header",
            PacketError::BadHeader(_) => "bad_header",
            PacketError::BadJson(_) => "bad_json",
            PacketError::InvalidSegment(_) => "invalid_segment",
        }
    }
}

/// The header fields; anything else in the header is ignored, as the daemon does.
#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    version: Option<i64>,
}

/// The document part of a datagram, after its header was checked.
pub fn body(packet: &[u8]) -> Result<&[u8], PacketError> {
    if packet.len() > MAX_PACKET_BYTES {
        return Err(PacketError::TooLarge {
            bytes: packet.len(),
        });
    }
    let newline = packet
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(PacketError::NoHeader)?;
    let (head, rest) = packet.split_at(newline);
    let header: Header = serde_json::from_slice(head).map_err(|_| PacketError::NoHeader)?;
    match (header.format.as_deref(), header.version) {
        (Some("json"), Some(1)) => Ok(&rest[1..]),
        (None, None) => Err(PacketError::NoHeader),
        _ => Err(PacketError::BadHeader(
            String::from_utf8_lossy(head).trim().to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::xray_udp::decode;

    const DOC: &str = r#"{"name":"api","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"end_time":2.0}"#;

    #[test]
    fn header_variants_are_understood() {
        for header in [
            r#"{"format":"json","version":1}"#,
            r#"{"format": "json", "version": 1}"#,
            "{\"format\":\"json\",\"version\":1}\r",
            r#"{"version":1,"format":"json","extra":true}"#,
        ] {
            let packet = format!("{header}\n{DOC}");
            assert_eq!(body(packet.as_bytes()).unwrap(), DOC.as_bytes(), "{header}");
        }
    }

    #[test]
    fn bad_packets_say_why() {
        let too_large = vec![b' '; MAX_PACKET_BYTES + 1];
        for (packet, reason) in [
            (DOC.as_bytes().to_vec(), "no_header"),
            (format!("{DOC}\n{DOC}").into_bytes(), "no_header"),
            (b"garbage\n{}".to_vec(), "no_header"),
            (b"".to_vec(), "no_header"),
            (
                format!("{{\"format\":\"json\",\"version\":2}}\n{DOC}").into_bytes(),
                "bad_header",
            ),
            (
                format!("{{\"format\":\"protobuf\",\"version\":1}}\n{DOC}").into_bytes(),
                "bad_header",
            ),
            (
                b"{\"format\":\"json\",\"version\":1}\n{\"name\":".to_vec(),
                "bad_json",
            ),
            (
                b"{\"format\":\"json\",\"version\":1}\n[1,2]".to_vec(),
                "invalid_segment",
            ),
            (too_large, "too_large"),
        ] {
            let err = decode(&packet).unwrap_err();
            assert_eq!(
                err.reason(),
                reason,
                "{}: {err}",
                String::from_utf8_lossy(&packet[..packet.len().min(60)])
            );
        }
    }

    #[test]
    fn a_packet_at_the_limit_is_read() {
        let header = "{\"format\":\"json\",\"version\":1}\n";
        let doc = format!(
            r#"{{"name":"api","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"end_time":2.0,"metadata":{{"default":{{"pad":"{}"}}}}}}"#,
            "x".repeat(MAX_PACKET_BYTES - header.len() - DOC.len() - 34)
        );
        let packet = format!("{header}{doc}");
        assert_eq!(packet.len(), MAX_PACKET_BYTES);
        assert_eq!(
            decode(packet.as_bytes()).unwrap().scope_spans[0]
                .spans
                .len(),
            1
        );
    }
}
