//! `idv_core::hex` (hashes in API answers and `idv audit verify`, master
//! keys): decodes exactly the hex strings of the right length, either case;
//! encode/decode round-trip; `MasterKey::from_hex` agrees with it.
#![no_main]

use idv_core::hex::{decode, encode};
use idv_core::secret::MasterKey;
use idv_fuzz::oracle;
use libfuzzer_sys::fuzz_target;

fn check<const N: usize>(s: &str) {
    let got = decode::<N>(s);
    assert_eq!(got.map(|b| b.to_vec()), oracle::hex(s, N), "N={N} input {s:?}");
    if let Some(bytes) = got {
        assert_eq!(encode(&bytes), s.to_ascii_lowercase());
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        check::<0>(s);
        check::<1>(s);
        check::<4>(s);
        check::<16>(s);
        check::<32>(s);
        let key = MasterKey::from_hex(s);
        assert_eq!(key.is_ok(), decode::<32>(s.trim()).is_some(), "input {s:?}");
        if let Ok(k) = key {
            assert_eq!(k.to_hex(), s.trim().to_ascii_lowercase());
        }
    }
    let text = encode(data);
    assert_eq!(text.len(), data.len() * 2);
    assert!(text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    if let Ok(bytes) = <[u8; 32]>::try_from(data.get(..32).unwrap_or_default()) {
        assert_eq!(decode::<32>(&encode(&bytes)), Some(bytes));
        assert_eq!(decode::<32>(&encode(&bytes).to_ascii_uppercase()), Some(bytes));
    }
});
