//! Random identifiers and test passwords: Kafka cluster ids, directory names, SASL passwords.
//! Reads `/dev/urandom` (I/O); the encoders are pure.

use std::fs::File;
use std::io::Read;

use crate::error::TestbedError;

/// `n` random bytes from `/dev/urandom`.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], TestbedError> {
    let mut buf = [0u8; N];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(TestbedError::read("/dev/urandom"))?;
    Ok(buf)
}

/// A random Kafka cluster id: 16 bytes in URL-safe base64 without padding (22 characters),
/// the form `kafka-storage random-uuid` prints. Never starts with `-` (the storage tool would
/// read it as an option).
pub(crate) fn kafka_uuid() -> Result<String, TestbedError> {
    loop {
        let id = base64url(&random_bytes::<16>()?);
        if !id.starts_with('-') {
            return Ok(id);
        }
    }
}

/// A random lowercase hex string of `2 * N` characters.
pub(crate) fn hex_token<const N: usize>() -> Result<String, TestbedError> {
    Ok(hex(&random_bytes::<N>()?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// URL-safe base64 without padding (RFC 4648 section 5).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn kafka_uuid_has_the_storage_tool_shape() {
        let id = kafka_uuid().expect("urandom");
        assert_eq!(id.len(), 22);
        assert!(!id.starts_with('-'));
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(id, kafka_uuid().expect("urandom"));
    }

    #[test]
    fn hex_token_length() {
        let t = hex_token::<8>().expect("urandom");
        assert_eq!(t.len(), 16);
        assert!(t.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
