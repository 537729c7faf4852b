//! The tools' one error type. Every variant prints as one line; `main` prints it after
//! `millrace-tools: ` and exits with status 1.

use kafka_protocol::ResponseError;
use millrace_wire::codes::NONE;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The broker could not be reached.
    #[error("cannot connect to {address}: {reason}")]
    Connect {
        /// HOST:PORT as given.
        address: String,
        /// The OS's reason.
        reason: String,
    },
    /// A socket read or write failed after connecting.
    #[error("{0}")]
    Io(String),
    /// The broker does not offer an API (or no version this tool speaks).
    #[error("{api} is unsupported by this broker ({detail})")]
    Unsupported {
        /// API name.
        api: String,
        /// Which versions each side has.
        detail: String,
    },
    /// A request could not be encoded (a value out of the version's range).
    #[error("cannot encode {api} request: {reason}")]
    Encode {
        /// API name.
        api: String,
        /// The encoder's message.
        reason: String,
    },
    /// The broker's bytes did not decode.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The broker answered with a Kafka error code.
    #[error("{context}: {}{}", error_name(*code), message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka {
        /// What was being done, e.g. `create topic orders`.
        context: String,
        /// Kafka error code.
        code: i16,
        /// The broker's error message, if any.
        message: Option<String>,
    },
    /// A `--command-config` file that cannot be read, or a key or value in it that is wrong.
    #[error("--command-config {path}: {reason}")]
    Config {
        /// The file as given.
        path: String,
        /// What is wrong, naming the key.
        reason: String,
    },
    /// The client side of a SASL exchange refused the broker's answer (a forged SCRAM
    /// signature, a foreign nonce). The broker's own refusals are [`ToolError::Kafka`].
    #[error("SASL {mechanism} authentication with {address} failed: {reason}")]
    Auth {
        /// HOST:PORT.
        address: String,
        /// The SASL mechanism.
        mechanism: String,
        /// The SASL client's error.
        reason: String,
    },
    /// A command-line argument that clap accepts but whose content is wrong.
    #[error("{0}")]
    Usage(String),
    /// A local file problem.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Offline check found corruption (already reported line by line).
    #[error("{0}")]
    Corrupt(String),
    /// A history check found anomalies (already printed).
    #[error("history anomalies: {0}")]
    Anomalies(String),
}

/// Kafka's spelling of an error code, e.g. `UNKNOWN_TOPIC_OR_PARTITION`.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
        Some(e) => screaming_snake(&format!("{e:?}")),
    }
}

/// Checks a Kafka error code; `Ok` for 0.
pub fn check(
    code: i16,
    context: impl FnOnce() -> String,
    message: Option<&str>,
) -> Result<(), ToolError> {
    if code == NONE {
        return Ok(());
    }
    Err(ToolError::Kafka {
        context: context(),
        code,
        message: message.filter(|m| !m.is_empty()).map(str::to_string),
    })
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_use_kafkas_spelling() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE_9999");
    }
}
