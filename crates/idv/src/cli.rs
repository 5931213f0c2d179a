//! The command line: the top-level commands and the flags every client
//! command shares. Each noun's clap types live beside its code in
//! `commands/<noun>.rs`.

use clap::{Args, Parser, Subcommand};

use crate::commands::access_request::AccessRequestCommand;
use crate::commands::agent::AgentCommand;
use crate::commands::audit::AuditCommand;
use crate::commands::authz::{ApprovalCommand, DecideArgs, EntityCommand, GrantCommand, PolicyCommand, RoleCommand};
use crate::commands::credential::{CredentialCommand, RotationPolicyCommand};
use crate::commands::db::{DbCommand, LeaseCommand};
use crate::commands::key::KeyCommand;
use crate::commands::sso::SsoCommand;
use crate::commands::tenant::{AdminTokenCommand, TenantCommand};
use crate::commands::webhook::WebhookCommand;

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
    /// Single sign-on for the console: the tenant's OpenID Connect provider
    /// and its group-to-role mapping.
    #[command(subcommand)]
    Sso(SsoCommand),
    /// Just-in-time access for an agent: ask for a role or action for a
    /// while, and approve, deny or withdraw requests.
    #[command(subcommand)]
    AccessRequest(AccessRequestCommand),
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
