//! Admin API tokens: roles, the token format, and what each role may do.
//!
//! Format: `idvat_` + 40 random base62 characters + a 6-character base62
//! CRC32 of everything before it, e.g. `idvat_3kTm…Q9x2AbC`. The fixed prefix
//! lets secret scanners find leaked tokens; the checksum lets them (and us)
//! reject typos without a database lookup. Only an HMAC of the token is stored.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;
use crate::secret::{FormatError, SecretFormat};

/// Every admin token starts with this.
pub const PREFIX: &str = "idvat_";
/// Length of a well-formed token.
pub const TOKEN_LEN: usize = FORMAT.secret_len();
/// Shortest secret accepted for `IDV_BOOTSTRAP_TOKEN` when it is not in our format.
pub const MIN_EXTERNAL_LEN: usize = 32;

/// What an admin token may do within its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything in the tenant, including admin tokens.
    Admin,
    /// Manage agents and their credentials.
    Operator,
    /// Read everything, including the audit log; change nothing.
    Auditor,
    /// A policy enforcement point: asks for authorization decisions, and
    /// nothing else.
    Pep,
    /// A developer who owns agents, signed in to the console: reads and
    /// manages only the agents they own (`owner` = their e-mail), and
    /// decides the approvals assigned to them. People only: never an admin
    /// token's role.
    Owner,
}

/// One thing an API call needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read agents and tenant metadata.
    ReadRegistry,
    /// Create, change and drive the lifecycle of agents.
    WriteRegistry,
    /// Read the audit log.
    ReadAudit,
    /// List, create and revoke admin tokens.
    ManageTokens,
    /// Add and remove trusted external issuers (whose tokens can start
    /// delegations).
    ManageTrust,
    /// Create tenants and act in any tenant (platform operator admins only).
    ManagePlatform,
    /// Read the whole audit chain across tenants (platform operators who may
    /// read the audit log).
    ReadAllAudit,
    /// Upload and activate policies; manage roles, grants and the directory.
    ManagePolicy,
    /// Ask for authorization decisions (AuthZEN).
    Decide,
    /// Approve or reject approval requests.
    Approve,
    /// Subscribe endpoints to the tenant's events, change and remove the
    /// subscriptions (webhooks send audit data out of the system).
    ManageWebhooks,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::Pep => "pep",
            Role::Owner => "owner",
        }
    }

    /// Whether this role grants `p` (platform permissions also need the
    /// token's platform flag; see [`Principal::may`]).
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => !matches!(p, ManagePlatform | ReadAllAudit),
            Role::Operator => matches!(p, ReadRegistry | WriteRegistry | Decide | Approve),
            Role::Auditor => matches!(p, ReadRegistry | ReadAudit),
            Role::Pep => matches!(p, Decide),
            // Scoped to their own agents by the use cases (`Caller::owns`).
            Role::Owner => matches!(p, ReadRegistry | WriteRegistry | Approve),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a role (admin, operator, auditor, pep, owner)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "auditor" => Ok(Role::Auditor),
            "pep" => Ok(Role::Pep),
            "owner" => Ok(Role::Owner),
            _ => Err(UnknownRole(s.to_owned())),
        }
    }
}

/// A stored admin token (never the secret itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminToken {
    /// Immutable id (also the actor id in audit events).
    pub id: Uuid,
    /// The tenant it belongs to.
    pub tenant_id: Uuid,
    /// A name for people.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// A platform operator token: may manage tenants and act in any tenant.
    pub platform: bool,
    /// The first characters of the token, to recognise it.
    pub hint: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// Who made it (token id or `bootstrap`).
    pub created_by: String,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl AdminToken {
    /// Whether it can authenticate at `now`.
    pub fn is_usable(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// An authenticated caller of the admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token used.
    pub token_id: Uuid,
    /// The token's name.
    pub token_name: String,
    /// The token's own tenant.
    pub home_tenant: Uuid,
    /// Its role.
    pub role: Role,
    /// Whether it is a platform operator token.
    pub platform: bool,
}

impl Principal {
    /// Whether this caller may do `p` (in its own tenant, or in any tenant for
    /// a platform operator).
    pub fn may(&self, p: Permission) -> bool {
        match p {
            Permission::ManagePlatform => self.platform && self.role == Role::Admin,
            Permission::ReadAllAudit => self.platform && self.role.allows(Permission::ReadAudit),
            other => self.role.allows(other),
        }
    }
}

/// The admin token format.
pub const FORMAT: SecretFormat = SecretFormat {
    prefix: PREFIX,
    what: "admin token",
};

/// A fresh admin token.
pub fn generate() -> String {
    FORMAT.generate()
}

/// Checks prefix, length, alphabet and checksum without any lookup.
pub fn check_format(token: &str) -> Result<(), FormatError> {
    FORMAT.check(token)
}

/// The recognisable start of a token, safe to show and to log: our prefix
/// and 4 characters of the 238-bit random body, or just 4 characters of a
/// token supplied from outside (`IDV_BOOTSTRAP_TOKEN`), whose strength we
/// do not know.
pub fn hint(token: &str) -> String {
    FORMAT.hint(token)
}

#[cfg(test)]
mod tests {

    #[test]
    fn owners_manage_agents_and_approve_and_nothing_else() {
        use Permission::*;
        for p in [ReadRegistry, WriteRegistry, Approve] {
            assert!(Role::Owner.allows(p), "{p:?}");
        }
        for p in [
            ReadAudit,
            ManageTokens,
            ManageTrust,
            ManagePolicy,
            Decide,
            ManageWebhooks,
            ManagePlatform,
        ] {
            assert!(!Role::Owner.allows(p), "{p:?}");
        }
        assert_eq!("owner".parse::<Role>().unwrap(), Role::Owner);
        assert_eq!(Role::Owner.as_str(), "owner");
    }

    use super::*;

    #[test]
    fn hints_show_little_of_the_secret() {
        assert_eq!(hint("idvat_abcdefgh"), "idvat_abcd…");
        assert_eq!(hint("my-long-external-automation-secret"), "my-l…");
    }

    #[test]
    fn generated_tokens_check() {
        let t = generate();
        assert_eq!(t.len(), TOKEN_LEN);
        assert_eq!(check_format(&t), Ok(()));
        assert!(hint(&t).starts_with("idvat_"));
    }

    #[test]
    fn roles() {
        assert!(Role::Operator.allows(Permission::WriteRegistry));
        assert!(!Role::Operator.allows(Permission::ReadAudit));
        assert!(!Role::Auditor.allows(Permission::WriteRegistry));
        assert!(Role::Auditor.allows(Permission::ReadAudit));
        assert!(!Role::Admin.allows(Permission::ManagePlatform));
    }
}
