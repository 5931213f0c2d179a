//! The Cedar policy adapter. It arrives with the authorization issue; the crate exists so the layout is stable.
