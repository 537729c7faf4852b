//! Keystores and truststores in Kafka's PEM form: certificates, a private key that is PKCS#8
//! (plain or `ENCRYPTED PRIVATE KEY`), PKCS#1 RSA or SEC1 EC, from a file or an inline value.
//! Every error carries the Kafka key and the place (a path or "the configured value") so the
//! operator knows which setting to fix; none carries PEM text.

use std::path::Path;

use base64::Engine;
use rustls::RootCertStore;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::pbe::{self, PbeError};
use super::{KeySource, TlsError, TrustSource};

const KEYSTORE_LOCATION: &str = "ssl.keystore.location";
const KEYSTORE_KEY: &str = "ssl.keystore.key";
const KEYSTORE_CHAIN: &str = "ssl.keystore.certificate.chain";
const TRUSTSTORE_LOCATION: &str = "ssl.truststore.location";
const TRUSTSTORE_CERTIFICATES: &str = "ssl.truststore.certificates";
const INLINE_PLACE: &str = "the configured value";

const ENCRYPTED_BEGIN: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &[u8] = b"-----END ENCRYPTED PRIVATE KEY-----";
/// The header of OpenSSL's pre-PKCS#8 encrypted keys, which Kafka never accepted either.
const LEGACY_ENCRYPTION: &[u8] = b"Proc-Type: 4,ENCRYPTED";

/// Which key and place a piece of PEM came from.
#[derive(Clone, Debug)]
pub(super) struct Origin {
    pub key: &'static str,
    pub place: String,
}

/// A certificate chain (leaf first) and its private key.
pub(super) struct Keystore {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub key_origin: Origin,
}

pub(super) fn load_keystore(
    source: &KeySource,
    password: Option<&str>,
) -> Result<Keystore, TlsError> {
    match source {
        KeySource::File { path } => {
            let bytes = read(KEYSTORE_LOCATION, path)?;
            let origin = Origin {
                key: KEYSTORE_LOCATION,
                place: path.display().to_string(),
            };
            let key = parse_private_key(&bytes, &origin, password)?;
            let chain = parse_certificates(&bytes, &origin)?;
            Ok(Keystore {
                chain,
                key,
                key_origin: origin,
            })
        }
        KeySource::Inline { key_pem, chain_pem } => {
            let key_origin = inline(KEYSTORE_KEY);
            let key = parse_private_key(key_pem.as_bytes(), &key_origin, password)?;
            let chain = parse_certificates(chain_pem.as_bytes(), &inline(KEYSTORE_CHAIN))?;
            Ok(Keystore {
                chain,
                key,
                key_origin,
            })
        }
    }
}

pub(super) fn load_truststore(source: &TrustSource) -> Result<RootCertStore, TlsError> {
    let (bytes, origin) = match source {
        TrustSource::File { path } => {
            let origin = Origin {
                key: TRUSTSTORE_LOCATION,
                place: path.display().to_string(),
            };
            (read(TRUSTSTORE_LOCATION, path)?, origin)
        }
        TrustSource::Inline { pem } => (pem.as_bytes().to_vec(), inline(TRUSTSTORE_CERTIFICATES)),
    };
    let mut roots = RootCertStore::empty();
    for (i, cert) in parse_certificates(&bytes, &origin)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| TlsError::BadTrustAnchor {
            key: origin.key,
            place: origin.place.clone(),
            index: i + 1,
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// The key a truststore's problems are reported under.
pub(super) fn trust_key(source: &TrustSource) -> &'static str {
    match source {
        TrustSource::File { .. } => TRUSTSTORE_LOCATION,
        TrustSource::Inline { .. } => TRUSTSTORE_CERTIFICATES,
    }
}

/// Maps rustls' refusal of a chain and key (`with_single_cert`, `with_client_auth_cert`).
pub(super) fn certified_key_error(e: rustls::Error, origin: &Origin) -> TlsError {
    match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch {
                key: origin.key,
                place: origin.place.clone(),
            }
        }
        other => TlsError::InvalidKey {
            key: origin.key,
            place: origin.place.clone(),
            reason: other.to_string(),
        },
    }
}

/// All certificates in PEM text, in order; each must parse as X.509.
pub(super) fn parse_certificates(
    bytes: &[u8],
    origin: &Origin,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut chain = Vec::new();
    for item in CertificateDer::pem_slice_iter(bytes) {
        let cert = item.map_err(|e| pem_error(origin, e))?;
        if x509_parser::parse_x509_certificate(&cert).is_err() {
            return Err(TlsError::BadCertificate {
                key: origin.key,
                place: origin.place.clone(),
                index: chain.len() + 1,
            });
        }
        chain.push(cert);
    }
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            key: origin.key,
            place: origin.place.clone(),
        });
    }
    Ok(chain)
}

/// The one private key in PEM text, decrypted with `password` when it is encrypted. A password
/// given for a plain key is ignored (Kafka would refuse it; a leftover `ssl.key.password` from a
/// PKCS#12 setup is common and harmless).
pub(super) fn parse_private_key(
    bytes: &[u8],
    origin: &Origin,
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    if contains(bytes, LEGACY_ENCRYPTION) {
        return Err(TlsError::UnsupportedKeyEncryption {
            key: origin.key,
            place: origin.place.clone(),
            scheme: "OpenSSL's legacy PEM encryption (convert with `openssl pkcs8 -topk8`)"
                .to_string(),
        });
    }
    let mut plain = Vec::new();
    for item in PrivateKeyDer::pem_slice_iter(bytes) {
        plain.push(item.map_err(|e| pem_error(origin, e))?);
    }
    let encrypted = encrypted_blocks(bytes, origin)?;
    match (
        plain.len() + encrypted.len(),
        plain.pop(),
        encrypted.first(),
    ) {
        (0, _, _) => Err(TlsError::NoPrivateKey {
            key: origin.key,
            place: origin.place.clone(),
        }),
        (1, Some(key), _) => Ok(key),
        (1, None, Some(der)) => decrypt(der, origin, password),
        _ => Err(TlsError::MultiplePrivateKeys {
            key: origin.key,
            place: origin.place.clone(),
        }),
    }
}

fn decrypt(
    der: &[u8],
    origin: &Origin,
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let place = origin.place.clone();
    let Some(password) = password else {
        return Err(TlsError::KeyPasswordMissing { place });
    };
    match pbe::decrypt_private_key(der, password) {
        Ok(pkcs8) => Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8))),
        Err(PbeError::WrongPassword) => Err(TlsError::WrongKeyPassword { place }),
        Err(PbeError::Unsupported(scheme)) => Err(TlsError::UnsupportedKeyEncryption {
            key: origin.key,
            place,
            scheme,
        }),
        Err(PbeError::Malformed(reason)) => Err(TlsError::InvalidKey {
            key: origin.key,
            place,
            reason: format!("malformed ENCRYPTED PRIVATE KEY: {reason}"),
        }),
    }
}

/// The DER bodies of the `ENCRYPTED PRIVATE KEY` sections, which the pki-types PEM reader skips
/// as a label it does not know.
fn encrypted_blocks(bytes: &[u8], origin: &Origin) -> Result<Vec<Vec<u8>>, TlsError> {
    let mut blocks = Vec::new();
    let mut body: Option<Vec<u8>> = None;
    for line in bytes.split(|b| *b == b'\n' || *b == b'\r') {
        let line = line.trim_ascii();
        match body.as_mut() {
            None if line == ENCRYPTED_BEGIN => body = Some(Vec::new()),
            None => {}
            Some(text) if line == ENCRYPTED_END => {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(&text)
                    .map_err(|_| pem_reason(origin, "invalid base64"))?;
                blocks.push(der);
                body = None;
            }
            Some(text) => text.extend_from_slice(line),
        }
    }
    if body.is_some() {
        return Err(pem_reason(origin, "a section has no END line"));
    }
    Ok(blocks)
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })
}

fn inline(key: &'static str) -> Origin {
    Origin {
        key,
        place: INLINE_PLACE.to_string(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// pki-types' PEM errors quote the offending line, which may be key material: keep only a
/// fixed reason.
fn pem_error(origin: &Origin, e: pem::Error) -> TlsError {
    let reason = match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "malformed BEGIN line",
        pem::Error::Base64Decode(_) => "invalid base64",
        pem::Error::SectionTooLarge => "section too large",
        _ => "unreadable PEM",
    };
    pem_reason(origin, reason)
}

fn pem_reason(origin: &Origin, reason: &'static str) -> TlsError {
    TlsError::Pem {
        key: origin.key,
        place: origin.place.clone(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            key: KEYSTORE_LOCATION,
            place: "/etc/kafka/broker.pem".to_string(),
        }
    }

    #[test]
    fn missing_pieces_name_the_key_and_place() {
        let err = parse_certificates(b"nothing here", &origin()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ssl.keystore.location: no certificate in /etc/kafka/broker.pem"
        );
        let err = parse_private_key(b"", &inline(KEYSTORE_KEY), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ssl.keystore.key: no private key in the configured value"
        );
    }

    #[test]
    fn pem_errors_do_not_echo_the_text() {
        let secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRET!!\n-----END PRIVATE KEY-----\n";
        let err = parse_private_key(secret.as_bytes(), &origin(), None).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("invalid base64"), "{text}");
        assert!(!text.contains("TOPSECRET"), "{text}");
        let unterminated = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n";
        let err = parse_private_key(unterminated.as_bytes(), &origin(), None).unwrap_err();
        assert!(err.to_string().contains("no END line"), "{err}");
    }

    #[test]
    fn legacy_openssl_encryption_is_named() {
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                      DEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let err = parse_private_key(legacy.as_bytes(), &origin(), Some("pw")).unwrap_err();
        assert!(
            matches!(err, TlsError::UnsupportedKeyEncryption { .. }),
            "{err}"
        );
    }

    #[test]
    fn encrypted_key_without_password_names_ssl_key_password() {
        let pem =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = parse_private_key(pem.as_bytes(), &origin(), None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ssl.key.password: the private key in /etc/kafka"),
            "{err}"
        );
    }

    #[test]
    fn unreadable_file_names_the_key() {
        let source = KeySource::File {
            path: "/nonexistent/millrace/keystore.pem".into(),
        };
        let err = load_keystore(&source, None).err().expect("must fail");
        assert!(
            err.to_string()
                .starts_with("ssl.keystore.location: cannot read /nonexistent/millrace/"),
            "{err}"
        );
    }
}
