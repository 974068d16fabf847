//! The fuzz targets' entry points, shared by the cargo-fuzz targets in `fuzz/` and by the
//! corpus replay test (`tests/tests/fuzz_corpus.rs`), so every file of `fuzz/corpus/`
//! guards the normal test run against regressions without the fuzzer.
//!
//! Each function takes the fuzzer's bytes, feeds them to the collector's own entry point
//! (the code a request, datagram or file really goes through) and checks what must hold for
//! whatever it accepts. A panic (or an abort, a hang, unbounded memory) is a finding; an
//! input that is refused with an error is fine.
//!
//! OTLP inputs start with one selector byte (see [`OtlpInput`]); the rest is the body.

use std::io::Write;

use prost::Message;

use aurastream_proto::otlp::logs_service::ExportLogsServiceRequest;
use aurastream_proto::otlp::metrics_service::ExportMetricsServiceRequest;
use aurastream_proto::otlp::trace_service::ExportTraceServiceRequest;

use aurastream_collector::config::memory_limiter::AvailableMemory;
use aurastream_collector::config::{
    ConfigSource, ExporterConfig, ProcessorConfig, ReceiverConfig, load_sources,
};
use aurastream_collector::exporter::file::FileExporter;
use aurastream_collector::model::decoded_size;
use aurastream_collector::model::{Signal, SignalData};
use aurastream_collector::receiver::otlp::decode::{self, DecodeError, Encoding};
use aurastream_collector::receiver::otlp::signal::{Logs, Metrics, OtlpSignal, Traces};
use aurastream_collector::receiver::xray_udp;

/// How the body of an OTLP input reaches the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No `Content-Encoding`: the body is the message.
    None,
    /// `Content-Encoding: gzip`, the body as sent (mostly invalid gzip: exercises the
    /// inflater's error paths and the size limit).
    Gzip,
    /// `Content-Encoding: gzip`, the body compressed by the harness first, so the fuzzer
    /// mutates the message inside a valid gzip stream.
    GzipWrapped,
}

/// The selector byte in front of an OTLP input: which signal, how the body is compressed,
/// and the size limit (the default 4 MiB, or 2 KiB to reach the limit with small inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtlpInput {
    pub signal: Signal,
    pub compression: Compression,
    pub small_limit: bool,
}

/// The receivers' default limit (`max_recv_msg_size_mib: 4`).
const DEFAULT_LIMIT: usize = 4 << 20;
const SMALL_LIMIT: usize = 2 << 10;

impl OtlpInput {
    pub fn from_byte(b: u8) -> OtlpInput {
        let low = b & 0x7f;
        OtlpInput {
            signal: [Signal::Traces, Signal::Metrics, Signal::Logs][usize::from(low % 3)],
            compression: [
                Compression::None,
                Compression::Gzip,
                Compression::GzipWrapped,
            ][usize::from(low / 3 % 3)],
            small_limit: b & 0x80 != 0,
        }
    }

    pub fn to_byte(self) -> u8 {
        let signal = match self.signal {
            Signal::Traces => 0,
            Signal::Metrics => 1,
            Signal::Logs => 2,
        };
        let compression = match self.compression {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::GzipWrapped => 2,
        };
        signal + 3 * compression + if self.small_limit { 0x80 } else { 0 }
    }

    /// A whole fuzz input: this selector, then `body`.
    pub fn with_body(self, body: &[u8]) -> Vec<u8> {
        let mut out = vec![self.to_byte()];
        out.extend_from_slice(body);
        out
    }
}

/// OTLP/HTTP protobuf bodies of the three export requests.
pub fn otlp_protobuf(data: &[u8]) {
    otlp(data, Encoding::Protobuf);
}

/// OTLP/HTTP JSON bodies of the three export requests.
pub fn otlp_json(data: &[u8]) {
    otlp(data, Encoding::Json);
}

fn otlp(data: &[u8], encoding: Encoding) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let input = OtlpInput::from_byte(selector);
    let (raw, content_encoding) = match input.compression {
        Compression::None => (body.to_vec(), None),
        Compression::Gzip => (body.to_vec(), Some("gzip")),
        Compression::GzipWrapped => (gzip(body), Some("gzip")),
    };
    let limit = if input.small_limit {
        SMALL_LIMIT
    } else {
        DEFAULT_LIMIT
    };
    let raw = bytes::Bytes::from(raw);
    match input.signal {
        Signal::Traces => check::<Traces>(
            raw,
            content_encoding,
            encoding,
            limit,
            |r| SignalData::Traces(r.resource_spans.clone()),
            |d| match d {
                SignalData::Traces(resource_spans) => ExportTraceServiceRequest { resource_spans },
                _ => unreachable!("traces stay traces"),
            },
        ),
        Signal::Metrics => check::<Metrics>(
            raw,
            content_encoding,
            encoding,
            limit,
            |r| SignalData::Metrics(r.resource_metrics.clone()),
            |d| match d {
                SignalData::Metrics(resource_metrics) => {
                    ExportMetricsServiceRequest { resource_metrics }
                }
                _ => unreachable!("metrics stay metrics"),
            },
        ),
        Signal::Logs => check::<Logs>(
            raw,
            content_encoding,
            encoding,
            limit,
            |r| SignalData::Logs(r.resource_logs.clone()),
            |d| match d {
                SignalData::Logs(resource_logs) => ExportLogsServiceRequest { resource_logs },
                _ => unreachable!("logs stay logs"),
            },
        ),
    }
}

/// Decodes like the HTTP receiver, validates like both receivers, then checks that the
/// accounting adds up and that what was accepted is valid, survives the pipeline's batch
/// splitting and round-trips through protobuf (the queue on disk and the OTLP exporter).
fn check<S: OtlpSignal>(
    raw: bytes::Bytes,
    content_encoding: Option<&str>,
    encoding: Encoding,
    limit: usize,
    as_data: impl Fn(&S::Request) -> SignalData,
    as_request: impl Fn(SignalData) -> S::Request,
) {
    let raw_len = raw.len();
    let request = match decode::request::<S::Request>(
        raw,
        content_encoding,
        encoding,
        limit,
        S::REQUEST_NAME,
    ) {
        Ok(request) => request,
        Err(DecodeError::TooLarge { limit: l }) => {
            assert_eq!(l, limit);
            assert!(content_encoding.is_some() || raw_len > limit);
            return;
        }
        Err(_) => return,
    };
    let total = as_data(&request).item_count();
    let (data, rejected) = S::accept(request);
    let kept = data.item_count();
    assert_eq!(
        kept + rejected.items,
        total,
        "accepted + rejected = received"
    );
    assert_eq!(S::response(&rejected).encoded_len() > 0, rejected.items > 0);

    // What was accepted passes validation again unchanged.
    let accepted = as_request(data.clone()).encode_to_vec();
    let (data_again, rejected_again) = S::accept(as_request(data.clone()));
    assert_eq!(rejected_again.items, 0, "{}", rejected_again.message);
    assert_eq!(as_request(data_again).encode_to_vec(), accepted);

    // The batch processor splits batches anywhere; nothing is lost or duplicated.
    let mut rest = data.clone();
    let front = rest.split_front(kept / 2);
    assert_eq!(front.item_count(), kept / 2);
    assert_eq!(front.item_count() + rest.item_count(), kept);
    let _ = decoded_size::held(&rest);

    // Protobuf round trip of what was accepted (queue on disk, OTLP exporter, and the next
    // collector's receiver): it decodes again and encodes to the same bytes.
    let decoded = decode::request::<S::Request>(
        accepted.clone().into(),
        None,
        Encoding::Protobuf,
        usize::MAX,
        S::REQUEST_NAME,
    )
    .expect("what we accepted decodes again");
    assert_eq!(decoded.encode_to_vec(), accepted);
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(body).expect("gzip to memory");
    e.finish().expect("gzip to memory")
}

/// One datagram of the X-Ray daemon protocol, as the `awsxray` receiver decodes it. The
/// spans it makes must be valid OTLP (the OTLP receivers' validation refuses none of them).
pub fn xray_udp(data: &[u8]) {
    let Ok(resource_spans) = xray_udp::decode(data) else {
        return;
    };
    let spans = &resource_spans.scope_spans[0].spans;
    assert!(!spans.is_empty());
    for span in spans {
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        assert!(!span.name.is_empty());
    }
    let request = ExportTraceServiceRequest {
        resource_spans: vec![resource_spans],
    };
    let total = SignalData::Traces(request.resource_spans.clone()).item_count();
    let (data, rejected) = Traces::accept(request);
    assert_eq!(rejected.items, 0, "{}", rejected.message);
    assert_eq!(data.item_count(), total);
}

/// Lines of exactly this text split a config input into several files, merged in order
/// like `--config a.yaml --config b.yaml`.
pub const CONFIG_FILE_SEPARATOR: &str = "#8<---";

/// YAML configuration (one or several files, with `${env:...}` references) through parsing,
/// merging and validation, like `--config` at start-up.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut sources = Vec::new();
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        if line.trim_end() == CONFIG_FILE_SEPARATOR {
            sources.push(std::mem::take(&mut current));
        } else {
            current.push_str(line);
        }
    }
    sources.push(current);
    let sources: Vec<ConfigSource> = sources
        .into_iter()
        .enumerate()
        .map(|(i, text)| ConfigSource {
            name: format!("fuzz-{i}.yaml"),
            text,
        })
        .collect();
    let loaded = load_sources(&sources, |name| {
        Some(match name {
            "REGION" => "us-east-1".into(),
            "PORT" => "4317".into(),
            "EMPTY" => String::new(),
            "YAML" => "{a: [1, 2]}\nb: c".into(),
            _ => return None,
        })
    });
    let Ok(config) = loaded else {
        return;
    };
    // What start-up computes from an accepted configuration must not fail either.
    for receiver in config.receivers.0.values() {
        if let ReceiverConfig::Otlp(otlp) = receiver
            && let Some(grpc) = &otlp.protocols.grpc
        {
            let _ = grpc.max_recv_msg_bytes();
        }
    }
    for exporter in config.exporters.0.values() {
        if let ExporterConfig::File(file) = exporter {
            let _ = FileExporter::new(file);
        }
    }
    if let Some(limiter) = &config.service.memory_limiter {
        let _ = limiter.limits(&AvailableMemory::read());
    }
    // Durations that the collector adds to `Instant::now()` (which panics on overflow).
    let now = std::time::Instant::now();
    assert!(now.checked_add(config.service.shutdown_timeout).is_some());
    for processor in config.processors.0.values() {
        if let ProcessorConfig::Batch(batch) = processor {
            assert!(now.checked_add(batch.timeout).is_some());
        }
    }
}
