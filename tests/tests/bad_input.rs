//! Bad input gets a clear error with the right status, and the collector keeps serving:
//! after every bad request a good one is still accepted, and the good data all arrives.

use std::io::Write;

use aurastream_e2e::{Collector, base_config, otlp_json, read_jsonl};
use aurastream_proto_free::*;
use flate2::Compression;
use flate2::write::GzEncoder;
use prost::Message;
use tonic::Code;

/// The protobuf and gRPC plumbing these tests need, kept apart from the assertions.
mod aurastream_proto_free {
    pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    pub use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use bytes::{Buf, BufMut};
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
    use tonic::{Status, codec::CompressionEncoding};

    /// A codec that sends bytes exactly as given, so tests can send broken messages.
    #[derive(Clone, Default)]
    pub struct RawCodec;
    pub struct Raw;

    impl Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }

    impl Encoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
            buf.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;
        fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
            let v = buf.chunk().to_vec();
            buf.advance(v.len());
            Ok(Some(v))
        }
    }

    /// One raw unary call to the trace service.
    pub async fn grpc_export(url: &str, body: Vec<u8>, gzip: bool) -> Result<Vec<u8>, Status> {
        let channel = tonic::transport::Channel::from_shared(url.to_string())
            .map_err(|e| Status::internal(e.to_string()))?
            .connect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut client = tonic::client::Grpc::new(channel);
        if gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        client
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_static(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        );
        client
            .unary(tonic::Request::new(body), path, RawCodec)
            .await
            .map(|r| r.into_inner())
    }

    pub fn request(name: &str, id: u8) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![id; 16],
                        span_id: vec![id; 8],
                        name: name.into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

fn config(ports: &aurastream_e2e::Ports, dir: &std::path::Path) -> String {
    format!(
        r#"{base}
exporters:
  file: {{ path: {dir}/traces.jsonl }}
service:
  extensions: [health_check]
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
"#,
        base = base_config(ports).replace(
            "      http:\n",
            "        max_recv_msg_size_mib: 1\n      http:\n        max_request_body_size: 1048576\n"
        ),
        dir = dir.display()
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

struct Http {
    client: reqwest::Client,
    url: String,
    good: u8,
}

impl Http {
    async fn post(
        &self,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", content_type)
            .body(body);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        req.send().await.expect("collector answers")
    }

    /// A valid request must still be accepted.
    async fn still_serving(&mut self) {
        self.good += 1;
        let body = request(&format!("good-{}", self.good), self.good).encode_to_vec();
        let r = self.post("application/x-protobuf", None, body).await;
        assert_eq!(r.status(), 200, "the collector still accepts good data");
    }

    async fn expect_proto_error(
        &mut self,
        r: reqwest::Response,
        status: u16,
        code: Code,
        words: &str,
    ) {
        assert_eq!(r.status(), status);
        assert_eq!(r.headers()["content-type"], "application/x-protobuf");
        let s = RpcStatus::decode(r.bytes().await.expect("body")).expect("google.rpc.Status body");
        assert_eq!(s.code, code as i32);
        assert!(
            s.message.contains(words),
            "{:?} should mention {words:?}",
            s.message
        );
        self.still_serving().await;
    }
}

#[tokio::test]
async fn http_bad_input_is_refused_clearly_and_the_server_keeps_serving() {
    let mut c = Collector::start(config);
    let mut h = Http {
        client: reqwest::Client::new(),
        url: format!("{}/v1/traces", c.ports.http_url()),
        good: 0,
    };
    h.still_serving().await;

    let valid = request("x", 9).encode_to_vec();
    let r = h
        .post(
            "application/x-protobuf",
            None,
            valid[..valid.len() / 2].to_vec(),
        )
        .await;
    h.expect_proto_error(r, 400, Code::InvalidArgument, "not a valid OTLP protobuf")
        .await;

    let mut bad_utf8 = request("ABCD", 9).encode_to_vec();
    let at = bad_utf8
        .windows(4)
        .position(|w| w == b"ABCD")
        .expect("name bytes");
    bad_utf8[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xfd, 0xfc]);
    let r = h.post("application/x-protobuf", None, bad_utf8).await;
    h.expect_proto_error(r, 400, Code::InvalidArgument, "not a valid OTLP protobuf")
        .await;

    let r = h
        .post("application/x-protobuf", None, vec![0u8; 2 << 20])
        .await;
    h.expect_proto_error(r, 413, Code::ResourceExhausted, "exceeds the limit")
        .await;

    // 64 MiB of zeros, about 64 KiB gzipped: refused once 1 MiB is inflated.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    let r = h.post("application/x-protobuf", Some("gzip"), bomb).await;
    h.expect_proto_error(r, 413, Code::ResourceExhausted, "exceeds the limit")
        .await;

    let r = h
        .post("application/x-protobuf", Some("gzip"), b"not gzip".to_vec())
        .await;
    h.expect_proto_error(r, 400, Code::InvalidArgument, "gzip")
        .await;

    let r = h
        .post("application/x-protobuf", Some("br"), valid.clone())
        .await;
    h.expect_proto_error(r, 415, Code::InvalidArgument, "Content-Encoding")
        .await;

    // Empty protobuf = a request with no data: valid, accepted, nothing written.
    let r = h.post("application/x-protobuf", None, Vec::new()).await;
    assert_eq!(r.status(), 200);

    // JSON errors come back as JSON.
    for (body, words) in [
        (b"{\"resourceSpans\": [".to_vec(), "not valid OTLP/JSON"),
        (Vec::new(), "empty body"),
        (
            b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"zz\"}]}]}]}".to_vec(),
            "not valid OTLP/JSON",
        ),
        (vec![b'{', 0xff, b'}'], "not valid OTLP/JSON"),
    ] {
        let r = h.post("application/json", None, body).await;
        assert_eq!(r.status(), 400);
        let v: serde_json::Value = r.json().await.expect("JSON error body");
        assert_eq!(v["code"], 3);
        assert!(
            v["message"].as_str().unwrap_or_default().contains(words),
            "{v}"
        );
        h.still_serving().await;
    }

    let r = h.post("text/plain", None, b"hello".to_vec()).await;
    assert_eq!(r.status(), 415);
    h.still_serving().await;

    // Spans with bad ids are refused one by one through partial success.
    let mut partial = request("ok-in-partial", 77);
    partial.resource_spans[0].scope_spans[0].spans.push(Span {
        trace_id: vec![1; 15],
        span_id: vec![1; 8],
        name: "short-trace-id".into(),
        ..Default::default()
    });
    let r = h
        .post(
            "application/json",
            None,
            serde_json::to_vec(&partial).expect("json"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("JSON response");
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1");

    let r = h.client.get(&h.url).send().await.expect("answer");
    assert_eq!(r.status(), 405);

    assert_eq!(c.stop(), 0);
    let names: Vec<String> = otlp_json::spans(&read_jsonl(&c.path("traces.jsonl")))
        .into_iter()
        .map(|s| s.name)
        .collect();
    let mut want: Vec<String> = (1..=h.good).map(|i| format!("good-{i}")).collect();
    want.push("ok-in-partial".into());
    let mut got = names.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "exactly the good spans arrived");
}

#[tokio::test]
async fn grpc_bad_input_is_refused_clearly_and_the_server_keeps_serving() {
    let mut c = Collector::start(config);
    let url = c.ports.grpc_url();
    let good = |id: u8| request(&format!("grpc-good-{id}"), id).encode_to_vec();
    grpc_export(&url, good(1), false)
        .await
        .expect("valid request accepted");

    let valid = good(2);
    let err = grpc_export(&url, valid[..valid.len() - 3].to_vec(), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("not a valid OTLP protobuf"),
        "{err:?}"
    );
    grpc_export(&url, good(3), true)
        .await
        .expect("gzip request accepted");

    let err = grpc_export(&url, vec![0u8; 2 << 20], false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    grpc_export(&url, good(4), false)
        .await
        .expect("still serving");

    let err = grpc_export(&url, vec![0u8; 64 << 20], true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "gzip bomb: {err:?}");
    grpc_export(&url, good(5), false)
        .await
        .expect("still serving");

    assert_eq!(c.stop(), 0);
    let mut names: Vec<String> = otlp_json::spans(&read_jsonl(&c.path("traces.jsonl")))
        .into_iter()
        .map(|s| s.name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["grpc-good-1", "grpc-good-3", "grpc-good-4", "grpc-good-5"]
    );
}
