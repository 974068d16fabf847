//! Where a CloudWatch exporter's events go: the PutLogEvents API, or lines.

use crate::output::LineWriter;

/// Where a CloudWatch exporter (`awscloudwatchlogs`, `awsemf`) sends its events: the API, or
/// JSON lines holding exactly what would have been sent.
pub enum Output {
    Api(std::sync::Arc<super::service::LogsService>),
    Lines(LineWriter),
}

impl Output {
    /// Makes written lines durable; the API destination holds nothing to flush.
    pub async fn flush(&self) -> Result<(), crate::component::ExportError> {
        if let Output::Lines(writer) = self {
            writer
                .sync()
                .await
                .map_err(|e| crate::component::ExportError::retryable("io", e.to_string()))?;
        }
        Ok(())
    }
}
