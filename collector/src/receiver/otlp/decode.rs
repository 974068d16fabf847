//! Request bodies to OTLP messages: decompression with a hard size limit, then protobuf
//! or JSON decoding, each failure with a message that tells the sender what is wrong.

use std::io::Read;

use flate2::read::GzDecoder;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body, once decompressed, is larger than the configured limit. Decompression stops
    /// as soon as the limit is passed, so a gzip bomb costs at most `limit` bytes.
    #[error("request body exceeds the limit of {limit} bytes (after decompression)")]
    TooLarge { limit: usize },
    #[error("unsupported Content-Encoding `{0}`; send `gzip` or no encoding")]
    UnsupportedEncoding(String),
    #[error("body is not valid gzip: {0}")]
    BadGzip(String),
    #[error("body is not a valid OTLP protobuf {what}: {detail}")]
    BadProtobuf { what: &'static str, detail: String },
    #[error("body is not valid OTLP/JSON {what}: {detail}")]
    BadJson { what: &'static str, detail: String },
}

/// Whether a `Content-Encoding` leaves the body as it is (so its length on the wire is
/// its decompressed length).
pub fn is_identity(content_encoding: Option<&str>) -> bool {
    content_encoding.is_none_or(|e| {
        let e = e.trim();
        e.is_empty() || e.eq_ignore_ascii_case("identity")
    })
}

/// Returns the decompressed body, refusing anything over `limit` bytes.
pub fn decompress(
    body: bytes::Bytes,
    content_encoding: Option<&str>,
    limit: usize,
) -> Result<bytes::Bytes, DecodeError> {
    match content_encoding
        .map(|e| e.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => {
            if body.len() > limit {
                return Err(DecodeError::TooLarge { limit });
            }
            Ok(body)
        }
        Some("gzip") | Some("x-gzip") => {
            let mut out = Vec::with_capacity((body.len() * 4).min(limit));
            GzDecoder::new(&body[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| DecodeError::BadGzip(e.to_string()))?;
            if out.len() > limit {
                return Err(DecodeError::TooLarge { limit });
            }
            Ok(out.into())
        }
        Some(other) => Err(DecodeError::UnsupportedEncoding(other.into())),
    }
}

/// How an OTLP/HTTP body is encoded (from its `Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// An OTLP/HTTP request body as its message, exactly as the HTTP receiver decodes it:
/// decompressed per `content_encoding` (refusing more than `limit` bytes, so a gzip bomb
/// costs at most `limit`), then protobuf or OTLP/JSON. An empty body is an empty request in
/// protobuf (valid OTLP: no data) and an error in JSON. `what` names the message in errors.
/// Also the entry point of the fuzz targets (`fuzz/`).
pub fn request<T>(
    raw: bytes::Bytes,
    content_encoding: Option<&str>,
    encoding: Encoding,
    limit: usize,
    what: &'static str,
) -> Result<T, DecodeError>
where
    T: prost::Message + serde::de::DeserializeOwned + Default,
{
    let body = decompress(raw, content_encoding, limit)?;
    message(&body, encoding, what)
}

/// A decompressed OTLP/HTTP body as its message (see [`request`]).
pub fn message<T>(body: &[u8], encoding: Encoding, what: &'static str) -> Result<T, DecodeError>
where
    T: prost::Message + serde::de::DeserializeOwned + Default,
{
    if body.is_empty() {
        return match encoding {
            Encoding::Protobuf => Ok(T::default()),
            Encoding::Json => Err(DecodeError::BadJson {
                what,
                detail: "empty body".into(),
            }),
        };
    }
    match encoding {
        Encoding::Protobuf => protobuf(body, what),
        Encoding::Json => json(body, what),
    }
}

pub fn protobuf<T: prost::Message + Default>(
    body: &[u8],
    what: &'static str,
) -> Result<T, DecodeError> {
    T::decode(body).map_err(|e| DecodeError::BadProtobuf {
        what,
        detail: e.to_string(),
    })
}

pub fn json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &'static str,
) -> Result<T, DecodeError> {
    serde_json::from_slice(body).map_err(|e| DecodeError::BadJson {
        what,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> bytes::Bytes {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap().into()
    }

    #[test]
    fn gzip_within_limit_is_inflated() {
        let body = gzip(b"hello");
        assert_eq!(&decompress(body, Some("gzip"), 5).unwrap()[..], b"hello");
    }

    #[test]
    fn gzip_bomb_is_refused_at_the_limit() {
        // 64 MiB of zeros compress to ~64 KiB; inflating must stop at the limit.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 128 << 10);
        assert_eq!(
            decompress(bomb, Some("gzip"), 1 << 20),
            Err(DecodeError::TooLarge { limit: 1 << 20 })
        );
    }

    #[test]
    fn plain_oversize_and_bad_inputs() {
        assert_eq!(
            decompress(bytes::Bytes::from_static(b"123456"), None, 5),
            Err(DecodeError::TooLarge { limit: 5 })
        );
        assert!(matches!(
            decompress(bytes::Bytes::from_static(b"not gzip"), Some("gzip"), 100),
            Err(DecodeError::BadGzip(_))
        ));
        assert!(matches!(
            decompress(bytes::Bytes::from_static(b"x"), Some("br"), 100),
            Err(DecodeError::UnsupportedEncoding(e)) if e == "br"
        ));
    }
}
