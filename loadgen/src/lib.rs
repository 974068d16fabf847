//! The traffic model of `aurastream-loadgen`, also used by the collector's benchmarks so
//! that both measure the same realistic requests.
#![forbid(unsafe_code)]

pub mod generate;
