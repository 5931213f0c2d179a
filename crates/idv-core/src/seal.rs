//! Secrets at rest (signing keys, connector credentials): authenticated
//! encryption under a key derived from the master key.
//!
//! XChaCha20-Poly1305 takes a 192-bit nonce, so a fresh random nonce per seal
//! is safe without any counter to persist. The associated data binds a blob to
//! where it belongs (tenant, key id): a row copied elsewhere fails to open.
//!
//! Blob layout: `[version = 1] || nonce (24 bytes) || ciphertext || tag (16 bytes)`.

use std::fmt;

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::Rng as _;
use zeroize::Zeroizing;

use crate::secret::MasterKey;

/// The blob format this module writes.
const VERSION: u8 = 1;
/// XChaCha20 nonce length.
const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
const TAG_LEN: usize = 16;

/// Why a sealed blob could not be opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Shorter than the version, nonce and tag.
    #[error("sealed data is truncated")]
    Truncated,
    /// A format this version does not know.
    #[error("sealed data has unknown format version {0}")]
    UnknownVersion(u8),
    /// Wrong key, wrong associated data, or modified.
    #[error("sealed data does not authenticate (wrong key, wrong context or modified)")]
    Unauthentic,
}

/// Seals and opens blobs under one purpose's key. Its `Debug` shows no key.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(…)")
    }
}

impl Sealer {
    /// The sealer for `purpose` (e.g. `signing-keys`): its key is
    /// `master.derive(purpose)`, so purposes cannot open each other's blobs.
    pub fn new(master: &MasterKey, purpose: &str) -> Self {
        let key = Zeroizing::new(Key::from(master.derive(purpose)));
        Self {
            cipher: XChaCha20Poly1305::new(&key),
        }
    }

    /// Encrypts `plaintext`, authenticating it together with `aad`, under a
    /// fresh random nonce.
    ///
    /// # Panics
    ///
    /// Only for a plaintext over 256 GiB, which XChaCha20-Poly1305 cannot
    /// encrypt under one nonce.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce = XNonce::from(rand::rng().random::<[u8; NONCE_LEN]>());
        let ciphertext = match self.cipher.encrypt(&nonce, Payload { msg: plaintext, aad }) {
            Ok(ciphertext) => ciphertext,
            Err(_) => too_long_to_seal(),
        };
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        blob.push(VERSION);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        blob
    }

    /// Decrypts a blob from [`Sealer::seal`] with the same `aad`.
    pub fn open(&self, blob: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let (&version, rest) = blob.split_first().ok_or(SealError::Truncated)?;
        if version != VERSION {
            return Err(SealError::UnknownVersion(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Truncated);
        }
        let (nonce, ciphertext) = rest.split_first_chunk::<NONCE_LEN>().ok_or(SealError::Truncated)?;
        self.cipher
            .decrypt(&XNonce::from(*nonce), Payload { msg: ciphertext, aad })
            .map(Zeroizing::new)
            .map_err(|_| SealError::Unauthentic)
    }
}

#[expect(
    clippy::panic,
    reason = "XChaCha20-Poly1305 refuses only plaintexts over 256 GiB; secrets at rest are tiny"
)]
fn too_long_to_seal() -> ! {
    panic!("plaintext too long to seal")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> (MasterKey, Sealer) {
        let master = MasterKey::generate();
        let sealer = Sealer::new(&master, "signing-keys");
        (master, sealer)
    }

    #[test]
    fn round_trip() {
        let (_, s) = sealer();
        for plaintext in [&b""[..], b"k", &[7u8; 32], &[1u8; 5000]] {
            let blob = s.seal(plaintext, b"tenant-1/kid-1");
            assert_eq!(blob.len(), 1 + NONCE_LEN + plaintext.len() + TAG_LEN);
            assert_eq!(blob[0], VERSION);
            assert_eq!(s.open(&blob, b"tenant-1/kid-1").unwrap().as_slice(), plaintext);
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let (_, s) = sealer();
        let a = s.seal(b"same", b"aad");
        let b = s.seal(b"same", b"aad");
        assert_ne!(a, b);
        assert_ne!(a[1..1 + NONCE_LEN], b[1..1 + NONCE_LEN]);
    }

    #[test]
    fn different_aad_fails() {
        // A key row copied to another tenant or kid does not decrypt.
        let (_, s) = sealer();
        let blob = s.seal(b"secret", b"tenant-1/kid-1");
        for aad in [&b"tenant-2/kid-1"[..], b"tenant-1/kid-2", b"", b"tenant-1/kid-1\0"] {
            assert_eq!(s.open(&blob, aad).unwrap_err(), SealError::Unauthentic);
        }
    }

    #[test]
    fn different_key_fails() {
        let (master, s) = sealer();
        let blob = s.seal(b"secret", b"aad");
        let other_master = Sealer::new(&MasterKey::generate(), "signing-keys");
        assert_eq!(other_master.open(&blob, b"aad").unwrap_err(), SealError::Unauthentic);
        let other_purpose = Sealer::new(&master, "connector-secrets");
        assert_eq!(other_purpose.open(&blob, b"aad").unwrap_err(), SealError::Unauthentic);
        let same = Sealer::new(&master, "signing-keys");
        assert_eq!(same.open(&blob, b"aad").unwrap().as_slice(), b"secret");
    }

    #[test]
    fn tampering_any_byte_fails() {
        let (_, s) = sealer();
        let blob = s.seal(b"a secret signing key", b"aad");
        // Version, nonce, ciphertext and tag regions alike.
        for i in 0..blob.len() {
            let mut tampered = blob.clone();
            tampered[i] ^= 0x01;
            let err = s.open(&tampered, b"aad").unwrap_err();
            if i == 0 {
                assert_eq!(err, SealError::UnknownVersion(VERSION ^ 0x01));
            } else {
                assert_eq!(err, SealError::Unauthentic, "byte {i}");
            }
        }
    }

    #[test]
    fn truncation_and_extension_fail() {
        let (_, s) = sealer();
        let blob = s.seal(b"secret", b"aad");
        for len in 0..blob.len() {
            assert!(s.open(&blob[..len], b"aad").is_err(), "length {len}");
        }
        assert_eq!(s.open(&[], b"aad").unwrap_err(), SealError::Truncated);
        assert_eq!(
            s.open(&blob[..1 + NONCE_LEN + TAG_LEN - 1], b"aad").unwrap_err(),
            SealError::Truncated
        );
        let mut longer = blob.clone();
        longer.push(0);
        assert_eq!(s.open(&longer, b"aad").unwrap_err(), SealError::Unauthentic);
    }

    #[test]
    fn debug_shows_no_key() {
        let (_, s) = sealer();
        assert_eq!(format!("{s:?}"), "Sealer(…)");
    }
}
