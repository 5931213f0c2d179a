//! The master key, keys derived from it, and keyed hashes of machine secrets.
//!
//! Machine secrets are 256-bit random, so a keyed hash (HMAC-SHA256 under a key
//! derived from the master key) is the right way to store them: a stolen
//! database alone cannot be used to test guesses, and checking costs
//! microseconds, unlike a password hash.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::hex;

type HmacSha256 = Hmac<Sha256>;

/// The installation's root secret. Every key at rest derives from it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

/// A master key that is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("the master key must be 64 hexadecimal digits (32 bytes)")]
pub struct InvalidMasterKey;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

#[expect(clippy::panic, reason = "HMAC takes keys of every length; this is unreachable")]
fn unreachable_hmac() -> ! {
    panic!("HMAC rejected a key")
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(rand::rng().random())
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(s: &str) -> Result<Self, InvalidMasterKey> {
        hex::decode::<32>(s.trim()).map(Self).ok_or(InvalidMasterKey)
    }

    /// The key as 64 hex digits, for the key file.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// A key for one purpose (HKDF-style expansion with HMAC-SHA256; the
    /// purpose label keeps derived keys independent).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        hmac(&self.0, &[b"idv/v1/", purpose.as_bytes()])
    }

    /// A public value that identifies this key without revealing it; stored in
    /// the database so a node started with the wrong key refuses to run.
    pub fn check_value(&self) -> String {
        hex::encode(&self.derive("check"))
    }
}

/// Keyed hashing of machine secrets (tokens, client secrets, API keys).
#[derive(Clone)]
pub struct SecretHasher {
    key: [u8; 32],
}

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHasher(…)")
    }
}

impl SecretHasher {
    /// The hasher for `purpose`, keyed from the master key.
    pub fn new(master: &MasterKey, purpose: &str) -> Self {
        Self {
            key: master.derive(purpose),
        }
    }

    /// HMAC-SHA256 of the secret.
    pub fn hash(&self, secret: &str) -> [u8; 32] {
        hmac(&self.key, &[secret.as_bytes()])
    }

    /// Whether `secret` hashes to `stored`, compared in constant time.
    pub fn verify(&self, secret: &str, stored: &[u8]) -> bool {
        self.hash(secret).ct_eq(stored).into()
    }
}

/// The base62 alphabet used in every generated secret.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` uniformly random base62 characters (rejection-free: `random_range`
/// is unbiased). 43 characters carry just over 256 bits.
pub fn random_base62(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| {
            let i = rng.random_range(0..BASE62.len());
            char::from(BASE62.get(i).copied().unwrap_or(b'0'))
        })
        .collect()
}

/// A typed secret as IdentityVault issues it: a fixed prefix naming the kind
/// (so secret scanners can find leaked ones), 40 random base62 characters
/// (238 bits) and a 6-character base62 CRC32 of everything before it (so a
/// typo or truncation is refused without any lookup). Only a keyed hash of
/// the whole string is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecretFormat {
    /// E.g. `idvat_`.
    pub prefix: &'static str,
    /// What it is, for messages (`admin token`, `API key`).
    pub what: &'static str,
}

/// Random characters in a [`SecretFormat`] secret.
const BODY_LEN: usize = 40;
/// Checksum characters at the end.
const CHECKSUM_LEN: usize = 6;

/// A secret that is not well formed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Wrong prefix, length or characters.
    #[error("not an IdentityVault {0}")]
    Malformed(&'static str),
    /// Right shape, wrong checksum: a typo or a truncated copy.
    #[error("{0} checksum does not match (a typo or truncated copy?)")]
    Checksum(&'static str),
}

fn checksum(prefix_and_body: &str) -> String {
    base62_fixed(u64::from(crc32fast::hash(prefix_and_body.as_bytes())), CHECKSUM_LEN)
}

impl SecretFormat {
    /// Length of a well-formed secret.
    pub const fn secret_len(&self) -> usize {
        self.prefix.len() + BODY_LEN + CHECKSUM_LEN
    }

    /// Whether `s` claims to be this kind of secret (has the prefix).
    pub fn claims(&self, s: &str) -> bool {
        s.starts_with(self.prefix)
    }

    /// A fresh secret.
    pub fn generate(&self) -> String {
        let mut t = String::with_capacity(self.secret_len());
        t.push_str(self.prefix);
        t.push_str(&random_base62(BODY_LEN));
        let sum = checksum(&t);
        t.push_str(&sum);
        t
    }

    /// Checks prefix, length, alphabet and checksum without any lookup.
    pub fn check(&self, s: &str) -> Result<(), FormatError> {
        let rest = s.strip_prefix(self.prefix).ok_or(FormatError::Malformed(self.what))?;
        if s.len() != self.secret_len() || !rest.bytes().all(|b| BASE62.contains(&b)) {
            return Err(FormatError::Malformed(self.what));
        }
        let (head, sum) = s.split_at(self.secret_len() - CHECKSUM_LEN);
        if checksum(head) == sum {
            Ok(())
        } else {
            Err(FormatError::Checksum(self.what))
        }
    }

    /// The recognisable start of a secret, safe to show and to log: the
    /// prefix and 4 characters of the random body, or just 4 characters of a
    /// secret in another format (whose strength we do not know).
    pub fn hint(&self, s: &str) -> String {
        let shown = if self.claims(s) { self.prefix.len() + 4 } else { 4 };
        s.chars().take(shown).collect::<String>() + "…"
    }
}

/// `n` as exactly `width` base62 digits (most significant first).
pub fn base62_fixed(mut n: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = BASE62
            .get(usize::try_from(n % 62).unwrap_or(0))
            .copied()
            .unwrap_or(b'0');
        n /= 62;
    }
    out.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_by_purpose() {
        let m = MasterKey::generate();
        assert_ne!(m.derive("a"), m.derive("b"));
        assert_eq!(MasterKey::from_hex(&m.to_hex()).unwrap().derive("a"), m.derive("a"));
    }

    #[test]
    fn hasher_verifies() {
        let h = SecretHasher::new(&MasterKey::generate(), "t");
        let stored = h.hash("s3cret");
        assert!(h.verify("s3cret", &stored));
        assert!(!h.verify("s3creT", &stored));
        assert!(!h.verify("s3cret", &stored[..31]));
    }

    const FORMAT: SecretFormat = SecretFormat {
        prefix: "idvxx_",
        what: "test secret",
    };

    #[test]
    fn formats_generate_and_check() {
        let s = FORMAT.generate();
        assert_eq!(s.len(), FORMAT.secret_len());
        assert_eq!(FORMAT.check(&s), Ok(()));
        assert_eq!(FORMAT.check(&s[1..]), Err(FormatError::Malformed("test secret")));
        assert_eq!(FORMAT.hint("idvxx_abcdefgh"), "idvxx_abcd…");
        assert_eq!(FORMAT.hint("my-long-external-secret"), "my-l…");
    }

    proptest::proptest! {
        /// Any one-character substitution in the body is caught by the checksum.
        #[test]
        fn one_typo_is_rejected(pos in 0usize..BODY_LEN, c in proptest::sample::select(BASE62.to_vec())) {
            let t = FORMAT.generate();
            let mut bytes = t.clone().into_bytes();
            let i = FORMAT.prefix.len() + pos;
            proptest::prop_assume!(bytes[i] != c);
            bytes[i] = c;
            let typo = String::from_utf8(bytes).unwrap();
            proptest::prop_assert_eq!(FORMAT.check(&typo), Err(FormatError::Checksum("test secret")));
        }

        #[test]
        fn check_never_panics(s in "\\PC{0,60}") {
            let _ = FORMAT.check(&s);
        }
    }

    #[test]
    fn base62() {
        assert_eq!(base62_fixed(0, 3), "000");
        assert_eq!(base62_fixed(61, 2), "0z");
        assert_eq!(base62_fixed(62, 2), "10");
        assert_eq!(random_base62(43).len(), 43);
    }
}
