//! Options of the `bearertokenauth` extension, named as in the OpenTelemetry Collector.

use std::path::PathBuf;

use crate::component::validate::Invalid;
use serde::Deserialize;

/// ```yaml
/// extensions:
///   bearertokenauth:
///     filename: /run/secrets/otlp-token   # or `token: ...` (prefer a file or ${env:...})
///     scheme: Bearer                       # header value is "<scheme> <token>"
///     header: authorization
/// receivers:
///   otlp:
///     protocols:
///       grpc: { auth: { authenticator: bearertokenauth } }
/// exporters:
///   otlp:
///     auth: { authenticator: bearertokenauth }
/// service:
///   extensions: [bearertokenauth]
/// ```
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BearerTokenAuthConfig {
    pub token: Option<String>,
    /// A file holding the token; re-read when it changes (rotated secrets).
    pub filename: Option<PathBuf>,
    /// Put before the token in the header; empty for the bare token.
    pub scheme: String,
    /// The header carrying the token.
    pub header: String,
}

/// Never prints the token.
impl std::fmt::Debug for BearerTokenAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerTokenAuthConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("filename", &self.filename)
            .field("scheme", &self.scheme)
            .field("header", &self.header)
            .finish()
    }
}

impl Default for BearerTokenAuthConfig {
    fn default() -> Self {
        BearerTokenAuthConfig {
            token: None,
            filename: None,
            scheme: "Bearer".into(),
            header: "authorization".into(),
        }
    }
}

impl BearerTokenAuthConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        let sources: Result<(), Invalid> = match (&self.token, &self.filename) {
            (Some(_), Some(_)) => Err("set `token` or `filename`, not both".into()),
            (None, None) => Err("set `token` or `filename`".into()),
            (Some(t), None) if t.trim().is_empty() => Err("token is empty".into()),
            _ => Ok(()),
        };
        sources?;
        http::HeaderName::from_bytes(self.header.as_bytes())
            .map_err(|_| Invalid::value("header", &self.header, "is not a valid header name"))?;
        if self.scheme.contains(char::is_whitespace) {
            return Err(Invalid::value("scheme", &self.scheme, "must be one word"));
        }
        Ok(())
    }
}

impl crate::component::factory::Registered for BearerTokenAuthConfig {
    const TYPE: &'static str = "bearertokenauth";
}
