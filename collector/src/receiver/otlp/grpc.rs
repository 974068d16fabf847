//! OTLP/gRPC on tonic, with our own codec so that a malformed message is answered with
//! `INVALID_ARGUMENT` (tonic's prost codec says `INTERNAL`, which clients retry forever).
//!
//! Size limits are tonic's: the compressed frame and the decompressed message are both
//! held to `max_recv_msg_size_mib`, and inflation stops at the limit, so a gzip bomb is
//! refused with `RESOURCE_EXHAUSTED` after at most that many bytes.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::decode::Encoding;
use super::request_limits::LimitError;
use super::signal::{Logs, Metrics, OtlpSignal, Traces};
use super::{Ingest, IngestError, Reserved};
use crate::component::ConsumeError;
use crate::model::memory::{ByteClaim, Refusal};

/// The three OTLP gRPC services as routes, served by the shared accept loop
/// ([`crate::net::server`]) with the receiver's TLS, limits and authentication.
pub fn routes(ingest: Arc<Ingest>, limit: usize) -> axum::Router {
    tonic::service::Routes::new(OtlpService::<Traces>::new(ingest.clone(), limit))
        .add_service(OtlpService::<Metrics>::new(ingest.clone(), limit))
        .add_service(OtlpService::<Logs>::new(ingest, limit))
        .prepare()
        .into_axum_router()
}

fn to_status(e: IngestError) -> Status {
    match e {
        IngestError::NoPipeline(_) => Status::unimplemented(e.to_string()),
        IngestError::Refused(ConsumeError::TooLarge { .. })
        | IngestError::Refused(ConsumeError::MemoryLimit(Refusal::TooLarge { .. }))
        | IngestError::Limit(LimitError::TooManyItems { .. }) => {
            Status::resource_exhausted(e.to_string())
        }
        IngestError::Limit(LimitError::TooManyAttributes { .. }) => {
            Status::invalid_argument(e.to_string())
        }
        IngestError::Refused(_) => Status::unavailable(e.to_string()),
    }
}

/// One OTLP service (`TraceService`, `MetricsService` or `LogsService`).
pub struct OtlpService<S> {
    ingest: Arc<Ingest>,
    limit: usize,
    _signal: PhantomData<fn() -> S>,
}

impl<S> OtlpService<S> {
    fn new(ingest: Arc<Ingest>, limit: usize) -> Self {
        OtlpService {
            ingest,
            limit,
            _signal: PhantomData,
        }
    }
}

impl<S> Clone for OtlpService<S> {
    fn clone(&self) -> Self {
        OtlpService::new(self.ingest.clone(), self.limit)
    }
}

impl<S: GrpcName> NamedService for OtlpService<S> {
    const NAME: &'static str = S::SERVICE;
}

/// The fully qualified gRPC service name of each signal.
pub trait GrpcName {
    const SERVICE: &'static str;
}
impl GrpcName for Traces {
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}
impl GrpcName for Metrics {
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
}
impl GrpcName for Logs {
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}

impl<S: OtlpSignal> tower::Service<http::Request<tonic::body::Body>> for OtlpService<S> {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let ingest = self.ingest.clone();
        let limit = self.limit;
        Box::pin(async move {
            if req.uri().path() != S::GRPC_PATH {
                return Ok(Status::unimplemented(format!(
                    "unknown method {}; OTLP/gRPC serves {}",
                    req.uri().path(),
                    S::GRPC_PATH
                ))
                .into_http());
            }
            // Over the memory limit, or a pipeline full: refused before the message is read.
            if let Err(e) = ingest.check_room("grpc", S::SIGNAL) {
                return Ok(to_status(e).into_http());
            }
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            let codec = OtlpCodec::<S> {
                ingest: ingest.clone(),
                _signal: PhantomData,
            };
            let mut grpc = Grpc::new(codec)
                .apply_compression_config(accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(limit), None);
            let handler = Handler::<S> {
                ingest,
                _signal: PhantomData,
            };
            let mut response = grpc.unary(handler, req).await;
            // tonic answers an uncompressed message over the limit with OUT_OF_RANGE; say
            // RESOURCE_EXHAUSTED like every other size refusal (and like the Go collector).
            let headers = response.headers_mut();
            if headers.get("grpc-status").is_some_and(|v| v == "11") {
                headers.insert("grpc-status", http::HeaderValue::from_static("8"));
            }
            Ok(response)
        })
    }
}

struct Handler<S> {
    ingest: Arc<Ingest>,
    _signal: PhantomData<fn() -> S>,
}

impl<S: OtlpSignal> UnaryService<WithReservation<S::Request>> for Handler<S> {
    type Response = S::Response;
    type Future = BoxFuture<'static, Result<Response<S::Response>, Status>>;

    fn call(&mut self, request: Request<WithReservation<S::Request>>) -> Self::Future {
        let ingest = self.ingest.clone();
        Box::pin(async move {
            let WithReservation {
                message,
                reservation,
            } = request.into_inner();
            ingest
                .ingest::<S>("grpc", message, reservation)
                .await
                .map(Response::new)
                .map_err(to_status)
        })
    }
}

/// A decoded message with the memory reserved for it before decoding.
pub struct WithReservation<T> {
    message: T,
    reservation: Option<ByteClaim>,
}

struct OtlpCodec<S> {
    ingest: Arc<Ingest>,
    _signal: PhantomData<fn() -> S>,
}

impl<S: OtlpSignal> Codec for OtlpCodec<S> {
    type Encode = S::Response;
    type Decode = WithReservation<S::Request>;
    type Encoder = ProtoEncoder<S::Response>;
    type Decoder = ProtoDecoder<S>;

    fn encoder(&mut self) -> Self::Encoder {
        ProtoEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder {
            ingest: self.ingest.clone(),
            _signal: PhantomData,
        }
    }
}

struct ProtoEncoder<T>(PhantomData<fn() -> T>);

impl<T: prost::Message> Encoder for ProtoEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

struct ProtoDecoder<S> {
    ingest: Arc<Ingest>,
    _signal: PhantomData<fn() -> S>,
}

impl<S: OtlpSignal> Decoder for ProtoDecoder<S> {
    type Item = WithReservation<S::Request>;
    type Error = Status;

    /// `buf` holds the whole (decompressed) message: its length bounds what it decodes
    /// to, which is reserved before decoding, or the message is refused.
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        use bytes::Buf;
        let reservation = self
            .ingest
            .reserve_body(
                "grpc",
                S::SIGNAL,
                buf.chunk(),
                Encoding::Protobuf,
                Reserved::default(),
            )
            .map_err(to_status)?;
        <S::Request as prost::Message>::decode(buf)
            .map(|message| {
                Some(WithReservation {
                    message,
                    reservation,
                })
            })
            .map_err(|e| {
                Status::invalid_argument(format!(
                    "message is not a valid OTLP protobuf {}: {e}",
                    S::REQUEST_NAME
                ))
            })
    }
}
