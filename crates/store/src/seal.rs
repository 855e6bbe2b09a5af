//! Encryption at rest of what the store must not hold in the clear (Secret values, the cluster's bootstrap keys):
//! AES-256-GCM (ring) with a random nonce per value and the record's key as associated data, so a sealed value
//! copied to another key does not open. A [`SealKey`] comes from 32 random bytes (the secrets key file) or is
//! derived from a passphrase such as the join token (HKDF-SHA256).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;

/// A value sealed with a [`SealKey`]: nonce and ciphertext (with its tag), base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The nonce, base64.
    pub nonce: String,
    /// Ciphertext and tag, base64.
    pub data: String,
}

/// What can go wrong sealing or opening.
#[derive(Debug, Error)]
pub enum SealError {
    /// The system's random source failed.
    #[error("no randomness available")]
    Random,
    /// The key is not 32 bytes (or not 64 hex digits in a key file).
    #[error("a secrets key must be {KEY_LEN} bytes (64 hexadecimal digits)")]
    BadKey,
    /// The value does not open with this key (another key, a changed record, a value moved to another key).
    #[error("the value does not open with this key (wrong key, or the record was altered)")]
    Open,
}

/// An AES-256-GCM key.
pub struct SealKey {
    key: LessSafeKey,
    raw: [u8; KEY_LEN],
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// `n` random bytes from the system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], SealError> {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).map_err(|_| SealError::Random)?;
    Ok(out)
}

impl SealKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(raw: &[u8]) -> Result<SealKey, SealError> {
        let raw: [u8; KEY_LEN] = raw.try_into().map_err(|_| SealError::BadKey)?;
        let key = UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| SealError::BadKey)?;
        Ok(SealKey { key: LessSafeKey::new(key), raw })
    }

    /// A new random key.
    pub fn generate() -> Result<SealKey, SealError> {
        SealKey::from_bytes(&random_bytes::<KEY_LEN>()?)
    }

    /// A key from 64 hexadecimal digits (a key file's content, surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<SealKey, SealError> {
        let text = text.trim();
        if text.len() != KEY_LEN * 2 {
            return Err(SealError::BadKey);
        }
        let bytes: Result<Vec<u8>, _> = (0..KEY_LEN).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16)).collect();
        SealKey::from_bytes(&bytes.map_err(|_| SealError::BadKey)?)
    }

    /// The key as 64 hexadecimal digits (for its key file).
    pub fn to_hex(&self) -> String {
        self.raw.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A key derived from a passphrase of high entropy (a join token) for `purpose` (HKDF-SHA256).
    pub fn derive(passphrase: &str, purpose: &str) -> SealKey {
        struct Len;
        impl ring::hkdf::KeyType for Len {
            fn len(&self) -> usize {
                KEY_LEN
            }
        }
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"fos seal key v1");
        let prk = salt.extract(passphrase.as_bytes());
        let mut raw = [0u8; KEY_LEN];
        let info = [purpose.as_bytes()];
        // HKDF-SHA256 can give up to 255 × 32 bytes: 32 always succeed.
        if let Ok(okm) = prk.expand(&info, Len) {
            let _ = okm.fill(&mut raw);
        }
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &raw).unwrap_or_else(|_| unreachable!()));
        SealKey { key, raw }
    }

    /// Seals `plain`, bound to `context` (the record's key).
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<Sealed, SealError> {
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let mut data = plain.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(context), &mut data)
            .map_err(|_| SealError::Random)?;
        Ok(Sealed { nonce: B64.encode(nonce_bytes), data: B64.encode(data) })
    }

    /// Opens a value sealed for `context`.
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Vec<u8>, SealError> {
        let nonce: [u8; NONCE_LEN] =
            B64.decode(&sealed.nonce).ok().and_then(|n| n.try_into().ok()).ok_or(SealError::Open)?;
        let mut data = B64.decode(&sealed.data).map_err(|_| SealError::Open)?;
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut data)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }

    /// A keyed digest of `data` (HMAC-SHA256, hex): tells whether a value changed without storing it in the clear.
    pub fn digest(&self, data: &[u8]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.raw);
        ring::hmac::sign(&key, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let key = SealKey::generate().unwrap();
        let sealed = key.seal(b"hunter2", "/fos/0/system/secrets/a/db").unwrap();
        assert!(!sealed.data.contains("hunter2"));
        assert_eq!(key.open(&sealed, "/fos/0/system/secrets/a/db").unwrap(), b"hunter2");
        assert!(matches!(key.open(&sealed, "/fos/0/system/secrets/b/db"), Err(SealError::Open)), "moved value");
        let other = SealKey::generate().unwrap();
        assert!(matches!(other.open(&sealed, "/fos/0/system/secrets/a/db"), Err(SealError::Open)), "other key");
        let again = SealKey::from_hex(&key.to_hex()).unwrap();
        assert_eq!(again.open(&sealed, "/fos/0/system/secrets/a/db").unwrap(), b"hunter2");
        assert!(SealKey::from_hex("abc").is_err());
    }

    #[test]
    fn derived_keys_depend_on_passphrase_and_purpose() {
        let a = SealKey::derive("token-1", "bootstrap");
        assert_eq!(a.to_hex(), SealKey::derive("token-1", "bootstrap").to_hex());
        assert_ne!(a.to_hex(), SealKey::derive("token-2", "bootstrap").to_hex());
        assert_ne!(a.to_hex(), SealKey::derive("token-1", "other").to_hex());
        assert_eq!(a.digest(b"x"), a.digest(b"x"));
        assert_ne!(a.digest(b"x"), a.digest(b"y"));
    }
}
