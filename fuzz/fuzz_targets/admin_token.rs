//! Admin token format: `check_format` agrees with the documented format
//! (prefix, length, base62, CRC32 checksum); any well-formed token checks;
//! any one-character typo in its body is caught by the checksum; `hint`
//! never shows more than the prefix and four characters.
#![no_main]

use idv_core::admin_token::{PREFIX, TOKEN_LEN, check_format, hint};
use idv_core::secret::FormatError;
use idv_fuzz::oracle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Arbitrary text, as it arrives in an `Authorization` header.
    if let Ok(s) = std::str::from_utf8(data) {
        let got = check_format(s);
        let want = match oracle::admin_token(s) {
            None => Err(FormatError::Malformed("admin token")),
            Some(true) => Ok(()),
            Some(false) => Err(FormatError::Checksum("admin token")),
        };
        assert_eq!(got, want, "input {s:?}");
        let h = hint(s);
        let shown = if s.starts_with(PREFIX) { PREFIX.len() + 4 } else { 4 };
        assert_eq!(h.chars().count(), s.chars().count().min(shown) + 1);
        assert!(h.ends_with('…'));
    }

    // A token made from the input: well formed, and every single-character
    // substitution in the body is detected.
    if data.len() < 42 {
        return;
    }
    let (body, rest) = data.split_at(40);
    let body: String = body
        .iter()
        .map(|b| char::from(oracle::BASE62[usize::from(*b) % 62]))
        .collect();
    let head = format!("{PREFIX}{body}");
    let token = format!("{head}{}", oracle::token_checksum(&head));
    assert_eq!(token.len(), TOKEN_LEN);
    assert_eq!(check_format(&token), Ok(()), "{token}");
    let pos = PREFIX.len() + usize::from(rest[0]) % 40;
    let c = oracle::BASE62[usize::from(rest[1]) % 62];
    let mut typo = token.clone().into_bytes();
    if typo[pos] != c {
        typo[pos] = c;
        let typo = String::from_utf8(typo).expect("base62 is ASCII");
        assert_eq!(
            check_format(&typo),
            Err(FormatError::Checksum("admin token")),
            "{token} -> {typo}"
        );
    }
    // Truncated or extended copies are malformed, never accepted.
    assert_eq!(
        check_format(&token[..token.len() - 1]),
        Err(FormatError::Malformed("admin token"))
    );
    assert_eq!(
        check_format(&format!("{token}0")),
        Err(FormatError::Malformed("admin token"))
    );
});
