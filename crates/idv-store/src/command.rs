//! State-changing commands and their dispatch; what each does lives in
//! the module of its concept. Each runs inside the writer's batch transaction
//! (in its own savepoint): load, decide with `idv-core`, persist, and return
//! the audit drafts that the writer appends to the chain in the same commit.

use idv_core::access_request::AccessRequest;
use idv_core::admin_token::AdminToken;
use idv_core::agent::{Agent, AgentChanges, OwnerReassignment};
use idv_core::approval::Approval;
use idv_core::audit::{Action, Actor, Draft, Outcome, TargetType};
use idv_core::credential::{Credential, Revocation, Rotation};
use idv_core::db_template::{DbTarget, DbTemplate};
use idv_core::delegation::Delegation;
use idv_core::directory::{DirectoryEntity, EntityRef};
use idv_core::keyring::SigningKey;
use idv_core::lease::{EndReason, Lease};
use idv_core::lifecycle::Transition;
use idv_core::policy_version::PolicyVersion;
use idv_core::role::{Role, RoleGrant};
use idv_core::rotation::{RotationPolicy, Scope};
use idv_core::session::Session;
use idv_core::sso::SsoConfig;
use idv_core::tenant::Tenant;
use idv_core::trusted_issuer::TrustedIssuer;
use idv_core::webhook::{AttemptResult, Delivery, Webhook};
use idv_core::{Clock, Timestamp};
use serde_json::{Value, json};
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::access_requests::{self, Decision};
use crate::audit::{draft, with_details};
use crate::authz::{self, DecisionRecord};
use crate::jobs::{Job, JobKinds};
use crate::keys::KeyRequest;
use crate::webhooks::{SealedSecrets, WebhookChanges};
use crate::{Dialect, StoreError};
use crate::{
    admin_tokens, agents, credentials, delegations, jobs, keys, leases, rotation, sessions, sso, tenants, webhooks,
};

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
    /// Open a console session.
    CreateSession {
        /// The session.
        session: Box<Session>,
        /// Keyed hash of the cookie's secret.
        secret_hash: [u8; 32],
    },
    /// Record activity on a console session (bookkeeping: no event).
    TouchSession {
        /// Session id.
        id: Uuid,
        /// When.
        at: Timestamp,
    },
    /// End a console session.
    EndSession {
        /// Tenant it must belong to.
        tenant_id: Uuid,
        /// Session id.
        id: Uuid,
        /// Why (`sign_out`, …).
        reason: String,
    },
    /// Set a tenant's single sign-on provider.
    PutSso {
        /// The provider.
        config: Box<SsoConfig>,
        /// Its client secret, sealed.
        sealed_secret: Vec<u8>,
    },
    /// Remove a tenant's single sign-on provider.
    DeleteSso {
        /// The tenant.
        tenant_id: Uuid,
    },
    /// Record an access request.
    CreateAccessRequest(Box<AccessRequest>),
    /// Approve, deny or withdraw an access request.
    DecideAccessRequest {
        /// Tenant.
        tenant_id: Uuid,
        /// The request.
        id: Uuid,
        /// What, by whom.
        decision: Decision,
    },
    /// Move every live agent of one owner to another.
    ReassignOwner {
        /// Tenant the agents belong to.
        tenant_id: Uuid,
        /// From whom, to whom.
        reassignment: OwnerReassignment,
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
    /// Run a due [`crate::JOB_EXPIRE_AGENT`] job.
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
        /// The [`crate::JOB_ROTATE_CREDENTIAL`] job this runs, finished in the same
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
    /// Run a due [`crate::JOB_RETIRE_CREDENTIAL`] job.
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
    /// Send a delivery's event again.
    RedeliverWebhook {
        /// The new delivery.
        delivery: Box<Delivery>,
        /// The delivery sent before.
        of: Uuid,
    },
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
    /// A console session.
    Session(Box<Session>),
    /// A single sign-on provider.
    Sso(Box<SsoConfig>),
    /// An access request after the change.
    AccessRequest(Box<AccessRequest>),
    /// A decision this person may not take (separation of duties): the
    /// refusal was audited; why.
    AccessRequestRefused(String),
}

/// What a command attempted, kept so a refusal can be audited after the
/// command itself has been consumed.
#[derive(Debug)]
pub(crate) struct Attempt {
    tenant_id: Uuid,
    action: Action,
    target_type: TargetType,
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
            Command::CreateTenant(t) => (t.id, Action::TenantCreate, TargetType::Tenant, t.name.clone(), None),
            Command::CreateAdminToken { token, .. } => (
                token.tenant_id,
                Action::AdminTokenCreate,
                TargetType::AdminToken,
                token.id.to_string(),
                None,
            ),
            Command::RevokeAdminToken { tenant_id, id } => (
                *tenant_id,
                Action::AdminTokenRevoke,
                TargetType::AdminToken,
                id.to_string(),
                None,
            ),
            Command::CreateAgents { tenant_id, agents } => match agents.as_slice() {
                [one] => (
                    *tenant_id,
                    Action::AgentCreate,
                    TargetType::Agent,
                    one.id.to_string(),
                    None,
                ),
                many => (
                    *tenant_id,
                    Action::AgentCreateBulk,
                    TargetType::Agent,
                    format!("{} agents", many.len()),
                    None,
                ),
            },
            Command::UpdateAgent { tenant_id, id, .. } => {
                (*tenant_id, Action::AgentUpdate, TargetType::Agent, id.to_string(), None)
            }
            Command::ReassignOwner {
                tenant_id,
                reassignment,
            } => (
                *tenant_id,
                Action::AgentReassignOwner,
                TargetType::Agent,
                format!("owner:{}", reassignment.from),
                None,
            ),
            Command::TransitionAgent {
                tenant_id,
                id,
                transition,
                reason,
            } => (
                *tenant_id,
                agents::transition_action(*transition),
                TargetType::Agent,
                id.to_string(),
                Some(reason.clone()),
            ),
            Command::CreateCredential { credential, .. } => (
                credential.tenant_id,
                Action::CredentialCreate,
                TargetType::Agent,
                credential.agent_id.to_string(),
                None,
            ),
            Command::RevokeCredential { tenant_id, id } => (
                *tenant_id,
                Action::CredentialRevoke,
                TargetType::Credential,
                id.to_string(),
                None,
            ),
            Command::RotateCredential { successor, .. } => (
                successor.tenant_id,
                Action::CredentialRotate,
                TargetType::Credential,
                successor.predecessor_id.map(|p| p.to_string()).unwrap_or_default(),
                None,
            ),
            Command::PutRotationPolicy(p) => (
                p.tenant_id,
                Action::RotationPolicyPut,
                TargetType::RotationPolicy,
                p.scope.to_string(),
                None,
            ),
            Command::DeleteRotationPolicy { tenant_id, scope } => (
                *tenant_id,
                Action::RotationPolicyDelete,
                TargetType::RotationPolicy,
                scope.to_string(),
                None,
            ),
            Command::CollectSuccessor { tenant_id, presenting } => (
                *tenant_id,
                Action::CredentialSuccessorCollect,
                TargetType::Credential,
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
                Action::AgentCompromised,
                TargetType::Agent,
                agent_id.to_string(),
                Some(reason.clone()),
            ),
            Command::PutDbTarget { target, .. } => (
                target.tenant_id,
                Action::DbTargetPut,
                TargetType::DbTarget,
                target.name.clone(),
                None,
            ),
            Command::DeleteDbTarget { tenant_id, name } => (
                *tenant_id,
                Action::DbTargetDelete,
                TargetType::DbTarget,
                name.clone(),
                None,
            ),
            Command::PutDbTemplate(t) => (
                t.tenant_id,
                Action::DbTemplatePut,
                TargetType::DbTemplate,
                t.name.clone(),
                None,
            ),
            Command::DeleteDbTemplate { tenant_id, name } => (
                *tenant_id,
                Action::DbTemplateDelete,
                TargetType::DbTemplate,
                name.clone(),
                None,
            ),
            Command::BeginLease(l) => (
                l.tenant_id,
                Action::LeaseRequest,
                TargetType::Agent,
                l.agent_id.to_string(),
                None,
            ),
            Command::RenewLease { tenant_id, id, .. } => {
                (*tenant_id, Action::LeaseRenew, TargetType::Lease, id.to_string(), None)
            }
            Command::RevokeLease { tenant_id, id, .. } => {
                (*tenant_id, Action::LeaseRevoke, TargetType::Lease, id.to_string(), None)
            }
            Command::RevokeToken { tenant_id, jti, .. } => {
                (*tenant_id, Action::TokenRevoke, TargetType::Token, jti.clone(), None)
            }
            Command::SetTokenTtl { tenant_id, class, .. } => (
                *tenant_id,
                Action::TokenTtlSet,
                TargetType::TokenTtl,
                class.clone(),
                None,
            ),
            Command::CreateDelegation(d) => (
                d.tenant_id,
                Action::DelegationCreate,
                TargetType::Delegation,
                d.id.to_string(),
                None,
            ),
            Command::RevokeDelegation { tenant_id, id } => (
                *tenant_id,
                Action::DelegationRevoke,
                TargetType::Delegation,
                id.to_string(),
                None,
            ),
            Command::CreateTrustedIssuer(t) => (
                t.tenant_id,
                Action::TrustedIssuerCreate,
                TargetType::TrustedIssuer,
                t.issuer.clone(),
                None,
            ),
            Command::DeleteTrustedIssuer { tenant_id, id } => (
                *tenant_id,
                Action::TrustedIssuerDelete,
                TargetType::TrustedIssuer,
                id.to_string(),
                None,
            ),
            Command::CreatePolicyVersion { version, .. } => (
                version.tenant_id,
                Action::PolicyVersionCreate,
                TargetType::PolicyVersion,
                "new".to_owned(),
                None,
            ),
            Command::ActivatePolicyVersion { tenant_id, version } => (
                *tenant_id,
                if version.is_some() {
                    Action::PolicyVersionActivate
                } else {
                    Action::PolicyVersionRollback
                },
                TargetType::PolicyVersion,
                version.map_or_else(|| "previous".to_owned(), |v| v.to_string()),
                None,
            ),
            Command::PutRole(r) => (r.tenant_id, Action::RolePut, TargetType::Role, r.name.clone(), None),
            Command::DeleteRole { tenant_id, name } => {
                (*tenant_id, Action::RoleDelete, TargetType::Role, name.clone(), None)
            }
            Command::CreateGrant(g) => (
                g.tenant_id,
                Action::GrantCreate,
                TargetType::Grant,
                g.id.to_string(),
                None,
            ),
            Command::DeleteGrant { tenant_id, id } => {
                (*tenant_id, Action::GrantDelete, TargetType::Grant, id.to_string(), None)
            }
            Command::PutEntities { tenant_id, entities } => (
                *tenant_id,
                Action::DirectoryPut,
                TargetType::Directory,
                format!("{} entities", entities.len()),
                None,
            ),
            Command::DeleteEntity { tenant_id, uid } => (
                *tenant_id,
                Action::DirectoryDelete,
                TargetType::Directory,
                format!("{}::{}", uid.type_name, uid.id),
                None,
            ),
            Command::DecideApproval {
                tenant_id, id, approve, ..
            } => (
                *tenant_id,
                if *approve {
                    Action::ApprovalApprove
                } else {
                    Action::ApprovalReject
                },
                TargetType::Approval,
                id.to_string(),
                None,
            ),
            Command::CreateWebhook { webhook, .. } => (
                webhook.tenant_id,
                Action::WebhookCreate,
                TargetType::Webhook,
                webhook.id.to_string(),
                None,
            ),
            Command::UpdateWebhook { tenant_id, id, .. } => (
                *tenant_id,
                Action::WebhookUpdate,
                TargetType::Webhook,
                id.to_string(),
                None,
            ),
            Command::DeleteWebhook { tenant_id, id } => (
                *tenant_id,
                Action::WebhookDelete,
                TargetType::Webhook,
                id.to_string(),
                None,
            ),
            Command::RotateWebhookSecret { tenant_id, id, .. } => (
                *tenant_id,
                Action::WebhookRotateSecret,
                TargetType::Webhook,
                id.to_string(),
                None,
            ),
            Command::PutSso { config, .. } => (
                config.tenant_id,
                Action::SsoPut,
                TargetType::Sso,
                "oidc".to_owned(),
                None,
            ),
            Command::DeleteSso { tenant_id } => {
                (*tenant_id, Action::SsoDelete, TargetType::Sso, "oidc".to_owned(), None)
            }
            Command::CreateAccessRequest(r) => (
                r.tenant_id,
                Action::AccessRequestCreate,
                TargetType::AccessRequest,
                r.id.to_string(),
                None,
            ),
            Command::DecideAccessRequest {
                tenant_id,
                id,
                decision,
            } => (
                *tenant_id,
                decision.verdict.action(),
                TargetType::AccessRequest,
                id.to_string(),
                None,
            ),
            Command::CreateSession { session, .. } => (
                session.tenant_id,
                Action::ConsoleSignIn,
                TargetType::ConsoleSession,
                session.id.to_string(),
                None,
            ),
            Command::EndSession { tenant_id, id, reason } => (
                *tenant_id,
                if reason == sessions::SIGN_OUT {
                    Action::ConsoleSignOut
                } else {
                    Action::ConsoleSessionEnd
                },
                TargetType::ConsoleSession,
                id.to_string(),
                None,
            ),
            Command::TestWebhook(d) => (
                d.tenant_id,
                Action::WebhookTest,
                TargetType::Webhook,
                d.webhook_id.to_string(),
                None,
            ),
            Command::RedeliverWebhook { delivery, .. } => (
                delivery.tenant_id,
                Action::WebhookRedeliver,
                TargetType::Webhook,
                delivery.webhook_id.to_string(),
                None,
            ),
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
            | Command::TouchSession { .. }
            | Command::ScheduleKeyRotations => return None,
            Command::SigningKeys(r) => {
                // Only a manual rotation can be refused (a next key waits).
                r.manual?;
                (
                    r.tenant_id,
                    Action::SigningKeyRotate,
                    TargetType::SigningKey,
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

impl Applied {
    /// The error for a command answered with another shape than its own: a
    /// bug in the store's dispatch, never a refusal.
    pub(crate) fn mismatch(&self, write: &str) -> StoreError {
        StoreError::Corrupt(format!("`{write}` was answered with an unexpected result"))
    }
}

/// Typed writes: one [`crate::Store`] method per command, which runs it
/// (through the group-commit writer, like [`crate::Store::execute`]) and
/// returns what that command answers, so callers never match on
/// [`Applied`]. Each concept module declares the writes of its commands,
/// and with them the one conversion from [`Applied`] per command:
///
/// - `fn name(args) -> Output { command => pattern => value, … }`, or
/// - `fn name(args) { command }` for a write that answers nothing.
///
/// Every method also takes the [`Context`] (who asks) last.
macro_rules! typed_writes {
    () => {};
    (
        $(#[$meta:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $out:ty { $cmd:expr => $($pat:pat => $res:expr),+ $(,)? }
        $($rest:tt)*
    ) => {
        impl crate::Store {
            $(#[$meta])*
            pub async fn $name(&self, $($arg: $ty,)* ctx: crate::Context) -> Result<$out, crate::StoreError> {
                match self.execute($cmd, ctx).await? {
                    $($pat => Ok($res),)+
                    other => Err(other.mismatch(stringify!($name))),
                }
            }
        }
        crate::command::typed_writes!($($rest)*);
    };
    (
        $(#[$meta:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) { $cmd:expr }
        $($rest:tt)*
    ) => {
        impl crate::Store {
            $(#[$meta])*
            pub async fn $name(&self, $($arg: $ty,)* ctx: crate::Context) -> Result<(), crate::StoreError> {
                self.execute($cmd, ctx).await.map(drop)
            }
        }
        crate::command::typed_writes!($($rest)*);
    };
}

pub(crate) use typed_writes;

/// What a command did: its result for the caller, and the audit events the
/// writer appends to the chain in the same commit.
pub(crate) type Effect = (Applied, Vec<Draft>);

/// Runs one command on `conn` (inside the caller's savepoint).
pub(crate) async fn apply(
    conn: &mut AnyConnection,
    dialect: Dialect,
    now: Timestamp,
    clock: &dyn Clock,
    cmd: Command,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    match cmd {
        Command::CreateTenant(t) => tenants::create(conn, t, ctx).await,
        Command::CreateAdminToken { token, secret_hash } => admin_tokens::create(conn, token, secret_hash, ctx).await,
        Command::RevokeAdminToken { tenant_id, id } => admin_tokens::revoke(conn, tenant_id, id, now, ctx).await,
        Command::CreateAgents { tenant_id, agents } => {
            agents::create(conn, dialect, tenant_id, agents, clock, ctx).await
        }
        Command::UpdateAgent {
            tenant_id,
            id,
            if_match,
            changes,
        } => agents::update(conn, dialect, tenant_id, id, if_match, changes, now, clock, ctx).await,
        Command::ReassignOwner {
            tenant_id,
            reassignment,
        } => agents::reassign_owner(conn, tenant_id, reassignment, now, ctx).await,
        Command::TransitionAgent {
            tenant_id,
            id,
            transition,
            reason,
        } => agents::transition(conn, tenant_id, id, transition, reason, now, clock, ctx, None).await,
        Command::ExpireAgent(job) => agents::expire(conn, job, now, clock, ctx).await,
        Command::ClaimJobs {
            lease_secs,
            limit,
            kinds,
        } => jobs::claim(conn, dialect, now, (lease_secs, limit, kinds)).await,
        Command::RetryJob { job, run_at, error } => jobs::retry(conn, job, run_at, error, ctx).await,
        Command::RenewJobLeases { jobs, lease_secs } => jobs::renew_leases(conn, now, &jobs, lease_secs).await,
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
                jobs::finish(conn, job).await?;
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
        Command::FinishJob(job) => jobs::finish(conn, &job).await.map(|()| (Applied::Done, vec![])),
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
        Command::RescheduleJob { job, run_at } => jobs::reschedule(conn, &job, run_at).await,
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
        Command::RedeliverWebhook { delivery, of } => webhooks::redeliver(conn, *delivery, of, clock, ctx).await,
        Command::DispatchWebhooks => webhooks::dispatch(conn, now, clock).await,
        Command::PruneWebhookDeliveries => webhooks::prune(conn, now, ctx).await,
        Command::PruneSeenJtis => credentials::prune_seen_jtis(conn, now).await,
        Command::RecordWebhookAttempt { job, result, jitter } => {
            webhooks::record_attempt(conn, job, result, jitter, now, ctx).await
        }
        Command::PutSso { config, sealed_secret } => sso::put(conn, *config, sealed_secret, ctx).await,
        Command::DeleteSso { tenant_id } => sso::delete(conn, tenant_id, ctx).await,
        Command::CreateAccessRequest(r) => access_requests::create(conn, *r, ctx).await,
        Command::DecideAccessRequest {
            tenant_id,
            id,
            decision,
        } => access_requests::decide(conn, tenant_id, id, decision, now, ctx).await,
        Command::CreateSession { session, secret_hash } => sessions::create(conn, *session, secret_hash, ctx).await,
        Command::TouchSession { id, at } => sessions::touch(conn, id, at).await,
        Command::EndSession { tenant_id, id, reason } => sessions::end(conn, tenant_id, id, reason, now, ctx).await,
        Command::Record(d) => Ok((Applied::Done, vec![d])),
    }
}
