//! SCRAM-SHA-256 password verifiers (RFC 5802, RFC 7677), in PostgreSQL's
//! stored form.
//!
//! We set a dynamic role's password as its verifier, never as text, so the
//! password itself reaches neither the target's statement logs nor
//! `pg_stat_activity`: PostgreSQL accepts a `PASSWORD` that is already a
//! SCRAM verifier and stores it as is.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// PostgreSQL's default iteration count (`scram_iterations`).
pub const ITERATIONS: u32 = 4096;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // INVARIANT: HMAC takes keys of any length, so `new_from_slice` cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(data);
    m.finalize().into_bytes().into()
}

/// RFC 5802 §2.2 `Hi()`: PBKDF2 (RFC 8018 §5.2) with HMAC-SHA-256, one
/// block of output.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
    out
}

/// The keys a server keeps for a password (RFC 5802 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    /// `ClientKey`: only the client can compute it.
    pub client_key: [u8; 32],
    /// `H(ClientKey)`.
    pub stored_key: [u8; 32],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; 32],
}

/// Derives the keys for `password` (ASCII, so SASLprep leaves it unchanged).
pub fn keys(password: &str, salt: &[u8], iterations: u32) -> Keys {
    let salted = salted_password(password.as_bytes(), salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    Keys {
        client_key,
        stored_key: Sha256::digest(client_key).into(),
        server_key: hmac(&salted, b"Server Key"),
    }
}

/// The verifier PostgreSQL stores:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
pub fn verifier(password: &str, salt: &[u8]) -> String {
    let k = keys(password, salt, ITERATIONS);
    format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(k.stored_key),
        STANDARD.encode(k.server_key)
    )
}

/// Whether `password` matches a stored verifier.
pub fn matches(password: &str, stored: &str) -> bool {
    let parse = || {
        let rest = stored.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys_part) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored_key, server_key) = keys_part.split_once(':')?;
        Some((
            iterations.parse::<u32>().ok()?,
            STANDARD.decode(salt).ok()?,
            STANDARD.decode(stored_key).ok()?,
            STANDARD.decode(server_key).ok()?,
        ))
    };
    match parse() {
        Some((i, salt, sk, srv)) if (1..=1_000_000).contains(&i) => {
            let k = keys(password, &salt, i);
            k.stored_key.as_slice() == sk.as_slice() && k.server_key.as_slice() == srv.as_slice()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3: the SCRAM-SHA-256 exchange for user `user`, password
    /// `pencil`. Keys derived here must produce the example's client proof
    /// and server signature.
    #[test]
    fn rfc7677_example() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap_or_default();
        let k = keys("pencil", &salt, 4096);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let client_signature = hmac(&k.stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = k.client_key.iter().zip(client_signature).map(|(a, b)| a ^ b).collect();
        assert_eq!(STANDARD.encode(proof), "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        let server_signature = hmac(&k.server_key, auth_message.as_bytes());
        assert_eq!(
            STANDARD.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn verifiers_match_their_password_only() {
        let v = verifier("s3cret", b"0123456789abcdef");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"));
        assert!(matches("s3cret", &v));
        assert!(!matches("s3creT", &v));
        assert!(!matches("s3cret", "md5abc"));
    }
}
