//! The audit vocabulary, declared once: every action an event can record,
//! the kind of target it names, and the webhook event type an action is
//! published as. The store, the use cases, the jobs and the webhook
//! dispatcher all use these enums, so a misspelt action is a compile error.
//!
//! INVARIANT: the names are stored in the hash chain and sent in webhook
//! payloads; changing one breaks the verification of existing chains and
//! every subscriber. Add names, never edit them.

use std::fmt;
use std::str::FromStr;

/// A name that is not in the vocabulary.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit {what} `{name}`")]
pub struct UnknownName {
    /// `action` or `target type`.
    pub what: &'static str,
    /// The name read.
    pub name: String,
}

macro_rules! vocabulary {
    // An enum whose names may be published as webhook event types.
    (
        publishing $(#[$meta:meta])* $vis:vis enum $Enum:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $Variant:ident = $name:literal $(=> $event:literal)? , )*
        }
    ) => {
        vocabulary! {
            $(#[$meta])* $vis enum $Enum ($what) {
                $( $(#[$vmeta])* $Variant = $name, )*
            }
        }

        impl $Enum {
            /// The webhook event type this is published as (Standard
            /// Webhooks style: `noun.past_tense`), if it is one. Action
            /// names stay internal; event types are the public names.
            pub fn webhook_event(self) -> Option<&'static str> {
                match self {
                    $( $Enum::$Variant => vocabulary!(@event $($event)?), )*
                }
            }
        }
    };
    (@event $event:literal) => { Some($event) };
    (@event) => { None };
    (
        $(#[$meta:meta])* $vis:vis enum $Enum:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $Variant:ident = $name:literal , )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $Enum {
            $( $(#[$vmeta])* $Variant, )*
        }

        impl $Enum {
            /// Every name, in declaration order.
            pub const ALL: &'static [$Enum] = &[ $( $Enum::$Variant, )* ];

            /// The stored (and wire) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $Enum::$Variant => $name, )*
                }
            }
        }

        impl FromStr for $Enum {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $( $name => Ok($Enum::$Variant), )*
                    _ => Err(UnknownName { what: $what, name: s.to_owned() }),
                }
            }
        }

        impl fmt::Display for $Enum {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    publishing
    /// What an audit event records, e.g. `agent.create`. An action refused
    /// by role (403) is recorded under the name of the operation asked for
    /// (`agent.read`, `audit.read`, …), with target type [`TargetType::Api`].
    pub enum Action ("action") {
        /// A tenant created.
        TenantCreate = "tenant.create",
        /// A platform operator acting in another tenant.
        TenantActIn = "tenant.act_in",
        /// Reading a tenant (a refusal by role only).
        TenantGet = "tenant.get",
        /// Listing tenants (a refusal by role only).
        TenantList = "tenant.list",
        /// An admin token created.
        AdminTokenCreate = "admin_token.create",
        /// A platform admin token created (a refusal by role only).
        AdminTokenCreatePlatform = "admin_token.create_platform",
        /// An admin token revoked.
        AdminTokenRevoke = "admin_token.revoke",
        /// A platform admin token revoked (a refusal by role only).
        AdminTokenRevokePlatform = "admin_token.revoke_platform",
        /// A failed admin token authentication.
        AdminTokenAuthenticate = "admin_token.authenticate",
        /// Reading an admin token (a refusal by role only).
        AdminTokenGet = "admin_token.get",
        /// Listing admin tokens (a refusal by role only).
        AdminTokenList = "admin_token.list",
        /// An agent registered.
        AgentCreate = "agent.create" => "agent.created",
        /// A refused bulk registration of several agents.
        AgentCreateBulk = "agent.create_bulk",
        /// An agent's metadata changed.
        AgentUpdate = "agent.update" => "agent.updated",
        /// An agent moved to another owner, one event per agent of a
        /// reassignment (or the refused reassignment, target the old owner).
        AgentReassignOwner = "agent.reassign_owner" => "agent.updated",
        /// An agent activated.
        AgentActivate = "agent.activate" => "agent.activated",
        /// An agent suspended.
        AgentSuspend = "agent.suspend" => "agent.suspended",
        /// A suspended agent resumed.
        AgentResume = "agent.resume" => "agent.resumed",
        /// An agent retired.
        AgentRetire = "agent.retire" => "agent.retired",
        /// A lifecycle transition (a refusal by role only).
        AgentTransition = "agent.transition",
        /// An agent reported compromised: its credentials revoked at once.
        AgentCompromised = "agent.compromised" => "security.agent_compromised",
        /// An agent-to-agent call seen for the first time.
        AgentEdgeFirstSeen = "agent.edge.first_seen" => "security.new_edge",
        /// Reading an agent (a refusal by role only).
        AgentRead = "agent.read",
        /// Listing agents (a refusal by role only).
        AgentList = "agent.list",
        /// Reading the agent graph (a refusal by role only).
        AgentGraph = "agent.graph",
        /// Reading an agent's permissions (a refusal by role only).
        AgentPermissions = "agent.permissions",
        /// Rotating all of an agent's credentials (a refusal by role only).
        AgentRotateCredentials = "agent.rotate_credentials",
        /// A credential issued.
        CredentialCreate = "credential.create" => "credential.issued",
        /// A credential rotated.
        CredentialRotate = "credential.rotate" => "credential.rotated",
        /// A credential revoked.
        CredentialRevoke = "credential.revoke" => "credential.revoked",
        /// An agent collected its credential's successor.
        CredentialSuccessorCollect = "credential.successor.collect",
        /// A client secret or private key JWT authenticated.
        CredentialUse = "credential.use",
        /// An API key authenticated.
        ApiKeyUse = "api_key.use",
        /// Reading a credential (a refusal by role only).
        CredentialRead = "credential.read",
        /// Listing credentials (a refusal by role only).
        CredentialList = "credential.list",
        /// Reading a credential's history (a refusal by role only).
        CredentialHistory = "credential.history",
        /// An access token issued.
        TokenIssue = "token.issue" => "token.issued",
        /// An access token issued by token exchange (RFC 8693).
        TokenExchange = "token.exchange" => "token.exchanged",
        /// An access token revoked (RFC 7009).
        TokenRevoke = "token.revoke" => "token.revoked",
        /// A token lifetime set or cleared.
        TokenTtlSet = "token_ttl.set",
        /// Listing token lifetimes (a refusal by role only).
        TokenTtlList = "token_ttl.list",
        /// A rotation policy set.
        RotationPolicyPut = "rotation_policy.put" => "policy.rotation_changed",
        /// A rotation policy removed.
        RotationPolicyDelete = "rotation_policy.delete" => "policy.rotation_deleted",
        /// Listing rotation policies (a refusal by role only).
        RotationPolicyList = "rotation_policy.list",
        /// A failed job that runs again.
        JobRetry = "job.retry",
        /// A policy version stored.
        PolicyVersionCreate = "policy.version.create" => "policy.version_created",
        /// A policy version made active.
        PolicyVersionActivate = "policy.version.activate" => "policy.activated",
        /// The active policy version rolled back.
        PolicyVersionRollback = "policy.version.rollback" => "policy.rolled_back",
        /// Reading a policy version (a refusal by role only).
        PolicyGet = "policy.get",
        /// Listing policy versions (a refusal by role only).
        PolicyList = "policy.list",
        /// Testing policies (a refusal by role only).
        PolicyTest = "policy.test",
        /// Validating policies (a refusal by role only).
        PolicyValidate = "policy.validate",
        /// A role created or replaced (the attempt; see [`Action::RoleCreate`]).
        RolePut = "role.put",
        /// A role created.
        RoleCreate = "role.create" => "policy.role_changed",
        /// A role replaced.
        RoleUpdate = "role.update" => "policy.role_changed",
        /// A role deleted.
        RoleDelete = "role.delete" => "policy.role_deleted",
        /// Listing roles (a refusal by role only).
        RoleList = "role.list",
        /// A role or permission granted.
        GrantCreate = "grant.create" => "policy.grant_created",
        /// A grant removed.
        GrantDelete = "grant.delete" => "policy.grant_deleted",
        /// Listing grants (a refusal by role only).
        GrantList = "grant.list",
        /// Directory entities created or replaced.
        DirectoryPut = "directory.put",
        /// A directory entity removed.
        DirectoryDelete = "directory.delete",
        /// Listing the directory (a refusal by role only).
        DirectoryList = "directory.list",
        /// An authorization decision.
        AuthzDecision = "authz.decision" => "authz.decision",
        /// An authorization search (AuthZEN).
        AuthzSearch = "authz.search",
        /// An approval approved.
        ApprovalApprove = "approval.approve" => "approval.approved",
        /// An approval rejected.
        ApprovalReject = "approval.reject" => "approval.rejected",
        /// Reading an approval (a refusal by role only).
        ApprovalGet = "approval.get",
        /// Listing approvals (a refusal by role only).
        ApprovalList = "approval.list",
        /// Reading the audit log (a refusal by role only).
        AuditRead = "audit.read",
        /// Reading every tenant's audit log (a refusal by role only).
        AuditReadAllTenants = "audit.read_all_tenants",
        /// The whole chain verified from the console (the result in details).
        AuditVerify = "audit.verify",
        /// A target database registered or replaced.
        DbTargetPut = "db.target.put" => "db.target_changed",
        /// A target database removed.
        DbTargetDelete = "db.target.delete" => "db.target_deleted",
        /// A target database swept for orphaned roles.
        DbTargetSweep = "db.target.sweep",
        /// Reading a target database (a refusal by role only).
        DbTargetGet = "db.target.get",
        /// Listing target databases (a refusal by role only).
        DbTargetList = "db.target.list",
        /// A role template created or replaced.
        DbTemplatePut = "db.template.put" => "db.template_changed",
        /// A role template removed.
        DbTemplateDelete = "db.template.delete" => "db.template_deleted",
        /// Reading a role template (a refusal by role only).
        DbTemplateGet = "db.template.get",
        /// Listing role templates (a refusal by role only).
        DbTemplateList = "db.template.list",
        /// A lease asked for (pending).
        LeaseRequest = "lease.request",
        /// A lease issued (its role exists).
        LeaseIssue = "lease.issue" => "lease.issued",
        /// A lease extended.
        LeaseRenew = "lease.renew" => "lease.renewed",
        /// A lease's revocation started.
        LeaseRevoke = "lease.revoke",
        /// A lease's role confirmed gone.
        LeaseRevoked = "lease.revoked" => "lease.revoked",
        /// Reading a lease (a refusal by role only).
        LeaseGet = "lease.get",
        /// Listing leases (a refusal by role only).
        LeaseList = "lease.list",
        /// A signing key created.
        SigningKeyCreate = "signing_key.create" => "key.created",
        /// A signing key made active.
        SigningKeyActivate = "signing_key.activate" => "key.activated",
        /// A signing key retired.
        SigningKeyRetire = "signing_key.retire" => "key.retired",
        /// A signing key removed from the published set.
        SigningKeyRemove = "signing_key.remove" => "key.removed",
        /// A manual rotation of the signing keys.
        SigningKeyRotate = "signing_key.rotate",
        /// Listing signing keys (a refusal by role only).
        SigningKeyList = "signing_key.list",
        /// A delegation stored.
        DelegationCreate = "delegation.create" => "delegation.created",
        /// A delegation revoked.
        DelegationRevoke = "delegation.revoke" => "delegation.revoked",
        /// Reading a delegation (a refusal by role only).
        DelegationRead = "delegation.read",
        /// Listing delegations (a refusal by role only).
        DelegationList = "delegation.list",
        /// An external issuer trusted.
        TrustedIssuerCreate = "trusted_issuer.create" => "trust.issuer_added",
        /// An external issuer no longer trusted.
        TrustedIssuerDelete = "trusted_issuer.delete" => "trust.issuer_removed",
        /// Listing trusted issuers (a refusal by role only).
        TrustedIssuerList = "trusted_issuer.list",
        /// A webhook subscription created.
        WebhookCreate = "webhook.create" => "webhook.created",
        /// A webhook subscription changed.
        WebhookUpdate = "webhook.update" => "webhook.updated",
        /// A webhook subscription removed.
        WebhookDelete = "webhook.delete" => "webhook.deleted",
        /// A webhook subscription disabled after repeated failures.
        WebhookDisabled = "webhook.disabled" => "webhook.disabled",
        /// A webhook subscription's signing secret replaced.
        WebhookRotateSecret = "webhook.rotate_secret",
        /// A test event queued to one subscription.
        WebhookTest = "webhook.test",
        /// A delivery sent again (a new delivery of the same event).
        WebhookRedeliver = "webhook.redeliver",
        /// Reading a webhook subscription (a refusal by role only).
        WebhookGet = "webhook.get",
        /// Listing webhook subscriptions (a refusal by role only).
        WebhookList = "webhook.list",
        /// Settled webhook deliveries deleted after their retention.
        WebhookDeliveriesPrune = "webhook.deliveries.prune",
        /// A webhook delivery that reached its endpoint.
        WebhookDeliverySucceeded = "webhook.delivery.succeeded",
        /// A webhook delivery attempt that failed.
        WebhookDeliveryFailed = "webhook.delivery.failed",
        /// A person signed in to the console (or a refused sign-in).
        ConsoleSignIn = "console.sign_in",
        /// A person signed out of the console.
        ConsoleSignOut = "console.sign_out",
        /// A console session ended by an administrator (or by its holder
        /// from the session list).
        ConsoleSessionEnd = "console.session_end",
        /// Listing console sessions (a refusal by role only).
        ConsoleSessionList = "console.session_list",
        /// A tenant's single sign-on provider set or replaced.
        SsoPut = "sso.put",
        /// A tenant's single sign-on provider removed.
        SsoDelete = "sso.delete",
        /// Reading a tenant's single sign-on settings (a refusal by role only).
        SsoGet = "sso.get",
        /// An access request made (for a role or action, for a while).
        AccessRequestCreate = "access_request.create" => "access_request.created",
        /// An access request approved: its grant is made in the same commit.
        AccessRequestApprove = "access_request.approve" => "access_request.approved",
        /// An access request denied.
        AccessRequestDeny = "access_request.deny" => "access_request.denied",
        /// An access request withdrawn by its requester.
        AccessRequestWithdraw = "access_request.withdraw" => "access_request.withdrawn",
        /// Reading access requests (a refusal by role only).
        AccessRequestList = "access_request.list",
    }
}

vocabulary! {
    /// What kind of thing an audit event names as its target.
    pub enum TargetType ("target type") {
        /// A tenant.
        Tenant = "tenant",
        /// An admin token.
        AdminToken = "admin_token",
        /// An operation of the admin API (a refusal by role).
        Api = "api",
        /// An agent.
        Agent = "agent",
        /// A credential.
        Credential = "credential",
        /// An access token (by `jti`).
        Token = "token",
        /// A tenant's or an agent class's token lifetime.
        TokenTtl = "token_ttl",
        /// A rotation policy.
        RotationPolicy = "rotation_policy",
        /// A background job.
        Job = "job",
        /// A policy version.
        PolicyVersion = "policy_version",
        /// A role.
        Role = "role",
        /// A grant.
        Grant = "grant",
        /// The directory.
        Directory = "directory",
        /// An approval.
        Approval = "approval",
        /// A target database.
        DbTarget = "db_target",
        /// A role template.
        DbTemplate = "db_template",
        /// A lease.
        Lease = "lease",
        /// A tenant's signing keys.
        SigningKey = "signing_key",
        /// A delegation.
        Delegation = "delegation",
        /// A trusted issuer.
        TrustedIssuer = "trusted_issuer",
        /// A webhook subscription.
        Webhook = "webhook",
        /// A webhook delivery.
        WebhookDelivery = "webhook_delivery",
        /// A tenant's webhook delivery log.
        WebhookDeliveries = "webhook_deliveries",
        /// A console session.
        ConsoleSession = "console_session",
        /// A tenant's single sign-on settings.
        Sso = "sso",
        /// The audit chain itself (target id: the head verified up to).
        AuditChain = "audit_chain",
        /// A just-in-time access request.
        AccessRequest = "access_request",
    }
}

/// The kind of thing an event names: a declared [`TargetType`], or the
/// directory entity type an authorization request named (`User`, …).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// One of IdentityVault's own records.
    Declared(TargetType),
    /// A directory entity type, as the caller named it.
    Entity(String),
}

impl TargetKind {
    /// The stored name.
    pub fn as_str(&self) -> &str {
        match self {
            TargetKind::Declared(t) => t.as_str(),
            TargetKind::Entity(e) => e,
        }
    }
}

impl From<TargetType> for TargetKind {
    fn from(t: TargetType) -> Self {
        TargetKind::Declared(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(*a));
            assert!(seen.insert(a.as_str()), "{a} twice");
        }
        for t in TargetType::ALL {
            assert_eq!(t.as_str().parse::<TargetType>(), Ok(*t));
        }
        assert!("agent.creat".parse::<Action>().is_err());
    }

    #[test]
    fn names_are_dot_separated_lowercase_segments() {
        for a in Action::ALL {
            assert!(
                a.as_str()
                    .split('.')
                    .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')),
                "{a}"
            );
        }
    }

    /// The backticked dotted names (`noun.verb`) in the first column of the
    /// table under `header`.
    fn first_column(doc: &str, header: &str) -> Vec<String> {
        let rows = doc
            .lines()
            .skip_while(|l| !l.starts_with(header))
            .skip(2)
            .take_while(|l| l.starts_with('|'));
        rows.flat_map(|row| {
            let cell = row.split('|').nth(1).unwrap_or_default();
            cell.split('`')
                .skip(1)
                .step_by(2)
                .filter(|name| name.contains('.'))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
    }

    /// The audit table of the API reference names only declared actions.
    #[test]
    fn the_documented_actions_are_declared() {
        let doc = include_str!("../../../../docs/api.md");
        let names = first_column(doc, "| `action` | `target_type` / `target_id` |");
        assert!(names.len() > 20, "the audit table moved: {names:?}");
        for n in names {
            assert!(
                n.parse::<Action>().is_ok(),
                "docs/api.md lists `{n}`, which is not an Action"
            );
        }
    }

    /// The webhook table of the operations guide lists exactly the event
    /// types the actions are published as (and the test event).
    #[test]
    fn the_documented_webhook_events_are_the_declared_ones() {
        let doc = include_str!("../../../../docs/operations.md");
        let mut documented = first_column(doc, "| Event type | When (audit action) |");
        documented.sort();
        documented.dedup();
        let mut declared: Vec<String> = Action::ALL
            .iter()
            .filter_map(|a| a.webhook_event())
            .chain([crate::webhook::TEST_EVENT])
            .map(str::to_owned)
            .collect();
        declared.sort();
        declared.dedup();
        assert_eq!(documented, declared);
    }
}
