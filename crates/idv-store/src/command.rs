//! State-changing commands. Each runs inside the writer's batch transaction
//! (in its own savepoint): load, decide with `idv-core`, persist, and return
//! the audit drafts that the writer appends to the chain in the same commit.

use std::collections::HashSet;

use idv_core::admin_token::AdminToken;
use idv_core::agent::{Agent, AgentChanges, AgentError, Parent};
use idv_core::approval::Approval;
use idv_core::audit::{Actor, Draft, Outcome};
use idv_core::credential::{Credential, Revocation, Rotation};
use idv_core::db_template::{DbTarget, DbTemplate};
use idv_core::delegation::Delegation;
use idv_core::directory::{DirectoryEntity, EntityRef};
use idv_core::keyring::SigningKey;
use idv_core::lease::{EndReason, Lease};
use idv_core::lifecycle::{Status, Transition};
use idv_core::policy_version::PolicyVersion;
use idv_core::role::{Role, RoleGrant};
use idv_core::rotation::{RotationPolicy, Scope};
use idv_core::tenant::Tenant;
use idv_core::trusted_issuer::TrustedIssuer;
use idv_core::webhook::{AttemptResult, Delivery, Webhook};
use idv_core::{Clock, Timestamp};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::authz::{self, DecisionRecord};
use crate::keys::KeyRequest;
use crate::row::{self, AGENT_COLS, AGENT_NCOLS, chunk_rows, in_list, marker, placeholders};
use crate::webhooks::{SealedSecrets, WebhookChanges};
use crate::{Dialect, StoreError};
use crate::{credentials, delegations, keys, leases, rotation, webhooks};

/// Who asked, for the audit trail.
#[derive(Clone, Debug)]
pub struct Context {
    /// The acting party.
    pub actor: Actor,
    /// The HTTP request id, if any.
    pub request_id: Option<String>,
    /// Extra facts about the request recorded in every event (e.g. a platform
    /// operator acting in another tenant).
    pub note: Option<Value>,
}

impl Context {
    /// IdentityVault itself acting, in `component` (jobs, bootstrap, …).
    pub fn system(component: &str) -> Self {
        Context {
            actor: Actor::system(component),
            request_id: None,
            note: None,
        }
    }
}

/// A durable background job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Job id.
    pub id: Uuid,
    /// Tenant of the target.
    pub tenant_id: Uuid,
    /// What to do, e.g. [`JOB_EXPIRE_AGENT`].
    pub kind: String,
    /// What to do it to.
    pub target_id: String,
    /// When it is due.
    pub run_at: Timestamp,
    /// How many times it has been claimed.
    pub attempts: i64,
}

/// Which kinds of job a claim (or a due-job check) takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKinds {
    /// Every kind.
    All,
    /// Only this kind.
    Only(&'static str),
    /// Every kind but this one.
    AllBut(&'static str),
}

impl JobKinds {
    /// The SQL condition on `kind` (bound as parameter `$n`), and the kind
    /// to bind.
    pub(crate) fn condition(self, n: usize) -> (String, Option<&'static str>) {
        match self {
            JobKinds::All => (String::new(), None),
            JobKinds::Only(k) => (format!(" AND kind = ${n}"), Some(k)),
            JobKinds::AllBut(k) => (format!(" AND kind <> ${n}"), Some(k)),
        }
    }
}

/// Retire an ephemeral agent whose TTL has ended.
pub const JOB_EXPIRE_AGENT: &str = "agent.expire";
/// Job kind: revoke a rotated credential at the end of its overlap.
pub const JOB_RETIRE_CREDENTIAL: &str = "credential.retire";
/// Job kind: rotate a credential because its rotation policy says so.
pub const JOB_ROTATE_CREDENTIAL: &str = "credential.rotate";

/// A change to make, with its audit events, in one transaction.
#[derive(Clone, Debug)]
pub enum Command {
    /// Create a tenant.
    CreateTenant(Tenant),
    /// Store a new admin token (its keyed hash only).
    CreateAdminToken {
        /// The token record.
        token: AdminToken,
        /// HMAC of the secret.
        secret_hash: [u8; 32],
    },
    /// Revoke an admin token.
    RevokeAdminToken {
        /// Tenant it must belong to.
        tenant_id: Uuid,
        /// Token id.
        id: Uuid,
    },
    /// Register agents, all or nothing.
    CreateAgents {
        /// Tenant they belong to.
        tenant_id: Uuid,
        /// Validated agents.
        agents: Vec<Agent>,
    },
    /// Change an agent's metadata.
    UpdateAgent {
        /// Tenant it must belong to.
        tenant_id: Uuid,
        /// Agent id.
        id: Uuid,
        /// The version the caller last saw (`If-Match`).
        if_match: Option<i64>,
        /// What to change.
        changes: AgentChanges,
    },
    /// Move an agent through its lifecycle.
    TransitionAgent {
        /// Tenant it must belong to.
        tenant_id: Uuid,
        /// Agent id.
        id: Uuid,
        /// Which transition.
        transition: Transition,
        /// Why (required).
        reason: String,
    },
    /// Run a due [`JOB_EXPIRE_AGENT`] job.
    ExpireAgent(Job),
    /// A job failed: it runs again at `run_at` (the runner's backoff), with
    /// the error kept on the row and in an event.
    RetryJob {
        /// The job as claimed.
        job: Job,
        /// When to try again.
        run_at: Timestamp,
        /// What went wrong (no secrets: store and domain errors only).
        error: String,
    },
    /// Lease due jobs to this node (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
    ClaimJobs {
        /// How long the lease lasts.
        lease_secs: i64,
        /// At most this many.
        limit: i64,
        /// Of these kinds.
        kinds: JobKinds,
    },
    /// Extend the leases of jobs this node claimed and is still running (a
    /// heartbeat), each only under the claim that leased it (`attempts`).
    RenewJobLeases {
        /// The jobs as claimed.
        jobs: Vec<Job>,
        /// How long each lease lasts from now.
        lease_secs: i64,
    },
    /// Issue a credential to an agent.
    CreateCredential {
        /// The credential (its agent must exist in its tenant and not be retired).
        credential: Credential,
        /// HMAC of the secret, for kinds with one.
        secret_hash: Option<[u8; 32]>,
    },
    /// Revoke one credential.
    RevokeCredential {
        /// Tenant it must belong to.
        tenant_id: Uuid,
        /// Credential id.
        id: Uuid,
    },
    /// Rotate a credential: `successor.predecessor_id` names the one it replaces.
    RotateCredential {
        /// The new credential.
        successor: Credential,
        /// HMAC of its secret, for kinds with one.
        secret_hash: Option<[u8; 32]>,
        /// Its secret sealed under the master key, when the agent is to
        /// collect it (erased when collected).
        sealed_secret: Option<Vec<u8>>,
        /// Overlap and retirement.
        rotation: Rotation,
        /// Recorded on the predecessor when it is revoked.
        why: Revocation,
        /// The [`JOB_ROTATE_CREDENTIAL`] job this runs, finished in the same
        /// commit (a credential no longer rotatable just finishes it).
        job: Option<Job>,
    },
    /// Finish a job that has nothing (left) to do.
    FinishJob(Job),
    /// Set a rotation policy; the rotations it covers are rescheduled.
    PutRotationPolicy(RotationPolicy),
    /// Remove a rotation policy; what it covered is rescheduled.
    DeleteRotationPolicy {
        /// Tenant.
        tenant_id: Uuid,
        /// Which one.
        scope: Scope,
    },
    /// Run a due [`JOB_RETIRE_CREDENTIAL`] job.
    RetireCredential(Job),
    /// A successor with `retire_on_use` authenticated: revoke its predecessor.
    RetirePredecessor {
        /// Tenant it belongs to.
        tenant_id: Uuid,
        /// The successor that was used.
        successor_id: Uuid,
    },
    /// An agent collects the sealed secret of its credential's successor.
    CollectSuccessor {
        /// Tenant it belongs to.
        tenant_id: Uuid,
        /// The credential the agent authenticated with.
        presenting: Uuid,
    },
    /// A security event: every live credential of the agent is revoked at
    /// once; those with a successor here are rotated to it, no overlap.
    CompromiseAgent {
        /// Tenant it belongs to.
        tenant_id: Uuid,
        /// The agent.
        agent_id: Uuid,
        /// Why (required).
        reason: String,
        /// Successors with their secrets' hashes.
        successors: Vec<(Credential, Option<[u8; 32]>)>,
    },
    /// Record that an API key authenticated (last-used time and an event).
    UseCredential {
        /// Tenant it belongs to.
        tenant_id: Uuid,
        /// Credential id.
        id: Uuid,
    },
    /// Record what is due on a tenant's signing key ring (its first key,
    /// a next key published ahead, activations, retirements, removals), or
    /// a manual rotation, and reschedule the tenant's key job.
    SigningKeys(Box<KeyRequest>),
    /// At start: a key job due now for every tenant with signing keys
    /// (bookkeeping, no event).
    ScheduleKeyRotations,
    /// Revoke an access token by its `jti` before it expires (RFC 7009).
    RevokeToken {
        /// Tenant (issuer) of the token.
        tenant_id: Uuid,
        /// Its `jti`.
        jti: String,
        /// Its `exp`: the revocation can be forgotten after this.
        expires_at: Timestamp,
        /// The subject, for the audit trail.
        subject: String,
    },
    /// Record a token issuance, first consuming one-time ids (client
    /// assertion `jti`s): a key already seen refuses the whole command.
    IssueToken {
        /// The issuance event.
        event: Draft,
        /// One-time keys with the time after which they may be forgotten.
        once: Vec<(String, Timestamp)>,
    },
    /// Store a delegation (its delegate must be an agent of the tenant that
    /// is not retired; an agent delegator likewise).
    CreateDelegation(Delegation),
    /// Revoke a delegation: every token issued through it, at any depth,
    /// stops being active.
    RevokeDelegation {
        /// Tenant it must belong to.
        tenant_id: Uuid,
        /// Delegation id.
        id: Uuid,
    },
    /// Trust an external issuer.
    CreateTrustedIssuer(TrustedIssuer),
    /// Stop trusting an external issuer.
    DeleteTrustedIssuer {
        /// Tenant it must belong to.
        tenant_id: Uuid,
        /// Its id.
        id: Uuid,
    },
    /// Set (`Some`) or clear (`None`) the access token lifetime of a tenant
    /// (`class` empty) or of one agent class.
    SetTokenTtl {
        /// Tenant.
        tenant_id: Uuid,
        /// Agent class, or empty for the tenant's default.
        class: String,
        /// Seconds, or `None` to remove the setting.
        ttl_secs: Option<i64>,
    },
    /// Store a policy version (numbered by the store), optionally making it
    /// active at once.
    CreatePolicyVersion {
        /// The version (its number is assigned).
        version: Box<PolicyVersion>,
        /// Activate it in the same commit.
        activate: bool,
    },
    /// Make a version active (`Some`), or roll back (`None`) to the version
    /// active before the current one.
    ActivatePolicyVersion {
        /// Tenant.
        tenant_id: Uuid,
        /// Which version.
        version: Option<i64>,
    },
    /// Create or replace a role.
    PutRole(Role),
    /// Delete a role no grant uses.
    DeleteRole {
        /// Tenant.
        tenant_id: Uuid,
        /// Its name.
        name: String,
    },
    /// Grant a role or single permission.
    CreateGrant(RoleGrant),
    /// Remove a grant.
    DeleteGrant {
        /// Tenant.
        tenant_id: Uuid,
        /// Grant id.
        id: Uuid,
    },
    /// Create or replace directory entities, all or nothing.
    PutEntities {
        /// Tenant.
        tenant_id: Uuid,
        /// Validated entities.
        entities: Vec<DirectoryEntity>,
    },
    /// Remove a directory entity.
    DeleteEntity {
        /// Tenant.
        tenant_id: Uuid,
        /// Which.
        uid: EntityRef,
    },
    /// Record an authorization decision: its audit event, usage and edges
    /// (summed per batch) and any approval step.
    Decide(Box<DecisionRecord>),
    /// Approve or reject a pending approval.
    DecideApproval {
        /// Tenant.
        tenant_id: Uuid,
        /// Approval id.
        id: Uuid,
        /// Approve (`true`) or reject.
        approve: bool,
        /// Who decides (checked for separation of duties in the commit).
        decider: Box<crate::authz::DecidingApprover>,
    },
    /// Register or replace a target database.
    PutDbTarget {
        /// What may be shown of it.
        target: DbTarget,
        /// Its admin connection string, sealed under the master key.
        sealed_url: Vec<u8>,
    },
    /// Remove a target no template or live lease uses.
    DeleteDbTarget {
        /// Tenant.
        tenant_id: Uuid,
        /// Its name.
        name: String,
    },
    /// Create or replace a role template (checked; its target must exist).
    PutDbTemplate(DbTemplate),
    /// Remove a role template no live lease uses.
    DeleteDbTemplate {
        /// Tenant.
        tenant_id: Uuid,
        /// Its name.
        name: String,
    },
    /// Record a lease, `pending`, before its role is made (its agent must be
    /// active).
    BeginLease(Box<Lease>),
    /// The lease's role exists: make it active.
    ActivateLease {
        /// Tenant.
        tenant_id: Uuid,
        /// Lease id.
        id: Uuid,
    },
    /// Extend an active lease (its role's `VALID UNTIL` was moved first).
    RenewLease {
        /// Tenant.
        tenant_id: Uuid,
        /// Lease id.
        id: Uuid,
        /// The end asked for (capped by the lease's maximum).
        expires_at: Timestamp,
    },
    /// Start revoking a lease: `revocation_pending`, its job due now.
    RevokeLease {
        /// Tenant.
        tenant_id: Uuid,
        /// Lease id.
        id: Uuid,
        /// Why.
        reason: EndReason,
    },
    /// The target confirmed a lease's role is gone (finishes its job).
    FinishLeaseRevocation {
        /// Tenant.
        tenant_id: Uuid,
        /// Lease id.
        id: Uuid,
    },
    /// Run a recurring job again at `run_at` (bookkeeping, no event).
    RescheduleJob {
        /// The job as claimed.
        job: Job,
        /// When.
        run_at: Timestamp,
    },
    /// Subscribe an endpoint (its secret sealed under the master key).
    CreateWebhook {
        /// The subscription (checked).
        webhook: Box<Webhook>,
        /// Its signing secret, sealed.
        sealed_secret: Vec<u8>,
    },
    /// Change a subscription (enabling one resumes it where it stopped).
    UpdateWebhook {
        /// Tenant.
        tenant_id: Uuid,
        /// Its id.
        id: Uuid,
        /// What to change.
        changes: WebhookChanges,
    },
    /// Remove a subscription and its delivery log.
    DeleteWebhook {
        /// Tenant.
        tenant_id: Uuid,
        /// Its id.
        id: Uuid,
    },
    /// Replace a subscription's signing secret (the previous one keeps
    /// signing for an overlap).
    RotateWebhookSecret {
        /// Tenant.
        tenant_id: Uuid,
        /// Its id.
        id: Uuid,
        /// The new secret and the previous one, sealed.
        secrets: SealedSecrets,
        /// The sealed secret being replaced, as read: a rotation that
        /// raced another is refused instead of losing a secret.
        replacing: Vec<u8>,
    },
    /// Queue a test event to one subscription.
    TestWebhook(Box<Delivery>),
    /// Turn the audit events after each subscription's cursor into
    /// deliveries (bookkeeping, no event).
    DispatchWebhooks,
    /// Delete settled webhook deliveries past their retention (a bounded
    /// batch; one event per tenant with the count).
    PruneWebhookDeliveries,
    /// Forget one-time `jti`s (client assertions) whose tokens have expired
    /// (a bounded batch; bookkeeping, no event): a replayed assertion is
    /// refused by its `exp` after that, so only the unexpired need keeping.
    PruneSeenJtis,
    /// Record one attempt of a [`crate::JOB_DELIVER_WEBHOOK`] job's delivery.
    RecordWebhookAttempt {
        /// The job as claimed.
        job: Job,
        /// What the attempt got.
        result: AttemptResult,
        /// In `[0, 1)`: spreads the retry.
        jitter: f64,
    },
    /// Only record an event (e.g. a refused request).
    Record(Draft),
}

/// What a command produced.
#[derive(Clone, Debug)]
pub enum Applied {
    /// A tenant.
    Tenant(Tenant),
    /// An admin token.
    AdminToken(AdminToken),
    /// Created agents, in request order.
    Agents(Vec<Agent>),
    /// One agent after the change.
    Agent(Box<Agent>),
    /// Jobs leased to this node.
    Jobs(Vec<Job>),
    /// A credential after the change.
    Credential(Box<Credential>),
    /// A rotation: the predecessor and the successor after the change.
    Rotated(Box<(Credential, Credential)>),
    /// A collected successor and its sealed secret.
    Collected {
        /// The successor.
        credential: Box<Credential>,
        /// Its secret, sealed under the master key.
        sealed_secret: Vec<u8>,
    },
    /// A compromised agent's credentials after the change: those revoked
    /// and the successors issued.
    Compromised {
        /// Revoked.
        revoked: Vec<Credential>,
        /// Issued.
        successors: Vec<Credential>,
    },
    /// A delegation after the change.
    Delegation(Box<Delegation>),
    /// A trusted issuer after the change.
    TrustedIssuer(Box<TrustedIssuer>),
    /// A policy version after the change.
    PolicyVersion(Box<PolicyVersion>),
    /// A role after the change.
    Role(Box<Role>),
    /// A grant after the change.
    Grant(Box<RoleGrant>),
    /// An approval that this approver may not decide (separation of
    /// duties): the refusal was audited; why.
    ApprovalRefused(String),
    /// An approval after the change.
    Approval(Box<Approval>),
    /// A rotation policy after the change, and how many credentials it
    /// scheduled.
    RotationPolicy(Box<RotationPolicy>, usize),
    /// A target database after the change.
    DbTarget(Box<DbTarget>),
    /// A role template after the change.
    DbTemplate(Box<DbTemplate>),
    /// A lease after the change.
    Lease(Box<Lease>),
    /// A tenant's signing keys after the change.
    SigningKeys(Vec<SigningKey>),
    /// A webhook subscription after the change.
    Webhook(Box<Webhook>),
    /// A webhook delivery after the change.
    Delivery(Box<Delivery>),
    /// How many records it touched.
    Count(usize),
    /// Nothing to return.
    Done,
}

pub(crate) fn draft(ctx: &Context, tenant_id: Uuid, action: &str, target_type: &str, target_id: String) -> Draft {
    Draft {
        tenant_id,
        actor: ctx.actor.clone(),
        action: action.to_owned(),
        target_type: target_type.to_owned(),
        target_id,
        outcome: Outcome::Success,
        reason: None,
        request_id: ctx.request_id.clone(),
        details: match &ctx.note {
            Some(note) => json!({ "request": note }),
            None => json!({}),
        },
    }
}

pub(crate) fn with_details(mut d: Draft, extra: Value) -> Draft {
    if let (Value::Object(base), Value::Object(extra)) = (&mut d.details, extra) {
        base.extend(extra);
    }
    d
}

/// What a command attempted, kept so a refusal can be audited after the
/// command itself has been consumed.
#[derive(Debug)]
pub(crate) struct Attempt {
    tenant_id: Uuid,
    action: &'static str,
    target_type: &'static str,
    target_id: String,
    reason: Option<String>,
}

impl Attempt {
    /// The event for a refusal of this attempt by a domain rule.
    pub(crate) fn failure(self, ctx: &Context, err: &StoreError) -> Draft {
        let mut d = with_details(
            draft(ctx, self.tenant_id, self.action, self.target_type, self.target_id),
            json!({ "error": err.to_string() }),
        );
        d.outcome = Outcome::Failure;
        d.reason = self.reason;
        d
    }
}

impl Command {
    /// What this command attempts (`None` for internal bookkeeping).
    pub(crate) fn attempt(&self) -> Option<Attempt> {
        let (tenant_id, action, target_type, target_id, reason) = match self {
            Command::CreateTenant(t) => (t.id, "tenant.create", "tenant", t.name.clone(), None),
            Command::CreateAdminToken { token, .. } => (
                token.tenant_id,
                "admin_token.create",
                "admin_token",
                token.id.to_string(),
                None,
            ),
            Command::RevokeAdminToken { tenant_id, id } => {
                (*tenant_id, "admin_token.revoke", "admin_token", id.to_string(), None)
            }
            Command::CreateAgents { tenant_id, agents } => match agents.as_slice() {
                [one] => (*tenant_id, "agent.create", "agent", one.id.to_string(), None),
                many => (
                    *tenant_id,
                    "agent.create_bulk",
                    "agent",
                    format!("{} agents", many.len()),
                    None,
                ),
            },
            Command::UpdateAgent { tenant_id, id, .. } => (*tenant_id, "agent.update", "agent", id.to_string(), None),
            Command::TransitionAgent {
                tenant_id,
                id,
                transition,
                reason,
            } => (
                *tenant_id,
                transition_action(*transition),
                "agent",
                id.to_string(),
                Some(reason.clone()),
            ),
            Command::CreateCredential { credential, .. } => (
                credential.tenant_id,
                "credential.create",
                "agent",
                credential.agent_id.to_string(),
                None,
            ),
            Command::RevokeCredential { tenant_id, id } => {
                (*tenant_id, "credential.revoke", "credential", id.to_string(), None)
            }
            Command::RotateCredential { successor, .. } => (
                successor.tenant_id,
                "credential.rotate",
                "credential",
                successor.predecessor_id.map(|p| p.to_string()).unwrap_or_default(),
                None,
            ),
            Command::PutRotationPolicy(p) => (
                p.tenant_id,
                "rotation_policy.put",
                "rotation_policy",
                p.scope.to_string(),
                None,
            ),
            Command::DeleteRotationPolicy { tenant_id, scope } => (
                *tenant_id,
                "rotation_policy.delete",
                "rotation_policy",
                scope.to_string(),
                None,
            ),
            Command::CollectSuccessor { tenant_id, presenting } => (
                *tenant_id,
                "credential.successor.collect",
                "credential",
                presenting.to_string(),
                None,
            ),
            Command::CompromiseAgent {
                tenant_id,
                agent_id,
                reason,
                ..
            } => (
                *tenant_id,
                "agent.compromised",
                "agent",
                agent_id.to_string(),
                Some(reason.clone()),
            ),
            Command::PutDbTarget { target, .. } => (
                target.tenant_id,
                "db.target.put",
                "db_target",
                target.name.clone(),
                None,
            ),
            Command::DeleteDbTarget { tenant_id, name } => {
                (*tenant_id, "db.target.delete", "db_target", name.clone(), None)
            }
            Command::PutDbTemplate(t) => (t.tenant_id, "db.template.put", "db_template", t.name.clone(), None),
            Command::DeleteDbTemplate { tenant_id, name } => {
                (*tenant_id, "db.template.delete", "db_template", name.clone(), None)
            }
            Command::BeginLease(l) => (l.tenant_id, "lease.request", "agent", l.agent_id.to_string(), None),
            Command::RenewLease { tenant_id, id, .. } => (*tenant_id, "lease.renew", "lease", id.to_string(), None),
            Command::RevokeLease { tenant_id, id, .. } => (*tenant_id, "lease.revoke", "lease", id.to_string(), None),
            Command::RevokeToken { tenant_id, jti, .. } => (*tenant_id, "token.revoke", "token", jti.clone(), None),
            Command::SetTokenTtl { tenant_id, class, .. } => {
                (*tenant_id, "token_ttl.set", "token_ttl", class.clone(), None)
            }
            Command::CreateDelegation(d) => (d.tenant_id, "delegation.create", "delegation", d.id.to_string(), None),
            Command::RevokeDelegation { tenant_id, id } => {
                (*tenant_id, "delegation.revoke", "delegation", id.to_string(), None)
            }
            Command::CreateTrustedIssuer(t) => (
                t.tenant_id,
                "trusted_issuer.create",
                "trusted_issuer",
                t.issuer.clone(),
                None,
            ),
            Command::DeleteTrustedIssuer { tenant_id, id } => (
                *tenant_id,
                "trusted_issuer.delete",
                "trusted_issuer",
                id.to_string(),
                None,
            ),
            Command::CreatePolicyVersion { version, .. } => (
                version.tenant_id,
                "policy.version.create",
                "policy_version",
                "new".to_owned(),
                None,
            ),
            Command::ActivatePolicyVersion { tenant_id, version } => (
                *tenant_id,
                if version.is_some() {
                    "policy.version.activate"
                } else {
                    "policy.version.rollback"
                },
                "policy_version",
                version.map_or_else(|| "previous".to_owned(), |v| v.to_string()),
                None,
            ),
            Command::PutRole(r) => (r.tenant_id, "role.put", "role", r.name.clone(), None),
            Command::DeleteRole { tenant_id, name } => (*tenant_id, "role.delete", "role", name.clone(), None),
            Command::CreateGrant(g) => (g.tenant_id, "grant.create", "grant", g.id.to_string(), None),
            Command::DeleteGrant { tenant_id, id } => (*tenant_id, "grant.delete", "grant", id.to_string(), None),
            Command::PutEntities { tenant_id, entities } => (
                *tenant_id,
                "directory.put",
                "directory",
                format!("{} entities", entities.len()),
                None,
            ),
            Command::DeleteEntity { tenant_id, uid } => (
                *tenant_id,
                "directory.delete",
                "directory",
                format!("{}::{}", uid.type_name, uid.id),
                None,
            ),
            Command::DecideApproval {
                tenant_id, id, approve, ..
            } => (
                *tenant_id,
                if *approve {
                    "approval.approve"
                } else {
                    "approval.reject"
                },
                "approval",
                id.to_string(),
                None,
            ),
            Command::CreateWebhook { webhook, .. } => (
                webhook.tenant_id,
                "webhook.create",
                "webhook",
                webhook.id.to_string(),
                None,
            ),
            Command::UpdateWebhook { tenant_id, id, .. } => {
                (*tenant_id, "webhook.update", "webhook", id.to_string(), None)
            }
            Command::DeleteWebhook { tenant_id, id } => (*tenant_id, "webhook.delete", "webhook", id.to_string(), None),
            Command::RotateWebhookSecret { tenant_id, id, .. } => {
                (*tenant_id, "webhook.rotate_secret", "webhook", id.to_string(), None)
            }
            Command::TestWebhook(d) => (d.tenant_id, "webhook.test", "webhook", d.webhook_id.to_string(), None),
            Command::ExpireAgent(_)
            | Command::DispatchWebhooks
            | Command::PruneWebhookDeliveries
            | Command::PruneSeenJtis
            | Command::RecordWebhookAttempt { .. }
            | Command::RetryJob { .. }
            | Command::FinishJob(_)
            | Command::RetireCredential(_)
            | Command::RetirePredecessor { .. }
            | Command::Decide(_)
            | Command::ClaimJobs { .. }
            | Command::RenewJobLeases { .. }
            | Command::Record(_)
            | Command::IssueToken { .. }
            | Command::UseCredential { .. }
            | Command::ActivateLease { .. }
            | Command::FinishLeaseRevocation { .. }
            | Command::RescheduleJob { .. }
            | Command::ScheduleKeyRotations => return None,
            Command::SigningKeys(r) => {
                // Only a manual rotation can be refused (a next key waits).
                r.manual?;
                (
                    r.tenant_id,
                    "signing_key.rotate",
                    "signing_key",
                    "ring".to_owned(),
                    r.reason.clone(),
                )
            }
        };
        Some(Attempt {
            tenant_id,
            action,
            target_type,
            target_id,
            reason,
        })
    }
}

fn transition_action(t: Transition) -> &'static str {
    match t {
        Transition::Activate => "agent.activate",
        Transition::Suspend => "agent.suspend",
        Transition::Resume => "agent.resume",
        Transition::Retire => "agent.retire",
    }
}

pub(crate) type Outcome2 = (Applied, Vec<Draft>);

/// Runs one command on `conn` (inside the caller's savepoint).
pub(crate) async fn apply(
    conn: &mut AnyConnection,
    dialect: Dialect,
    now: Timestamp,
    clock: &dyn Clock,
    cmd: Command,
    ctx: &Context,
) -> Result<Outcome2, StoreError> {
    match cmd {
        Command::CreateTenant(t) => create_tenant(conn, t, ctx).await,
        Command::CreateAdminToken { token, secret_hash } => create_admin_token(conn, token, secret_hash, ctx).await,
        Command::RevokeAdminToken { tenant_id, id } => revoke_admin_token(conn, tenant_id, id, now, ctx).await,
        Command::CreateAgents { tenant_id, agents } => {
            create_agents(conn, dialect, tenant_id, agents, clock, ctx).await
        }
        Command::UpdateAgent {
            tenant_id,
            id,
            if_match,
            changes,
        } => update_agent(conn, dialect, tenant_id, id, if_match, changes, now, clock, ctx).await,
        Command::TransitionAgent {
            tenant_id,
            id,
            transition,
            reason,
        } => transition_agent(conn, tenant_id, id, transition, reason, now, clock, ctx, None).await,
        Command::ExpireAgent(job) => expire_agent(conn, job, now, clock, ctx).await,
        Command::ClaimJobs {
            lease_secs,
            limit,
            kinds,
        } => claim_jobs(conn, dialect, now, (lease_secs, limit, kinds)).await,
        Command::RetryJob { job, run_at, error } => retry_job(conn, job, run_at, error, ctx).await,
        Command::RenewJobLeases { jobs, lease_secs } => renew_job_leases(conn, now, &jobs, lease_secs).await,
        Command::CreateCredential {
            credential,
            secret_hash,
        } => credentials::create(conn, credential, secret_hash, clock, ctx).await,
        Command::RevokeCredential { tenant_id, id } => credentials::revoke(conn, tenant_id, id, now, ctx).await,
        Command::UseCredential { tenant_id, id } => credentials::used(conn, tenant_id, id, now, ctx).await,
        Command::RotateCredential {
            successor,
            secret_hash,
            sealed_secret,
            rotation,
            why,
            job,
        } => {
            if let Some(job) = &job {
                finish_job(conn, job).await?;
            }
            let res = credentials::rotate(
                conn,
                successor,
                secret_hash,
                sealed_secret,
                rotation,
                why,
                now,
                clock,
                ctx,
            )
            .await;
            match res {
                // A scheduled rotation of a credential rotated or revoked
                // meanwhile has nothing left to do.
                Err(StoreError::Conflict(_)) if job.is_some() => Ok((Applied::Done, vec![])),
                other => other,
            }
        }
        Command::FinishJob(job) => finish_job(conn, &job).await.map(|()| (Applied::Done, vec![])),
        Command::PutDbTarget { target, sealed_url } => leases::put_target(conn, target, sealed_url, clock, ctx).await,
        Command::DeleteDbTarget { tenant_id, name } => leases::delete_target(conn, tenant_id, name, ctx).await,
        Command::PutDbTemplate(t) => leases::put_template(conn, t, ctx).await,
        Command::DeleteDbTemplate { tenant_id, name } => leases::delete_template(conn, tenant_id, name, ctx).await,
        Command::BeginLease(l) => leases::begin(conn, *l, clock, ctx).await,
        Command::ActivateLease { tenant_id, id } => leases::activate(conn, tenant_id, id, clock, ctx).await,
        Command::RenewLease {
            tenant_id,
            id,
            expires_at,
        } => leases::renew(conn, tenant_id, id, expires_at, now, clock, ctx).await,
        Command::RevokeLease { tenant_id, id, reason } => {
            leases::revoke(conn, tenant_id, id, reason, now, clock, ctx).await
        }
        Command::FinishLeaseRevocation { tenant_id, id } => {
            leases::finish_revocation(conn, tenant_id, id, now, ctx).await
        }
        Command::RescheduleJob { job, run_at } => {
            sqlx::query(
                "UPDATE jobs SET run_at = $1, locked_until = NULL, attempts = 0, last_error = NULL WHERE id = $2",
            )
            .bind(run_at.as_micros())
            .bind(job.id.to_string())
            .execute(&mut *conn)
            .await?;
            Ok((Applied::Done, vec![]))
        }
        Command::PutRotationPolicy(p) => rotation::put(conn, dialect, p, clock, ctx).await,
        Command::DeleteRotationPolicy { tenant_id, scope } => {
            rotation::delete(conn, dialect, tenant_id, scope, clock, ctx).await
        }
        Command::RetireCredential(job) => credentials::retire_job(conn, job, now, ctx).await,
        Command::RetirePredecessor {
            tenant_id,
            successor_id,
        } => credentials::retire_predecessor(conn, tenant_id, successor_id, now, ctx).await,
        Command::CollectSuccessor { tenant_id, presenting } => {
            credentials::collect_successor(conn, tenant_id, presenting, ctx).await
        }
        Command::CompromiseAgent {
            tenant_id,
            agent_id,
            reason,
            successors,
        } => credentials::compromise(conn, tenant_id, agent_id, reason, successors, now, clock, ctx).await,
        Command::SigningKeys(req) => keys::advance(conn, *req, now, clock, ctx).await,
        Command::ScheduleKeyRotations => keys::schedule_all(conn, now, clock).await,
        Command::RevokeToken {
            tenant_id,
            jti,
            expires_at,
            subject,
        } => credentials::revoke_token(conn, tenant_id, jti, expires_at, subject, now, ctx).await,
        Command::IssueToken { event, once } => credentials::issue_token(conn, event, once).await,
        Command::SetTokenTtl {
            tenant_id,
            class,
            ttl_secs,
        } => credentials::set_token_ttl(conn, tenant_id, class, ttl_secs, now, ctx).await,
        Command::CreateDelegation(d) => delegations::create(conn, d, ctx).await,
        Command::RevokeDelegation { tenant_id, id } => delegations::revoke(conn, tenant_id, id, now, ctx).await,
        Command::CreateTrustedIssuer(t) => delegations::create_issuer(conn, t, ctx).await,
        Command::DeleteTrustedIssuer { tenant_id, id } => delegations::delete_issuer(conn, tenant_id, id, ctx).await,
        Command::CreatePolicyVersion { version, activate } => {
            authz::create_version(conn, *version, activate, now, ctx).await
        }
        Command::ActivatePolicyVersion { tenant_id, version } => {
            authz::activate_version(conn, tenant_id, version, now, ctx).await
        }
        Command::PutRole(r) => authz::put_role(conn, r, ctx).await,
        Command::DeleteRole { tenant_id, name } => authz::delete_role(conn, tenant_id, name, ctx).await,
        Command::CreateGrant(g) => authz::create_grant(conn, g, ctx).await,
        Command::DeleteGrant { tenant_id, id } => authz::delete_grant(conn, tenant_id, id, ctx).await,
        Command::PutEntities { tenant_id, entities } => authz::put_entities(conn, tenant_id, entities, now, ctx).await,
        Command::DeleteEntity { tenant_id, uid } => authz::delete_entity(conn, tenant_id, uid, ctx).await,
        Command::Decide(rec) => authz::decide(conn, *rec, now).await,
        Command::DecideApproval {
            tenant_id,
            id,
            approve,
            decider,
        } => authz::decide_approval(conn, tenant_id, id, approve, &decider, now, ctx).await,
        Command::CreateWebhook { webhook, sealed_secret } => webhooks::create(conn, *webhook, sealed_secret, ctx).await,
        Command::UpdateWebhook { tenant_id, id, changes } => {
            webhooks::update(conn, tenant_id, id, changes, now, clock, ctx).await
        }
        Command::DeleteWebhook { tenant_id, id } => webhooks::delete(conn, tenant_id, id, ctx).await,
        Command::RotateWebhookSecret {
            tenant_id,
            id,
            secrets,
            replacing,
        } => webhooks::rotate_secret(conn, tenant_id, id, secrets, &replacing, now, ctx).await,
        Command::TestWebhook(d) => webhooks::test(conn, *d, clock, ctx).await,
        Command::DispatchWebhooks => webhooks::dispatch(conn, now, clock).await,
        Command::PruneWebhookDeliveries => webhooks::prune(conn, now, ctx).await,
        Command::PruneSeenJtis => credentials::prune_seen_jtis(conn, now).await,
        Command::RecordWebhookAttempt { job, result, jitter } => {
            webhooks::record_attempt(conn, job, result, jitter, now, ctx).await
        }
        Command::Record(d) => Ok((Applied::Done, vec![d])),
    }
}

async fn create_tenant(conn: &mut AnyConnection, t: Tenant, ctx: &Context) -> Result<Outcome2, StoreError> {
    let taken = sqlx::query("SELECT 1 FROM tenants WHERE name = $1")
        .bind(t.name.clone())
        .fetch_optional(&mut *conn)
        .await?;
    if taken.is_some() {
        return Err(StoreError::Conflict(format!(
            "a tenant named `{}` already exists",
            t.name
        )));
    }
    sqlx::query("INSERT INTO tenants (id, name, display_name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(t.id.to_string())
        .bind(t.name.clone())
        .bind(t.display_name.clone())
        .bind(t.created_at.as_micros())
        .execute(&mut *conn)
        .await?;
    let d = with_details(
        draft(ctx, t.id, "tenant.create", "tenant", t.id.to_string()),
        json!({ "name": t.name, "display_name": t.display_name }),
    );
    Ok((Applied::Tenant(t), vec![d]))
}

async fn create_admin_token(
    conn: &mut AnyConnection,
    t: AdminToken,
    secret_hash: [u8; 32],
    ctx: &Context,
) -> Result<Outcome2, StoreError> {
    sqlx::query(
        "INSERT INTO admin_tokens (id, tenant_id, name, role, platform, hint, secret_hash, created_at, \
         created_by, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)",
    )
    .bind(t.id.to_string())
    .bind(t.tenant_id.to_string())
    .bind(t.name.clone())
    .bind(t.role.as_str().to_owned())
    .bind(i64::from(t.platform))
    .bind(t.hint.clone())
    .bind(secret_hash.to_vec())
    .bind(t.created_at.as_micros())
    .bind(t.created_by.clone())
    .bind(t.expires_at.map(Timestamp::as_micros))
    .execute(&mut *conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("that token is already registered".into())
        }
        _ => e.into(),
    })?;
    let d = with_details(
        draft(ctx, t.tenant_id, "admin_token.create", "admin_token", t.id.to_string()),
        json!({
            "name": t.name, "role": t.role.as_str(), "platform": t.platform, "hint": t.hint,
            "expires_at": t.expires_at.map(|e| e.to_rfc3339()),
        }),
    );
    Ok((Applied::AdminToken(t), vec![d]))
}

async fn revoke_admin_token(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    now: Timestamp,
    ctx: &Context,
) -> Result<Outcome2, StoreError> {
    let mut token = load_one(
        conn,
        ("admin_tokens", row::TOKEN_COLS, "admin token"),
        tenant_id,
        id,
        row::admin_token,
    )
    .await?;
    if token.revoked_at.is_some() {
        return Err(StoreError::Conflict("the admin token is already revoked".into()));
    }
    sqlx::query("UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2")
        .bind(now.as_micros())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    token.revoked_at = Some(now);
    let d = with_details(
        draft(ctx, tenant_id, "admin_token.revoke", "admin_token", id.to_string()),
        json!({ "name": token.name }),
    );
    Ok((Applied::AdminToken(token), vec![d]))
}

/// Names among `names` already used in the tenant.
async fn taken_names(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: Uuid,
    names: &[&str],
) -> Result<Vec<String>, StoreError> {
    let mut taken = Vec::new();
    for chunk in names.chunks(chunk_rows(1)) {
        let sql = format!(
            "SELECT name FROM agents WHERE tenant_id = {} AND name IN {}",
            marker(dialect, 1),
            in_list(dialect, chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).bind(tenant_id.to_string());
        for n in chunk {
            q = q.bind((*n).to_owned());
        }
        for r in q.fetch_all(&mut *conn).await? {
            taken.push(r.try_get::<String, _>("name")?);
        }
    }
    Ok(taken)
}

/// Ids among `ids` that are agents of the tenant.
async fn existing_agents(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: Uuid,
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, StoreError> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(chunk_rows(1)) {
        let sql = format!(
            "SELECT id FROM agents WHERE tenant_id = {} AND id IN {}",
            marker(dialect, 1),
            in_list(dialect, chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).bind(tenant_id.to_string());
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *conn).await? {
            found.insert(row::uuid(&r, "id")?);
        }
    }
    Ok(found)
}

/// Checks that every agent referenced as parent or dependency exists in the
/// tenant (or in the same request).
async fn check_references<'a>(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: Uuid,
    agents: impl Iterator<Item = &'a Agent> + Clone,
    in_request: &HashSet<Uuid>,
) -> Result<(), StoreError> {
    let mut wanted: Vec<Uuid> = Vec::new();
    for a in agents.clone() {
        if let Some(Parent::Agent(p)) = &a.parent {
            wanted.push(*p);
        }
        wanted.extend(a.depends_on.iter().copied());
    }
    wanted.retain(|id| !in_request.contains(id));
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(());
    }
    let found = existing_agents(conn, dialect, tenant_id, &wanted).await?;
    let many = agents.clone().nth(1).is_some();
    // In a bulk request, name the item: `agents[7].parent`.
    let field = |i: usize, name: &str| {
        if many {
            format!("agents[{i}].{name}")
        } else {
            name.to_owned()
        }
    };
    for (i, a) in agents.enumerate() {
        if let Some(Parent::Agent(p)) = &a.parent
            && !found.contains(p)
            && !in_request.contains(p)
        {
            return Err(AgentError::Invalid {
                field: field(i, "parent"),
                reason: format!("agent `{p}` does not exist in this tenant"),
            }
            .into());
        }
        for d in &a.depends_on {
            if !found.contains(d) && !in_request.contains(d) {
                return Err(AgentError::Invalid {
                    field: field(i, "depends_on"),
                    reason: format!("agent `{d}` does not exist in this tenant"),
                }
                .into());
            }
        }
    }
    Ok(())
}

async fn insert_labels(conn: &mut AnyConnection, dialect: Dialect, agents: &[Agent]) -> Result<(), StoreError> {
    let rows: Vec<(String, String, &String, &String)> = agents
        .iter()
        .flat_map(|a| {
            a.labels
                .iter()
                .map(move |(k, v)| (a.id.to_string(), a.tenant_id.to_string(), k, v))
        })
        .collect();
    for chunk in rows.chunks(chunk_rows(4)) {
        let sql = format!(
            "INSERT INTO agent_labels (agent_id, tenant_id, key, value) VALUES {}",
            placeholders(dialect, chunk.len(), 4, 1)
        );
        let mut q = sqlx::query(&sql);
        for (id, t, k, v) in chunk {
            q = q.bind(id.clone()).bind(t.clone()).bind((*k).clone()).bind((*v).clone());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn create_agents(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: Uuid,
    agents: Vec<Agent>,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Outcome2, StoreError> {
    let mut seen = HashSet::new();
    for a in &agents {
        if !seen.insert(a.name.as_str()) {
            return Err(StoreError::Conflict(format!(
                "the name `{}` appears more than once in the request",
                a.name
            )));
        }
    }
    let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
    if let Some(name) = taken_names(conn, dialect, tenant_id, &names).await?.first() {
        return Err(StoreError::Conflict(format!(
            "an agent named `{name}` already exists in this tenant (names of retired agents stay reserved)"
        )));
    }
    let ids: HashSet<Uuid> = agents.iter().map(|a| a.id).collect();
    check_references(conn, dialect, tenant_id, agents.iter(), &ids).await?;
    for chunk in agents.chunks(chunk_rows(AGENT_NCOLS)) {
        let sql = format!(
            "INSERT INTO agents ({AGENT_COLS}) VALUES {}",
            placeholders(dialect, chunk.len(), AGENT_NCOLS, 1)
        );
        let mut q = sqlx::query(&sql);
        for a in chunk {
            q = row::bind_agent(q, a);
        }
        q.execute(&mut *conn).await?;
    }
    insert_labels(conn, dialect, &agents).await?;
    let expiring: Vec<&Agent> = agents.iter().filter(|a| a.expires_at.is_some()).collect();
    for chunk in expiring.chunks(chunk_rows(5)) {
        let sql = format!(
            "INSERT INTO jobs (id, tenant_id, kind, target_id, run_at) VALUES {}",
            placeholders(dialect, chunk.len(), 5, 1)
        );
        let mut q = sqlx::query(&sql);
        for a in chunk {
            q = q
                .bind(clock.new_id().to_string())
                .bind(tenant_id.to_string())
                .bind(JOB_EXPIRE_AGENT)
                .bind(a.id.to_string())
                .bind(a.expires_at.map(Timestamp::as_micros).unwrap_or_default());
        }
        q.execute(&mut *conn).await?;
    }
    let drafts = agents
        .iter()
        .map(|a| {
            with_details(
                draft(ctx, tenant_id, "agent.create", "agent", a.id.to_string()),
                json!({
                    "name": a.name, "owner": a.owner, "environment": a.environment.map(|e| e.as_str()),
                    "class": a.class, "expires_at": a.expires_at.map(|e| e.to_rfc3339()),
                }),
            )
        })
        .collect();
    Ok((Applied::Agents(agents), drafts))
}

/// One record of a tenant by id, from `table` (its `cols`, decoded by
/// `decode`), or `NotFound` naming `what`.
pub(crate) async fn load_one<T>(
    conn: &mut AnyConnection,
    (table, cols, what): (&str, &str, &'static str),
    tenant_id: Uuid,
    id: Uuid,
    decode: fn(&sqlx::any::AnyRow) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let sql = format!("SELECT {cols} FROM {table} WHERE tenant_id = $1 AND id = $2");
    match sqlx::query(&sql)
        .bind(tenant_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
    {
        Some(r) => decode(&r),
        None => Err(StoreError::NotFound {
            what,
            id: id.to_string(),
        }),
    }
}

pub(crate) async fn load_agent(conn: &mut AnyConnection, tenant_id: Uuid, id: Uuid) -> Result<Agent, StoreError> {
    load_one(conn, ("agents", AGENT_COLS, "agent"), tenant_id, id, row::agent).await
}

/// Writes every mutable column of `a`, if the stored version is still `old_version`.
pub(crate) async fn save_agent(conn: &mut AnyConnection, a: &Agent, old_version: i64) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE agents SET name = $1, owner = $2, purpose = $3, environment = $4, team = $5, \
         labels = $6, capabilities = $7, class = $8, depends_on = $9, status = $10, \
         status_reason = $11, status_changed_at = $12, status_changed_by = $13, updated_at = $14, \
         version = $15, tokens_not_before = $16, grants = $17 WHERE id = $18 AND tenant_id = $19 AND version = $20",
    )
    .bind(a.name.clone())
    .bind(a.owner.clone())
    .bind(a.purpose.clone())
    .bind(a.environment.map(|e| e.as_str().to_owned()))
    .bind(a.team.clone())
    .bind(row::to_json(&a.labels))
    .bind(row::to_json(&a.capabilities))
    .bind(a.class.clone())
    .bind(row::to_json(&a.depends_on))
    .bind(a.status.as_str().to_owned())
    .bind(a.status_reason.clone())
    .bind(a.status_changed_at.as_micros())
    .bind(a.status_changed_by.clone())
    .bind(a.updated_at.as_micros())
    .bind(a.version)
    .bind(a.tokens_not_before.map(Timestamp::as_micros))
    .bind(row::to_json(&a.grants))
    .bind(a.id.to_string())
    .bind(a.tenant_id.to_string())
    .bind(old_version)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::PreconditionFailed { current: old_version })
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site per command; a struct would only rename them"
)]
async fn update_agent(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: Uuid,
    id: Uuid,
    if_match: Option<i64>,
    changes: AgentChanges,
    now: Timestamp,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Outcome2, StoreError> {
    let mut agent = load_agent(conn, tenant_id, id).await?;
    let old_class = agent.class.clone();
    if let Some(v) = if_match
        && v != agent.version
    {
        return Err(StoreError::PreconditionFailed { current: agent.version });
    }
    if agent.status == Status::Retired {
        return Err(StoreError::Conflict(
            "the agent is retired; its record is kept read-only for forensics".into(),
        ));
    }
    let old_version = agent.version;
    let old_name = agent.name.clone();
    let changed = changed_fields(&changes);
    let labels_changed = changes.labels.is_some();
    changes.apply(&mut agent, now)?;
    if agent.name != old_name
        && !taken_names(conn, dialect, tenant_id, &[agent.name.as_str()])
            .await?
            .is_empty()
    {
        return Err(StoreError::Conflict(format!(
            "an agent named `{}` already exists in this tenant",
            agent.name
        )));
    }
    check_references(conn, dialect, tenant_id, std::iter::once(&agent), &HashSet::new()).await?;
    save_agent(conn, &agent, old_version).await?;
    if labels_changed {
        sqlx::query("DELETE FROM agent_labels WHERE agent_id = $1")
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
        insert_labels(conn, dialect, std::slice::from_ref(&agent)).await?;
    }
    if agent.class != old_class {
        // Another class may mean another rotation policy.
        rotation::reschedule(conn, dialect, tenant_id, &Scope::Agent(id), clock).await?;
    }
    let d = with_details(
        draft(ctx, tenant_id, "agent.update", "agent", id.to_string()),
        json!({ "changed": changed, "version": agent.version }),
    );
    Ok((Applied::Agent(Box::new(agent)), vec![d]))
}

fn changed_fields(c: &AgentChanges) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut add = |present: bool, name: &'static str| {
        if present {
            v.push(name);
        }
    };
    add(c.name.is_some(), "name");
    add(c.owner.is_some(), "owner");
    add(c.purpose.is_some(), "purpose");
    add(c.environment.is_some(), "environment");
    add(c.team.is_some(), "team");
    add(c.labels.is_some(), "labels");
    add(c.capabilities.is_some(), "capabilities");
    add(c.class.is_some(), "class");
    add(c.depends_on.is_some(), "depends_on");
    v
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site per command; a struct would only rename them"
)]
async fn transition_agent(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    transition: Transition,
    reason: String,
    now: Timestamp,
    clock: &dyn Clock,
    ctx: &Context,
    cause: Option<&str>,
) -> Result<Outcome2, StoreError> {
    let mut agent = load_agent(conn, tenant_id, id).await?;
    let from = agent.status;
    let to = from.apply(transition)?;
    let old_version = agent.version;
    agent.status = to;
    agent.status_reason = Some(reason.clone());
    agent.status_changed_at = now;
    agent.status_changed_by = ctx.actor.reference();
    agent.updated_at = now;
    agent.version += 1;
    // Suspension is for investigations: the tokens issued until now must not
    // come back with a resumption. Cut at both ends, so a token issued
    // while the suspension was being committed dies at the resumption.
    if matches!(transition, Transition::Suspend | Transition::Resume) {
        agent.tokens_not_before = Some(now);
    }
    save_agent(conn, &agent, old_version).await?;
    if to == Status::Retired {
        // Retirement is terminal: nothing scheduled for the agent may run.
        sqlx::query("DELETE FROM jobs WHERE target_id = $1 AND kind = $2")
            .bind(id.to_string())
            .bind(JOB_EXPIRE_AGENT)
            .execute(&mut *conn)
            .await?;
    }
    // Retirement revokes every credential (DESIGN C1); suspension only makes
    // them unusable while it lasts (checked at authentication).
    let revoked = if to == Status::Retired {
        credentials::revoke_all(conn, tenant_id, id, now).await?
    } else {
        0
    };
    // Neither may use a database role: its leases start their revocation.
    let leases = if matches!(to, Status::Suspended | Status::Retired) {
        leases::revoke_for_agent(conn, tenant_id, id, now, clock, ctx).await?
    } else {
        vec![]
    };
    let mut d = with_details(
        draft(ctx, tenant_id, transition_action(transition), "agent", id.to_string()),
        json!({ "from": from.as_str(), "to": to.as_str(), "cause": cause, "credentials_revoked": revoked,
                "leases_revoked": leases.len() }),
    );
    d.reason = Some(reason);
    let mut drafts = vec![d];
    drafts.extend(leases);
    Ok((Applied::Agent(Box::new(agent)), drafts))
}

async fn expire_agent(
    conn: &mut AnyConnection,
    job: Job,
    now: Timestamp,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Outcome2, StoreError> {
    let id = take_job(conn, &job).await?;
    let agent = match load_agent(conn, job.tenant_id, id).await {
        Ok(a) => a,
        Err(StoreError::NotFound { .. }) => return Ok((Applied::Done, vec![])),
        Err(e) => return Err(e),
    };
    if agent.status == Status::Retired {
        return Ok((Applied::Agent(Box::new(agent)), vec![]));
    }
    transition_agent(
        conn,
        job.tenant_id,
        id,
        Transition::Retire,
        "time to live ended".into(),
        now,
        clock,
        ctx,
        Some("ttl"),
    )
    .await
}

/// Finishes a job that is about to run (in the transaction of its work)
/// and returns the id it targets.
pub(crate) async fn take_job(conn: &mut AnyConnection, job: &Job) -> Result<Uuid, StoreError> {
    finish_job(conn, job).await?;
    Uuid::parse_str(&job.target_id).map_err(|e| StoreError::Corrupt(format!("job target: {e}")))
}

/// Removes a finished job. Like [`retry_job`], only under the claim that
/// ran it: the claim count (`attempts`) fences out a worker whose lease
/// lapsed and whose job another worker has claimed since.
async fn finish_job(conn: &mut AnyConnection, job: &Job) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM jobs WHERE id = $1 AND attempts = $2")
        .bind(job.id.to_string())
        .bind(job.attempts)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn retry_job(
    conn: &mut AnyConnection,
    job: Job,
    run_at: Timestamp,
    error: String,
    ctx: &Context,
) -> Result<Outcome2, StoreError> {
    let done = sqlx::query(
        "UPDATE jobs SET run_at = $1, locked_until = NULL, last_error = $2 WHERE id = $3 AND attempts = $4",
    )
    .bind(run_at.as_micros())
    .bind(error.clone())
    .bind(job.id.to_string())
    .bind(job.attempts)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        // Finished meanwhile (another node, or the target went away), or
        // claimed again after this claim's lease lapsed: that claim decides.
        return Ok((Applied::Done, vec![]));
    }
    let mut d = with_details(
        draft(ctx, job.tenant_id, "job.retry", "job", job.id.to_string()),
        json!({
            "kind": job.kind, "target_id": job.target_id, "attempts": job.attempts,
            "error": error, "next_run_at": run_at.to_rfc3339(),
        }),
    );
    d.outcome = Outcome::Failure;
    Ok((Applied::Done, vec![d]))
}

async fn renew_job_leases(
    conn: &mut AnyConnection,
    now: Timestamp,
    jobs: &[Job],
    lease_secs: i64,
) -> Result<Outcome2, StoreError> {
    // A job finished meanwhile is gone, one claimed again after this claim
    // lapsed has a higher `attempts`, one rescheduled has no lease: none of
    // them is touched.
    for job in jobs {
        sqlx::query("UPDATE jobs SET locked_until = $1 WHERE id = $2 AND attempts = $3 AND locked_until IS NOT NULL")
            .bind(now.plus_secs(lease_secs).as_micros())
            .bind(job.id.to_string())
            .bind(job.attempts)
            .execute(&mut *conn)
            .await?;
    }
    Ok((Applied::Done, vec![]))
}

async fn claim_jobs(
    conn: &mut AnyConnection,
    dialect: Dialect,
    now: Timestamp,
    (lease_secs, limit, kinds): (i64, i64, JobKinds),
) -> Result<Outcome2, StoreError> {
    // Dialect split: PostgreSQL skips rows other nodes have locked, so each due
    // job is leased to exactly one node; SQLite has one node and one writer.
    let lock = match dialect {
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        Dialect::Sqlite => "",
    };
    let (kind, bound) = kinds.condition(4);
    let sql = format!(
        "UPDATE jobs SET locked_until = $1, attempts = attempts + 1 WHERE id IN \
         (SELECT id FROM jobs WHERE run_at <= $2 AND (locked_until IS NULL OR locked_until < $2){kind} \
         ORDER BY run_at LIMIT $3{lock}) RETURNING id, tenant_id, kind, target_id, run_at, attempts"
    );
    let mut q = sqlx::query(&sql)
        .bind(now.plus_secs(lease_secs).as_micros())
        .bind(now.as_micros())
        .bind(limit);
    if let Some(k) = bound {
        q = q.bind(k);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let jobs = rows.iter().map(row::job).collect::<Result<Vec<_>, _>>()?;
    Ok((Applied::Jobs(jobs), vec![]))
}
