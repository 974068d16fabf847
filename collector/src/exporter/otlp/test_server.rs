//! An in-process OTLP/gRPC trace receiver whose answers a test scripts: what it received,
//! and a status or partial success to answer with.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use aurastream_proto::otlp::trace::ResourceSpans;
use aurastream_proto::otlp::trace_service::trace_service_server::{
    TraceService, TraceServiceServer,
};
use aurastream_proto::otlp::trace_service::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

/// What the fake answers with.
#[derive(Clone, Default)]
pub enum Answer {
    #[default]
    Accept,
    Reject(tonic::Code),
    PartiallyReject(i64),
    Stall(Duration),
    /// Accept the first `n` calls, refuse the later ones with the code.
    RejectAfter(usize, tonic::Code),
}

#[derive(Clone, Default)]
pub struct FakeGateway {
    pub received: Arc<Mutex<Vec<ResourceSpans>>>,
    pub answer: Arc<Mutex<Answer>>,
    /// Export calls answered.
    pub calls: Arc<Mutex<usize>>,
}

impl FakeGateway {
    /// Serves on a free loopback port until the test's runtime ends.
    pub async fn start() -> (FakeGateway, SocketAddr) {
        let fake = FakeGateway::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(fake.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (fake, addr)
    }

    pub fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Span ids received so far.
    pub fn span_ids(&self) -> Vec<Vec<u8>> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.span_id.clone())
            .collect()
    }
}

#[tonic::async_trait]
impl TraceService for FakeGateway {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let call = {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            *calls
        };
        let answer = self.answer.lock().unwrap().clone();
        let partial_success = match answer {
            Answer::Accept => None,
            Answer::RejectAfter(n, code) if call > n => {
                return Err(Status::new(code, "scripted refusal"));
            }
            Answer::RejectAfter(..) => None,
            Answer::Reject(code) => return Err(Status::new(code, "scripted refusal")),
            Answer::PartiallyReject(n) => Some(ExportTracePartialSuccess {
                rejected_spans: n,
                error_message: "scripted partial success".into(),
            }),
            Answer::Stall(d) => {
                tokio::time::sleep(d).await;
                None
            }
        };
        self.received
            .lock()
            .unwrap()
            .extend(request.into_inner().resource_spans);
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success,
        }))
    }
}
