//! IdentityVault's pure domain: agents and their lifecycle, tenants, admin tokens,
//! secrets and the audit hash chain. Nothing here performs I/O; time and ids come
//! from an injected [`clock::Clock`].

pub mod access_request;
pub mod access_token;
pub mod admin_token;
pub mod agent;
pub mod approval;
pub mod audit;
pub mod client_assertion;
pub mod clock;
pub mod credential;
pub mod db_template;
pub mod delegation;
pub mod directory;
pub mod dpop;
pub mod duration;
pub mod grant;
pub mod hex;
pub mod jose;
pub mod keyring;
pub mod lease;
pub mod lifecycle;
pub mod merkle;
pub mod oidc;
pub mod policy_version;
pub mod roi;
pub mod role;
pub mod rotation;
pub mod scram;
pub mod seal;
pub mod secret;
pub mod session;
pub mod sso;
pub mod tenant;
pub mod throttle;
pub mod timestamp;
pub mod token_exchange;
pub mod trusted_issuer;
pub mod webhook;

pub use clock::Clock;
pub use timestamp::Timestamp;
