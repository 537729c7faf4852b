//! `ssl.enabled.protocols` and `ssl.cipher.suites`: Java's names mapped onto what rustls with
//! the *ring* provider offers. Names rustls cannot honour are errors rather than silently
//! dropped, so a configuration never runs with less than it says.

use std::sync::Arc;

use rustls::crypto::{ring, CryptoProvider};
use rustls::{CipherSuite, SupportedCipherSuite, SupportedProtocolVersion};

use super::{TlsError, DEFAULT_ENABLED_PROTOCOLS};

pub(super) const ENABLED_PROTOCOLS: &str = "ssl.enabled.protocols";

/// Java/IANA suite names and the rustls suites they denote. TLS 1.3 names lack the `13` rustls
/// puts in its identifiers.
const SUITE_NAMES: [(&str, CipherSuite); 9] = [
    (
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Java lists this signalling value among suites; rustls always sends the equivalent extension.
const RENEGOTIATION_SCSV: &str = "TLS_EMPTY_RENEGOTIATION_INFO_SCSV";

/// The protocol versions named by `ssl.enabled.protocols`; empty means Kafka's default, as an
/// empty list means "the JVM's defaults" in Kafka.
pub(super) fn protocol_versions(
    names: &[String],
) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    let defaults: Vec<String> = DEFAULT_ENABLED_PROTOCOLS.map(String::from).to_vec();
    let names = if names.iter().all(|n| n.trim().is_empty()) {
        &defaults[..]
    } else {
        names
    };
    let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let version = match name {
            "TLSv1.3" => &rustls::version::TLS13,
            "TLSv1.2" => &rustls::version::TLS12,
            "TLSv1.1" | "TLSv1" | "SSLv3" | "SSLv2" | "SSLv2Hello" | "DTLSv1.0" | "DTLSv1.2" => {
                return Err(TlsError::UnsupportedProtocol {
                    name: name.to_string(),
                })
            }
            _ => {
                return Err(TlsError::UnknownProtocol {
                    name: name.to_string(),
                })
            }
        };
        if !versions.iter().any(|v| v.version == version.version) {
            versions.push(version);
        }
    }
    Ok(versions)
}

/// The *ring* provider restricted to the suites `ssl.cipher.suites` names, in the listed order
/// (empty: all of ring's suites). At least one suite must serve one of `versions`.
pub(super) fn provider(
    suite_names: &[String],
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<CryptoProvider>, TlsError> {
    let mut provider = ring_provider();
    let names: Vec<&str> = suite_names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty() && *n != RENEGOTIATION_SCSV)
        .collect();
    if !names.is_empty() {
        let mut suites: Vec<SupportedCipherSuite> = Vec::new();
        for name in names {
            let suite = suite_by_name(name)?;
            if !suites.iter().any(|s| s.suite() == suite.suite()) {
                suites.push(suite);
            }
        }
        provider.cipher_suites = suites;
    }
    let usable = provider
        .cipher_suites
        .iter()
        .any(|s| versions.iter().any(|v| v.version == s.version().version));
    if !usable {
        return Err(TlsError::NoUsableCipherSuite);
    }
    Ok(Arc::new(provider))
}

/// The *ring* provider with its defaults. rustls 0.23.48 deprecated this constructor because
/// *ring* has no post-quantum key exchange; the crate is built on *ring* by choice (no C
/// toolchain for aws-lc), and classical ECDHE is what Kafka's Java clients offer anyway.
#[allow(deprecated)]
pub(super) fn ring_provider() -> CryptoProvider {
    ring::default_provider()
}

fn suite_by_name(name: &str) -> Result<SupportedCipherSuite, TlsError> {
    let wanted = SUITE_NAMES
        .iter()
        .find(|(java, _)| *java == name)
        .map(|(_, suite)| *suite);
    let found = wanted.and_then(|w| {
        ring::ALL_CIPHER_SUITES
            .iter()
            .find(|s| s.suite() == w)
            .copied()
    });
    match found {
        Some(suite) => Ok(suite),
        // Java's standard names all start so; anything else is a typo or a foreign name.
        None if name.starts_with("TLS_") || name.starts_with("SSL_") => {
            Err(TlsError::UnsupportedCipherSuite {
                name: name.to_string(),
                supported: SUITE_NAMES.map(|(java, _)| java).join(","),
            })
        }
        None => Err(TlsError::UnknownCipherSuite {
            name: name.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn protocols_default_when_empty_and_keep_listed_ones() {
        let all = protocol_versions(&[]).unwrap();
        assert_eq!(all.len(), 2);
        let only13 = protocol_versions(&strings(&["TLSv1.3"])).unwrap();
        assert_eq!(only13.len(), 1);
        assert_eq!(only13[0].version, rustls::ProtocolVersion::TLSv1_3);
        let dup = protocol_versions(&strings(&[" TLSv1.2", "TLSv1.2 "])).unwrap();
        assert_eq!(dup.len(), 1);
        assert_eq!(dup[0].version, rustls::ProtocolVersion::TLSv1_2);
    }

    #[test]
    fn old_and_unknown_protocols_are_errors() {
        for old in ["TLSv1.1", "TLSv1", "SSLv3"] {
            let err = protocol_versions(&strings(&["TLSv1.2", old])).unwrap_err();
            assert!(matches!(err, TlsError::UnsupportedProtocol { ref name } if name == old));
            assert!(err.to_string().starts_with("ssl.enabled.protocols: "));
        }
        let err = protocol_versions(&strings(&["tls1.3"])).unwrap_err();
        assert!(matches!(err, TlsError::UnknownProtocol { .. }), "{err}");
    }

    #[test]
    fn java_suite_names_map_to_rustls_suites() {
        let versions = protocol_versions(&[]).unwrap();
        let p = provider(
            &strings(&[
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_AES_128_GCM_SHA256",
                RENEGOTIATION_SCSV,
            ]),
            &versions,
        )
        .unwrap();
        let got: Vec<CipherSuite> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            got,
            [
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS13_AES_128_GCM_SHA256
            ]
        );
        let all = provider(&[], &versions).unwrap();
        assert_eq!(all.cipher_suites.len(), ring::ALL_CIPHER_SUITES.len());
        // Every table entry exists in the provider, so no name maps to nothing.
        for (name, _) in SUITE_NAMES {
            suite_by_name(name).unwrap();
        }
    }

    #[test]
    fn unsupported_unknown_and_unusable_suites_are_errors() {
        let versions = protocol_versions(&[]).unwrap();
        let err = provider(&strings(&["TLS_RSA_WITH_AES_128_CBC_SHA"]), &versions).unwrap_err();
        assert!(
            matches!(err, TlsError::UnsupportedCipherSuite { .. }),
            "{err}"
        );
        let err = provider(&strings(&["AES128-SHA"]), &versions).unwrap_err();
        assert!(matches!(err, TlsError::UnknownCipherSuite { .. }), "{err}");
        let only12 = protocol_versions(&strings(&["TLSv1.2"])).unwrap();
        let err = provider(&strings(&["TLS_AES_128_GCM_SHA256"]), &only12).unwrap_err();
        assert!(matches!(err, TlsError::NoUsableCipherSuite), "{err}");
    }
}
