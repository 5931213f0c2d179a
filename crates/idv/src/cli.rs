//! The command line: `idv serve` and the admin API client commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// IdentityVault: identity and access management for AI agents.
#[derive(Debug, Parser)]
#[command(name = "idv", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Tenants (platform operators).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Admin API tokens.
    #[command(subcommand, name = "admin-token")]
    AdminToken(AdminTokenCommand),
    /// Agents: register, govern, export.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Agent credentials: client secrets, public keys, API keys.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Cedar policy versions: upload, validate, activate, roll back, test.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Roles: named sets of actions.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Grants of roles or single actions to agents, classes and groups.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Directory entities policies refer to (humans, groups, resources).
    #[command(subcommand)]
    Entity(EntityCommand),
    /// One authorization decision (AuthZEN evaluation).
    Decide(DecideArgs),
    /// Human approval of actions a policy marked as needing it.
    #[command(subcommand)]
    Approval(ApprovalCommand),
    /// Scheduled credential rotation for the tenant, a class or an agent.
    #[command(subcommand)]
    RotationPolicy(RotationPolicyCommand),
    /// Dynamic PostgreSQL credentials: target databases, role templates,
    /// and (as an agent) credentials from a template.
    #[command(subcommand)]
    Db(DbCommand),
    /// Leases on dynamic database roles: list, renew, revoke.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Token signing keys: list them, rotate now.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Outbound webhooks: subscriptions to the tenant's events, signed per
    /// Standard Webhooks, with a delivery log.
    #[command(subcommand)]
    Webhook(WebhookCommand),
}

/// `idv webhook …`.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Subscribe an endpoint; prints its signing secret once.
    Create {
        /// Where to POST (`https://…`; `http://` to loopback by default).
        #[arg(long)]
        url: String,
        /// Event pattern: a type (`credential.rotated`), a prefix
        /// (`agent.*`) or `*` (repeatable).
        #[arg(long = "event", value_name = "PATTERN", required = true)]
        events: Vec<String>,
        /// For people.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// The tenant's subscriptions.
    List {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one subscription.
    Get {
        /// Webhook id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change a subscription.
    Update {
        /// Webhook id.
        id: String,
        /// A new endpoint.
        #[arg(long)]
        url: Option<String>,
        /// Replacement event patterns (repeatable).
        #[arg(long = "event", value_name = "PATTERN")]
        events: Vec<String>,
        /// A new description.
        #[arg(long)]
        description: Option<String>,
        /// Enable it (a disabled one resumes where it stopped).
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Disable it.
        #[arg(long)]
        disable: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a subscription and its delivery log.
    Delete {
        /// Webhook id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// The delivery log of a subscription.
    Deliveries {
        /// Webhook id.
        id: String,
        /// Only `pending`, `delivered` or `failed`.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Send a `webhook.test` event now.
    Test {
        /// Webhook id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Replace the signing secret (printed once; the old one co-signs for 24 h).
    RotateSecret {
        /// Webhook id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Check a received webhook's signature offline, as a receiver would.
    Verify {
        /// The signing secret (`whsec_…`).
        #[arg(long, env = "IDV_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// The `webhook-id` header.
        #[arg(long)]
        id: String,
        /// The `webhook-timestamp` header.
        #[arg(long)]
        timestamp: String,
        /// The `webhook-signature` header.
        #[arg(long)]
        signature: String,
        /// File holding the body exactly as received (`-` for stdin).
        #[arg(long)]
        payload_file: PathBuf,
        /// Accept any timestamp (to check an old delivery).
        #[arg(long)]
        ignore_time: bool,
    },
}

/// An agent's own credential, for the commands an agent runs for itself.
#[derive(Debug, Clone, Args)]
pub struct AgentAuth {
    /// The agent's `client_id` (its id), with `--client-secret`.
    #[arg(long, env = "IDV_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The agent's client secret.
    #[arg(long, env = "IDV_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Or one of the agent's API keys.
    #[arg(long, env = "IDV_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

impl AgentAuth {
    /// Whether any agent credential was given.
    pub fn given(&self) -> bool {
        self.client_secret.is_some() || self.api_key.is_some()
    }
}

/// `idv db …`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Target databases roles are issued on.
    #[command(subcommand)]
    Target(DbTargetCommand),
    /// Role templates: the grants a credential carries.
    #[command(subcommand)]
    Template(DbTemplateCommand),
    /// As an agent: get a database credential from a template (a new role,
    /// its password printed once, under a lease).
    Creds {
        /// Template name.
        template: String,
        /// Lease time, e.g. `15m` (default: the template's).
        #[arg(long)]
        ttl: Option<String>,
        #[command(flatten)]
        agent: AgentAuth,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv db target …`.
#[derive(Debug, Subcommand)]
pub enum DbTargetCommand {
    /// Register or replace a target (the server checks it can create roles there).
    Set {
        /// Name in the tenant.
        name: String,
        /// `postgres://admin:password@host:port/db` (read from IDV_DB_TARGET_URL if absent).
        #[arg(long, env = "IDV_DB_TARGET_URL", hide_env_values = true)]
        url: String,
        /// Prefix of the roles made there (default `idv_`).
        #[arg(long)]
        role_prefix: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List targets.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one target.
    Get {
        /// Name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a target no template or live lease uses.
    Delete {
        /// Name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Drop, now, roles of ours on the target that have no live lease.
    Sweep {
        /// Name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv db template …`.
#[derive(Debug, Subcommand)]
pub enum DbTemplateCommand {
    /// Create or replace a template.
    Set {
        /// Name in the tenant.
        name: String,
        /// Target database name.
        #[arg(long)]
        target: String,
        /// A `GRANT … TO {{name}}` statement (repeatable).
        #[arg(long = "grant", value_name = "SQL", required_unless_present = "file")]
        grants: Vec<String>,
        /// A file of statements separated by `;` (instead of `--grant`).
        #[arg(long, conflicts_with = "grants")]
        file: Option<PathBuf>,
        /// Lease time when a request names none, e.g. `1h`.
        #[arg(long)]
        default_ttl: Option<String>,
        /// Longest lease, renewals included, e.g. `24h`.
        #[arg(long)]
        max_ttl: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List templates.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one template.
    Get {
        /// Name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a template no live lease uses.
    Delete {
        /// Name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv lease …`: as an administrator, or as the agent (with agent
/// credentials, on its own leases only).
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// List leases.
    List {
        /// Only this agent's (administrators).
        #[arg(long)]
        agent_id: Option<String>,
        /// `pending`, `active`, `revocation_pending` or `revoked`.
        #[arg(long)]
        state: Option<String>,
        /// Only on this target.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        agent: AgentAuth,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one lease.
    Get {
        /// Lease id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Extend a lease (never past its maximum).
    Renew {
        /// Lease id.
        id: String,
        /// Extend to this long from now, e.g. `30m` (default: the template's TTL).
        #[arg(long)]
        increment: Option<String>,
        #[command(flatten)]
        agent: AgentAuth,
        #[command(flatten)]
        conn: Connection,
    },
    /// Revoke a lease: its sessions end and its role is dropped.
    Revoke {
        /// Lease id.
        id: String,
        #[command(flatten)]
        agent: AgentAuth,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// The tenant's signing keys with their state (next, current, retired, removed).
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Rotate now: publish a next key ahead (default: the server's lead), or
    /// with `--immediate` sign with a new key at once.
    Rotate {
        /// Publish the new key this long before it signs, e.g. `1h`.
        #[arg(long, conflicts_with_all = ["immediate", "revoke_old"])]
        publish_ahead: Option<String>,
        /// The new key signs at once; the old one stays published until its tokens expire.
        #[arg(long)]
        immediate: bool,
        /// Compromise: sign with a new key at once and remove the old one from
        /// the JWKS now (every token it signed stops verifying).
        #[arg(long)]
        revoke_old: bool,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Which agents a rotation policy covers.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RotationScopeArgs {
    /// Every agent of the tenant.
    #[arg(long)]
    pub tenant_wide: bool,
    /// Agents of this class.
    #[arg(long)]
    pub class: Option<String>,
    /// One agent.
    #[arg(long)]
    pub agent: Option<String>,
}

/// `idv rotation-policy …`.
#[derive(Debug, Subcommand)]
pub enum RotationPolicyCommand {
    /// Set (create or replace) a policy; the credentials it covers are rescheduled.
    Set {
        #[command(flatten)]
        scope: RotationScopeArgs,
        /// Rotate each credential this long after it was made, e.g. `30d`.
        #[arg(long)]
        every: Option<String>,
        /// No credential works longer than this, e.g. `90d`.
        #[arg(long)]
        max_age: Option<String>,
        /// Overlap of each rotation (default 1h; `0`: none).
        #[arg(long)]
        overlap: Option<String>,
        /// Revoke the predecessor on the successor's first use.
        #[arg(long)]
        retire_on_first_use: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// The tenant's policies.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a policy (the broader one applies again).
    Delete {
        #[command(flatten)]
        scope: RotationScopeArgs,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Upload a version (validated; errors show line and column).
    Upload {
        /// Cedar policy file.
        file: PathBuf,
        /// Cedar schema fragment with the tenant's resource types and actions.
        #[arg(long)]
        schema: Option<PathBuf>,
        /// Why this version exists.
        #[arg(long)]
        description: Option<String>,
        /// Activate it at once.
        #[arg(long)]
        activate: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Check a policy file against the schema without storing it.
    Validate {
        /// Cedar policy file.
        file: PathBuf,
        /// Cedar schema fragment.
        #[arg(long)]
        schema: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Make a stored version active.
    Activate {
        /// Version number.
        #[arg(value_name = "VERSION")]
        number: i64,
        #[command(flatten)]
        conn: Connection,
    },
    /// Re-activate the version active before the current one.
    Rollback {
        #[command(flatten)]
        conn: Connection,
    },
    /// List versions (the active one marked).
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one version with its text.
    Get {
        /// Version number.
        #[arg(value_name = "VERSION")]
        number: i64,
        #[command(flatten)]
        conn: Connection,
    },
    /// Run a file of AuthZEN requests (a JSON array) against a candidate and
    /// the active version; show the decisions that would change.
    Test {
        /// JSON file: an array of AuthZEN evaluation requests.
        requests: PathBuf,
        /// A stored version to try (its number).
        #[arg(long, conflicts_with = "file")]
        candidate: Option<i64>,
        /// Or a Cedar policy file not yet uploaded.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Its schema fragment.
        #[arg(long)]
        schema: Option<PathBuf>,
        /// Ask every request as this subject (`agent:<id>`, `<type>:<id>`),
        /// in place of any subject in the file, like the defaults of an
        /// AuthZEN batch: one file of requests serves any agent.
        #[arg(long)]
        subject: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv role …`.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create or replace a role.
    Put {
        /// Role name.
        name: String,
        /// An action it permits on any resource (repeatable; none: a role
        /// that only policies refer to, e.g. `principal in Role::"payer"`).
        #[arg(long = "action", value_name = "ACTION")]
        actions: Vec<String>,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List roles.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete a role no grant holds.
    Delete {
        /// Role name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Who a grant goes to.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GrantSubjectArg {
    /// One agent (by id).
    Agent,
    /// Every agent of a class.
    Class,
    /// Every member of a group.
    Group,
}

/// `idv grant …`.
#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Grant a role (or `--action`) to an agent, class or group.
    Create {
        /// `agent`, `class` or `group`.
        #[arg(value_enum)]
        subject_type: GrantSubjectArg,
        /// Agent id, class or group name.
        subject: String,
        /// The role to grant.
        #[arg(long, required_unless_present = "action", conflicts_with = "action")]
        role: Option<String>,
        /// Or a single action.
        #[arg(long)]
        action: Option<String>,
        /// A Cedar condition that must also hold, e.g. `context.amount < 1000`.
        #[arg(long = "when")]
        condition: Option<String>,
        /// Expiry: RFC 3339 or a duration from now (`8h`, `30d`).
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List grants.
    List {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove a grant.
    Delete {
        /// Grant id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv entity …`.
#[derive(Debug, Subcommand)]
pub enum EntityCommand {
    /// Create or replace entities from a JSON file (an array of Cedar
    /// entities: `uid`, `attrs`, `parents`).
    Put {
        /// JSON file.
        file: PathBuf,
        #[command(flatten)]
        conn: Connection,
    },
    /// List the directory.
    List {
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv decide`.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The subject: `agent:<id>`, `token:<access token>` or `<type>:<id>`.
    #[arg(long)]
    pub subject: String,
    /// The action.
    #[arg(long)]
    pub action: String,
    /// The resource: `<type>:<id>` (e.g. `Resource:acct-1`, `agent:<id>`).
    #[arg(long)]
    pub resource: String,
    /// Context as a JSON object, e.g. `{"amount": 500}`.
    #[arg(long)]
    pub context: Option<String>,
    /// Resource properties as a JSON object.
    #[arg(long)]
    pub properties: Option<String>,
    #[command(flatten)]
    pub conn: Connection,
}

/// `idv approval …`.
#[derive(Debug, Subcommand)]
pub enum ApprovalCommand {
    /// List approval requests.
    List {
        /// `pending`, `approved`, `rejected` or `used`.
        #[arg(long)]
        status: Option<String>,
        /// Only those assigned to this owner.
        #[arg(long)]
        assignee: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Approve: the same request may then go ahead once.
    Approve {
        /// Approval id.
        id: String,
        /// Why.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Reject.
    Reject {
        /// Approval id.
        id: String,
        /// Why.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Credential kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredentialType {
    /// A client secret (`client_secret_basic` / `client_secret_post`).
    ClientSecret,
    /// A public JWK for RFC 7523 client assertions.
    PrivateKeyJwt,
    /// A scoped API key.
    ApiKey,
}

/// `idv credential …`.
#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Issue a credential to an agent; a secret or API key is printed once.
    Create {
        /// Agent id.
        agent: String,
        /// Kind of credential.
        #[arg(long = "type", value_enum)]
        type_: CredentialType,
        /// File holding the public JWK (for `private-key-jwt`).
        #[arg(long)]
        jwk_file: Option<PathBuf>,
        /// API key scope (repeatable; default: every scope the agent is allowed).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Lifetime, e.g. `90d` (default: until revoked).
        #[arg(long)]
        ttl: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List an agent's credentials.
    List {
        /// Agent id.
        agent: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one credential.
    Get {
        /// Credential id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Revoke a credential; it stops working at once.
    Revoke {
        /// Credential id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Rotate a credential: the successor works at once, the predecessor
    /// until the end of the overlap (or the successor's first use).
    Rotate {
        /// Credential id.
        id: String,
        /// How long both work, e.g. `1h` (default 1h; `0`: revoke the old one now).
        #[arg(long)]
        overlap: Option<String>,
        /// Revoke the predecessor on the successor's first use instead of at the overlap's end.
        #[arg(long)]
        retire_on_first_use: bool,
        /// Seal the new secret for the agent to collect instead of printing it.
        #[arg(long)]
        pickup: bool,
        /// File holding the successor's public JWK (for `private_key_jwt`).
        #[arg(long)]
        jwk_file: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
    /// A credential's rotation lineage, oldest first.
    History {
        /// Credential id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Rotate every client secret and API key of an agent now (its policy's
    /// overlap); the new secrets are sealed for the agent to collect.
    RotateAgent {
        /// Agent id.
        agent: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// A security event: revoke every credential of an agent at once and
    /// print the successors' secrets.
    Compromised {
        /// Agent id.
        agent: String,
        /// What happened.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// `idv serve`: the server's settings, declared in `idv-server` with their
/// flags, environment variables and defaults.
pub type ServeArgs = idv_server::config::Settings;

/// How to reach the server, shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Server address.
    #[arg(long, env = "IDV_ADDR", default_value = "http://127.0.0.1:8700", global = true)]
    pub addr: String,
    /// Admin API token.
    #[arg(long, env = "IDV_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Act in this tenant (platform operator tokens only).
    #[arg(long, env = "IDV_TENANT", global = true)]
    pub tenant: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `idv tenant …`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Slug: lowercase letters, digits and `-`.
        name: String,
        /// Name for people.
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one tenant.
    Get {
        /// Tenant name.
        name: String,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Paging flags for list commands.
#[derive(Debug, Clone, Args)]
pub struct PageArgs {
    /// Page size.
    #[arg(long)]
    pub limit: Option<u32>,
    /// Continue after this cursor (from a previous page).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Fetch every page.
    #[arg(long, conflicts_with = "cursor")]
    pub all: bool,
}

/// The roles an admin token can have.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Everything in the tenant.
    Admin,
    /// Manage agents and credentials.
    Operator,
    /// Read-only, including the audit log.
    Auditor,
    /// A policy enforcement point: authorization decisions only.
    Pep,
}

/// `idv admin-token …`.
#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Create an admin token; its secret is printed once.
    Create {
        /// A name for people, e.g. `ci-pipeline`.
        #[arg(long)]
        name: String,
        /// Role.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Lifetime, e.g. `90d` (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
        /// Make a platform operator token.
        #[arg(long)]
        platform: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// List the admin tokens of one tenant: the token's own, or the one
    /// `--tenant` names (a platform token may name any), as a Vault namespace
    /// or a Keycloak realm lists only its own.
    List {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one admin token.
    Get {
        /// Token id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Revoke an admin token.
    Revoke {
        /// Token id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show the token in use and its tenant.
    Whoami {
        #[command(flatten)]
        conn: Connection,
    },
}

/// Metadata flags shared by `agent create` and `agent update`.
#[derive(Debug, Clone, Default, Args)]
pub struct AgentFields {
    /// Environment: dev, test or prod.
    #[arg(long)]
    pub environment: Option<String>,
    /// Team that runs it.
    #[arg(long)]
    pub team: Option<String>,
    /// Label `key=value` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Declared capability (repeatable).
    #[arg(long = "capability", value_name = "CAPABILITY")]
    pub capabilities: Vec<String>,
    /// Class (template).
    #[arg(long)]
    pub class: Option<String>,
    /// Agent id it depends on (repeatable).
    #[arg(long = "depends-on", value_name = "AGENT_ID")]
    pub depends_on: Vec<String>,
    /// OAuth scope it may request (repeatable).
    #[arg(long = "allow-scope", value_name = "SCOPE")]
    pub allowed_scopes: Vec<String>,
    /// Audience (RFC 8707 resource URI) it may request tokens for (repeatable).
    #[arg(long = "allow-resource", value_name = "URI")]
    pub allowed_resources: Vec<String>,
    /// RFC 9396 `authorization_details` type it may request (repeatable).
    #[arg(long = "allow-details-type", value_name = "TYPE")]
    pub authorization_details_types: Vec<String>,
}

/// `idv agent …`.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Register an agent.
    Create {
        /// Unique name in the tenant.
        #[arg(long)]
        name: String,
        /// The accountable human or team.
        #[arg(long)]
        owner: String,
        /// Why the agent exists.
        #[arg(long)]
        purpose: String,
        #[command(flatten)]
        fields: AgentFields,
        /// Who created it: `agent:<id>` or `human:<id>`.
        #[arg(long)]
        parent: Option<String>,
        /// For ephemeral agents: retire after this long, e.g. `15m`.
        #[arg(long)]
        ttl: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Register many agents from a JSON array or JSON lines file (`-` for stdin).
    Import {
        /// The file.
        file: PathBuf,
        /// Agents per request; each request is all-or-nothing.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=50_000))]
        batch: u32,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one agent.
    Get {
        /// Agent id.
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// List agents.
    List {
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only this owner.
        #[arg(long)]
        owner: Option<String>,
        /// Only this environment.
        #[arg(long)]
        environment: Option<String>,
        /// Only this class.
        #[arg(long)]
        class: Option<String>,
        /// Only agents with label `key=value` (repeatable: all must match).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Only names starting with this.
        #[arg(long)]
        name_prefix: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change an agent's metadata.
    Update {
        /// Agent id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New owner.
        #[arg(long)]
        owner: Option<String>,
        /// New purpose.
        #[arg(long)]
        purpose: Option<String>,
        #[command(flatten)]
        fields: AgentFields,
        /// Clear a field: environment, team or class (repeatable).
        #[arg(long, value_name = "FIELD")]
        clear: Vec<ClearField>,
        /// Only if the agent is at this version (default: the version just read).
        #[arg(long)]
        if_match: Option<i64>,
        #[command(flatten)]
        conn: Connection,
    },
    /// provisioning → active.
    Activate(TransitionArgs),
    /// active → suspended.
    Suspend(TransitionArgs),
    /// suspended → active.
    Resume(TransitionArgs),
    /// Retire for good (the record is kept).
    Retire(TransitionArgs),
    /// Export the inventory.
    Export {
        /// `csv` or `json`.
        #[arg(long, default_value = "csv")]
        format: ExportFormat,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Fields `agent update --clear` can clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClearField {
    /// The environment.
    Environment,
    /// The team.
    Team,
    /// The class.
    Class,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values.
    Csv,
    /// A JSON array.
    Json,
}

/// Arguments of a lifecycle transition.
#[derive(Debug, Args)]
pub struct TransitionArgs {
    /// Agent id.
    pub id: String,
    /// Why (recorded on the agent and in the audit log).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub conn: Connection,
}

/// `idv audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events.
    List {
        /// Only this action, e.g. `agent.create`.
        #[arg(long)]
        action: Option<String>,
        /// Only about this target id.
        #[arg(long)]
        target_id: Option<String>,
        /// Only by this admin token id.
        #[arg(long)]
        actor_token_id: Option<String>,
        /// Only this outcome: success, failure or denied.
        #[arg(long)]
        outcome: Option<String>,
        /// Only events at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only events before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Every tenant's events (platform operators).
        #[arg(long)]
        all_tenants: bool,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Walk the hash chain and report the first broken link.
    ///
    /// Online (default) it reads the chain through the API with a platform
    /// token. With `--offline` it reads the database directly, read-only and
    /// with no server needed, found as `idv serve` finds it
    /// (`IDV_DATABASE_URL`, else the data directory: `IDV_DATA_DIR`, else
    /// `./idv-data`); `--data-dir` or `--database-url` name it and imply
    /// `--offline`.
    Verify {
        /// Read the database directly instead of through the API.
        #[arg(long)]
        offline: bool,
        /// Read the SQLite database in this data directory.
        #[arg(long, conflicts_with = "database_url")]
        data_dir: Option<PathBuf>,
        /// Read this database (`sqlite://…` or `postgres://…`).
        #[arg(long, hide_env_values = true)]
        database_url: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// clap's own consistency checks (unique argument names, …) over every
    /// subcommand, which otherwise only fire when that subcommand runs.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
