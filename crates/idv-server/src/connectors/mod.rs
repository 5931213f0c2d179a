//! Connectors to systems outside IdentityVault (the seams where a trait
//! would sit if there were more than one kind).

pub mod postgres;
