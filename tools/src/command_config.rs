//! `--command-config FILE`: the Kafka client properties a secured listener needs, read by the
//! security crate's [`millrace_security::client::config`] (the rules are documented there), with
//! its warnings printed on stderr and its errors naming the file.

use std::path::Path;

pub use millrace_security::client::{ClientSecurity as Security, SaslLogin};

use crate::error::ToolError;

/// Reads `path`, prints its warnings on stderr and loads its stores.
pub fn load(path: &Path) -> Result<Security, ToolError> {
    let (security, warnings) =
        millrace_security::client::load(path).map_err(|reason| ToolError::Config {
            path: path.display().to_string(),
            reason,
        })?;
    for warning in &warnings {
        eprintln!(
            "millrace-tools: warning: --command-config {}: {warning}",
            path.display()
        );
    }
    Ok(security)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_reads_the_file_and_names_it_in_errors() {
        let dir = std::env::temp_dir().join(format!("millrace-cc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.properties");
        std::fs::write(&file, "security.protocol=SSL\n").unwrap();
        let err = load(&file).err().unwrap().to_string();
        assert!(
            err.contains("client.properties") && err.contains("needs a truststore"),
            "{err}"
        );
        let err = load(&dir.join("missing.properties"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("missing.properties"), "{err}");
        std::fs::write(&file, "security.protocol=PLAINTEXT\n").unwrap();
        let security = load(&file).unwrap();
        assert!(security.tls.is_none() && security.sasl.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
