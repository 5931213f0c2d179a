//! Name validators for untrusted names: tenant slugs, SPIFFE trust domains,
//! lifecycle reasons, and the role/status/environment names of the API.
//! Each accepts exactly what its documented rule allows; accepted names make
//! well-formed SPIFFE ids; parsed names format back to themselves.
#![no_main]

use idv_core::admin_token::Role;
use idv_core::agent::{Environment, spiffe_id, validate_reason, validate_trust_domain};
use idv_core::lifecycle::Status;
use idv_core::tenant::validate_name;
use idv_fuzz::oracle;
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    // One input is also split in two, for pairs.
    let (a, b) = s.split_at(s.char_indices().nth(s.chars().count() / 2).map_or(0, |(i, _)| i));

    for x in [s, a, b] {
        assert_eq!(validate_name(x).is_ok(), oracle::tenant_name(x), "tenant {x:?}");
        assert_eq!(
            validate_trust_domain(x).is_ok(),
            oracle::trust_domain(x),
            "trust domain {x:?}"
        );
        assert_eq!(validate_reason(x).is_ok(), oracle::text(x, 1024), "reason {x:?}");
        if let Ok(r) = x.parse::<Role>() {
            assert_eq!(r.as_str(), x);
        }
        if let Ok(st) = x.parse::<Status>() {
            assert_eq!(st.as_str(), x);
        }
        if let Ok(e) = x.parse::<Environment>() {
            assert_eq!(e.as_str(), x);
        }
    }

    if validate_trust_domain(a).is_ok() && validate_name(b).is_ok() {
        let id = Uuid::from_u128(u128::from(data.len() as u64) << 64 | 0x7000);
        let uri = spiffe_id(a, b, id);
        let path = uri.strip_prefix("spiffe://").expect("scheme");
        let parts: Vec<&str> = path.split('/').collect();
        assert_eq!(parts, [a, "t", b, "agent", &id.to_string()], "{uri}");
        assert!(uri.bytes().all(|c| c.is_ascii_graphic()), "{uri}");
    }
});
