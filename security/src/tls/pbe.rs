//! Decryption of PKCS#8 `EncryptedPrivateKeyInfo` (the `ENCRYPTED PRIVATE KEY` PEM that
//! `ssl.key.password` unlocks). Two families are accepted:
//! - PBES2 (PBKDF2 with HMAC-SHA1/SHA-2, or scrypt; AES-CBC or DES-EDE3-CBC), via `pkcs8`;
//! - PKCS#12 `pbeWithSHAAnd3-KeyTripleDES-CBC` (OID 1.2.840.113549.1.12.1.3), which Java's
//!   tooling writes and `pkcs5` does not implement: key and IV come from the PKCS#12 KDF
//!   (RFC 7292 appendix B.2) over the password as a NUL-terminated UTF-16BE BMPString.
//!
//! A wrong password shows up either as bad CBC padding or, one time in ~256, as plaintext that
//! is not a PKCS#8 `PrivateKeyInfo`; both are reported as a wrong password.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use pkcs8::der::asn1::{ObjectIdentifier, OctetStringRef};
use pkcs8::der::{self, Decode, Reader, SliceReader};
use pkcs8::spki::AlgorithmIdentifierRef;
use sha1::{Digest, Sha1};

const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const PKCS12_PBE_PREFIX: &str = "1.2.840.113549.1.12.1.";
const PBE_SHA1_3DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");

/// Iteration counts above this are refused rather than run: a hostile or corrupt key file
/// must not stall startup for minutes. Real files use 2 048 to a few hundred thousand.
const MAX_ITERATIONS: u32 = 10_000_000;
/// scrypt's memory is 128·N·r bytes; cap it at 256 MiB for the same reason.
const MAX_SCRYPT_N_TIMES_R: u64 = 1 << 21;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum PbeError {
    WrongPassword,
    /// The scheme, named for the operator.
    Unsupported(String),
    /// The structure is not an `EncryptedPrivateKeyInfo`.
    Malformed(String),
}

/// Decrypts an `EncryptedPrivateKeyInfo`, returning the DER of the inner PKCS#8 key.
pub(super) fn decrypt_private_key(der: &[u8], password: &str) -> Result<Vec<u8>, PbeError> {
    let (algorithm, ciphertext) =
        outer_structure(der).map_err(|e| PbeError::Malformed(e.kind().to_string()))?;
    let plaintext = if algorithm.oid == PBES2 {
        decrypt_pbes2(der, password)?
    } else if algorithm.oid == PBE_SHA1_3DES {
        let (salt, iterations) =
            pkcs12_parameters(&algorithm).map_err(|e| PbeError::Malformed(e.kind().to_string()))?;
        decrypt_pbe_sha1_3des(password, salt, iterations, ciphertext)?
    } else if algorithm.oid.to_string().starts_with(PKCS12_PBE_PREFIX) {
        return Err(PbeError::Unsupported(format!(
            "PKCS#12 PBE {} (only PBE-SHA1-3DES is)",
            algorithm.oid
        )));
    } else {
        return Err(PbeError::Unsupported(format!(
            "algorithm {}",
            algorithm.oid
        )));
    };
    match pkcs8::PrivateKeyInfo::try_from(plaintext.as_slice()) {
        Ok(_) => Ok(plaintext),
        Err(_) => Err(PbeError::WrongPassword),
    }
}

/// The PKCS#12 KDF of RFC 7292 appendix B.2 with SHA-1 (u = 20, v = 64). `password` is
/// already the BMPString encoding with its two trailing zero bytes; `id` is 1 for key material,
/// 2 for an IV, 3 for a MAC key.
pub(super) fn pkcs12_kdf(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    id: u8,
    len: usize,
) -> Vec<u8> {
    const U: usize = 20;
    const V: usize = 64;
    assert!(iterations >= 1, "PKCS#12 KDF needs at least one iteration");
    let mut input = repeat_to_block(salt, V);
    input.extend(repeat_to_block(password, V));
    let mut out = Vec::with_capacity(len);
    loop {
        let mut a = Sha1::new()
            .chain_update([id; V])
            .chain_update(&input)
            .finalize();
        for _ in 1..iterations {
            a = Sha1::digest(a);
        }
        let take = (len - out.len()).min(U);
        out.extend_from_slice(&a[..take]);
        if out.len() == len {
            return out;
        }
        // I_j = (I_j + B + 1) mod 2^512 for every 64-byte block, B being A repeated.
        let b: Vec<u8> = (0..V).map(|k| a[k % U]).collect();
        for block in input.chunks_exact_mut(V) {
            let mut carry = 1u16;
            for k in (0..V).rev() {
                let sum = u16::from(block[k]) + u16::from(b[k]) + carry;
                block[k] = sum as u8;
                carry = sum >> 8;
            }
        }
    }
}

/// A password as PKCS#12 wants it: UTF-16BE with a terminating NUL character.
pub(super) fn bmp_password(password: &str) -> Vec<u8> {
    password
        .encode_utf16()
        .chain([0])
        .flat_map(u16::to_be_bytes)
        .collect()
}

fn decrypt_pbes2(der: &[u8], password: &str) -> Result<Vec<u8>, PbeError> {
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der).map_err(|_| {
        PbeError::Unsupported("PBES2 with a key derivation or cipher this broker lacks".into())
    })?;
    let Some(params) = info.encryption_algorithm.pbes2() else {
        return Err(PbeError::Unsupported("PBES1".into()));
    };
    if let Some(p) = params.kdf.pbkdf2() {
        if p.iteration_count > MAX_ITERATIONS {
            return Err(PbeError::Unsupported(format!(
                "PBKDF2 with {} iterations (at most {MAX_ITERATIONS})",
                p.iteration_count
            )));
        }
    }
    if let Some(p) = params.kdf.scrypt() {
        let n_times_r = p.cost_parameter.saturating_mul(u64::from(p.block_size));
        if n_times_r > MAX_SCRYPT_N_TIMES_R || p.parallelization > 16 {
            return Err(PbeError::Unsupported("scrypt with excessive cost".into()));
        }
    }
    match info.decrypt(password.as_bytes()) {
        Ok(document) => Ok(document.as_bytes().to_vec()),
        Err(pkcs8::Error::EncryptedPrivateKey(pkcs5::Error::UnsupportedAlgorithm { oid })) => {
            Err(PbeError::Unsupported(format!("PBES2 using {oid}")))
        }
        Err(_) => Err(PbeError::WrongPassword),
    }
}

fn decrypt_pbe_sha1_3des(
    password: &str,
    salt: &[u8],
    iterations: u32,
    ciphertext: &[u8],
) -> Result<Vec<u8>, PbeError> {
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(PbeError::Unsupported(format!(
            "PBE-SHA1-3DES with {iterations} iterations"
        )));
    }
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(8) {
        return Err(PbeError::Malformed(
            "ciphertext is not a whole number of DES blocks".into(),
        ));
    }
    let bmp = bmp_password(password);
    let key = pkcs12_kdf(&bmp, salt, iterations, 1, 24);
    let iv = pkcs12_kdf(&bmp, salt, iterations, 2, 8);
    let decryptor = cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
        .expect("the KDF yields a 24-byte key and an 8-byte IV");
    decryptor
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| PbeError::WrongPassword)
}

/// `EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm AlgorithmIdentifier,
/// encryptedData OCTET STRING }`, read without interpreting the algorithm so that schemes the
/// `pkcs5` crate does not know can still be recognised.
fn outer_structure(der: &[u8]) -> der::Result<(AlgorithmIdentifierRef<'_>, &[u8])> {
    let mut reader = SliceReader::new(der)?;
    let parts = reader.sequence(|seq| {
        let algorithm = AlgorithmIdentifierRef::decode(seq)?;
        let data = OctetStringRef::decode(seq)?;
        Ok((algorithm, data.as_bytes()))
    })?;
    reader.finish(parts)
}

/// `pkcs-12PbeParams ::= SEQUENCE { salt OCTET STRING, iterations INTEGER }`.
fn pkcs12_parameters<'a>(algorithm: &AlgorithmIdentifierRef<'a>) -> der::Result<(&'a [u8], u32)> {
    let params = algorithm
        .parameters
        .ok_or_else(|| der::Tag::Sequence.value_error())?;
    params.sequence(|seq| {
        let salt = OctetStringRef::decode(seq)?;
        let iterations = u32::decode(seq)?;
        Ok((salt.as_bytes(), iterations))
    })
}

/// `src` repeated to the smallest multiple of `block` bytes that holds it (empty stays empty).
fn repeat_to_block(src: &[u8], block: usize) -> Vec<u8> {
    let len = block * src.len().div_ceil(block);
    src.iter().copied().cycle().take(len).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    // Expected values were computed with OpenSSL 3.0's independent implementation:
    //   openssl kdf -keylen 24 -kdfopt digest:SHA1 -kdfopt hexpass:<BMP password>
    //     -kdfopt hexsalt:<salt> -kdfopt iter:<n> -kdfopt id:<id> PKCS12KDF
    #[test]
    fn pkcs12_kdf_matches_openssl() {
        let salt = [1, 2, 3, 4, 5, 6, 7, 8];
        let bmp = bmp_password("secret");
        assert_eq!(hex(&bmp), "0073006500630072006500740000");
        assert_eq!(
            hex(&pkcs12_kdf(&bmp, &salt, 2048, 1, 24)),
            "46b7220edfa6b4bcfe35292f7f4888c97ff731e06932a6a2"
        );
        assert_eq!(
            hex(&pkcs12_kdf(&bmp, &salt, 2048, 2, 8)),
            "38f3a9b371c53b70"
        );
    }

    #[test]
    fn pkcs12_kdf_multi_block_output_and_non_ascii_password() {
        // 40 bytes need two SHA-1 outputs, which exercises the I_j update.
        let bmp = bmp_password("pässwörd");
        assert_eq!(hex(&bmp), "007000e400730073007700f6007200640000");
        assert_eq!(
            hex(&pkcs12_kdf(&bmp, &[0xa1, 0xa2, 0xa3], 3, 1, 40)),
            "1cf10bab8a7ca838b1177c00ea78077f2d0a345f6ba57bb0a407e5eb71575b76ef0ce6767832c5ea"
        );
    }

    #[test]
    fn pkcs12_kdf_empty_password_and_salt_longer_than_a_block() {
        let salt: Vec<u8> = (1..=65).collect();
        assert_eq!(
            hex(&pkcs12_kdf(&bmp_password(""), &salt, 1, 2, 8)),
            "77d5dcd500da6cd6"
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for input in [&b""[..], b"\x30", b"\x30\x03\x02\x01\x00", b"\x04\x00"] {
            assert!(matches!(
                decrypt_private_key(input, "pw"),
                Err(PbeError::Malformed(_))
            ));
        }
    }
}
