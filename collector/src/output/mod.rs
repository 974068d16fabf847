//! The non-API destinations of the AWS exporters: JSON lines on stdout or in a file.
//!
//! They hold exactly what would have been sent, so the collector does its whole job on a
//! machine without an AWS account, and a Lambda function can hand EMF to CloudWatch through
//! stdout (the Lambda runtime ships stdout to CloudWatch Logs, which extracts the metrics).

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

pub mod otlp_json;
pub(crate) mod rotate;

use self::rotate::RotatingFile;

/// `output_destination` of every AWS exporter: the service's API, or JSON lines holding
/// exactly what would have been sent.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputDestination {
    /// The service's API (PutLogEvents, PutTraceSegments). Written `cloudwatch`, as ADOT's
    /// `awsemf` spells it, or `api`.
    #[default]
    #[serde(rename = "cloudwatch", alias = "api")]
    Api,
    /// One JSON document per line on stdout.
    Stdout,
    /// One JSON document per line in `path`.
    File,
}

/// Writes whole lines to stdout or a file; a line is never interleaved with another.
pub enum LineWriter {
    Stdout,
    File(Arc<Mutex<RotatingFile>>),
}

impl LineWriter {
    pub fn file(path: PathBuf) -> LineWriter {
        LineWriter::File(Arc::new(Mutex::new(RotatingFile::new(path, None))))
    }

    /// Appends `lines` (each without its newline). File writes run on the blocking pool so
    /// a slow disk does not stall the runtime.
    pub async fn write(&self, lines: Vec<String>) -> io::Result<()> {
        match self {
            LineWriter::Stdout => {
                let mut out = io::stdout().lock();
                for l in &lines {
                    out.write_all(l.as_bytes())?;
                    out.write_all(b"\n")?;
                }
                out.flush()
            }
            LineWriter::File(file) => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || {
                    let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
                    for l in lines {
                        let mut line = l.into_bytes();
                        line.push(b'\n');
                        f.write_line(&line)?;
                    }
                    Ok(())
                })
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
            }
        }
    }

    pub async fn sync(&self) -> io::Result<()> {
        match self {
            LineWriter::Stdout => io::stdout().lock().flush(),
            LineWriter::File(file) => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || {
                    file.lock().unwrap_or_else(|p| p.into_inner()).sync()
                })
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
            }
        }
    }
}
